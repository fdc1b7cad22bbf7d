"""What the two set generators (:mod:`.vae`, :mod:`.gan`) share: batches of raw point sets
standardised on the way in, generation of raw sets on the way out, and the per-epoch W1-M.

A batch is ``{"points": (B, P, F) raw features, "mask": (B, P) bool}``; the networks see
``Normalisation.encode(points, mask)``. :meth:`SetGeneratorTask.generate` draws sets
(network → ``Normalisation.decode`` → for jets :func:`postprocess_jets`), from a forked RNG
when a seed is given, so generating never moves the training's random stream.

For jets, :meth:`SetGeneratorTask.epoch_end` compares ``metric_samples`` generated jets
with as many validation jets: W1-M (:func:`jetlab.metrics.generation.w1m`, one batch of all of
them), logged as ``val_w1m``.
"""

from __future__ import annotations

import numpy as np
import torch

from jetlab.training.point_sets import Normalisation, postprocess_jets
from jetlab.training.tasks.base import Task

__all__ = ["SetGeneratorTask"]

#: seed of the noise behind the per-epoch metric, fixed so epochs compare like with like
METRIC_SEED = 104729


class SetGeneratorTask(Task):
    """Base class of the set generators (module docstring)."""

    #: sets generated per network call
    generate_batch = 128

    def __init__(self, modules, optimizers, norm: Normalisation, *, kind: str, device="cpu",
                 reference: tuple[np.ndarray, np.ndarray] | None = None, metric_samples: int = 1000,
                 metric_every: int = 1):
        super().__init__(modules, optimizers, device)
        self.norm = norm
        self.kind = kind
        self.reference = reference
        self.metric_samples = metric_samples
        self.metric_every = max(1, metric_every)

    @property
    def has_metric(self) -> bool:
        return (self.kind == "jets" and self.metric_samples > 0 and self.reference is not None
                and len(self.reference[0]) >= 4)

    def encode(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The model tensor (B, P, F) and mask (B, P) of a batch of raw sets."""
        points = batch["points"].to(self.device)
        mask = batch["mask"].to(self.device)
        return self.norm.encode(points, mask), mask

    def sample_model_tensor(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n generated sets before de-normalisation: (n, P, F), (n, P); global torch RNG."""
        raise NotImplementedError

    @torch.no_grad()
    def generate(self, n: int, seed: int | None = None, batch_size: int | None = None,
                 postprocess: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """n raw sets (n, P, F) float32 and masks (n, P) bool (jets post-processed unless
        ``postprocess`` is False: then as the network listed them, pT_rel <= 0 included)."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            modes = {name: module.training for name, module in self.modules.items()}
            for module in self.modules.values():
                module.eval()
            points, masks = [], []
            step = batch_size or self.generate_batch
            for start in range(0, n, step):
                p, m = self.norm.decode(*self.sample_model_tensor(min(step, n - start)))
                points.append(p)
                masks.append(m)
            for name, module in self.modules.items():
                module.train(modes[name])
        points, mask = np.concatenate(points), np.concatenate(masks)
        if self.kind == "jets" and postprocess:
            points, mask = postprocess_jets(points, mask)
        return points, mask

    def epoch_end(self, epoch: int, last: bool) -> dict[str, float]:
        if not self.has_metric or not (last or epoch % self.metric_every == 0):
            return {}
        from jetlab.metrics.generation import w1m  # lazy: start-up (scipy)

        n = min(self.metric_samples, len(self.reference[0]))
        gen, gen_mask = self.generate(n, seed=METRIC_SEED)
        score = w1m(self.reference[0][:n], gen, real_mask=self.reference[1][:n], generated_mask=gen_mask,
                    num_eval_samples=None, num_batches=1, replace=False)
        return {"w1m": score.mean}

    def state_dict(self) -> dict:
        return {"normalisation": self.norm.state_dict()}
