"""Energy Flow Polynomials (Komiske, Metodiev, Thaler, arXiv:1712.07124): the d ≤ 4 set.

An EFP is indexed by a multigraph G with vertices 1..n and edges (k, l):

.. math::

    \\mathrm{EFP}_G = \\sum_{i_1=1}^{M} \\cdots \\sum_{i_n=1}^{M}
        z_{i_1} \\cdots z_{i_n} \\prod_{(k,l) \\in G} \\theta_{i_k i_l} .

Measure (energyflow's ``measure="hadr", beta=1, normed=None, coords="ptyphim"``):
:math:`\\theta_{ij} = (\\Delta y_{ij}^2 + \\Delta\\phi_{ij}^2)^{\\beta/2}` with Δφ wrapped into
[0, π] and y = η for massless particles; :math:`z_i = p_{T,i}` unnormalised (``normed=None``
in energyflow ≥ 1.1; here the particle's pT_rel), ``normed=True`` gives
:math:`z_i = p_{T,i}/\\sum_j p_{T,j}`. A particle with z = 0 (padding) adds nothing.

**The 36 EFPs with d ≤ 4** (:data:`EFP_D4_GRAPHS`): every loopless multigraph with at most 4
edges and no isolated vertex (1, 1, 3, 8, 23 graphs with d = 0..4 edges), as energyflow's
``EFPSet(("d<=", 4), ...)`` returns them, which JetNet's FPD/KPD features use
(``get_fpd_kpd_jet_features``). The order is energyflow's: its stored graph table
(``energyflow/data/efps_d_le_10.json.gz``, unchanged since 2019) lists the connected graphs
first, in the table's order (by n, then d, then its graph index), then the disconnected ones,
each a product of connected ones, in the table's order. Columns 0–20 are the 21 connected
graphs, 21–35 the 15 products :data:`EFP_D4_PRODUCTS`. A disconnected EFP is the product of
its components' EFPs, since the vertex sums factorise.

With :math:`T_m = (\\theta_{ij}^m)`, :math:`s_m = T_m z`, :math:`M = \\Theta\\,\\mathrm{diag}(z)\\,\\Theta`,
:math:`u = \\Theta (z s_1)` and :math:`t = (M \\circ \\Theta) z` (∘ elementwise, products of
vectors elementwise, :math:`\\langle a \\rangle = \\sum_i a_i`) the connected EFPs are
:math:`\\langle z \\rangle`, :math:`\\langle z s_m \\rangle` (m = 1..4),
:math:`\\langle z s_1^2 \\rangle`, :math:`\\langle z s_1 s_2 \\rangle`, :math:`\\langle z s_1 s_3 \\rangle`,
:math:`\\langle z s_2^2 \\rangle`, :math:`\\langle z t \\rangle` (triangle),
:math:`z^T (M \\circ T_2) z`, :math:`\\langle z s_1^3 \\rangle`, :math:`\\langle z s_1^2 s_2 \\rangle`,
:math:`\\langle z s_1 u \\rangle`, :math:`\\langle z s_2 u \\rangle`, :math:`(z s_1)^T T_2 (z s_1)`,
:math:`\\langle z s_1 t \\rangle`, :math:`z^T (M \\circ M) z` (4-cycle),
:math:`\\langle z s_1^4 \\rangle`, :math:`\\langle z s_1^2 u \\rangle`, :math:`\\langle z u^2 \\rangle`:
one batched P×P matrix product per jet, the rest O(P²). Jets are sorted by multiplicity and
processed in chunks with their real particles packed to the front, so padding costs nothing.

JetNet's W1-EFP (MPGAN, arXiv:2106.11535) uses the 5 **prime** graphs with n = 4 vertices and
d = 4 edges, ``EFPSet(("n==", 4), ("d==", 4), ("p==", 1), ...)``: columns
:data:`JETNET_W1EFP_COLUMNS` of the d ≤ 4 set (:func:`efps`), i.e. :data:`EFP_GRAPHS`.

Shapes: particles (N, P, ≥3) as (η_rel, φ_rel, pT_rel), mask (N, P) bool -> (N, 36) or (N, 5).
"""

from __future__ import annotations

import numpy as np

