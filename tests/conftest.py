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
    from jetlab.data.generate import generate_dataset

    out = tmp_path_factory.mktemp("tiny-jets")
    generate_dataset(out, jets_per_class=40, n_particles=30, seed=3, workers=2, show_progress=False)
    return out
