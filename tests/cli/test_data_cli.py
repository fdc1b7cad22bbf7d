"""``jetlab data generate|info|plot`` from the command line, and clean failures on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from jetlab.cli.main import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jetlab", *args], capture_output=True, text=True, timeout=300)


def test_generate_info_plot(tmp_path, capsys):
    out = tmp_path / "jets"
    assert main(["data", "generate", "--jet-class", "q,t", "--jets-per-class", "12", "--seed", "2", "--out", str(out), "--workers", "1"]) == 0
    assert sorted(p.name for p in out.glob("*.h5")) == ["jets_q_30p_0000.h5", "jets_t_30p_0000.h5"]
    capsys.readouterr()
    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "24 jets in 2 hls4ml file(s)" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()[2:-1]}
    assert text.splitlines()[-1].startswith("(masses in GeV")
    assert set(rows) == {"q", "t"} and rows["q"][1] == "12"
    assert main(["data", "plot", str(out), "--out", str(tmp_path / "plots")]) == 0
    for name in ("mass", "pt", "multiplicity", "tau21", "tau32", "average_images"):
        png = tmp_path / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((tmp_path / "plots" / "plots.json").read_text())
    assert set(numbers["mass"]) == {"bins", "q", "t"}


def _good_file(tmp_path, tiny_jets_dir):
    src = sorted(tiny_jets_dir.glob("*.h5"))[0]
    dst = tmp_path / "copy.h5"
    shutil.copy(src, dst)
    return dst


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _drop_key(path):
    with h5py.File(path, "a") as f:
        del f["jets"]


def _bad_shape(path):
    with h5py.File(path, "a") as f:
        cons = f["jetConstituentList"][()]
        del f["jetConstituentList"]
        f["jetConstituentList"] = cons[:, :, :5].reshape(len(cons), -1)


def _nan(path):
    with h5py.File(path, "a") as f:
        f["jetConstituentList"][3, 0, 2] = np.nan


def _garbage(path):
    path.write_bytes(b"this is not an HDF5 file\n" * 10)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (_truncate, "not a readable HDF5 file"),
        (_garbage, "not a readable HDF5 file"),
        (_drop_key, "missing key 'jets'"),
        (_bad_shape, "'jetConstituentList' must be (N, particles, features)"),
        (_nan, "non-finite value in 'jetConstituentList' at jet 3"),
    ],
)
def test_bad_file_fails_with_one_line(tmp_path, tiny_jets_dir, capsys, corrupt, message):
    path = _good_file(tmp_path, tiny_jets_dir)
    corrupt(path)
    assert main(["data", "info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith(f"jetlab: error: {path}: ")
    assert message in err


def test_missing_path_exits_2_without_traceback(tmp_path):
    result = run_cli("data", "info", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"jetlab: error: {tmp_path / 'nowhere'}: no such file or directory"
    assert "Traceback" not in result.stderr


def test_unknown_class_is_refused(tmp_path, capsys):
    assert main(["data", "generate", "--jet-class", "g,x", "--jets-per-class", "1", "--out", str(tmp_path)]) == 2
    assert "unknown jet class 'x'" in capsys.readouterr().err
