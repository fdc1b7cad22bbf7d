"""Training the flow-matching point-set generator (:class:`jetlab.models.flow.FlowGenerator`)
with the conditional flow-matching loss of :func:`jetlab.losses.flow_matching.flow_matching_loss`
(optimal-transport path, Lipman et al. arXiv:2210.02747).

One step on a batch of standardised sets x₁ (mask m): t ~ U(0, 1), x₀ ~ N(0, I),
x_t = (1 − (1 − σ_min) t) x₀ + t x₁, and one update of the velocity network on the squared
error to x₁ − (1 − σ_min) x₀ over the real particles. The validation loss uses a fixed
noise stream (the same t and x₀ every epoch), so epochs compare like with like; it is the
monitor that picks the best epoch (the per-epoch W1-M of the jets is logged beside it).

Generation: set sizes n drawn from the training multiplicities
(:meth:`~jetlab.training.point_sets.Normalisation.sample_counts`), x₀ ~ N(0, I) on the n
real particles, ``ode_steps`` steps of the ``ode_solver`` from t = 0 to 1.
"""

from __future__ import annotations

import torch

from jetlab.losses.flow_matching import flow_matching_loss
from jetlab.training.point_sets import Normalisation
from jetlab.training.tasks.base import Update
from jetlab.training.tasks.sets import SetGeneratorTask

__all__ = ["FlowTask"]

#: seed of the validation noise (t and x0), fixed so every epoch is scored on the same draws
VALIDATION_SEED = 271828


class FlowTask(SetGeneratorTask):
    """One network ``"flow"``; monitored by the validation flow-matching loss."""

    name = "flow"
    generate_batch = 1024  # the EPiC velocity network is linear in the particles

    def __init__(self, flow, optimizer, norm: Normalisation, *, kind: str, sigma_min: float = 0.0,
                 ode_steps: int = 20, ode_solver: str = "midpoint", **options):
        super().__init__({"flow": flow}, {"flow": optimizer}, norm, kind=kind, **options)
        self.sigma_min = sigma_min
        self.ode_steps = ode_steps
        self.ode_solver = ode_solver

    @property
    def flow(self) -> torch.nn.Module:
        return self.modules["flow"]

    def _loss(self, batch, generator: torch.Generator | None = None) -> torch.Tensor:
        x, mask = self.encode(batch)
        return flow_matching_loss(self.flow, x, mask, sigma_min=self.sigma_min, generator=generator)

    def train_step(self, batch, update: Update) -> dict[str, float]:
        loss = self._loss(batch)
        update("flow", loss)
        return {"loss": loss.item()}

    def validate_step(self, batch) -> dict[str, float]:
        generator = torch.Generator(device=self.device).manual_seed(VALIDATION_SEED)
        return {"loss": self._loss(batch, generator).item()}

    def sample_model_tensor(self, n: int):
        counts = self.norm.sample_counts(n, self.device)
        return self.flow.sample(n, counts=counts, steps=self.ode_steps, solver=self.ode_solver)
