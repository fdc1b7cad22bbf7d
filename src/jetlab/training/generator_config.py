"""The settings of a generator training run (:class:`GeneratorConfig`, saved as RUN/config.yaml),
and which generators read which of them.

Apart from the recipe (:mod:`jetlab.training.generator`) so that it loads no torch: the
``jetlab`` command builds ``fastsim train``'s and ``hpo run``'s flags from it.
"""

from __future__ import annotations

import dataclasses
import functools

from jetlab.choices import (
    ASYNC_STRATEGIES,
    DEFAULT_JET_DATA,
    FLOW_NETWORKS,
    FLOW_PAIRINGS,
    GAN_LOSSES,
    ODE_SOLVERS,
    VAE_SAMPLING,
)
from jetlab.errors import JetlabError
from jetlab.io.layout import CLASS_NAMES
from jetlab.training.settings import TrainSettings, setting, validate_settings

__all__ = ["GeneratorConfig", "builtin_generators", "generator_family", "models_using"]


@functools.cache
def builtin_generators() -> tuple[str, ...]:
    """The built-in generators: the models of task "generate" in :data:`jetlab.models.registry.MODELS`."""
    from jetlab.models.registry import MODELS  # lazy: start-up (torch)

    return tuple(name for name, entry in MODELS.items() if entry.task == "generate")


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
                                        "(default: on for flow, off for vae and gan)", type=bool)
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
    distil_from: str = setting("", "flow: distil a finished flow run (the teacher) into this one: train on pairs of noise "
                                   "and the set the teacher makes from it, for this run's own --ode-steps and "
                                   "--ode-solver (e.g. 1 euler step); the same data and split as the teacher",
                               metavar="RUN")
    distil_steps: int = setting(8, "flow, --distil-from: ODE steps of the teacher's solver when it makes the pairs",
                                metavar="N")
    distil_init: bool = setting(False, "flow, --distil-from: start from the teacher's weights (the student's network "
                                       "settings must be the teacher's)", type=bool)
    distil_feature_weight: float = setting(0.0, "flow, --distil-from: weight of a jet-mass term, the squared "
                                                "difference of the student's one-step jet's mass from the teacher "
                                                "jet's in standard deviations of the training jets, moving the "
                                                "particles' directions (no gradient on pT_rel; needs --flow-condition jet; 0: off)",
                                           metavar="LAMBDA")
    # network options (``--hp vae.hidden=128``, ``--hp generator.n_layers=3``, ``--hp flow.hidden=64``)
    vae_options: dict = setting(help=None, factory=dict)
    generator_options: dict = setting(help=None, factory=dict)
    discriminator_options: dict = setting(help=None, factory=dict)
    flow_options: dict = setting(help=None, factory=dict)
    # monitoring
    plot_every: int = setting(10, "sample plots every K epochs and at the end (0: only at the end)", resumable=True,
                            metavar="K")
    plot_samples: int = setting(1000, "sets generated for the plots", resumable=True, metavar="N")
    metrics_samples: int = setting(1000, "jets: generated jets compared with validation jets, per epoch (W1-M) and "
                                         "at the end (all metrics); 0: off")

    def validate(self, source: str = "options") -> None:
        from jetlab.models.registry import check_model_name  # lazy: start-up (torch)

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
        if self.distil_from and float(self.sigma_min) != 0:
            raise JetlabError(f"{source}: --distil-from follows the straight line to the teacher's sets; "
                              f"--sigma-min {self.sigma_min} applies to flow matching on real sets only")
        if self.distil_from and self.flow_pairing != "independent":
            raise JetlabError(f"{source}: --distil-from trains on the teacher's own noise-set pairs; "
                              f"--flow-pairing {self.flow_pairing} would re-pair them")
        if float(self.distil_feature_weight) < 0:
            raise JetlabError(f"{source}: distil_feature_weight must be >= 0, got {self.distil_feature_weight}")
        if float(self.distil_feature_weight) > 0 and self.flow_condition != "jet":
            raise JetlabError(f"{source}: --distil-feature-weight compares the jets' masses in the units "
                              f"of --flow-condition jet; --flow-condition {self.flow_condition} has none")
        if not 0 <= float(self.ema_decay) < 1:
            raise JetlabError(f"{source}: ema_decay must be in [0, 1), got {self.ema_decay}")
        if float(self.ema_decay) > 0 and self.strategy in ASYNC_STRATEGIES:
            raise JetlabError(f"{source}: ema_decay works with the synchronous strategies only; under "
                              f"--strategy {self.strategy} the master, which keeps the weights, takes no steps")
        _check_model_settings(self, source)
        for name in ("particles", "latent_dim", "d_steps", "ode_steps", "distil_steps"):
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
                               self.flow_options if self.model in builtin_generators() else {})  # a user's: its constructor

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
        if name in ("distil_steps", "distil_init", "distil_feature_weight") and not self.distil_from:
            return "applies with --distil-from only"
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
             "distil_from", "distil_steps", "distil_init", "distil_feature_weight", "flow_options"),
}


#: settings that only jets use (MNIST digits have no jet class, mass or pT)
_JETS_ONLY = ("jet_class", "particles", "log_pt", "mass_weight", "pt_weight", "flow_condition", "metrics_samples",
              "distil_feature_weight")
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
    return model if model in builtin_generators() else "flow"


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
    if config.model not in builtin_generators() and config.flow_net != default.flow_net:
        raise JetlabError(f"{source}: flow_net chooses jetlab's velocity network; model {config.model!r} is its own")


def _check_network_options(source: str, vae: dict, generator: dict, discriminator: dict, flow: dict) -> None:
    """Unknown network options, or values not of their default's kind (``--hp vae.hidden=abc``),
    are one-line errors (the checks of the taggers' hyperparameters)."""
    import inspect

    from jetlab.models._mlp import check_hyperparameters  # lazy: start-up (torch)
    from jetlab.models.flow import FlowGenerator  # lazy: start-up (torch)
    from jetlab.models.mpgan import MPDiscriminator, MPGenerator  # lazy: start-up (torch)
    from jetlab.models.vae import SetVAE  # lazy: start-up (torch)

    set_by_config = ("n_points", "n_features", "latent_dim", "n_cond", "net")
    for name, cls, given in (("vae", SetVAE, vae), ("generator", MPGenerator, generator),
                             ("discriminator", MPDiscriminator, discriminator), ("flow", FlowGenerator, flow)):
        defaults = {key: p.default for key, p in inspect.signature(cls.__init__).parameters.items()
                    if p.default is not inspect.Parameter.empty and key not in set_by_config}
        check_hyperparameters(f"{source}: {name}", given, defaults)
