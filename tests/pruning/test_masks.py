"""Schedules, magnitude masks, exact-zero counting, mask folding and the L1 penalty, on
models built in memory (no data)."""

from __future__ import annotations

import math

import pytest
import torch

from jetlab.errors import JetlabError
from jetlab.models import DenseJEDINet, build_tagger
from jetlab.pruning import (
    count_zeros,
    fold_masks,
    make_permanent,
    prunable_weights,
    prune_by_magnitude,
    sparsity_schedule,
    weight_l1_norm,
)
from jetlab.training.tasks import ClassifyTask


def dnn(seed=0):
    torch.manual_seed(seed)
    return build_tagger("dnn", n_particles=30, n_features=16)


def names(model):
    return [name for name, _, _ in prunable_weights(model)]


def test_geometric_schedule_removes_the_same_fraction_of_the_remaining_weights():
    s = sparsity_schedule(0.7, 7, "geometric")
    assert len(s) == 7 and s[-1] == 0.7
    kept = [1.0] + [1 - x for x in s]
    ratios = [b / a for a, b in zip(kept, kept[1:])]
    assert ratios == pytest.approx([0.3 ** (1 / 7)] * 7, rel=1e-12)
    assert s[0] == pytest.approx(1 - 0.3 ** (1 / 7))


def test_linear_schedule_removes_the_same_number_of_weights():
    assert sparsity_schedule(0.6, 3, "linear") == pytest.approx([0.2, 0.4, 0.6])
    assert sparsity_schedule(0.5, 1, "geometric") == [0.5]


@pytest.mark.parametrize("target, iterations, kind", [(0.0, 3, "linear"), (1.0, 3, "linear"), (0.5, 0, "linear"),
                                                      (0.5, 2, "cubic"), (-0.1, 2, "geometric")])
def test_impossible_schedules_are_one_line_errors(target, iterations, kind):
    with pytest.raises(JetlabError):
        sparsity_schedule(target, iterations, kind)


def test_weight_matrices_of_every_tagger_kind():
    assert names(dnn()) == [f"mlp.layers.{i}.weight" for i in range(4)]
    gru = build_tagger("gru", n_particles=30, n_features=16)
    assert names(gru) == ["gru.weight_ih_l0", "gru.weight_hh_l0", "head.layers.0.weight", "head.layers.1.weight"]
    cnn = build_tagger("cnn", n_particles=30, n_features=1)
    assert names(cnn)[:3] == ["convs.0.weight", "convs.1.weight", "convs.2.weight"]
    jedi = build_tagger("jedinet", n_particles=30, n_features=16)
    assert [n.split(".")[0] for n in names(jedi)] == ["f_R"] * 3 + ["f_O"] * 3 + ["phi_C"] * 3
    assert not any("bias" in n for model in (gru, cnn, jedi) for n in names(model))


def test_layer_scope_prunes_every_matrix_to_the_target_and_global_ranks_them_together():
    layer, whole = dnn(), dnn()
    prune_by_magnitude(layer, 0.6, "layer")
    for name, counted in count_zeros(layer.state_dict(), names(layer))["layers"].items():
        assert counted["zeros"] == int(0.6 * counted["total"] + 0.5), name

    original = {name: w.detach().clone() for name, w in dnn().state_dict().items()}
    prune_by_magnitude(whole, 0.6, "global")
    counted = count_zeros(whole.state_dict(), names(whole))
    assert counted["zeros"] == int(0.6 * counted["total"] + 0.5)
    assert len({round(v["sparsity"], 3) for v in counted["layers"].values()}) > 1  # layers lose unequal shares
    # every removed weight is no larger in magnitude than every kept one, across all matrices
    masks = {name: whole.get_buffer(name + "_mask") for name in names(whole)}
    removed = torch.cat([original[n][m == 0].abs() for n, m in masks.items()])
    kept = torch.cat([original[n][m == 1].abs() for n, m in masks.items()])
    assert removed.max() <= kept.min()


def test_masks_grow_from_the_previous_iterations_zeros_and_fold_like_prune_remove():
    model = dnn()
    prune_by_magnitude(model, 0.3, "global")
    first = fold_masks(model.state_dict())
    with torch.no_grad():  # retraining moves the surviving weights
        for _, module, name in prunable_weights(model):
            getattr(module, name + "_orig").mul_(torch.rand_like(getattr(module, name + "_orig")) + 0.5)
    folded = fold_masks(model.state_dict())
    removed = make_permanent(model).state_dict()
    assert set(folded) == set(removed) == set(dnn().state_dict())
    for key in removed:
        assert torch.equal(folded[key], removed[key]), key

    again = dnn(seed=5)
    again.load_state_dict(folded)
    prune_by_magnitude(again, 0.55, "layer")
    second = fold_masks(again.state_dict())
    for name in names(again):
        assert torch.all(second[name][first[name] == 0] == 0), name  # pruned stays pruned


def test_a_model_with_masks_is_not_pruned_again():
    model = dnn()
    prune_by_magnitude(model, 0.5)
    with pytest.raises(JetlabError, match="already carries pruning masks"):
        prune_by_magnitude(model, 0.7)
    with pytest.raises(JetlabError, match="scope"):
        prune_by_magnitude(dnn(), 0.5, "row")


