"""One trial: a real training run with the trial's settings, scored on the validation split.

Objectives (``--objective a[,b...]``; several give a Pareto front, no pruning):

=========== ========= ================================================================
accuracy    maximize  taggers: accuracy of the best epoch's weights on the validation split
auc         maximize  taggers: mean one-vs-rest AUC of those weights on the validation split
w1m         minimize  generators: W1-M (jet mass) of the best epoch against validation jets
params      minimize  trainable parameters (GAN: the generator's, what is deployed)
latency     minimize  taggers: ms per forward pass of a batch of 100 full jets (median of
                      10 after 3 warm-ups, the trial's device and --threads; noisy on a
                      shared machine)
=========== ========= ================================================================

The search never sees the test split: objectives are validation numbers, so the best trial
is not chosen on the jets it is then judged on. Test accuracy and AUC are stored beside
them (user attributes ``test_accuracy``, ``test_auc``) for the report.

Each trial trains into ``<study dir>/trial-<number>`` (kept). Per epoch, rank 0 reports the
recipe's validation number (``val_accuracy`` / ``val_w1m``) with ``trial.report``; when
the pruner says so the recipe's ``on_epoch`` returns True, the engine stops on every rank,
and the trial ends as pruned. A trial whose training diverges is pruned too (attribute
``diverged``): the region it came from is bad, which the samplers should learn.

A trial retried after its worker died (same parameters) continues the dead trial's run
directory from its last checkpoint when that directory is reachable, with the dead
trial's per-epoch numbers inherited: no finished epoch is trained twice.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jetlab.errors import JetlabError
from jetlab.hpo.recipes import apply_params
from jetlab.utils.config import config_from_dict

__all__ = ["OBJECTIVES", "TrialRunner", "objective_directions"]

log = logging.getLogger(__name__)

#: name -> (direction, recipe it applies to (None: both), what it is)
OBJECTIVES: dict[str, tuple[str, str | None, str]] = {
    "accuracy": ("maximize", "tagger", "validation accuracy"),
    "auc": ("maximize", "tagger", "validation mean AUC"),
    "w1m": ("minimize", "generator", "W1-M vs validation jets"),
    "params": ("minimize", None, "trainable parameters"),
    "latency": ("minimize", "tagger", "ms per batch of 100 jets"),
}
#: objectives whose per-epoch validation number can feed a pruner
PRUNABLE = ("accuracy", "auc", "w1m")


def objective_directions(objectives, recipe) -> list[str]:
    """Directions of ``objectives``; a one-line error for unknown ones or the wrong recipe."""
    if not objectives:
        raise JetlabError("--objective: name at least one objective")
    if len(set(objectives)) != len(objectives):
        raise JetlabError(f"--objective {','.join(objectives)}: an objective is named twice")
    directions = []
    for name in objectives:
        if name not in OBJECTIVES:
            raise JetlabError(f"--objective: unknown objective {name!r}; known: {', '.join(OBJECTIVES)}")
        direction, applies, _ = OBJECTIVES[name]
        if applies not in (None, recipe.name):
            usable = [n for n, (_, a, _) in OBJECTIVES.items() if a in (None, recipe.name)]
            raise JetlabError(f"--objective {name}: not an objective of {recipe.name}s; use {', '.join(usable)}")
        directions.append(direction)
    return directions


def _generator_parameters(run_dir: Path) -> int:
    from jetlab.training.generator_run import TrainedGenerator  # lazy: start-up (torch)

    task = TrainedGenerator.load(run_dir).task
    module = task.modules.get("generator") or next(iter(task.modules.values()))
    return sum(p.numel() for p in module.parameters())


def tagger_latency_ms(run_dir: Path, device: str = "cpu", batch: int = 100, repeats: int = 10,
                      threads: int | None = None) -> float:
    """Median ms of one forward pass of the trained tagger in ``run_dir`` on ``batch`` full jets
    (``threads``: torch CPU threads while timing; default: as they are)."""
    import torch

    from jetlab.training.tagger import load_tagger  # lazy: start-up (torch)

    model, info = load_tagger(run_dir, device)
    generator = torch.Generator().manual_seed(0)
    shapes = {"particles": (batch, model.n_particles, model.n_features), "hlf": (batch, model.n_features),
              "points": (batch, model.n_particles, 2), "momenta": (batch, model.n_particles, 4),
              "image": (batch, 1, info["hparams"].get("image_size", 1), info["hparams"].get("image_size", 1))}
    inputs = [torch.ones(batch, model.n_particles, dtype=torch.bool) if key == "mask"
              else torch.randn(shapes[key], generator=generator) for key in model.input_keys]
    inputs = [t.to(device) for t in inputs]
    times = []
    threads_before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    with torch.inference_mode():
        for i in range(3 + repeats):
            start = time.perf_counter()
            model(*inputs)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= 3:
                times.append(1e3 * (time.perf_counter() - start))
    torch.set_num_threads(threads_before)
    return statistics.median(times)


class TrialRunner:
    """The Optuna objective of a study (module docstring).

    ``spec``: the study's :class:`~jetlab.hpo.study.StudySpec`; ``study_dir``: where trial
    run directories go; ``launch(job, on_epoch)`` trains a job (``{"config", "out",
    "resume"}``) and returns rank 0's result: the plain recipe call, or the broadcast to a
    group of MPI ranks (:mod:`jetlab.hpo.parallel`); ``processes``: ranks per trial.
    """

    def __init__(self, spec, study_dir: str | os.PathLike, *, launch: Callable | None = None, processes: int = 1,
                 threads: int | None = None):
        self.spec = spec
        self.study_dir = Path(study_dir)
        self.launch = launch or self._train_here
        self.processes = processes
        self.threads = threads

    def _train_here(self, job: dict, on_epoch=None):
        return train_job(self.spec.recipe, job, on_epoch=on_epoch)

    def _run_dir(self, trial) -> Path:
        inherited = trial.user_attrs.get("run_dir")  # a retried trial carries the dead trial's attributes
        if inherited and (Path(inherited) / "config.yaml").is_file():
            return Path(inherited)
        return self.study_dir / f"trial-{trial.number}"

    def __call__(self, trial):
        import optuna

        spec, recipe = self.spec, self.spec.recipe

        config = apply_params(spec.base_config, recipe, spec.space.suggest(trial))
        if self.threads and config.threads is None:
            config = dataclasses.replace(config, threads=self.threads)
        run_dir = self._run_dir(trial)
        resume = (run_dir / "checkpoint.pt").is_file()
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("processes", self.processes)
        prune = spec.pruner != "none" and len(spec.objectives) == 1 and spec.objectives[0] in PRUNABLE
        asked_to_stop = []

        def on_epoch(record: dict):
            value = record.get(recipe.intermediate)
            if not prune or value is None or not math.isfinite(value):
                return None
            trial.report(float(value), int(record["epoch"]))
            # after the last epoch the run is complete: its value says more than a prune would
            if record["epoch"] < config.epochs and trial.should_prune():
                asked_to_stop.append(record["epoch"])
                return True
            return None

        if resume:
            log.info("trial %d continues %s from its last checkpoint", trial.number, run_dir)
        job = {"config": dataclasses.asdict(config), "out": str(run_dir), "resume": resume}
        try:
            result = self.launch(job, on_epoch)
        except JetlabError as exc:
            if "diverged" not in str(exc):  # the engine's divergence check (engine._check_finite)
                raise
            trial.set_user_attr("diverged", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        if result is None or result.get("finished") is False:
            raise JetlabError(f"{run_dir}: trial {trial.number} stopped before the end of its training "
                              "(--time-limit-min?); drop the time limit for hyperparameter searches")
        values, attrs = score(spec.objectives, recipe, result, run_dir, config.device, config.threads)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        # a resumed run may have been stopped by the pruner just before its worker died
        if asked_to_stop or (prune and resume and attrs["epochs_run"] < config.epochs and trial.should_prune()):
            raise optuna.TrialPruned(f"pruned after epoch {asked_to_stop[0] if asked_to_stop else '?'}")
        return values[0] if len(values) == 1 else values


def train_job(recipe, job: dict, on_epoch=None):
    """Train one trial's ``job`` (every rank of its group calls this)."""
    config = config_from_dict(recipe.config_class, job["config"], source="trial")
    return recipe.train(config, job["out"], resume=job["resume"], on_epoch=on_epoch)


