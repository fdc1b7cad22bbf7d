"""Trained tagger runs for the export tests: one short training per model on the tiny Pythia jets."""

from __future__ import annotations

import pytest

from jetlab.cli.main import main


def train_run(data, out, model: str, *extra) -> str:
    """``jetlab tagger train --model MODEL --epochs 1`` into ``out``; returns ``out``."""
    argv = ["tagger", "train", "--model", model, "--data", str(data), "--epochs", "1", "--threads", "1",
            "--out", str(out), *map(str, extra)]
    assert main(argv) == 0
    return str(out)


@pytest.fixture(scope="session")
def trained_run(tiny_jets_dir, tmp_path_factory):
    """``trained_run(model, *flags) -> RUN``: a one-epoch (unless ``--epochs`` is among the flags)
    run of ``model`` on ``tiny_jets_dir``, trained once per session."""
    runs: dict[tuple, str] = {}

    def get(model: str, *flags) -> str:
        key = (model, *map(str, flags))
        if key not in runs:
            runs[key] = train_run(tiny_jets_dir, tmp_path_factory.mktemp(f"run-{model}"), model, *flags)
        return runs[key]

    return get
