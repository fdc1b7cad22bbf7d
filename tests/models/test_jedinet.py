"""JEDI-net: the fast blocked model against the dense R_r/R_s oracle, masking and invariances."""

from __future__ import annotations

import sys

import pytest
import torch

from jetlab.errors import JetlabError
from jetlab.models import (
    DenseJEDINet,
    DenseJEDINetSumO,
    JEDINet,
    JEDINetSumO,
    build_tagger,
)
from jetlab.models.jedinet import PAPER_HYPERPARAMETERS

SMALL = {"hidden": 8, "edge_dim": 3, "object_dim": 4}
VARIANTS = [(JEDINet, DenseJEDINet), (JEDINetSumO, DenseJEDINetSumO)]



def pair(fast_cls, dense_cls, n, n_features=5, seed=0, **hp):
    """A fast model and a dense one with the same (float64) weights."""
    torch.manual_seed(seed)
    fast = fast_cls(n, n_features, **{**SMALL, **hp}).double()
    dense = dense_cls(n, n_features, **{**SMALL, **{k: v for k, v in hp.items() if k != "block_size"}}).double()
    dense.load_state_dict(fast.state_dict())
    return fast, dense


def batch(n, n_features=5, b=4, seed=1, padded=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, n_features, generator=g, dtype=torch.float64)
    if not padded:
        return x, torch.ones(b, n, dtype=torch.bool)
    mask = torch.rand(b, n, generator=g) > 0.35
    mask[0] = True  # one full jet
    mask[1, n // 2:] = False  # one zero-padded jet with trailing padding
    return x, mask


@pytest.mark.parametrize("variant", VARIANTS, ids=["flat", "sumo"])
@pytest.mark.parametrize("n", [1, 2, 7, 16])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("activation", ["elu", "selu", "relu", "tanh", "gelu"])
def test_fast_matches_dense_outputs_and_gradients(variant, n, padded, activation):
    fast, dense = pair(*variant, n, block_size=3, f_r_activation=activation)
    x, mask = batch(n, padded=padded)
    labels = torch.arange(4) % 5
    x_fast, x_dense = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_fast, out_dense = fast(x_fast, mask), dense(x_dense, mask)
    assert (out_fast - out_dense).abs().max() <= 1e-5
    torch.nn.functional.cross_entropy(out_fast, labels).backward()
    torch.nn.functional.cross_entropy(out_dense, labels).backward()
    for (name, p_fast), p_dense in zip(fast.named_parameters(), dense.parameters()):
        assert (p_fast.grad - p_dense.grad).abs().max() <= 1e-5, name
    assert (x_fast.grad - x_dense.grad).abs().max() <= 1e-5


@pytest.mark.parametrize("variant", VARIANTS, ids=["flat", "sumo"])
def test_fast_matches_dense_with_paper_hyperparameters_float32(variant):
    n = 30
    torch.manual_seed(0)
    fast = variant[0](n, 16)
    dense = variant[1](n, 16)
    dense.load_state_dict(fast.state_dict())
    x = torch.randn(6, n, 16)
    mask = torch.arange(n) < torch.tensor([30, 25, 12, 3, 1, 17])[:, None]
    assert (fast(x, mask) - dense(x, mask)).abs().max() <= 1e-5


def test_large_preactivations_take_the_exact_activation_path():
    """|h| > 40 disables the exp-factored ELU/SELU; both branches must agree with the oracle."""
    fast, dense = pair(JEDINet, DenseJEDINet, 6, f_r_activation="selu", block_size=2)
    x, mask = batch(6)
    for scale in (1.0, 200.0):
        assert (fast(x * scale, mask) - dense(x * scale, mask)).abs().max() <= 1e-5


def saved_elements(model, x, mask):
    """Elements autograd keeps for backward during one forward (what training must hold)."""
    sizes = []

    def pack(tensor):
        sizes.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x, mask).sum().backward()
    return sum(sizes)


