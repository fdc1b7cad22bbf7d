"""Shared fixtures: small sets of real Pythia 8 + FastJet jets, generated once per session."""

from __future__ import annotations

import os

import pytest
import torch

# the suite is many small models: one thread each avoids oversubscribing CI's 2 cores when
# tests start extra processes (data-parallel ranks, generator workers)
torch.set_num_threads(1)

# keep test runs quiet, and the default set (generated on first use) small
os.environ.setdefault("JETLAB_NO_PROGRESS", "1")
os.environ["JETLAB_DEFAULT_JETS_PER_CLASS"] = "20"

# Without CUDA the fused JEDI-net Triton kernels are tested under Triton's interpreter
# (tests/models/test_jedinet_triton.py). Triton chooses between compiling and interpreting
# when it is first imported (its own tl.* helpers are @triton.jit functions), and torch
# imports it early (torch._dynamo does), so the switch must be set here, before any test.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Point the default-data cache at a temporary directory for the whole session."""
    old = os.environ.get("JETLAB_CACHE")
    os.environ["JETLAB_CACHE"] = str(tmp_path_factory.mktemp("jetlab-cache"))
    yield
    if old is None:
        os.environ.pop("JETLAB_CACHE", None)
    else:
        os.environ["JETLAB_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_jets_dir(tmp_path_factory):
    """A directory of hls4ml-layout files: 5 classes x 40 Pythia jets, 30 particles."""
    from jetlab.data.driver import generate_dataset

    out = tmp_path_factory.mktemp("tiny-jets")
    generate_dataset(out, jets_per_class=40, n_particles=30, seed=3, workers=2, show_progress=False)
    return out


@pytest.fixture(scope="session")
def trained_run(tiny_jets_dir, tmp_path_factory):
    """``trained_run(model, *flags) -> RUN``: a finished one-epoch (unless ``--epochs`` is among
    the flags) ``jetlab tagger train`` run of ``model`` on ``tiny_jets_dir``, trained once per
    session. Copy it before changing anything in it."""
    from jetlab.cli.main import main

    runs: dict[tuple, str] = {}

    def get(model: str, *flags) -> str:
        key = (model, *map(str, flags))
        if key not in runs:
            out = tmp_path_factory.mktemp(f"run-{model}")
            assert main(["tagger", "train", "--model", model, "--data", str(tiny_jets_dir), "--epochs", "1",
                         "--threads", "1", "--out", str(out), *map(str, flags)]) == 0
            runs[key] = str(out)
        return runs[key]

    return get


@pytest.fixture(scope="session")
def gluon_jetnet_file(tmp_path_factory):
    """A JetNet-layout file of 40 gluon 'jets' of 30 particles (Gaussian eta/phi, equal pT)."""
    import numpy as np

    from jetlab.io import write_jetnet_file

    rng = np.random.default_rng(0)
    points = np.stack([rng.normal(0, 0.1, (40, 30)), rng.normal(0, 0.1, (40, 30)), np.full((40, 30), 1 / 30),
                       np.ones((40, 30))], -1).astype(np.float32)
    path = tmp_path_factory.mktemp("jetnet") / "g.h5"
    write_jetnet_file(path, points, np.zeros((40, 4), np.float32), jet_class="g")
    return path


@pytest.fixture(scope="session")
def trained_generator_run(gluon_jetnet_file, tmp_path_factory):
    """A finished one-epoch ``jetlab fastsim train --model gan`` run (tiny networks) on
    ``gluon_jetnet_file``. Copy it before changing anything in it."""
    from jetlab.cli.main import main

    out = tmp_path_factory.mktemp("generator-run") / "gan"
    assert main(["fastsim", "train", "--model", "gan", "--data", str(gluon_jetnet_file), "--jet-class", "g",
                 "--epochs", "1", "--batch-size", "8", "--latent-dim", "4", "--plot-every", "0", "--plot-samples",
                 "8", "--metrics-samples", "0", "--hp", "generator.hidden=8", "--hp", "discriminator.hidden=8",
                 "--threads", "1", "--out", str(out)]) == 0
    return out
