"""The tagger registry, GarNet and GRU masking against per-jet oracles, and that every tagger learns."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch

from jetlab.errors import JetlabError
from jetlab.models import TAGGERS, GarNetLayer, GarNetTagger, GRUTagger, build_tagger

N_PARTICLES, N_FEATURES = 12, 6



def synthetic_batch(b=10, n=N_PARTICLES, f=N_FEATURES, seed=0):
    """A fixed tiny batch with every input key; labels depend on the inputs so they can be learned."""
    g = torch.Generator().manual_seed(seed)
    n_real = torch.randint(2, n + 1, (b,), generator=g)
    mask = torch.arange(n) < n_real[:, None]
    particles = torch.randn(b, n, f, generator=g) * mask[..., None]
    labels = torch.arange(b) % 5
    particles[..., 0] += labels[:, None].float() * mask  # a class-dependent shift
    hlf = torch.randn(b, 16, generator=g) + labels[:, None].float()
    image = torch.rand(b, 1, 100, 100, generator=g) * (labels[:, None, None, None].float() + 1) / 5
    momenta = (torch.rand(b, n, 4, generator=g) * 100 + torch.tensor([0, 0, 0, 200])) * mask[..., None]
    return {"particles": particles, "mask": mask, "hlf": hlf, "image": image, "label": labels,
            "points": particles[..., :2], "momenta": momenta}


def inputs(model, data):
    return [data[key] for key in model.input_keys]


def test_registry_names_and_contract():
    assert list(TAGGERS) == ["jedinet", "jedinet-sumo", "garnet", "dnn", "cnn", "gru", "particlenet",
                             "particlenet-lite", "part", "part-small", "jedinet-linear"]
    data = synthetic_batch()
    for name, cls in TAGGERS.items():
        n_features = 16 if name == "dnn" else N_FEATURES
        model = build_tagger(name, n_particles=N_PARTICLES, n_features=n_features)
        assert isinstance(model, cls) and model.name == name
        assert set(cls.default_hyperparameters(N_PARTICLES)) <= set(model.hparams)
        assert model(*inputs(model, data)).shape == (10, 5)
        # a checkpoint can rebuild it from hparams
        torch.manual_seed(1)
        rebuilt = build_tagger(name, **model.hparams)
        rebuilt.load_state_dict(model.state_dict())
        rebuilt.eval(), model.eval()  # dropout off, batch norms on their (copied) running statistics
        torch.testing.assert_close(rebuilt(*inputs(model, data)), model(*inputs(model, data)))


def test_every_setting_is_an_explicit_keyword_argument_of_the_constructor():
    """No ``**hyperparameters``: the keyword-only arguments are the hyperparameters, exactly,
    and a model's ``hparams`` are those plus the three sizes (what a saved run stores)."""
    for name, cls in TAGGERS.items():
        parameters = inspect.signature(cls).parameters.values()
        assert not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in parameters), name
        keywords = {p.name for p in parameters if p.kind is p.KEYWORD_ONLY}
        assert keywords and set(cls.default_hyperparameters(N_PARTICLES)) == keywords, name
        model = build_tagger(name, n_particles=N_PARTICLES, n_features=16 if name == "dnn" else N_FEATURES)
        assert set(model.hparams) == keywords | {"n_particles", "n_features", "n_classes"}, name
    with pytest.raises(TypeError, match="hiden"):  # Python's own error, outside build_tagger
        GRUTagger(N_PARTICLES, N_FEATURES, hiden=3)
    with pytest.raises(JetlabError, match="gru: hyperparameter hidden must be a int"):
        GRUTagger(N_PARTICLES, N_FEATURES, hidden="wide")


def test_build_tagger_errors():
    with pytest.raises(JetlabError, match="unknown tagger 'transformer'.*jedinet, jedinet-sumo, garnet, dnn, cnn, gru"):
        build_tagger("transformer", n_particles=30, n_features=16)
    with pytest.raises(JetlabError, match="unknown hyperparameter.*hiden.*known:.*hidden"):
        build_tagger("jedinet", n_particles=30, n_features=16, hiden=10)
    with pytest.raises(JetlabError, match="garnet: unknown hyperparameter"):
        build_tagger("garnet", n_particles=30, n_features=16, block_size=3)
    with pytest.raises(JetlabError, match="unknown activation 'swishy'"):
        build_tagger("dnn", n_particles=30, n_features=16, activation="swishy")
    with pytest.raises(JetlabError, match="unknown potential"):
        build_tagger("garnet", n_particles=30, n_features=16, potential="coulomb")