def test_pruned_gru_uses_its_masks_and_folds_to_the_same_network():
    torch.manual_seed(2)
    gru = build_tagger("gru", n_particles=10, n_features=4)
    prune_by_magnitude(gru, 0.5, "layer")
    plain = build_tagger("gru", n_particles=10, n_features=4)
    plain.load_state_dict(fold_masks(gru.state_dict()))
    x = torch.randn(3, 10, 4)
    mask = torch.arange(10) < torch.tensor([10, 6, 2])[:, None]
    torch.testing.assert_close(gru(x, mask), plain(x, mask), rtol=0, atol=0)
    assert count_zeros(plain.state_dict(), ["gru.weight_hh_l0"])["sparsity"] == 0.5


def test_pruned_jedinet_fast_path_matches_the_dense_oracle():
    """JEDI-net's fast path never calls f_R's layers (no pre-hook): it must still honour the
    masks, in the forward pass and in the gradients of the surviving weights."""
    torch.manual_seed(0)
    hp = {"hidden": 8, "edge_dim": 3, "object_dim": 4, "block_size": 2}
    fast = build_tagger("jedinet", n_particles=7, n_features=5, **hp).double()
    prune_by_magnitude(fast, 0.6, "global")
    dense = DenseJEDINet(7, 5, **hp).double()
    prune_by_magnitude(dense, 0.0, "layer")
    dense.load_state_dict(fast.state_dict())  # the same orig weights and masks
    with torch.no_grad():  # a step on the surviving weights, as the optimizer makes
        for (_, m_fast, name), (_, m_dense, _) in zip(prunable_weights(fast), prunable_weights(dense)):
            step = torch.randn_like(getattr(m_fast, name + "_orig"))
            getattr(m_fast, name + "_orig").add_(step)
            getattr(m_dense, name + "_orig").add_(step)
    x = torch.randn(4, 7, 5, dtype=torch.float64)
    mask = torch.arange(7) < torch.tensor([7, 5, 3, 1])[:, None]
    out_fast, out_dense = fast(x, mask), dense(x, mask)
    torch.testing.assert_close(out_fast, out_dense, rtol=0, atol=1e-10)
    out_fast.square().sum().backward()
    out_dense.square().sum().backward()
    for (name, m_fast, p), (_, m_dense, _) in zip(prunable_weights(fast), prunable_weights(dense)):
        grad = getattr(m_fast, p + "_orig").grad
        torch.testing.assert_close(grad, getattr(m_dense, p + "_orig").grad, rtol=0, atol=1e-10)
        assert torch.all(grad[getattr(m_fast, p + "_mask") == 0] == 0), name

    plain = DenseJEDINet(7, 5, **hp).double()
    plain.load_state_dict(fold_masks(fast.state_dict()))
    torch.testing.assert_close(plain(x, mask), out_dense.detach(), rtol=0, atol=1e-10)
    counted = count_zeros(plain.state_dict(), names(plain))
    assert counted["zeros"] == int(0.6 * counted["total"] + 0.5)


def test_l1_penalty_adds_lambda_sign_w_to_the_weight_gradients_only():
    model = dnn()
    prune_by_magnitude(model, 0.5)
    batch = {"hlf": torch.randn(8, 16), "label": torch.arange(8) % 5}
    grads = {}

    def capture(key):
        def update(name, loss):
            model.zero_grad()
            loss.backward()
            grads[key] = {n: p.grad.clone() for n, p in model.named_parameters()}
        return update

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    plain = ClassifyTask(model, optimizer).train_step(batch, capture("plain"))
    numbers = ClassifyTask(model, optimizer, l1=0.01).train_step(batch, capture("l1"))
    assert numbers["loss"] == plain["loss"]  # the logged loss is the cross-entropy alone
    assert numbers["l1_penalty"] == pytest.approx(0.01 * weight_l1_norm(model).item())
    assert weight_l1_norm(model).item() == pytest.approx(
        sum(float(w.abs().sum()) for k, w in fold_masks(model.state_dict()).items() if k.endswith("weight")))
    for name, parameter in model.named_parameters():
        extra = grads["l1"][name] - grads["plain"][name]
        if name.endswith("weight_orig"):
            mask = model.get_buffer(name.replace("_orig", "_mask"))
            expected = 0.01 * torch.sign(parameter.detach()) * mask
        else:
            expected = torch.zeros_like(parameter)
        torch.testing.assert_close(extra, expected, rtol=0, atol=1e-7, msg=name)


def test_count_zeros_reads_masks_and_plain_weights_alike():
    model = dnn()
    prune_by_magnitude(model, 0.25, "layer")
    with_masks = count_zeros(model.state_dict(), names(model))
    assert with_masks == count_zeros(fold_masks(model.state_dict()), names(model))
    assert with_masks["total"] == 16 * 64 + 64 * 32 + 32 * 32 + 32 * 5
    assert math.isclose(with_masks["sparsity"], with_masks["zeros"] / with_masks["total"])
