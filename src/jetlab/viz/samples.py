"""Plots of generated samples next to real ones, for judging a generative model by eye.

Jets are point sets of relative coordinates, the JetNet convention
(Kansal et al., arXiv:2106.11535): per particle ``(eta_rel, phi_rel, pT_rel)`` and a mask,
arrays of shape ``(N, P, 3)`` and ``(N, P)`` bool. From them:

* :func:`plot_jet_images` -- the pT-weighted mean jet image (100 x 100 pixels over
  1.6 x 1.6 in eta_rel-phi_rel, the hls4ml binning) of real and generated jets side by side,
  plus a few single jets of each, on log colour scales with colour bars.
* :func:`plot_jet_feature_histograms` -- histograms (normalised, ``1/N dN/dx`` on the y
  axis) of the particle features eta_rel, phi_rel, pT_rel, of each particle's log10 ΔR to
  its nearest neighbour, and of the jet features relative
  mass ``m/pT_jet``, relative pT ``|sum pT_rel|`` and multiplicity, real (filled) vs
  generated (line).

Sparse MNIST digits are point sets ``(N, P, 3)`` of (x, y, intensity):
:func:`plot_point_cloud_comparison` draws a grid of real digits above generated ones.

Every function writes one PNG atomically in jetlab's figure style
(:mod:`jetlab.viz.style`); the comparison plots return the (closed) figure for inspection.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jetlab.io.layout import IMAGE_EXTENT, IMAGE_PIXELS
from jetlab.physics.constituents import JET_RADIUS
from jetlab.physics.kinematics import image_pixel_index, nearest_neighbour_delta_r, relative_jet_kinematics
from jetlab.viz.style import note_overflow, pyplot, save_png, styled, with_overflow

__all__ = [
    "jet_relative_kinematics",
    "jet_images",
    "plot_jet_images",
    "plot_jet_feature_histograms",
    "multiplicity_is_informative",
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


@styled
def plot_jet_images(
    real: np.ndarray,
    real_mask: np.ndarray,
    generated: np.ndarray,
    generated_mask: np.ndarray,
    path: str | os.PathLike,
    *,
    title: str = "",
    n_single: int = 3,
):
    """Mean jet image and ``n_single`` single jets, real (top row) vs generated (bottom row).

    Logarithmic colour scales with colour bars (pT_rel per pixel): one shared by the two mean
    images, one shared by all single jets, so real and generated compare pixel for pixel.
    Returns the (closed) figure.
    """
    from matplotlib.colors import LogNorm

    plt = pyplot()
    rows = [("real", jet_images(real, real_mask)), ("generated", jet_images(generated, generated_mask))]
    n_single = max(0, min(n_single, *(len(images) for _, images in rows)))
    cols = 1 + n_single
    # fixed margins, not layout="constrained": that layout measures every tick label before the
    # drawing does it again, half of the figure's time, and this grid does not need it
    fig, axes = plt.subplots(2, cols, figsize=(2.7 * cols + 1.6, 5.6), squeeze=False,
                             gridspec_kw={"left": 0.9 / (2.7 * cols + 1.6), "right": 0.97, "bottom": 0.09,
                                          "top": 0.88 if title else 0.93, "wspace": 0.55, "hspace": 0.42})
    extent = (-IMAGE_EXTENT, IMAGE_EXTENT, -IMAGE_EXTENT, IMAGE_EXTENT)
    means = [images.mean(0) for _, images in rows]
    singles = [images[:n_single] for _, images in rows]
    norms = [_log_norm(means, LogNorm), _log_norm(singles, LogNorm)]
    drawn = [None, None]
    for row, (name, images) in enumerate(rows):
        panels = [("mean", means[row], 0)] + [(f"jet {i}", images[i], 1) for i in range(n_single)]
        for col, (label, image, kind) in enumerate(panels):
            ax = axes[row, col]
            # rows of `image` are eta: transposed, eta runs along x as in `jetlab data plot`
            drawn[kind] = ax.imshow(np.where(image > 0, image, np.nan).T, origin="lower", extent=extent,
                                    norm=norms[kind], cmap="viridis")
            ax.set_title(f"{name}: {label}", fontsize="small")
            ax.set_xlabel(r"$\eta_{rel}$")
            ax.set_ylabel(r"$\phi_{rel}$")
            ax.tick_params(labelsize="x-small")
            ax.minorticks_off()  # no use on an image, and 40 % of the figure's drawing time
    labels = (r"mean $p_T^{rel}$ per pixel", r"$p_T^{rel}$ per pixel")
    for kind, image in enumerate(drawn):
        if image is not None:
            targets = axes[:, 0] if kind == 0 else axes[:, 1:].ravel()
            fig.colorbar(image, ax=list(targets), shrink=0.9, pad=0.02).set_label(labels[kind])
    if title:
        fig.suptitle(title)
    save_png(fig, path, dpi=90)
    return fig


def _log_norm(images, LogNorm):
    """A log colour scale over the positive pixels of ``images`` (a list of arrays)."""
    positive = np.concatenate([np.ravel(i[i > 0]) for i in images]) if images else np.empty(0)
    if not positive.size:
        return LogNorm(vmin=1e-6, vmax=1.0)
    return LogNorm(vmin=max(float(positive.min()), float(positive.max()) * 1e-5), vmax=float(positive.max()))


def multiplicity_is_informative(*counts: np.ndarray) -> bool:
    """Whether a histogram of particles per jet says anything: at least 3 distinct values
    over all samples (a one- or two-bin panel, e.g. every jet with 30 particles, does not)."""
    values = np.unique(np.concatenate([np.ravel(c) for c in counts])) if counts else np.empty(0)
    return values.size >= 3


@styled
def plot_jet_feature_histograms(
    real: np.ndarray,
    real_mask: np.ndarray,
    generated: np.ndarray,
    generated_mask: np.ndarray,
    path: str | os.PathLike,
    *,
    title: str = "",
):
    """Particle eta_rel, phi_rel, pT_rel, distance to the nearest particle (log10 ΔR, where the
    collinear pairs of real jets show) and jet mass, pT, multiplicity: real vs generated.

    Each panel is normalised to unit area and says so on its y axis (``1/N dN/dx``). eta_rel
    and phi_rel span the jet radius; the other ranges hold 99.5 % of the entries, and every
    panel's edge bins include the under/overflow (said on the panel).
    The multiplicity panel is drawn only when the jets have at least 3 different
    multiplicities (:func:`multiplicity_is_informative`); otherwise its place states the
    multiplicities in words. Returns the (closed) figure.
    """
    plt = pyplot()
    real_jet = jet_relative_kinematics(real, real_mask)
    gen_jet = jet_relative_kinematics(generated, generated_mask)
    radius = np.linspace(-JET_RADIUS, JET_RADIUS, 41)
    # (x label, y label, real, generated, log y, bins: None = from the data)
    panels = [
        (r"particle $\eta^{rel}$", r"$1/N\;dN/d\eta^{rel}$", real[..., 0][real_mask],
         generated[..., 0][generated_mask], False, radius),
        (r"particle $\phi^{rel}$", r"$1/N\;dN/d\phi^{rel}$", real[..., 1][real_mask],
         generated[..., 1][generated_mask], False, radius),
        (r"particle $p_T^{rel}$", r"$1/N\;dN/dp_T^{rel}$", real[..., 2][real_mask],
         generated[..., 2][generated_mask], True, None),
        (r"particle $\log_{10}\Delta R$ to the nearest particle", r"$1/N\;dN/d\log_{10}\Delta R$",
         _log10_nearest(real, real_mask), _log10_nearest(generated, generated_mask), False, None),
        (r"jet $m/p_T$", r"$1/N\;dN/d(m/p_T)$", real_jet["mass"], gen_jet["mass"], False, None),
        (r"jet $|\sum \vec p_T^{\,rel}|$", r"$1/N\;dN/d|\sum \vec p_T^{\,rel}|$", real_jet["pt"], gen_jet["pt"], False,
         None),
    ]
    multiplicity = (real_jet["n_particles"], gen_jet["n_particles"])
    fig, axes = plt.subplots(2, 4, figsize=(16, 7), gridspec_kw={  # fixed margins: see plot_jet_images
        "left": 0.055, "right": 0.99, "bottom": 0.08, "top": 0.93 if title else 0.97, "wspace": 0.32, "hspace": 0.3})
    for ax, (xlabel, ylabel, r, g, log, bins) in zip(axes.flat, panels):
        bins = _continuous_bins(r, g) if bins is None else bins
        _histogram_panel(ax, xlabel, ylabel, with_overflow(r, bins), with_overflow(g, bins), bins, log)
        note_overflow(ax)
    axes.flat[7].axis("off")
    ax = axes.flat[6]
    if multiplicity_is_informative(*multiplicity):
        both = np.concatenate(multiplicity)
        bins = np.arange(both.min() - 0.5, both.max() + 1.5)
        _histogram_panel(ax, "particles per jet", "fraction of jets", *multiplicity, bins, True)
    else:
        ax.axis("off")
        ax.text(0.5, 0.5, "particles per jet\n" + "\n".join(
            f"{name}: {_describe_counts(c)}" for name, c in zip(("real", "generated"), multiplicity)),
            ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    save_png(fig, path, dpi=90)
    return fig


def _log10_nearest(points: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """log10 of every particle's ΔR to its nearest neighbour (particles that have one, ΔR > 0)."""
    nearest = nearest_neighbour_delta_r(points, mask)
    return np.log10(nearest[np.isfinite(nearest) & (nearest > 0)])


