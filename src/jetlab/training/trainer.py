"""The generic supervised training loop: sharded mini-batches, an update strategy,
validation, learning-rate schedule, early stopping and exact resume.

Data path. The fast path holds each split in memory as a dict of stacked tensors
(``JetSplit.tensors()``: e.g. "particles" (N, P, F), "mask" (N, P), "label" (N,)) and
indexes mini-batches straight out of them; no per-jet ``__getitem__``, no HDF5 reads in
the loop. Splits too big for memory fall back to a ``DataLoader`` over the dataset with
the same index batches (:class:`DatasetSource`).

Sharding (the semantics of ``DistributedSampler``). In epoch e the N jets are permuted
with a generator seeded by ``seed + e`` (identical on every rank), cut into *global*
batches of ``B = batch_size x world_size`` jets, and rank k takes entries k, k+K, k+2K,…
of each global batch. So every epoch each rank sees a disjoint 1/K of the data, every
rank takes the same number of steps, and K ranks with local batch b visit exactly the
jets one process with batch K·b visits, step by step. A last incomplete global batch is
kept when it has at least max(B/2, K) jets and dropped otherwise (a step on a handful of
jets is mostly noise). Evaluation keeps everything.

Per epoch ``Trainer.fit`` runs training steps (see
:mod:`jetlab.training.strategies` for the step protocol), all-reduces the summed loss
and accuracy, evaluates the validation split, steps the LR scheduler
(``ReduceLROnPlateau`` on the validation loss, any other scheduler once per epoch),
counts epochs without improvement for early stopping, and rank 0 writes the checkpoint
(:mod:`jetlab.training.checkpoint`) atomically. ``fit(resume=True)`` restores all of it,
so a killed run continued with ``resume`` ends with the same weights as an uninterrupted
one.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from jetlab.distributed.env import DistContext
from jetlab.training.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from jetlab.training.strategies import LocalUpdate, UpdateStrategy
from jetlab.utils.progress import progress

__all__ = ["TensorSource", "DatasetSource", "ShardedBatches", "Trainer", "FitResult"]

log = logging.getLogger(__name__)


class TensorSource:
    """Mini-batches indexed out of in-memory tensors: ``tensors[key]`` (N, ...)."""

    def __init__(self, tensors: Mapping[str, torch.Tensor]):
        sizes = {key: len(t) for key, t in tensors.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"tensors of different lengths: {sizes}")
        self.tensors = dict(tensors)
        self.n = next(iter(sizes.values())) if sizes else 0

    def __len__(self) -> int:
        return self.n

    def batches(self, index_batches: Sequence[torch.Tensor]) -> Iterator[dict[str, torch.Tensor]]:
        for index in index_batches:
            yield {key: t[index] for key, t in self.tensors.items()}


class DatasetSource:
    """Mini-batches read item by item from a map-style dataset (the out-of-memory path),
    with ``num_workers`` DataLoader worker processes."""

    def __init__(self, dataset: torch.utils.data.Dataset, num_workers: int = 0):
        self.dataset = dataset
        self.num_workers = num_workers

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self, index_batches: Sequence[torch.Tensor]) -> Iterator[dict[str, torch.Tensor]]:
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=[index.tolist() for index in index_batches],
            num_workers=self.num_workers,
            persistent_workers=False,
        )
        yield from loader


class ShardedBatches:
    """This rank's share of every mini-batch of an epoch (module docstring, "Sharding").

    Iterating yields ``(batch, n_local, n_global)``: the local batch dict, its size and the
    size of the global batch it is part of. Call :meth:`set_epoch` before each epoch.
    """

    def __init__(self, source, batch_size: int, context: DistContext | None = None, *,
                 shuffle: bool, seed: int = 0, training: bool = True):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.source = source
        self.batch_size = batch_size
        self.context = context or DistContext()
        self.shuffle = shuffle
        self.seed = seed
        self.training = training
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.context.world_size

    def _global_batches(self) -> list[torch.Tensor]:
        n = len(self.source)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        batches = list(torch.split(order, self.global_batch_size))
        if self.training and batches:
            smallest_kept = max(math.ceil(self.global_batch_size / 2), self.context.world_size)
            if len(batches[-1]) < min(smallest_kept, self.global_batch_size):
                batches.pop()
        return batches

    def __len__(self) -> int:
        return len(self._global_batches())

    def n_jets(self) -> int:
        """Jets in all global batches of an epoch (all ranks together)."""
        return sum(len(b) for b in self._global_batches())

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], int, int]]:
        rank, world = self.context.rank, self.context.world_size
        global_batches = self._global_batches()
        local = [b[rank::world] for b in global_batches]
        keep = [i for i, b in enumerate(local) if len(b) > 0]  # only in evaluation can one be empty
        sizes = [len(b) for b in global_batches]
        for i, batch in zip(keep, self.source.batches([local[i] for i in keep])):
            yield batch, len(local[i]), sizes[i]


@dataclasses.dataclass
class FitResult:
    """What :meth:`Trainer.fit` hands back (identical on every rank)."""

    history: list[dict[str, float]]
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped_early: bool
    elapsed_s: float
    best_state: dict[str, torch.Tensor] | None


class Trainer:
    """Supervised classifier training: cross-entropy on ``model(*[batch[k] for k in input_keys])``.

    ``meta`` identifies the run in the checkpoint (e.g. model name and hyperparameters);
    resuming from a checkpoint whose ``meta`` differs is an error.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        input_keys: Sequence[str],
        target_key: str = "label",
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        scheduler=None,
        strategy: UpdateStrategy | None = None,
        context: DistContext | None = None,
        patience: int | None = 10,
        checkpoint_path: str | os.PathLike | None = None,
        meta: dict[str, Any] | None = None,
        grad_clip: float | None = None,
        progress_desc: str = "train",
    ):
        self.model = model
        self.optimizer = optimizer
        self.input_keys = tuple(input_keys)
        self.target_key = target_key
        self.loss_fn = loss_fn or nn.functional.cross_entropy
        self.scheduler = scheduler
        self.strategy = strategy or LocalUpdate()
        self.context = context or DistContext()
        self.patience = patience
        self.checkpoint_path = checkpoint_path
        self.meta = dict(meta or {})
        self.grad_clip = grad_clip
        self.progress_desc = progress_desc
        self.device = torch.device(self.context.device)

    # ------------------------------------------------------------------ steps
    def _inputs(self, batch: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        return [batch[key].to(self.device, non_blocking=True) for key in self.input_keys]

    def _train_epoch(self, module: nn.Module, batches: ShardedBatches, epoch: int) -> tuple[float, float, float]:
        module.train()
        loss_sum = torch.zeros((), dtype=torch.float64)
        correct = torch.zeros((), dtype=torch.float64)
        seen = 0
        total = batches.n_jets()
        start = time.perf_counter()
        with progress(total=total, desc=f"{self.progress_desc} epoch {epoch}", unit="jet") as bar:
            for batch, n_local, n_global in batches:
                target = batch[self.target_key].to(self.device, non_blocking=True)
                logits = module(*self._inputs(batch))
                loss = self.loss_fn(logits, target)
                self.optimizer.zero_grad(set_to_none=True)
                (loss * self.strategy.loss_weight(n_local, n_global)).backward()
                self.strategy.after_backward()
                if self.grad_clip:
                    nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)
                self.strategy.step()
                with torch.no_grad():
                    loss_sum += loss.detach().double().cpu() * n_local
                    correct += (logits.argmax(dim=1) == target).sum().double().cpu()
                seen += n_local
                bar.update(n_global)
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", refresh=False)
        totals = self.context.all_reduce_sum([loss_sum.item(), correct.item(), float(seen)])
        n = max(totals[2].item(), 1.0)
        return totals[0].item() / n, totals[1].item() / n, time.perf_counter() - start

    @torch.no_grad()
    def evaluate(self, batches: ShardedBatches) -> dict[str, float]:
        """Mean loss and accuracy over all ranks' shares of ``batches``."""
        model = self.strategy.unwrap() if self.strategy.model is not None else self.model
        model.eval()
        loss_sum = 0.0
        correct = 0.0
        seen = 0.0
        for batch, n_local, _ in batches:
            target = batch[self.target_key].to(self.device)
            logits = model(*self._inputs(batch))
            loss_sum += nn.functional.cross_entropy(logits.double(), target, reduction="sum").item()
            correct += (logits.argmax(dim=1) == target).sum().item()
            seen += n_local
        totals = self.context.all_reduce_sum([loss_sum, correct, seen])
        n = max(totals[2].item(), 1.0)
        return {"loss": totals[0].item() / n, "accuracy": totals[1].item() / n}

    @torch.no_grad()
    def predict(self, batches: ShardedBatches) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's ``(labels (n,), softmax probabilities (n, C))`` for ``batches``."""
        model = self.strategy.unwrap() if self.strategy.model is not None else self.model
        model.eval()
        labels, probs = [], []
        for batch, _, _ in batches:
            labels.append(batch[self.target_key])
            probs.append(torch.softmax(model(*self._inputs(batch)).double(), dim=1).cpu())
        if not labels:
            return torch.zeros(0, dtype=torch.int64), torch.zeros(0, 0, dtype=torch.float64)
        return torch.cat(labels), torch.cat(probs)

    # ------------------------------------------------------------------ loop
    def _gather_rng(self) -> list[dict[str, Any]]:
        state = capture_rng_state()
        if not self.context.distributed:
            return [state]
        import torch.distributed as dist

        states: list[Any] = [None] * self.context.world_size
        dist.all_gather_object(states, state)
        return states

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def fit(
        self,
        train: ShardedBatches,
        val: ShardedBatches,
        epochs: int,
        *,
        resume: bool = False,
        stop_after_epoch: int | None = None,
        on_best: Callable[[nn.Module, int, dict[str, float]], None] | None = None,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
    ) -> FitResult:
        """Train up to epoch ``epochs`` (counting from 1, across resumes).

        ``stop_after_epoch`` ends this call after that epoch's checkpoint as a kill would
        (for tests and time-boxed jobs). ``on_best(model, epoch, val)`` runs on rank 0
        whenever the validation loss improves; ``on_epoch(record)`` after every epoch.
        """
        history: list[dict[str, float]] = []
        start_epoch = 1
        best_val_loss = math.inf
        best_epoch = 0
        best_state = None
        bad_epochs = 0
        stopped_early = False
        elapsed_before = 0.0
        if resume:
            state = load_checkpoint(self.checkpoint_path, expect_meta=self.meta)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state.get("scheduler") is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            self.strategy.load_state_dict(state.get("strategy", {}))
            history = list(state["history"])
            start_epoch = int(state["epoch"]) + 1
            best_val_loss = float(state["best_val_loss"])
            best_epoch = int(state["best_epoch"])
            best_state = state.get("best_model")
            bad_epochs = int(state["epochs_without_improvement"])
            stopped_early = bool(state["stopped_early"])
            elapsed_before = float(state.get("elapsed_s", 0.0))
            rng = state["rng"]
            if len(rng) != self.context.world_size and self.context.is_main:
                log.warning("checkpoint was written by %d ranks, resuming on %d: dropout streams differ",
                            len(rng), self.context.world_size)
            restore_rng_state(rng[self.context.rank % len(rng)])
            if self.context.is_main:
                log.info("resuming %s after epoch %d (best val loss %.4f at epoch %d)",
                         self.checkpoint_path, start_epoch - 1, best_val_loss, best_epoch)
        module = self.strategy.setup(self.model, self.optimizer, self.context)
        t0 = time.perf_counter()
        epoch = start_epoch - 1
        for epoch in range(start_epoch, epochs + 1):
            if stopped_early:
                epoch -= 1
                break
            train.set_epoch(epoch)
            train_loss, train_acc, train_time = self._train_epoch(module, train, epoch)
            self.strategy.end_epoch(epoch)
            val_metrics = self.evaluate(val)
            if self.scheduler is not None:
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    self.scheduler.step(val_metrics["loss"])
                else:
                    self.scheduler.step()
            improved = val_metrics["loss"] < best_val_loss
            if improved:
                best_val_loss, best_epoch, bad_epochs = val_metrics["loss"], epoch, 0
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in self.strategy.unwrap().state_dict().items()})
            else:
                bad_epochs += 1
            stopped_early = self.patience is not None and bad_epochs >= self.patience
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "val_loss": val_metrics["loss"],
                "val_accuracy": val_metrics["accuracy"],
                "lr": self._lr(),
                "epoch_time_s": train_time,
                "jets_per_s": train.n_jets() / train_time if train_time > 0 else float("nan"),
            }
            history.append(record)
            rng = self._gather_rng()
            if self.context.is_main:
                log.info(
                    "epoch %d: train loss %.4f acc %.3f | val loss %.4f acc %.3f | lr %.2e | %.0f jets/s%s",
                    epoch, train_loss, train_acc, val_metrics["loss"], val_metrics["accuracy"], record["lr"],
                    record["jets_per_s"], " | best" if improved else "",
                )
                if improved and on_best is not None:
                    on_best(self.strategy.unwrap(), epoch, val_metrics)
                if self.checkpoint_path is not None:
                    save_checkpoint(self.checkpoint_path, {
                        "meta": self.meta,
                        "epoch": epoch,
                        "model": self.strategy.unwrap().state_dict(),
                        "best_model": best_state,
                        "optimizer": self.optimizer.state_dict(),
                        "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                        "strategy": self.strategy.state_dict(),
                        "best_val_loss": best_val_loss,
                        "best_epoch": best_epoch,
                        "epochs_without_improvement": bad_epochs,
                        "stopped_early": stopped_early,
                        "history": history,
                        "rng": rng,
                        "elapsed_s": elapsed_before + time.perf_counter() - t0,
                    })
                if on_epoch is not None:
                    on_epoch(record)
            self.context.barrier()
            if stopped_early and self.context.is_main:
                log.info("early stopping: no validation improvement for %d epochs", bad_epochs)
            if stop_after_epoch is not None and epoch >= stop_after_epoch:
                break
            if stopped_early:
                break
        return FitResult(
            history=history,
            best_epoch=best_epoch,
            best_val_loss=best_val_loss,
            epochs_run=len(history),
            stopped_early=stopped_early,
            elapsed_s=elapsed_before + time.perf_counter() - t0,
            best_state=best_state,
        )
