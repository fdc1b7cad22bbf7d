"""JEDI-linear against an explicit sum over (receiver, sender) pairs; masking and permutation invariance."""

import torch

from jetlab.models import build_tagger


def pair_loop_oracle(model, x, mask):
    """One jet at a time: ē_r = Σ over real senders s != r of f_S(o_s), then f_O, ΣO and φ_C."""
    logits = []
    for b in range(x.shape[0]):
        real = torch.nonzero(mask[b]).flatten().tolist()
        total = 0.0
        for r in real:
            e_bar = sum((model.f_S(x[b, s]) for s in real if s != r), torch.zeros(model.f_S.sizes[-1], dtype=x.dtype))
            total = total + model.f_O(torch.cat([x[b, r], e_bar]))
        logits.append(model.phi_C(total if real else torch.zeros(model.f_O.sizes[-1], dtype=x.dtype)))
    return torch.stack(logits)


def test_jedinet_linear_equals_the_pair_sum_and_ignores_padding_and_order():
    torch.manual_seed(0)
    model = build_tagger("jedinet-linear", n_particles=7, n_features=4, hidden=8, edge_dim=3, object_dim=5).double()
    x = torch.randn(4, 7, 4, dtype=torch.float64)
    mask = torch.arange(7) < torch.tensor([7, 1, 3, 5])[:, None]
    out = model(x, mask)
    torch.testing.assert_close(out, pair_loop_oracle(model, x, mask))
    perm = torch.randperm(7)
    torch.testing.assert_close(model(x[:, perm], mask[:, perm]), out)
    padded = model(torch.cat([x, torch.randn(4, 3, 4, dtype=torch.float64)], 1),
                   torch.cat([mask, torch.zeros(4, 3, dtype=torch.bool)], 1))
    torch.testing.assert_close(padded, out)
