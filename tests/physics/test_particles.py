"""Per-particle features and jet images (``jetlab.physics.particles``): the principal-axis
rotation, the image binning, and a batch of jets against the same jets one at a time."""

from __future__ import annotations

import numpy as np
import pytest

from jetlab.io.layout import PARTICLE_FEATURES
from jetlab.physics.kinematics import four_momenta_from_relative
from jetlab.physics.particles import (
    constituent_features,
    jet_arrays,
    jet_image,
    many_jet_arrays,
    particle_features,
    sparse_jet_images,
)


def synthetic_jet(rng, n, angle, tail=1.0):
    """n massless particles spread along a line at ``angle`` in (eta_rel, phi_rel), with a
    harder, longer tail on the side of ``tail`` (+1 / -1 along the line)."""
    along = np.concatenate([rng.uniform(0.0, 0.5, n // 2) * tail, rng.uniform(-0.15, 0.0, n - n // 2) * tail])
    across = rng.normal(0.0, 0.02, n)
    eta = along * np.cos(angle) - across * np.sin(angle)
    phi = along * np.sin(angle) + across * np.cos(angle)
    ptrel = rng.uniform(0.01, 0.05, n)
    return four_momenta_from_relative(eta, phi, ptrel, jet_pt=1000.0, jet_eta=0.3)


@pytest.mark.parametrize("angle, tail", [(0.5, 1.0), (2.0, 1.0), (-1.0, -1.0)])
def test_rotation_puts_the_principal_axis_along_plus_eta(angle, tail):
    p4 = synthetic_jet(np.random.default_rng(3), 40, angle, tail)
    f = constituent_features(p4)
    x, y, w = f["etarot"], f["phirot"], f["pt"]
    assert np.sum(w * x * x) > 20 * np.sum(w * y * y)          # the long axis is now eta
    assert abs(np.sum(w * x * y)) < 1e-9 * np.sum(w * x * x)    # principal axes: no correlation left
    assert np.sum(w * x**3) > 0                                  # the heavier tail on +eta
    np.testing.assert_allclose(np.hypot(x, y), f["deltaR"], rtol=1e-12)   # a rotation keeps distances


def test_a_single_particle_is_not_rotated():
    p4 = four_momenta_from_relative(np.array([0.1]), np.array([-0.2]), np.array([1.0]))
    f = constituent_features(p4)
    assert f["etarot"][0] == pytest.approx(0.0, abs=1e-12) and f["phirot"][0] == pytest.approx(0.0, abs=1e-12)


def test_image_pixels_are_row_eta_column_phi_and_hold_the_pt():
    x = np.array([-0.79, 0.79, 0.0, 0.005, 0.9])      # the last one is outside [-0.8, 0.8)
    y = np.array([0.79, -0.79, 0.0, 0.005, 0.0])
    pt = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    image = jet_image(x, y, pt)
    assert image[0, 99] == 1.0 and image[99, 0] == 2.0
    assert image[50, 50] == 7.0                           # two points in one pixel add up
    assert image.sum() == 10.0                            # the point outside is dropped
    count, pixel, value = sparse_jet_images(np.tile(x, 2), np.tile(y, 2), np.concatenate([pt, 2 * pt]), np.array([0, 5, 10]))
    assert count.tolist() == [3, 3]
    assert pixel.tolist() == [99, 5050, 9900] * 2          # row * 100 + column, in order per jet
    assert value.tolist() == [1.0, 7.0, 2.0, 2.0, 14.0, 4.0]


def test_a_batch_of_jets_gives_each_jet_what_it_gives_alone():
    rng = np.random.default_rng(7)
    jets = [synthetic_jet(rng, n, rng.uniform(-3, 3), rng.choice([-1.0, 1.0])) for n in (1, 2, 5, 31, 60)]
    jets.insert(2, np.repeat(jets[3][:2], 3, axis=0))    # equal pT: ties keep their input order
    constituents, rows, (count, pixel, value) = many_jet_arrays(jets, 30, label=1, truth_pts=[900.0] * len(jets))
    offsets = np.concatenate([[0], np.cumsum([len(j) for j in jets])])
    batch_columns = constituent_features(np.concatenate(jets), offsets)
    batch_particles = particle_features(np.concatenate(jets), 30, offsets=offsets)
    image_start = np.concatenate([[0], np.cumsum(count)])
    for i, p4 in enumerate(jets):
        alone = constituent_features(p4)
        for name in PARTICLE_FEATURES:
            np.testing.assert_allclose(batch_columns[name][offsets[i]:offsets[i + 1]], alone[name], rtol=1e-12, atol=1e-15)
        c, r, image = jet_arrays(p4, 30, label=1, truth_pt=900.0)
        np.testing.assert_array_equal(constituents[i], c)
        np.testing.assert_array_equal(batch_particles[i], c)
        np.testing.assert_array_equal(rows[i], r)
        flat = np.zeros(10_000, np.float32)
        flat[pixel[image_start[i]:image_start[i + 1]]] = value[image_start[i]:image_start[i + 1]]
        np.testing.assert_array_equal(flat.reshape(100, 100), image)
    assert (constituents[0, 1:] == 0).all() and (constituents[-1, :, 5] > 0).all()   # padding / cut at 30
