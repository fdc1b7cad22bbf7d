"""Tests for jetlab.metrics.efp: graph sets, fast formulas vs einsum and vs explicit vertex
sums, energyflow reference values (all 36 d <= 4 EFPs; energyflow 1.4.0, see the npz)."""

import itertools
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from jetlab.metrics import efp as efp_module
from jetlab.metrics.efp import (
    EFP_D4_GRAPHS,
    EFP_D4_PRODUCTS,
    EFP_GRAPHS,
    efp_from_edges,
    efp_measure,
    efps,
    efps_d4,
    get_fpd_kpd_jet_features,
)

REFERENCE = Path(__file__).parent / "data" / "efp_reference.npz"
# energyflow 1.4.0: EFPSet(("d<=", 4), measure="hadr", beta=1, normed=None, coords="ptyphim")
# .batch_compute of jets (pT, eta, phi) = columns [2, 0, 1], and its .graphs() as repr strings
REFERENCE_D4 = Path(__file__).parent / "data" / "efp_d4_reference.npz"


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


def test_fast_formulas_match_einsum():
    rng = np.random.default_rng(3)
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


# ------------------------------------------------------------------ the 36 d <= 4 EFPs


def components(edges):
    """Connected components of a multigraph (vertices 0..n-1), each relabelled 0..k-1."""
    n = 1 + max((v for e in edges for v in e), default=0)
    parent = list(range(n))

    def root(v):
        while parent[v] != v:
            v = parent[v]
        return v

    for a, b in edges:
        parent[root(a)] = root(b)
    groups = {}
    for v in range(n):
        groups.setdefault(root(v), []).append(v)
    out = []
    for vertices in groups.values():
        index = {v: i for i, v in enumerate(vertices)}
        out.append(tuple((index[a], index[b]) for a, b in edges if a in index))
    return out


def canonical_any(edges):
    """Isomorphism class of a multigraph: sorted canonical forms of its components."""
    forms = []
    for comp in components(edges):
        n = 1 + max((v for e in comp for v in e), default=0)
        forms.append((n, min(tuple(sorted(tuple(sorted((p[a], p[b]))) for a, b in comp))
                             for p in itertools.permutations(range(n)))))
    return tuple(sorted(forms))


def all_multigraph_classes(max_edges=4):
    """Every loopless multigraph with <= max_edges edges and no isolated vertex (plus the
    single vertex), up to isomorphism, built from connected ones independently of jetlab."""
    connected = {0: {canonical_any(())}}
    for d in range(1, max_edges + 1):
        connected[d] = set()
        for n in range(2, d + 2):
            for edges in itertools.combinations_with_replacement(
                    list(itertools.combinations(range(n), 2)), d):
                if len(components(edges)) == 1 and {v for e in edges for v in e} == set(range(n)):
                    connected[d].add(canonical_any(edges))
    classes = set(connected[0])
    pieces = [(d, c) for d in range(1, max_edges + 1) for c in connected[d]]
    for k in range(1, max_edges + 1):
        for combo in itertools.combinations_with_replacement(pieces, k):
            if sum(d for d, _ in combo) <= max_edges:
                classes.add(tuple(sorted(form for _, c in combo for form in c)))
    return connected, classes


def test_d4_set_is_every_multigraph_with_at_most_4_edges_once():
    connected, classes = all_multigraph_classes()
    assert [len(connected[d]) for d in range(5)] == [1, 1, 2, 5, 12]
    assert len(classes) == 36
    jetlab_classes = [canonical_any(g) for g in EFP_D4_GRAPHS]
    assert len(set(jetlab_classes)) == 36 and set(jetlab_classes) == classes
    # columns 0..20 connected, 21..35 disconnected with the listed factors
    assert all(len(components(g)) == 1 for g in EFP_D4_GRAPHS[:21])
    for graph, factors in zip(EFP_D4_GRAPHS[21:], EFP_D4_PRODUCTS):
        assert Counter(canonical_any(c) for c in components(graph)) == \
            Counter(canonical_any(EFP_D4_GRAPHS[f]) for f in factors)
    # the JetNet W1-EFP graphs are the n = 4, d = 4 connected ones
    assert [g for g in EFP_D4_GRAPHS[:21] if len(g) == 4 and
            1 + max(v for e in g for v in e) == 4] == list(EFP_GRAPHS)


def test_d4_order_and_values_match_energyflow():
    reference = np.load(REFERENCE_D4)
    assert [repr(list(g)) for g in EFP_D4_GRAPHS] == list(reference["graphs"])
    for size in ("30", "150"):  # 150: with azimuths across +-pi
        np.testing.assert_allclose(get_fpd_kpd_jet_features(reference["particles" + size]),
                                   reference["efps" + size], rtol=1e-12)


def brute_force_efp(edges, jet):
    """EFP of one jet (P, 3) by explicit nested sums over the vertices' particles."""
    n = 1 + max((v for e in edges for v in e), default=0)
    z = [p[2] for p in jet]

    def theta(i, j):
        d_phi = abs(jet[i][1] - jet[j][1]) % (2 * math.pi)
        return math.hypot(jet[i][0] - jet[j][0], min(d_phi, 2 * math.pi - d_phi))

    total = 0.0
    for assignment in itertools.product(range(len(jet)), repeat=n):
        term = math.prod(z[i] for i in assignment)
        for a, b in edges:
            term *= theta(assignment[a], assignment[b])
        total += term
    return total


@pytest.mark.parametrize("column", [0, 3, 8, 9, 10, 16, 17, 20, 28, 33])
def test_d4_against_explicit_vertex_sums(column):
    rng = np.random.default_rng(column)
    jets = np.zeros((3, 4, 3))
    jets[..., :2] = rng.normal(0, 1.0, (3, 4, 2))
    jets[0, 0, 1] = 3.0   # azimuths that wrap
    jets[0, 1, 1] = -3.0
    jets[..., 2] = rng.exponential(1.0, (3, 4))
    jets[2, 3] = 0.0  # a padded slot
    expected = [brute_force_efp(EFP_D4_GRAPHS[column], jet.tolist()) for jet in jets]
    np.testing.assert_allclose(efps_d4(jets)[:, column], expected, rtol=1e-12)


def test_d4_fast_path_matches_einsum_and_masks():
    particles, mask = random_jets(np.random.default_rng(11), n_jets=7, n_particles=10)
    particles[3, :, 2] = 0.0  # an empty jet
    z, theta = efp_measure(particles, mask)
    expected = np.stack([efp_from_edges(g, z, theta) for g in EFP_D4_GRAPHS], -1)
    np.testing.assert_allclose(efps_d4(particles, mask), expected, rtol=1e-12, atol=1e-300)
    assert np.all(efps_d4(particles, mask)[3] == 0)
    np.testing.assert_allclose(efps_d4(particles, mask)[:, [12, 14, 15, 16, 17]],
                               efps(particles, mask), rtol=0)


def test_d4_packing_and_chunks(monkeypatch):
    particles, mask = random_jets(np.random.default_rng(13), n_jets=9, n_particles=8)
    expected = efps_d4(particles, mask)
    monkeypatch.setattr(efp_module, "_CHUNK_ELEMENTS", 1)  # one jet per chunk
    np.testing.assert_allclose(efps_d4(particles, mask), expected, rtol=1e-13)
    import torch
    tensor = torch.from_numpy(np.where(mask[..., None], particles, 0.0))
    np.testing.assert_allclose(get_fpd_kpd_jet_features(tensor), expected, rtol=1e-13)
