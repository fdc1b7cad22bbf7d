"""The asynchronous algorithms' update rules, in one process.

The worker is the real strategy inside the real engine; the master's side is the real rule on
real central weights. Only the transport is a test double (:class:`FakeLink`): it hands each
message, encoded and decoded by the real codec, straight to the master's rule.

Oracles: Downpour with one worker and τ = 1 takes exactly the steps of local training (one
and two networks); EASGD's elastic exchange, GEM's rescaling and Downpour's τ-step sum match
updates computed by hand on a three-parameter model; the messages per update are those the
algorithms prescribe.
"""

from __future__ import annotations

import collections

import pytest
import torch
from torch import nn

from jetlab.distributed.env import DistContext
from jetlab.distributed.rules import ALGORITHMS, CenterNet, WorkerNet, flat_grad, gem_update
from jetlab.distributed.serve import merge_reports
from jetlab.distributed.topology import Topology
from jetlab.distributed.transport import Kind, Message, decode, encode
from jetlab.errors import JetlabError
from jetlab.training.batches import ShardedBatches, TensorSource
from jetlab.training.engine import Engine
from jetlab.training.settings import TrainSettings
from jetlab.training.strategies import optimizer_parameters
from jetlab.training.strategies.asynchronous import DownpourSGD, ElasticAveragingSGD, GradientEnergyMatching
from jetlab.training.tasks import ClassifyTask
from jetlab.training.tasks.base import Task


class FakeLink:
    """Test double of a worker's MPI link: the master's rule answers in the same process."""

    def __init__(self, algorithm: str, modules: dict, optimizers: dict, alpha: float = 0.5):
        self.rule = ALGORITHMS[algorithm]()
        self.centers = [CenterNet(i, optimizer_parameters(opt), opt, alpha) for i, opt in enumerate(optimizers.values())]
        self.modules = modules
        self.messages = collections.Counter()     # (kind name, network) -> count
        self.bytes = collections.Counter()
        self.steps = collections.Counter()        # (kind name, network) -> the steps the messages say they carry
        self.payload_sums: dict = {}              # (kind name, network) -> sum of the payloads
        self.log: list[tuple[str, int]] = []     # (kind name, epoch) of every message, in order

    def _carry(self, message: Message) -> Message:
        data = encode(message)
        key = Kind(message.kind).name, message.net
        self.log.append((key[0], message.epoch))
        self.messages[key] += 1
        self.bytes[key[0]] += data.nbytes
        self.steps[key] += message.count
        if message.payload is not None:
            self.payload_sums[key] = self.payload_sums.get(key, 0) + message.payload.clone()
        return decode(data)

    def start(self) -> dict:
        return {"weights": [c.vector() for c in self.centers],
                "lr": [c.optimizer.param_groups[0]["lr"] for c in self.centers], "epoch": 1}

    def request(self, message: Message) -> Message:
        message = self._carry(message)
        if message.kind == Kind.SYNC:   # the master has closed every epoch a worker waits for
            return self._carry(Message(Kind.SYNC, -1, epoch=message.epoch))
        if message.kind == Kind.DONE:   # the master acknowledges a goodbye
            return self._carry(Message(Kind.STOP, -1, info="goodbye"))
        return self._carry(self.rule.handle(self.centers[message.net], message))

    def send(self, message: Message) -> None:
        message = self._carry(message)
        if message.kind == Kind.PUSH:
            self.rule.handle(self.centers[message.net], message)

    def heartbeat_due(self) -> bool:
        return False


class SmallNet(nn.Module):
    input_keys = ("x",)

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)


def make_data(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 3, (n,), generator=g)
    return {"x": torch.randn(n, 6, generator=g) + nn.functional.one_hot(label, 6).float(), "label": label}


class TwoNetworks(Task):
    """Two networks updated in turn on every batch, the second seeing the first's new weights."""

    monitor = None

    def __init__(self, seed: int, optimizer=torch.optim.Adam):
        torch.manual_seed(seed)
        a, b = nn.Linear(6, 4), nn.Linear(4, 3)
        super().__init__({"a": a, "b": b}, {"a": optimizer(a.parameters(), lr=1e-2),
                                            "b": optimizer(b.parameters(), lr=2e-2)})

    def train_step(self, batch, update):
        a, b = self.modules["a"], self.modules["b"]
        loss_a = (a(batch["x"]) ** 2).mean()
        update("a", loss_a)
        loss_b = nn.functional.cross_entropy(b(torch.tanh(a(batch["x"]).detach())), batch["label"])
        update("b", loss_b)
        return {"loss_a": loss_a.item(), "loss_b": loss_b.item()}