def test_training_keeps_no_pair_grid():
    """The fused edge sum saves per-particle tensors only; plain autograd keeps every block."""
    b, n, hidden = 4, 40, 8
    fast, _ = pair(JEDINetSumO, DenseJEDINetSumO, n, block_size=5)
    x, mask = batch(n, b=b)
    grid = b * n * n * hidden
    assert saved_elements(fast, x, mask) < grid / 4
    fast.fused_edge_sum = False
    assert saved_elements(fast, x, mask) > grid


@pytest.mark.parametrize("variant", VARIANTS, ids=["flat", "sumo"])
def test_state_dicts_are_interchangeable(variant):
    torch.manual_seed(3)
    fast, dense = variant[0](9, 4, **SMALL), variant[1](9, 4, **SMALL)
    dense.load_state_dict(fast.state_dict())  # fast -> dense
    torch.manual_seed(4)
    other = variant[0](9, 4, **SMALL)
    other.load_state_dict(dense.state_dict())  # dense -> fast
    assert fast.state_dict().keys() == dense.state_dict().keys()
    x = torch.randn(2, 9, 4)
    assert torch.allclose(other(x), fast(x))


def test_magnitude_pruned_edge_network_stays_exact(prune_edge_networks):
    """torch.nn.utils.prune masks must reach the fast path, which never calls f_R's layers."""
    fast, dense = pair(JEDINet, DenseJEDINet, 7, block_size=2)
    prune_edge_networks(fast, dense)
    x, mask = batch(7)
    assert (fast(x, mask) - dense(x, mask)).abs().max() <= 1e-10
    fast(x, mask).sum().backward()
    dense(x, mask).sum().backward()
    for layer_fast, layer_dense in zip(fast.f_R.layers, dense.f_R.layers):
        assert (layer_fast.weight_orig.grad - layer_dense.weight_orig.grad).abs().max() <= 1e-10
        assert torch.all(layer_fast.weight_orig.grad[layer_fast.weight_mask == 0] == 0)


@pytest.mark.parametrize("variant", VARIANTS, ids=["flat", "sumo"])
def test_block_size_does_not_change_the_output(variant):
    n = 11
    fast, _ = pair(*variant, n)
    x, mask = batch(n)
    reference = fast(x, mask)
    for block_size in (1, 2, 4, 11, 50, None):
        fast.block_size = block_size
        assert torch.allclose(fast(x, mask), reference, atol=1e-12, rtol=0)


def test_sumo_ignores_added_padded_particles():
    fast, _ = pair(JEDINetSumO, DenseJEDINetSumO, 8)
    x, mask = batch(8)
    padded_x = torch.cat([x, torch.randn(4, 5, 5, dtype=torch.float64)], dim=1)  # garbage rows
    padded_mask = torch.cat([mask, torch.zeros(4, 5, dtype=torch.bool)], dim=1)
    assert torch.allclose(fast(padded_x, padded_mask), fast(x, mask), atol=1e-12, rtol=0)


def test_flattened_ignores_padded_rows_and_zero_pads_short_inputs():
    fast, _ = pair(JEDINet, DenseJEDINet, 10)
    x, mask = batch(7, padded=False)
    reference = fast(x)  # 7 particles, zero-padded to the model's 10
    padded_x = torch.cat([x, torch.zeros(4, 3, 5, dtype=torch.float64)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(4, 3, dtype=torch.bool)], dim=1)
    assert torch.allclose(fast(padded_x, padded_mask), reference, atol=1e-12, rtol=0)
    # the content of padded rows, anywhere, does not matter
    x10, mask10 = batch(10)
    garbage = torch.where(mask10[..., None], x10, 1e3 * torch.randn_like(x10))
    assert torch.allclose(fast(garbage, mask10), fast(x10, mask10), atol=1e-12, rtol=0)
    # but a real particle does
    assert not torch.allclose(fast(padded_x, torch.ones(4, 10, dtype=torch.bool)), reference)
    with pytest.raises(ValueError, match="built for 10 particles"):
        fast(torch.zeros(1, 11, 5, dtype=torch.float64))


