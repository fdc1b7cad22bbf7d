"""Plots of jet data (``jetlab data plot``): per-class histograms of mass, pT, multiplicity,
tau21, tau32 and the average jet image per class, each PNG beside ``plots.json`` with the
numbers drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jetlab.data.summary import jet_observables
from jetlab.io.jets import open_jets
from jetlab.io.layout import CLASS_NAMES, IMAGE_EXTENT
from jetlab.utils.atomic import atomic_write_json
from jetlab.viz.style import pyplot, save_png

__all__ = ["plot_jets"]

_HISTOGRAMS = {
    "mass": ("jet mass [GeV]", np.linspace(0, 300, 61)),
    "pt": ("jet $p_T$ [GeV]", np.linspace(700, 1300, 61)),
    "multiplicity": ("constituents", np.linspace(0, 200, 51)),
    "tau21": (r"$\tau_{21}$ ($\beta=1$)", np.linspace(0, 1.2, 49)),
    "tau32": (r"$\tau_{32}$ ($\beta=1$)", np.linspace(0, 1.2, 49)),
}


def plot_jets(path, out) -> list[Path]:
    """Write per-class histograms and the average jet image per class; return the PNG paths."""
    plt = pyplot()

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    obs = jet_observables(path)
    present = [(label, name) for label, name in enumerate(CLASS_NAMES) if (obs["label"] == label).any()]
    written, numbers = [], {}
    for key, (xlabel, bins) in _HISTOGRAMS.items():
        if np.isnan(obs[key]).all():
            continue
        fig, ax = plt.subplots(figsize=(5.5, 4))
        numbers[key] = {"bins": bins.tolist()}
        for label, name in present:
            x = obs[key][obs["label"] == label]
            counts, _, _ = ax.hist(x, bins=bins, histtype="step", density=True, label=name, linewidth=1.5)
            numbers[key][name] = counts.tolist()
        ax.set_xlabel(xlabel)
        ax.set_ylabel("density")
        ax.legend(title="class")
        fig.tight_layout()
        save_png(fig, out / f"{key}.png", dpi=110)
        written.append(out / f"{key}.png")

    jets = open_jets(path)
    if jets.has_images:
        fig, axes = plt.subplots(1, len(present), figsize=(3.2 * len(present), 3.2), squeeze=False)
        numbers["average_image"] = {}
        for ax, (label, name) in zip(axes[0], present):
            index = np.nonzero(jets.labels() == label)[0]
            mean = jets.read(index, "image").mean(axis=0)
            numbers["average_image"][name] = float(mean.sum())
            ax.imshow(
                np.log10(mean.T + 1e-3), origin="lower", cmap="viridis",
                extent=(-IMAGE_EXTENT, IMAGE_EXTENT, -IMAGE_EXTENT, IMAGE_EXTENT),
            )
            ax.set_title(f"{name} ({len(index)} jets)")
            ax.set_xlabel(r"$\eta_{rot}$ (principal axis)")
            ax.set_ylabel(r"$\phi_{rot}$")
        fig.suptitle(r"average jet image, $\log_{10}$ ($p_T$ / GeV + $10^{-3}$), centred and rotated")
        fig.tight_layout()
        save_png(fig, out / "average_images.png", dpi=110)
        written.append(out / "average_images.png")
    atomic_write_json(out / "plots.json", numbers)
    return written
