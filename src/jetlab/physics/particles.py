"""Per-particle features, jet images and the ``jets`` row of the hls4ml layout.

Everything here works on one jet's constituents given as four-momenta
``p4`` of shape (n, 4) = (px, py, pz, E) in GeV, and is shared by the Pythia generator
(:mod:`jetlab.data.generate`) and by ``jetlab fastsim sample`` (generated jets in
relative coordinates are turned back into four-momenta first, see
:func:`hls4ml_arrays_from_relative`).

Conventions (hls4ml LHC jet dataset, Duarte et al. 2018, Moreno et al. 2019), beside the
basic kinematics of :mod:`jetlab.physics.kinematics`:

* ``etarot, phirot``: (etarel, phirel) rotated about the jet axis so that the
  pT-weighted principal axis of the constituents lies along +eta (and the pT-weighted
  third moment along it is positive, fixing the sign);
* ``deltaR = sqrt(etarel^2 + phirel^2)``, ``costheta = pz / |p|``,
  ``costhetarel = p . P_jet / (|p| |P_jet|)``;
* the jet image: pT of all constituents summed in 100 x 100 pixels over etarot, phirot in
  [-0.8, 0.8] (centred on the jet axis, principal axis along +eta: the usual jet-image
  pre-processing, so that averaged images show the prongs).
"""

from __future__ import annotations

import numpy as np

from jetlab.io.layout import CLASS_NAMES, IMAGE_PIXELS, JET_FEATURES, PARTICLE_FEATURES
from jetlab.physics.kinematics import (
    four_momenta_from_relative,
    image_pixel_index,
    pt_eta_phi,
    wrap_phi,
)

__all__ = [
    "constituent_features",
    "hls4ml_arrays_from_relative",
    "jet_arrays",
    "jet_image",
    "jet_row",
    "particle_features",
]

_J = {name: i for i, name in enumerate(JET_FEATURES)}


def _relative_coordinates(p4: np.ndarray):
    """(pt, eta, phi, etarel, phirel) per constituent, the jet four-momentum (4,) and its pT."""
    jet = p4.sum(axis=0)
    pt, eta, phi = pt_eta_phi(p4)
    jet_pt, jet_eta, jet_phi = (v[0] for v in pt_eta_phi(jet[None]))
    return pt, eta, phi, eta - jet_eta, wrap_phi(phi - jet_phi), jet, jet_pt


def constituent_features(p4: np.ndarray) -> dict[str, np.ndarray]:
    """The 16 :data:`PARTICLE_FEATURES` of every constituent, unsorted: name -> (n,) float64."""
    p4 = np.asarray(p4, dtype=np.float64)
    px, py, pz, e = p4.T
    pt, eta, phi, etarel, phirel, jet, jpt = _relative_coordinates(p4)
    etarot, phirot = _rotate_to_principal_axis(etarel, phirel, pt)
    pabs = np.sqrt(px**2 + py**2 + pz**2)
    safe_p = np.where(pabs > 0, pabs, 1.0)
    return {
        "px": px, "py": py, "pz": pz, "e": e,
        "erel": e / jet[3],
        "pt": pt,
        "ptrel": pt / jpt,
        "eta": eta,
        "etarel": etarel,
        "etarot": etarot,
        "phi": phi,
        "phirel": phirel,
        "phirot": phirot,
        "deltaR": np.hypot(etarel, phirel),
        "costheta": pz / safe_p,
        "costhetarel": (p4[:, :3] @ jet[:3]) / (safe_p * np.linalg.norm(jet[:3])),
    }


