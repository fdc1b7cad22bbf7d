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
  default. Monitored by the validation flow-matching loss.

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
from jetlab.models.flow import FlowGenerator, UserFlow
from jetlab.models.mpgan import MPDiscriminator, MPGenerator
from jetlab.models.registry import model_code_record, resolve_model
from jetlab.training.batches import ShardedBatches, TensorSource
from jetlab.training.engine import Engine
from jetlab.training.generator_config import GeneratorConfig, builtin_generators
from jetlab.training.generator_plots import write_sample_plots
from jetlab.training.optimizers import make_optimizer
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
from jetlab.training.tasks import FlowTask, GANTask, VAETask
from jetlab.training.tasks.flow import JetConditions
from jetlab.utils.atomic import atomic_write_json
from jetlab.utils.config import save_config
from jetlab.utils.tensor_files import save_tensor_file

__all__ = ["GENERATOR_FILE_FORMAT", "GENERATORS", "GeneratorConfig", "build_task", "save_generator_file",
           "train_generator"]

log = logging.getLogger(__name__)

#: the built-in generators (the registry's models of task "generate")
GENERATORS = builtin_generators()
GENERATOR_FILE_FORMAT = "jetlab-generator/1"
HISTORY_NAME = "history.json"


def build_task(config: GeneratorConfig, norm: Normalisation, *, kind: str, n_points: int, n_coords: int,
               device="cpu", data: PointSets | None = None, where: str | None = None):
    """The VAE, GAN or flow task of ``config`` (networks on ``device``, fresh optimizers);
    ``data`` gives the validation reference of the per-epoch W1-M and the VAE's latent fit.
    A user's model (``config.model`` a ``FILE.py:Class``) is loaded only from a file named on
    the command line, with the SHA-256 recorded in ``config.model_code`` (``where``: the run)."""
    entry = resolve_model(config.model, config.model_code, task="generate", where=where)
    options = {"kind": kind, "device": device, "metric_samples": config.metrics_samples,
               "reference": (data.val, data.val_mask) if data is not None else None}
    return _TASK_BUILDERS[entry.family](entry, config, norm, n_points, n_coords, data, options)


def _vae_task(entry, config, norm, n_points, n_coords, data, options):
    vae = entry.cls(n_points, norm.n_features, config.latent_dim,
                    **{"existence": not norm.always_full, **config.vae_options}).to(options["device"])
    return VAETask(vae, make_optimizer(config, vae.parameters()), norm, n_coords=n_coords,
                   kl_weight=config.kl_weight, nnd_feature_weight=config.nnd_feature_weight,
                   mass_weight=config.mass_weight, pt_weight=config.pt_weight, sampling=config.vae_sampling,
                   train_sets=(data.train, data.train_mask) if data is not None else None, **options)


def _flow_task(entry, config, norm, n_points, n_coords, data, options):
    jet_condition = config.flow_condition == "jet" and options["kind"] == "jets"
    n_cond = JetConditions.n_cond if jet_condition else 0
    if entry.code is None:
        flow = FlowGenerator(n_points, norm.n_features, n_cond=n_cond, net=config.flow_net, **config.flow_options)
    else:
        net = entry.build(n_points=n_points, n_features=norm.n_features, n_cond=n_cond, **config.flow_options)
        flow = UserFlow(net, n_points, norm.n_features)
    flow = flow.to(options["device"])
    conditions = JetConditions.fit(data.train, data.train_mask) if jet_condition and data is not None else None
    return FlowTask(flow, make_optimizer(config, flow.parameters()), norm, sigma_min=config.sigma_min,
                    ode_steps=config.ode_steps, ode_solver=config.ode_solver, conditions=conditions,
                    pairing=config.flow_pairing, ema_decay=float(config.ema_decay), **options)


def _gan_task(entry, config, norm, n_points, n_coords, data, options):

    device, betas = options["device"], (config.adam_beta1, config.adam_beta2)
    generator = MPGenerator(n_points, norm.n_features, config.latent_dim, **config.generator_options).to(device)
    discriminator = MPDiscriminator(norm.n_features, **config.discriminator_options).to(device)
    return GANTask(generator, discriminator, make_optimizer(config, generator.parameters(), lr=config.lr_g, betas=betas),
                   make_optimizer(config, discriminator.parameters(), lr=config.lr_d, betas=betas), norm,
                   loss=config.gan_loss, r1_gamma=config.r1_gamma, d_steps=config.d_steps, **options)


#: the task that trains each family of generators (:attr:`ModelEntry.family <jetlab.models.registry.ModelEntry>`)
_TASK_BUILDERS = {"vae": _vae_task, "gan": _gan_task, "flow": _flow_task}


def _data_info(config: GeneratorConfig, data: PointSets) -> dict:
    return {"kind": data.kind, "name": data.name, "feature_names": list(data.feature_names),
            "n_points": data.n_points, "n_coords": data.n_coords, "jet_class": config.jet_class}


def save_generator_file(path, task, config, data_info: dict, epoch: int) -> None:
    """Write RUN/model.pt: what sampling needs (:mod:`jetlab.training.generator_run`)."""
    save_tensor_file({
        "format": GENERATOR_FILE_FORMAT,
        "config": dataclasses.asdict(config),
        "data": data_info,
        "normalisation": task.norm.state_dict(),
        "modules": {name: {k: v.detach().cpu() for k, v in m.state_dict().items()} for name, m in task.modules.items()},
        "latent": getattr(task, "latent", None),
        "conditions": task.conditions.state_dict() if getattr(task, "conditions", None) is not None else None,
        "epoch": int(epoch),
    }, path)


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
        norm = Normalisation.fit(data.train, data.train_mask, log_columns)
        seed_everything(config.seed)
        task = build_task(config, norm, kind=data.kind, n_points=data.n_points, n_coords=data.n_coords,
                          device=context.device, data=data, where=str(out))
        unit = "jet" if data.kind == "jets" else "set"
        strategy = make_strategy(config.strategy, context, **strategy_settings(config))
        sets = {"points": torch.as_tensor(data.train), "mask": torch.as_tensor(data.train_mask)}
        train = ShardedBatches(TensorSource(sets), config.batch_size, strategy.batch_context(context, training=True),
                               shuffle=True, seed=config.seed)
        val = None
        if len(data.val):
            val_sets = {"points": torch.as_tensor(data.val), "mask": torch.as_tensor(data.val_mask)}
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
