"""Jet substructure observables: the 53 jet-level columns of the hls4ml jet layout.

The hls4ml LHC jet data set (Coleman et al. 2018, arXiv:1709.08705; Duarte et al. 2018,
arXiv:1804.06913) stores, per anti-kT R = 0.8 jet, N-subjettiness ratios, energy
correlation function ratios, groomed masses and multiplicity, for the whole jet and for
its mMDT-groomed constituents. :func:`jet_substructure` recomputes them from one jet's
constituents ``p4`` (n, 4) = (px, py, pz, E), n >= 1, and returns a float32 row aligned
with :data:`jetlab.io.layout.JET_FEATURES` (59 columns; ``j_ptfrac`` and the label
columns ``j_g .. j_undef`` are left 0 for the caller).

Conventions (those of FastJet and fastjet-contrib, the tools the published set was made
with). Angles are rapidity-azimuth distances, ``Delta R_ij^2 = (y_i - y_j)^2 + dphi_ij^2``
with FastJet's rapidity (:func:`rapidity_phi`). ``z_i = pT_i / sum_k pT_k`` (the scalar
sum, i.e. fjcontrib's ECF(1)); ``R0 = 0.8`` is the jet radius.

Kinematics (E-scheme sum ``P = sum_i p_i``)
    ``j_pt = |P_T|``, ``j_eta`` = pseudorapidity of P, ``j_mass = sqrt(max(P.P, 0))``,
    ``j_multiplicity = n``.

N-subjettiness (Thaler, Van Tilburg 2011, arXiv:1011.2268; fjcontrib Nsubjettiness with
``KT_Axes`` and ``NormalizedMeasure(beta, R0)``)
    ``tau_N^(beta) = sum_i pT_i min_a Delta R_{i,a}^beta / (sum_i pT_i R0^beta)`` with the
    N axes = exclusive kT jets of the constituents (``exclusive_jets(N)``, E-scheme,
    R = 1000), N = 1, 2, 3, beta = 1, 2; ``tau32 = tau3 / tau2``. If n <= N every particle
    is its own axis and tau_N = 0.

Energy correlation functions (Larkoski, Salam, Thaler 2013, arXiv:1305.0007; generalized
ECFs: Moult, Necib, Thaler 2016, arXiv:1609.07483; fjcontrib EnergyCorrelator 1.3)
    ``e2^(b) = sum_{i<j} z_i z_j R_ij^b``,
    ``e3^(b) = sum_{i<j<k} z_i z_j z_k (R_ij R_ik R_jk)^b``,
    ``1e3^(b) = sum_{i<j<k} z_i z_j z_k min(R_ij, R_ik, R_jk)^b``,
    ``2e3^(b) = sum_{i<j<k} z_i z_j z_k (product of the two smallest of R_ij, R_ik, R_jk)^b``.
    Observables (fjcontrib class in brackets):
    ``c1_b = e2^(b)`` (EnergyCorrelatorC1, b = 0, 1, 2; ``R^0 = 1`` so
    ``c1_b0 = sum_{i<j} z_i z_j``), ``c2_b = e3^(b) / e2^(b)^2`` (C2), ``d2_b = e3^(b) /
    e2^(b)^3`` (D2), ``d2_a1_b = e3^(1) / (e2^(b))^(3/b)`` (EnergyCorrelatorGeneralizedD2
    with alpha = 1, so ``d2_a1_b1 == d2_b1`` by definition), ``m2_b = 1e3^(b) / e2^(b)``
    (M2), ``n2_b = 2e3^(b) / e2^(b)^2`` (N2). All exact (no approximation).

Grooming (on the Cambridge/Aachen reclustering of the constituents, R = 1000)
    soft drop (Larkoski, Marzani, Soyez, Thaler 2014, arXiv:1402.2657; fjcontrib SoftDrop,
    grooming mode, scalar_z symmetry, larger-pT recursion): undo the last C/A merging
    into j1, j2; stop if ``min(pT1, pT2) / (pT1 + pT2) > z_cut (Delta R_12 / R0)^beta``,
    else follow the harder branch; a single particle is returned as is.
    mMDT = soft drop with beta = 0, z_cut = 0.1 (``j_mass_mmdt``); ``j_mass_sdb2``:
    beta = 2, ``j_mass_sdm1``: beta = -1, both z_cut = 0.1, R0 = 0.8 (the value
    fastjet's python soft-drop interface uses; fjcontrib's C++ default is R0 = 1).
    Trimming (Krohn, Thaler, Wang 2010): ``fastjet.Filter`` keeping the kT R_sub = 0.2
    subjets with pT > 0.03 pT_jet. Pruning (Ellis, Vermilion, Walsh 2009):
    ``fastjet.Pruner(cambridge_algorithm, zcut=0.1, Rcut_factor=0.5)``.
    The ``*_mmdt`` columns are the observables above evaluated on the mMDT-groomed
    constituents (their own z_i, sums and axes).

``j_zlogz = sum_i z_i log z_i`` (terms with z_i = 0 count 0).

Degenerate jets: any ratio whose denominator is 0 is defined as 0 (e.g. a one-particle
jet has e2 = 0, so c2 = d2 = m2 = n2 = 0; a two-particle jet has e3 = 1e3 = 2e3 = 0); a
correlator of N points over fewer than N particles is 0; tau_N = 0 for n <= N and
tau32 = 0 when tau2 = 0. The result is always finite (a last clamp maps anything
outside the float32 range to +-float32 max).

Speed: :func:`jet_substructure` runs the compiled path of
:mod:`jetlab.physics.substructure_fast` (numba: FastJet's clustering, soft drop, trimming,
pruning and a float64 triple pass re-implemented; ~0.3 ms for a 100-particle jet) for jets of
>= 2 constituents with pT > 0. :func:`jet_substructure_reference`, the numpy + FastJet
code (:mod:`jetlab.physics.substructure_fastjet` for clustering, N-subjettiness and grooming,
:mod:`jetlab.physics.energy_correlators` for the correlators, on the constituent kinematics of
:mod:`jetlab.physics.constituents`), is the oracle and handles every other jet. There all 3-point functions come
from one pass over the C(n, 3) triples, vectorised in float32 chunks (worst deviation from
float64 1e-6 relative; the two paths agree to 5e-7 on Pythia jets); with triples
enumerated (k, j, i), i < j < k, and the mMDT-groomed constituents first, the groomed sums
are partial sums of the same pass. :func:`energy_correlation` is the float64 reference
(``e3`` there via ``tr((Z A)^3) / 6``, ``A_ij = R_ij^b`` with zero diagonal, ``Z = diag(z)``).
"""


