"""Writing and reading the hls4ml and JetNet layouts; splits and standardisation."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from jetlab.errors import InputError
from jetlab.io import (
    HLF_FEATURES,
    JET_FEATURES,
    open_jets,
    write_hls4ml_file,
    write_jetnet_file,
)


def fake_hls4ml(rng, n=50, p=30, label=0):
    cons = rng.normal(size=(n, p, 16)).astype(np.float32)
    n_real = rng.integers(1, p + 1, size=n)
    for i, k in enumerate(n_real):
        cons[i, k:] = 0
    jets = rng.normal(size=(n, 59)).astype(np.float32)
    jets[:, -6:] = 0
    jets[:, -6 + label] = 1
    images = rng.random((n, 100, 100)).astype(np.float32)
    return cons, jets, images


def test_hls4ml_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [fake_hls4ml(rng, n=40 + 10 * k, label=k) for k in range(3)]
    for k, (cons, jets, images) in enumerate(arrays):
        write_hls4ml_file(tmp_path / f"part{k}.h5", cons, jets, images)
    data = open_jets(tmp_path, n_particles=30)
    assert data.n_jets == 40 + 50 + 60
    np.testing.assert_array_equal(data.labels(), np.repeat([0, 1, 2], [40, 50, 60]))

    index = np.array([149, 0, 45, 41, 100, 3])  # across files, unsorted
    cons_all = np.concatenate([a[0] for a in arrays])
    parts, mask = data.read(index, "particles")
    np.testing.assert_array_equal(parts, cons_all[index])
    np.testing.assert_array_equal(mask, np.abs(cons_all[index]).sum(-1) > 0)
    np.testing.assert_array_equal(data.read(index, "image"), np.concatenate([a[2] for a in arrays])[index])
    hlf_cols = [JET_FEATURES.index(n) for n in HLF_FEATURES]
    np.testing.assert_array_equal(data.read(index, "hlf"), np.concatenate([a[1] for a in arrays])[index][:, hlf_cols])

    train, val, test = data.split(seed=1, inputs=("particles", "mask", "label", "image", "hlf"), standardize=False)
    sample = train[0]
    assert sample["particles"].shape == (30, 16) and sample["particles"].dtype == torch.float32
    assert sample["mask"].dtype == torch.bool and sample["label"].dtype == torch.int64
    assert sample["image"].shape == (1, 100, 100)
    np.testing.assert_allclose(sample["image"].sum().item(), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(sample["particles"].numpy(), cons_all[train.index[0]])


def test_split_is_reproducible_disjoint_and_standardised_on_train_only(tmp_path):
    rng = np.random.default_rng(1)
    cons, jets, images = fake_hls4ml(rng, n=200)
    write_hls4ml_file(tmp_path / "a.h5", cons, jets, images)
    data = open_jets(tmp_path)
    train, val, test = data.split(seed=4)
    again = data.split(seed=4)
    other = data.split(seed=5)
    for a, b in zip((train, val, test), again):
        np.testing.assert_array_equal(a.index, b.index)
    assert not np.array_equal(train.index, other[0].index)
    together = np.concatenate([train.index, val.index, test.index])
    assert sorted(together.tolist()) == list(range(200))
    assert (len(train), len(val), len(test)) == (140, 30, 30)

    real = cons[train.index][np.abs(cons[train.index]).sum(-1) > 0]
    np.testing.assert_allclose(train.stats["particles_mean"], real.mean(0), rtol=1e-4, atol=1e-5)
    assert val.stats is train.stats and test.stats is train.stats
    batch = train.tensors()
    standardised = batch["particles"][batch["mask"]].numpy()
    np.testing.assert_allclose(standardised.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(standardised.std(0), 1, atol=1e-3)
    assert (batch["particles"][~batch["mask"]] == 0).all()
    # batched access (DataLoader's __getitems__) == item access
    items = train.__getitems__([5, 2, 7])
    for pos, item in zip([5, 2, 7], items):
        for key in item:
            torch.testing.assert_close(item[key], train[pos][key])


def test_particle_feature_selection_and_classes(tmp_path):
    rng = np.random.default_rng(2)
    for k in range(5):
        write_hls4ml_file(tmp_path / f"c{k}.h5", *fake_hls4ml(rng, n=20, label=k))
    data = open_jets(tmp_path)
    train, _, _ = data.split(particle_features=("etarel", "phirel", "ptrel"), classes=["t"], standardize=False, inputs=("particles", "label"))
    assert train[0]["particles"].shape == (30, 3)
    assert set(train.labels().tolist()) == {4}
    with pytest.raises(InputError, match="no particle feature 'bogus'"):
        data.split(particle_features=("bogus",))
    with pytest.raises(InputError, match="unknown jet class"):
        data.split(classes=["x"])


def test_jetnet_layout(tmp_path):
    rng = np.random.default_rng(3)
    pf = rng.normal(size=(25, 30, 4)).astype(np.float32)
    pf[:, 20:] = 0
    pf[:, :20, 3] = 1
    jf = rng.normal(size=(25, 4)).astype(np.float32)
    write_jetnet_file(tmp_path / "generated.h5", pf, jf, jet_class="t")
    data = open_jets(tmp_path / "generated.h5", n_particles=30)
    assert data.layout == "jetnet"
    assert (data.labels() == 4).all()
    parts, mask = data.read(np.arange(25), "particles")
    np.testing.assert_array_equal(parts, pf[..., :3])
    assert mask[:, :20].all() and not mask[:, 20:].any()
    np.testing.assert_array_equal(data.read(np.arange(3), "jet"), jf[:3])
    with pytest.raises(InputError, match="no high-level features"):
        data.split(inputs=("hlf",))


def test_particle_count_must_match(tmp_path):
    rng = np.random.default_rng(4)
    write_hls4ml_file(tmp_path / "a.h5", *fake_hls4ml(rng, n=5, p=50))
    with pytest.raises(InputError, match="has 50 particles per jet but 30 were asked for"):
        open_jets(tmp_path, n_particles=30)


def test_writer_leaves_no_partial_file(tmp_path):
    rng = np.random.default_rng(5)
    cons, jets, images = fake_hls4ml(rng, n=5)
    with pytest.raises(ValueError):
        write_hls4ml_file(tmp_path / "bad.h5", cons, jets, images[:, :50])
    assert list(tmp_path.iterdir()) == []


def test_default_set_is_generated_once_then_reused():
    from jetlab.data.default import default_jets_per_class, resolve_jets

    first = resolve_jets(None, n_particles=30)
    assert first.n_jets == 5 * default_jets_per_class()
    stamps = {f.path: f.path.stat().st_mtime_ns for f in first.files}
    second = resolve_jets(None, n_particles=30)
    assert {f.path: f.path.stat().st_mtime_ns for f in second.files} == stamps
    assert str(first.path).startswith(os.environ["JETLAB_CACHE"])


@pytest.mark.parametrize("name, label", [("g150.hdf5", 0), ("q30.hdf5", 1), ("t30.hdf5", 4), ("w150.hdf5", 2), ("z.h5", 3)])
def test_jetnet_files_named_as_published_get_their_class(tmp_path, name, label):
    rng = np.random.default_rng(6)
    pf = rng.normal(size=(6, 30, 4)).astype(np.float32)
    pf[..., 3] = 1
    write_jetnet_file(tmp_path / name, pf, rng.normal(size=(6, 4)).astype(np.float32))
    assert (open_jets(tmp_path / name).labels() == label).all()


def test_jetnet_file_without_a_class_says_how_to_name_it(tmp_path):
    rng = np.random.default_rng(7)
    write_jetnet_file(tmp_path / "x30.hdf5", rng.normal(size=(3, 30, 4)), rng.normal(size=(3, 4)))
    with pytest.raises(InputError, match=r"name it as published \(g150.hdf5, t30.hdf5"):
        open_jets(tmp_path / "x30.hdf5").labels()


def test_missing_jet_feature_error_lists_the_file_names(tmp_path):
    rng = np.random.default_rng(8)
    write_hls4ml_file(tmp_path / "a.h5", *fake_hls4ml(rng, n=4))
    with pytest.raises(InputError, match=r"no jet feature 'j_bogus' \(the file has: j_ptfrac, j_pt, j_eta, j_mass"):
        open_jets(tmp_path).files[0].jet_features(names=["j_bogus"])


def test_class_counts(tiny_jets_dir, tmp_path):
    import shutil

    assert open_jets(tiny_jets_dir).class_counts() == {"g": 40, "q": 40, "w": 40, "z": 40, "t": 40}
    shutil.copy(sorted(tiny_jets_dir.glob("jets_t_*.h5"))[0], tmp_path)
    assert open_jets(tmp_path).class_counts() == {"t": 40}


def test_interrupted_generation_is_incomplete_for_every_reader(tiny_jets_dir, tmp_path):
    import shutil

    from jetlab.data.summary import jet_summary

    shutil.copy(tiny_jets_dir / "generation.json", tmp_path)
    for path in sorted(tiny_jets_dir.glob("jets_[gq]_*.h5")):
        shutil.copy(path, tmp_path)
    message = (r"incomplete: 2 of 5 files; rerun the same `jetlab data generate` command to finish "
               r"\(jetlab data generate --jet-class g,q,w,z,t --jets-per-class 40 --particles 30 --seed 3 --out ")
    for reader in (open_jets, jet_summary):
        with pytest.raises(InputError, match=message):
            reader(tmp_path)
    for path in sorted(tiny_jets_dir.glob("jets_[wz]_*.h5")):
        shutil.copy(path, tmp_path)
    with pytest.raises(InputError, match="incomplete: 4 of 5 files"):
        open_jets(tmp_path)
    shutil.copy(sorted(tiny_jets_dir.glob("jets_t_*.h5"))[0], tmp_path)
    assert open_jets(tmp_path).n_jets == 200


def test_a_zeroed_particle_feature_is_reported(tiny_jets_dir, tmp_path):
    """A tagger scored on files whose costhetarel was zeroed falls from 0.59 to 0.26 accuracy."""
    import shutil

    import h5py

    from jetlab.io.jets import constant_features, frozen_particle_features
    from jetlab.io.layout import PARTICLE_FEATURES

    train, _, test = open_jets(tiny_jets_dir).split(seed=0)
    assert frozen_particle_features(test, train) == []
    assert frozen_particle_features(test, train.stats) == []

    broken = tmp_path / "broken"
    shutil.copytree(tiny_jets_dir, broken)
    column = PARTICLE_FEATURES.index("costhetarel")
    for path in broken.glob("*.h5"):
        with h5py.File(path, "a") as f:
            f["jetConstituentList"][:, :, column] = 0.0
    broken_train, _, broken_test = open_jets(broken).split(seed=0)
    assert frozen_particle_features(broken_test, train) == ["costhetarel"]
    assert frozen_particle_features(broken_test, train.stats) == ["costhetarel"]   # a model file's statistics
    # trained on the broken files too: costhetarel never varied, nothing to warn about
    assert frozen_particle_features(broken_test, broken_train) == []
    assert frozen_particle_features(broken_test, broken_train.stats) == []

    parts, mask = open_jets(broken).read(np.arange(20), "particles")
    assert constant_features(parts, mask, PARTICLE_FEATURES) == ["costhetarel"]
    assert constant_features(parts, mask, PARTICLE_FEATURES, reference_varies=np.zeros(16, bool)) == []


def test_a_generation_that_wrote_nothing_yet_is_incomplete_for_open_dataset(tiny_jets_dir, tmp_path):
    import shutil

    from jetlab.io import open_dataset

    shutil.copy(tiny_jets_dir / "generation.json", tmp_path)
    with pytest.raises(InputError, match="incomplete: 0 of 5 files"):
        open_dataset(tmp_path)
