"""Names and shapes of the on-disk jet layouts jetlab reads and writes.

hls4ml LHC jet layout (Zenodo 3601436 / 3602254 / 3602260), one HDF5 file per <= 10k jets:

==================== ============================ =====================================
key                  shape                        content
==================== ============================ =====================================
jetConstituentList   (N, n_particles, 16) float32 :data:`PARTICLE_FEATURES`, pT-sorted,
                                                  zero-padded
jets                 (N, 59) float32              :data:`JET_FEATURES`; one-hot label in
                                                  columns -6:-1, last column empty
jetImage             (N, 100, 100) float32        pT image, 1.6 x 1.6 in (eta, phi)
                                                  around the jet axis (jetlab: rotated
                                                  so the principal axis is along eta)
jetImageECAL/HCAL    (N, 100, 100) float32        real files only; jetlab neither
                                                  writes nor needs them
jetFeatureNames      (59,) bytes
particleFeatureNames (16,) bytes
==================== ============================ =====================================

JetNet layout: ``particle_features`` (N, 30|150, 4) = (eta_rel, phi_rel, pT_rel, mask),
``jet_features`` (N, 4) = (pT, eta, mass, n_particles).
"""

from __future__ import annotations

__all__ = [
    "CLASS_NAMES",
    "HLF_FEATURES",
    "IMAGE_EXTENT",
    "IMAGE_PIXELS",
    "JET_FEATURES",
    "JETNET_JET_FEATURES",
    "JETNET_PARTICLE_FEATURES",
    "LABEL_COLUMNS",
    "MAX_JETS_PER_FILE",
    "PARTICLE_FEATURES",
    "SUPPORTED_PARTICLES",
    "feature_index",
]

#: the five jet classes, in the order of the one-hot label columns
CLASS_NAMES: tuple[str, ...] = ("g", "q", "w", "z", "t")

SUPPORTED_PARTICLES: tuple[int, ...] = (30, 50, 100, 150)
MAX_JETS_PER_FILE = 10_000

#: the 16 per-particle features of ``jetConstituentList`` (real files prefix them ``j1_``)
PARTICLE_FEATURES: tuple[str, ...] = (
    "px", "py", "pz", "e",
    "erel",          # E / E_jet
    "pt",
    "ptrel",         # pT / pT_jet
    "eta",
    "etarel",        # eta - eta_jet
    "etarot",        # etarel, phirel rotated so the jet's pT-weighted principal axis is along eta
    "phi",
    "phirel",        # phi - phi_jet wrapped to (-pi, pi]
    "phirot",
    "deltaR",        # sqrt(etarel^2 + phirel^2)
    "costheta",      # pz / |p|
    "costhetarel",   # cos of the angle between particle and jet momenta
)

#: the 59 columns of ``jets`` in the published files (``j_`` prefix, as there)
JET_FEATURES: tuple[str, ...] = (
    "j_ptfrac", "j_pt", "j_eta", "j_mass",
    "j_tau1_b1", "j_tau2_b1", "j_tau3_b1", "j_tau1_b2", "j_tau2_b2", "j_tau3_b2",
    "j_tau32_b1", "j_tau32_b2", "j_zlogz",
    "j_c1_b0", "j_c1_b1", "j_c1_b2", "j_c2_b1", "j_c2_b2", "j_d2_b1", "j_d2_b2",
    "j_d2_a1_b1", "j_d2_a1_b2", "j_m2_b1", "j_m2_b2", "j_n2_b1", "j_n2_b2",
    "j_tau1_b1_mmdt", "j_tau2_b1_mmdt", "j_tau3_b1_mmdt", "j_tau1_b2_mmdt", "j_tau2_b2_mmdt", "j_tau3_b2_mmdt",
    "j_tau32_b1_mmdt", "j_tau32_b2_mmdt",
    "j_c1_b0_mmdt", "j_c1_b1_mmdt", "j_c1_b2_mmdt", "j_c2_b1_mmdt", "j_c2_b2_mmdt",
    "j_d2_b1_mmdt", "j_d2_b2_mmdt", "j_d2_a1_b1_mmdt", "j_d2_a1_b2_mmdt",
    "j_m2_b1_mmdt", "j_m2_b2_mmdt", "j_n2_b1_mmdt", "j_n2_b2_mmdt",
    "j_mass_trim", "j_mass_mmdt", "j_mass_prun", "j_mass_sdb2", "j_mass_sdm1",
    "j_multiplicity",
    "j_g", "j_q", "j_w", "j_z", "j_t", "j_undef",
)
assert len(JET_FEATURES) == 59

#: one-hot label columns -6:-1 of ``jets``
LABEL_COLUMNS = slice(-6, -1)

#: the 16 high-level features of the hls4ml benchmark DNN (Duarte et al. 2018)
HLF_FEATURES: tuple[str, ...] = (
    "j_zlogz",
    "j_c1_b0_mmdt", "j_c1_b1_mmdt", "j_c1_b2_mmdt", "j_c2_b1_mmdt", "j_c2_b2_mmdt",
    "j_d2_b1_mmdt", "j_d2_b2_mmdt", "j_d2_a1_b1_mmdt", "j_d2_a1_b2_mmdt",
    "j_m2_b1_mmdt", "j_m2_b2_mmdt", "j_n2_b1_mmdt", "j_n2_b2_mmdt",
    "j_mass_mmdt", "j_multiplicity",
)

IMAGE_PIXELS = 100
#: half-width of the jet image in eta and phi (the image spans 1.6 x 1.6)
IMAGE_EXTENT = 0.8

JETNET_PARTICLE_FEATURES: tuple[str, ...] = ("etarel", "phirel", "ptrel", "mask")
JETNET_JET_FEATURES: tuple[str, ...] = ("pt", "eta", "mass", "n_particles")


def feature_index(names, wanted: str) -> int:
    """Index of feature ``wanted`` in ``names``, accepting bytes and the ``j1_``/``j_`` prefixes."""
    norm = [_normalise(n) for n in names]
    key = _normalise(wanted)
    try:
        return norm.index(key)
    except ValueError:
        raise KeyError(wanted) from None


def _normalise(name) -> str:
    if isinstance(name, bytes):
        name = name.decode()
    name = str(name).strip().lower()
    for prefix in ("j1_", "j_"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name
