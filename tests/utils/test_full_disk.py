"""A full disk or an unwritable place is a one-line error naming the path, exit 2, no native crash
and nothing half-written under a final name: on a real tiny file system (a tmpfs mounted by the
test, which needs root; skipped otherwise) and with ENOSPC injected into the write."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import jetlab
from jetlab.errors import InputError
from jetlab.io.jet_files import open_jet_file, write_hls4ml_file
from jetlab.utils.atomic import atomic_torch_save, atomic_write_json

SRC = str(Path(jetlab.__file__).resolve().parents[1])


@contextlib.contextmanager
def _tmpfs(directory: Path, size_k: int, *options: str):
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size_k}k", *options]), "tmpfs",
                              str(directory)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip() or 'mount failed'}): needs root")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB file system (a tmpfs), or the test is skipped."""
    with _tmpfs(tmp_path / "small", 64) as directory:
        yield directory


@pytest.fixture
def read_only_disk(tmp_path):
    with _tmpfs(tmp_path / "ro", 64, "ro") as directory:
        yield directory


@pytest.fixture
def enospc_on_write(monkeypatch):
    """Every Path.write_bytes (how the atomic writers put their bytes down) fails with ENOSPC."""
    def full(self, data):
        with open(self, "wb") as fh:
            fh.write(bytes(data)[:100])  # some bytes land, as on a disk that fills up
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_bytes", full)


def _jets(n: int = 200):
    rng = np.random.default_rng(0)
    return (rng.random((n, 30, 16), dtype=np.float32), rng.random((n, 59), dtype=np.float32),
            rng.random((n, 100, 100), dtype=np.float32))  # random images do not compress: ~8 MB


def _nothing_left(directory: Path, name: str) -> None:
    assert not (directory / name).exists()
    assert not list(directory.glob(f".{name}.tmp-*"))


@pytest.mark.parametrize("where", ["small_disk", "enospc_on_write"])
def test_hdf5_and_torch_files_that_do_not_fit_are_one_line_errors_and_never_half_written(where, request, tmp_path):
    directory = request.getfixturevalue(where) if where == "small_disk" else tmp_path
    if where == "enospc_on_write":
        request.getfixturevalue(where)
    with pytest.raises(InputError) as raised:
        write_hls4ml_file(directory / "jets.h5", *_jets())
    assert str(raised.value) == f"{directory / 'jets.h5'}: cannot write: no space left on device"
    _nothing_left(directory, "jets.h5")
    with pytest.raises(InputError, match=r"checkpoint\.pt: cannot write: no space left on device$"):
        atomic_torch_save({"weights": np.zeros(100_000, np.float32)}, directory / "checkpoint.pt")
    _nothing_left(directory, "checkpoint.pt")


def test_a_file_that_fits_is_whole_after_a_failed_one(small_disk):
    with pytest.raises(InputError):
        write_hls4ml_file(small_disk / "big.h5", *_jets())
    constituents, jets, _ = _jets(10)
    write_hls4ml_file(small_disk / "small.h5", constituents, jets)  # the space of the failed one came back
    f = open_jet_file(small_disk / "small.h5")
    assert f.n_jets == 10 and np.array_equal(f.jet_features(), jets)
    f.close()


def test_unwritable_places_are_one_line_errors(tmp_path, read_only_disk):
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(InputError, match=r"a-file/out/m\.json: cannot write: a parent of it is not a directory$"):
        atomic_write_json(tmp_path / "a-file" / "out" / "m.json", {})
    with pytest.raises(InputError, match=r"ro/m\.json: cannot write: read-only file system$"):
        atomic_write_json(read_only_disk / "m.json", {})


@pytest.mark.slow
def test_data_generate_on_a_full_disk_stops_with_one_line_and_a_rerun_finishes(tmp_path, tiny_jets_dir):
    """The block (about 110 kB) fits, the HDF5 file beside it does not: one line, exit 2, the block
    kept; with room again the rerun assembles the same file as a generation with room."""
    with _tmpfs(tmp_path / "disk", 150) as disk:
        argv = [sys.executable, "-m", "jetlab", "data", "generate", "--jet-class", "g", "--jets-per-class", "40",
                "--seed", "3", "--workers", "1", "--out", str(disk / "jets")]
        env = {**os.environ, "PYTHONPATH": SRC, "JETLAB_NO_PROGRESS": "1"}
        run = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 2, run.stderr
        assert run.stderr == f"jetlab: error: {disk / 'jets' / 'jets_g_30p_0000.h5'}: cannot write: no space left on device\n"
        assert json.loads((disk / "jets" / "generation.json").read_text())["classes"] == ["g"]
        assert list((disk / "jets" / ".blocks").glob("g_*.npz")) and not list((disk / "jets").glob("*.h5"))
        subprocess.run(["mount", "-o", "remount,size=2m", str(disk)], check=True)
        rerun = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        with h5py.File(disk / "jets" / "jets_g_30p_0000.h5") as mine, \
                h5py.File(tiny_jets_dir / "jets_g_30p_0000.h5") as reference:
            assert sorted(mine) == sorted(reference)
            assert all(np.array_equal(mine[key][()], reference[key][()]) for key in reference)


def test_a_write_failure_met_anywhere_else_is_one_line_too(monkeypatch, capsys):
    import jetlab.cli.data as data_cli
    from jetlab.cli.main import main

    def full(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/jets.h5")

    monkeypatch.setattr(data_cli, "_generate", full)
    assert main(["data", "generate", "--out", "jets", "--jets-per-class", "1"]) == 2
    assert capsys.readouterr().err == "jetlab: error: /data/jets.h5: cannot write: no space left on device\n"
