"""Energy Flow Polynomials (Komiske, Metodiev, Thaler, arXiv:1712.07124) for W1-EFP.

An EFP is indexed by a multigraph G with vertices 1..n and edges (k, l):

.. math::

    \\mathrm{EFP}_G = \\sum_{i_1=1}^{M} \\cdots \\sum_{i_n=1}^{M}
        z_{i_1} \\cdots z_{i_n} \\prod_{(k,l) \\in G} \\theta_{i_k i_l} .

JetNet/MPGAN (Kansal et al., arXiv:2106.11535; ``jetnet.utils.efps``) use
``EFPSet(("n==", 4), ("d==", 4), ("p==", 1), measure="hadr", beta=1, normed=None,
coords="ptyphim")`` on massless particles (pT, η, φ): the **prime (connected), loopless
multigraphs with n = 4 vertices and d = 4 edges**. A connected graph on 4 vertices needs a
3-edge spanning tree (the path P4 or the star K1,3) plus one more edge, which gives exactly
five non-isomorphic multigraphs, listed here in energyflow's order:

====  =========================================  ==================================
 #    graph                                      edges (energyflow)
====  =========================================  ==================================
 0    star K1,3 with one edge doubled            (0,1) (0,2) (0,2) (0,3)
 1    path P4 with an end edge doubled           (0,1) (0,2) (0,2) (1,3)
 2    path P4 with the middle edge doubled       (0,1) (0,1) (0,2) (1,3)
 3    triangle with a pendant edge               (0,1) (0,2) (1,2) (0,3)
 4    4-cycle                                    (0,1) (0,2) (1,3) (2,3)
====  =========================================  ==================================

Measure ("hadr", β = 1): :math:`\\theta_{ij} = (\\Delta y_{ij}^2 + \\Delta\\phi_{ij}^2)^{\\beta/2}`
with Δφ wrapped into [0, π] and y = η for massless particles. ``normed=None`` in
energyflow ≥ 1.1 means **unnormalised** energies, :math:`z_i = p_{T,i}` (here the jet's
pT_rel, which already sums to about 1); ``normed=True`` gives :math:`z_i = p_{T,i}/\\sum_j p_{T,j}`.

With :math:`A_{ij} = \\theta_{ij} z_j`, :math:`s^{(m)}_i = \\sum_j \\theta^m_{ij} z_j` the five
EFPs are O(M³) matrix expressions (evaluated per jet in float64):
:math:`\\sum_i z_i (s^{(1)}_i)^2 s^{(2)}_i`, :math:`\\sum_i z_i s^{(2)}_i (A s^{(1)})_i`,
:math:`\\sum_i z_i s^{(1)}_i (A^{(2)} s^{(1)})_i`, :math:`\\sum_i z_i s^{(1)}_i
\\sum_j (A^2)_{ij}\\theta_{ij}`, :math:`\\mathrm{tr} A^4`.
They agree with energyflow 1.4.0 to about 1e-15 relative (tests/metrics/data/efp_reference.npz).

Shapes: particles (N, P, 3) as (η_rel, φ_rel, pT_rel), mask (N, P) bool -> EFPs (N, 5).
"""

from __future__ import annotations

import numpy as np

from jetlab.physics.kinematics import delta_phi

__all__ = ["EFP_GRAPHS", "EFP_NAMES", "efp_measure", "efps", "efp_from_edges"]

EFP_GRAPHS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 1), (0, 2), (0, 2), (0, 3)),
    ((0, 1), (0, 2), (0, 2), (1, 3)),
    ((0, 1), (0, 1), (0, 2), (1, 3)),
    ((0, 1), (0, 2), (1, 2), (0, 3)),
    ((0, 1), (0, 2), (1, 3), (2, 3)),
)
EFP_NAMES: tuple[str, ...] = ("star-doubled", "path-end-doubled", "path-middle-doubled",
                              "triangle-pendant", "4-cycle")

