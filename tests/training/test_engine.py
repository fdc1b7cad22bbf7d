"""The training engine on small synthetic tasks: exact resume (one and two networks), early
stopping, divergence, time limit, stop requests, atomic checkpoints."""

import pytest
import torch
from torch import nn

from jetlab.errors import InputError, JetlabError
from jetlab.training.batches import ShardedBatches, TensorSource
from jetlab.training.checkpoint import load_checkpoint, save_checkpoint
from jetlab.training.engine import Engine
from jetlab.training.settings import TrainSettings
from jetlab.training.tasks import ClassifyTask
from jetlab.training.tasks.base import Task


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


def settings(**changes):
    return TrainSettings(**{"epochs": 5, "patience": 50, "lr_patience": 0, **changes})


def make_engine(checkpoint, seed=0, lr=1e-2, **changes):
    torch.manual_seed(seed)
    model = SmallNet()
    task = ClassifyTask(model, torch.optim.Adam(model.parameters(), lr=lr))
    return task, Engine(task, settings(**changes), checkpoint_path=checkpoint, meta={"model_name": "small"})


def batches(n=90, batch=16):
    train = ShardedBatches(TensorSource(make_data(n)), batch, shuffle=True, seed=3)
    val = ShardedBatches(TensorSource(make_data(30, seed=1)), 50, shuffle=False, training=False)
    return train, val


def test_resume_after_a_stop_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    task_a, engine_a = make_engine(tmp_path / "a.pt")
    result_a = engine_a.fit(*batches())
    assert result_a.stop_reason == "epochs" and result_a.finished

    _, engine_b = make_engine(tmp_path / "b.pt")
    paused = engine_b.fit(*batches(), stop_after_epoch=2)
    assert paused.stop_reason == "stop after epoch" and not paused.finished
    # a fresh process: other initial weights and RNG state, all replaced by the checkpoint
    torch.manual_seed(1234)
    torch.rand(7)
    task_c, engine_c = make_engine(tmp_path / "b.pt", seed=99)
    result_c = engine_c.fit(*batches(), resume=True)

    for key, value in task_a.model.state_dict().items():
        torch.testing.assert_close(task_c.model.state_dict()[key], value, rtol=0, atol=0)
    assert [h["val_loss"] for h in result_c.history] == [h["val_loss"] for h in result_a.history]
    assert result_c.best_epoch == result_a.best_epoch
    assert task_c.optimizers["model"].param_groups[0]["lr"] == task_a.optimizers["model"].param_groups[0]["lr"]


def test_validation_numbers_are_those_of_the_whole_split(tmp_path):
    task, engine = make_engine(None, epochs=1, lr=0.0)  # lr 0: every step sees the same weights
    train, val = batches(n=40, batch=16)  # batches of 16, 16, 8
    record = engine.fit(train, val).history[0]
    task.model.eval()  # dropout off gives the validation numbers
    data = make_data(30, seed=1)
    logits = task.model(data["x"]).double()
    assert record["val_loss"] == pytest.approx(nn.functional.cross_entropy(logits, data["label"]).item(), rel=1e-12)
    assert record["val_accuracy"] == pytest.approx((logits.argmax(1) == data["label"]).double().mean().item())


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path):
    torch.manual_seed(0)
    model = SmallNet()
    task = ClassifyTask(model, torch.optim.SGD(model.parameters(), lr=0.0))  # never improves after epoch 1
    engine = Engine(task, settings(epochs=50, patience=3, schedule="none"), checkpoint_path=tmp_path / "c.pt")
    result = engine.fit(*batches())
    assert result.stopped_early and result.best_epoch == 1 and result.epochs_run == 4
    # resuming a run that stopped early does nothing more
    again = Engine(task, settings(epochs=50, patience=3, schedule="none"), checkpoint_path=tmp_path / "c.pt")
    assert again.fit(*batches(), resume=True).epochs_run == 4