def particle_features(p4: np.ndarray, n_particles: int, columns: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The 16 :data:`PARTICLE_FEATURES` of the ``n_particles`` highest-pT constituents.

    Parameters
    ----------
    p4 : (n, 4) array of (px, py, pz, E) of *all* constituents of the jet.
    n_particles : rows of the output; fewer constituents are zero-padded, more are cut.
    columns : :func:`constituent_features` of ``p4``, when the caller has them already.

    Returns
    -------
    (n_particles, 16) float32, sorted by decreasing pT.
    """
    columns = constituent_features(p4) if columns is None else columns
    order = np.argsort(-columns["pt"], kind="stable")
    table = np.stack([columns[name] for name in PARTICLE_FEATURES], axis=1)[order[:n_particles]]
    out = np.zeros((n_particles, len(PARTICLE_FEATURES)), dtype=np.float32)
    out[: len(table)] = table
    return out


def _rotate_to_principal_axis(x: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Rotate points (x, y) so the w-weighted principal axis lies along +x."""
    wsum = w.sum()
    if len(x) < 2 or wsum <= 0:
        return x.copy(), y.copy()
    cxx, cyy, cxy = (w * x * x).sum() / wsum, (w * y * y).sum() / wsum, (w * x * y).sum() / wsum
    angle = 0.5 * np.arctan2(2 * cxy, cxx - cyy)
    c, s = np.cos(angle), np.sin(angle)
    xr, yr = c * x + s * y, -s * x + c * y
    if (w * xr**3).sum() < 0:  # orient the axis towards the heavier tail
        xr, yr = -xr, -yr
    return xr, yr


def jet_image(x: np.ndarray, y: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """(100, 100) float32 pT image over [-0.8, 0.8]^2 in (x, y) = (etarot, phirot); row = x bin."""
    ix, iy, inside = image_pixel_index(x, y)
    flat = np.bincount(ix[inside] * IMAGE_PIXELS + iy[inside], weights=pt[inside], minlength=IMAGE_PIXELS**2)
    return flat.reshape(IMAGE_PIXELS, IMAGE_PIXELS).astype(np.float32)


def jet_row(p4: np.ndarray, *, label: int | None, truth_pt: float | None = None) -> np.ndarray:
    """The 59-column ``jets`` row: substructure features, ``j_ptfrac``, one-hot label.

    ``j_ptfrac`` is jet pT over the pT of the parton/boson/top it was matched to
    (1 when unknown). ``label`` indexes :data:`CLASS_NAMES`; ``None`` leaves the label
    columns zero.
    """
    from jetlab.physics.substructure import jet_substructure

    row = np.asarray(jet_substructure(np.asarray(p4, dtype=np.float64)), dtype=np.float32).copy()
    if truth_pt:
        row[_J["j_ptfrac"]] = row[_J["j_pt"]] / truth_pt
    else:
        row[_J["j_ptfrac"]] = 1.0
    if label is not None:
        row[_J["j_" + CLASS_NAMES[label]]] = 1.0
    return row


def jet_arrays(p4: np.ndarray, n_particles: int, *, label: int | None, truth_pt: float | None = None):
    """All three hls4ml arrays of one jet: (constituents (P, 16), jets row (59,), image (100, 100)).

    The image is drawn in the rotated frame (etarot, phirot) from all constituents, so that
    averaged images show the prongs (as the JEDI-net paper's Fig. 4).
    """
    columns = constituent_features(p4)
    image = jet_image(columns["etarot"], columns["phirot"], columns["pt"])
    return particle_features(p4, n_particles, columns), jet_row(p4, label=label, truth_pt=truth_pt), image


def hls4ml_arrays_from_relative(
    etarel: np.ndarray,
    phirel: np.ndarray,
    ptrel: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    jet_pt: float = 1000.0,
    jet_eta: float = 0.0,
    label: int | None = None,
    n_particles: int | None = None,
):
    """Turn (eta_rel, phi_rel, pT_rel) point sets, shape (N, P) each, into the hls4ml layout.

    Particles are taken massless with the jet at (``jet_eta``, phi = 0) and pT
    ``jet_pt``; masked-out (or pT <= 0) particles are dropped. Returns
    ``(constituents (N, P', 16), jets (N, 59), images (N, 100, 100))`` with
    ``P' = n_particles or P``.
    """
    etarel, phirel, ptrel = (np.asarray(a, dtype=np.float64) for a in (etarel, phirel, ptrel))
    n_jets, n_points = etarel.shape
    if mask is None:
        mask = ptrel > 0
    mask = np.asarray(mask, dtype=bool) & (ptrel > 0)
    n_out = n_particles or n_points
    constituents = np.zeros((n_jets, n_out, len(PARTICLE_FEATURES)), dtype=np.float32)
    jets = np.zeros((n_jets, len(JET_FEATURES)), dtype=np.float32)
    images = np.zeros((n_jets, IMAGE_PIXELS, IMAGE_PIXELS), dtype=np.float32)
    for i in range(n_jets):
        keep = mask[i]
        if not keep.any():
            continue
        p4 = four_momenta_from_relative(etarel[i, keep], phirel[i, keep], ptrel[i, keep], jet_pt=jet_pt, jet_eta=jet_eta)
        constituents[i], jets[i], images[i] = jet_arrays(p4, n_out, label=label)
    return constituents, jets, images
