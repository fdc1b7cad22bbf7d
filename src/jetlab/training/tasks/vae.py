"""Training the set VAE (:class:`jetlab.models.vae.SetVAE`) with the loss of
:func:`jetlab.losses.vae.vae_loss`: NND reconstruction + β·KL, for jets optionally the
relative jet-mass and jet-pT terms on the de-standardised (physical) features.

Generation decodes ``z ~ N(0, 1)`` (``sampling="prior"``) or, by default, ``z`` from a
full-covariance Gaussian fitted to the encoder means of the training sets
(``sampling="gaussian"``, ex-post density estimation, Ghosh et al. arXiv:1903.12436;
:func:`fit_latent_gaussian`), which matches the jet-mass distribution far better when the
KL term leaves the aggregate posterior away from N(0, 1). The fit is refreshed
(:meth:`VAETask.refit_latent`) before each per-epoch metric and at the end of training.
"""

from __future__ import annotations

import numpy as np
import torch

from jetlab.choices import VAE_SAMPLING
from jetlab.losses import vae_loss
from jetlab.training.point_sets import Normalisation
from jetlab.training.tasks.base import Update
from jetlab.training.tasks.sets import SetGeneratorTask

__all__ = ["VAE_SAMPLING", "VAETask", "fit_latent_gaussian"]


@torch.no_grad()
def fit_latent_gaussian(vae: torch.nn.Module, norm: Normalisation, points: np.ndarray, mask: np.ndarray,
                        batch_size: int = 512) -> dict[str, torch.Tensor]:
    """Full-covariance Gaussian fitted to the encoder means μ(x) of ``points`` (N, P, F),
    ``mask`` (N, P): ``{"mean": (L,), "scale_tril": (L, L)}`` on the CPU."""
    device = next(vae.parameters()).device
    was_training = vae.training
    vae.eval()
    means = []
    for start in range(0, len(points), batch_size):
        m = torch.as_tensor(mask[start:start + batch_size], device=device)
        x = norm.encode(torch.as_tensor(points[start:start + batch_size], device=device), m)
        means.append(vae.encode(x, m)[0].double().cpu())
    vae.train(was_training)
    mu = torch.cat(means)
    cov = torch.cov(mu.T) if len(mu) > 1 else torch.eye(mu.shape[1], dtype=torch.float64)
    cov = cov + 1e-6 * torch.eye(len(cov), dtype=torch.float64)
    return {"mean": mu.mean(0).float(), "scale_tril": torch.linalg.cholesky(cov).float()}


class VAETask(SetGeneratorTask):
    """One network ``"vae"``; monitored by the validation loss."""

    name = "vae"
    generate_batch = 4096  # the MLP decoder is cheap per set

    def __init__(self, vae, optimizer, norm: Normalisation, *, kind: str, n_coords: int, kl_weight: float,
                 nnd_feature_weight: float = 1.0, mass_weight: float = 0.0, pt_weight: float = 0.0,
                 sampling: str = "gaussian", train_sets: tuple[np.ndarray, np.ndarray] | None = None, **options):
        super().__init__({"vae": vae}, {"vae": optimizer}, norm, kind=kind, **options)
        self.n_coords = n_coords
        self.kl_weight = kl_weight
        self.nnd_feature_weight = nnd_feature_weight
        self.jet_weights = (mass_weight, pt_weight) if kind == "jets" else (0.0, 0.0)
        self.sampling = sampling
        self.train_sets = train_sets
        self.latent: dict | None = None

    @property
    def vae(self) -> torch.nn.Module:
        return self.modules["vae"]

    def _loss(self, batch):
        x, mask = self.encode(batch)
        recon, mu, logvar = self.vae(x, mask)
        return vae_loss(x, mask, recon, mu, logvar, self.kl_weight, n_coords=self.n_coords,
                        beta_features=self.nnd_feature_weight, w_mass=self.jet_weights[0], w_pt=self.jet_weights[1],
                        to_physical=self.norm.decode_differentiable)

    def train_step(self, batch, update: Update) -> dict[str, float]:
        loss, parts = self._loss(batch)
        update("vae", loss)
        return {"loss": loss.item(), **parts}

    def validate_step(self, batch) -> dict[str, float]:
        loss, parts = self._loss(batch)
        return {"loss": loss.item(), **parts}

    def refit_latent(self) -> None:
        """Fit the generation latent to the current encoder (``sampling="gaussian"``)."""
        if self.sampling == "gaussian" and self.train_sets is not None:
            self.latent = fit_latent_gaussian(self.vae, self.norm, *self.train_sets)

    def sample_model_tensor(self, n: int):
        if self.latent is None:
            return self.vae.sample(n, return_mask=True)
        eps = torch.randn((n, len(self.latent["mean"])), device=self.device)
        z = self.latent["mean"].to(self.device) + eps @ self.latent["scale_tril"].to(self.device).T
        return self.vae.split_output(self.vae.decode(z))

    def epoch_end(self, epoch: int, last: bool) -> dict[str, float]:
        if self.has_metric and (last or epoch % self.metric_every == 0):
            self.refit_latent()
        return super().epoch_end(epoch, last)