def test_sumo_is_invariant_under_permuting_particles():
    fast, _ = pair(JEDINetSumO, DenseJEDINetSumO, 9)
    x, mask = batch(9)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(fast(x[:, perm], mask[:, perm]), fast(x, mask), atol=1e-12, rtol=0)


def test_flattened_depends_on_particle_order():
    """The flattened φ_C sees the particles in order: it is not (and should not be) invariant."""
    fast, _ = pair(JEDINet, DenseJEDINet, 9)
    x, _ = batch(9, padded=False)
    assert not torch.allclose(fast(x.flip(1)), fast(x))


def test_paper_hyperparameters_and_nearest_count():
    hp = JEDINet.default_hyperparameters(100)
    assert (hp["hidden"], hp["edge_dim"], hp["object_dim"]) == (30, 10, 10)
    assert (hp["f_r_activation"], hp["f_o_activation"], hp["phi_c_activation"]) == ("elu", "elu", "elu")
    assert JEDINet.default_hyperparameters(30)["f_r_activation"] == "relu"
    assert JEDINet.default_hyperparameters(30)["f_o_activation"] == "selu"
    assert JEDINet.default_hyperparameters(60)["object_dim"] == 14  # nearest is 50
    assert JEDINet.default_hyperparameters(140)["hidden"] == 10  # nearest is 150
    assert JEDINetSumO.default_hyperparameters(150)["hidden"] == PAPER_HYPERPARAMETERS["sumo"][150][0] == 50
    model = build_tagger("jedinet", n_particles=50, n_features=16, edge_dim=7)
    assert model.hparams["edge_dim"] == 7 and model.hparams["hidden"] == 50
    assert [layer.out_features for layer in model.f_R.layers] == [50, 25, 7]
    assert model.phi_C.layers[0].in_features == 14 * 50


def test_kernel_choice_rebuilds_and_fails_clearly_without_triton(monkeypatch):
    """``kernel`` (auto/triton/torch) is a hyperparameter; models saved before it existed still build."""
    with pytest.raises(JetlabError, match="kernel must be one of auto, triton, torch"):
        JEDINet(5, 5, kernel="cuda")
    model = build_tagger("jedinet-sumo", n_particles=5, n_features=5, kernel="torch", **SMALL)
    assert build_tagger("jedinet-sumo", **model.hparams).kernel == "torch"
    older = {key: value for key, value in model.hparams.items() if key != "kernel"}
    auto = build_tagger("jedinet-sumo", **older)
    assert auto.kernel == "auto"
    auto.load_state_dict(model.state_dict())
    x, mask = batch(5)
    x = x.float()
    assert torch.equal(auto(x, mask), model(x, mask))  # auto on CPU: the torch path
    monkeypatch.setitem(sys.modules, "jetlab.models.jedinet_triton", None)  # as if Triton were absent
    assert torch.equal(auto(x, mask), model(x, mask))
    auto.kernel = "triton"
    with pytest.raises(JetlabError, match=r"kernel=triton needs Triton .*pip install 'jetlab\[gpu\]'"):
        auto(x, mask)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("variant", VARIANTS, ids=["flat", "sumo"])
def test_fast_matches_dense_on_cuda(variant):
    fast, dense = pair(*variant, 13, block_size=4)
    fast, dense = fast.cuda(), dense.cuda()
    x, mask = batch(13)
    x, mask = x.cuda(), mask.cuda()
    x_fast, x_dense = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_fast, out_dense = fast(x_fast, mask), dense(x_dense, mask)
    assert (out_fast - out_dense).abs().max() <= 1e-5
    out_fast.square().sum().backward()
    out_dense.square().sum().backward()
    assert (x_fast.grad - x_dense.grad).abs().max() <= 1e-5
    assert torch.allclose(fast.cpu()(x.cpu(), mask.cpu()), out_fast.detach().cpu(), atol=1e-10)
