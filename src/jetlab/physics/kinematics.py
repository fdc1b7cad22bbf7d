"""Jet kinematics, written once: azimuth wrapping, ΔR, (pT, η, φ) of momenta, relative
coordinates ↔ four-vectors, the jet mass of a relative point set, each particle's distance to
its nearest neighbour, and jet-image binning.

Conventions (hls4ml LHC jet data, Duarte et al. arXiv:1804.06913; JetNet, Kansal et al.
arXiv:2106.11535):

* ``pT = sqrt(px² + py²)``, ``η = asinh(pz / pT)``, ``φ = atan2(py, px)``;
* relative coordinates of a particle in a jet: ``η_rel = η − η_jet``,
  ``φ_rel = φ − φ_jet`` wrapped to (−π, π], ``pT_rel = pT / pT_jet``;
* a massless particle of relative coordinates has ``p = pT_rel (cos φ_rel, sin φ_rel,
  sinh η_rel)``, ``E = pT_rel cosh η_rel`` in units of the jet pT, so the *relative jet
  mass* ``m / pT_jet = sqrt((Σ E)² − |Σ p|²)`` is invariant under the η shift and φ
  rotation that made the coordinates relative.

Functions marked *numpy or torch* take either and return the same kind (torch keeps the
autograd graph: the VAE's jet-mass loss term calls them on network outputs).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from jetlab.io.layout import IMAGE_EXTENT, IMAGE_PIXELS

__all__ = [
    "RelativeJet",
    "delta_phi",
    "delta_r",
    "four_momenta_from_relative",
    "image_pixel_index",
    "nearest_neighbour_delta_r",
    "pt_eta_phi",
    "relative_jet_kinematics",
    "wrap_phi",
]


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def wrap_phi(phi):
    """Angles wrapped to (−π, π] (*numpy or torch*).

    Args:
        phi: angles in radians.

    Returns:
        The wrapped angles.

    Shapes:
        - phi, returns: any, the same
    """
    lib = _torch() if _is_torch(phi) else np
    return math.pi - lib.remainder(math.pi - phi, 2 * math.pi)


def delta_phi(phi_a, phi_b):
    """``φ_a − φ_b`` wrapped to (−π, π] (*numpy or torch*, broadcasting).

    Args:
        phi_a: first azimuths.
        phi_b: second azimuths.

    Returns:
        The wrapped differences.

    Shapes:
        - phi_a, phi_b: broadcastable
        - returns: their broadcast shape
    """
    return wrap_phi(phi_a - phi_b)


def delta_r(eta_a, phi_a, eta_b, phi_b):
    """``ΔR = sqrt(Δη² + Δφ²)`` with Δφ wrapped (*numpy or torch*, broadcasting).

    Args:
        eta_a: first pseudorapidities (or rapidities).
        phi_a: first azimuths.
        eta_b: second pseudorapidities.
        phi_b: second azimuths.

    Returns:
        ΔR.

    Shapes:
        - eta_a, phi_a, eta_b, phi_b: broadcastable
        - returns: their broadcast shape
    """
    lib = _torch() if _is_torch(eta_a) else np
    return lib.hypot(eta_a - eta_b, delta_phi(phi_a, phi_b))


def nearest_neighbour_delta_r(particles, mask=None, chunk: int = 512) -> np.ndarray:
    """ΔR in (η_rel, φ_rel) from every real particle to the nearest other real particle of its jet.

    Real jets hold close pairs (the two photons of a π⁰ → γγ decay open by ΔR ≈ 2m/E, ~0.01 at
    20 GeV); a generator whose particles do not see each other, e.g. an EPiC network that pools
    them into one global vector, spreads its particles evenly and misses them. No JetNet
    metric looks at this scale; a particle-level classifier does.

    Args:
        particles: (η_rel, φ_rel, pT_rel) of the particles (further columns ignored).
        mask: which particles are real (``None``: every row).
        chunk: jets per block of the pairwise distances (memory: chunk × P² floats).

    Returns:
        The nearest-neighbour ΔR of every particle; NaN for padding and for the only real
        particle of a jet.

    Shapes:
        - particles: ``(jets, particles, ≥3)``
        - mask: ``(jets, particles)`` bool
        - returns: ``(jets, particles)``
    """
    particles = np.asarray(particles, dtype=np.float64)
    n_jets, n_particles = particles.shape[:2]
    mask = np.ones((n_jets, n_particles), bool) if mask is None else np.asarray(mask, bool)
    out = np.empty((n_jets, n_particles))
    not_self = ~np.eye(n_particles, dtype=bool)
    for start in range(0, n_jets, chunk):
        eta, phi = particles[start:start + chunk, :, 0], particles[start:start + chunk, :, 1]
        real = mask[start:start + chunk]
        distance = delta_r(eta[:, :, None], phi[:, :, None], eta[:, None, :], phi[:, None, :])
        distance = np.where(real[:, :, None] & real[:, None, :] & not_self, distance, np.inf)
        nearest = distance.min(2)
        out[start:start + chunk] = np.where(real & np.isfinite(nearest), nearest, np.nan)
    return out


def pt_eta_phi(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pT, pseudorapidity and azimuth of momenta; η = 0 where pT = 0.

    Args:
        p: momenta (px, py, pz, ...).

    Returns:
        ``(pt, eta, phi)``.

    Shapes:
        - p: ``(n, ≥3)``
        - pt, eta, phi: ``(n,)``
    """
    pt = np.hypot(p[:, 0], p[:, 1])
    eta = np.arcsinh(np.divide(p[:, 2], pt, out=np.zeros(len(p)), where=pt > 0))
    return pt, eta, np.arctan2(p[:, 1], p[:, 0])


