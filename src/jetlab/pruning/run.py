"""``jetlab tagger prune``: iterative magnitude pruning of a trained tagger (prune, retrain, repeat).

The hls4ml recipe for taggers that must fit an FPGA (Duarte et al., arXiv:1804.06913,
after Han et al., arXiv:1506.02626): starting from the trained run RUN, each iteration
``k = 1..K``

1. loads the previous weights (RUN/model.pt, then ``iter-<k-1>/model.pt``, whose pruned
   entries are exact zeros),
2. masks the smallest magnitudes until the weight matrices reach the sparsity ``s_k`` of
   the schedule (:mod:`jetlab.pruning.schedule`, :mod:`jetlab.pruning.masks`),
3. with ``rewind``, resets the surviving weights and all biases to RUN's initial weights
   (lottery-ticket rewinding to initialisation, rebuilt from the run's seed),
4. retrains with the masks held fixed: a normal tagger run (``train_tagger``, the same data,
   split and seed as RUN, ``epochs_per_iteration`` epochs, early stopping after
   ``patience``, plus the L1 penalty ``l1``) in ``PRUNED/iter-<k>/``; its best epoch is scored
   on RUN's test split.

PRUNED holds:

==================== ================================================================
config.yaml          the :class:`PruneConfig` (``--resume`` continues with it)
iter-<k>/            iteration k's run directory (config, checkpoint, model.pt with the
                     pruned weights as exact zeros, metrics.json, predictions, plots)
prune_curve.json     per iteration (0 = RUN, unpruned): target and real sparsity (global and
                     per weight matrix, counted as exact zeros in model.pt), accuracy,
                     per-class and mean AUC; and the highest sparsity whose mean AUC is
                     within ``AUC_TOLERANCE`` of the unpruned one
prune_curve.png      AUC and accuracy against sparsity, with the unpruned values
model.pt             the last iteration's weights, masks made permanent (``prune.remove``):
                     ``load_tagger(PRUNED)`` rebuilds the plain model, zeros included
metrics.json         its test metrics (as a run's) + ``sparsity`` + ``pruning`` summary
predictions.npz      its test predictions (``jetlab tagger compare RUN PRUNED`` works)
finished.json        written last (:func:`jetlab.training.run_dir.mark_finished`); an
                     iteration counts as done when its own finished.json is there
==================== ================================================================

A killed run continues with ``resume``: finished iterations are kept, the interrupted one
continues from its checkpoint (the masks are rebuilt from the same weights, so the result
is bit for bit that of an uninterrupted run).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
from pathlib import Path

from jetlab.distributed.env import detect_launcher
from jetlab.errors import InputError, JetlabError
from jetlab.models import build_tagger
from jetlab.models.registry import resolve_model
from jetlab.pruning.config import PruneConfig
from jetlab.pruning.masks import initial_state, make_permanent, prune_by_magnitude, rewind
from jetlab.pruning.schedule import sparsity_schedule
from jetlab.pruning.weights import model_file_sparsity
from jetlab.training.checkpoint import load_checkpoint
from jetlab.training.run_dir import CHECKPOINT_NAME, CONFIG_NAME, FINISHED_NAME, clear_finished, mark_finished
from jetlab.training.tagger import TaggerTrainConfig, load_tagger, read_model_file, save_model_file, train_tagger
from jetlab.utils.atomic import atomic_path, atomic_write_json
from jetlab.utils.config import config_from_dict, load_config, read_json, save_config
from jetlab.utils.locking import directory_lock
from jetlab.viz.pruning import plot_prune_curve

__all__ = ["AUC_TOLERANCE", "PruneConfig", "prune_tagger"]

log = logging.getLogger(__name__)

#: the mean-AUC loss the summary tolerates ("no loss of AUC")
AUC_TOLERANCE = 0.01


def source_run(run: str | os.PathLike) -> tuple[dict, dict]:
    """``(model-file info, test metrics)`` of the finished run RUN; one-line errors otherwise."""
    run = Path(run)
    if not run.is_dir():
        raise InputError(run, "no such run directory (expected one written by `jetlab tagger train`)")
    if not (run / "model.pt").is_file():
        raise InputError(run, "no trained model here (expected RUN/model.pt written by `jetlab tagger train`)")
    info = read_model_file(run / "model.pt")  # a finished run: its finished.json lists metrics.json
    # a user's model: refused here, before PRUNED is made, unless its file is named (--model-code)
    resolve_model(info["model_name"], (info.get("config") or {}).get("model_code"), task="classify",
                  where=str(run / "model.pt"))
    return info, read_json(run / "metrics.json")


def iteration_config(config: PruneConfig, info: dict):
    """The :class:`TaggerTrainConfig` of every retraining: RUN's, with the prune settings."""
    base = config_from_dict(TaggerTrainConfig, dict(info["config"]), source=f"{config.source}/model.pt config")
    return dataclasses.replace(base, epochs=config.epochs_per_iteration, patience=config.patience, l1=config.l1,
                               lr=config.lr or base.lr, device=config.device, threads=config.threads,
                               time_limit_min=0.0)