# jets per chunk are chosen so a chunk's (chunk, P, P) matrices stay around this many elements
_CHUNK_ELEMENTS = 2_000_000


def efp_measure(particles: np.ndarray, mask: np.ndarray | None = None, *, normed: bool = False,
                beta: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Energies z (N, P) and angles θ (N, P, P) of the hadronic measure.

    ``particles`` (N, P, ≥3) with columns (η, φ, pT); masked particles get z = 0.
    """
    particles = np.asarray(particles, dtype=np.float64)
    z = particles[..., 2].copy()
    if mask is not None:
        z = np.where(mask, z, 0.0)
    if normed:
        total = z.sum(-1, keepdims=True)
        z = np.divide(z, total, out=np.zeros_like(z), where=total != 0)
    d_eta = particles[:, :, None, 0] - particles[:, None, :, 0]
    d_phi = delta_phi(particles[:, :, None, 1], particles[:, None, :, 1])
    theta2 = d_eta**2 + d_phi**2
    theta = np.sqrt(theta2) if beta == 1 else theta2 ** (beta / 2)
    return z, theta


def _five_efps(z: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """The five n=4, d=4 prime EFPs from z (n, P) and θ (n, P, P) -> (n, 5)."""
    a = theta * z[:, None, :]                       # A_ij = θ_ij z_j
    a2 = theta * a                                  # θ²_ij z_j
    s1 = a.sum(-1)                                  # Σ_j θ_ij z_j
    s2 = a2.sum(-1)                                 # Σ_j θ²_ij z_j
    a_s1 = np.einsum("nij,nj->ni", a, s1)
    a2_s1 = np.einsum("nij,nj->ni", a2, s1)
    a_sq = a @ a                                    # (A²)_ij = Σ_k θ_ik z_k θ_kj z_j
    triangle = (a_sq * theta).sum(-1)               # Σ_{k,j} θ_ik z_k θ_kj z_j θ_ji
    return np.stack([
        (z * s1**2 * s2).sum(-1),
        (z * s2 * a_s1).sum(-1),
        (z * s1 * a2_s1).sum(-1),
        (z * s1 * triangle).sum(-1),
        np.einsum("nij,nji->n", a_sq, a_sq),
    ], axis=-1)


def efps(particles: np.ndarray, mask: np.ndarray | None = None, *, normed: bool = False,
         beta: float = 1.0) -> np.ndarray:
    """The 5 JetNet EFPs (n = 4, d = 4, prime) of each jet.

    Args:
        particles: (N, P, ≥3) array of (η_rel, φ_rel, pT_rel); extra columns are ignored.
        mask: optional (N, P) bool, True for real particles (padding may also just have pT 0).
        normed: normalise z to sum 1 per jet (JetNet uses unnormalised pT_rel: False).
        beta: angular exponent (JetNet: 1).

    Returns:
        (N, 5) float64 in the order of :data:`EFP_GRAPHS`.
    """
    particles = np.asarray(particles, dtype=np.float64)
    if particles.ndim != 3 or particles.shape[2] < 3:
        raise ValueError(f"particles must be (N, P, >=3), got {particles.shape}")
    n_jets, n_particles = particles.shape[:2]
    out = np.empty((n_jets, len(EFP_GRAPHS)))
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n_particles * n_particles))
    for start in range(0, n_jets, chunk):
        stop = min(n_jets, start + chunk)
        z, theta = efp_measure(particles[start:stop], None if mask is None else mask[start:stop],
                               normed=normed, beta=beta)
        out[start:stop] = _five_efps(z, theta)
    return out


def efp_from_edges(edges, z: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Any EFP by direct ``np.einsum`` over its multigraph (reference implementation).

    edges: sequence of (k, l) vertex pairs (vertices 0..n-1, all used); z (N, P);
    θ (N, P, P) -> (N,).
    """
    vertices = sorted({v for edge in edges for v in edge})
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
