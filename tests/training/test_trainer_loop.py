"""The generic training loop: sharding, exact resume, atomic checkpoints."""

import pytest
import torch
from torch import nn

from jetlab.distributed.env import DistContext
from jetlab.errors import InputError
from jetlab.training.checkpoint import load_checkpoint, save_checkpoint
from jetlab.training.trainer import ShardedBatches, TensorSource, Trainer


class SmallNet(nn.Module):
    """A tagger-shaped model (``input_keys``, logits) with dropout, so RNG state matters."""

    input_keys = ("x",)

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)


def make_data(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 6, generator=g) + nn.functional.one_hot(label, 6).float()
    return {"x": x, "label": label}


def make_trainer(checkpoint, seed=0):
    torch.manual_seed(seed)
    model = SmallNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0, factor=0.5)
    return model, Trainer(model, optimizer, input_keys=("x",), scheduler=scheduler, patience=50,
                          checkpoint_path=checkpoint, meta={"model_name": "small"})


def batches(n=90, batch=16):
    train = ShardedBatches(TensorSource(make_data(n)), batch, shuffle=True, seed=3)
    val = ShardedBatches(TensorSource(make_data(30, seed=1)), 50, shuffle=False, training=False)
    return train, val


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


def test_resume_after_a_stop_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    model_a, trainer_a = make_trainer(tmp_path / "a.pt")
    result_a = trainer_a.fit(*batches(), epochs=5)

    _, trainer_b = make_trainer(tmp_path / "b.pt")
    trainer_b.fit(*batches(), epochs=5, stop_after_epoch=2)
    # a fresh process: other initial weights and RNG state, all replaced by the checkpoint
    torch.manual_seed(1234)
    torch.rand(7)
    model_c, trainer_c = make_trainer(tmp_path / "b.pt", seed=99)
    result_c = trainer_c.fit(*batches(), epochs=5, resume=True)

    for key, value in model_a.state_dict().items():
        torch.testing.assert_close(model_c.state_dict()[key], value, rtol=0, atol=0)
    assert [h["val_loss"] for h in result_c.history] == [h["val_loss"] for h in result_a.history]
    assert result_c.best_epoch == result_a.best_epoch
    assert trainer_c.optimizer.param_groups[0]["lr"] == trainer_a.optimizer.param_groups[0]["lr"]


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path):
    torch.manual_seed(0)
    model = SmallNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # never improves after epoch 1
    trainer = Trainer(model, optimizer, input_keys=("x",), patience=3, checkpoint_path=tmp_path / "c.pt")
    result = trainer.fit(*batches(), epochs=50)
    assert result.stopped_early
    assert result.best_epoch == 1
    assert result.epochs_run == 4


def test_checkpoint_survives_an_interrupted_save(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"meta": {"model_name": "small"}, "epoch": 1})

    def dying_save(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"\x80\x02 half a pickle")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"meta": {"model_name": "small"}, "epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_checkpoint_of_another_model_or_a_corrupt_file_is_an_input_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"meta": {"model_name": "dnn"}, "epoch": 1})
    with pytest.raises(InputError, match="model_name='dnn'.*model_name='jedinet'"):
        load_checkpoint(path, expect_meta={"model_name": "jedinet"})
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_checkpoint(path)
    with pytest.raises(InputError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
