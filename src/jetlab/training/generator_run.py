"""Using a trained generator: ``jetlab fastsim sample`` and ``jetlab fastsim evaluate``.

RUN/model.pt (format ``jetlab-generator/1``, written by
:func:`jetlab.training.generator.train_generator`) holds the config, the data description,
the normalisation, the best networks, (VAE) the generation latent and (flow with jet
conditions) the training jets' conditions;
:meth:`TrainedGenerator.load` rebuilds the task from it and
:meth:`TrainedGenerator.generate` draws raw sets.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from jetlab.errors import InputError, JetlabError
from jetlab.io import write_hls4ml_file, write_jetnet_file
from jetlab.io.layout import CLASS_NAMES, MAX_JETS_PER_FILE
from jetlab.io.mnist_files import write_mnist_points
from jetlab.physics.kinematics import relative_jet_kinematics
from jetlab.physics.particles import hls4ml_arrays_from_relative
from jetlab.training.checkpoint import load_torch_file
from jetlab.training.generator import GENERATOR_FILE_FORMAT, GeneratorConfig, build_task
from jetlab.training.generator_plots import plot_comparison, plot_title
from jetlab.training.point_sets import Normalisation, load_point_sets, postprocess_jets, with_mask_column
from jetlab.training.run_dir import require_finished
from jetlab.training.tasks.flow import JetConditions
from jetlab.utils.atomic import atomic_write_json
from jetlab.viz.samples import plot_point_clouds

__all__ = ["TrainedGenerator", "evaluate_run", "write_samples"]


class TrainedGenerator:
    """A trained run loaded for generation: ``TrainedGenerator.load(RUN).generate(n, seed)``."""

    def __init__(self, run_dir: Path, config, data_info: dict, task, epoch: int):
        self.run_dir = run_dir
        self.config = config
        self.data_info = data_info
        self.task = task
        self.epoch = epoch

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "cpu", sampler: dict | None = None) -> TrainedGenerator:
        """The run in ``run_dir``; ``sampler`` may override a flow run's ``ode_steps`` and
        ``ode_solver`` (None values keep the run's)."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise InputError(run_dir, "no such run directory")
        path = run_dir / "model.pt"
        if not path.is_file():
            raise InputError(run_dir, "not a trained fastsim run (no model.pt; train one with `jetlab fastsim train`)")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise JetlabError(f"device {device!r} requested but torch sees no CUDA device; use --device cpu")
        state = load_torch_file(path, GENERATOR_FILE_FORMAT, "model file", "generator model file")
        require_finished(run_dir)
        config = GeneratorConfig(**state["config"])
        overrides = {k: v for k, v in (sampler or {}).items() if v is not None}
        if overrides and config.family != "flow":
            raise JetlabError(f"{run_dir}: --{next(iter(overrides)).replace('_', '-')} applies to flow runs; "
                              f"this is a {config.model} run")
        config = dataclasses.replace(config, **overrides)
        info = state["data"]
        task = build_task(config, Normalisation.from_state_dict(state["normalisation"]), kind=info["kind"],
                          n_points=info["n_points"], n_coords=info["n_coords"], device=device, where=str(run_dir))
        for name, module in task.modules.items():
            module.load_state_dict(state["modules"][name])
            module.eval()
        if state.get("latent") is not None:
            task.latent = state["latent"]
        if state.get("conditions") is not None:
            task.conditions = JetConditions.from_state_dict(state["conditions"])
        return cls(run_dir, config, info, task, int(state["epoch"]))

    @property
    def kind(self) -> str:
        return self.data_info["kind"]

    @property
    def normalisation(self) -> Normalisation:
        return self.task.norm

    def generate(self, n: int, seed: int = 0, batch_size: int | None = None,
                 postprocess: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """n sets: raw points (n, P, F) float32 and mask (n, P) bool (jets: pT-sorted, particles
        with pT_rel <= 0 dropped; ``postprocess=False``: as the network listed them)."""
        return self.task.generate(n, seed=seed, batch_size=batch_size, postprocess=postprocess)

    @torch.no_grad()
    def generate_model_tensor(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Network output (n, P, F) and mask (n, P) before de-normalisation (times the network alone)."""
        return self.task.sample_model_tensor(n)


def write_samples(run_dir: str | Path, n: int, out: str | Path, fmt: str = "jetnet", seed: int = 0,
                  sampler: dict | None = None) -> list[Path]:
    """Generate ``n`` sets from a run and write them; returns the files written.

    Jets: ``fmt="jetnet"`` -> one JetNet file (particle_features (n, P, 4), jet_features
    (n, 4) = pT, eta, mass, n_particles for a jet of pT 1 TeV at eta 0);
    ``fmt="hls4ml"`` -> hls4ml files labelled with the trained class (``out`` a ``.h5`` file,
    or a directory that gets files of <= 10,000 jets). MNIST: an HDF5 file with ``points``
    (n, P, 3) and ``mask`` (n, P) and a PNG of the first sets beside it.
    """
    if n < 1:
        raise JetlabError(f"--n must be >= 1, got {n}")
    gen = TrainedGenerator.load(run_dir, sampler=sampler)
    out = Path(out)
    points, mask = gen.generate(n, seed=seed)
    if gen.kind != "jets":
        if out.suffix not in (".h5", ".hdf5"):
            raise JetlabError(f"--out {out}: give an .h5 file for generated MNIST point sets")
        labels = np.full(len(points), -1, dtype=np.int64)  # generated: no digit label
        write_mnist_points(out, points, mask, labels, kind=gen.data_info["name"],
                           source=f"generated by jetlab fastsim {gen.config.model} ({gen.run_dir})")
        png = out.with_suffix(".png")
        plot_point_clouds(points, mask, png, title=f"generated by {gen.run_dir.name} ({gen.config.model})")
        return [out, png]

    if fmt == "jetnet":
        jet = relative_jet_kinematics(points.astype(np.float64), mask)
        pz = (points[..., 2] * np.sinh(points[..., 0]) * mask).sum(1)
        eta = np.arcsinh(pz / np.maximum(jet.pt, 1e-12))
        jet_pt = 1000.0
        jet_features = np.stack([jet.pt * jet_pt, eta, jet.mass * jet_pt, mask.sum(1)], axis=1).astype(np.float32)
        write_jetnet_file(out, with_mask_column(points, mask).astype(np.float32), jet_features,
                          jet_class=gen.data_info["jet_class"])
        return [out]
    if fmt != "hls4ml":
        raise JetlabError(f"unknown --format {fmt!r}; choose jetnet or hls4ml")

    label = CLASS_NAMES.index(gen.data_info["jet_class"])
    if out.suffix in (".h5", ".hdf5"):
        targets = [(out, slice(0, n))]
    else:
        out.mkdir(parents=True, exist_ok=True)
        targets = [(out / f"generated_{CLASS_NAMES[label]}_{i:03d}.h5", slice(start, start + MAX_JETS_PER_FILE))
                   for i, start in enumerate(range(0, n, MAX_JETS_PER_FILE))]
    for path, rows in targets:
        constituents, jets, images = hls4ml_arrays_from_relative(
            points[rows, :, 0], points[rows, :, 1], points[rows, :, 2], mask[rows], label=label)
        write_hls4ml_file(path, constituents, jets, images)
    return [path for path, _ in targets]


def evaluate_run(run_dir: str | Path, *, data: str | None = None, n: int | None = None, seed: int = 1,
                 sampler: dict | None = None, classifier_seconds: float = 120.0,
                 classifier_epochs: int = 20, classifier_model: str = "garnet") -> dict:
    """Generate sets and compare them with held-out real ones (the test split).

    Jets: :func:`jetlab.metrics.generation.evaluate_generated` (W1-M, W1-P and W1-EFP with
    each feature, FD6, JetNet's FPD and KPD, COV, MMD and, unless ``classifier_seconds`` is 0,
    the classifier AUC (its training stopped by ``classifier_epochs`` or ``classifier_seconds``,
    whichever comes first), each beside truth-vs-truth at the same sample sizes; under
    ``constraints`` the physical checks, the generated row with ``dropped_nonpositive_pt``: the
    particles the network listed with pT_rel <= 0, which generation drops). MNIST: the 1-d
    Wasserstein distance of each point feature, beside truth-vs-truth. ``sampler``: as in
    :meth:`TrainedGenerator.load`. Writes
    ``RUN/evaluation.json`` and plots; returns the dict ``{"metrics": ..., "n_real": ...,
    "n_generated": ..., "table": str, "notes": [...]}``; ``notes`` says where fewer jets were
    used than asked for (``n`` beyond the held-out set, sizes below JetNet's).
    """
    gen = TrainedGenerator.load(run_dir, sampler=sampler)
    config = gen.config
    source = data if data is not None else config.data
    sets = load_point_sets(source, jet_class=config.jet_class, particles=config.particles,
                           split_seed=config.split_seed, fractions=config.fractions)
    if sets.kind != gen.kind:
        raise JetlabError(f"--data {source}: {sets.kind}, but the run {run_dir} was trained on {gen.data_info['name']}")
    if sets.n_points != gen.data_info["n_points"]:
        raise JetlabError(f"{source}: sets of {sets.n_points} points, the run generates {gen.data_info['n_points']}")
    real, real_mask = sets.test, sets.test_mask
    if len(real) < 4:
        raise JetlabError(f"{source}: only {len(real)} held-out {sets.name} sets; need at least 4")
    notes = []
    if n is not None and n > len(real):
        notes.append(f"--n {n}: the held-out set has only {len(real)} {sets.name} sets; using {len(real)}")
    n = min(n or len(real), len(real))
    real, real_mask = real[:n], real_mask[:n]
    points, mask = gen.generate(n, seed=seed, postprocess=False)
    run_dir = Path(run_dir)
    if gen.kind == "jets":
        listed, dropped = int(mask.sum()), int((mask & (points[..., 2] <= 0)).sum())
        points, mask = postprocess_jets(points, mask)
        from jetlab.metrics.generation import evaluate_generated, format_metrics_table  # lazy: start-up (scipy)

        classifier = None if classifier_seconds <= 0 else {"max_seconds": classifier_seconds,
                                                            "epochs": classifier_epochs, "model": classifier_model}
        metrics = evaluate_generated(with_mask_column(real, real_mask), with_mask_column(points, mask),
                                     classifier=classifier)
        metrics["constraints"]["generated"]["dropped_nonpositive_pt"] = {
            "particles": dropped, "fraction": dropped / max(listed, 1), "of_listed": listed}
        notes += metrics["notes"]
        table = format_metrics_table(metrics)
    else:
        metrics = _mnist_w1(real, real_mask, points, mask, sets.feature_names)
        table = "\n".join(f"{k:<14} {v['generated']:.4g}   (truth-vs-truth {v['truth']:.4g})" for k, v in metrics.items())
    plots = plot_comparison(sets.kind, real, real_mask, points, mask, run_dir, "evaluation",
                             plot_title(gen.config.model, sets.name, "evaluation"))
    result = {"metrics": metrics, "n_real": int(n), "n_generated": int(n), "data": source,
              "epoch": gen.epoch, "plots": plots, "table": table, "notes": notes}
    atomic_write_json(run_dir / "evaluation.json", result)
    return result


def _mnist_w1(real, real_mask, gen, gen_mask, names) -> dict:
    from scipy.stats import wasserstein_distance

    half = len(real) // 2
    out = {}
    for i, name in enumerate(names):
        r = real[..., i][real_mask]
        r1, r2 = real[:half, :, i][real_mask[:half]], real[half:, :, i][real_mask[half:]]
        out[f"W1-{name}"] = {"generated": float(wasserstein_distance(r, gen[..., i][gen_mask])),
                             "truth": float(wasserstein_distance(r1, r2))}
    return out
