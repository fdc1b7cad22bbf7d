"""Kinematics of a jet's constituents in FastJet's conventions, shared by the substructure
code: rapidity and azimuth (:func:`rapidity_phi`, FastJet's ``PseudoJet::_set_rap_phi``), the
(n, n) ΔR matrix, the invariant mass of a sum of momenta and ``sum z log z``.

Tensor shapes: ``p4`` is (n, 4) = (px, py, pz, E) in GeV, float64.
"""

from __future__ import annotations

import math

import numpy as np

from jetlab.errors import JetlabError
from jetlab.physics.kinematics import delta_phi

__all__ = ["JET_RADIUS", "invariant_mass", "pairwise_delta_r", "rapidity_phi", "zlogz"]

#: the anti-kT jet radius of the hls4ml set; also R0 of N-subjettiness and soft drop
JET_RADIUS = 0.8

_MAX_RAP = 1e5  # fastjet's rapidity for zero-pT momenta (PseudoJet::_set_rap_phi)


def _as_p4(p4) -> np.ndarray:
    array = np.asarray(p4, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 4 or array.shape[0] < 1:
        raise JetlabError(f"jet constituents must have shape (n >= 1, 4), got {array.shape}")
    if not np.isfinite(array).all():
        raise JetlabError("jet constituents contain NaN or inf")
    return array


def rapidity_phi(p4: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rapidity ``y = 1/2 ln((E + pz) / (E - pz))`` and azimuth ``phi`` in [0, 2 pi) of momenta.

    Follows FastJet's ``PseudoJet::_set_rap_phi``: ``y = +-1/2 ln((pT^2 + m^2) / (E + |pz|)^2)``
    with ``m^2`` clipped at 0 (stable for massless, collinear momenta); a momentum with
    ``pT = 0`` and ``E = |pz|`` gets ``y = +-(1e5 + |pz|)`` and ``phi = 0``.

    Args:
        p4: four-momenta (px, py, pz, E).

    Returns:
        ``(rapidity, phi)``.

    Shapes:
        - p4: ``(n, 4)``
        - rapidity, phi: ``(n,)``
    """
    p4 = np.asarray(p4, dtype=np.float64).reshape(-1, 4)
    px, py, pz, energy = p4.T
    kt2 = px * px + py * py
    phi = np.where(kt2 > 0, np.arctan2(py, px), 0.0)
    phi = np.where(phi < 0, phi + 2 * math.pi, phi)
    m2 = np.maximum((energy + pz) * (energy - pz) - kt2, 0.0)
    e_plus_abs_pz = energy + np.abs(pz)
    regular = (kt2 + m2 > 0) & (e_plus_abs_pz > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.where(
            regular, -0.5 * np.log((kt2 + m2) / np.where(regular, e_plus_abs_pz, 1.0) ** 2), 0.0
        )
    magnitude = np.where(regular, magnitude, _MAX_RAP + np.abs(pz))
    rapidity = np.where(pz >= 0, magnitude, -magnitude)
    return rapidity, phi


def pairwise_delta_r(rapidity: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """``Delta R_ij = sqrt((y_i - y_j)^2 + dphi_ij^2)``, dphi wrapped.

    Args:
        rapidity: rapidities y of the particles.
        phi: their azimuths.

    Returns:
        The symmetric ΔR matrix.

    Shapes:
        - rapidity, phi: ``(n,)``
        - returns: ``(n, n)``
    """
    dy = rapidity[:, None] - rapidity[None, :]
    dphi = delta_phi(phi[:, None], phi[None, :])
    return np.sqrt(dy * dy + dphi * dphi)


def invariant_mass(p4: np.ndarray) -> float:
    """Mass of the E-scheme sum of momenta: ``sqrt(max(E^2 - |p|^2, 0))`` (0 for n = 0).

    Args:
        p4: four-momenta (px, py, pz, E).

    Returns:
        The invariant mass.

    Shapes:
        - p4: ``(n, 4)``
    """
    total = np.asarray(p4, dtype=np.float64).reshape(-1, 4).sum(axis=0)
    return _mass_of(total)


def _mass_of(total: np.ndarray) -> float:
    px, py, pz, energy = total
    return math.sqrt(max((energy + pz) * (energy - pz) - px * px - py * py, 0.0))


def _pt_eta(total: np.ndarray) -> tuple[float, float]:
    px, py, pz, _ = total
    pt = math.hypot(px, py)
    eta = math.asinh(pz / pt) if pt > 0 else 0.0  # a jet along the beam has no eta: 0
    return pt, eta


def zlogz(pt: np.ndarray) -> float:
    """``sum_i z_i log z_i`` with ``z_i = pT_i / sum_k pT_k`` (0 log 0 = 0; 0 if sum pT = 0).

    Args:
        pt: transverse momenta of the constituents.

    Returns:
        The sum.

    Shapes:
        - pt: ``(n,)``
    """
    pt = np.asarray(pt, dtype=np.float64)
    total = pt.sum()
    if total <= 0:
        return 0.0
    z = pt[pt > 0] / total
    return float(np.dot(z, np.log(z)))