from __future__ import annotations

import numpy as np

from jetlab.io.layout import JET_FEATURES, LABEL_COLUMNS
from jetlab.physics.constituents import (
    JET_RADIUS,
    _as_p4,
    _mass_of,
    _pt_eta,
    invariant_mass,
    pairwise_delta_r,
    rapidity_phi,
    zlogz,
)
from jetlab.physics.energy_correlators import (
    _SUM_KEYS,
    _condensed_delta_r,
    _correlator_sums,
    _observables_from_sums,
    _ratio,
    energy_correlation,
    energy_correlation_observables,
)
from jetlab.physics.substructure_fastjet import (
    _cluster_single_jet,
    _default_groomers,
    _jet_mass,
    _nsubjettiness_set,
    _pseudojets,
    _soft_drop_walk,
    import_fastjet,
    kt_axes,
    nsubjettiness,
    prune,
    soft_drop,
    trim,
)

__all__ = [
    "JET_RADIUS",
    "SUBSTRUCTURE_FEATURES",
    "energy_correlation",
    "energy_correlation_observables",
    "import_fastjet",
    "invariant_mass",
    "jet_substructure",
    "jet_substructure_reference",
    "kt_axes",
    "nsubjettiness",
    "pairwise_delta_r",
    "prune",
    "rapidity_phi",
    "soft_drop",
    "trim",
    "zlogz",
]


#: the columns of :data:`JET_FEATURES` that :func:`jet_substructure` fills
SUBSTRUCTURE_FEATURES: tuple[str, ...] = tuple(
    name for name in JET_FEATURES[: len(JET_FEATURES) + LABEL_COLUMNS.start] if name != "j_ptfrac"
)

_COLUMN = {name: i for i, name in enumerate(JET_FEATURES)}
_FLOAT32_MAX = float(np.finfo(np.float32).max)


# --------------------------------------------------------------------------- everything

def jet_substructure(p4: np.ndarray, *, compiled: bool = True) -> np.ndarray:
    """(59,) float32 row of :data:`JET_FEATURES` for one jet's (n, 4) constituents (px, py, pz, E).

    Fills :data:`SUBSTRUCTURE_FEATURES`; ``j_ptfrac`` and the label columns stay 0.
    Definitions: module docstring. Jets of >= 2 constituents with pT > 0 go through the
    compiled path (:mod:`jetlab.physics.substructure_fast`); others, or ``compiled=False``,
    through :func:`jet_substructure_reference` (numpy + FastJet), the test oracle.
    """
    from jetlab.physics.substructure_fast import fast_path_applies, substructure_values  # lazy: start-up (numba)

    p4 = _as_p4(p4)
    if not (compiled and fast_path_applies(p4)):
        return jet_substructure_reference(p4)
    row, put = _new_row()
    _put_kinematics(put, p4)
    values = substructure_values(p4)
    for name, value in zip(("mmdt", "sdb2", "sdm1", "trim", "prun"), values["masses"]):
        put(f"j_mass_{name}", value)
    _put_taus(put, values["taus"][:3], values["taus"][3:])
    full_sums, groomed_sums = (dict(zip(_SUM_KEYS, sums)) for sums in values["sums"])
    _put_correlators(put, full_sums, groomed_sums)
    return _finish(row)


