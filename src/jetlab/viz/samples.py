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
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jetlab.io.layout import IMAGE_EXTENT, IMAGE_PIXELS
from jetlab.physics.kinematics import image_pixel_index, relative_jet_kinematics
from jetlab.viz.style import pyplot, save_png

__all__ = [
    "jet_relative_kinematics",
    "jet_images",
    "plot_jet_images",
    "plot_jet_feature_histograms",
    "plot_point_cloud_comparison",
    "plot_point_clouds",
]

def jet_relative_kinematics(points: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Relative mass m/pT_jet, relative vector-sum pT and multiplicity of point sets (N, P, 3)
    = (eta_rel, phi_rel, pT_rel) with mask (N, P): arrays (N,) (see
    :func:`jetlab.physics.kinematics.relative_jet_kinematics`)."""
    jet = relative_jet_kinematics(points, mask)
    return {"mass": jet.mass, "pt": jet.pt, "n_particles": mask.sum(1).astype(np.float64)}


def jet_images(points: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """pT_rel-weighted images (N, 100, 100) over eta_rel, phi_rel in [-0.8, 0.8) (rows = eta)."""
    n = len(points)
    images = np.zeros((n, IMAGE_PIXELS, IMAGE_PIXELS), dtype=np.float64)
    ieta, iphi, inside = image_pixel_index(points[..., 0], points[..., 1])
    inside &= mask
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


def plot_point_clouds(points, mask=None, path: str | os.PathLike = "point_clouds.png", *, ncols: int = 8,
                      labels: Sequence | None = None, title: str | None = None, max_sets: int = 64,
                      panel_size: float = 1.4) -> Path:
    """Draw point sets as scatter images in a grid, one panel per set; write a PNG atomically.

    ``points`` (N, P, >=2) array or tensor: column 0 is the horizontal axis, column 1 the
    vertical one and column 2, when present, the intensity (or pT_rel), shown as marker
    size and darkness. ``mask`` (N, P) bool (None: all points real). ``labels`` optional
    per-set panel titles. At most ``max_sets`` sets are drawn. Works for sparse-MNIST
    digits (x, y, intensity) and for jets (eta_rel, phi_rel, pT_rel) alike.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = np.asarray(points.detach().cpu() if hasattr(points, "detach") else points, dtype=np.float64)
    if points.ndim != 3 or points.shape[2] < 2:
        raise ValueError(f"points must be (N, P, >=2), got {points.shape}")
    if mask is None:
        mask = np.ones(points.shape[:2], dtype=bool)
    mask = np.asarray(mask.detach().cpu() if hasattr(mask, "detach") else mask, dtype=bool)
    if labels is not None and hasattr(labels, "tolist"):
        labels = labels.tolist()
    n_sets = min(len(points), max_sets)
    ncols = max(1, min(ncols, n_sets))
    nrows = max(1, -(-n_sets // ncols))
    real = points[:n_sets][mask[:n_sets]]
    if len(real):
        lo, hi = real[:, :2].min(0), real[:, :2].max(0)
    else:
        lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    margin = 0.05 * np.maximum(hi - lo, 1e-6)
    weight_max = float(real[:, 2].max()) if len(real) and points.shape[2] > 2 and real[:, 2].max() > 0 else 1.0

    fig = Figure(figsize=(panel_size * ncols, panel_size * nrows + (0.4 if title else 0)))
    FigureCanvasAgg(fig)
    for i in range(nrows * ncols):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n_sets:
            ax.axis("off")
            continue
        p = points[i][mask[i]]
        if points.shape[2] > 2:
            w = np.clip(p[:, 2] / weight_max, 0.0, 1.0)
            ax.scatter(p[:, 0], p[:, 1], s=4 + 30 * w, c=w, cmap="Greys", vmin=0, vmax=1,
                       edgecolors="none")
        else:
            ax.scatter(p[:, 0], p[:, 1], s=6, c="k", edgecolors="none")
        ax.set_xlim(lo[0] - margin[0], hi[0] + margin[0])
        ax.set_ylim(lo[1] - margin[1], hi[1] + margin[1])
        ax.set_aspect("equal", adjustable="box")
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    save_png(fig, path, dpi=100)
    return path
