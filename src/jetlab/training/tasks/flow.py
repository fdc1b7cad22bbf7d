"""Training the flow-matching point-set generator (:class:`jetlab.models.flow.FlowGenerator`)
with the conditional flow-matching loss of :func:`jetlab.losses.flow_matching.flow_matching_loss`
(optimal-transport path, Lipman et al. arXiv:2210.02747).

One step on a batch of standardised sets x₁ (mask m): t ~ U(0, 1), x₀ ~ N(0, I),
x_t = (1 − (1 − σ_min) t) x₀ + t x₁, and one update of the velocity network on the squared
error to x₁ − (1 − σ_min) x₀ over the real particles. The validation loss uses a fixed
noise stream (the same t and x₀ every epoch), so epochs compare like with like; it is the
monitor that picks the best epoch (the per-epoch W1-M of the jets is logged beside it).

Jet conditioning (``condition="jet"``, :class:`JetConditions`): the network also sees the
jet's Σ pT_rel and mass (of its listed particles, in units of the jet pT; standardised), as
EPiC-FM and PC-JeDi condition on jet pT and mass. Generation draws (n, Σ pT_rel, mass)
together from the training jets, and rescales the generated pT_rel so that Σ pT_rel equals
the drawn value: generated jets obey Σ pT_rel ≤ max of the training jets by construction.

Noise-data pairing (``pairing``): ``"independent"`` or ``"ot"``, the noise particles of each
set matched to its real particles by the Hungarian algorithm
(:func:`jetlab.losses.flow_matching.ot_pair_particles`), in training and validation alike.

EMA (``ema_decay`` β > 0): a second module ``"flow_ema"``, θ̄ ← β θ̄ + (1 − β) θ after every
step of the trained network θ (:mod:`jetlab.training.ema`). The average is what validation
scores, what generates and what the best epoch keeps; being one of the task's modules it is
in every checkpoint (an exact resume) and in RUN/model.pt. β = 0: no average, the trained
network is used throughout.

Distillation (``distil_times``, :mod:`jetlab.training.distil`): batches also carry a teacher
flow's noise x₀ (``"noise"``) and the set it made from it (``"teacher"``), both in model units;
t is drawn from ``distil_times`` (the student sampler's evaluation times) and the same loss
regresses the straight line from x₀ to the teacher's set instead of to the real one.
With ``distil_feature_weight`` λ > 0 a jet-feature term is added: the jet x̂₁ = x_t + (1 − t) v
that one Euler step from t reaches (the student's own jet at t = 0 for a one-step sampler) must
have the teacher jet x_T's mass, L = L_FM + λ · mean_jets ((m(x̂₁) − m(x_T)) / σ_m)², σ_m the
training jets' (the conditions'). x̂₁'s pT_rel enter m without gradient: no gradient of the term
reaches the network's pT_rel outputs, only its η_rel, φ_rel outputs (through the weights they
share it still moves pT_rel a little; letting the mass pull on pT_rel directly bent the pT_rel
spectrum of top jets: W1 of pT_rel 2.0× truth-vs-truth against 1.2×). Both masses are of the
network's sets before generation rescales pT_rel to the drawn Σ pT_rel. With λ > 0 the
validation loss, which picks the best epoch and drives ``plateau``, is L_FM + λ · term too; the
term alone is logged beside it (``train_mass_term``, ``val_mass_term``).
The particle-wise L_FM spreads the student's errors evenly over the particles; the jet term
weighs the ones that shift the jet mass, which W1-M and the EFPs see first.

Generation: set sizes n drawn from the training multiplicities
(:meth:`~jetlab.training.point_sets.Normalisation.sample_counts`, or with the conditions),
x₀ ~ N(0, I) on the n real particles, ``ode_steps`` steps of the ``ode_solver`` from t = 0 to 1.
"""

from __future__ import annotations

import numpy as np
import torch

