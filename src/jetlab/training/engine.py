"""The one training loop of jetlab: taggers and generators alike.

:class:`Engine` trains a :class:`~jetlab.training.tasks.base.Task` (which owns its networks,
optimizers, losses and numbers, and knows nothing of epochs, ranks or files) over
mini-batches of :class:`~jetlab.training.batches.ShardedBatches`. Per epoch:

1. **train**: for every batch the task's ``train_step(batch, update)`` runs its forward
   passes and calls ``update(name, loss)`` for each network it updates; the updater applies
   the :class:`~jetlab.training.strategies.base.UpdateStrategy` protocol (loss weight, backward,
   gradient exchange, clipping, step). The numbers a step returns (batch means) are
   averaged over the epoch and over the ranks, weighted by local batch size → ``train_<k>``.
2. **divergence check**: a non-finite training number stops the run with a one-line error;
   that epoch is not checkpointed, so the last good checkpoint stays.
3. **validate**: ``validate_step`` on the validation batches, averaged likewise →
   ``val_<k>``; then ``task.epoch_end`` on rank 0 (e.g. a generator's samples, plots and
   W1-M), broadcast to every rank.
4. **schedule, best, early stopping**: ``val_<task.monitor>`` drives ``ReduceLROnPlateau``,
   picks the best epoch (its weights are kept) and counts epochs without improvement
   (``patience``; 0 = never stop early). A task without a monitor keeps the last epoch.
5. **checkpoint**: rank 0 writes ``checkpoint.pt`` atomically
   (:mod:`jetlab.training.checkpoint`): networks, optimizers, schedulers, strategy and task
   state, best weights, history and every rank's RNG state. ``fit(resume=True)`` restores
   all of it, so a killed run continued with ``resume`` ends with the same weights as an
   uninterrupted one (bit for bit on the same machine).
6. **callbacks** on rank 0: ``on_best(task, epoch, record)`` when the monitor improved,
   ``on_epoch(record)`` after the checkpoint; ``on_epoch`` returning True stops the run
   (e.g. a pruned hyperparameter trial), on every rank.

Steps 3-6 are :meth:`Engine.close_epoch`. Under an asynchronous strategy
(:mod:`jetlab.training.strategies.asynchronous`: Downpour, EASGD, GEM) the master trains nothing: it
serves its workers and calls ``close_epoch`` on the central weights when the workers have
together finished an epoch; the workers run step 1 only.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from jetlab.distributed.env import DistContext
from jetlab.errors import JetlabError
from jetlab.training.batches import ShardedBatches
from jetlab.training.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from jetlab.training.optimizers import make_scheduler
from jetlab.training.run_dir import clear_finished
from jetlab.training.settings import TrainSettings
from jetlab.training.strategies import LocalUpdate, UpdateStrategy
from jetlab.utils.progress import progress

__all__ = ["Engine", "FitResult", "FitState"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class FitResult:
    """What :meth:`Engine.fit` hands back (identical on every rank)."""

    history: list[dict[str, float]]
    best_epoch: int
    best_value: float | None
    epochs_run: int
    #: why the loop ended: "epochs" (all done), "early stopping", "time limit", "stop after epoch", "requested"
    stop_reason: str
    elapsed_s: float
    #: the best epoch's weights, network name -> state_dict (the last epoch's without a monitor)
    best_state: dict[str, dict[str, torch.Tensor]] | None

    @property
    def finished(self) -> bool:
        """True when the run is complete (all epochs, or early stopping), not merely paused."""
        return self.stop_reason in ("epochs", "early stopping", "requested")

    @property
    def stopped_early(self) -> bool:
        return self.stop_reason == "early stopping"


@dataclasses.dataclass
class FitState:
    """The bookkeeping of a run between epochs (what the checkpoint holds besides weights)."""

    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    start_epoch: int = 1
    best_epoch: int = 0
    best_value: float | None = None
    best_state: dict | None = None
    bad_epochs: int = 0
    stop_reason: str = "epochs"
    elapsed_before: float = 0.0
    t0: float = dataclasses.field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t0


class _Updater:
    """``update(name, loss)`` for the task: the strategy protocol for one network's step."""

    def __init__(self, strategy: UpdateStrategy, optimizers: dict[str, torch.optim.Optimizer],
                 grad_clip: float | None):
        self.strategy = strategy
        self.optimizers = optimizers
        self.grad_clip = grad_clip
        self.weight = 1.0

    def __call__(self, name: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        (loss * self.weight).backward()
        self.strategy.after_backward(name)
        if self.grad_clip:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.strategy.step(name)


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


class Engine:
    """Trains ``task`` as ``settings`` say (module docstring).

    ``meta`` identifies the run in the checkpoint (task, model, hyperparameters, data
    fingerprint); resuming from a checkpoint whose ``meta`` differs is an error naming the key.
    """

    def __init__(self, task, settings: TrainSettings, *, strategy: UpdateStrategy | None = None,
                 context: DistContext | None = None, checkpoint_path=None, meta: dict[str, Any] | None = None,
                 unit: str = "jet"):
        self.task = task
        self.settings = settings
        self.strategy = strategy or LocalUpdate()
        # an asynchronous master or worker keeps its numbers to itself: no collectives here
        self.context = self.strategy.engine_context(context or DistContext())
        self.checkpoint_path = checkpoint_path
        self.meta = dict(meta or {})
        self.unit = unit
        self.schedulers = {name: make_scheduler(settings, optimizer, task.monitor_mode)
                           for name, optimizer in task.optimizers.items()}
        if task.monitor is None and settings.schedule == "plateau":
            raise JetlabError(f"{type(task).__name__} has no validation number to watch: use --lr-schedule none or cosine")

    # ------------------------------------------------------------------ one epoch
    def _reduce(self, sums: dict[str, float], count: float) -> dict[str, float]:
        """Means over all ranks of per-batch means weighted by batch size."""
        keys = sorted(sums)
        totals = self.context.all_reduce_sum([sums[k] for k in keys] + [count]).tolist()
        n = max(totals[-1], 1.0)
        return {k: v / n for k, v in zip(keys, totals[:-1])}

    def _train_epoch(self, batches: ShardedBatches, epoch: int) -> tuple[dict[str, float], float, int]:
        """``(numbers averaged over items and ranks, seconds, items this rank trained on)``."""
        for module in self.task.modules.values():
            module.train()
        update = _Updater(self.strategy, self.task.optimizers, self.settings.grad_clip)
        sums: dict[str, float] = {}
        seen = 0
        start = time.perf_counter()
        single = not self.context.distributed
        with progress(total=batches.n_jets(), desc=f"{self.task.name} epoch {epoch}/{self.settings.epochs}",
                      unit=self.unit) as bar:
            for batch, n_local, n_global in batches:
                update.weight = self.strategy.loss_weight(n_local, n_global)
                numbers = self.task.train_step(batch, update)
                if single:  # with several ranks the epoch-end check sees it on every rank at once
                    self._check_finite(numbers, epoch)
                for key, value in numbers.items():
                    sums[key] = sums.get(key, 0.0) + value * n_local
                seen += n_local
                bar.update(n_global)
                bar.set_postfix({k: f"{v / seen:.4g}" for k, v in sums.items()}, refresh=False)
                if self.strategy.stop_requested:  # an asynchronous master said so
                    break
        return self._reduce(sums, seen), time.perf_counter() - start, seen

    @torch.no_grad()
    def validate(self, batches: ShardedBatches | None) -> dict[str, float]:
        """The task's validation numbers, averaged over every rank's share of ``batches``."""
        if batches is None:
            return {}
        for module in self.task.modules.values():
            module.eval()
        sums: dict[str, float] = {}
        seen = 0
        for batch, n_local, _ in batches:
            for key, value in self.task.validate_step(batch).items():
                sums[key] = sums.get(key, 0.0) + value * n_local
            seen += n_local
        return self._reduce(sums, seen) if seen or self.context.distributed else {}

    def _check_finite(self, numbers: dict[str, float], epoch: int) -> None:
        bad = {k: v for k, v in numbers.items() if not math.isfinite(v)}
        if bad:
            key, value = next(iter(bad.items()))
            where = self.checkpoint_path or "training"
            kept = f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else "nothing was checkpointed"
            raise JetlabError(f"{where}: training diverged in epoch {epoch} ({key} = {value}); {kept}; "
                              "lower the learning rate (--lr) and start again or --resume")

    # ------------------------------------------------------------------ the loop
    def fit(self, train: ShardedBatches, val: ShardedBatches | None, *, resume: bool = False,
            stop_after_epoch: int | None = None,
            on_best: Callable[[Any, int, dict], None] | None = None,
            on_epoch: Callable[[dict], bool | None] | None = None) -> FitResult:
        """Train up to epoch ``settings.epochs`` (counting from 1, across resumes); see the
        module docstring. ``stop_after_epoch`` ends this call after that epoch's checkpoint,
        as a kill would (tests and time-boxed jobs).

        Under an asynchronous strategy the master (``strategy.role == "master"``) serves the
        workers and closes each epoch with :meth:`close_epoch` once its workers have together
        finished it; a worker (``"worker"``) runs the training loop only, reporting each epoch
        to the master, and takes its start (weights, epoch) from the master, not the checkpoint.
        """
        strategy = self.strategy
        state = self.begin(resume and strategy.role != "worker")
        strategy.setup(self.task.modules, self.task.optimizers, self.context)
        hooks = {"on_best": on_best, "on_epoch": on_epoch}
        try:
            if strategy.role == "master":
                strategy.serve(self, state, val, stop_after_epoch=stop_after_epoch, **hooks)
            elif strategy.role == "worker":
                for epoch in range(strategy.join(), self.settings.epochs + 1):
                    train.set_epoch(epoch)
                    numbers, seconds, seen = self._train_epoch(train, epoch)
                    if strategy.stop_requested:
                        break
                    strategy.report_epoch(epoch, numbers, seen, seconds)
                    if strategy.stop_requested:
                        break
            else:
                for epoch in range(state.start_epoch, self.settings.epochs + 1):
                    train.set_epoch(epoch)
                    numbers, seconds, _ = self._train_epoch(train, epoch)
                    self._check_finite(numbers, epoch)
                    strategy.end_epoch(epoch)
                    if self.close_epoch(state, epoch, numbers, seconds, train.n_jets(), val, **hooks):
                        break
                    if stop_after_epoch is not None and epoch >= stop_after_epoch and epoch < self.settings.epochs:
                        state.stop_reason = "stop after epoch"
                        break
        except BaseException as exc:
            strategy.abort(exc)
            raise
        strategy.finish()
        return self.result(state)

    def begin(self, resume: bool) -> FitState:
        """A fresh :class:`FitState`, or (``resume``) the checkpoint's, restored into the task,
        optimizers, schedulers, strategy and RNG."""
        task, settings, context = self.task, self.settings, self.context
        state = FitState()
        if resume:
            saved = load_checkpoint(self.checkpoint_path, expect_meta=self.meta)
            for name, module in task.modules.items():
                module.load_state_dict(saved["modules"][name])
            for name, optimizer in task.optimizers.items():
                optimizer.load_state_dict(saved["optimizers"][name])
            for name, scheduler in self.schedulers.items():
                if scheduler is not None and saved["schedulers"].get(name) is not None:
                    scheduler.load_state_dict(saved["schedulers"][name])
            self.strategy.load_state_dict(saved.get("strategy", {}))
            task.load_state_dict(saved.get("task", {}))
            state.history = list(saved["history"])
            state.start_epoch = int(saved["epoch"]) + 1
            state.best_value, state.best_epoch = saved["best_value"], int(saved["best_epoch"])
            state.best_state = saved.get("best_modules")
            state.bad_epochs = int(saved["epochs_without_improvement"])
            state.elapsed_before = float(saved.get("elapsed_s", 0.0))
            if saved.get("stop_reason") in ("early stopping", "requested"):
                state.stop_reason = saved["stop_reason"]
                state.start_epoch = settings.epochs + 1  # nothing left to do
            rng = saved["rng"]
            if len(rng) != context.world_size and context.is_main:
                log.warning("checkpoint was written by %d ranks, resuming on %d: random streams differ",
                            len(rng), context.world_size)
            restore_rng_state(rng[context.rank % len(rng)])
            if context.is_main:
                log.info("resuming %s after epoch %d", self.checkpoint_path, state.start_epoch - 1)
        if context.is_main and self.checkpoint_path is not None:
            clear_finished(Path(self.checkpoint_path).parent)  # the run is unfinished until its recipe marks it again
        state.t0 = time.perf_counter()
        return state

    def close_epoch(self, state: FitState, epoch: int, train_numbers: dict[str, float], train_time: float,
                    n_items: int, val: ShardedBatches | None, *, on_best=None, on_epoch=None,
                    extra: dict[str, float] | None = None) -> bool:
        """Everything after an epoch's training (module docstring, steps 3-6): validate,
        ``task.epoch_end``, schedule, best, early stopping, time limit, checkpoint, callbacks.
        ``n_items`` were trained in ``train_time`` seconds; ``extra`` numbers join the record.
        Returns True when the run stops here (``state.stop_reason`` says why)."""
        task, settings, context = self.task, self.settings, self.context
        val_numbers = self.validate(val)
        last = epoch == settings.epochs
        extra_val = task.epoch_end(epoch, last) if context.is_main else None
        val_numbers.update(context.broadcast_object(extra_val) or {})
        record = {"epoch": epoch, **{f"train_{k}": v for k, v in train_numbers.items()},
                  **{f"val_{k}": v for k, v in val_numbers.items()}}
        for name, optimizer in task.optimizers.items():
            record["lr" if len(task.optimizers) == 1 else f"lr_{name}"] = float(optimizer.param_groups[0]["lr"])
        record["epoch_time_s"] = train_time
        record[f"{self.unit}s_per_s"] = n_items / train_time if train_time > 0 else float("nan")
        record["elapsed_s"] = state.elapsed()   # wall time of the run so far, validation included
        record.update(extra or {})

        monitored = record.get(f"val_{task.monitor}") if task.monitor else None
        for scheduler in self.schedulers.values():
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(monitored)
            elif scheduler is not None:
                scheduler.step()
        best = state.best_value
        improved = monitored is None or best is None or (monitored < best if task.monitor_mode == "min" else
                                                          monitored > best)
        if improved:
            state.best_value, state.best_epoch, state.bad_epochs = monitored, epoch, 0
            state.best_state = {name: _state(module) for name, module in task.modules.items()}
        else:
            state.bad_epochs += 1
        if settings.patience and state.bad_epochs >= settings.patience:
            state.stop_reason = "early stopping"
        elif settings.time_limit_min and state.elapsed() > 60 * settings.time_limit_min and not last:
            state.stop_reason = "time limit"
        state.history.append(record)
        rng = self._gather_rng()
        if context.is_main:
            log.info("epoch %d: %s%s", epoch, ", ".join(f"{k} {v:.4g}" for k, v in record.items()
                                                       if k.startswith(("train_", "val_"))),
                     " | best" if improved and monitored is not None else "")
            if improved and on_best is not None:
                on_best(task, epoch, record)
            if self.checkpoint_path is not None:
                self._save(epoch, state, rng)
        requested = on_epoch(record) if context.is_main and on_epoch is not None else None
        if context.broadcast_object(bool(requested)):
            state.stop_reason = "requested"
        context.barrier()
        if state.stop_reason != "epochs" and context.is_main:
            log.info("%s after epoch %d", state.stop_reason, epoch)
        return state.stop_reason != "epochs"

    def result(self, state: FitState) -> FitResult:
        return FitResult(history=state.history, best_epoch=state.best_epoch, best_value=state.best_value,
                         epochs_run=len(state.history), stop_reason=state.stop_reason, elapsed_s=state.elapsed(),
                         best_state=copy.deepcopy(state.best_state))

    def _gather_rng(self) -> list[dict[str, Any]]:
        state = capture_rng_state()
        if not self.context.distributed:
            return [state]
        import torch.distributed as dist

        states: list[Any] = [None] * self.context.world_size
        dist.all_gather_object(states, state)
        return states

    def _save(self, epoch: int, state: FitState, rng) -> None:
        task = self.task
        save_checkpoint(self.checkpoint_path, {
            "meta": self.meta,
            "epoch": epoch,
            "modules": {name: module.state_dict() for name, module in task.modules.items()},
            "best_modules": state.best_state,
            "optimizers": {name: opt.state_dict() for name, opt in task.optimizers.items()},
            "schedulers": {name: s.state_dict() if s is not None else None for name, s in self.schedulers.items()},
            "strategy": self.strategy.state_dict(),
            "task": task.state_dict(),
            "best_value": state.best_value,
            "best_epoch": state.best_epoch,
            "epochs_without_improvement": state.bad_epochs,
            "stop_reason": state.stop_reason if state.stop_reason in ("early stopping", "requested") else None,
            "history": state.history,
            "rng": rng,
            "elapsed_s": state.elapsed(),
        })