def settings(**changes) -> TrainSettings:
    return TrainSettings(**{"epochs": 2, "patience": 0, "schedule": "none", **changes})


def worker(strategy_class, task_factory, *, sync_every=1, **settings_changes):
    """The worker (real strategy, real engine) of a two-rank job, its fake link, its batches."""
    task = task_factory()
    strategy = strategy_class(context=DistContext(rank=1, world_size=2), sync_every=sync_every)
    central = task_factory()   # the master's copy: same seed, so the same initial weights
    strategy.link = FakeLink(strategy.algorithm, central.modules, central.optimizers)
    engine = Engine(task, settings(**settings_changes), strategy=strategy)
    train = ShardedBatches(TensorSource(make_data(70)), 16, strategy.batch_context(DistContext(), training=True),
                           shuffle=True, seed=3)
    return task, central, strategy, engine, train


def classify_task(seed=0):
    def build():
        torch.manual_seed(seed)
        model = SmallNet()
        return ClassifyTask(model, torch.optim.Adam(model.parameters(), lr=1e-2))
    return build


@pytest.mark.parametrize("task_factory", [classify_task(), lambda: TwoNetworks(0)], ids=["tagger", "two-networks"])
def test_downpour_with_one_worker_and_tau_1_takes_the_steps_of_local_training(task_factory):
    local = task_factory()
    Engine(local, settings()).fit(ShardedBatches(TensorSource(make_data(70)), 16, shuffle=True, seed=3), None)

    task, central, strategy, engine, train = worker(DownpourSGD, task_factory)
    engine.fit(train, None)   # the factories seed, so dropout draws the stream `local` drew

    for name, module in local.modules.items():
        for key, value in module.state_dict().items():
            torch.testing.assert_close(central.modules[name].state_dict()[key], value, rtol=0, atol=0)
            torch.testing.assert_close(task.modules[name].state_dict()[key], value, rtol=0, atol=0)
    assert strategy.steps == 2 * 4 * len(local.modules)   # 2 epochs of 4 batches (16, 16, 16, 16; 6 dropped)


def tiny_model(weights) -> nn.Module:
    model = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([weights]))
    return model


def set_grad(model: nn.Module, grad) -> None:
    model.weight.grad = torch.tensor([grad])


def test_easgd_exchange_matches_the_hand_computed_elastic_update():
    x, center, grad, lr, alpha = [1.0, -2.0, 0.5], [0.0, 1.0, 0.5], [2.0, 0.0, -1.0], 0.1, 0.25
    worker_model, center_model = tiny_model(x), tiny_model(center)
    w = WorkerNet(0, list(worker_model.parameters()), torch.optim.SGD(worker_model.parameters(), lr=lr))
    link = FakeLink("easgd", {"model": center_model}, {"model": torch.optim.SGD(center_model.parameters(), lr=lr)},
                    alpha=alpha)
    set_grad(worker_model, grad)
    ALGORITHMS["easgd"]().worker_step(w, link, tau=1)
    # local SGD step: x' = x - lr g = [0.8, -2.0, 0.6]; e = alpha (x' - center) = [0.2, -0.75, 0.025]
    torch.testing.assert_close(worker_model.weight.detach()[0], torch.tensor([0.6, -1.25, 0.575]))
    torch.testing.assert_close(center_model.weight.detach()[0], torch.tensor([0.2, 0.25, 0.525]))


def test_gem_scale_matches_the_hand_computed_formula_with_both_clips():
    grad = torch.tensor([1.0, -2.0, 0.5, 0.01])
    momentum = torch.tensor([-0.1, 0.2, -0.05, -0.09])    # m after m <- mu m - lr g
    velocity = torch.tensor([0.05, 0.0, -0.3, 0.0])
    update, pi = gem_update(grad, momentum, velocity, lr=0.1, kappa=2.0)
    # pi = (2|m| - |v|) / (0.1 |g|) = [1.5, 2.0, -4 -> 0, 180 -> 5]
    torch.testing.assert_close(pi, torch.tensor([1.5, 2.0, 0.0, 5.0]))
    torch.testing.assert_close(update, torch.tensor([-0.15, 0.4, 0.0, -0.005]))