from jetlab.losses.flow_matching import FLOW_PAIRINGS, flow_matching_loss
from jetlab.physics.kinematics import relative_jet_kinematics
from jetlab.training.ema import ema_copy, ema_update
from jetlab.training.point_sets import Normalisation
from jetlab.training.tasks.base import Update
from jetlab.training.tasks.sets import SetGeneratorTask

__all__ = ["FLOW_CONDITIONS", "FlowTask", "JetConditions"]

FLOW_CONDITIONS = ("none", "jet")
#: seed of the validation noise (t and x0), fixed so every epoch is scored on the same draws
VALIDATION_SEED = 271828
#: training jets kept in the model file to draw conditions from
MAX_KEPT = 50_000


class JetConditions:
    """Per-jet condition c = standardised (Σ pT_rel, m / pT_jet) of the listed particles, and
    the training jets' (n, Σ pT_rel, m) to draw generation conditions from (module docstring)."""

    n_cond = 2

    def __init__(self, counts, values, mean, std):
        self.counts = np.asarray(counts, dtype=np.int64)
        self.values = np.asarray(values, dtype=np.float32).reshape(-1, 2)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    @staticmethod
    def raw(points, mask):
        """(N, 2) raw (Σ pT_rel, mass) of sets (N, P, ≥3) in (η_rel, φ_rel, pT_rel), numpy or torch."""
        jet = relative_jet_kinematics(points, mask)
        stack = torch.stack if torch.is_tensor(points) else np.stack
        return stack([jet.pt_sum, jet.mass], -1)

    @classmethod
    def fit(cls, points: np.ndarray, mask: np.ndarray, seed: int = 0) -> JetConditions:
        values = cls.raw(points.astype(np.float64), mask)
        keep = np.random.default_rng(seed).permutation(len(points))[:MAX_KEPT]
        std = values.std(0)
        return cls(mask.sum(1)[keep], values[keep], values.mean(0), np.where(std > 0, std, 1.0))

    def state_dict(self) -> dict:
        return {"counts": torch.as_tensor(self.counts), "values": torch.as_tensor(self.values),
                "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict) -> JetConditions:
        return cls(np.asarray(state["counts"]), np.asarray(state["values"]), state["mean"], state["std"])

    def standardise(self, values: torch.Tensor) -> torch.Tensor:
        return (values - torch.as_tensor(self.mean, device=values.device)) / torch.as_tensor(self.std,
                                                                                             device=values.device)

    def draw(self, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(n,) multiplicities and (n, 2) raw conditions of training jets drawn with replacement
        (global torch RNG)."""
        index = torch.randint(len(self.counts), (n,))
        return (torch.as_tensor(self.counts)[index].to(device),
                torch.as_tensor(self.values)[index].to(device))


class FlowTask(SetGeneratorTask):
    """The trained network ``"flow"`` (and with ``ema_decay`` > 0 its average ``"flow_ema"``);
    monitored by the validation flow-matching loss (with the jet-mass term when on; module docstring)."""

    name = "flow"
    generate_batch = 1024  # the EPiC velocity network is linear in the particles

    def __init__(self, flow, optimizer, norm: Normalisation, *, kind: str, sigma_min: float = 0.0,
                 ode_steps: int = 2, ode_solver: str = "midpoint", conditions: JetConditions | None = None,
                 pairing: str = "independent", ema_decay: float = 0.0,
                 distil_times: tuple[float, ...] | None = None, distil_feature_weight: float = 0.0, **options):
        if pairing not in FLOW_PAIRINGS:
            raise ValueError(f"unknown pairing {pairing!r}; known: {', '.join(FLOW_PAIRINGS)}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        modules = {"flow": flow, **({"flow_ema": ema_copy(flow)} if ema_decay > 0 else {})}
        super().__init__(modules, {"flow": optimizer}, norm, kind=kind, **options)
        self.pairing = pairing
        self.ema_decay = ema_decay
        self.sigma_min = sigma_min
        self.ode_steps = ode_steps
        self.ode_solver = ode_solver
        self.conditions = conditions
        self.distil_times = distil_times
        self.distil_feature_weight = distil_feature_weight

    @property
    def flow(self) -> torch.nn.Module:
        """The trained network θ."""
        return self.modules["flow"]

    @property
    def network(self) -> torch.nn.Module:
        """The network validated and sampled: the EMA θ̄ when on, else θ."""
        return self.modules.get("flow_ema", self.modules["flow"])

    def _loss(self, batch, generator: torch.Generator | None = None, net: torch.nn.Module | None = None
              ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss to minimise and its logged parts (``mass_term``: the jet-mass term before λ)."""
        x, mask = self.encode(batch)
        cond = None
        if self.conditions is not None:
            cond = self.conditions.standardise(JetConditions.raw(batch["points"].to(self.device).float(), mask))

        net = self.flow if net is None else net

        seen = {}  # the last call's x_t and v: the jet-mass term extrapolates them to t = 1

        def velocity(x_t, t, m):
            seen["x_t"], seen["v"] = x_t, net(x_t, t, m, cond)
            return seen["v"]

        if self.distil_times is None:
            return flow_matching_loss(velocity, x, mask, sigma_min=self.sigma_min, generator=generator,
                                      pairing=self.pairing), {}
        times = torch.tensor(self.distil_times, device=self.device, dtype=x.dtype)
        t = times[torch.randint(len(times), (len(x),), generator=generator, device=self.device)]
        teacher = batch["teacher"].to(self.device)
        loss = flow_matching_loss(velocity, teacher, mask, t=t, x0=batch["noise"].to(self.device))
        if not self.distil_feature_weight:
            return loss, {}
        reached = seen["x_t"] + (1.0 - t).reshape(-1, 1, 1) * seen["v"]
        term = self.jet_mass_distance(reached, teacher, mask)
        return loss + self.distil_feature_weight * term, {"mass_term": term.item()}

    def jet_mass_distance(self, x: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """mean over sets of ((m(x) − m(target)) / σ_m)², the jet masses of the decoded sets in the
        conditions' standard deviation σ_m, with no gradient through x's pT_rel (module docstring).
        x, target (B, P, F) in model units, mask (B, P)."""
        if self.conditions is None:
            raise ValueError("the jet-mass distillation term needs the jet conditions (flow_condition 'jet')")
        raw = self.norm.decode_differentiable(x)
        raw = torch.cat([raw[..., :2], raw[..., 2:].detach()], -1)
        mass = relative_jet_kinematics(raw, mask).mass
        target_mass = relative_jet_kinematics(self.norm.decode_differentiable(target), mask).mass
        return ((mass - target_mass) / float(self.conditions.std[1])).pow(2).mean()

    def train_step(self, batch, update: Update) -> dict[str, float]:
        loss, parts = self._loss(batch)
        update("flow", loss)
        if "flow_ema" in self.modules:
            ema_update(self.modules["flow_ema"], self.flow, self.ema_decay)
        return {"loss": loss.item(), **parts}

    def validate_step(self, batch) -> dict[str, float]:
        generator = torch.Generator(device=self.device).manual_seed(VALIDATION_SEED)
        loss, parts = self._loss(batch, generator, self.network)
        return {"loss": loss.item(), **parts}

    def sample_model_tensor(self, n: int):
        if self.conditions is None:
            counts = self.norm.sample_counts(n, self.device)
            return self.network.sample(n, counts=counts, steps=self.ode_steps, solver=self.ode_solver)
        counts, target = self.conditions.draw(n, self.device)
        x, mask = self.network.sample(n, counts=counts, cond=self.conditions.standardise(target), steps=self.ode_steps,
                                   solver=self.ode_solver)
        # rescale pT_rel so that the jet's Σ pT_rel is the drawn one (raw units, then back)
        raw = self.norm.decode_differentiable(x)
        pt = torch.where(mask, raw[..., 2], torch.zeros_like(raw[..., 2]))
        scale = target[:, 0] / pt.sum(1).clamp_min(1e-12)
        raw = torch.cat([raw[..., :2], (raw[..., 2] * scale.unsqueeze(1)).unsqueeze(-1), raw[..., 3:]], -1)
        return self.norm.encode(raw, mask), mask
