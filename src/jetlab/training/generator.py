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
from jetlab.io.layout import CLASS_NAMES
from jetlab.losses import GAN_LOSSES
from jetlab.losses.flow_matching import FLOW_PAIRINGS
from jetlab.models._mlp import check_hyperparameters
from jetlab.models.flow import FLOW_NETWORKS, ODE_SOLVERS, FlowGenerator, UserFlow
from jetlab.models.mpgan import MPDiscriminator, MPGenerator
from jetlab.models.registry import MODELS, check_model_name, model_code_record, resolve_model
from jetlab.models.vae import SetVAE
from jetlab.training.batches import ShardedBatches, TensorSource
from jetlab.training.engine import Engine
from jetlab.training.generator_plots import write_sample_plots
from jetlab.training.point_sets import DEFAULT_JET_DATA, Normalisation, PointSets, load_point_sets, with_mask_column
from jetlab.training.run_dir import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    data_fingerprint,
    mark_finished,
    seed_everything,
    training_session,
)
from jetlab.training.settings import TrainSettings, make_optimizer, setting, strategy_settings, validate_settings
from jetlab.training.strategies import is_collective, make_strategy
from jetlab.training.tasks import FlowTask, GANTask, VAETask
from jetlab.training.tasks.flow import JetConditions
from jetlab.training.tasks.vae import VAE_SAMPLING
from jetlab.utils.atomic import atomic_write_json
from jetlab.utils.config import save_config
from jetlab.utils.tensor_files import save_tensor_file

__all__ = ["GENERATOR_FILE_FORMAT", "GENERATORS", "GeneratorConfig", "build_task", "save_generator_file",
           "train_generator"]

log = logging.getLogger(__name__)

#: the built-in generators (the registry's models of task "generate")
GENERATORS = tuple(name for name, entry in MODELS.items() if entry.task == "generate")
GENERATOR_FILE_FORMAT = "jetlab-generator/1"
HISTORY_NAME = "history.json"


