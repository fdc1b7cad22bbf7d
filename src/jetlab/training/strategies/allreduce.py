"""Synchronous data parallelism: one all-reduce of the gradients per update."""

from __future__ import annotations

import torch
import torch.distributed as dist

from jetlab.training.strategies.base import UpdateStrategy, optimizer_parameters

__all__ = ["SynchronousAllReduce"]


class SynchronousAllReduce(UpdateStrategy):
    """Synchronous data parallelism over K ranks (gloo on CPU, NCCL on GPU).

    ``setup`` broadcasts rank 0's parameters and buffers, so every replica starts identical.
    After each backward the gradients of the network being updated are flattened into one
    buffer, summed over the ranks by one all-reduce and divided by K; every rank then takes
    the same optimizer step, so the replicas stay identical. (One explicit all-reduce per
    update rather than a ``DistributedDataParallel`` wrapper: it serves a GAN's two networks,
    double backward (the R1 penalty) and networks frozen for part of a step alike.)

    With a global batch of B items split into local batches of n_k, rank k's batch-mean loss
    is weighted by ``n_k K / B``; the mean of the gradients is then exactly the gradient of
    the mean loss over the whole global batch — the step one process takes on all B items,
    also for a last batch that does not split evenly.
    """

    name = "allreduce"

    def setup(self, modules, optimizers, context) -> None:
        super().setup(modules, optimizers, context)
        if not context.distributed:
            return
        with torch.no_grad():
            for module in self.modules.values():
                for tensor in [*module.parameters(), *module.buffers()]:
                    dist.broadcast(tensor.data, src=0)

    def loss_weight(self, n_local: int, n_global: int) -> float:
        return n_local * self.context.world_size / n_global

    def after_backward(self, name: str) -> None:
        if not self.context.distributed:
            return
        params = [p for p in optimizer_parameters(self.optimizers[name]) if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.context.world_size
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n
