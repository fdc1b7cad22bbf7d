"""Generator tasks and the model file: :func:`build_task` makes the VAE, GAN or flow task of a
:class:`~jetlab.training.generator_config.GeneratorConfig`; :func:`save_generator_file` writes
RUN/model.pt and :class:`TrainedGenerator` reads it back for generation.

RUN/model.pt (format ``jetlab-generator/1``) holds the config, the data description, the
normalisation, the best networks, (VAE) the generation latent and (flow with jet conditions)
the training jets' conditions. Apart from the training recipe
(:mod:`jetlab.training.generator`) so that what reads a trained run (``fastsim sample`` and
``evaluate``, a distilled flow's teacher) does not import the recipe.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from jetlab.errors import InputError, JetlabError
from jetlab.models.flow import FlowGenerator, UserFlow, solver_times
from jetlab.models.mpgan import MPDiscriminator, MPGenerator
from jetlab.models.registry import resolve_model
from jetlab.training.checkpoint import load_torch_file
from jetlab.training.generator_config import GeneratorConfig, builtin_generators
from jetlab.training.optimizers import make_optimizer
from jetlab.training.point_sets import Normalisation, PointSets
from jetlab.training.run_dir import require_finished
from jetlab.training.tasks import FlowTask, GANTask, VAETask
from jetlab.training.tasks.flow import JetConditions
from jetlab.utils.tensor_files import save_tensor_file

__all__ = ["GENERATORS", "GENERATOR_FILE_FORMAT", "TrainedGenerator", "build_task", "save_generator_file"]

#: the built-in generators (the registry's models of task "generate")
GENERATORS = builtin_generators()
GENERATOR_FILE_FORMAT = "jetlab-generator/1"


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
    distil_times = solver_times(config.ode_steps, config.ode_solver) if config.distil_from else None
    return FlowTask(flow, make_optimizer(config, flow.parameters()), norm, sigma_min=config.sigma_min,
                    ode_steps=config.ode_steps, ode_solver=config.ode_solver, conditions=conditions,
                    pairing=config.flow_pairing, ema_decay=float(config.ema_decay), distil_times=distil_times,
                    distil_feature_weight=float(config.distil_feature_weight), **options)


def _gan_task(entry, config, norm, n_points, n_coords, data, options):

    device, betas = options["device"], (config.adam_beta1, config.adam_beta2)
    generator = MPGenerator(n_points, norm.n_features, config.latent_dim, **config.generator_options).to(device)
    discriminator = MPDiscriminator(norm.n_features, **config.discriminator_options).to(device)
    return GANTask(generator, discriminator, make_optimizer(config, generator.parameters(), lr=config.lr_g, betas=betas),
                   make_optimizer(config, discriminator.parameters(), lr=config.lr_d, betas=betas), norm,
                   loss=config.gan_loss, r1_gamma=config.r1_gamma, d_steps=config.d_steps, **options)


#: the task that trains each family of generators (:attr:`ModelEntry.family <jetlab.models.registry.ModelEntry>`)
_TASK_BUILDERS = {"vae": _vae_task, "gan": _gan_task, "flow": _flow_task}


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