def score(objectives, recipe, result: dict, run_dir: Path, device: str = "cpu",
          threads: int | None = None) -> tuple[list[float], dict[str, Any]]:
    """The objective values of a finished run and the numbers kept beside them."""
    attrs: dict[str, Any] = {}
    if recipe.name == "tagger":
        validation = result.get("validation") or {}
        attrs.update(val_accuracy=validation.get("accuracy"), val_auc=validation.get("mean_auc"),
                     test_accuracy=result["accuracy"], test_auc=result["mean_auc"],
                     n_parameters=result["n_parameters"], epochs_run=result["epochs_run"],
                     best_epoch=result["best_epoch"], training_time_s=result["training_time_s"])
    else:
        history = result["epochs"]
        best = next((r for r in history if r["epoch"] == result["best_epoch"]), history[-1] if history else {})
        final = result.get("final_metrics") or {}
        attrs.update(val_w1m=best.get("val_w1m"), epochs_run=len(history), best_epoch=result["best_epoch"],
                     final_w1m=((final.get("generated") or {}).get("w1m") or {}).get("mean"))
        if "params" in objectives:
            attrs["n_parameters"] = _generator_parameters(run_dir)
    values = []
    for name in objectives:
        if name == "accuracy":
            value = attrs["val_accuracy"]
        elif name == "auc":
            value = attrs["val_auc"]
        elif name == "w1m":
            value = attrs["val_w1m"]
            if value is None:
                raise JetlabError(f"{run_dir}: no per-epoch W1-M (val_w1m): objective w1m needs jets and "
                                  "--metrics-samples > 0")
        elif name == "params":
            value = attrs["n_parameters"]
        else:
            value = attrs["latency_ms"] = tagger_latency_ms(run_dir, device, threads=threads)
        if value is None:
            raise JetlabError(f"{run_dir}: the run has no {name} value (e.g. a class missing from the validation split)")
        values.append(float(value))
    return values, attrs
