"""Mini-batches for the training engine: in-memory or on-disk sources, and each rank's shard.

Data path. The fast path holds each split in memory as a dict of stacked tensors
(``JetSplit.tensors()``: e.g. "particles" (N, P, F), "mask" (N, P), "label" (N,)) and
indexes mini-batches straight out of them (:class:`TensorSource`); no per-jet
``__getitem__``, no HDF5 reads in the loop. Splits too big for memory fall back to a
``DataLoader`` over the dataset with the same index batches (:class:`DatasetSource`).

Sharding (the semantics of ``DistributedSampler``). In epoch e the N items are permuted
with a generator seeded by ``seed + e`` (identical on every rank), cut into *global*
batches of ``B = batch_size x world_size`` items, and rank k takes entries k, k+K, k+2K,…
of each global batch. So every epoch each rank sees a disjoint 1/K of the data, every
rank takes the same number of steps, and K ranks with local batch b visit exactly the
items one process with batch K·b visits, step by step. A last incomplete global batch is
kept when it has at least max(B/2, K) items and dropped otherwise (a step on a handful of
items is mostly noise). Evaluation keeps everything.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence

import torch

from jetlab.distributed.env import DistContext

__all__ = ["DatasetSource", "ShardedBatches", "TensorSource", "batch_source"]

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


def batch_source(split, max_memory_gb: float = 4.0, num_workers: int = 0):
    """In-memory tensors when ``split`` (a dataset of dicts of tensors with ``tensors()``)
    fits in ``max_memory_gb``, else per-batch reads from disk."""
    if len(split) == 0:
        return TensorSource({})
    one = split[0]
    bytes_per_item = sum(t.numel() * t.element_size() for t in one.values())
    if bytes_per_item * len(split) <= max_memory_gb * 1e9:
        return TensorSource(split.tensors())
    log.info("split of %d items needs %.1f GB > max_memory_gb=%.1f: reading batches from disk",
             len(split), bytes_per_item * len(split) / 1e9, max_memory_gb)
    return DatasetSource(split, num_workers)