def test_divergence_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path):
    _, engine = make_engine(tmp_path / "c.pt", epochs=3)
    engine.fit(*batches(), stop_after_epoch=1)
    good = load_checkpoint(tmp_path / "c.pt")
    task2, engine2 = make_engine(tmp_path / "c.pt", epochs=3)
    original = task2.train_step

    def poisoned(batch, update):  # the weights blow up during epoch 2
        with torch.no_grad():
            task2.model.net[0].weight.mul_(float("inf"))
        return original(batch, update)

    task2.train_step = poisoned
    with pytest.raises(JetlabError, match=r"c\.pt: training diverged in epoch 2 \(loss = nan\); the checkpoint of "
                                          r"epoch 1 is kept"):
        engine2.fit(*batches(), resume=True)
    after = load_checkpoint(tmp_path / "c.pt")
    assert after["epoch"] == 1
    for key, value in good["modules"]["model"].items():
        torch.testing.assert_close(after["modules"]["model"][key], value, rtol=0, atol=0)


def test_time_limit_pauses_after_the_epoch_that_passes_it(tmp_path):
    _, engine = make_engine(tmp_path / "c.pt", time_limit_min=1e-9)
    result = engine.fit(*batches())
    assert result.stop_reason == "time limit" and result.epochs_run == 1 and not result.finished
    _, engine = make_engine(tmp_path / "c.pt")
    assert engine.fit(*batches(), resume=True).epochs_run == 5


def test_on_epoch_can_stop_the_run(tmp_path):
    _, engine = make_engine(tmp_path / "c.pt")
    seen = []
    result = engine.fit(*batches(), on_epoch=lambda record: seen.append(record["epoch"]) or record["epoch"] == 2)
    assert seen == [1, 2] and result.stop_reason == "requested" and result.epochs_run == 2


class TwoNetworks(Task):
    """Two networks updated in turn from one batch (the shape of a GAN step)."""

    name = "two"

    def __init__(self, seed):
        torch.manual_seed(seed)
        a, b = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.2), nn.Linear(8, 1)), nn.Linear(6, 1)
        super().__init__({"a": a, "b": b}, {"a": torch.optim.Adam(a.parameters(), 1e-2),
                                             "b": torch.optim.SGD(b.parameters(), 1e-2, momentum=0.9)})

    def train_step(self, batch, update):
        noise = torch.randn_like(batch["x"])  # draws from the global RNG, like a generator's noise
        loss_a = (self.modules["a"](batch["x"] + noise).squeeze(-1) - batch["label"].float()).square().mean()
        update("a", loss_a)
        loss_b = (self.modules["b"](batch["x"]).squeeze(-1) + self.modules["a"](batch["x"]).detach().squeeze(-1)
                  ).square().mean()
        update("b", loss_b)
        return {"loss_a": loss_a.item(), "loss_b": loss_b.item()}

    def validate_step(self, batch):
        return {"loss": (self.modules["a"](batch["x"]).squeeze(-1) - batch["label"].float()).square().mean().item()}


def test_two_network_task_resumes_exactly(tmp_path):
    whole = TwoNetworks(0)
    Engine(whole, settings(schedule="cosine"), checkpoint_path=tmp_path / "a.pt").fit(*batches())
    Engine(TwoNetworks(0), settings(schedule="cosine"), checkpoint_path=tmp_path / "b.pt").fit(
        *batches(), stop_after_epoch=3)
    resumed = TwoNetworks(5)
    Engine(resumed, settings(schedule="cosine"), checkpoint_path=tmp_path / "b.pt").fit(*batches(), resume=True)
    for name in ("a", "b"):
        for key, value in whole.modules[name].state_dict().items():
            torch.testing.assert_close(resumed.modules[name].state_dict()[key], value, rtol=0, atol=0)


def test_a_task_without_validation_number_cannot_use_the_plateau_schedule():
    task = TwoNetworks(0)
    task.monitor = None
    with pytest.raises(JetlabError, match="schedule none or cosine"):
        Engine(task, settings(schedule="plateau"))
    result = Engine(task, settings(schedule="none", epochs=2)).fit(*batches())
    assert result.best_epoch == 2 and result.best_value is None


def test_checkpoint_survives_an_interrupted_save(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"meta": {"model_name": "small"}, "epoch": 1})

    def dying_save(obj, f, *args, **kwargs):
        if hasattr(f, "write"):  # jetlab serialises into memory first, then writes the bytes
            f.write(b"\x80\x02 half a pickle")
        else:
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