def _continuous_bins(r: np.ndarray, g: np.ndarray) -> np.ndarray:
    both = np.concatenate([r, g]) if len(g) else r
    both = both[np.isfinite(both)]
    lo, hi = (np.percentile(both, [0.25, 99.75]) if both.size else (0.0, 1.0))
    if hi <= lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, 41)


def _histogram_panel(ax, xlabel: str, ylabel: str, r: np.ndarray, g: np.ndarray, bins: np.ndarray,
                     log: bool) -> None:
    ax.hist(r, bins=bins, histtype="stepfilled", alpha=0.35, density=True, label="real", color="C0")
    if len(g):
        ax.hist(g, bins=bins, histtype="step", density=True, label="generated", color="C2", linewidth=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize="small", loc="best")


def _describe_counts(counts: np.ndarray) -> str:
    values, n = np.unique(np.asarray(counts, dtype=np.int64), return_counts=True)
    if not values.size:
        return "no jets"
    return ", ".join(f"{100 * k / n.sum():.0f}% with {v}" for v, k in zip(values, n))


@styled
def plot_point_cloud_comparison(
    real: np.ndarray,
    real_mask: np.ndarray | None,
    generated: np.ndarray,
    generated_mask: np.ndarray | None,
    path: str | os.PathLike,
    *,
    n: int = 8,
    title: str = "",
):
    """``n`` real point clouds (top row) above ``n`` generated ones (bottom row); returns the
    (closed) figure.

    Points are (x, y, intensity) with y drawn downwards like an image; marker colour and
    size follow the intensity (relative to the brightest real point, shown by a colour bar).
    Axis limits are shared and taken from the real points.
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
            drawn = ax.scatter(p[:, 0], p[:, 1], c=intensity, s=4 + 20 * intensity, cmap="gray_r", vmin=0, vmax=1,
                               edgecolors="none")
            ax.set_xlim(*xlim)
            ax.set_ylim(*ylim)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.minorticks_off()
            ax.set_aspect("equal")
            if col == 0:
                ax.set_ylabel(name, fontsize=9)
    bar = fig.colorbar(drawn, ax=axes.ravel().tolist(), shrink=0.8, pad=0.02)
    bar.set_label(f"intensity / {imax:.3g}", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    save_png(fig, path, dpi=90, bbox_inches="tight")
    return fig


@styled
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
        ax.minorticks_off()
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
