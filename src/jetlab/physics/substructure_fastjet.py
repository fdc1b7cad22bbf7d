"""The FastJet half of the reference substructure code (:mod:`jetlab.physics.substructure`):
FastJet itself, loaded quietly once; N-subjettiness with exclusive-kT axes; soft drop,
trimming and pruning on the Cambridge/Aachen reclustering. The definitions and papers are in
the docstring of :mod:`jetlab.physics.substructure`; :mod:`jetlab.physics.substructure_fast`
re-implements the same steps in compiled code and is checked against these.

Tensor shapes: ``p4`` is (n, 4) = (px, py, pz, E) in GeV, float64.
"""

from __future__ import annotations

import math

import numpy as np

from jetlab.errors import JetlabError
from jetlab.physics.constituents import JET_RADIUS, _as_p4, _mass_of, rapidity_phi
from jetlab.physics.kinematics import delta_phi

__all__ = ["import_fastjet", "kt_axes", "nsubjettiness", "prune", "soft_drop", "trim"]


def _fastjet():
    """The fastjet module, imported once, banner silenced, shared definitions built."""
    global _FJ
    if _FJ is None:
        import fastjet

        swig = getattr(fastjet, "_swig", None)
        if swig is not None and hasattr(swig.ClusterSequence, "set_fastjet_banner_stream"):
            swig.ClusterSequence.set_fastjet_banner_stream(None)  # null stream: no banner
        big_r = float(getattr(fastjet.JetDefinition, "max_allowable_R", 1000.0))
        _FJ = {
            "module": fastjet,
            "ca": fastjet.JetDefinition(fastjet.cambridge_algorithm, big_r),
            "kt": fastjet.JetDefinition(fastjet.kt_algorithm, big_r),
        }
    return _FJ


_FJ = None


def import_fastjet():
    """The ``fastjet`` module with its start-up banner switched off.

    FastJet prints its banner on the first clustering of a process; code that clusters
    before calling :func:`jet_substructure` should import fastjet through this.
    """
    return _fastjet()["module"]


def _pseudojets(p4: np.ndarray, indexed: bool = True) -> list:
    """PseudoJets of the rows of ``p4``; ``indexed``: user_index = row (survives reclustering)."""
    fastjet = _fastjet()["module"]
    jets = [fastjet.PseudoJet(*row) for row in p4.tolist()]
    if indexed:
        for index, jet in enumerate(jets):
            jet.set_user_index(index)
    return jets


def _cluster_single_jet(pseudojets: list, algorithm: str):
    """Cluster all ``pseudojets`` with C/A or kT at R = 1000; returns (sequence, hardest jet)."""
    fj = _fastjet()
    sequence = fj["module"].ClusterSequence(pseudojets, fj[algorithm])
    jets = sequence.inclusive_jets()
    # with R = 1000 all physical particles end in one jet; zero-pT inputs (rapidity 1e5)
    # could form a second one, which then carries no pT and is ignored
    hardest = max(jets, key=lambda jet: jet.perp2())
    return sequence, hardest


def _constituent_indices(jet) -> np.ndarray:
    """Sorted input rows (user_index, see :func:`_pseudojets`) of ``jet``'s constituents."""
    return np.sort(np.fromiter((c.user_index() for c in jet.constituents()), dtype=np.intp))


def _momentum(jet) -> np.ndarray:
    return np.array([jet.px(), jet.py(), jet.pz(), jet.E()])


# --------------------------------------------------------------------------- N-subjettiness

def kt_axes(p4: np.ndarray, n_axes: int) -> np.ndarray:
    """(n_axes, 4) momenta of the exclusive kT subjets (``exclusive_jets(n_axes)``, E-scheme).

    Raises :class:`JetlabError` if there are fewer constituents than axes.
    """
    p4 = _as_p4(p4)
    if n_axes < 1 or n_axes > len(p4):
        raise JetlabError(f"cannot find {n_axes} kT axes among {len(p4)} constituents")
    sequence, _ = _cluster_single_jet(_pseudojets(p4), "kt")
    return np.array([_momentum(jet) for jet in sequence.exclusive_jets(int(n_axes))])


def _tau_from_axes(pt, rapidity, phi, axes_rapidity, axes_phi, beta, r0) -> float:
    total = pt.sum()
    if total <= 0:
        return 0.0
    dy = rapidity[:, None] - axes_rapidity[None, :]
    dphi = delta_phi(phi[:, None], axes_phi[None, :])
    min_dr2 = np.min(dy * dy + dphi * dphi, axis=1)
    distance = min_dr2 if beta == 2 else min_dr2 ** (0.5 * beta)
    return float(np.dot(pt, distance) / (total * r0**beta))


def nsubjettiness(
    p4: np.ndarray, n_axes: int, beta: float, r0: float = JET_RADIUS, axes: np.ndarray | None = None
) -> float:
    """Normalised N-subjettiness ``tau_N^(beta) = sum_i pT_i min_a dR_ia^beta / (sum_i pT_i R0^beta)``.

    ``p4``: (n, 4) constituents; ``axes``: (N, 4) axis momenta, or None for the exclusive kT
    axes (:func:`kt_axes`), in which case tau_N = 0 when n <= N.
    """
    p4 = _as_p4(p4)
    if axes is None:
        if len(p4) <= n_axes:
            return 0.0
        axes = kt_axes(p4, n_axes)
    rapidity, phi = rapidity_phi(p4)
    axes_rapidity, axes_phi = rapidity_phi(np.asarray(axes, dtype=np.float64))
    pt = np.hypot(p4[:, 0], p4[:, 1])
    return _tau_from_axes(pt, rapidity, phi, axes_rapidity, axes_phi, beta, r0)


