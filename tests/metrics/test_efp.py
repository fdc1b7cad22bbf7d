"""Tests for jetlab.metrics.efp: graph set, fast formulas vs einsum, energyflow reference."""

import itertools
from pathlib import Path

import numpy as np
import pytest

from jetlab.metrics import efp as efp_module
from jetlab.metrics.efp import EFP_GRAPHS, efp_from_edges, efp_measure, efps

REFERENCE = Path(__file__).parent / "data" / "efp_reference.npz"


def random_jets(rng, n_jets=6, n_particles=9):
    particles = np.zeros((n_jets, n_particles, 3))
    particles[..., :2] = rng.normal(0, 0.3, (n_jets, n_particles, 2))
    particles[..., 2] = rng.exponential(1.0, (n_jets, n_particles))
    mask = rng.random((n_jets, n_particles)) < 0.7
    mask[:, 0] = True
    return particles, mask


def canonical(edges):
    """Canonical form of a multigraph on vertices 0..3 (min over vertex relabellings)."""
    return min(tuple(sorted(tuple(sorted((p[a], p[b]))) for a, b in edges))
               for p in itertools.permutations(range(4)))


def connected(edges):
    reached, frontier = {0}, [0]
    while frontier:
        v = frontier.pop()
        for a, b in edges:
            for x, y in ((a, b), (b, a)):
                if x == v and y not in reached:
                    reached.add(y)
                    frontier.append(y)
    return reached == {0, 1, 2, 3}


def test_graphs_are_all_connected_loopless_4_vertex_4_edge_multigraphs():
    pairs = list(itertools.combinations(range(4), 2))
    classes = {canonical(e) for e in itertools.combinations_with_replacement(pairs, 4)
               if connected(e)}
    assert len(classes) == 5
    assert {canonical(g) for g in EFP_GRAPHS} == classes


def test_fast_formulas_match_einsum(rng=np.random.default_rng(3)):
    particles, mask = random_jets(rng)
    z, theta = efp_measure(particles, mask)
    expected = np.stack([efp_from_edges(g, z, theta) for g in EFP_GRAPHS], -1)
    np.testing.assert_allclose(efps(particles, mask), expected, rtol=1e-12)


def test_matches_energyflow_reference():
    reference = np.load(REFERENCE)
    particles, mask = reference["particles"], reference["mask"]
    np.testing.assert_allclose(efps(particles, mask), reference["efps"], rtol=1e-12)
    np.testing.assert_allclose(efps(particles, mask, normed=True), reference["efps_normed"],
                               rtol=1e-12)


def test_padding_and_permutation_invariance():
    rng = np.random.default_rng(5)
    particles, mask = random_jets(rng)
    garbage = particles.copy()
    garbage[~mask] = 7.0  # masked rows are ignored whatever they hold
    expected = efps(particles, mask)
    np.testing.assert_allclose(efps(garbage, mask), expected, rtol=1e-12)
    perm = rng.permutation(particles.shape[1])
    np.testing.assert_allclose(efps(particles[:, perm], mask[:, perm]), expected, rtol=1e-12)


def test_energy_scaling():
    particles, mask = random_jets(np.random.default_rng(7))
    scaled = particles.copy()
    scaled[..., 2] *= 2.0
    np.testing.assert_allclose(efps(scaled, mask), 16.0 * efps(particles, mask), rtol=1e-12)
    np.testing.assert_allclose(efps(scaled, mask, normed=True), efps(particles, mask, normed=True),
                               rtol=1e-12)


def test_two_particle_jet_by_hand():
    # z = (0.25, 0.75), theta_12 = 0.5, theta_ii = 0: only assignments of the 4 vertices to
    # the 2 particles with adjacent vertices on different particles survive
    particles = np.array([[[0.0, 0.0, 0.25], [0.3, 0.4, 0.75]]])
    z, t = np.array([0.25, 0.75]), 0.5
    # star-doubled: centre on one particle, all 3 leaves on the other: t^4 z_c z_o^3
    star = t**4 * (z[0] * z[1] ** 3 + z[1] * z[0] ** 3)
    # a path or a 4-cycle has 2 such assignments, a triangle none
    path_end = t**4 * 2 * z[0] ** 2 * z[1] ** 2       # path: alternate colours
    path_middle = t**4 * 2 * z[0] ** 2 * z[1] ** 2
    cycle = t**4 * 2 * z[0] ** 2 * z[1] ** 2
    expected = [star, path_end, path_middle, 0.0, cycle]  # a triangle cannot be 2-coloured
    np.testing.assert_allclose(efps(particles)[0], expected, rtol=1e-12, atol=1e-15)


def test_chunked_equals_unchunked(monkeypatch):
    particles, mask = random_jets(np.random.default_rng(9), n_jets=11)
    expected = efps(particles, mask)
    monkeypatch.setattr(efp_module, "_CHUNK_ELEMENTS", 100)
    np.testing.assert_allclose(efps(particles, mask), expected, rtol=1e-14)


def test_rejects_bad_shape():
    with pytest.raises(ValueError, match="particles must be"):
        efps(np.zeros((3, 4)))
