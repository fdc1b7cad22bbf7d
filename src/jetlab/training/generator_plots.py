"""The figures of a generator run: generated sets next to real ones (jet images and feature
histograms for jets, point clouds for MNIST), titled in words. Drawn during training
(:func:`write_sample_plots`, ``--plot-every``) and by ``jetlab fastsim evaluate``."""

from __future__ import annotations

from pathlib import Path

from jetlab.training.point_sets import PointSets
from jetlab.viz import samples

__all__ = ["plot_comparison", "plot_title", "write_sample_plots"]


def write_sample_plots(task, data: PointSets, run_dir: Path, tag: str, n: int, seed: int) -> list[str]:
    """Generated next to real validation sets: ``<tag>_jet_images.png`` and
    ``<tag>_histograms.png`` for jets, ``<tag>_samples.png`` for MNIST."""
    if getattr(task, "sampling", None) == "gaussian":
        task.refit_latent()
    real, real_mask = (data.val, data.val_mask) if len(data.val) else (data.train, data.train_mask)
    n = max(8, min(n, len(real)))
    gen, gen_mask = task.generate(n, seed=seed + 7919)
    return plot_comparison(data.kind, real[:n], real_mask[:n], gen, gen_mask, run_dir, tag,
                            plot_title(task.name, data.name, tag))


_MODEL_WORDS = {"vae": "VAE", "gan": "GAN", "flow": "flow matching"}


def plot_title(model: str, data_name: str, tag: str) -> str:
    """A sample plot's title in words: ``("vae", "jets:t", "evaluation")`` → "VAE, t jets:
    generated vs held-out real"; tags ``epoch0020`` → "epoch 20", ``final`` → "final model"."""
    kind, _, detail = data_name.partition(":")
    if kind == "jets":
        data = f"{detail} jets"
    elif kind.startswith("mnist"):
        data = "MNIST " + (kind.removeprefix("mnist-") if kind != "mnist" else Path(detail).name)
    else:
        data = data_name
    if tag.startswith("epoch") and tag[5:].isdigit():
        when = f"epoch {int(tag[5:])}"
    else:
        when = {"final": "final model", "evaluation": "generated vs held-out real"}.get(tag, tag)
    return f"{_MODEL_WORDS.get(model, model)}, {data}: {when}"


def plot_comparison(kind: str, real, real_mask, gen, gen_mask, run_dir: Path, tag: str, title: str) -> list[str]:
    if kind != "jets":
        samples.plot_point_cloud_comparison(real, real_mask, gen, gen_mask, run_dir / f"{tag}_samples.png", title=title)
        return [f"{tag}_samples.png"]
    samples.plot_jet_images(real, real_mask, gen, gen_mask, run_dir / f"{tag}_jet_images.png", title=title)
    samples.plot_jet_feature_histograms(real, real_mask, gen, gen_mask, run_dir / f"{tag}_histograms.png", title=title)
    return [f"{tag}_jet_images.png", f"{tag}_histograms.png"]
