"""Plots of generated samples next to real ones, for judging a generative model by eye.

Jets are point sets of relative coordinates, the JetNet convention
(Kansal et al., arXiv:2106.11535): per particle ``(eta_rel, phi_rel, pT_rel)`` and a mask,
arrays of shape ``(N, P, 3)`` and ``(N, P)`` bool. From them:

* :func:`plot_jet_images` -- the pT-weighted mean jet image (100 x 100 pixels over
  1.6 x 1.6 in eta_rel-phi_rel, the hls4ml binning) of real and generated jets side by side,
  plus a few single jets of each, on a log colour scale.
* :func:`plot_jet_feature_histograms` -- histograms of the particle features eta_rel,
  phi_rel, pT_rel and of the jet features relative mass ``m/pT_jet``, relative pT
  ``sum pT_rel`` and multiplicity, real (filled) vs generated (line).

Sparse MNIST digits are point sets ``(N, P, 3)`` of (x, y, intensity):
:func:`plot_point_cloud_comparison` draws a grid of real digits above generated ones.

Every function writes one PNG atomically and returns nothing.
"""

from __future__ import annotations

import os

import numpy as np

from jetlab.data.layout import IMAGE_EXTENT, IMAGE_PIXELS
from jetlab.utils.plotting import pyplot, save_png

__all__ = [
    "jet_relative_kinematics",
    "jet_images",
    "plot_jet_images",
    "plot_jet_feature_histograms",
    "plot_point_cloud_comparison",
]