def check_prune_dir(out: str | os.PathLike, *, resume: bool) -> Path:
    """PRUNED must be new (or hold an unfinished prune run, with ``resume``)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a directory; choose another --out")
    try:  # a prune run writes its config.yaml first
        holds_prune = (out / CONFIG_NAME).is_file() and bool(load_config(PruneConfig, out / CONFIG_NAME))
    except JetlabError:
        holds_prune = False
    if resume and not holds_prune:
        raise InputError(out, "holds no prune run to resume; drop --resume to start one")
    if not resume:
        if (out / "metrics.json").is_file() and holds_prune:
            raise InputError(out, "already holds a finished prune run; choose another --out")
        if holds_prune:
            raise InputError(out, "already holds a prune run; pass --resume to continue it or choose another --out")
        if (out / CHECKPOINT_NAME).exists() or (out / "model.pt").exists():
            raise InputError(out, "holds a training run; choose another --out for the pruned model")
    return out


def prune_tagger(config: PruneConfig, out: str | os.PathLike, *, resume: bool = False,
                 stop_after: tuple[int, int | None] | None = None) -> dict | None:
    """Prune RUN = ``config.source`` into PRUNED = ``out`` (module docstring); returns PRUNED's
    metrics, or None when ``stop_after = (k, epoch)`` ended this call after that epoch of
    iteration k (``(k, None)``: after iteration k), as a kill would."""
    config.validate()
    if detect_launcher()[2] > 1:
        raise JetlabError("jetlab tagger prune runs in one process (each retraining is small); "
                          "start it without torchrun/mpiexec")
    info, baseline = source_run(config.source)
    if Path(out).resolve() == Path(config.source).resolve():
        raise InputError(out, "is the run to prune; choose another --out for the pruned model")
    out = check_prune_dir(out, resume=resume)
    train_config = iteration_config(config, info)
    train_config.validate(f"{config.source}/model.pt config")
    targets = sparsity_schedule(config.target_sparsity, config.iterations, config.schedule)
    with directory_lock(out, what="prune run"):
        clear_finished(out)
        if not resume:
            save_config(config, out / CONFIG_NAME)
        rewind_state = initial_state(info) if config.rewind else None
        curve = _new_curve(config, info, baseline)
        for k, target in enumerate(targets, start=1):
            run_dir = out / f"iter-{k}"
            if (run_dir / FINISHED_NAME).is_file():
                metrics = json.loads((run_dir / "metrics.json").read_text())
            else:
                start = Path(config.source) if k == 1 else out / f"iter-{k - 1}"
                start_state = read_model_file(start / "model.pt")["state_dict"]
                log.info("iteration %d/%d: pruning to %.1f%% sparsity (%s scope, %s schedule)%s", k, config.iterations,
                         100 * target, config.scope, config.schedule, ", rewound" if config.rewind else "")
                prepare = functools.partial(prepare_iteration, start_state=start_state, sparsity=target,
                                            scope=config.scope, rewind_state=rewind_state)
                stop_epoch = stop_after[1] if stop_after and stop_after[0] == k else None
                metrics = train_tagger(train_config, run_dir, resume=(run_dir / CHECKPOINT_NAME).is_file(),
                                       stop_after_epoch=stop_epoch, prepare_model=prepare)
                if metrics is None:
                    return None
            curve["points"].append(_point(k, target, run_dir, metrics))
            _write_curve(curve, out)
            point = curve["points"][-1]
            log.info("iteration %d/%d: sparsity %.1f%%, test mean AUC %.4f (unpruned %.4f), accuracy %.4f",
                     k, config.iterations, 100 * point["sparsity"], point["mean_auc"] or float("nan"),
                     curve["baseline"]["mean_auc"] or float("nan"), point["accuracy"])
            if stop_after and stop_after == (k, None) and k < config.iterations:
                return None
        return _finish(out, config, train_config, curve)


def prepare_iteration(model, *, start_state, sparsity: float, scope: str, rewind_state=None) -> None:
    """``train_tagger``'s ``prepare_model`` for one iteration: the previous weights, the masks
    of ``sparsity``, and optionally the rewound surviving weights."""
    model.load_state_dict(start_state)
    prune_by_magnitude(model, sparsity, scope)
    if rewind_state is not None:
        rewind(model, rewind_state)


# -- the curve -------------------------------------------------------------------------------------
def _scores(metrics: dict) -> dict:
    return {"accuracy": metrics["accuracy"], "mean_auc": metrics["mean_auc"],
            "auc": {name: value["auc"] for name, value in metrics["per_class"].items()}}


def _sparsity(model_file: Path) -> dict:
    counted = model_file_sparsity(model_file)
    return {"sparsity": counted["sparsity"], "zeros": counted["zeros"], "total": counted["total"],
            "layers": {name: layer["sparsity"] for name, layer in counted["layers"].items()}}


def _new_curve(config: PruneConfig, info: dict, baseline: dict) -> dict:
    return {"source": str(config.source), "model": info["model_name"], "settings": dataclasses.asdict(config),
            "auc_tolerance": AUC_TOLERANCE,
            "baseline": {"iteration": 0, "target_sparsity": 0.0, **_sparsity(Path(config.source) / "model.pt"),
                         **_scores(baseline)},
            "points": []}


def _point(k: int, target: float, run_dir: Path, metrics: dict) -> dict:
    return {"iteration": k, "target_sparsity": target, **_sparsity(run_dir / "model.pt"), **_scores(metrics),
            "epochs_run": metrics["epochs_run"], "best_epoch": metrics["best_epoch"],
            "training_time_s": metrics["training_time_s"]}


def _write_curve(curve: dict, out: Path) -> None:
    reference = curve["baseline"]["mean_auc"]
    kept = [p for p in curve["points"] if p["mean_auc"] is not None and reference is not None
            and reference - p["mean_auc"] <= AUC_TOLERANCE]
    best = max(kept, key=lambda p: p["sparsity"], default=None)
    curve["sparsity_within_tolerance"] = best["sparsity"] if best else None
    curve["iteration_within_tolerance"] = best["iteration"] if best else None
    atomic_write_json(out / "prune_curve.json", curve)
    plot_prune_curve(curve, out / "prune_curve.png")


def _finish(out: Path, config: PruneConfig, train_config, curve: dict) -> dict:
    """PRUNED/model.pt (last iteration's best weights, ``prune.remove``d), metrics.json, predictions."""
    import shutil

    last = out / f"iter-{config.iterations}"
    _, info = load_tagger(last)
    model = build_tagger(info["model_name"], **info["hparams"])
    prune_by_magnitude(model, 0.0, "layer")  # the masked structure the checkpoint was written from
    model.load_state_dict(load_checkpoint(last / CHECKPOINT_NAME)["best_modules"]["model"])
    make_permanent(model)
    save_model_file(out / "model.pt", model, config=train_config, class_names=info["class_names"],
                    particle_features=info["particle_features"], stats=info["stats"], epoch=info["epoch"],
                    val_metrics={"val_loss": info["val_loss"], "val_accuracy": info["val_accuracy"]})
    with atomic_path(out / "predictions.npz") as tmp:
        shutil.copyfile(last / "predictions.npz", tmp)
    metrics = json.loads((last / "metrics.json").read_text())
    metrics["sparsity"] = _sparsity(out / "model.pt")
    metrics["pruning"] = {key: curve[key] for key in ("source", "settings", "auc_tolerance", "sparsity_within_tolerance",
                                                      "iteration_within_tolerance")}
    metrics["pruning"].update(
        unpruned={k: curve["baseline"][k] for k in ("accuracy", "mean_auc", "auc")},
        retraining_time_s=sum(p["training_time_s"] for p in curve["points"]),
        retraining_epochs=sum(p["epochs_run"] for p in curve["points"]))
    atomic_write_json(out / "metrics.json", metrics)
    mark_finished(out, ("model.pt", "metrics.json", "predictions.npz"), iterations=config.iterations)
    return metrics
