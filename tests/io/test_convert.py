"""hls4ml-layout jets -> single-class JetNet files (`jetlab data jetnet`)."""

from __future__ import annotations

import numpy as np
import pytest

from jetlab.cli.main import main
from jetlab.errors import InputError
from jetlab.io import JET_FEATURES, PARTICLE_FEATURES, open_jets, write_hls4ml_file
from jetlab.io.convert import write_jetnet_files


def _source(tmp_path, rng, labels, p=50):
    """Two hls4ml files, pT-ordered-looking constituents with a varying number of real ones."""
    files = []
    for k, part in enumerate(np.array_split(np.asarray(labels), 2)):
        n = len(part)
        cons = rng.normal(size=(n, p, 16)).astype(np.float32)
        for i, n_real in enumerate(rng.integers(5, p + 1, size=n)):
            cons[i, n_real:] = 0
        jets = rng.normal(size=(n, 59)).astype(np.float32)
        jets[:, -6:] = 0
        jets[np.arange(n), 53 + part] = 1
        write_hls4ml_file(tmp_path / "src" / f"part{k}.h5", cons, jets)
        files.append((cons, jets, part))
    return tmp_path / "src", files


def test_jetnet_files_hold_the_leading_particles_of_each_class(tmp_path):
    rng = np.random.default_rng(4)
    labels = rng.permutation(np.repeat([0, 4, 1], [30, 25, 20]))  # g, t, q
    source, files = _source(tmp_path, rng, labels)
    written = write_jetnet_files(source, tmp_path / "out", n_particles=30, classes=["t", "g"])
    assert [p.name for p in written] == ["t30.hdf5", "g30.hdf5"]

    cons = np.concatenate([c for c, _, _ in files])
    jets = np.concatenate([j for _, j, _ in files])
    part = np.concatenate([lab for _, _, lab in files])
    cols = [PARTICLE_FEATURES.index(n) for n in ("etarel", "phirel", "ptrel")]
    for path, label in zip(written, (4, 0)):
        rows = part == label
        data = open_jets(path)
        assert data.layout == "jetnet" and data.n_jets == rows.sum() and data.n_particles == 30
        assert set(data.labels()) == {label}  # the class travels with the file
        features = data.files[0].read("particle_features")
        mask = np.abs(cons[rows, :30]).sum(-1) > 0
        np.testing.assert_array_equal(features[..., 3], mask)
        np.testing.assert_array_equal(features[..., :3], cons[rows, :30][..., cols] * mask[..., None])
        jet = data.files[0].read("jet_features")
        summary = [JET_FEATURES.index(n) for n in ("j_pt", "j_eta", "j_mass")]
        np.testing.assert_array_equal(jet[:, :3], jets[rows][:, summary])
        np.testing.assert_array_equal(jet[:, 3], mask.sum(1))


def test_cli_writes_every_class_and_refuses_what_it_cannot(tmp_path, capsys):
    rng = np.random.default_rng(5)
    source, _ = _source(tmp_path, rng, np.repeat([0, 4], 6), p=30)
    assert main(["data", "jetnet", str(source), "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["g30.hdf5", "t30.hdf5"]
    with pytest.raises(InputError, match="holds 30 particles per jet; cannot write 150"):
        write_jetnet_files(source, tmp_path / "x", n_particles=150)
    with pytest.raises(InputError, match="no jets of class 'w'"):
        write_jetnet_files(source, tmp_path / "x", classes=["w"])
    with pytest.raises(InputError, match="already in the JetNet layout"):
        write_jetnet_files(tmp_path / "out" / "g30.hdf5", tmp_path / "x")
    capsys.readouterr()
    assert main(["data", "jetnet", str(source), "--out", str(tmp_path / "y"), "--jet-class", "z"]) == 2
    assert "no jets of class 'z'" in capsys.readouterr().err