@dataclasses.dataclass
class GeneratorConfig(TrainSettings):
    """Everything a ``jetlab fastsim train`` run depends on (saved as RUN/config.yaml)."""

    model: str = setting("gan", "generative model: vae, gan, flow, or your own flow-matching velocity network "
                                "(FILE.py:Class, see docs/models.md)", metavar="NAME")
    #: a user's model: its spec, file, class, SHA-256 and task (:func:`jetlab.models.registry.model_code_record`)
    model_code: dict = setting(help=None, factory=dict)
    data: str = setting(DEFAULT_JET_DATA, "training data: 'jets' (jetlab's default generated jets), "
                                          "mnist-superpixels, mnist-sparse, or a path (hls4ml directory, JetNet "
                                          "file, `jetlab data mnist` output)", metavar="DATA")
    jet_class: str = setting("g", "jet class to learn", choices=("g", "q", "w", "z", "t"))
    particles: int = setting(30, "leading particles per jet", metavar="N")
    epochs: int = setting(10, "maximum epochs, counted across resumes", resumable=True, metavar="E")
    batch_size: int = setting(128, "sets per step per process", metavar="B")
    schedule: str = setting("none", "learning-rate schedule (plateau needs a validation number)",
                            choices=("plateau", "cosine", "none"), flag="--lr-schedule")
    patience: int = setting(0, "early stopping: stop after this many epochs without a better validation number "
                               "(0: never)", resumable=True)
    max_train: int = setting(0, "use at most the first N sets of the training split (0: all)", metavar="N",
                             flag="--limit")
    log_pt: bool | None = setting(None, "jets: learn log(pT_rel), so generated pT_rel > 0 by construction "
                                        "(unset: on for flow, off for vae and gan)", type=bool)
    latent_dim: int = setting(32, "latent size (VAE: per set; GAN: per particle)")
    # VAE (lr is TrainSettings.lr)
    kl_weight: float = setting(1e-3, "VAE: weight beta of the KL term")
    vae_sampling: str = setting("gaussian", "VAE: latent for generation, the N(0,1) prior or a Gaussian fitted to "
                                            "the encoder means", choices=VAE_SAMPLING)
    nnd_feature_weight: float = setting(1.0, "VAE: NND weight of the non-coordinate features")
    mass_weight: float = setting(0.0, "VAE, jets: weight of the relative jet-mass term")
    pt_weight: float = setting(0.0, "VAE, jets: weight of the relative jet-pT term")
    # GAN
    lr_g: float = setting(1e-4, "GAN: generator learning rate")
    lr_d: float = setting(1e-4, "GAN: discriminator learning rate")
    adam_beta1: float = setting(0.5, "GAN: Adam beta1")
    adam_beta2: float = setting(0.999, "GAN: Adam beta2")
    gan_loss: str = setting("ns", "GAN loss: non-saturating or least squares", choices=GAN_LOSSES)
    r1_gamma: float = setting(1.0, "GAN: R1 penalty weight on real sets (0: off)")
    d_steps: int = setting(1, "GAN: discriminator updates per generator update")
    # flow matching
    flow_net: str = setting("epic", "flow: velocity network, EPiC layers (linear in the particles) or a masked "
                                    "transformer (quadratic)", choices=FLOW_NETWORKS)
    ode_solver: str = setting("midpoint", "flow: ODE solver of the sampler (euler: 1 network call a step, "
                                          "midpoint and heun: 2)", choices=ODE_SOLVERS, resumable=True)
    ode_steps: int = setting(2, "flow: ODE steps from noise to a set when sampling (more: slower, closer to the "
                                "learned flow)", resumable=True, metavar="N")
    sigma_min: float = setting(0.0, "flow: width sigma_min of the optimal-transport path at t = 1")
    flow_pairing: str = setting("independent", "flow: how noise is paired with each training set: independently, "
                                               "or (ot) its particles matched to the set's real particles by the "
                                               "Hungarian algorithm on squared distance (straighter paths, fewer ODE "
                                               "steps; a CPU assignment per set)", choices=FLOW_PAIRINGS)
    ema_decay: float = setting(0.0, "flow: decay of an exponential moving average of the network's weights, "
                                    "validated, sampled and saved while the raw weights train (e.g. 0.999; 0: off)",
                               metavar="BETA")
    flow_condition: str = setting("jet", "flow, jets: also condition on each jet's sum pT_rel and mass (drawn with the "
                                         "multiplicity from the training jets when sampling; generated pT_rel rescaled "
                                         "to the drawn sum) or on nothing but the multiplicity",
                                  choices=("none", "jet"))
    # network options (``--hp vae.hidden=128``, ``--hp generator.n_layers=3``, ``--hp flow.hidden=64``)
    vae_options: dict = setting(help=None, factory=dict)
    generator_options: dict = setting(help=None, factory=dict)
    discriminator_options: dict = setting(help=None, factory=dict)
    flow_options: dict = setting(help=None, factory=dict)
    # monitoring
    plot_every: int = setting(10, "sample plots every k epochs and at the end (0: only at the end)", resumable=True)
    plot_samples: int = setting(1000, "sets generated for the plots", resumable=True)
    metrics_samples: int = setting(1000, "jets: generated jets compared with validation jets, per epoch (W1-M) and "
                                         "at the end (all metrics); 0: off")

    def validate(self, source: str = "options") -> None:
        validate_settings(self, source)
        check_model_name(self.model, self.model_code, "generate")

        if self.jet_class not in CLASS_NAMES:
            raise JetlabError(f"{source}: unknown jet class {self.jet_class!r}; choose one of {', '.join(CLASS_NAMES)}")
        if self.vae_sampling not in VAE_SAMPLING:
            raise JetlabError(f"{source}: unknown vae_sampling {self.vae_sampling!r}; "
                              f"choose one of {', '.join(VAE_SAMPLING)}")
        if self.gan_loss not in GAN_LOSSES:
            raise JetlabError(f"{source}: unknown gan_loss {self.gan_loss!r}; choose one of {', '.join(GAN_LOSSES)}")
        if self.flow_net not in FLOW_NETWORKS or self.ode_solver not in ODE_SOLVERS:
            raise JetlabError(f"{source}: unknown flow_net {self.flow_net!r} or ode_solver {self.ode_solver!r}; "
                              f"choose from {', '.join(FLOW_NETWORKS)} and {', '.join(ODE_SOLVERS)}")
        if self.flow_condition not in ("none", "jet"):
            raise JetlabError(f"{source}: unknown flow_condition {self.flow_condition!r}; choose none or jet")
        if not 0 <= float(self.sigma_min) < 1:
            raise JetlabError(f"{source}: sigma_min must be in [0, 1), got {self.sigma_min}")
        if self.flow_pairing not in FLOW_PAIRINGS:
            raise JetlabError(f"{source}: unknown flow_pairing {self.flow_pairing!r}; "
                              f"choose one of {', '.join(FLOW_PAIRINGS)}")
        if not 0 <= float(self.ema_decay) < 1:
            raise JetlabError(f"{source}: ema_decay must be in [0, 1), got {self.ema_decay}")
        if float(self.ema_decay) > 0 and not is_collective(self.strategy):
            raise JetlabError(f"{source}: ema_decay works with the synchronous strategies only; under "
                              f"--strategy {self.strategy} the master, which keeps the weights, takes no steps")
        _check_model_settings(self, source)
        for name in ("particles", "latent_dim", "d_steps", "ode_steps"):
            if int(getattr(self, name)) < 1:
                raise JetlabError(f"{source}: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("plot_every", "plot_samples", "metrics_samples", "max_train"):
            if int(getattr(self, name)) < 0:
                raise JetlabError(f"{source}: {name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr_g", "lr_d"):
            if not float(getattr(self, name)) > 0:
                raise JetlabError(f"{source}: {name} must be > 0, got {getattr(self, name)}")
        for name in ("vae_options", "generator_options", "discriminator_options", "flow_options", "model_code"):
            if not isinstance(getattr(self, name), dict):
                raise JetlabError(f"{source}: {name} must be a mapping")
        _check_network_options(source, self.vae_options, self.generator_options, self.discriminator_options,
                               self.flow_options if self.model in GENERATORS else {})  # a user's: its constructor

    @property
    def family(self) -> str:
        """How the model trains: ``vae``, ``gan`` or ``flow`` (a user's velocity network too)."""
        return generator_family(self.model)

    def ignores(self, name: str) -> str | None:
        """:meth:`TrainSettings.ignores`, and :meth:`foreign`."""
        if self.foreign(name):
            return self.foreign(name)
        if name in ("adam_beta1", "adam_beta2") and self.optimizer != "adam":
            return f"applies to --optimizer adam only, not {self.optimizer}"
        if name in _JETS_ONLY and str(self.data).startswith("mnist-"):
            return f"applies to jets only, not --data {self.data}"
        return super().ignores(name)

    def foreign(self, name: str) -> str | None:
        """Why ``model`` does not use setting ``name``, where it belongs to other generators."""
        users = models_using(name)
        if users and self.family not in users:
            return f"applies to --model {'/'.join(users)} only, not {self.model}{_INSTEAD.get((name, self.model), '')}"
        return None

    @property
    def learns_log_pt(self) -> bool:
        """Whether jets are learned as log pT_rel (``log_pt``, unset: the flow does)."""
        return self.family == "flow" if self.log_pt is None else bool(self.log_pt)


#: settings only one family of models reads (the flow refuses the others', the others the flow's)
_MODEL_SETTINGS = {
    "vae": ("kl_weight", "vae_sampling", "nnd_feature_weight", "mass_weight", "pt_weight", "vae_options"),
    "gan": ("lr_g", "lr_d", "adam_beta1", "adam_beta2", "gan_loss", "r1_gamma", "d_steps", "generator_options",
            "discriminator_options"),
    "flow": ("flow_net", "ode_solver", "ode_steps", "sigma_min", "flow_condition", "flow_pairing", "ema_decay",
             "flow_options"),
}


#: settings that only jets use (MNIST digits have no jet class, mass or pT)
_JETS_ONLY = ("jet_class", "particles", "log_pt", "mass_weight", "pt_weight", "flow_condition", "metrics_samples")
#: settings every generator but some reads: the ones that read them
_SHARED_BY = {"lr": ("vae", "flow"), "latent_dim": ("vae", "gan")}
#: what a model uses in place of another's setting, for the message refusing the latter
_INSTEAD = {("lr", "gan"): " (the GAN's learning rates are --lr-g and --lr-d)",
            **{(name, model): " (its learning rate is --lr)" for name in ("lr_g", "lr_d") for model in ("vae", "flow")},
            **{(name, model): " (it trains with --optimizer at torch's Adam betas)"
               for name in ("adam_beta1", "adam_beta2") for model in ("vae", "flow")}}


def generator_family(model: str) -> str:
    """How generator ``model`` trains: ``vae``, ``gan`` or ``flow`` (a user's ``FILE.py:Class``
    is a flow-matching velocity network, the one kind of user generator jetlab drives)."""
    return model if model in GENERATORS else "flow"


def models_using(name: str) -> tuple[str, ...] | None:
    """The generators that read setting ``name``, where not all of them do (None)."""
    if name in _SHARED_BY:
        return _SHARED_BY[name]
    return next(((model,) for model, names in _MODEL_SETTINGS.items() if name in names), None)


def _check_model_settings(config: GeneratorConfig, source: str) -> None:
    """A setting the chosen model does not read, changed from its default, is an error: the
    flow's settings under vae/gan, the vae's, gan's and latent_dim under flow."""
    if config.family == "flow":
        foreign = [name for model in ("vae", "gan") for name in _MODEL_SETTINGS[model]] + ["latent_dim"]
    else:
        foreign = list(_MODEL_SETTINGS["flow"])
    default = GeneratorConfig()
    for name in foreign:
        if getattr(config, name) != getattr(default, name):
            owner = next((m for m, names in _MODEL_SETTINGS.items() if name in names), "vae/gan")
            raise JetlabError(f"{source}: {name} is a {owner} setting; model {config.model!r} does not use it")
    if config.model not in GENERATORS and config.flow_net != default.flow_net:
        raise JetlabError(f"{source}: flow_net chooses jetlab's velocity network; model {config.model!r} is its own")


def _check_network_options(source: str, vae: dict, generator: dict, discriminator: dict, flow: dict) -> None:
    """Unknown network options, or values not of their default's kind (``--hp vae.hidden=abc``),
    are one-line errors (the checks of the taggers' hyperparameters)."""
    import inspect

    set_by_config = ("n_points", "n_features", "latent_dim", "n_cond", "net")
    for name, cls, given in (("vae", SetVAE, vae), ("generator", MPGenerator, generator),
                             ("discriminator", MPDiscriminator, discriminator), ("flow", FlowGenerator, flow)):
        defaults = {key: p.default for key, p in inspect.signature(cls.__init__).parameters.items()
                    if p.default is not inspect.Parameter.empty and key not in set_by_config}
        check_hyperparameters(f"{source}: {name}", given, defaults)


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