def _new_row():
    row = np.zeros(len(JET_FEATURES), dtype=np.float64)

    def put(name: str, value: float) -> None:
        row[_COLUMN[name]] = value

    return row, put


def _put_kinematics(put, p4: np.ndarray) -> None:
    total = p4.sum(axis=0)
    jet_pt, jet_eta = _pt_eta(total)
    put("j_pt", jet_pt)
    put("j_eta", jet_eta)
    put("j_mass", _mass_of(total))
    put("j_multiplicity", len(p4))
    put("j_zlogz", zlogz(np.hypot(p4[:, 0], p4[:, 1])))


def _put_taus(put, taus_full: np.ndarray, taus_groomed: np.ndarray) -> None:
    """tau_N^(beta) arrays (3, 2): rows N = 1, 2, 3, columns beta = 1, 2."""
    for suffix, taus in (("", taus_full), ("_mmdt", taus_groomed)):
        for column, beta in enumerate((1, 2)):
            for n_axes in (1, 2, 3):
                put(f"j_tau{n_axes}_b{beta}{suffix}", taus[n_axes - 1, column])
            put(f"j_tau32_b{beta}{suffix}", _ratio(taus[2, column], taus[1, column]))


def _put_correlators(put, full_sums: dict, groomed_sums: dict) -> None:
    for suffix, sums in (("", full_sums), ("_mmdt", groomed_sums)):
        for name, value in _observables_from_sums(sums).items():
            put(f"j_{name}{suffix}", value)


def _finish(row: np.ndarray) -> np.ndarray:
    return np.clip(np.nan_to_num(row), -_FLOAT32_MAX, _FLOAT32_MAX).astype(np.float32)


def jet_substructure_reference(p4: np.ndarray) -> np.ndarray:
    """:func:`jet_substructure` in numpy + FastJet's Python bindings (any jet; the oracle)."""
    p4 = _as_p4(p4)
    n = len(p4)
    row, put = _new_row()
    _put_kinematics(put, p4)
    jet_mass = row[_COLUMN["j_mass"]]
    pt = np.hypot(p4[:, 0], p4[:, 1])
    pseudojets = _pseudojets(p4, indexed=False)
    if n >= 2:
        ca_sequence, ca_jet = _cluster_single_jet(pseudojets, "ca")  # must outlive ca_jet
        (mmdt_jet, mmdt_dropped), (sdb2_jet, _), (sdm1_jet, _) = _soft_drop_walk(
            ca_jet, (0.0, 2.0, -1.0), 0.1, JET_RADIUS
        )
        # the groomed set is everything but the (usually few, soft) dropped branches; the
        # history index of an input particle is its position in the input (FastJet)
        removed = [c.cluster_hist_index() for branch in mmdt_dropped for c in branch.constituents()]
        keep = np.ones(n, dtype=bool)
        keep[removed] = False
        groomed = np.flatnonzero(keep)
        put("j_mass_mmdt", _jet_mass(mmdt_jet))
        put("j_mass_sdb2", _jet_mass(sdb2_jet))
        put("j_mass_sdm1", _jet_mass(sdm1_jet))
        groomers = _default_groomers()
        put("j_mass_trim", _jet_mass(groomers["trim"](ca_jet)))
        put("j_mass_prun", _jet_mass(groomers["prune"](ca_jet)))
    else:
        groomed = np.arange(1)
        for name in ("j_mass_mmdt", "j_mass_sdb2", "j_mass_sdm1", "j_mass_trim", "j_mass_prun"):
            put(name, jet_mass)

    # groomed constituents first: the groomed sets of pairs/triples are prefixes
    rest = np.ones(n, dtype=bool)
    rest[groomed] = False
    order = np.concatenate([groomed, np.flatnonzero(rest)]) if len(groomed) < n else np.arange(n)
    pt_ordered = pt[order]
    rapidity_unordered, phi_unordered = rapidity_phi(p4)
    rapidity, phi = rapidity_unordered[order], phi_unordered[order]
    n_groomed = len(groomed)

    taus_full = _nsubjettiness_set(pseudojets, pt, rapidity_unordered, phi_unordered, JET_RADIUS)
    if n_groomed == n:
        taus_groomed = taus_full
    else:
        subset = [pseudojets[i] for i in groomed]
        taus_groomed = _nsubjettiness_set(subset, pt_ordered[:n_groomed], rapidity[:n_groomed], phi[:n_groomed], JET_RADIUS)
    _put_taus(put, taus_full, taus_groomed)

    delta_r = _condensed_delta_r(rapidity, phi)
    _put_correlators(put, *_correlator_sums(pt_ordered, delta_r, (n, n_groomed)))
    return _finish(row)
