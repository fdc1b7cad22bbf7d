"""Per-particle features, jet images and the ``jets`` row of the hls4ml layout.

Everything here works on constituents given as four-momenta ``p4`` of shape (n, 4) =
(px, py, pz, E) in GeV: one jet's, or many jets' one after the other with their boundaries
``offsets`` (N + 1,), so that a block of jets costs one pass of numpy calls
(:func:`many_jet_arrays`; per-jet numpy calls on ~100 particles cost more than their
arithmetic). It is shared by the Pythia generator (:mod:`jetlab.data.generate`) and by
``jetlab fastsim sample`` (generated jets in relative coordinates are turned back into
four-momenta first, see :func:`hls4ml_arrays_from_relative`).

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
    "dense_images",
    "hls4ml_arrays_from_relative",
    "jet_arrays",
    "jet_image",
    "jet_row",
    "many_jet_arrays",
    "particle_features",
    "sparse_jet_images",
]

_J = {name: i for i, name in enumerate(JET_FEATURES)}


def _jet_index(offsets: np.ndarray) -> np.ndarray:
    """The jet of each constituent, (K,), from the jet boundaries ``offsets`` (N + 1,)."""
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


def constituent_features(p4: np.ndarray, offsets: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The 16 :data:`PARTICLE_FEATURES` of every constituent, unsorted: name -> (K,) float64.

    ``p4`` (K, 4): the constituents of one jet, or with ``offsets`` (N + 1,) those of N jets
    one after the other (jet ``j`` = rows ``offsets[j]:offsets[j + 1]``, each jet non-empty):
    all jets in one pass of numpy calls, the way the generator calls it per block of jets.
    """
    p4 = np.asarray(p4, dtype=np.float64)
    offsets = np.array([0, len(p4)]) if offsets is None else np.asarray(offsets, dtype=np.int64)
    starts, jet_of = offsets[:-1], _jet_index(offsets)
    px, py, pz, e = p4.T
    jet = np.add.reduceat(p4, starts, axis=0)                                  # (N, 4)
    pt, eta, phi = pt_eta_phi(p4)
    jet_pt, jet_eta, jet_phi = pt_eta_phi(jet)
    etarel, phirel = eta - jet_eta[jet_of], wrap_phi(phi - jet_phi[jet_of])
    etarot, phirot = _rotate_to_principal_axis(etarel, phirel, pt, starts, jet_of)
    pabs = np.sqrt(px**2 + py**2 + pz**2)
    safe_p = np.where(pabs > 0, pabs, 1.0)
    jet3 = jet[jet_of, :3]
    return {
        "px": px, "py": py, "pz": pz, "e": e,
        "erel": e / jet[jet_of, 3],
        "pt": pt,
        "ptrel": pt / jet_pt[jet_of],
        "eta": eta,
        "etarel": etarel,
        "etarot": etarot,
        "phi": phi,
        "phirel": phirel,
        "phirot": phirot,
        "deltaR": np.hypot(etarel, phirel),
        "costheta": pz / safe_p,
        "costhetarel": np.einsum("ij,ij->i", p4[:, :3], jet3) / (safe_p * np.linalg.norm(jet3, axis=1)),
    }


def particle_features(p4: np.ndarray, n_particles: int, columns: dict[str, np.ndarray] | None = None,
                      offsets: np.ndarray | None = None) -> np.ndarray:
    """The 16 :data:`PARTICLE_FEATURES` of the ``n_particles`` highest-pT constituents.

    Args:
        p4: (px, py, pz, E) of *all* constituents of the jet (of the jets).
        n_particles: rows per jet of the output; fewer constituents are zero-padded, more are cut.
        columns: :func:`constituent_features` of ``p4``, when the caller has them already.
        offsets: jet boundaries in ``p4`` for N jets (:func:`constituent_features`).

    Returns:
        float32 features sorted by decreasing pT (equal pT: in input order).

    Shapes:
        - p4: ``(constituents, 4)``
        - offsets: ``(jets + 1,)``
        - returns: ``(n_particles, 16)`` for one jet, ``(jets, n_particles, 16)`` with ``offsets``
    """
    one_jet = offsets is None
    offsets = np.array([0, len(p4)]) if one_jet else np.asarray(offsets, dtype=np.int64)
    columns = constituent_features(p4, offsets) if columns is None else columns
    jet_of = _jet_index(offsets)
    order = np.lexsort((-columns["pt"], jet_of))                            # by jet, then pT, stable
    rank = np.arange(len(order)) - offsets[jet_of[order]]
    kept = order[rank < n_particles]
    out = np.zeros((len(offsets) - 1, n_particles, len(PARTICLE_FEATURES)), dtype=np.float32)
    out[jet_of[kept], rank[rank < n_particles]] = np.stack([columns[name][kept] for name in PARTICLE_FEATURES], axis=1)
    return out[0] if one_jet else out


