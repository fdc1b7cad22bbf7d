"""Tests for jetlab.losses.nnd: NND loss against a brute-force Python-loop oracle."""

import math

import pytest
import torch

from jetlab.losses import NNDLoss, nnd_loss


def oracle_nnd(a, b, mask_a=None, mask_b=None, n_coords=None, beta=1.0):
    """Per-set NND by explicit loops over points (float64 Python arithmetic)."""
    batch, _, dim = a.shape
    k = dim if n_coords is None else n_coords
    out = []
    for s in range(batch):
        pa = [a[s, i].tolist() for i in range(a.shape[1]) if mask_a is None or mask_a[s, i]]
        pb = [b[s, j].tolist() for j in range(b.shape[1]) if mask_b is None or mask_b[s, j]]
        total = 0.0
        for first, second in ((pa, pb), (pb, pa)):
            for x in first:
                distances = [sum((x[c] - y[c]) ** 2 for c in range(k)) for y in second]
                y = second[min(range(len(second)), key=distances.__getitem__)]
                total += distances[second.index(y)] + beta * sum(
                    (x[c] - y[c]) ** 2 for c in range(k, dim))
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


def random_masks(generator, batch, n):
    mask = torch.rand(batch, n, generator=generator) < 0.7
    mask[:, 0] = True  # at least one real point per set
    return mask


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)


def test_matches_oracle_with_masks(generator):
    a = torch.randn(4, 7, 3, generator=generator, dtype=torch.float64)
    b = torch.randn(4, 5, 3, generator=generator, dtype=torch.float64)
    mask_a, mask_b = random_masks(generator, 4, 7), random_masks(generator, 4, 5)
    got = nnd_loss(a, b, mask_a, mask_b, reduction="none")
    torch.testing.assert_close(got, oracle_nnd(a, b, mask_a, mask_b))


