"""The generator recipe behind ``jetlab fastsim train``: point sets, a
:class:`~jetlab.training.tasks.VAETask` or :class:`~jetlab.training.tasks.GANTask`, and the
:class:`~jetlab.training.engine.Engine`, in one process or data-parallel under ``torchrun``
/ ``mpiexec``.

* **VAE** (:class:`jetlab.models.vae.SetVAE`, loss :func:`jetlab.losses.vae.vae_loss`):
  set encoder → Gaussian latent → decoder that emits P points; NND + β·KL, for jets
  optionally ``w_m (m(x̂) − m(x))² + w_pT (pT(x̂) − pT(x))²``. Monitored by the validation loss.
* **GAN** in the MPGAN style (Kansal et al., arXiv:2106.11535): message-passing generator
  and discriminator, Adam with separate learning rates, non-saturating (``ns``, default) or
  least-squares (``ls``) loss, R1 penalty (default γ = 1) (:mod:`jetlab.losses.gan`).
  Defaults (ns + R1, lr_g = lr_d = 1e-4, β₁ = 0.5) are what trained stably on jets; least
  squares without a penalty collapsed onto narrow η/φ modes. Jets are monitored by the
  per-epoch W1-M against validation jets (the best epoch is kept); MNIST keeps the last.
* **flow** matching (Lipman et al., arXiv:2210.02747; :class:`jetlab.models.flow.FlowGenerator`,
  loss :func:`jetlab.losses.flow_matching.flow_matching_loss`): a velocity network of EPiC
  layers (or a masked transformer) regresses x₁ − x₀ along the straight path from Gaussian
  noise x₀ to a real set x₁; sampling integrates the learned ODE (``ode_solver``,
  ``ode_steps``) on multiplicities drawn from the training sets. Jets learn log pT_rel by
  default. Monitored by the validation flow-matching loss. With ``distil_from`` a flow learns
  instead a finished flow run's own noise-to-set map for few-step sampling
  (:mod:`jetlab.training.distil`; it takes over the teacher's normalisation and conditions).

A run directory RUN holds ``config.yaml``, ``checkpoint.pt`` (every epoch, atomically;
``--resume`` continues exactly), ``model.pt`` (the best networks, the normalisation and, for
the VAE, the generation latent: what ``jetlab fastsim sample|evaluate`` read; written when
training ends or pauses), ``history.json`` (numbers per epoch and, for jets, the generation
metrics of the final model against validation jets), sample plots every ``plot_every``
epochs and at the end, and, written last when training has ended (not paused),
``finished.json``: what ``sample``/``evaluate`` require (:mod:`jetlab.training.run_dir`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import torch

from jetlab.errors import JetlabError
from jetlab.models.registry import model_code_record, resolve_model
from jetlab.training.batches import ShardedBatches, TensorSource
from jetlab.training.distil import PAIRS_WAIT_S, load_teacher, start_from_teacher, teacher_pairs
from jetlab.training.engine import Engine
from jetlab.training.generator_config import GeneratorConfig
from jetlab.training.generator_plots import write_sample_plots
from jetlab.training.generator_tasks import GENERATOR_FILE_FORMAT, GENERATORS, build_task, save_generator_file
from jetlab.training.point_sets import DEFAULT_JET_DATA, Normalisation, PointSets, load_point_sets, with_mask_column
from jetlab.training.run_dir import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    data_fingerprint,
    mark_finished,
    seed_everything,
    training_session,
)
from jetlab.training.settings import strategy_settings
from jetlab.training.strategies import is_collective, make_strategy
from jetlab.utils.atomic import atomic_write_json
from jetlab.utils.config import save_config

__all__ = ["GENERATOR_FILE_FORMAT", "GENERATORS", "GeneratorConfig", "build_task", "save_generator_file",
           "train_generator"]

log = logging.getLogger(__name__)

HISTORY_NAME = "history.json"


def _data_info(config: GeneratorConfig, data: PointSets) -> dict:
    return {"kind": data.kind, "name": data.name, "feature_names": list(data.feature_names),
            "n_points": data.n_points, "n_coords": data.n_coords, "jet_class": config.jet_class}


def _pair_columns(pairs: dict, split: str) -> dict:
    """The batch columns ``noise`` and ``teacher`` of a distilled flow (none without a teacher)."""
    return {"noise": pairs[f"{split}_noise"], "teacher": pairs[f"{split}_teacher"]} if pairs else {}


def train_generator(config: GeneratorConfig, out: str | os.PathLike, *, resume: bool = False,
                    stop_after_epoch: int | None = None, on_epoch=None) -> dict | None:
    """Train (or, with ``resume``, continue) a generator into RUN ``out`` (module docstring).

    Every rank calls this; rank 0 writes the files and returns ``{"epochs": history,
    "final_metrics": dict or None, "finished": bool}``, the other ranks None.
    """
    config.validate()
    out = Path(out)
    config.model_code = model_code_record(resolve_model(config.model, config.model_code, task="generate",
                                                        where=str(out)))
    with training_session(out, resume=resume, device=config.device, threads=config.threads,
                          collective=is_collective(config.strategy)) as context:
        load = dict(jet_class=config.jet_class, particles=config.particles, split_seed=config.split_seed,
                    fractions=config.fractions, max_train=config.max_train)
        data = load_point_sets(config.data, **load) if context.is_main else None
        context.barrier()  # rank 0 first: a missing default set is generated once
        if data is None:
            data = load_point_sets(config.data, **load)
        if len(data.train) < 2:
            raise JetlabError(f"{config.data}: only {len(data.train)} training sets of {data.name}; need at least 2")
        log_columns = (data.feature_names.index("ptrel"),) if config.learns_log_pt and data.kind == "jets" else ()
        teacher = load_teacher(config) if config.distil_from else None
        norm = teacher.normalisation if teacher is not None else Normalisation.fit(data.train, data.train_mask,
                                                                                   log_columns)
        seed_everything(config.seed)
        task = build_task(config, norm, kind=data.kind, n_points=data.n_points, n_coords=data.n_coords,
                          device=context.device, data=data, where=str(out))
        pairs = {}
        if teacher is not None:  # the student draws the teacher's conditions, trains on its pairs
            task.conditions = teacher.task.conditions
            if config.distil_init:
                start_from_teacher(task, teacher)
            # rank 0 makes them once, the other ranks wait for its file
            pairs = teacher_pairs(out, teacher, data, config, make=context.is_main, wait_s=PAIRS_WAIT_S)
        unit = "jet" if data.kind == "jets" else "set"
        strategy = make_strategy(config.strategy, context, **strategy_settings(config))
        sets = {"points": torch.as_tensor(data.train), "mask": torch.as_tensor(data.train_mask),
                **_pair_columns(pairs, "train")}
        train = ShardedBatches(TensorSource(sets), config.batch_size, strategy.batch_context(context, training=True),
                               shuffle=True, seed=config.seed)
        val = None
        if len(data.val):
            val_sets = {"points": torch.as_tensor(data.val), "mask": torch.as_tensor(data.val_mask),
                        **_pair_columns(pairs, "val")}
            val = ShardedBatches(TensorSource(val_sets), max(config.batch_size, 512),
                                 strategy.batch_context(context, training=False), shuffle=False, training=False)
        if len(train) == 0:
            raise JetlabError(f"{config.data}: {len(data.train)} training sets is less than half a batch "
                              f"({config.batch_size} x {context.world_size} processes)")
        meta = {"task": task.name, "model": config.model, "data": {
            **data_fingerprint(None if config.data in (DEFAULT_JET_DATA, "mnist-superpixels", "mnist-sparse")
                               else config.data, len(data.train) + len(data.val) + len(data.test),
                               split_seed=config.split_seed, fractions=config.fractions, what=data.name)}}
        engine = Engine(task, config, strategy=strategy, context=context,
                        checkpoint_path=out / CHECKPOINT_NAME, meta=meta, unit=unit)
        if context.is_main:
            save_config(config, out / CONFIG_NAME)

        def every_epoch(record):
            epoch = record["epoch"]
            if config.plot_every and epoch % config.plot_every == 0:
                write_sample_plots(task, data, out, f"epoch{epoch:04d}", config.plot_samples, config.seed)
            return on_epoch(record) if on_epoch is not None else None

        result = engine.fit(train, val, resume=resume, stop_after_epoch=stop_after_epoch, on_epoch=every_epoch)
        if not context.is_main:
            return None
        if result.best_state is not None:
            for name, module in task.modules.items():
                module.load_state_dict(result.best_state[name])
        if config.family == "vae":
            task.refit_latent()
        save_generator_file(out / "model.pt", task, config, _data_info(config, data), result.best_epoch)
        final_metrics = None
        if result.finished:
            write_sample_plots(task, data, out, "final", config.plot_samples, config.seed)
            if data.kind == "jets" and config.metrics_samples and len(data.val) >= 4:
                from jetlab.metrics.generation import evaluate_generated  # lazy: start-up (scipy)

                n = min(config.metrics_samples, len(data.val))
                points, mask = task.generate(n, seed=config.seed + 104729)
                final_metrics = evaluate_generated(with_mask_column(data.val[:n], data.val_mask[:n]),
                                                   with_mask_column(points, mask))
        atomic_write_json(out / HISTORY_NAME, {"config": dataclasses.asdict(config), "epochs": result.history,
                                               "best_epoch": result.best_epoch, "final_metrics": final_metrics,
                                               **strategy.summary()})
        if result.finished:
            mark_finished(out, ("model.pt", HISTORY_NAME), epochs_run=result.epochs_run, stop_reason=result.stop_reason)
        return {"epochs": result.history, "final_metrics": final_metrics, "finished": result.finished,
                "best_epoch": result.best_epoch}
