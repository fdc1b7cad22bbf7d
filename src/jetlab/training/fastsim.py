"""Training, sampling and evaluation of the sparse-event generators ("fast simulation").

Two generative models of fixed-size point sets (DESIGN.md, "Generative"):

* **VAE** (:class:`jetlab.models.vae.SetVAE`): set encoder -> Gaussian latent -> decoder that
  emits P points. Loss per set, batch-averaged:

  ``L = NND(x_hat, x) + w_m (m(x_hat) - m(x))^2 + w_pt (pT(x_hat) - pT(x))^2 + beta * KL``,
  ``KL = -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)``,

  with NND the nearest-neighbour distance of :func:`jetlab.losses.nnd_loss` (neighbours by
  the coordinates (eta_rel, phi_rel) or (x, y); the remaining features weighted by
  ``nnd_feature_weight``) and m, pT the relative jet mass and pT of the massless particles
  (jets only, optional). Generation decodes ``z ~ N(0, 1)`` (``vae_sampling: prior``) or, by
  default, ``z`` from a full-covariance Gaussian fitted to the encoder means of the training
  sets (``vae_sampling: gaussian``, ex-post density estimation, Ghosh et al.
  arXiv:1903.12436; :func:`fit_latent_gaussian`), which matches the jet-mass distribution
  far better when the KL term leaves the aggregate posterior away from N(0, 1).
* **GAN** in the MPGAN style (Kansal et al., arXiv:2106.11535): a message-passing generator
  from per-particle Gaussian noise (:class:`jetlab.models.mpgan.MPGenerator`) against a
  message-passing discriminator (:class:`jetlab.models.mpgan.MPDiscriminator`), Adam with
  separate learning rates ``lr_g``, ``lr_d``. Losses (D(x) the discriminator's logit):

  - non-saturating (``gan_loss: ns``, the default):
    ``L_D = E[softplus(-D(x))] + E[softplus(D(G(z)))]``, ``L_G = E[softplus(-D(G(z)))]``;
  - least squares (``gan_loss: ls``, as MPGAN):
    ``L_D = E[(D(x)-1)^2] + E[D(G(z))^2]``, ``L_G = E[(D(G(z))-1)^2]``;
  - R1 penalty on real points ``(r1_gamma / 2) E[|grad_x D(x)|^2]`` (default gamma = 1).

  Defaults (ns + R1 gamma 1, lr_g = lr_d = 1e-4, Adam beta1 0.5) are what trained stably on
  jets here; least squares without a penalty collapsed onto narrow eta/phi modes within ~170
  epochs (RESULTS.md, "Sparse-event generation").

Data (:func:`load_point_sets`): jets are the (eta_rel, phi_rel, pT_rel) of the P leading
particles of one class from an hls4ml directory, a JetNet file or jetlab's default generated
set; MNIST digits are the point sets of :mod:`jetlab.data.mnist`. Features are standardised
per feature over real points of the training split (mean, std stored in the checkpoint);
the models see ``(B, P, F)`` standardised tensors with padded rows 0 and a mask (B, P).
Variable multiplicity (when some training sets have fewer than P real points): the GAN
masks all but the first k generated points, k drawn from the training multiplicities
(MPGAN; during training k is the real batch's), the VAE predicts which points exist
(``SetVAE(existence=True)``). Generated jets are post-processed: particles with
pT_rel <= 0 are dropped and the rest sorted by pT_rel, as in the hls4ml layout.

Runs: ``RUN/config.yaml`` (:class:`FastsimConfig`), ``RUN/checkpoint.pt`` written atomically
after every epoch (models, optimisers, normalisation, history, RNG states; ``resume=True``
continues exactly: the epoch permutation is seeded by (seed, epoch), everything else draws
from the restored global RNG), ``RUN/history.json`` (losses per epoch; for jets the
generation metrics of the last epoch against the validation split) and per-epoch PNGs of
generated next to real samples.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from jetlab.errors import InputError, JetlabError
from jetlab.utils.atomic import atomic_write_json
from jetlab.utils.config import load_config, save_config

__all__ = [
    "FastsimConfig",
    "PointSets",
    "TrainedGenerator",
    "load_point_sets",
    "train_fastsim",
    "evaluate_run",
    "write_samples",
    "fit_latent_gaussian",
    "load_run_config",
    "jet_features_from_relative",
    "MODELS",
    "MNIST_DATASETS",
    "DEFAULT_JET_DATA",
]

log = logging.getLogger(__name__)

MODELS = ("vae", "gan")
MNIST_DATASETS = ("mnist-superpixels", "mnist-sparse")
#: ``data: jets`` means jetlab's default generated jets (``resolve_jets(None)``)
DEFAULT_JET_DATA = "jets"
GAN_LOSSES = ("ls", "ns")
VAE_SAMPLING = ("gaussian", "prior")
CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.yaml"
HISTORY_NAME = "history.json"
_CHECKPOINT_TASK = "fastsim"
_JET_FEATURES = ("etarel", "phirel", "ptrel")
_LOG_FLOOR = 1e-8


@dataclass
class FastsimConfig:
    """Everything a ``jetlab fastsim train`` run depends on (saved as ``RUN/config.yaml``)."""

    model: str = "gan"                 # "vae" | "gan"
    data: str = DEFAULT_JET_DATA       # "jets" | "mnist-superpixels" | "mnist-sparse" | path
    jet_class: str = "g"               # g | q | w | z | t (jets only)
    particles: int = 30                # leading particles per jet (jets only)
    epochs: int = 10
    batch_size: int = 128
    seed: int = 0
    device: str = "cpu"
    split_seed: int = 0                # train/val/test split of the data (70/15/15)
    max_train: int = 0                 # use at most this many training sets (0 = all)
    log_pt: bool = False               # jets: learn log(pT_rel) (generated pT_rel > 0 by construction)
    # VAE
    lr: float = 1e-3
    latent_dim: int = 32               # VAE: per set; GAN: per particle
    kl_weight: float = 1e-3            # beta of the KL term
    vae_sampling: str = "gaussian"     # latent z for generation: "prior" N(0, 1) or "gaussian" fit
    nnd_feature_weight: float = 1.0    # weight of the non-coordinate features in NND
    mass_weight: float = 0.0           # jets: weight of (m(x_hat) - m(x))^2
    pt_weight: float = 0.0             # jets: weight of (pT(x_hat) - pT(x))^2
    # GAN
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    adam_beta1: float = 0.5
    adam_beta2: float = 0.999
    gan_loss: str = "ns"               # "ns" (non-saturating) | "ls" (least squares)
    r1_gamma: float = 1.0              # R1 gradient penalty weight on real sets (0 = off)
    d_steps: int = 1                   # discriminator updates per generator update
    # model hyperparameters passed to the constructors
    vae_options: dict = field(default_factory=dict)
    generator_options: dict = field(default_factory=dict)
    discriminator_options: dict = field(default_factory=dict)
    # monitoring
    plot_every: int = 1                # sample plots every k epochs and after the last (0 = none)
    plot_samples: int = 1000           # sets generated for the plots
    metrics_samples: int = 1000        # jets: sets compared at the end of training (0 = off)
    time_limit_min: float = 0.0        # stop after the epoch that passes this many minutes (0 = none)

    def validate(self, source: str = "config") -> None:
        if self.model not in MODELS:
            raise JetlabError(f"{source}: unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        from jetlab.io.layout import CLASS_NAMES

        if self.jet_class not in CLASS_NAMES:
            raise JetlabError(
                f"{source}: unknown jet class {self.jet_class!r}; choose one of {', '.join(CLASS_NAMES)}"
            )
        if self.vae_sampling not in VAE_SAMPLING:
            raise JetlabError(f"{source}: unknown vae_sampling {self.vae_sampling!r}; "
                              f"choose one of {', '.join(VAE_SAMPLING)}")
        if self.gan_loss not in GAN_LOSSES:
            raise JetlabError(f"{source}: unknown gan_loss {self.gan_loss!r}; choose one of {', '.join(GAN_LOSSES)}")
        if int(self.plot_every) < 0:
            raise JetlabError(f"{source}: plot_every must be >= 0, got {self.plot_every}")
        for name in ("epochs", "batch_size", "particles", "latent_dim", "d_steps"):
            if int(getattr(self, name)) < 1:
                raise JetlabError(f"{source}: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "lr_g", "lr_d"):
            if not float(getattr(self, name)) > 0:
                raise JetlabError(f"{source}: {name} must be > 0, got {getattr(self, name)}")
        if self.device not in ("cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise JetlabError(f"{source}: device must be cpu or cuda, got {self.device!r}")

    @property
    def is_mnist(self) -> bool:
        return self.data in MNIST_DATASETS


# ----------------------------------------------------------------------------- data


@dataclass
class PointSets:
    """Raw (unnormalised) point sets of one data set, split into train / val / test.

    ``train`` etc. are (N, P, F) float32, ``train_mask`` etc. (N, P) bool.
    """

    kind: str                                  # "jets" | "mnist"
    name: str                                  # e.g. "jets:g" or "mnist-superpixels"
    feature_names: tuple[str, ...]
    n_coords: int                              # leading features that are coordinates
    train: np.ndarray
    train_mask: np.ndarray
    val: np.ndarray
    val_mask: np.ndarray
    test: np.ndarray
    test_mask: np.ndarray

    @property
    def n_points(self) -> int:
        return int(self.train.shape[1])

    @property
    def n_features(self) -> int:
        return int(self.train.shape[2])


def _split_indices(n: int, seed: int, fractions=(0.7, 0.15, 0.15)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]


def _is_mnist_file(path: Path) -> bool:
    if not path.is_file():
        return False
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return "points" in fh and "jetConstituentList" not in fh and "particle_features" not in fh
    except OSError:
        return False


def load_point_sets(config: FastsimConfig) -> PointSets:
    """The train/val/test point sets ``config.data`` names (see :class:`FastsimConfig`)."""
    if config.is_mnist or _is_mnist_file(Path(config.data)):
        return _load_mnist(config)
    return _load_jets(config)


def _load_mnist(config: FastsimConfig) -> PointSets:
    from jetlab.data import mnist

    if config.is_mnist:
        kind = config.data.removeprefix("mnist-")
        sets = mnist.mnist_points(kind)
        name = config.data
    else:
        sets = mnist.load_mnist_points(config.data)
        name = f"mnist:{config.data}"
    points = sets.points.numpy().astype(np.float32)
    mask = sets.mask.numpy().astype(bool)
    train_idx, val_idx, test_idx = _split_indices(len(points), config.split_seed)
    if config.max_train:
        train_idx = train_idx[: config.max_train]
    return PointSets(
        kind="mnist",
        name=name,
        feature_names=("x", "y", "intensity"),
        n_coords=2,
        train=points[train_idx], train_mask=mask[train_idx],
        val=points[val_idx], val_mask=mask[val_idx],
        test=points[test_idx], test_mask=mask[test_idx],
    )


def _load_jets(config: FastsimConfig) -> PointSets:
    from jetlab.io import resolve_jets

    source = None if config.data == DEFAULT_JET_DATA else config.data
    if source is not None and not Path(source).exists():
        raise InputError(source, "no such file or directory (give a directory of hls4ml files, a JetNet file, "
                                 f"'{DEFAULT_JET_DATA}' or one of {', '.join(MNIST_DATASETS)})")
    jets = resolve_jets(source, n_particles=config.particles)
    if config.jet_class not in jets.class_names:
        raise JetlabError(f"{config.data}: no jet class {config.jet_class!r}; it holds {', '.join(jets.class_names)}")
    splits = jets.split(
        seed=config.split_seed,
        inputs=("particles", "mask"),
        particle_features=_JET_FEATURES,
        standardize=False,
        classes=[config.jet_class],
    )
    arrays = []
    for split in splits:
        tensors = split.tensors()
        if not tensors:  # empty split
            arrays.append((np.zeros((0, config.particles, 3), np.float32), np.zeros((0, config.particles), bool)))
            continue
        arrays.append((tensors["particles"].numpy().astype(np.float32), tensors["mask"].numpy().astype(bool)))
    (train, train_mask), (val, val_mask), (test, test_mask) = arrays
    if len(train) == 0:
        raise JetlabError(f"{config.data}: no {config.jet_class} jets to train on")
    if config.max_train:
        train, train_mask = train[: config.max_train], train_mask[: config.max_train]
    return PointSets(
        kind="jets",
        name=f"jets:{config.jet_class}",
        feature_names=_JET_FEATURES,
        n_coords=2,
        train=train, train_mask=train_mask, val=val, val_mask=val_mask, test=test, test_mask=test_mask,
    )


class Normalisation:
    """Per-feature standardisation over real points, ``x_norm = (f(x) - mean) / std``, and the
    multiplicity distribution of the training sets.

    ``f`` is the identity, or ``log`` for the columns in ``log_columns`` (jets with
    ``log_pt``: pT_rel is learned as log pT_rel, so generated pT_rel = exp(...) > 0).
    :meth:`encode` maps raw sets (B, P, F) + mask (B, P) to the model tensor (B, P, F)
    (padded rows 0); :meth:`decode` inverts it. ``count_probs`` (P + 1,) is the fraction of
    training sets with k real points; :meth:`sample_counts` draws generated multiplicities
    from it (the first k points real), as MPGAN does.
    """

    def __init__(self, mean, std, count_probs, log_columns=()):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.count_probs = np.asarray(count_probs, dtype=np.float64)
        self.log_columns = tuple(int(c) for c in log_columns)

    @classmethod
    def fit(cls, points: np.ndarray, mask: np.ndarray, log_columns=()) -> "Normalisation":
        real = points[mask].astype(np.float64)
        for c in log_columns:
            real[:, c] = np.log(np.clip(real[:, c], _LOG_FLOOR, None))
        std = real.std(0)
        counts = np.bincount(mask.sum(1), minlength=mask.shape[1] + 1)
        return cls(real.mean(0), np.where(std > 0, std, 1.0), counts / counts.sum(), log_columns)

    def state_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "count_probs": self.count_probs.tolist(),
                "log_columns": list(self.log_columns)}

    @classmethod
    def from_state_dict(cls, state: dict) -> "Normalisation":
        return cls(state["mean"], state["std"], state["count_probs"], state.get("log_columns", ()))

    @property
    def n_features(self) -> int:
        return len(self.mean)

    @property
    def always_full(self) -> bool:
        """Every training set had all P points real."""
        return bool(self.count_probs[-1] == 1.0)

    def sample_counts(self, n: int, device) -> torch.Tensor | None:
        """(n,) multiplicities drawn from the training sets (global torch RNG); None when every
        training set was full."""
        if self.always_full:
            return None
        probs = torch.as_tensor(self.count_probs, dtype=torch.float64)
        return torch.multinomial(probs, n, replacement=True).to(device)

    def _columns(self, x: torch.Tensor, fn) -> torch.Tensor:
        if not self.log_columns:
            return x
        columns = list(x.unbind(-1))
        for c in self.log_columns:
            columns[c] = fn(columns[c])
        return torch.stack(columns, dim=-1)

    def encode(self, points: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.mean, device=points.device)
        std = torch.as_tensor(self.std, device=points.device)
        transformed = self._columns(points, lambda v: torch.log(v.clamp_min(_LOG_FLOOR)))
        return torch.where(mask.unsqueeze(-1), (transformed - mean) / std, torch.zeros_like(points))

    def decode_differentiable(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features (B, P, F) of a model tensor, keeping the graph."""
        raw = x * torch.as_tensor(self.std, device=x.device) + torch.as_tensor(self.mean, device=x.device)
        return self._columns(raw, lambda v: torch.exp(v.clamp_max(10.0)))

    def decode(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        points = self.decode_differentiable(x.detach()).cpu().numpy().astype(np.float32)
        mask = mask.cpu().numpy().astype(bool)
        return np.where(mask[..., None], points, 0.0).astype(np.float32), mask


def postprocess_jets(points: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Physical jets from generated relative sets: particles with pT_rel <= 0 are dropped,
    the rest sorted by decreasing pT_rel (real first) and padded rows set to 0."""
    mask = mask & (points[..., 2] > 0)
    key = np.where(mask, points[..., 2], -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")
    points = np.take_along_axis(points, order[..., None], axis=1)
    mask = np.take_along_axis(mask, order, axis=1)
    return np.where(mask[..., None], points, 0.0).astype(np.float32), mask


# ----------------------------------------------------------------------------- models


def _build_models(config: FastsimConfig, n_points: int, norm: Normalisation) -> dict[str, torch.nn.Module]:
    n_features = norm.n_features
    if config.model == "vae":
        from jetlab.models.vae import SetVAE

        options = {"existence": not norm.always_full, **config.vae_options}
        return {"vae": SetVAE(n_points, n_features, config.latent_dim, **options)}
    from jetlab.models.mpgan import MPDiscriminator, MPGenerator

    return {
        "generator": MPGenerator(n_points, n_features, config.latent_dim, **config.generator_options),
        "discriminator": MPDiscriminator(n_features, **config.discriminator_options),
    }


def _build_optimizers(config: FastsimConfig, models: dict[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
    betas = (config.adam_beta1, config.adam_beta2)
    if config.model == "vae":
        return {"vae": torch.optim.Adam(models["vae"].parameters(), lr=config.lr)}
    return {
        "generator": torch.optim.Adam(models["generator"].parameters(), lr=config.lr_g, betas=betas),
        "discriminator": torch.optim.Adam(models["discriminator"].parameters(), lr=config.lr_d, betas=betas),
    }


def fit_latent_gaussian(vae: torch.nn.Module, norm: Normalisation, points: np.ndarray, mask: np.ndarray,
                        batch_size: int = 512) -> dict[str, torch.Tensor]:
    """Full-covariance Gaussian fitted to the encoder means mu(x) of the training sets.

    Ex-post density estimation (Ghosh et al., arXiv:1903.12436): generating from
    ``z ~ N(mean, L L^T)`` instead of the N(0, 1) prior samples where the decoder was
    trained, which the KL term alone does not guarantee. Returns ``{"mean": (L,),
    "scale_tril": (L, L)}`` on the CPU.
    """
    device = next(vae.parameters()).device
    was_training = vae.training
    vae.eval()
    means = []
    with torch.no_grad():
        for start in range(0, len(points), batch_size):
            m = torch.as_tensor(mask[start:start + batch_size], device=device)
            x = norm.encode(torch.as_tensor(points[start:start + batch_size], device=device), m)
            means.append(vae.encode(x, m)[0].double().cpu())
    vae.train(was_training)
    mu = torch.cat(means)
    cov = torch.cov(mu.T) if len(mu) > 1 else torch.eye(mu.shape[1], dtype=torch.float64)
    cov = cov + 1e-6 * torch.eye(len(cov), dtype=torch.float64)
    return {"mean": mu.mean(0).float(), "scale_tril": torch.linalg.cholesky(cov).float()}


def _generate_model_tensor(config: FastsimConfig, models: dict[str, torch.nn.Module], norm: Normalisation,
                           n: int, latent: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n generated sets as model tensors (n, P, F) and masks (n, P), noise from the global torch RNG.

    VAE: z from ``latent`` (:func:`fit_latent_gaussian`) when given, else from the N(0, 1) prior."""
    if config.model == "vae":
        vae = models["vae"]
        if latent is None:
            return vae.sample(n, return_mask=True)
        device = next(vae.parameters()).device
        eps = torch.randn((n, len(latent["mean"])), device=device)
        z = latent["mean"].to(device) + eps @ latent["scale_tril"].to(device).T
        with torch.no_grad():
            return vae.split_output(vae.decode(z))
    generator = models["generator"]
    device = generator.head.weight.device
    counts = norm.sample_counts(n, device)
    return generator.sample(n, counts=counts, return_mask=True)


def jet_features_from_relative(points: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative jet mass m/pT_jet and vector-sum pT/pT_jet of massless particles.

    points (B, P, 3) = (eta_rel, phi_rel, pT_rel), weight (B, P) (1 real, 0 padding) -> two
    (B,) tensors (differentiable).
    """
    eta, phi, pt = points[..., 0], points[..., 1], points[..., 2] * weight
    px, py = (pt * torch.cos(phi)).sum(1), (pt * torch.sin(phi)).sum(1)
    pz, energy = (pt * torch.sinh(eta)).sum(1), (pt * torch.cosh(eta)).sum(1)
    mass2 = energy.square() - px.square() - py.square() - pz.square()
    return torch.sqrt(mass2.clamp_min(1e-12)), torch.sqrt((px.square() + py.square()).clamp_min(1e-12))


# ----------------------------------------------------------------------------- steps


def _vae_step(config, data: PointSets, norm: Normalisation, models, optimizers, x, mask) -> dict[str, float]:
    from jetlab.models.vae import relative_jet_mass_pt, vae_loss

    vae, opt = models["vae"], optimizers["vae"]
    recon, mu, logvar = vae(x, mask)
    loss, parts = vae_loss(x, mask, recon, mu, logvar, config.kl_weight,
                           n_coords=data.n_coords, beta_features=config.nnd_feature_weight)
    if data.kind == "jets" and (config.mass_weight or config.pt_weight):
        # jet terms on the physical (de-normalised) features
        points = recon[..., : norm.n_features]
        recon_mask = None
        if vae.existence:  # the n most likely points, n = real points of x (as in vae_loss)
            rank = recon[..., -1].detach().argsort(1, descending=True).argsort(1)
            recon_mask = rank < mask.sum(1, keepdim=True)
        mass_gen, pt_gen = relative_jet_mass_pt(norm.decode_differentiable(points), recon_mask)
        mass_real, pt_real = relative_jet_mass_pt(norm.decode_differentiable(x), mask)
        mass_term = (mass_gen - mass_real).square().mean()
        pt_term = (pt_gen - pt_real).square().mean()
        loss = loss + config.mass_weight * mass_term + config.pt_weight * pt_term
        parts.update(mass=mass_term.item(), pt=pt_term.item())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"loss": loss.item(), **parts}


def _gan_step(config, data, norm, models, optimizers, x, mask) -> dict[str, float]:
    """One generator update after ``d_steps`` discriminator updates; fake sets get the
    multiplicities of the real batch."""
    import torch.nn.functional as F

    gen, disc = models["generator"], models["discriminator"]
    opt_g, opt_d = optimizers["generator"], optimizers["discriminator"]
    batch = x.shape[0]
    counts = None if norm.always_full else mask.sum(1)
    ls = config.gan_loss == "ls"

    for _ in range(config.d_steps):
        with torch.no_grad():
            fake, fake_mask = gen.sample(batch, counts=counts, return_mask=True)
        real = x.detach().requires_grad_(config.r1_gamma > 0)
        d_real, d_fake = disc(real, mask), disc(fake, fake_mask)
        if ls:
            loss_d = (d_real - 1).square().mean() + d_fake.square().mean()
        else:
            loss_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        if config.r1_gamma > 0:
            (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
            r1 = grad.square().sum((1, 2)).mean()
            loss_d = loss_d + 0.5 * config.r1_gamma * r1
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

    disc.requires_grad_(False)
    fake, fake_mask = gen.sample(batch, counts=counts, return_mask=True)
    d_fake_g = disc(fake, fake_mask)
    loss_g = (d_fake_g - 1).square().mean() if ls else F.softplus(-d_fake_g).mean()
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    disc.requires_grad_(True)
    out = {"loss_d": loss_d.item(), "loss_g": loss_g.item(),
           "d_real": d_real.detach().mean().item(), "d_fake": d_fake.mean().item()}
    if config.r1_gamma > 0:
        out["r1"] = r1.item()
    return out


# ----------------------------------------------------------------------------- checkpoints


def _load_checkpoint(run_dir: Path) -> dict:
    from jetlab.training.checkpoint import load_checkpoint

    path = run_dir / CHECKPOINT_NAME
    if not path.is_file():
        raise InputError(run_dir, f"not a fastsim run (no {CHECKPOINT_NAME}; train one with `jetlab fastsim train`)")
    return load_checkpoint(path, expect_meta={"task": _CHECKPOINT_TASK})


def _device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise JetlabError(f"device {name!r} requested but torch sees no CUDA device; use --device cpu")
    return torch.device(name)


# ----------------------------------------------------------------------------- plots


def _plot_samples(run_dir: Path, tag: str, data: PointSets, real, real_mask, gen, gen_mask, title: str) -> list[str]:
    from jetlab.viz import samples as sample_plots

    written = []
    if data.kind == "jets":
        path = run_dir / f"{tag}_jet_images.png"
        sample_plots.plot_jet_images(real, real_mask, gen, gen_mask, path, title=title)
        written.append(path.name)
        path = run_dir / f"{tag}_histograms.png"
        sample_plots.plot_jet_feature_histograms(real, real_mask, gen, gen_mask, path, title=title)
        written.append(path.name)
    else:
        path = run_dir / f"{tag}_samples.png"
        sample_plots.plot_point_cloud_comparison(real, real_mask, gen, gen_mask, path, title=title)
        written.append(path.name)
    return written


def _generate_raw(config, models, norm: Normalisation, data_kind: str, n: int, batch_size: int = 128,
                  latent: dict | None = None):
    """n generated sets as raw (points (n, P, F), mask (n, P)), jets post-processed."""
    points, masks = [], []
    for model in models.values():
        model.eval()
    with torch.no_grad():
        for start in range(0, n, batch_size):
            x, m = _generate_model_tensor(config, models, norm, min(batch_size, n - start), latent)
            p, m = norm.decode(x, m)
            points.append(p)
            masks.append(m)
    for model in models.values():
        model.train()
    points, mask = np.concatenate(points), np.concatenate(masks)
    if data_kind == "jets":
        points, mask = postprocess_jets(points, mask)
    return points, mask


def _with_mask(points: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.concatenate([points, mask[..., None].astype(points.dtype)], axis=-1)


# ----------------------------------------------------------------------------- training


def train_fastsim(config: FastsimConfig, run_dir: str | Path, *, resume: bool = False, show_progress: bool | None = None) -> dict:
    """Train (or, with ``resume``, continue) a generator; returns the history dict.

    ``run_dir`` gets ``config.yaml``, ``checkpoint.pt`` (every epoch, atomically),
    ``history.json`` and the sample plots. Without ``resume`` the run directory must not
    hold a checkpoint already.
    """
    from jetlab.training.checkpoint import (
        capture_rng_state,
        restore_rng_state,
        save_checkpoint,
    )
    from jetlab.utils.progress import progress

    config.validate()
    run_dir = Path(run_dir)
    ckpt = None
    if resume:
        if (run_dir / CHECKPOINT_NAME).is_file():
            ckpt = _load_checkpoint(run_dir)
    elif (run_dir / CHECKPOINT_NAME).exists():
        raise InputError(run_dir, "already holds a trained run; pass --resume to continue it or choose another --out")
    device = _device(config.device)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / CONFIG_NAME)

    data = load_point_sets(config)
    if ckpt is not None:
        norm = Normalisation.from_state_dict(ckpt["normalisation"])
    else:
        log_columns = (data.feature_names.index("ptrel"),) if config.log_pt and data.kind == "jets" else ()
        norm = Normalisation.fit(data.train, data.train_mask, log_columns)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed % 2**32)
        random.seed(config.seed)
    models = _build_models(config, data.n_points, norm)
    for model in models.values():
        model.to(device)
    optimizers = _build_optimizers(config, models)
    history: list[dict] = []
    start_epoch = 1
    if ckpt is not None:
        for name, model in models.items():
            model.load_state_dict(ckpt["models"][name])
        for name, opt in optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][name])
        history = list(ckpt["history"])
        start_epoch = int(ckpt["epoch"]) + 1
        restore_rng_state(ckpt["rng"])
        log.info("resuming %s at epoch %d of %d", run_dir, start_epoch, config.epochs)

    train_x = torch.as_tensor(data.train, device=device)
    train_mask = torch.as_tensor(data.train_mask, device=device)
    n_train = len(train_x)
    step = _vae_step if config.model == "vae" else _gan_step
    unit = "jet" if data.kind == "jets" else "set"
    result = {"epochs": history, "final_metrics": None}

    latent = ckpt.get("latent") if ckpt is not None else None
    session_start = time.perf_counter()
    for epoch in range(start_epoch, config.epochs + 1):
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(config.seed * 1_000_003 + epoch))
        running: dict[str, float] = {}
        sums: dict[str, float] = {}
        n_batches = 0
        started = time.perf_counter()
        bar = progress(total=n_train, desc=f"{config.model} epoch {epoch}/{config.epochs}", unit=unit,
                       disable=None if show_progress is None else not show_progress)
        for begin in range(0, n_train, config.batch_size):
            index = order[begin:begin + config.batch_size].to(device)
            if len(index) < 2:
                continue
            mask = train_mask[index]
            x = norm.encode(train_x[index], mask)
            losses = step(config, data, norm, models, optimizers, x, mask)
            for key, value in losses.items():
                if not math.isfinite(value):
                    raise JetlabError(
                        f"{run_dir}: training diverged at epoch {epoch} ({key} = {value}); "
                        "lower the learning rate or resume from the last checkpoint"
                    )
                sums[key] = sums.get(key, 0.0) + value
                running[key] = value if key not in running else 0.9 * running[key] + 0.1 * value
            n_batches += 1
            bar.update(len(index))
            bar.set_postfix({k: f"{v:.4g}" for k, v in running.items()}, refresh=False)
        bar.close()
        elapsed = time.perf_counter() - started
        record = {"epoch": epoch, "time_s": round(elapsed, 3), "samples_per_s": round(n_train / max(elapsed, 1e-9), 1)}
        record.update({k: v / max(n_batches, 1) for k, v in sums.items()})

        last = epoch == config.epochs
        if config.time_limit_min and time.perf_counter() - session_start > 60 * config.time_limit_min and not last:
            log.info("time limit of %g min reached after epoch %d; resume to continue", config.time_limit_min, epoch)
            record["stopped"] = "time limit"
            last = True
        plotting = bool(config.plot_every) and (epoch % config.plot_every == 0 or last)
        if config.model == "vae" and config.vae_sampling == "gaussian" and (plotting or last):
            latent = {"epoch": epoch, **fit_latent_gaussian(models["vae"], norm, data.train, data.train_mask)}
        if plotting:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(config.seed + 7919)
                n_plot = max(8, min(config.plot_samples, len(data.val) or config.plot_samples))
                gen_points, gen_mask = _generate_raw(config, models, norm, data.kind, n_plot, latent=latent)
            real, real_mask = (data.val, data.val_mask) if len(data.val) else (data.train, data.train_mask)
            record["plots"] = _plot_samples(run_dir, f"epoch{epoch:04d}", data, real[:n_plot], real_mask[:n_plot],
                                            gen_points, gen_mask, f"{config.model} {data.name} epoch {epoch}")
        if last and data.kind == "jets" and config.metrics_samples and len(data.val) >= 4:
            from jetlab.metrics.generation import evaluate_generated

            n_metric = min(config.metrics_samples, len(data.val))
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(config.seed + 104729)
                gen_points, gen_mask = _generate_raw(config, models, norm, data.kind, n_metric, latent=latent)
            metrics = evaluate_generated(_with_mask(data.val[:n_metric], data.val_mask[:n_metric]),
                                         _with_mask(gen_points, gen_mask))
            result["final_metrics"] = metrics
            record["metrics"] = metrics
        history.append(record)
        log.info("epoch %d: %s", epoch, ", ".join(f"{k}={v:.4g}" for k, v in record.items()
                                                   if isinstance(v, float) and k not in ("time_s",)))
        checkpoint = {
            "meta": {"task": _CHECKPOINT_TASK, "model": config.model, "data": data.name},
            "config": dataclasses.asdict(config),
            "epoch": epoch,
            "data": {"kind": data.kind, "name": data.name, "feature_names": list(data.feature_names),
                     "n_points": data.n_points, "n_coords": data.n_coords, "jet_class": config.jet_class},
            "normalisation": norm.state_dict(),
            "models": {name: model.state_dict() for name, model in models.items()},
            "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
            "history": history,
            "latent": latent,
            "rng": capture_rng_state(),
        }
        save_checkpoint(run_dir / CHECKPOINT_NAME, checkpoint)
        atomic_write_json(run_dir / HISTORY_NAME, {"config": dataclasses.asdict(config), "epochs": history,
                                                   "final_metrics": result["final_metrics"]})
        if last:
            break
    if start_epoch > config.epochs:
        log.info("%s: already trained for %d epochs; nothing to do", run_dir, start_epoch - 1)
        if ckpt is not None:
            result["final_metrics"] = next((r["metrics"] for r in reversed(history) if "metrics" in r), None)
    return result


# ----------------------------------------------------------------------------- trained runs


class TrainedGenerator:
    """A trained run loaded for generation: ``TrainedGenerator.load(RUN).generate(n, seed)``."""

    def __init__(self, run_dir: Path, config: FastsimConfig, data_info: dict, norm: Normalisation,
                 models: dict[str, torch.nn.Module], epoch: int, latent: dict | None = None):
        self.latent = latent
        self.run_dir = run_dir
        self.config = config
        self.data_info = data_info
        self.normalisation = norm
        self.models = models
        self.epoch = epoch

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "cpu") -> "TrainedGenerator":
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise InputError(run_dir, "no such run directory")
        _device(device)
        ckpt = _load_checkpoint(run_dir)
        config = FastsimConfig(**ckpt["config"])
        config.device = device
        norm = Normalisation.from_state_dict(ckpt["normalisation"])
        models = _build_models(config, ckpt["data"]["n_points"], norm)
        for name, model in models.items():
            model.load_state_dict(ckpt["models"][name])
            model.to(device).eval()
        if config.model == "gan":
            del models["discriminator"]
        latent = None
        if config.model == "vae" and config.vae_sampling == "gaussian":
            latent = ckpt.get("latent")
            if latent is None or latent.get("epoch") != ckpt["epoch"]:  # stale or missing: fit it now
                data = load_point_sets(config)
                latent = fit_latent_gaussian(models["vae"], norm, data.train, data.train_mask)
        return cls(run_dir, config, ckpt["data"], norm, models, int(ckpt["epoch"]), latent)

    @property
    def kind(self) -> str:
        return self.data_info["kind"]

    @property
    def batch_size(self) -> int:
        """Sets generated per network call: the GAN's pair tensors (B, P, P, hidden) stay in
        cache at 128; the VAE's MLP decoder is cheap per set."""
        return 128 if self.config.model == "gan" else 4096

    def generate(self, n: int, seed: int = 0, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """n sets: raw points (n, P, F) float32 and mask (n, P) bool (jets: pT-sorted)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return _generate_raw(self.config, self.models, self.normalisation, self.kind, n,
                                 batch_size or self.batch_size, latent=self.latent)

    def generate_model_tensor(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Network output (n, P, F) and mask (n, P) before de-normalisation (times the network alone)."""
        with torch.no_grad():
            return _generate_model_tensor(self.config, self.models, self.normalisation, n, self.latent)


def write_samples(run_dir: str | Path, n: int, out: str | Path, fmt: str = "jetnet", seed: int = 0) -> list[Path]:
    """Generate ``n`` sets from a run and write them; returns the files written.

    Jets: ``fmt="jetnet"`` -> one JetNet file (particle_features (n, P, 4), jet_features
    (n, 4) = pT, eta, mass, n_particles for a jet of pT 1 TeV at eta 0);
    ``fmt="hls4ml"`` -> hls4ml files labelled with the trained class (``out`` a ``.h5`` file,
    or a directory that gets files of <= 10,000 jets). MNIST: an HDF5 file with ``points``
    (n, P, 3) and ``mask`` (n, P) and a PNG of the first sets beside it.
    """
    if n < 1:
        raise JetlabError(f"--n must be >= 1, got {n}")
    gen = TrainedGenerator.load(run_dir)
    out = Path(out)
    points, mask = gen.generate(n, seed=seed)
    if gen.kind != "jets":
        from jetlab.io.mnist_files import write_mnist_points
        from jetlab.viz.samples import plot_point_clouds

        if out.suffix not in (".h5", ".hdf5"):
            raise JetlabError(f"--out {out}: give an .h5 file for generated MNIST point sets")
        labels = np.full(len(points), -1, dtype=np.int64)  # generated: no digit label
        write_mnist_points(out, points, mask, labels, kind=gen.data_info["name"],
                           source=f"generated by jetlab fastsim {gen.config.model} ({gen.run_dir})")
        png = out.with_suffix(".png")
        plot_point_clouds(points, mask, png, title=f"generated by {gen.run_dir.name} ({gen.config.model})")
        return [out, png]

    from jetlab.io import write_hls4ml_file, write_jetnet_file
    from jetlab.io.layout import CLASS_NAMES, MAX_JETS_PER_FILE

    if fmt == "jetnet":
        mass, pt = (t.numpy() for t in jet_features_from_relative(torch.as_tensor(points, dtype=torch.float64),
                                                                   torch.as_tensor(mask, dtype=torch.float64)))
        pz = (points[..., 2] * np.sinh(points[..., 0]) * mask).sum(1)
        eta = np.arcsinh(pz / np.maximum(pt, 1e-12))
        jet_pt = 1000.0
        jet_features = np.stack([pt * jet_pt, eta, mass * jet_pt, mask.sum(1)], axis=1).astype(np.float32)
        write_jetnet_file(out, _with_mask(points, mask).astype(np.float32), jet_features,
                          jet_class=gen.data_info["jet_class"])
        return [out]
    if fmt != "hls4ml":
        raise JetlabError(f"unknown --format {fmt!r}; choose jetnet or hls4ml")
    from jetlab.physics.particles import hls4ml_arrays_from_relative

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


def evaluate_run(run_dir: str | Path, *, data: str | None = None, n: int | None = None, seed: int = 1) -> dict:
    """Generate sets and compare them with held-out real ones (the test split).

    Jets: :func:`jetlab.metrics.generation.evaluate_generated` (W1-M, W1-P, W1-EFP, COV, MMD,
    FPD, each beside truth-vs-truth). MNIST: the 1-d Wasserstein distance of each point
    feature, beside truth-vs-truth. Writes ``RUN/evaluation.json`` and plots; returns the dict
    ``{"metrics": ..., "n_real": ..., "n_generated": ..., "table": str}``.
    """
    gen = TrainedGenerator.load(run_dir)
    config = dataclasses.replace(gen.config)
    if data is not None:
        config.data = data
    sets = load_point_sets(config)
    if sets.kind != gen.kind:
        raise JetlabError(f"--data {config.data}: {sets.kind}, but the run {run_dir} was trained on {gen.data_info['name']}")
    if sets.n_points != gen.data_info["n_points"]:
        raise JetlabError(f"{config.data}: sets of {sets.n_points} points, the run generates {gen.data_info['n_points']}")
    real, real_mask = sets.test, sets.test_mask
    if len(real) < 4:
        raise JetlabError(f"{config.data}: only {len(real)} held-out {sets.name} sets; need at least 4")
    n = min(n or len(real), len(real))
    real, real_mask = real[:n], real_mask[:n]
    points, mask = gen.generate(n, seed=seed)
    run_dir = Path(run_dir)
    if gen.kind == "jets":
        from jetlab.metrics.generation import evaluate_generated, format_metrics_table

        metrics = evaluate_generated(_with_mask(real, real_mask), _with_mask(points, mask))
        table = format_metrics_table(metrics)
    else:
        metrics = _mnist_w1(real, real_mask, points, mask, sets.feature_names, seed)
        table = "\n".join(f"{k:<14} {v['generated']:.4g}   (truth-vs-truth {v['truth']:.4g})" for k, v in metrics.items())
    plots = _plot_samples(run_dir, "evaluation", sets, real, real_mask, points, mask,
                          f"{gen.config.model} {sets.name}: evaluation")
    result = {"metrics": metrics, "n_real": int(n), "n_generated": int(n), "data": config.data,
              "epoch": gen.epoch, "plots": plots, "table": table}
    atomic_write_json(run_dir / "evaluation.json", result)
    return result


def _mnist_w1(real, real_mask, gen, gen_mask, names, seed) -> dict:
    from scipy.stats import wasserstein_distance

    half = len(real) // 2
    out = {}
    for i, name in enumerate(names):
        r = real[..., i][real_mask]
        r1, r2 = real[:half, :, i][real_mask[:half]], real[half:, :, i][real_mask[half:]]
        out[f"W1-{name}"] = {"generated": float(wasserstein_distance(r, gen[..., i][gen_mask])),
                             "truth": float(wasserstein_distance(r1, r2))}
    return out


def load_run_config(run_dir: str | Path) -> FastsimConfig:
    return load_config(FastsimConfig, Path(run_dir) / CONFIG_NAME)