def test_dnn_is_the_hls4ml_benchmark_net():
    model = build_tagger("dnn", n_particles=30, n_features=16)
    assert [(l.in_features, l.out_features) for l in model.mlp.layers] == [(16, 64), (64, 32), (32, 32), (32, 5)]
    assert model.mlp.activation == "relu"


def test_cnn_checks_image_shape():
    model = build_tagger("cnn", n_particles=30, n_features=16)
    with pytest.raises(ValueError, match=r"\(B, 1, 100, 100\)"):
        model(torch.zeros(2, 100, 100))


def garnet_layer_oracle(layer: GarNetLayer, x: np.ndarray) -> np.ndarray:
    """One jet's real vertices only, written out with explicit loops (float64)."""
    W_f, b_f = layer.features.weight.detach().double().numpy(), layer.features.bias.detach().double().numpy()
    W_d, b_d = layer.distances.weight.detach().double().numpy(), layer.distances.bias.detach().double().numpy()
    W_o, b_o = layer.output.weight.detach().double().numpy(), layer.output.bias.detach().double().numpy()
    n, S = len(x), layer.n_aggregators
    f = x @ W_f.T + b_f
    d = x @ W_d.T + b_d
    w = np.exp(-d**2) if layer.potential == "gaussian" else np.exp(-np.abs(d))
    out = []
    for v in range(n):
        returned = []
        for a in range(S):
            messages = [w[u, a] * f[u] for u in range(n)]
            mean, maximum = np.mean(messages, axis=0), np.max(messages, axis=0)
            returned.append(w[v, a] * np.concatenate([mean, maximum]))
        out.append(np.tanh(W_o @ np.concatenate([x[v], *returned]) + b_o))
    return np.array(out)


@pytest.mark.parametrize("potential", ["gaussian", "exponential"])
def test_garnet_layer_matches_per_jet_oracle_and_ignores_padding(potential):
    torch.manual_seed(0)
    layer = GarNetLayer(N_FEATURES, 7, n_aggregators=3, n_filters=4, potential=potential).double()
    data = synthetic_batch()
    x = data["particles"].double()
    mask = data["mask"]
    garbage = torch.where(mask[..., None], x, 50 * torch.randn_like(x))
    out = layer(garbage, mask)
    for b in range(len(x)):
        n = int(mask[b].sum())
        np.testing.assert_allclose(out[b, :n].detach().numpy(), garnet_layer_oracle(layer, x[b, :n].numpy()), atol=1e-10)
        assert torch.all(out[b, n:] == 0)


def test_garnet_tagger_ignores_padding_and_vertex_order():
    torch.manual_seed(0)
    model = GarNetTagger(N_PARTICLES, N_FEATURES).double()
    data = synthetic_batch()
    x, mask = data["particles"].double(), data["mask"]
    reference = model(x, mask)
    garbage = torch.where(mask[..., None], x, 1e3 * torch.randn_like(x))
    longer = torch.cat([garbage, torch.randn(10, 4, N_FEATURES, dtype=torch.float64)], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(10, 4, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(model(longer, longer_mask), reference)
    perm = torch.randperm(N_PARTICLES)
    torch.testing.assert_close(model(x[:, perm], mask[:, perm]), reference)


def test_gru_ignores_padding_and_matches_unpadded_runs():
    torch.manual_seed(0)
    model = GRUTagger(N_PARTICLES, N_FEATURES).double()
    data = synthetic_batch()
    x, mask = data["particles"].double(), data["mask"]
    out = model(x, mask)
    for b in range(len(x)):  # oracle: the GRU on the jet's real particles only, no padding at all
        n = int(mask[b].sum())
        _, h = model.gru(x[b : b + 1, :n])
        torch.testing.assert_close(out[b : b + 1], model.head(h[-1]))
    garbage = torch.where(mask[..., None], x, 1e3 * torch.randn_like(x))
    longer = torch.cat([garbage, torch.randn(10, 3, N_FEATURES, dtype=torch.float64)], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(10, 3, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(model(longer, longer_mask), out)
    # padding in the middle: the real particles keep their order
    holes = torch.cat([x[:, :1], torch.randn(10, 2, N_FEATURES, dtype=torch.float64), x[:, 1:]], dim=1)
    holes_mask = torch.cat([mask[:, :1], torch.zeros(10, 2, dtype=torch.bool), mask[:, 1:]], dim=1)
    torch.testing.assert_close(model(holes, holes_mask), out)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("particlenet", "part") else n
                                  for n in TAGGERS])
def test_every_tagger_learns_a_tiny_batch(name):
    torch.manual_seed(0)
    data = synthetic_batch()
    model = build_tagger(name, n_particles=N_PARTICLES, n_features=16 if name == "dnn" else N_FEATURES)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(*inputs(model, data)), data["label"])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.8 * losses[0], losses