def jet_relative_kinematics(points: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Jet-level features of relative point sets, treating particles as massless.

    ``points`` (N, P, 3) = (eta_rel, phi_rel, pT_rel), ``mask`` (N, P). With
    ``px = pT cos(phi)``, ``py = pT sin(phi)``, ``pz = pT sinh(eta)``, ``E = pT cosh(eta)``
    summed over real particles: ``mass`` = sqrt(E^2 - |p|^2) (the relative mass m/pT_jet of
    JetNet), ``pt`` = sqrt(px^2 + py^2), ``n_particles``. Returns arrays of shape (N,).
    """
    eta, phi, pt = (points[..., i] * mask for i in range(3))
    px = (pt * np.cos(phi)).sum(1)
    py = (pt * np.sin(phi)).sum(1)
    pz = (pt * np.sinh(eta)).sum(1)
    energy = (pt * np.cosh(eta)).sum(1)
    mass2 = energy**2 - px**2 - py**2 - pz**2
    return {
        "mass": np.sqrt(np.clip(mass2, 0.0, None)),
        "pt": np.sqrt(px**2 + py**2),
        "n_particles": mask.sum(1).astype(np.float64),
    }


def jet_images(points: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """pT_rel-weighted images (N, 100, 100) over eta_rel, phi_rel in [-0.8, 0.8] (rows = eta)."""
    edges = np.linspace(-IMAGE_EXTENT, IMAGE_EXTENT, IMAGE_PIXELS + 1)
    n = len(points)
    images = np.zeros((n, IMAGE_PIXELS, IMAGE_PIXELS), dtype=np.float64)
    ieta = np.clip(np.digitize(points[..., 0], edges) - 1, 0, IMAGE_PIXELS - 1)
    iphi = np.clip(np.digitize(points[..., 1], edges) - 1, 0, IMAGE_PIXELS - 1)
    inside = mask & (np.abs(points[..., 0]) < IMAGE_EXTENT) & (np.abs(points[..., 1]) < IMAGE_EXTENT)
    jet_index = np.broadcast_to(np.arange(n)[:, None], mask.shape)
    np.add.at(images, (jet_index[inside], ieta[inside], iphi[inside]), points[..., 2][inside])
    return images


def plot_jet_images(
    real: np.ndarray,
    real_mask: np.ndarray,
    generated: np.ndarray,
    generated_mask: np.ndarray,
    path: str | os.PathLike,
    *,
    title: str = "",
    n_single: int = 3,
) -> None:
    """Mean jet image and ``n_single`` single jets, real (top row) vs generated (bottom row)."""
    from matplotlib.colors import LogNorm

    plt = pyplot()
    rows = [("real", jet_images(real, real_mask)), ("generated", jet_images(generated, generated_mask))]
    cols = 1 + n_single
    fig, axes = plt.subplots(2, cols, figsize=(3.0 * cols, 6.0), squeeze=False)
    extent = (-IMAGE_EXTENT, IMAGE_EXTENT, -IMAGE_EXTENT, IMAGE_EXTENT)
    for row, (name, images) in enumerate(rows):
        panels = [("mean", images.mean(0))] + [(f"jet {i}", images[i]) for i in range(min(n_single, len(images)))]
        for col in range(cols):
            ax = axes[row, col]
            if col >= len(panels):
                ax.axis("off")
                continue
            label, image = panels[col]
            positive = image[image > 0]
            norm = LogNorm(vmin=max(positive.min(), 1e-6), vmax=positive.max()) if positive.size else None
            ax.imshow(np.where(image > 0, image, np.nan), origin="lower", extent=extent, norm=norm, cmap="viridis")
            ax.set_title(f"{name}: {label}", fontsize=9)
            ax.set_xlabel(r"$\phi_{rel}$", fontsize=8)
            ax.set_ylabel(r"$\eta_{rel}$", fontsize=8)
            ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path, dpi=90, bbox_inches="tight")


def plot_jet_feature_histograms(
    real: np.ndarray,
    real_mask: np.ndarray,
    generated: np.ndarray,
    generated_mask: np.ndarray,
    path: str | os.PathLike,
    *,
    title: str = "",
) -> None:
    """Particle eta_rel, phi_rel, pT_rel and jet mass, pT, multiplicity: real vs generated."""
    plt = pyplot()
    real_jet = jet_relative_kinematics(real, real_mask)
    gen_jet = jet_relative_kinematics(generated, generated_mask)
    panels = [
        (r"particle $\eta^{rel}$", real[..., 0][real_mask], generated[..., 0][generated_mask], False),
        (r"particle $\phi^{rel}$", real[..., 1][real_mask], generated[..., 1][generated_mask], False),
        (r"particle $p_T^{rel}$", real[..., 2][real_mask], generated[..., 2][generated_mask], True),
        (r"jet $m/p_T$", real_jet["mass"], gen_jet["mass"], False),
        (r"jet $|\sum \vec p_T^{\,rel}|$", real_jet["pt"], gen_jet["pt"], False),
        ("particles per jet", real_jet["n_particles"], gen_jet["n_particles"], False),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(12, 7))
    for ax, (label, r, g, log) in zip(axes.flat, panels):
        both = np.concatenate([r, g]) if len(g) else r
        both = both[np.isfinite(both)]
        if label == "particles per jet":  # integers: one bin each
            lo, hi = (both.min(), both.max()) if both.size else (0, 1)
            bins = np.arange(lo - 0.5, hi + 1.5)
        else:
            lo, hi = (np.percentile(both, [0.5, 99.5]) if both.size else (0.0, 1.0))
            if hi <= lo:
                hi = lo + 1.0
            bins = np.linspace(lo, hi, 41)
        ax.hist(r, bins=bins, histtype="stepfilled", alpha=0.35, density=True, label="real", color="C0")
        if len(g):
            ax.hist(g, bins=bins, histtype="step", density=True, label="generated", color="C3", linewidth=1.5)
        ax.set_xlabel(label)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path, dpi=90, bbox_inches="tight")


def plot_point_cloud_comparison(
    real: np.ndarray,
    real_mask: np.ndarray | None,
    generated: np.ndarray,
    generated_mask: np.ndarray | None,
    path: str | os.PathLike,
    *,
    n: int = 8,
    title: str = "",
) -> None:
    """``n`` real point clouds (top row) above ``n`` generated ones (bottom row).

    Points are (x, y, intensity) with y drawn downwards like an image; marker colour and
    size follow the intensity. Axis limits are shared and taken from the real points.
    """
    plt = pyplot()
    if real_mask is None:
        real_mask = np.ones(real.shape[:2], dtype=bool)
    if generated_mask is None:
        generated_mask = np.ones(generated.shape[:2], dtype=bool)
    xs, ys = real[..., 0][real_mask], real[..., 1][real_mask]
    pad = 0.05 * max(np.ptp(xs) if xs.size else 1.0, np.ptp(ys) if ys.size else 1.0)
    xlim = (xs.min() - pad, xs.max() + pad) if xs.size else (0, 1)
    ylim = (ys.max() + pad, ys.min() - pad) if ys.size else (1, 0)
    ivals = real[..., 2][real_mask] if real.shape[-1] > 2 else np.ones(1)
    imax = float(ivals.max()) if ivals.size and ivals.max() > 0 else 1.0
    n = max(1, min(n, len(real), len(generated)))
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6), squeeze=False)
    for row, (name, pts, msk) in enumerate([("real", real, real_mask), ("generated", generated, generated_mask)]):
        for col in range(n):
            ax = axes[row, col]
            p = pts[col][msk[col]]
            intensity = np.clip(p[:, 2] / imax, 0.0, 1.0) if p.shape[-1] > 2 else np.ones(len(p))
            ax.scatter(p[:, 0], p[:, 1], c=intensity, s=4 + 20 * intensity, cmap="gray_r", vmin=0, vmax=1,
                       edgecolors="none")
            ax.set_xlim(*xlim)
            ax.set_ylim(*ylim)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
            if col == 0:
                ax.set_ylabel(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    save_png(fig, path, dpi=90, bbox_inches="tight")