from jetlab.metrics.jet_samples import matmul
from jetlab.physics.kinematics import delta_phi

__all__ = ["EFP_D4_GRAPHS", "EFP_D4_PRODUCTS", "EFP_GRAPHS", "EFP_NAMES", "JETNET_W1EFP_COLUMNS",
           "efp_measure", "efps", "efps_d4", "efp_from_edges", "get_fpd_kpd_jet_features"]

#: the 21 connected multigraphs with d ≤ 4, in energyflow's order (repeated edge = θ power)
_CONNECTED: tuple[tuple[tuple[int, int], ...], ...] = (
    (),
    ((0, 1),),
    ((0, 1), (0, 1)),
    ((0, 1), (0, 1), (0, 1)),
    ((0, 1), (0, 1), (0, 1), (0, 1)),
    ((0, 1), (0, 2)),
    ((0, 1), (0, 2), (0, 2)),
    ((0, 1), (0, 2), (0, 2), (0, 2)),
    ((0, 1), (0, 1), (0, 2), (0, 2)),
    ((0, 1), (0, 2), (1, 2)),
    ((0, 1), (0, 2), (0, 2), (1, 2)),
    ((0, 1), (0, 2), (0, 3)),
    ((0, 1), (0, 2), (0, 2), (0, 3)),
    ((0, 1), (0, 2), (1, 3)),
    ((0, 1), (0, 2), (0, 2), (1, 3)),
    ((0, 1), (0, 1), (0, 2), (1, 3)),
    ((0, 1), (0, 2), (1, 2), (0, 3)),
    ((0, 1), (0, 2), (1, 3), (2, 3)),
    ((0, 1), (0, 2), (0, 3), (0, 4)),
    ((0, 1), (0, 2), (0, 3), (1, 4)),
    ((0, 1), (0, 2), (1, 3), (2, 4)),
)
#: the 15 disconnected EFPs (columns 21..35) as products of connected columns, energyflow's order
EFP_D4_PRODUCTS: tuple[tuple[int, ...], ...] = (
    (1, 1), (1, 2), (1, 3), (2, 2), (1, 5), (2, 5), (1, 6), (1, 9), (1, 1, 1), (1, 11),
    (1, 13), (5, 5), (1, 1, 2), (1, 1, 5), (1, 1, 1, 1),
)


def _n_vertices(edges) -> int:
    return 1 + max((v for edge in edges for v in edge), default=0)


def _union(components) -> tuple[tuple[int, int], ...]:
    """Disjoint union of graphs, vertices of each component shifted past the previous ones."""
    edges, offset = [], 0
    for graph in components:
        edges += [(a + offset, b + offset) for a, b in graph]
        offset += _n_vertices(graph)
    return tuple(edges)


#: the 36 d ≤ 4 multigraphs (edge lists; a disconnected one as the union of its components)
EFP_D4_GRAPHS = _CONNECTED + tuple(_union([_CONNECTED[c] for c in p]) for p in EFP_D4_PRODUCTS)
#: columns of the 5 JetNet W1-EFP graphs (n = 4, d = 4, prime) in the d ≤ 4 set
JETNET_W1EFP_COLUMNS: tuple[int, ...] = (12, 14, 15, 16, 17)
EFP_GRAPHS = tuple(EFP_D4_GRAPHS[c] for c in JETNET_W1EFP_COLUMNS)
EFP_NAMES: tuple[str, ...] = ("star-doubled", "path-end-doubled", "path-middle-doubled",
                              "triangle-pendant", "4-cycle")

# jets per chunk are chosen so a chunk's (chunk, P, P) matrices stay around this many elements
_CHUNK_ELEMENTS = 2_000_000


