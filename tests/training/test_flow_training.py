"""``jetlab fastsim train --model flow`` end to end on tiny data: resume through the CLI ends
with the weights of an uninterrupted run, sample/evaluate read the run back, generated jets
obey what real jets obey (pT_rel > 0, Σ pT_rel of a training jet, training multiplicities),
MNIST superpixels train, and settings the flow does not read are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_generator import tiny_jetnet_file  # noqa: F401 - the module's data fixture

from jetlab.cli.main import main
from jetlab.errors import JetlabError
from jetlab.io import open_jets
from jetlab.training.generator import GeneratorConfig, train_generator
from jetlab.training.generator_run import TrainedGenerator, write_samples
from jetlab.training.point_sets import load_point_sets

# one xdist worker runs this module: its fixture trains a flow run the tests evaluate into
pytestmark = pytest.mark.xdist_group("flow_training")


def _train_args(data, run, *extra):
    return ["fastsim", "train", "--model", "flow", "--data", str(data), "--jet-class", "t", "--batch-size", "16",
            "--seed", "5", "--plot-every", "0", "--plot-samples", "16", "--metrics-samples", "0", "--threads", "1",
            "--hp", "flow.hidden=16", "--hp", "flow.global_dim=8", "--hp", "flow.n_layers=1", "--ode-steps", "3",
            "--ema-decay", "0.9", "--flow-pairing", "ot", "--out", str(run), *extra]


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory, tiny_jetnet_file):  # noqa: F811
    run = tmp_path_factory.mktemp("flow") / "run"
    assert main(_train_args(tiny_jetnet_file, run, "--epochs", "2")) == 0
    return run


def test_cli_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, flow_run, tiny_jetnet_file, capsys):  # noqa: F811
    run = tmp_path / "interrupted"
    assert main(_train_args(tiny_jetnet_file, run, "--epochs", "2", "--stop-after", "1")) == 0
    assert "--resume" in capsys.readouterr().out
    torch.manual_seed(99)  # another global RNG state in between: the checkpoint restores it
    assert main(["fastsim", "train", "--out", str(run), "--resume"]) == 0
    a = torch.load(flow_run / "checkpoint.pt", weights_only=False)
    b = torch.load(run / "checkpoint.pt", weights_only=False)
    for name in ("flow", "flow_ema"):   # the trained weights and their average (--ema-decay)
        for key, tensor in a["modules"][name].items():
            assert torch.equal(tensor, b["modules"][name][key]), (name, key)
    assert not torch.equal(a["modules"]["flow"]["net.head.weight"], a["modules"]["flow_ema"]["net.head.weight"])
    for slot, state in a["optimizers"]["flow"]["state"].items():
        assert torch.equal(state["exp_avg"], b["optimizers"]["flow"]["state"][slot]["exp_avg"])
    assert [h["val_loss"] for h in a["history"]] == [h["val_loss"] for h in b["history"]]
    assert a["history"][0]["val_loss"] != a["history"][1]["val_loss"]  # training moved the weights
    first = a["history"][0]
    assert {"train_loss", "val_loss", "jets_per_s"} <= set(first)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # FPD of a handful of jets
def test_sample_and_evaluate_a_flow_run(tmp_path, flow_run, capsys):
    out = tmp_path / "gen.h5"
    assert main(["fastsim", "sample", str(flow_run), "--n", "25", "--out", str(out), "--ode-steps", "2",
                 "--ode-solver", "heun"]) == 0
    assert open_jets(out).n_jets == 25
    assert main(["fastsim", "evaluate", str(flow_run), "--n", "8", "--ode-steps", "2"]) == 0
    assert "W1-M" in capsys.readouterr().out
    assert "w1m" in json.loads((flow_run / "evaluation.json").read_text())["metrics"]["generated"]
    gen = TrainedGenerator.load(flow_run, sampler={"ode_steps": 7, "ode_solver": None})
    assert (gen.task.ode_steps, gen.task.ode_solver) == (7, "midpoint")
    # the average (--ema-decay) is in model.pt and is what generates; config.yaml records both settings
    assert gen.task.network is gen.task.modules["flow_ema"] and gen.task.pairing == "ot"
    saved = torch.load(flow_run / "model.pt", weights_only=True)["modules"]["flow_ema"]
    assert all(torch.equal(v, saved[k]) for k, v in gen.task.network.state_dict().items())
    assert {"ema_decay: 0.9", "flow_pairing: ot"} <= set((flow_run / "config.yaml").read_text().splitlines())


def test_generated_jets_obey_what_real_jets_obey(flow_run):
    gen = TrainedGenerator.load(flow_run)
    config = gen.config
    assert config.learns_log_pt and gen.normalisation.log_columns == (2,)
    sets = load_point_sets(config.data, jet_class="t", particles=30, split_seed=config.split_seed)
    points, mask = gen.generate(60, seed=4)
    assert (points[..., 2][mask] > 0).all() and (points[~mask] == 0).all()
    assert (np.diff(np.where(mask, points[..., 2], -1.0), axis=1) <= 0).all()   # pT-sorted, real first
    # multiplicity and sum pT_rel of a training jet each (the jet conditions are drawn together)
    train_sums = sets.train[..., 2].sum(1)
    sums = points[..., 2].sum(1)
    nearest = np.abs(sums[:, None] - train_sums[None, :]).min(1)
    assert nearest.max() < 1e-4 * max(1.0, train_sums.max())
    assert sums.max() <= train_sums.max() + 1e-5
    assert set(mask.sum(1)) <= set(sets.train_mask.sum(1))
    again, again_mask = gen.generate(60, seed=4)
    np.testing.assert_array_equal(again, points)
    np.testing.assert_array_equal(again_mask, mask)


def test_flow_trains_on_mnist_superpixels(tmp_path):
    from jetlab.data.mnist import build_mnist_points, load_mnist_points

    data = build_mnist_points("superpixels", tmp_path / "mnist_superpixels.h5", limit=60)
    run = tmp_path / "mnist_flow"
    config = GeneratorConfig(model="flow", data=str(data), epochs=1, batch_size=16, seed=0, plot_samples=16,
                             ode_steps=2, flow_options={"hidden": 16, "global_dim": 8, "n_layers": 1})
    history = train_generator(config, run)
    assert np.isfinite(history["epochs"][0]["val_loss"])
    assert (run / "final_samples.png").stat().st_size > 1000
    sets = load_mnist_points(write_samples(run, 10, tmp_path / "digits.h5")[0])
    assert sets.points.shape == (10, 75, 3)
    train = load_point_sets(str(data))
    assert set(sets.mask.numpy().sum(1)) <= set(train.train_mask.sum(1))   # superpixel counts of training digits
    assert TrainedGenerator.load(run).task.conditions is None


@pytest.mark.parametrize("model, setting", [("flow", {"latent_dim": 8}), ("flow", {"lr_g": 1e-3}),
                                            ("flow", {"kl_weight": 0.1}), ("vae", {"ode_steps": 5}),
                                            ("gan", {"flow_options": {"hidden": 8}})])
def test_settings_of_another_model_are_refused(model, setting):
    with pytest.raises(JetlabError, match=f"{next(iter(setting))} is a .* setting; model '{model}' does not use it"):
        GeneratorConfig(model=model, **setting).validate()
    assert GeneratorConfig(model="flow").learns_log_pt and not GeneratorConfig(model="gan").learns_log_pt
    assert not GeneratorConfig(model="flow", log_pt=False).learns_log_pt