def test_matches_oracle_without_masks(generator):
    a = torch.randn(3, 6, 2, generator=generator, dtype=torch.float64)
    b = torch.randn(3, 9, 2, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(nnd_loss(a, b, reduction="none"), oracle_nnd(a, b))


def test_features_form_matches_oracle(generator):
    a = torch.randn(3, 6, 4, generator=generator, dtype=torch.float64)
    b = torch.randn(3, 8, 4, generator=generator, dtype=torch.float64)
    mask_a, mask_b = random_masks(generator, 3, 6), random_masks(generator, 3, 8)
    got = nnd_loss(a, b, mask_a, mask_b, reduction="none", n_coords=2, beta=0.3)
    torch.testing.assert_close(got, oracle_nnd(a, b, mask_a, mask_b, n_coords=2, beta=0.3))
    # neighbours chosen by coordinates only: differs from treating all columns as coordinates
    assert not torch.allclose(got, nnd_loss(a, b, mask_a, mask_b, reduction="none"))


def test_features_neighbour_by_coordinates_only():
    # a's point is closest to b[1] in coordinates but to b[0] in all four columns
    a = torch.tensor([[[0.0, 0.0, 5.0, 0.0]]])
    b = torch.tensor([[[0.0, 1.0, 5.0, 0.0], [0.0, 0.5, 0.0, 0.0]]])
    # a->b: b[1], 0.25 + beta*25; b[0]->a: 1 + 0; b[1]->a: 0.25 + beta*25
    got = nnd_loss(a, b, n_coords=2, beta=2.0, reduction="sum")
    assert got.item() == pytest.approx(0.25 + 50 + 1 + 0.25 + 50)


def test_known_value_by_hand():
    a = torch.tensor([[[0.0, 0.0], [2.0, 0.0]]])
    b = torch.tensor([[[0.0, 1.0], [5.0, 0.0], [9.0, 9.0]]])
    mask_b = torch.tensor([[True, True, False]])  # (9, 9) is padding
    # a0->b0: 1; a1->b0: 4+1=5; b0->a0: 1; b1->a1: 9  => 16
    assert nnd_loss(a, b, None, mask_b).item() == pytest.approx(16.0)


def test_symmetric_and_zero_for_identical(generator):
    a = torch.randn(2, 6, 3, generator=generator)
    b = torch.randn(2, 4, 3, generator=generator)
    mask_a, mask_b = random_masks(generator, 2, 6), random_masks(generator, 2, 4)
    torch.testing.assert_close(nnd_loss(a, b, mask_a, mask_b, reduction="none"),
                               nnd_loss(b, a, mask_b, mask_a, reduction="none"))
    assert torch.equal(nnd_loss(a, a, mask_a, mask_a, reduction="none"), torch.zeros(2))


def test_permutation_invariance(generator):
    a = torch.randn(2, 6, 3, generator=generator, dtype=torch.float64)
    b = torch.randn(2, 5, 3, generator=generator, dtype=torch.float64)
    mask_a = random_masks(generator, 2, 6)
    perm = torch.randperm(6, generator=generator)
    torch.testing.assert_close(nnd_loss(a[:, perm], b, mask_a[:, perm], reduction="none"),
                               nnd_loss(a, b, mask_a, reduction="none"))


def test_padding_equivalent_to_unpadded(generator):
    a = torch.randn(1, 4, 2, generator=generator, dtype=torch.float64)
    b = torch.randn(1, 3, 2, generator=generator, dtype=torch.float64)
    pad_a = torch.cat([a, torch.full((1, 5, 2), 0.01, dtype=torch.float64)], 1)
    pad_b = torch.cat([torch.zeros(1, 2, 2, dtype=torch.float64), b], 1)
    mask_a = torch.tensor([[True] * 4 + [False] * 5])
    mask_b = torch.tensor([[False] * 2 + [True] * 3])
    torch.testing.assert_close(nnd_loss(pad_a, pad_b, mask_a, mask_b), nnd_loss(a, b))


def test_reductions_consistent(generator):
    a = torch.randn(5, 6, 3, generator=generator)
    b = torch.randn(5, 7, 3, generator=generator)
    per_set = nnd_loss(a, b, reduction="none")
    assert per_set.shape == (5,)
    torch.testing.assert_close(nnd_loss(a, b, reduction="sum"), per_set.sum())
    torch.testing.assert_close(nnd_loss(a, b, reduction="mean"), per_set.mean())
    torch.testing.assert_close(NNDLoss(reduction="sum")(a, b), per_set.sum())


def test_gradcheck(generator):
    a = torch.randn(2, 5, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 4, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    mask_a = torch.tensor([[True, True, False, True, True], [True] * 5])
    mask_b = torch.tensor([[True] * 4, [True, False, True, True]])
    assert torch.autograd.gradcheck(
        lambda x, y: nnd_loss(x, y, mask_a, mask_b, reduction="none", n_coords=2, beta=0.5),
        (a, b))
    # padded points receive no gradient
    nnd_loss(a, b, mask_a, mask_b).backward()
    assert torch.all(a.grad[0, 2] == 0) and torch.all(b.grad[1, 1] == 0)


def test_empty_sets():
    a = torch.randn(2, 3, 2, requires_grad=True)
    b = torch.randn(2, 4, 2)
    mask_a = torch.tensor([[False] * 3, [True] * 3])
    mask_b = torch.tensor([[False] * 4, [True] * 4])
    per_set = nnd_loss(a, b, mask_a, mask_b, reduction="none")
    assert per_set[0].item() == 0.0
    assert per_set[1].item() == pytest.approx(oracle_nnd(a.detach()[1:], b[1:]).item(), rel=1e-5)
    per_set.sum().backward()
    assert torch.all(a.grad[0] == 0)
    with pytest.raises(ValueError, match="set 0 of 'b' has no real points"):
        nnd_loss(a, b, mask_a.logical_not(), mask_b)
    with pytest.raises(ValueError, match="set 1 of 'a' has no real points"):
        nnd_loss(a, b, torch.tensor([[True] * 3, [False] * 3]), None)
    # both sides with zero points at all
    empty = nnd_loss(torch.zeros(3, 0, 2), torch.zeros(3, 0, 2), reduction="none")
    assert torch.equal(empty, torch.zeros(3))


def test_bad_arguments():
    a, b = torch.zeros(2, 3, 2), torch.zeros(2, 3, 3)
    with pytest.raises(ValueError, match="must agree"):
        nnd_loss(a, b)
    with pytest.raises(ValueError, match="reduction"):
        nnd_loss(a, a, reduction="max")
    with pytest.raises(ValueError, match="n_coords"):
        nnd_loss(a, a, n_coords=3)
    with pytest.raises(ValueError, match="bool"):
        nnd_loss(a, a, torch.ones(2, 3))


def test_large_sets_agree_with_dense_formula(generator):
    # 40 x 50 points: cdist's exact mode must pick true nearest neighbours
    a = torch.randn(3, 40, 2, generator=generator, dtype=torch.float64) * 100
    b = torch.randn(3, 50, 2, generator=generator, dtype=torch.float64) * 100
    dense = ((a[:, :, None] - b[:, None]) ** 2).sum(-1)
    expected = dense.min(2).values.sum(1) + dense.min(1).values.sum(1)
    torch.testing.assert_close(nnd_loss(a, b, reduction="none"), expected)
    assert math.isfinite(nnd_loss(a.float(), b.float()).item())


def test_many_coordinates_path_matches_oracle(generator):
    # more than 16 coordinates takes the cdist path
    a = torch.randn(2, 5, 20, generator=generator, dtype=torch.float64)
    b = torch.randn(2, 6, 20, generator=generator, dtype=torch.float64)
    mask_a = random_masks(generator, 2, 5)
    got = nnd_loss(a, b, mask_a, None, reduction="none", n_coords=18, beta=2.0)
    torch.testing.assert_close(got, oracle_nnd(a, b, mask_a, None, n_coords=18, beta=2.0))