def efp_measure(particles: np.ndarray, mask: np.ndarray | None = None, *, normed: bool = False,
                beta: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Energies z and angles θ of the hadronic measure of energy flow polynomials (Komiske,
    Metodiev & Thaler, arXiv:1712.07124): ``z_i = pT_i`` (or pT_i / Σ pT), ``θ_ij =
    ΔR_ij^β``; masked particles get z = 0.

    Args:
        particles: (η, φ, pT) particles (further columns ignored).
        mask: which particles are real (``None``: all rows; pT 0 adds nothing).
        normed: normalise z to sum 1 per jet.
        beta: angular exponent β.

    Returns:
        ``(z, theta)``.

    Shapes:
        - particles: ``(jets, particles, ≥3)``
        - mask: ``(jets, particles)`` bool
        - z: ``(jets, particles)``
        - theta: ``(jets, particles, particles)``
    """
    particles = np.asarray(particles, dtype=np.float64)
    z = particles[..., 2].copy()
    if mask is not None:
        z = np.where(mask, z, 0.0)
    if normed:
        total = z.sum(-1, keepdims=True)
        z = np.divide(z, total, out=np.zeros_like(z), where=total != 0)
    d_eta = particles[:, :, None, 0] - particles[:, None, :, 0]
    d_phi = particles[:, :, None, 1] - particles[:, None, :, 1]
    if d_phi.size and np.abs(d_phi).max() > np.pi:  # the wrap is slow: only where it matters
        d_phi = delta_phi(particles[:, :, None, 1], particles[:, None, :, 1])
    theta2 = d_eta**2 + d_phi**2
    theta = np.sqrt(theta2) if beta == 1 else theta2 ** (beta / 2)
    return z, theta


def _matvec(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """(n, P, P) @ (n, P) -> (n, P)."""
    return np.einsum("nij,nj->ni", matrix, vector)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched (n, P, P) @ (n, P, P): numpy for small P, torch above (measured on 2 cores:
    equal at P = 60, numpy several times slower at P = 150)."""
    return np.matmul(a, b) if a.shape[-1] <= 64 else matmul(a, b)


def _connected_efps(z: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """The 21 connected d ≤ 4 EFPs from z (n, P) and θ (n, P, P) -> (n, 21) (formulas above)."""
    theta2 = theta * theta
    s1, s2 = _matvec(theta, z), _matvec(theta2, z)
    s3, s4 = _matvec(theta2 * theta, z), _matvec(theta2 * theta2, z)
    m = _matmul(theta * z[:, None, :], theta)     # M = Θ diag(z) Θ (symmetric)
    t = _matvec(m * theta, z)                       # Σ_jk θ_ij z_j θ_jk z_k θ_ki / z_i
    zs1 = z * s1
    u = _matvec(theta, zs1)
    total = lambda x: x.sum(-1)  # noqa: E731
    return np.stack([
        total(z), total(z * s1), total(z * s2), total(z * s3), total(z * s4),
        total(zs1 * s1), total(zs1 * s2), total(zs1 * s3), total(z * s2 * s2),
        total(z * t), total(z * _matvec(m * theta2, z)),
        total(zs1 * s1 * s1), total(zs1 * s1 * s2),
        total(zs1 * u), total(z * s2 * u), total(zs1 * _matvec(theta2, zs1)),
        total(zs1 * t), total(z * _matvec(m * m, z)),
        total(zs1 * s1 * s1 * s1), total(zs1 * s1 * u), total(z * u * u),
    ], axis=-1)


def efps_d4(particles: np.ndarray, mask: np.ndarray | None = None, *, normed: bool = False,
            beta: float = 1.0) -> np.ndarray:
    """The 36 EFPs with d ≤ 4 of each jet, in energyflow's order (:data:`EFP_D4_GRAPHS`).

    Args:
        particles: (η_rel, φ_rel, pT_rel) particles; extra columns are ignored.
        mask: True for real particles (padding may also just have pT 0).
        normed: normalise z to sum 1 per jet (JetNet uses unnormalised pT_rel: False).
        beta: angular exponent (JetNet: 1).

    Returns:
        float64 EFPs.

    Shapes:
        - particles: ``(jets, particles, ≥3)``
        - mask: ``(jets, particles)`` bool
        - returns: ``(jets, 36)``
    """
    particles = np.asarray(particles, dtype=np.float64)
    if particles.ndim != 3 or particles.shape[2] < 3:
        raise ValueError(f"particles must be (N, P, >=3), got {particles.shape}")
    z_all = particles[..., 2] if mask is None else np.where(mask, particles[..., 2], 0.0)
    active = z_all != 0
    counts = active.sum(1)
    order = np.argsort(-counts, kind="stable")      # most particles first
    connected = np.zeros((len(particles), len(_CONNECTED)))
    start = 0
    while start < len(order):
        width = max(1, int(counts[order[start]]))
        stop = min(len(order), start + max(1, _CHUNK_ELEMENTS // (width * width)))
        jets = order[start:stop]
        packed = np.argsort(~active[jets], axis=1, kind="stable")[:, :width]  # real ones first
        chunk = np.take_along_axis(particles[jets, :, :3], packed[..., None], axis=1)
        chunk_mask = np.take_along_axis(active[jets], packed, axis=1)
        z, theta = efp_measure(chunk, chunk_mask, normed=normed, beta=beta)
        connected[jets] = _connected_efps(z, theta)
        start = stop
    products = [np.prod(connected[:, list(p)], axis=1) for p in EFP_D4_PRODUCTS]
    return np.concatenate([connected, np.stack(products, axis=1)], axis=1)


def efps(particles: np.ndarray, mask: np.ndarray | None = None, *, normed: bool = False,
         beta: float = 1.0) -> np.ndarray:
    """The 5 JetNet W1-EFP EFPs (n = 4, d = 4, prime) of each jet in the order of
    :data:`EFP_GRAPHS` (columns :data:`JETNET_W1EFP_COLUMNS` of :func:`efps_d4`).

    Args:
        particles: (η_rel, φ_rel, pT_rel) particles; extra columns are ignored.
        mask: True for real particles (padding may also just have pT 0).
        normed: normalise z to sum 1 per jet (JetNet: False).
        beta: angular exponent (JetNet: 1).

    Returns:
        float64 EFPs.

    Shapes:
        - particles: ``(jets, particles, ≥3)``
        - mask: ``(jets, particles)`` bool
        - returns: ``(jets, 5)``
    """
    return efps_d4(particles, mask, normed=normed, beta=beta)[:, list(JETNET_W1EFP_COLUMNS)]


def get_fpd_kpd_jet_features(jets, efp_jobs: int | None = None, *, mask=None) -> np.ndarray:
    """JetNet's FPD/KPD jet features: the 36 d ≤ 4 EFPs (:func:`efps_d4`) of each jet.

    Same name, arguments and result as ``jetnet.evaluation.get_fpd_kpd_jet_features``
    (Kansal et al., arXiv:2211.10295).

    Args:
        jets: (η_rel, φ_rel, pT_rel) particles (numpy or torch), zero-padded; columns past the
            third (e.g. JetNet's mask column) are ignored, as JetNet ignores them.
        efp_jobs: accepted for compatibility and unused (the computation is vectorised numpy).
        mask: drops the particles where it is False.

    Returns:
        float64 features.

    Shapes:
        - jets: ``(jets, particles, ≥3)``
        - mask: ``(jets, particles)`` bool
        - returns: ``(jets, 36)``
    """
    del efp_jobs
    if hasattr(jets, "detach"):  # torch tensor
        jets = jets.detach().cpu().numpy()
    if mask is not None and hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    return efps_d4(jets, None if mask is None else np.asarray(mask, bool))


def efp_from_edges(edges, z: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Any EFP by direct ``np.einsum`` over its multigraph (reference implementation).

    Args:
        edges: (k, l) vertex pairs (vertices 0..n-1, all used; no edges = one vertex).
        z: particle energies (:func:`efp_measure`).
        theta: pairwise angles (:func:`efp_measure`).

    Returns:
        The EFP of every jet.

    Shapes:
        - z: ``(jets, particles)``
        - theta: ``(jets, particles, particles)``
        - returns: ``(jets,)``
    """
    vertices = sorted({v for edge in edges for v in edge}) or [0]
    if vertices != list(range(len(vertices))):
        raise ValueError(f"edges must use vertices 0..n-1, got {vertices}")
    letters = "abcdefghijklm"
    operands, terms = [], []
    for v in vertices:
        operands.append(z)
        terms.append("N" + letters[v])
    for k, l in edges:
        operands.append(theta)
        terms.append("N" + letters[k] + letters[l])
    return np.einsum(",".join(terms) + "->N", *operands, optimize="greedy")