def test_gem_worker_step_pulls_scales_pushes_and_continues_from_the_central_weights():
    lr, mu = 0.1, 0.5
    worker_model, center_model = tiny_model([0.0, 0.0, 0.0]), tiny_model([0.0, 0.0, 0.0])
    w = WorkerNet(0, list(worker_model.parameters()), torch.optim.SGD(worker_model.parameters(), lr=lr),
                  momentum=mu, kappa=2.0)
    link = FakeLink("gem", {"model": center_model}, {"model": torch.optim.SGD(center_model.parameters(), lr=lr)})
    w.start(torch.zeros(3), lr)
    rule = ALGORITHMS["gem"]()
    set_grad(worker_model, [1.0, -2.0, 0.5])
    rule.worker_step(w, link, tau=1)
    # m = -0.1 g = [-0.1, 0.2, -0.05]; v = 0; pi = 2|m| / (0.1|g|) = 2 everywhere; u = -2 * 0.1 g
    torch.testing.assert_close(center_model.weight.detach()[0], torch.tensor([-0.2, 0.4, -0.1]))
    torch.testing.assert_close(worker_model.weight.detach()[0], torch.tensor([-0.2, 0.4, -0.1]))
    with torch.no_grad():   # another worker moves the center by [0.1, 0.1, 0.1]
        center_model.weight += 0.1
    set_grad(worker_model, [1.0, 1.0, 0.1])
    rule.worker_step(w, link, tau=1)
    # m = 0.5 m - 0.1 g = [-0.15, 0.0, -0.035]; v = pulled now - pulled last = [-0.1, 0.5, 0.0] - 0
    # pi = (2|m| - |v|) / (0.1|g|) = [2.0, -5 -> 0, 7 -> 5]; u = -pi 0.1 g = [-0.2, 0.0, -0.05]
    torch.testing.assert_close(center_model.weight.detach()[0], torch.tensor([-0.3, 0.5, -0.05]))
    torch.testing.assert_close(worker_model.weight.detach()[0], torch.tensor([-0.3, 0.5, -0.05]))


def test_downpour_sums_tau_gradients_and_the_master_optimizer_applies_the_sum():
    worker_model, center_model = tiny_model([1.0, 1.0, 1.0]), tiny_model([1.0, 1.0, 1.0])
    w = WorkerNet(0, list(worker_model.parameters()), torch.optim.Adam(worker_model.parameters(), lr=0.1))
    link = FakeLink("downpour", {"model": center_model},
                    {"model": torch.optim.SGD(center_model.parameters(), lr=0.5)})
    rule = ALGORITHMS["downpour"]()
    set_grad(worker_model, [1.0, 0.0, -1.0])
    assert rule.worker_step(w, link, tau=2) is None   # a local plain SGD step with the worker's lr
    torch.testing.assert_close(worker_model.weight.detach()[0], torch.tensor([0.9, 1.0, 1.1]))
    set_grad(worker_model, [1.0, 2.0, 0.0])
    assert rule.worker_step(w, link, tau=2).kind == Kind.WEIGHTS
    # the master's SGD (lr 0.5) on G = [2, 2, -1]; the worker adopts the result
    torch.testing.assert_close(center_model.weight.detach()[0], torch.tensor([0.0, 0.0, 1.5]))
    torch.testing.assert_close(worker_model.weight.detach()[0], torch.tensor([0.0, 0.0, 1.5]))
    assert link.messages == {("UPDATE", 0): 1, ("WEIGHTS", 0): 1}