def _rotate_to_principal_axis(x: np.ndarray, y: np.ndarray, w: np.ndarray, starts: np.ndarray, jet_of: np.ndarray):
    """Rotate each jet's points (x, y) so its w-weighted principal axis lies along +x
    (jets of < 2 points or no weight are left as they are); ``starts``/``jet_of`` as in
    :func:`constituent_features`."""
    def per_jet_sum(values):
        return np.add.reduceat(values, starts)

    wsum = per_jet_sum(w)
    rotate = (np.diff(np.append(starts, len(x))) >= 2) & (wsum > 0)
    safe = np.where(rotate, wsum, 1.0)
    cxx, cyy, cxy = (per_jet_sum(w * a * b) / safe for a, b in ((x, x), (y, y), (x, y)))
    angle = np.where(rotate, 0.5 * np.arctan2(2 * cxy, cxx - cyy), 0.0)
    c, s = np.cos(angle)[jet_of], np.sin(angle)[jet_of]
    xr, yr = c * x + s * y, -s * x + c * y
    sign = np.where(rotate & (per_jet_sum(w * xr**3) < 0), -1.0, 1.0)[jet_of]  # axis towards the heavier tail
    return np.where(rotate[jet_of], sign * xr, x), np.where(rotate[jet_of], sign * yr, y)


def jet_image(x: np.ndarray, y: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """(100, 100) float32 pT image over [-0.8, 0.8]^2 in (x, y) = (etarot, phirot); row = x bin."""
    return dense_images(*sparse_jet_images(x, y, pt, np.array([0, len(x)])))[0]


def sparse_jet_images(x: np.ndarray, y: np.ndarray, pt: np.ndarray, offsets: np.ndarray):
    """The images of :func:`jet_image` for N jets at once, as their non-zero pixels:
    (count (N,) int32, pixel (K',) int16 = row * 100 + column, in order per jet, value (K',) float32).
    Each pixel sums the pT of its points in input order (float64), as a dense histogram would."""
    ix, iy, inside = image_pixel_index(x, y)
    key = (_jet_index(offsets) * IMAGE_PIXELS + ix) * IMAGE_PIXELS + iy
    keys, where = np.unique(key[inside], return_inverse=True)
    sums = np.bincount(where, weights=pt[inside], minlength=len(keys))
    keys, sums = keys[sums != 0], sums[sums != 0]
    pixels_per_image = IMAGE_PIXELS * IMAGE_PIXELS
    count = np.bincount(keys // pixels_per_image, minlength=len(offsets) - 1).astype(np.int32)
    return count, (keys % pixels_per_image).astype(np.int16), sums.astype(np.float32)


def dense_images(count: np.ndarray, pixel: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Images given as their non-zero pixels (:func:`sparse_jet_images`; how the generator's
    blocks travel between processes and sit on disk) -> (N, 100, 100) float32."""
    images = np.zeros((len(count), IMAGE_PIXELS * IMAGE_PIXELS), dtype=np.float32)
    images[np.repeat(np.arange(len(count)), count), pixel.astype(np.int64)] = value
    return images.reshape(len(count), IMAGE_PIXELS, IMAGE_PIXELS)


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
    constituents, rows, images = many_jet_arrays([p4], n_particles, label=label, truth_pts=[truth_pt])
    return constituents[0], rows[0], dense_images(*images)[0]


def many_jet_arrays(jets: list[np.ndarray], n_particles: int, *, label: int | None, truth_pts=None):
    """:func:`jet_arrays` of N jets (each (n_i, 4), n_i >= 1) in one pass of numpy calls per
    array (the substructure stays one compiled call per jet): (constituents (N, P, 16)
    float32, jets rows (N, 59) float32, images as :func:`sparse_jet_images`)."""
    p4 = np.concatenate(jets).astype(np.float64, copy=False)
    offsets = np.concatenate([[0], np.cumsum([len(j) for j in jets])])
    columns = constituent_features(p4, offsets)
    images = sparse_jet_images(columns["etarot"], columns["phirot"], columns["pt"], offsets)
    truth_pts = truth_pts if truth_pts is not None else [None] * len(jets)
    rows = np.stack([jet_row(jet, label=label, truth_pt=t) for jet, t in zip(jets, truth_pts)])
    return particle_features(p4, n_particles, columns, offsets), rows, images


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
    filled = np.flatnonzero(mask.any(axis=1))
    if len(filled):
        p4 = [four_momenta_from_relative(etarel[i, mask[i]], phirel[i, mask[i]], ptrel[i, mask[i]], jet_pt=jet_pt,
                                         jet_eta=jet_eta) for i in filled]
        constituents[filled], jets[filled], sparse = many_jet_arrays(p4, n_out, label=label)
        images[filled] = dense_images(*sparse)
    return constituents, jets, images