def four_momenta_from_relative(etarel, phirel, ptrel, *, jet_pt: float = 1000.0, jet_eta: float = 0.0) -> np.ndarray:
    """Massless four-momenta (px, py, pz, E) from relative coordinates: pT = ptrel · jet_pt,
    η = etarel + jet_eta, φ = phirel (the jet at φ = 0).

    Args:
        etarel: η_rel of the particles.
        phirel: φ_rel of the particles.
        ptrel: pT_rel of the particles.
        jet_pt: the jet pT.
        jet_eta: the jet η.

    Returns:
        float64 four-momenta.

    Shapes:
        - etarel, phirel, ptrel: ``(...)``, the same
        - returns: ``(..., 4)``
    """
    pt = np.asarray(ptrel, dtype=np.float64) * jet_pt
    eta = np.asarray(etarel, dtype=np.float64) + jet_eta
    phi = np.asarray(phirel, dtype=np.float64)
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)], axis=-1)


class RelativeJet(NamedTuple):
    """Jet-level quantities of relative point sets, each (N,), in units of the jet pT."""

    mass: object      #: relative mass m / pT_jet
    pt: object        #: |Σ p_T| (vector sum) / pT_jet
    pt_sum: object    #: Σ pT_rel (scalar sum)


def relative_jet_kinematics(points, mask=None, columns=(0, 1, 2)) -> RelativeJet:
    """Mass and pT of jets given as massless particles in relative coordinates (*numpy or torch*).

    Padded rows count as zero (also their η, φ, so a padded row of garbage cannot overflow
    ``cosh``). With ``E = Σ pT cosh η``, ``px = Σ pT cos φ``, ``py = Σ pT sin φ``,
    ``pz = Σ pT sinh η``: ``m = sqrt(max(E² − px² − py² − pz², 0))``; in torch ``m²`` is
    clamped at 1e-12 instead, so the gradient of m stays finite.

    Args:
        points: particles with (η_rel, φ_rel, pT_rel) at ``columns``.
        mask: which particles are real (``None``: every row).
        columns: the columns of η_rel, φ_rel and pT_rel.

    Returns:
        :class:`RelativeJet` ``(mass, pt, pt_sum)`` in units of the jet pT.

    Shapes:
        - points: ``(jets, particles, ≥3)``
        - mask: ``(jets, particles)`` bool
        - mass, pt, pt_sum: ``(jets,)``
    """
    torch_input = _is_torch(points)
    lib = _torch() if torch_input else np
    eta, phi, pt = (points[..., c] for c in columns)
    if mask is not None:
        eta, phi, pt = (lib.where(mask, v, lib.zeros_like(v)) for v in (eta, phi, pt))
    energy = (pt * lib.cosh(eta)).sum(-1)
    px = (pt * lib.cos(phi)).sum(-1)
    py = (pt * lib.sin(phi)).sum(-1)
    pz = (pt * lib.sinh(eta)).sum(-1)
    mass2 = energy * energy - px * px - py * py - pz * pz
    pt2 = px * px + py * py
    if torch_input:
        return RelativeJet(mass2.clamp_min(1e-12).sqrt(), pt2.clamp_min(1e-12).sqrt(), pt.sum(-1))
    return RelativeJet(np.sqrt(np.maximum(mass2, 0.0)), np.sqrt(pt2), pt.sum(-1))


def image_pixel_index(x: np.ndarray, y: np.ndarray, *, extent: float = IMAGE_EXTENT,
                      pixels: int = IMAGE_PIXELS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel of each point in a ``pixels × pixels`` image over [−extent, extent)².

    Args:
        x: first coordinates (the row of the image).
        y: second coordinates (the column).
        extent: half the side of the image.
        pixels: pixels per side.

    Returns:
        ``(ix, iy, inside)``: int64 indices (row = x bin) and whether the point is inside the
        image.

    Shapes:
        - x, y: ``(points,)``
        - ix, iy, inside: ``(points,)``
    """
    scale = pixels / (2 * extent)
    ix = np.floor((np.asarray(x) + extent) * scale).astype(np.int64)
    iy = np.floor((np.asarray(y) + extent) * scale).astype(np.int64)
    inside = (ix >= 0) & (ix < pixels) & (iy >= 0) & (iy < pixels)
    return ix, iy, inside


def _torch():
    import torch

    return torch
