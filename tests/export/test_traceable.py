"""The traceable forms compute the taggers' own probabilities (oracle: the tagger's forward)."""

import pytest
import torch

from jetlab.export.traceable import TraceableGRU, traceable_form
from jetlab.models import build_tagger


def _particles(B=9, N=12, F=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, N, generator=g) < 0.6
    mask[0] = False  # an empty jet
    mask[1] = True  # a full one
    mask[2, :3] = False  # real particles not first
    return torch.randn(B, N, F, generator=g) * mask[..., None], mask


@pytest.mark.parametrize("num_layers", [1, 2])
def test_unpacked_gru_equals_the_packed_tagger(num_layers):
    torch.manual_seed(1)
    model = build_tagger("gru", n_particles=12, n_features=4, num_layers=num_layers, hidden=7).eval()
    x, mask = _particles()
    with torch.no_grad():
        torch.testing.assert_close(TraceableGRU(model)(x, mask), model(x, mask), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["jedinet", "jedinet-sumo", "garnet", "gru", "dnn"])
def test_traceable_form_is_the_softmax_of_the_tagger(name):
    torch.manual_seed(2)
    model = build_tagger(name, n_particles=12, n_features=4 if name != "dnn" else 16).eval()
    inputs = _particles() if name != "dnn" else (torch.randn(9, 16),)
    form, note = traceable_form(model)
    assert note
    with torch.no_grad():
        torch.testing.assert_close(form(*inputs), torch.softmax(model(*inputs), dim=1), rtol=1e-5, atol=1e-6)
