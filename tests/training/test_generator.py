"""The generator recipe (jetlab.training.generator) and its runs (jetlab.training.generator_run).

Oracles: an uninterrupted run vs one interrupted and resumed (bit-identical weights), the
JetNet/hls4ml readers of jetlab.io on sampled files, the metrics' numpy jet mass for the
torch one the losses use, and hand-checked normalisation / post-processing.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from jetlab.errors import InputError, JetlabError
from jetlab.io import open_jets, write_jetnet_file
from jetlab.io.layout import CLASS_NAMES
from jetlab.training.generator import GeneratorConfig, train_generator
from jetlab.training.generator_run import TrainedGenerator, write_samples
from jetlab.training.point_sets import Normalisation, load_point_sets, postprocess_jets


def train_fastsim(config, run, resume=False):
    return train_generator(config, run, resume=resume)


def point_sets(config):
    return load_point_sets(config.data, jet_class=config.jet_class, particles=config.particles,
                           split_seed=config.split_seed, fractions=config.fractions, max_train=config.max_train)


def synthetic_jets(n: int, n_particles: int, seed: int, *, padded: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Jet-like relative point sets: pT_rel falling, (eta, phi) spread shrinking with pT."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(n_particles // 2, n_particles + 1, n) if padded else np.full(n, n_particles)
    pt = np.sort(rng.exponential(1.0, (n, n_particles)), axis=1)[:, ::-1]
    mask = np.arange(n_particles)[None, :] < counts[:, None]
    pt = np.where(mask, pt, 0.0)
    pt = pt / pt.sum(1, keepdims=True)
    spread = 0.05 + 0.3 * (1 - pt / pt.max(1, keepdims=True))
    eta = rng.normal(0, 1, (n, n_particles)) * spread
    phi = rng.normal(0, 1, (n, n_particles)) * spread
    points = np.stack([eta, phi, pt], -1) * mask[..., None]
    return points.astype(np.float32), mask


@pytest.fixture(scope="module")
def tiny_jetnet_file(tmp_path_factory):
    """A JetNet-layout file of 80 synthetic top jets with 30 particles, some padded."""
    points, mask = synthetic_jets(80, 30, seed=3)
    path = tmp_path_factory.mktemp("jets") / "t.h5"
    jet_features = np.zeros((80, 4), np.float32)
    jet_features[:, 3] = mask.sum(1)
    write_jetnet_file(path, np.concatenate([points, mask[..., None]], -1), jet_features, jet_class="t")
    return path


def tiny_config(data, model: str, **overrides) -> GeneratorConfig:
    values = dict(model=model, data=str(data), jet_class="t", particles=30, epochs=2, batch_size=16, seed=5,
                  plot_every=0, plot_samples=16, metrics_samples=0)
    if model == "flow":  # the flow refuses the VAE's and GAN's settings
        values.update(flow_options={"hidden": 16, "global_dim": 8, "n_layers": 1}, ode_steps=3)
    else:
        values.update(latent_dim=4, vae_options={"hidden": 16}, generator_options={"hidden": 16, "n_layers": 1},
                      discriminator_options={"hidden": 16, "n_layers": 1})
    values.update(overrides)
    return GeneratorConfig(**values)


@pytest.fixture
def drawn(monkeypatch):
    """The final sample figures of a run are not drawn (matplotlib: ~3.5 s of CPU a finished
    run); the run still refits and generates their sets, and the list records the tag of every
    figure set it asked for. Per-epoch figures (``plot_every``) are still drawn; the final
    figures are drawn in tests/cli/test_fastsim_cli.py and for MNIST below."""
    from jetlab.training import generator_plots

    tags: list[str] = []
    draw = generator_plots.plot_comparison

    def record(kind, real, real_mask, gen, gen_mask, run_dir, tag, title):
        assert gen.shape[1:] == real.shape[1:] and gen_mask.shape == gen.shape[:2]
        tags.append(tag)
        return [] if tag == "final" else draw(kind, real, real_mask, gen, gen_mask, run_dir, tag, title)

    monkeypatch.setattr(generator_plots, "plot_comparison", record)
    return tags


def _state(run_dir):
    ckpt = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    return ckpt["modules"], ckpt["optimizers"], ckpt["history"]


@pytest.mark.parametrize("model, extra", [("gan", {}), ("gan", {"gan_loss": "ls", "r1_gamma": 0.0}), ("vae", {}),
                                          ("flow", {"flow_net": "transformer", "flow_options": {"hidden": 8}})],
                         ids=["gan-ns-r1", "gan-ls", "vae", "flow-transformer"])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, tiny_jetnet_file, model, extra, drawn):
    straight = tmp_path / "straight"
    train_fastsim(tiny_config(tiny_jetnet_file, model, **extra, epochs=2), straight)

    # killed after epoch 1 of 2: optimizer moments, shuffling order, RNG state carried over
    interrupted = tmp_path / "interrupted"
    first = train_generator(tiny_config(tiny_jetnet_file, model, **extra, epochs=2), interrupted, stop_after_epoch=1)
    assert not first["finished"] and [e["epoch"] for e in first["epochs"]] == [1]
    # a different global RNG state in between must not matter: the checkpoint restores it
    torch.manual_seed(12345)
    torch.rand(7)
    train_fastsim(tiny_config(tiny_jetnet_file, model, **extra, epochs=2), interrupted, resume=True)
    assert drawn == ["final", "final"]

    models_a, opts_a, hist_a = _state(straight)
    models_b, opts_b, hist_b = _state(interrupted)
    assert models_a.keys() == models_b.keys()
    for name in models_a:
        for key, tensor in models_a[name].items():
            assert torch.equal(tensor, models_b[name][key]), f"{name}.{key} differs after resume"
    for name in opts_a:
        for slot, state in opts_a[name]["state"].items():
            for key, value in state.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(opts_b[name]["state"][slot][key]))
    assert [h["epoch"] for h in hist_b] == [1, 2]
    loss_keys = [k for k in hist_a[1] if k.startswith(("train_", "val_"))]
    assert loss_keys
    for key in loss_keys:
        assert hist_a[1][key] == hist_b[1][key]
    # a finished run continued with more epochs: one more epoch actually changes the weights
    # (so the comparison above can fail)
    more = train_fastsim(tiny_config(tiny_jetnet_file, model, **extra, epochs=3), interrupted, resume=True)
    models_c, _, _ = _state(interrupted)
    name = next(iter(models_a))
    assert any(not torch.equal(t, models_c[name][k]) for k, t in models_a[name].items())
    assert len(more["epochs"]) == 3


def test_time_limit_stops_early_and_resume_continues(tmp_path, tiny_jetnet_file, drawn):
    run = tmp_path / "run"
    result = train_fastsim(tiny_config(tiny_jetnet_file, "vae", epochs=3, time_limit_min=1e-9), run,
)
    assert [e["epoch"] for e in result["epochs"]] == [1]
    assert not result["finished"] and drawn == []
    result = train_fastsim(tiny_config(tiny_jetnet_file, "vae", epochs=3), run, resume=True)
    assert [e["epoch"] for e in result["epochs"]] == [1, 2, 3]
    assert result["finished"] and drawn == ["final"]


def test_training_refuses_to_overwrite_a_run(tmp_path, tiny_jetnet_file, drawn):
    run = tmp_path / "run"
    train_fastsim(tiny_config(tiny_jetnet_file, "vae", epochs=1), run)
    with pytest.raises(InputError, match="--resume"):
        train_fastsim(tiny_config(tiny_jetnet_file, "vae", epochs=1), run)


def test_train_sample_round_trip_reads_back_with_open_jets(tmp_path, tiny_jetnet_file, drawn):
    run = tmp_path / "run"
    history = train_fastsim(tiny_config(tiny_jetnet_file, "gan", epochs=1, plot_every=1), run)
    assert (run / "epoch0001_jet_images.png").stat().st_size > 0
    assert (run / "epoch0001_histograms.png").stat().st_size > 0
    assert history["epochs"][0]["jets_per_s"] > 0
    assert drawn == ["epoch0001", "final"]

    written = write_samples(run, 25, tmp_path / "gen_hls4ml.h5", fmt="hls4ml", seed=1)
    jets = open_jets(written[0])
    assert jets.layout == "hls4ml"
    assert jets.n_jets == 25 and jets.n_particles == 30
    np.testing.assert_array_equal(jets.labels(), np.full(25, CLASS_NAMES.index("t")))
    train, val, test = jets.split(fractions=(1.0, 0.0, 0.0), inputs=("particles", "mask", "label"),
                                  particle_features=("etarel", "phirel", "ptrel"), standardize=False)
    tensors = train.tensors()
    assert tensors["particles"].shape == (25, 30, 3)

    written = write_samples(run, 25, tmp_path / "gen_jetnet.h5", fmt="jetnet", seed=1)
    jets = open_jets(written[0])
    assert jets.layout == "jetnet" and jets.n_jets == 25 and jets.n_particles == 30
    assert set(jets.labels().tolist()) == {CLASS_NAMES.index("t")}

    # the generator is deterministic in its seed and the files hold the same jets
    gen = TrainedGenerator.load(run)
    points, mask = gen.generate(25, seed=1)
    jn = open_jets(tmp_path / "gen_jetnet.h5").split(fractions=(1.0, 0.0, 0.0), seed=0,
                                                     inputs=("particles", "mask"),
                                                     particle_features=("etarel", "phirel", "ptrel"),
                                                     standardize=False)[0]
    order = jn.index  # split permutes; compare jet by jet
    back = jn.tensors()
    np.testing.assert_allclose(back["particles"].numpy(), points[order], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(back["mask"].numpy(), mask[order])
    # hls4ml directory output: files of <= 10k jets in a directory
    out_dir = tmp_path / "gen_dir"
    files = write_samples(run, 12, out_dir, fmt="hls4ml")
    assert [f.parent for f in files] == [out_dir]
    assert open_jets(out_dir).n_jets == 12


def test_generated_jets_are_physical(tmp_path, tiny_jetnet_file, drawn):
    run = tmp_path / "run"
    train_fastsim(tiny_config(tiny_jetnet_file, "vae", epochs=1), run)
    points, mask = TrainedGenerator.load(run).generate(40, seed=0)
    assert points.shape == (40, 30, 3) and mask.shape == (40, 30)
    assert (points[..., 2][mask] > 0).all()
    assert (points[~mask] == 0).all()
    # pT-sorted, real particles first
    pt = np.where(mask, points[..., 2], -1.0)
    assert (np.diff(pt, axis=1) <= 0).all()


def test_vae_latent_gaussian_is_fitted_to_the_encoder_means(tmp_path, tiny_jetnet_file, drawn):
    from jetlab.training.tasks.vae import fit_latent_gaussian

    run = tmp_path / "run"
    train_fastsim(tiny_config(tiny_jetnet_file, "vae", epochs=1), run)
    gen = TrainedGenerator.load(run)
    sets = point_sets(gen.config)
    vae, norm = gen.task.vae, gen.normalisation
    with torch.no_grad():
        x = norm.encode(torch.as_tensor(sets.train), torch.as_tensor(sets.train_mask))
        mu = vae.encode(x, torch.as_tensor(sets.train_mask))[0].double()
    latent = fit_latent_gaussian(vae, norm, sets.train, sets.train_mask, batch_size=7)  # batching must not matter
    torch.testing.assert_close(latent["mean"].double(), mu.mean(0), rtol=1e-5, atol=1e-6)
    cov = latent["scale_tril"].double() @ latent["scale_tril"].double().T
    torch.testing.assert_close(cov, torch.cov(mu.T) + 1e-6 * torch.eye(mu.shape[1], dtype=torch.float64),
                               rtol=1e-4, atol=1e-6)
    # the latent stored in model.pt was fitted to the saved (best) weights
    torch.testing.assert_close(gen.task.latent["mean"], latent["mean"], rtol=1e-5, atol=1e-6)
    # a degenerate Gaussian at the mean: every generated set is the decoded mean
    gen.task.latent = {"mean": latent["mean"], "scale_tril": torch.zeros_like(latent["scale_tril"])}
    points, mask = gen.generate(3, seed=0)
    with torch.no_grad():
        expected, expected_mask = norm.decode(*vae.split_output(vae.decode(latent["mean"][None])))
    np.testing.assert_allclose(points[1], points[0])
    np.testing.assert_allclose(points[2], points[0])
    keep = expected_mask[0] & (expected[0][:, 2] > 0)
    np.testing.assert_allclose(points[0][mask[0]], expected[0][keep][np.argsort(-expected[0][keep][:, 2])], rtol=1e-5)


def test_vae_on_tiny_mnist_writes_the_sample_plot(tmp_path):
    from jetlab.data.mnist import build_mnist_points

    data = build_mnist_points("superpixels", tmp_path / "mnist_superpixels.h5", limit=60)
    run = tmp_path / "mnist_run"
    config = GeneratorConfig(model="vae", data=str(data), epochs=1, batch_size=16, latent_dim=4, seed=0,
                             plot_every=1, plot_samples=16, vae_options={"hidden": 16})
    history = train_fastsim(config, run)
    assert (run / "epoch0001_samples.png").stat().st_size > 1000
    assert (run / "final_samples.png").stat().st_size > 1000
    assert np.isfinite(history["epochs"][0]["train_nnd"]) and np.isfinite(history["epochs"][0]["val_nnd"])
    assert (run / "history.json").is_file() and (run / "config.yaml").is_file()
    files = write_samples(run, 10, tmp_path / "digits.h5")
    from jetlab.data.mnist import load_mnist_points

    sets = load_mnist_points(files[0])
    assert sets.points.shape == (10, 75, 3)
    assert files[1].suffix == ".png" and files[1].stat().st_size > 0


def test_normalisation_round_trip_and_multiplicities():
    points, mask = synthetic_jets(20, 10, seed=0)
    norm = Normalisation.fit(points, mask)
    assert not norm.always_full and norm.n_features == 3
    # multiplicity distribution by hand
    expected = np.bincount(mask.sum(1), minlength=11) / 20
    np.testing.assert_allclose(norm.count_probs, expected)
    torch.manual_seed(0)
    counts = norm.sample_counts(4000, "cpu")
    assert set(counts.tolist()) <= set(np.flatnonzero(expected).tolist())
    np.testing.assert_allclose(np.bincount(counts.numpy(), minlength=11) / 4000, expected, atol=0.03)

    x = norm.encode(torch.as_tensor(points), torch.as_tensor(mask))
    real = x[torch.as_tensor(mask)]
    torch.testing.assert_close(real.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(real.std(0, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    assert (x[~torch.as_tensor(mask)] == 0).all()
    back, back_mask = norm.decode(x, torch.as_tensor(mask))
    np.testing.assert_array_equal(back_mask, mask)
    np.testing.assert_allclose(back, points, rtol=1e-5, atol=1e-6)
    again = Normalisation.from_state_dict(norm.state_dict())
    np.testing.assert_array_equal(again.mean, norm.mean)
    # log pT_rel: standardised in log space, decoded pT_rel > 0 even for very negative outputs
    logged = Normalisation.fit(points, mask, log_columns=(2,))
    x = logged.encode(torch.as_tensor(points), torch.as_tensor(mask))
    np.testing.assert_allclose(x[torch.as_tensor(mask)][:, 2].mean().item(), 0.0, atol=1e-5)
    back, _ = logged.decode(x, torch.as_tensor(mask))
    np.testing.assert_allclose(back, points, rtol=1e-4, atol=1e-6)
    far, _ = logged.decode(torch.full((1, 10, 3), -50.0), torch.ones(1, 10, dtype=torch.bool))
    assert (far[..., 2] > 0).all()
    assert Normalisation.from_state_dict(logged.state_dict()).log_columns == (2,)
    full = Normalisation.fit(*synthetic_jets(5, 10, seed=1, padded=False))
    assert full.always_full and full.sample_counts(3, "cpu") is None


def test_postprocess_drops_nonpositive_pt_and_sorts():
    points = np.array([[[0.1, 0.0, 0.2], [0.2, 0.1, -0.1], [0.3, 0.2, 0.5], [0.4, 0.3, 0.4]]], np.float32)
    mask = np.array([[True, True, True, False]])
    out, out_mask = postprocess_jets(points, mask)
    np.testing.assert_array_equal(out_mask, [[True, True, False, False]])
    np.testing.assert_allclose(out[0, :2], [[0.3, 0.2, 0.5], [0.1, 0.0, 0.2]])
    assert (out[0, 2:] == 0).all()


def test_torch_jet_kinematics_match_the_numpy_ones_the_metrics_use():
    from jetlab.metrics.generation import jet_mass
    from jetlab.physics import relative_jet_kinematics

    points, mask = synthetic_jets(30, 20, seed=4)
    jet = relative_jet_kinematics(torch.as_tensor(points, dtype=torch.float64), torch.as_tensor(mask))
    np.testing.assert_allclose(jet.mass.numpy(), jet_mass(points, mask), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jet.pt.numpy(), relative_jet_kinematics(points.astype(np.float64), mask).pt, rtol=1e-9)
    # a single particle: mass 0 (massless), pT = its pT_rel
    one = torch.tensor([[[0.1, -0.2, 0.7]]], dtype=torch.float64)
    single = relative_jet_kinematics(one, torch.ones(1, 1, dtype=torch.bool))
    assert float(single.mass) < 1e-5 and abs(float(single.pt) - 0.7) < 1e-12


def test_config_validation_and_data_errors(tmp_path, tiny_jetnet_file):
    with pytest.raises(JetlabError, match="unknown model"):
        GeneratorConfig(model="diffusion").validate()
    with pytest.raises(JetlabError, match="unknown jet class"):
        GeneratorConfig(jet_class="b").validate()
    with pytest.raises(InputError, match="no such file"):
        point_sets(GeneratorConfig(data=str(tmp_path / "missing")))
    with pytest.raises(JetlabError, match="no jets of class g"):
        point_sets(dataclasses.replace(tiny_config(tiny_jetnet_file, "gan"), jet_class="g"))
    sets = point_sets(tiny_config(tiny_jetnet_file, "gan"))
    assert sets.kind == "jets" and sets.n_points == 30 and sets.n_features == 3
    assert len(sets.train) + len(sets.val) + len(sets.test) == 80


# FPD's matrix square root of 6x6 covariances from a handful of jets can be singular
@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_trains_on_an_hls4ml_directory_of_pythia_jets(tmp_path, tiny_jets_dir, drawn):
    """The hls4ml-layout path: one class of real Pythia jets out of a 5-class directory."""
    config = tiny_config(tiny_jets_dir, "vae", epochs=1, metrics_samples=4)
    sets = point_sets(config)
    assert sets.kind == "jets" and sets.n_points == 30
    assert (sets.train[..., 2][sets.train_mask] > 0).all()
    # relative coordinates of real jets: pT_rel of the leading 30 particles sums to < 1
    assert (sets.train[..., 2].sum(1) <= 1.0 + 1e-5).all()
    result = train_fastsim(config, tmp_path / "run")
    assert set(result["final_metrics"]["generated"]) >= {"w1m", "w1p", "w1efp"}
    files = write_samples(tmp_path / "run", 6, tmp_path / "gen.h5", fmt="hls4ml")
    assert open_jets(files[0]).labels().tolist() == [CLASS_NAMES.index("t")] * 6


def test_sample_plot_helpers_against_hand_computed_values(tmp_path):
    from jetlab.metrics.generation import jet_mass
    from jetlab.viz.samples import (
        jet_images,
        jet_relative_kinematics,
        plot_jet_feature_histograms,
    )

    # pixels are 0.016 wide from -0.8: (eta, phi) = (0.001, -0.79) is row (0.801 / 0.016 = 50.06) 50, column 0
    points = np.array([[[0.001, -0.79, 0.6], [0.9, 0.0, 0.3], [0.0, 0.0, 0.0]]], np.float32)
    mask = np.array([[True, True, False]])
    image = jet_images(points, mask)
    assert image.shape == (1, 100, 100)
    assert image[0, 50, 0] == pytest.approx(0.6)
    assert image.sum() == pytest.approx(0.6)  # the particle at eta 0.9 lies outside the image
    kin = jet_relative_kinematics(points, mask)
    np.testing.assert_allclose(kin["mass"], jet_mass(points, mask), rtol=1e-6)
    assert kin["n_particles"].tolist() == [2.0]
    px = 0.6 * np.cos(-0.79) + 0.3 * np.cos(0.0)
    py = 0.6 * np.sin(-0.79) + 0.3 * np.sin(0.0)
    assert kin["pt"][0] == pytest.approx(np.hypot(px, py), rel=1e-6)
    real, real_mask = synthetic_jets(20, 10, seed=2)
    plot_jet_feature_histograms(real, real_mask, real[:10], real_mask[:10], tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000


@pytest.mark.parametrize("model, data, tag, title", [
    ("vae", "jets:t", "evaluation", "VAE, t jets: generated vs held-out real"),
    ("flow", "jets:g", "epoch0020", "flow matching, g jets: epoch 20"),
    ("gan", "mnist-superpixels", "final", "GAN, MNIST superpixels: final model"),
    ("vae", "mnist:/data/digits.h5", "epoch0003", "VAE, MNIST digits.h5: epoch 3"),
])
def test_sample_plot_titles_are_words(model, data, tag, title):
    from jetlab.training.generator_plots import plot_title

    assert plot_title(model, data, tag) == title
