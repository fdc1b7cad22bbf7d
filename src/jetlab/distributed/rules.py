"""The update rules of the asynchronous master/worker algorithms, on flattened parameters.

Each network (a tagger's "model"; a GAN's "generator" and "discriminator") is exchanged on
its own, as one float32 vector θ of its P parameters (the optimizer's parameters, in order).
A worker exchanges network n after every τ (``sync_every``) of its own updates of n; the
master (or a sub-master, "relay") holds the central weights θ̃ and one optimizer per network.

**Downpour SGD** (Dean et al., NIPS 2012). The worker sums its gradients g over τ steps,
G = Σ g, taking plain SGD steps θ ← θ − η g in between; it sends G (UPDATE) and the master
applies it with its own optimizer (``p.grad = G``; ``optimizer.step()``: Adam, SGD, …), then
replies with θ̃ (WEIGHTS), which the worker adopts. With one worker and τ = 1 this is exactly
local training with the master's optimizer. At the end of each of its epochs a worker sends the
≤ τ − 1 steps it has summed since its last exchange (a shorter UPDATE), so no gradient is lost
and the master has the whole epoch's updates before it closes the epoch; the count of steps
to the next exchange then starts again. Defaults: τ = 1 (every gradient goes to the master, so
the master's optimizer, ``--optimizer``/``--lr``, Adam 1e-3, takes every step: with W workers
it takes as many steps per epoch as one process would); with τ > 1 the local steps are plain
SGD of the same ``--lr``, small next to the master's (Adam's) steps, so that each summed
gradient is computed close to the weights it is applied to.

**Elastic Averaging SGD** (Zhang, Choromanska & LeCun, arXiv:1412.6651, Alg. 1). The worker
trains with its own optimizer; every τ steps it sends its weights x_i (ELASTIC); the master
computes ``e = α (x_i − x̃)``, sets ``x̃ ← x̃ + e`` and replies e; the worker sets
``x_i ← x_i − e``. α = β/p with β = 0.9 and p the number of workers of that master
(``--elastic-alpha`` overrides): the paper's choice (its section 3 and experiments), which
keeps the total pull on the center, p α = β, below 1 for any p, so the center is a stable
moving average of the workers. τ defaults to 1, the most frequent exchange: on CPUs and one
host an exchange costs less than a step; the paper's τ = 10 pays off where exchanges are dear.
The center moves at the pace of *one* worker (each of the p pulls on it is 1/p of β), while
each worker takes only 1/p of an epoch's steps; so that an epoch of EASGD gets about as far as
an epoch of one process, each worker steps at p × the master's learning rate (``--lr``, and
whatever the schedule makes of it) — the linear scaling rule for its p-times smaller share.
Measured on a 2,000-jet DNN (2 workers, 12 epochs): 0.82× one process's test accuracy at
``--lr``, 0.95× at p × ``--lr``.

**Gradient Energy Matching** (Hermans & Louppe, arXiv:1805.08469, as in NNLO). Every step the
worker updates its momentum proxy ``m ← μ m − η g``, pulls θ̃ (PULL → WEIGHTS), computes the
central velocity ``v = θ̃ − θ̃_last`` (the master's change since this worker's previous pull,
its own last update included) and scales its plain step −η g per parameter by

    π = clip((κ |m| − |v|) / (η |g| + ε), 0, 5)


so that the energy the workers put in together matches that of sequential momentum SGD with
μ, η; it pushes ``u = −π ⊙ η g`` (PUSH), which the master adds, and continues from θ̃ + u.
(This is the issue's π' = (κ|m| − |v|)/|g| applied to g, with π' = π η: the clip at 5 is on
the dimensionless ratio to the plain SGD step, as in NNLO.) Defaults η = ``--gem-lr`` 0.05 (the
paper's experiments; NNLO's default is 0.01: both learn, Adam's 1e-3 does not), μ =
``--momentum`` 0.9, κ = ``--gem-kappa`` 2; the master's schedule scales η like a learning rate.

**Sub-masters** (``--masters M``, :mod:`jetlab.distributed.topology`) act as a master to
their workers and as a worker to the top master, once per round of their live workers:
Downpour sums the workers' G and sends the sum up (the top's optimizer steps on it; the reply
replaces the sub-master's copy); EASGD is elastic at both levels (α = β/p at each); GEM adds
the workers' u to its copy and sends their sum up (the reply θ̃ plus what arrived since
becomes the copy).

Tensor shapes: every vector is (P,) float32 for a network with P parameters.
"""

