"""The exponential moving average of the flow's weights (``--ema-decay``,
jetlab.training.ema, FlowTask's ``"flow_ema"``).

Oracles: the recursion θ̄_k = β θ̄_{k−1} + (1 − β) θ_k written out by hand over the raw weights
after each step; a task without an average whose network carries the average's weights
(validation and generation of the EMA task must equal its); the refusal under an
asynchronous strategy. Resume exactness of the average is tested end to end in
test_flow_training.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_generator import synthetic_jets

from jetlab.errors import JetlabError
from jetlab.models.flow import FlowGenerator
from jetlab.training.generator import GeneratorConfig
from jetlab.training.point_sets import Normalisation
from jetlab.training.tasks.flow import FlowTask, JetConditions

BETA = 0.7


def _task(ema_decay: float, seed: int = 0, conditioned: bool = True) -> tuple[FlowTask, dict]:
    points, mask = synthetic_jets(24, 6, seed=1)
    norm = Normalisation.fit(points, mask, (2,))
    conditions = JetConditions.fit(points, mask) if conditioned else None
    torch.manual_seed(seed)
    flow = FlowGenerator(6, 3, n_cond=2 if conditioned else 0, hidden=8, global_dim=8, n_layers=1, time_dim=4)
    task = FlowTask(flow, torch.optim.Adam(flow.parameters(), lr=0.05), norm, kind="jets", ema_decay=ema_decay,
                    pairing="ot", conditions=conditions)
    return task, {"points": torch.as_tensor(points), "mask": torch.as_tensor(mask)}


def _step(task):
    def update(name, loss):
        optimizer = task.optimizers[name]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return update


def _weights(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_the_average_follows_the_hand_written_recursion_and_the_raw_weights_keep_training():
    task, batch = _task(BETA)
    average = _weights(task.flow)          # θ̄₀ = θ₀
    for _ in range(4):
        task.train_step(batch, _step(task))
        raw = _weights(task.flow)
        average = {k: BETA * average[k] + (1 - BETA) * raw[k] for k in raw}
        shadow = _weights(task.modules["flow_ema"])
        for key in raw:
            torch.testing.assert_close(shadow[key], average[key], rtol=1e-6, atol=1e-7)
        assert any(not torch.equal(shadow[key], raw[key]) for key in raw)   # an average, not a copy
    # the raw network is what the optimizer trains; the average gets no gradient
    assert all(p.grad is None for p in task.modules["flow_ema"].parameters())
    assert [id(p) for g in task.optimizers["flow"].param_groups for p in g["params"]] == \
        [id(p) for p in task.flow.parameters()]


@pytest.mark.parametrize("conditioned", [True, False])
def test_validation_and_generation_use_the_average(conditioned):
    task, batch = _task(BETA, conditioned=conditioned)
    for _ in range(3):
        task.train_step(batch, _step(task))
    plain, _ = _task(0.0, seed=1, conditioned=conditioned)
    assert set(plain.modules) == {"flow"}
    plain.flow.load_state_dict(task.modules["flow_ema"].state_dict())
    assert task.validate_step(batch) == plain.validate_step(batch)
    points, mask = task.generate(16, seed=3)
    expected, expected_mask = plain.generate(16, seed=3)
    np.testing.assert_array_equal(points, expected)
    np.testing.assert_array_equal(mask, expected_mask)
    plain.flow.load_state_dict(task.flow.state_dict())   # the raw weights generate other jets
    assert not np.array_equal(plain.generate(16, seed=3)[0], points)


def test_bad_ema_settings_are_refused():
    with pytest.raises(JetlabError, match="ema_decay must be in"):
        GeneratorConfig(model="flow", ema_decay=1.0).validate()
    with pytest.raises(JetlabError, match="ema_decay works with the synchronous strategies only"):
        GeneratorConfig(model="flow", ema_decay=0.99, strategy="easgd").validate()
    with pytest.raises(JetlabError, match="ema_decay is a flow setting"):
        GeneratorConfig(model="vae", ema_decay=0.99).validate()
    with pytest.raises(JetlabError, match="unknown flow_pairing"):
        GeneratorConfig(model="flow", flow_pairing="sinkhorn").validate()
