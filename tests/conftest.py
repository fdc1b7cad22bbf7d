"""Shared fixtures: small sets of real Pythia 8 + FastJet jets, generated once per session.

The suite runs under pytest-xdist (``-n auto`` in pyproject.toml): every worker process runs
the session fixtures on its own, so the ones that generate data or train go through
:func:`shared_dir`, which makes their directory once per test run and lets every worker use it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from filelock import FileLock  # a dependency of torch

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


def shared_dir(tmp_path_factory, name: str, make: Callable[[Path], object]) -> Path:
    """The directory ``name``, filled by ``make(directory)`` once per test run and shared by
    every xdist worker (the pytest-xdist recipe: a folder beside the workers' own temporary
    folders, a file lock, a marker written once ``make`` succeeded). Without xdist it is a plain
    ``tmp_path_factory.mktemp(name)``. What is made must not depend on the worker (fixed seeds),
    and tests must copy it before changing anything in it."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        out = tmp_path_factory.mktemp(name)
        make(out)
        return out
    root = tmp_path_factory.getbasetemp().parent / "shared"
    root.mkdir(exist_ok=True)
    out, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(out, ignore_errors=True)  # a worker that failed half-way
            out.mkdir()
            make(out)
            done.touch()
    return out


@pytest.fixture(scope="session")
def shared(tmp_path_factory):
    """``shared(name, make) -> directory``: :func:`shared_dir` for test modules."""
    return lambda name, make: shared_dir(tmp_path_factory, name, make)


@pytest.fixture(scope="session")
def warm_jetlab(tmp_path_factory):
    """A warm interpreter (tests/warm_start.py) for this worker's ``python -m jetlab`` and
    ``jetlab`` subprocesses: ``warm_jetlab.python`` runs them from it when the environment holds
    ``warm_jetlab.environment()``. ``JETLAB_TEST_COLD=1`` turns it off (fresh interpreters)."""
    from warm_start import WarmServer

    cold = os.environ.get("JETLAB_TEST_COLD") == "1"
    server = WarmServer(tmp_path_factory.mktemp("warm"), enabled=not cold)
    server.cold = cold  # asked for: the tests of the warm interpreter itself skip
    yield server
    server.close()


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

    return shared_dir(tmp_path_factory, "tiny-jets", lambda out: generate_dataset(
        out, jets_per_class=40, n_particles=30, seed=3, workers=2, show_progress=False))


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
            def train(out: Path) -> None:
                assert main(["tagger", "train", "--model", model, "--data", str(tiny_jets_dir), "--epochs", "1",
                             "--threads", "1", "--out", str(out / "run"), *map(str, flags)]) == 0

            digest = hashlib.sha1(repr(key).encode()).hexdigest()[:10]
            runs[key] = str(shared_dir(tmp_path_factory, f"run-{model}-{digest}", train) / "run")
        return runs[key]

    return get


@pytest.fixture(scope="session")
def gluon_jetnet_file(tmp_path_factory):
    """A JetNet-layout file of 40 gluon 'jets' of 30 particles (Gaussian eta/phi, equal pT)."""
    import numpy as np

    from jetlab.io import write_jetnet_file

    def write(out: Path) -> None:
        rng = np.random.default_rng(0)
        points = np.stack([rng.normal(0, 0.1, (40, 30)), rng.normal(0, 0.1, (40, 30)), np.full((40, 30), 1 / 30),
                           np.ones((40, 30))], -1).astype(np.float32)
        write_jetnet_file(out / "g.h5", points, np.zeros((40, 4), np.float32), jet_class="g")

    return shared_dir(tmp_path_factory, "jetnet", write) / "g.h5"


@pytest.fixture(scope="session")
def trained_generator_run(gluon_jetnet_file, tmp_path_factory):
    """A finished one-epoch ``jetlab fastsim train --model gan`` run (tiny networks) on
    ``gluon_jetnet_file``. Copy it before changing anything in it."""
    from jetlab.cli.main import main

    def train(out: Path) -> None:
        assert main(["fastsim", "train", "--model", "gan", "--data", str(gluon_jetnet_file), "--jet-class", "g",
                     "--epochs", "1", "--batch-size", "8", "--latent-dim", "4", "--plot-every", "0",
                     "--plot-samples", "8", "--metrics-samples", "0", "--hp", "generator.hidden=8", "--hp",
                     "discriminator.hidden=8", "--threads", "1", "--out", str(out / "gan")]) == 0

    return shared_dir(tmp_path_factory, "generator-run", train) / "gan"


def pytest_collection_modifyitems(config, items):
    """The slow tests first (longest-first scheduling): under xdist the workers start on the
    long tests and end on short ones, instead of one worker finishing a long test alone. A slow
    test marked ``stage(k)`` uses what a test of stage k - 1 makes (a :func:`shared_dir`; it
    waits for it): it is put k / (K + 1) of the way through the slow tests, K the last stage,
    so that what it waits for is made by then."""
    slow = [item for item in items if item.get_closest_marker("slow")]
    fast = [item for item in items if not item.get_closest_marker("slow")]

    def stage(item) -> int:
        marker = item.get_closest_marker("stage")
        return marker.args[0] if marker else 0

    last = max(map(stage, slow), default=0)
    ordered = [item for item in slow if stage(item) == 0]
    for k in range(1, last + 1):
        at = len(ordered) * k // (last + 1)
        ordered[at:at] = [item for item in slow if stage(item) == k]
    items[:] = ordered + fast