def _nsubjettiness_set(pseudojets, pt, rapidity, phi, r0) -> np.ndarray:
    """(3, 2) array tau_N^(beta) for N = 1, 2, 3 (rows) and beta = 1, 2 (columns); kT axes."""
    taus = np.zeros((3, 2))
    n = len(pseudojets)
    total = pt.sum()
    if n < 2 or total <= 0:
        return taus
    sequence, _ = _cluster_single_jet(pseudojets, "kt")
    n_max = min(3, n - 1)
    axes = [jet for n_axes in range(1, n_max + 1) for jet in sequence.exclusive_jets(n_axes)]
    axes_rapidity = np.array([jet.rap() for jet in axes])
    axes_phi = np.array([jet.phi() for jet in axes])
    dy = rapidity[:, None] - axes_rapidity[None, :]
    dphi = delta_phi(phi[:, None], axes_phi[None, :])
    dr2 = dy * dy + dphi * dphi                                 # (n, 1 + 2 + 3)
    starts = np.array([0, 1, 3])[:n_max]
    min_dr2 = np.minimum.reduceat(dr2, starts, axis=1)          # (n, n_max)
    taus[:n_max, 0] = pt @ np.sqrt(min_dr2) / (total * r0)
    taus[:n_max, 1] = pt @ min_dr2 / (total * r0**2)
    return taus


# --------------------------------------------------------------------------- grooming

def _soft_drop_walk(jet, betas: tuple[float, ...], z_cut: float, r0: float) -> list[tuple]:
    """Soft drop of ``jet`` (a PseudoJet of a C/A sequence) for several beta in one walk.

    All beta follow the same primary declustering chain (the harder branch), so the
    chain is walked once, until every beta has passed or a single particle is left.
    Returns per beta ``(groomed PseudoJet, [softer branches dropped before it])``.
    """
    fastjet = _fastjet()["module"]
    results = [None] * len(betas)
    dropped = []
    current = jet
    while True:
        pending = [index for index, result in enumerate(results) if result is None]
        if not pending:
            return results
        harder, softer = fastjet.PseudoJet(), fastjet.PseudoJet()
        if not current.has_parents(harder, softer):    # a single particle: keep it
            for index in pending:
                results[index] = (current, list(dropped))
            return results
        pt_a, pt_b = harder.perp(), softer.perp()
        if pt_b > pt_a:
            harder, softer, pt_a, pt_b = softer, harder, pt_b, pt_a
        if pt_a + pt_b > 0:
            z = pt_b / (pt_a + pt_b)
            delta_r = math.sqrt(harder.squared_distance(softer))
            for index in pending:
                beta = betas[index]
                if beta == 0:
                    threshold = z_cut
                elif delta_r > 0:
                    threshold = z_cut * (delta_r / r0) ** beta
                else:                                   # collinear: 0 (beta > 0) or inf (beta < 0)
                    threshold = 0.0 if beta > 0 else math.inf
                if z > threshold:
                    results[index] = (current, list(dropped))
        dropped.append(softer)
        current = harder


def soft_drop(p4: np.ndarray, beta: float = 0.0, z_cut: float = 0.1, r0: float = JET_RADIUS) -> np.ndarray:
    """Indices (sorted) of the constituents kept by soft drop on the C/A reclustered jet.

    Keep the current C/A branching (j1, j2) if ``min(pT1, pT2) / (pT1 + pT2) >
    z_cut (Delta R_12 / r0)^beta``, otherwise drop the softer branch and continue with the
    harder; beta = 0 is mMDT. A single remaining particle is returned (grooming mode).
    """
    p4 = _as_p4(p4)
    sequence, jet = _cluster_single_jet(_pseudojets(p4), "ca")  # sequence must outlive jet
    groomed, _ = _soft_drop_walk(jet, (beta,), z_cut, r0)[0]
    return _constituent_indices(groomed)


def _trimmer(r_sub: float, pt_fraction: float):
    fastjet = _fastjet()["module"]
    return fastjet.Filter(
        fastjet.JetDefinition(fastjet.kt_algorithm, r_sub), fastjet.SelectorPtFractionMin(pt_fraction)
    )


def _pruner(z_cut: float, r_cut_factor: float):
    fastjet = _fastjet()["module"]
    return fastjet.Pruner(fastjet.cambridge_algorithm, z_cut, r_cut_factor)


def trim(p4: np.ndarray, r_sub: float = 0.2, pt_fraction: float = 0.03) -> np.ndarray:
    """Indices of the constituents in the kT (R = ``r_sub``) subjets with pT > ``pt_fraction`` pT_jet."""
    p4 = _as_p4(p4)
    sequence, jet = _cluster_single_jet(_pseudojets(p4), "ca")  # sequence must outlive jet
    return _constituent_indices(_trimmer(r_sub, pt_fraction)(jet))


def prune(p4: np.ndarray, z_cut: float = 0.1, r_cut_factor: float = 0.5) -> np.ndarray:
    """Indices of the constituents kept by C/A pruning (z_cut, R_cut = r_cut_factor * 2 m / pT)."""
    p4 = _as_p4(p4)
    sequence, jet = _cluster_single_jet(_pseudojets(p4), "ca")  # sequence must outlive jet
    return _constituent_indices(_pruner(z_cut, r_cut_factor)(jet))


_GROOMERS: dict = {}


def _default_groomers():
    if not _GROOMERS:
        _GROOMERS["trim"] = _trimmer(0.2, 0.03)
        _GROOMERS["prune"] = _pruner(0.1, 0.5)
    return _GROOMERS


def _jet_mass(jet) -> float:
    return _mass_of(_momentum(jet))
