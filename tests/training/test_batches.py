"""Mini-batches: each rank's shard of every batch, the last small batch."""

import pytest
import torch

from jetlab.distributed.env import DistContext
from jetlab.training.batches import ShardedBatches, TensorSource


@pytest.mark.parametrize("world", [2, 3])
def test_shards_of_k_ranks_rebuild_the_batches_of_one_rank_with_k_times_the_batch(world):
    source = TensorSource({"i": torch.arange(101), "label": torch.zeros(101, dtype=torch.long)})
    single = ShardedBatches(source, 8 * world, DistContext(), shuffle=True, seed=5)
    shards = [ShardedBatches(source, 8, DistContext(rank=r, world_size=world), shuffle=True, seed=5)
              for r in range(world)]
    for epoch in (1, 2):
        for s in (single, *shards):
            s.set_epoch(epoch)
        expected = [b["i"] for b, _, _ in single]
        per_rank = [[b["i"] for b, _, _ in s] for s in shards]
        assert all(len(p) == len(expected) for p in per_rank)
        for step, whole in enumerate(expected):
            parts = torch.cat([p[step] for p in per_rank])
            assert sorted(parts.tolist()) == sorted(whole.tolist())
        # disjoint shards that together see each kept jet once per epoch
        seen = torch.cat([torch.cat(p) for p in per_rank])
        assert len(seen) == len(set(seen.tolist()))
    # the two epochs are shuffled differently
    single.set_epoch(1)
    first = next(iter(single))[0]["i"]
    single.set_epoch(2)
    assert not torch.equal(first, next(iter(single))[0]["i"])


def test_last_small_batch_is_dropped_in_training_and_kept_in_evaluation():
    source = TensorSource({"i": torch.arange(37), "label": torch.zeros(37, dtype=torch.long)})
    train = ShardedBatches(source, 16, shuffle=False)  # 16, 16, 5 -> the 5 (< 8) is dropped
    assert [n for _, n, _ in train] == [16, 16]
    train = ShardedBatches(source, 10, shuffle=False)  # 10, 10, 10, 7 -> 7 >= 5 is kept
    assert [n for _, n, _ in train] == [10, 10, 10, 7]
    evaluation = ShardedBatches(source, 16, shuffle=False, training=False)
    assert sum(n for _, n, _ in evaluation) == 37