@pytest.mark.parametrize("strategy_class, tau, per_exchange", [
    (DownpourSGD, 3, {"UPDATE": 1, "WEIGHTS": 1}),
    (ElasticAveragingSGD, 3, {"ELASTIC": 2}),          # the worker's weights up, e down
    (GradientEnergyMatching, 1, {"PULL": 1, "WEIGHTS": 1, "PUSH": 1}),
])
def test_messages_per_update_are_those_of_the_algorithm(strategy_class, tau, per_exchange):
    task, _, strategy, engine, train = worker(strategy_class, lambda: TwoNetworks(0, torch.optim.SGD),
                                              sync_every=tau, epochs=3)
    engine.fit(train, None)
    link = strategy.link
    updates = 3 * len(train)   # per network
    # Downpour also sends each epoch's last partial sum; the others count τ across epochs
    exchanges = 3 * -(-len(train) // tau) if strategy_class is DownpourSGD else updates // tau
    for net in (0, 1):
        for kind, per in per_exchange.items():
            assert link.messages[kind, net] == per * exchanges, (kind, net)
    assert link.messages["EPOCH", 0] == 3 and link.messages["DONE", 0] == 1
    sizes = {name: sum(p.numel() for p in module.parameters()) for name, module in task.modules.items()}
    exchanged = sum((4 * sizes[name] + 56) * exchanges for name in ("a", "b"))
    request = "PUSH" if strategy_class is GradientEnergyMatching else next(iter(per_exchange))
    assert link.bytes[request] == (exchanged if request != "ELASTIC" else 2 * exchanged)


def test_downpour_sends_the_steps_a_worker_still_holds_at_the_end_of_each_epoch(monkeypatch):
    task, _, strategy, engine, train = worker(DownpourSGD, classify_task(), sync_every=3, epochs=2)
    assert len(train) % 3   # each epoch ends with a partial sum of fewer than τ steps
    computed = []
    step = strategy.rule.worker_step

    def recording(w, link, tau):
        computed.append(flat_grad(w.params).clone())
        return step(w, link, tau)

    monkeypatch.setattr(strategy.rule, "worker_step", recording)
    engine.fit(train, None)
    link = strategy.link
    assert len(computed) == 2 * len(train) == link.steps["UPDATE", 0]   # every step reached the master
    assert link.messages["UPDATE", 0] == 2 * -(-len(train) // 3)
    torch.testing.assert_close(link.payload_sums["UPDATE", 0], torch.stack(computed).sum(0))


def test_a_worker_waits_for_the_epoch_before_its_last_to_be_closed_before_training_on():
    _, _, strategy, engine, train = worker(DownpourSGD, classify_task(), epochs=4)
    engine.fit(train, None)   # the fake master's replies say no epoch is closed until asked
    flow = [(kind, epoch) for kind, epoch in strategy.link.log if kind in ("EPOCH", "SYNC", "UPDATE")]
    marks = [entry for entry in flow if entry[0] != "UPDATE"]
    # the master answers SYNC(e - 1) with SYNC(e - 1): after epoch e the worker asks again
    assert marks == [("EPOCH", 1), ("EPOCH", 2), ("SYNC", 1), ("SYNC", 1), ("EPOCH", 3), ("SYNC", 2), ("SYNC", 2),
                     ("EPOCH", 4), ("SYNC", 3), ("SYNC", 3)]
    # and sends no update of epoch e + 1 before the answer
    for e in (2, 3):
        after = flow.index(("EPOCH", e))
        assert flow[after + 1:after + 3] == [("SYNC", e - 1), ("SYNC", e - 1)]


def test_codec_round_trip_keeps_every_field():
    message = Message(Kind.EPOCH, net=1, epoch=7, count=3, value=2.5e-4, payload=torch.arange(5.0),
                      info={"numbers": {"loss": 0.5}})
    back = decode(encode(message), source=4)
    assert (back.kind, back.net, back.epoch, back.count, back.value, back.info, back.source) == \
        (Kind.EPOCH, 1, 7, 3, 2.5e-4, {"numbers": {"loss": 0.5}}, 4)
    torch.testing.assert_close(back.payload, torch.arange(5.0))
    assert len(encode(Message(Kind.PULL))) == 56


def test_topology_roles_parents_and_children():
    flat = Topology(4)
    assert [flat.role(r) for r in range(4)] == ["master", "worker", "worker", "worker"]
    assert flat.children(0) == (1, 2, 3) and flat.parent(3) == 0 and flat.worker_index(3) == 2
    tree = Topology(8, masters=2)
    assert [tree.role(r) for r in range(8)] == ["master", "relay", "relay"] + ["worker"] * 5
    assert tree.children(0) == (1, 2) and tree.children(1) == (3, 5, 7) and tree.children(2) == (4, 6)
    assert tree.parent(6) == 2 and tree.parent(2) == 0
    with pytest.raises(JetlabError, match="at least 5 processes"):
        Topology(4, masters=2)
    with pytest.raises(JetlabError, match="at least 2 processes"):
        Topology(1)


def test_epoch_reports_merge_weighted_by_items():
    merged = merge_reports([{"numbers": {"loss": 1.0}, "items": 30, "updates": 3, "seconds": 1.0},
                            {"numbers": {"loss": 2.0}, "items": 10, "updates": 1, "seconds": 2.0, "workers": 2}])
    assert merged == {"numbers": {"loss": 1.25}, "items": 40, "updates": 4, "seconds": 2.0, "workers": 3}


@pytest.mark.parametrize("world, masters, rank, p", [(4, 1, 0, 3), (7, 2, 0, 2), (8, 2, 1, 3), (8, 2, 2, 2)])
def test_easgd_masters_pull_with_alpha_0_9_over_their_children_and_workers_scale_their_lr(world, masters, rank, p):
    model = tiny_model([0.0, 0.0, 0.0])
    center = ElasticAveragingSGD(context=DistContext(rank=rank, world_size=world), masters=masters)
    center.link = object()   # a sub-master's link to the top (unused here)
    center.setup({"model": model}, {"model": torch.optim.SGD(model.parameters(), lr=0.1)}, DistContext())
    reply = center.rule.handle(center.nets[0], Message(Kind.ELASTIC, 0, payload=torch.tensor([1.0, -2.0, 0.5])))
    # e = (0.9 / p) (x - center), the center moves by +e
    torch.testing.assert_close(reply.payload, 0.9 / p * torch.tensor([1.0, -2.0, 0.5]))
    torch.testing.assert_close(model.weight.detach()[0], 0.9 / p * torch.tensor([1.0, -2.0, 0.5]))
    # a worker under that master steps at p x the master's learning rate
    child = Topology(world, masters).children(rank)[0]
    if Topology(world, masters).role(child) == "worker":
        local = tiny_model([0.0, 0.0, 0.0])
        strategy = ElasticAveragingSGD(context=DistContext(rank=child, world_size=world), masters=masters)
        strategy.link = object()
        strategy.setup({"model": local}, {"model": torch.optim.SGD(local.parameters(), lr=1.0)}, DistContext())
        strategy.nets[0].start(torch.zeros(3), 0.1)
        assert strategy.nets[0].optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * p)
        master = tiny_model([0.0, 0.0, 0.0])   # and keeps doing so with the lr each reply carries
        link = FakeLink("easgd", {"model": master}, {"model": torch.optim.SGD(master.parameters(), lr=0.2)})
        set_grad(local, [1.0, 1.0, 1.0])
        strategy.rule.worker_step(strategy.nets[0], link, tau=1)
        assert strategy.nets[0].optimizer.param_groups[0]["lr"] == pytest.approx(0.2 * p)


def test_gem_over_four_steps_measures_the_central_velocity_from_its_last_pull():
    """Oracle: GEM written out step by step (m, pull, v = pull - previous pull, pi, push) while
    another worker moves the center between this worker's steps."""
    lr, mu, kappa = 0.05, 0.9, 2.0
    start = torch.tensor([0.3, -0.2, 0.1])
    worker_model, center_model = tiny_model(start.tolist()), tiny_model(start.tolist())
    w = WorkerNet(0, list(worker_model.parameters()), torch.optim.SGD(worker_model.parameters(), lr=lr),
                  momentum=mu, kappa=kappa)
    link = FakeLink("gem", {"model": center_model}, {"model": torch.optim.SGD(center_model.parameters(), lr=lr)})
    w.start(start.clone(), lr)
    rule = ALGORITHMS["gem"]()
    g = torch.Generator().manual_seed(1)
    center, m, last = start.clone(), torch.zeros(3), start.clone()
    for _ in range(4):
        other = 0.02 * torch.randn(3, generator=g)   # another worker's push
        with torch.no_grad():
            center_model.weight += other
        center = center + other
        grad = torch.randn(3, generator=g)
        set_grad(worker_model, grad.tolist())
        rule.worker_step(w, link, tau=1)
        m = mu * m - lr * grad
        pulled = center
        pi = ((kappa * m.abs() - (pulled - last).abs()) / (lr * grad.abs())).clamp(0, 5)
        center = pulled - pi * lr * grad
        last = pulled
    torch.testing.assert_close(center_model.weight.detach()[0], center)
    torch.testing.assert_close(worker_model.weight.detach()[0], center)
