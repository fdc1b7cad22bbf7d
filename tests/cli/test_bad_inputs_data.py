"""Every user error of ``jetlab data generate|info|plot|mnist``: one line, exit 2, no traceback,
nothing changed on disk (the table machinery is tests/cli/bad_input.py)."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from bad_input import BadInput, check_bad_input


def _file(tmp, _):
    (tmp / "file.txt").write_text("not a directory\n")


def _other_settings(tmp, _):
    (tmp / "jets").mkdir()
    (tmp / "jets" / "generation.json").write_text(json.dumps(
        {"generator": "pythia8mc + fastjet", "classes": ["g"], "jets_per_class": 7, "n_particles": 30, "seed": 99}
    ))


def _corrupt_manifest(tmp, _):
    (tmp / "jets").mkdir()
    (tmp / "jets" / "generation.json").write_text("{not json")


def _h5(name, **datasets):
    def setup(tmp, _):
        with h5py.File(tmp / name, "w") as f:
            for key, value in datasets.items():
                f[key] = value
    return setup


def _incomplete(tmp, jets_dir):
    """One class of a five-class generation: an interrupted run."""
    (tmp / "jets").mkdir()
    shutil.copy(jets_dir / "generation.json", tmp / "jets")
    shutil.copy(sorted(jets_dir.glob("jets_g_*.h5"))[0], tmp / "jets")


def _manifest_only(tmp, jets_dir):
    (tmp / "jets").mkdir()
    shutil.copy(jets_dir / "generation.json", tmp / "jets")


def _good_copy(tmp, jets_dir):
    shutil.copy(sorted(jets_dir.glob("jets_t_*.h5"))[0], tmp / "t.h5")


GEN = ("data", "generate", "--jets-per-class", "5", "--workers", "1")
ZERO_JETS = {"jetConstituentList": np.zeros((0, 30, 16), np.float32), "jets": np.zeros((0, 59), np.float32)}
COMPLEX = {"jetConstituentList": np.zeros((4, 30, 16), np.complex64), "jets": np.zeros((4, 59), np.float32)}
STRINGS = {"particle_features": np.full((4, 30, 4), b"x", dtype="S1"), "jet_features": np.zeros((4, 4), np.float32)}

CASES = [
    BadInput("generate-out-is-a-file", (*GEN, "--out", "{tmp}/file.txt"), "exists and is not a directory", _file),
    BadInput("generate-out-under-a-file", (*GEN, "--out", "{tmp}/file.txt/jets"), "cannot create the output directory", _file),
    BadInput("generate-out-unwritable", (*GEN, "--out", "/proc/jetlab-test/jets"), "cannot create the output directory"),
    BadInput("generate-no-classes", (*GEN, "--jet-class", ",", "--out", "{tmp}/jets"), "--jet-class names no jet class"),
    BadInput("generate-unknown-class", (*GEN, "--jet-class", "g,x", "--out", "{tmp}/jets"), "unknown jet class 'x'"),
    BadInput("generate-zero-jets", ("data", "generate", "--jets-per-class", "0", "--out", "{tmp}/jets"), "--jets-per-class must be positive"),
    BadInput("generate-zero-workers", ("data", "generate", "--workers", "0", "--out", "{tmp}/jets"), "--workers must be positive"),
    BadInput("generate-zero-particles", (*GEN, "--particles", "0", "--out", "{tmp}/jets"), "argument --particles: invalid choice"),
    BadInput("generate-not-a-number", ("data", "generate", "--jets-per-class", "many", "--out", "{tmp}/jets"), "invalid int value"),
    BadInput("generate-no-out", GEN, "required: --out"),
    BadInput("generate-bad-cluster", (*GEN, "--cluster", "slurm", "--out", "{tmp}/jets"), "--cluster must be local"),
    BadInput("generate-cluster-zero", (*GEN, "--cluster", "local:0", "--out", "{tmp}/jets"), "needs N >= 1"),
    BadInput("generate-other-settings", (*GEN, "--out", "{tmp}/jets"), "other settings", _other_settings),
    BadInput("generate-corrupt-manifest", (*GEN, "--out", "{tmp}/jets"), "corrupt generation manifest", _corrupt_manifest),
    BadInput("info-missing", ("data", "info", "{tmp}/nowhere"), "no such file or directory"),
    BadInput("info-zero-jets", ("data", "info", "{tmp}/empty.h5"), "holds no jets", _h5("empty.h5", **ZERO_JETS)),
    BadInput("info-complex", ("data", "info", "{tmp}/c.h5"), "dtype complex64", _h5("c.h5", **COMPLEX)),
    BadInput("info-strings", ("data", "info", "{tmp}/t.h5"), "jet arrays must hold real numbers", _h5("t.h5", **STRINGS)),
    BadInput("info-not-hdf5", ("data", "info", "{tmp}/file.txt"), "not a readable HDF5 file", _file),
    BadInput("info-incomplete", ("data", "info", "{tmp}/jets"), "incomplete: 1 of 5 files", _incomplete),
    BadInput("info-nothing-generated", ("data", "info", "{tmp}/jets"), "incomplete: 0 of 5 files", _manifest_only),
    BadInput("info-empty-dir", ("data", "info", "{tmp}"), "no .h5/.hdf5 jet files"),
    BadInput("plot-out-is-a-file", ("data", "plot", "{tmp}/t.h5", "--out", "{tmp}/file.txt"), "exists and is not a directory",
             lambda tmp, jets: (_file(tmp, jets), _good_copy(tmp, jets))),
    BadInput("plot-incomplete", ("data", "plot", "{tmp}/jets", "--out", "{tmp}/plots"), "incomplete", _incomplete),
    BadInput("mnist-zero-points", ("data", "mnist", "--points", "0", "--out", "{tmp}/m"), "--points must be positive"),
    BadInput("mnist-zero-workers", ("data", "mnist", "--workers", "0", "--out", "{tmp}/m"), "--workers must be positive"),
    BadInput("mnist-zero-limit", ("data", "mnist", "--limit", "0", "--out", "{tmp}/m"), "--limit must be positive"),
    BadInput("mnist-bad-kind", ("data", "mnist", "--kind", "dots", "--out", "{tmp}/m"), "argument --kind: invalid choice"),
    BadInput("mnist-missing-idx", ("data", "mnist", "--idx", "{tmp}/nowhere", "--out", "{tmp}/m"), "nowhere"),
    BadInput("mnist-out-under-a-file", ("data", "mnist", "--limit", "5", "--out", "{tmp}/file.txt/m"), "file.txt", _file),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_data_command_refuses_bad_input(case, tmp_path, capsys, tiny_jets_dir):
    check_bad_input(case, tmp_path, capsys, tiny_jets_dir)
