"""Plots of jet data (``jetlab data plot``): per-class histograms of mass, pT, multiplicity,
tau21, tau32 (normalised to unit area, y axis ``1/N dN/dx``) and the average jet image per
class on one shared logarithmic colour scale with a colour bar, each PNG beside
``plots.json`` with the numbers drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jetlab.data.summary import jet_observables
from jetlab.io.jets import open_jets
from jetlab.io.layout import CLASS_NAMES, IMAGE_EXTENT
from jetlab.utils.atomic import atomic_write_json
from jetlab.viz.style import note_overflow, pyplot, save_png, styled, with_overflow

__all__ = ["draw_average_images", "plot_jets"]

#: observable -> (x label, y label, bin edges); histograms are normalised to unit area
_HISTOGRAMS = {
    "mass": ("jet mass $m$ [GeV]", r"$1/N\;dN/dm$ [GeV$^{-1}$]", np.linspace(0, 300, 61)),
    "pt": ("jet $p_T$ [GeV]", r"$1/N\;dN/dp_T$ [GeV$^{-1}$]", np.linspace(700, 1300, 61)),
    "multiplicity": ("constituents per jet $n$", r"$1/N\;dN/dn$", np.linspace(0, 200, 51)),
    "tau21": (r"$\tau_{21}$ ($\beta=1$)", r"$1/N\;dN/d\tau_{21}$", np.linspace(0, 1.2, 49)),
    "tau32": (r"$\tau_{32}$ ($\beta=1$)", r"$1/N\;dN/d\tau_{32}$", np.linspace(0, 1.2, 49)),
}


@styled
def plot_jets(path, out) -> list[Path]:
    """Write per-class histograms and the average jet image per class; return the PNG paths.

    The edge bins of each histogram include the under/overflow (the plot says so).

    ``plots.json`` beside them holds the numbers drawn: bin edges and normalised counts
    per class, and the summed pT and the colour scale of the average images.
    """
    plt = pyplot()

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    obs = jet_observables(path)
    present = [(label, name) for label, name in enumerate(CLASS_NAMES) if (obs["label"] == label).any()]
    written, numbers = [], {}
    for key, (xlabel, ylabel, bins) in _HISTOGRAMS.items():
        if np.isnan(obs[key]).all():
            continue
        fig, ax = plt.subplots(figsize=(5.5, 4))
        numbers[key] = {"bins": bins.tolist()}
        for label, name in present:
            x = obs[key][obs["label"] == label]
            x = with_overflow(x[np.isfinite(x)], bins)
            counts, _, _ = ax.hist(x, bins=bins, histtype="step", density=True, label=name, linewidth=1.5)
            numbers[key][name] = counts.tolist()
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(title="class")
        note_overflow(ax)
        fig.tight_layout()
        save_png(fig, out / f"{key}.png", dpi=110)
        written.append(out / f"{key}.png")

    jets = open_jets(path)
    if jets.has_images:
        means, counts = {}, {}
        for label, name in present:
            index = np.nonzero(jets.labels() == label)[0]
            means[name] = jets.read(index, "image").mean(axis=0)
            counts[name] = len(index)
        fig = draw_average_images(means, counts)
        numbers["average_image"] = {
            "sum_pt": {name: float(m.sum()) for name, m in means.items()},
            "colour_scale": list(fig.colour_scale),
        }
        save_png(fig, out / "average_images.png", dpi=110)
        written.append(out / "average_images.png")
    atomic_write_json(out / "plots.json", numbers)
    return written


def draw_average_images(means: dict[str, np.ndarray], counts: dict[str, int]):
    """One panel per class of the mean jet image (100 x 100, GeV per pixel, rows = eta_rot),
    all on one logarithmic colour scale with one labelled colour bar.

    Returns the figure; ``fig.colour_scale`` is the ``(vmin, vmax)`` in GeV shared by the panels:
    vmax the brightest mean pixel, vmin the faintest non-empty one but at least 10^-6 of vmax
    (empty pixels show in the darkest colour).
    """
    from matplotlib.colors import LogNorm

    plt = pyplot()
    positive = np.concatenate([m[m > 0] for m in means.values()]) if means else np.empty(0)
    vmax = float(positive.max()) if positive.size else 1.0
    vmin = max(float(positive.min()), vmax * 1e-6) if positive.size else vmax * 1e-6
    norm = LogNorm(vmin=vmin, vmax=vmax, clip=True)
    fig, axes = plt.subplots(1, max(1, len(means)), figsize=(2.9 * max(1, len(means)) + 1.0, 3.3),
                             squeeze=False, layout="constrained")
    extent = (-IMAGE_EXTENT, IMAGE_EXTENT, -IMAGE_EXTENT, IMAGE_EXTENT)
    image = None
    for ax, (name, mean) in zip(axes[0], means.items()):
        image = ax.imshow(np.maximum(mean.T, norm.vmin), origin="lower", cmap="viridis", norm=norm, extent=extent)
        ax.set_title(f"{name} jets ({counts.get(name, 0)})", fontsize="medium")
        ax.set_xlabel(r"$\eta_{rot}$")
        ax.set_ylabel(r"$\phi_{rot}$")
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes[0]), shrink=0.9, pad=0.01)
        bar.set_label(r"mean pixel $p_T$ [GeV]")
    fig.suptitle(r"average jet image, centred and rotated (principal axis along $\eta_{rot}$)")
    fig.colour_scale = (float(norm.vmin), float(norm.vmax))
    return fig