from __future__ import annotations

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from jetlab.distributed.transport import Kind, Message

__all__ = ["ALGORITHMS", "CenterNet", "WorkerNet", "elastic_difference", "flat_grad", "gem_update"]

#: clip of GEM's scale π, and the ε of its denominator
GEM_PI_MAX = 5.0
GEM_EPS = 1e-12


def flat_grad(params: list[torch.Tensor]) -> torch.Tensor:
    """The gradients of ``params`` as one (P,) vector (zeros where a parameter has none)."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])


def elastic_difference(x: torch.Tensor, center: torch.Tensor, alpha: float) -> torch.Tensor:
    """EASGD's ``e = α (x − x̃)``: the worker moves by −e, the center by +e."""
    return alpha * (x - center)


def gem_update(grad: torch.Tensor, momentum: torch.Tensor, velocity: torch.Tensor, lr: float,
               kappa: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GEM's ``(u, π)`` from the gradient g, the (already updated) momentum proxy m and the
    central velocity v: ``π = clip((κ|m| − |v|)/(η|g| + ε), 0, 5)``, ``u = −π ⊙ η g``."""
    step = lr * grad
    pi = ((kappa * momentum.abs() - velocity.abs()) / (step.abs() + GEM_EPS)).clamp_(0.0, GEM_PI_MAX)
    return -pi * step, pi


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    if lr > 0:
        for group in optimizer.param_groups:
            group["lr"] = lr


class WorkerNet:
    """A worker's state for one network: its parameters, local optimizer, accumulators."""

    def __init__(self, index: int, params: list[torch.Tensor], optimizer: torch.optim.Optimizer,
                 momentum: float = 0.9, kappa: float = 2.0):
        self.index = index
        self.params = params
        self.optimizer = optimizer
        self.momentum = momentum
        self.kappa = kappa
        self.lr_scale = 1.0       # EASGD: the worker's lr is its master's times this (p)
        self.steps = 0
        self.pending = 0          # Downpour: steps summed since the last exchange
        self.accumulated = torch.zeros(sum(p.numel() for p in params))
        self.proxy = torch.zeros_like(self.accumulated)       # GEM's m
        self.last_pull = torch.zeros_like(self.accumulated)   # GEM's θ̃_last

    def vector(self) -> torch.Tensor:
        return parameters_to_vector(self.params).detach()

    def assign(self, vector: torch.Tensor) -> None:
        with torch.no_grad():
            vector_to_parameters(vector.to(self.params[0].device), self.params)

    def start(self, weights: torch.Tensor, lr: float) -> None:
        self.assign(weights)
        self.last_pull = weights.detach().clone().cpu()
        _set_lr(self.optimizer, lr * self.lr_scale)


class CenterNet:
    """A master's (or sub-master's) state for one network: the central weights (the
    module's own parameters), its optimizer, and what a sub-master owes its parent."""

    def __init__(self, index: int, params: list[torch.Tensor], optimizer: torch.optim.Optimizer, alpha: float,
                 relay: bool = False):
        self.index = index
        self.params = params
        self.optimizer = optimizer
        self.alpha = alpha
        self.relay = relay
        self.pending = torch.zeros(sum(p.numel() for p in params))   # sub-master: not yet sent up
        self.in_flight = False
        self.exchanges = 0          # child exchanges since the last send up
        self.lr = _lr(optimizer)    # what children are told (a sub-master: its parent's)

    def vector(self) -> torch.Tensor:
        return parameters_to_vector(self.params).detach().cpu()

    def assign(self, vector: torch.Tensor) -> None:
        with torch.no_grad():
            vector_to_parameters(vector.to(self.params[0].device), self.params)

    def weights_message(self) -> Message:
        return Message(Kind.WEIGHTS, self.index, value=self.lr if self.relay else _lr(self.optimizer),
                       payload=self.vector())


class Downpour:
    name = "downpour"

    def worker_step(self, w: WorkerNet, link, tau: int) -> Message | None:
        grad = flat_grad(w.params).cpu()
        w.accumulated += grad
        w.steps += 1
        w.pending += 1
        if w.pending < tau:
            w.assign(w.vector().cpu() - _lr(w.optimizer) * grad)    # local plain SGD step
            return None
        return self.flush(w, link)

    def flush(self, w: WorkerNet, link) -> Message | None:
        """Send the sum of the steps since the last exchange (if any); adopt the answer."""
        if not w.pending:
            return None
        reply = link.request(Message(Kind.UPDATE, w.index, count=w.pending, payload=w.accumulated))
        w.accumulated = torch.zeros_like(w.accumulated)
        w.pending = 0
        if reply.kind == Kind.WEIGHTS:
            w.assign(reply.payload)
            _set_lr(w.optimizer, reply.value)
        return reply

    def handle(self, c: CenterNet, message: Message) -> Message | None:
        if message.kind != Kind.UPDATE:
            raise ValueError(f"downpour: unexpected {Kind(message.kind).name}")
        if c.relay:
            c.pending += message.payload
        else:
            offset = 0
            for p in c.params:
                n = p.numel()
                p.grad = message.payload[offset:offset + n].view_as(p).to(p.device, p.dtype).clone()
                offset += n
            c.optimizer.step()
            c.optimizer.zero_grad(set_to_none=True)
        return c.weights_message()

    def outgoing(self, c: CenterNet) -> Message:
        message = Message(Kind.UPDATE, c.index, count=c.exchanges, payload=c.pending)
        c.pending = torch.zeros_like(c.pending)
        return message

    def absorb(self, c: CenterNet, reply: Message) -> None:
        c.assign(reply.payload)
        c.lr = reply.value


class Elastic:
    name = "easgd"

    def flush(self, w: WorkerNet, link) -> None:
        """Nothing is held back: a worker's local steps are in its own weights."""

    def worker_step(self, w: WorkerNet, link, tau: int) -> Message | None:
        w.optimizer.step()
        w.steps += 1
        if w.steps % tau:
            return None
        x = w.vector().cpu()
        reply = link.request(Message(Kind.ELASTIC, w.index, count=tau, payload=x))
        if reply.kind == Kind.ELASTIC:
            w.assign(x - reply.payload)
            _set_lr(w.optimizer, reply.value * w.lr_scale)
        return reply

    def handle(self, c: CenterNet, message: Message) -> Message | None:
        if message.kind != Kind.ELASTIC:
            raise ValueError(f"easgd: unexpected {Kind(message.kind).name}")
        center = c.vector()
        e = elastic_difference(message.payload, center, c.alpha)
        c.assign(center + e)
        return Message(Kind.ELASTIC, c.index, value=c.lr if c.relay else _lr(c.optimizer), payload=e)

    def outgoing(self, c: CenterNet) -> Message:
        return Message(Kind.ELASTIC, c.index, count=c.exchanges, payload=c.vector())

    def absorb(self, c: CenterNet, reply: Message) -> None:
        c.assign(c.vector() - reply.payload)
        c.lr = reply.value


class EnergyMatching:
    name = "gem"

    def flush(self, w: WorkerNet, link) -> None:
        """Nothing is held back: every update was pushed."""

    def worker_step(self, w: WorkerNet, link, tau: int) -> Message | None:
        grad = flat_grad(w.params).cpu()
        lr = _lr(w.optimizer)
        w.proxy.mul_(w.momentum).add_(grad, alpha=-lr)
        w.steps += 1
        reply = link.request(Message(Kind.PULL, w.index))
        if reply.kind != Kind.WEIGHTS:
            return reply
        center = reply.payload
        update, _ = gem_update(grad, w.proxy, center - w.last_pull, lr, w.kappa)
        w.last_pull = center.clone()
        link.send(Message(Kind.PUSH, w.index, payload=update))
        w.assign(center + update)
        _set_lr(w.optimizer, reply.value)
        return reply

    def handle(self, c: CenterNet, message: Message) -> Message | None:
        if message.kind == Kind.PULL:
            return c.weights_message()
        if message.kind != Kind.PUSH:
            raise ValueError(f"gem: unexpected {Kind(message.kind).name}")
        c.assign(c.vector() + message.payload)
        if c.relay:
            c.pending += message.payload
        return c.weights_message() if message.count else None

    def outgoing(self, c: CenterNet) -> Message:
        message = Message(Kind.PUSH, c.index, count=1, payload=c.pending)
        c.pending = torch.zeros_like(c.pending)
        return message

    def absorb(self, c: CenterNet, reply: Message) -> None:
        c.assign(reply.payload + c.pending)   # the top's θ̃ plus what children pushed since
        c.lr = reply.value


ALGORITHMS = {rule.name: rule for rule in (Downpour, Elastic, EnergyMatching)}
