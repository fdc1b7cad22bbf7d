"""Tests of jetlab.physics.substructure against naive oracles (explicit loops over pairs and
triples, a naive kT / C/A / pruning clustering written here), answers by hand, and
invariances."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jetlab.errors import JetlabError
from jetlab.io.layout import HLF_FEATURES, JET_FEATURES
from jetlab.physics import energy_correlators as ecf
from jetlab.physics import substructure as sub

COLUMN = {name: i for i, name in enumerate(JET_FEATURES)}
R0 = 0.8


# --------------------------------------------------------------------------- jets

def p4_from(pt, rapidity, phi, mass=0.0):
    """(px, py, pz, E) of a particle with exactly this pT, rapidity, phi and mass."""
    mt = math.sqrt(pt * pt + mass * mass)
    return [pt * math.cos(phi), pt * math.sin(phi), mt * math.sinh(rapidity), mt * math.cosh(rapidity)]


def random_jet(rng, n, rapidity=0.3, phi=1.0, spread=0.25):
    pts = rng.exponential(20.0, n) + 0.5
    masses = rng.choice([0.0, 0.13957], n)
    return np.array([
        p4_from(pt, rapidity + rng.normal(0, spread), phi + rng.normal(0, spread), m)
        for pt, m in zip(pts, masses)
    ])


# --------------------------------------------------------------------------- naive oracles

def rap_phi(p):
    px, py, pz, e = p
    return 0.5 * math.log((e + pz) / (e - pz)), math.atan2(py, px)


def delta_r(p, q):
    (ya, fa), (yb, fb) = rap_phi(p), rap_phi(q)
    dphi = abs(fa - fb) % (2 * math.pi)
    dphi = min(dphi, 2 * math.pi - dphi)
    return math.hypot(ya - yb, dphi)


def pt_of(p):
    return math.hypot(p[0], p[1])


def mass_of(p):
    return math.sqrt(max(p[3] ** 2 - p[0] ** 2 - p[1] ** 2 - p[2] ** 2, 0.0))


def oracle_ecf_observables(p4):
    """The 13 ECF ratios by explicit loops over pairs and triples (float64)."""
    n = len(p4)
    total = sum(pt_of(p) for p in p4)
    z = [pt_of(p) / total for p in p4]
    e2 = {b: 0.0 for b in (0, 1, 2)}
    for i, j in itertools.combinations(range(n), 2):
        for b in e2:
            e2[b] += z[i] * z[j] * (delta_r(p4[i], p4[j]) ** b if b else 1.0)
    e3 = {b: 0.0 for b in (1, 2)}
    e3min = {b: 0.0 for b in (1, 2)}
    e3two = {b: 0.0 for b in (1, 2)}
    for i, j, k in itertools.combinations(range(n), 3):
        w = z[i] * z[j] * z[k]
        a0, a1, a2 = sorted([delta_r(p4[i], p4[j]), delta_r(p4[i], p4[k]), delta_r(p4[j], p4[k])])
        for b in (1, 2):
            e3[b] += w * (a0 * a1 * a2) ** b
            e3min[b] += w * a0**b
            e3two[b] += w * (a0 * a1) ** b

    def ratio(x, y):
        return x / y if y > 0 else 0.0

    return {
        "c1_b0": e2[0], "c1_b1": e2[1], "c1_b2": e2[2],
        "c2_b1": ratio(e3[1], e2[1] ** 2), "c2_b2": ratio(e3[2], e2[2] ** 2),
        "d2_b1": ratio(e3[1], e2[1] ** 3), "d2_b2": ratio(e3[2], e2[2] ** 3),
        "d2_a1_b1": ratio(e3[1], e2[1] ** 3), "d2_a1_b2": ratio(e3[1], e2[2] ** 1.5),
        "m2_b1": ratio(e3min[1], e2[1]), "m2_b2": ratio(e3min[2], e2[2]),
        "n2_b1": ratio(e3two[1], e2[1] ** 2), "n2_b2": ratio(e3two[2], e2[2] ** 2),
    }


def oracle_kt_exclusive(p4, n_axes):
    """Exclusive kT clustering down to n_axes jets, d_ij = min(pT_i^2, pT_j^2) dR_ij^2, E-scheme."""
    jets = [np.array(p, dtype=float) for p in p4]
    while len(jets) > n_axes:
        def distance(ij, jets=jets):
            a, b = jets[ij[0]], jets[ij[1]]
            return min(pt_of(a), pt_of(b)) ** 2 * delta_r(a, b) ** 2

        best = min(itertools.combinations(range(len(jets)), 2), key=distance)
        merged = jets[best[0]] + jets[best[1]]
        jets = [jet for index, jet in enumerate(jets) if index not in best] + [merged]
    return jets


def oracle_tau(p4, axes, beta):
    numerator = sum(pt_of(p) * min(delta_r(p, a) for a in axes) ** beta for p in p4)
    return numerator / (sum(pt_of(p) for p in p4) * R0**beta)


def oracle_ca_tree(p4):
    """Cambridge/Aachen clustering (no radius limit): nested (momentum, leaves, children) nodes."""
    nodes = [(np.array(p, dtype=float), [i], None) for i, p in enumerate(p4)]
    while len(nodes) > 1:
        pairs = itertools.combinations(range(len(nodes)), 2)
        a, b = min(pairs, key=lambda ab: delta_r(nodes[ab[0]][0], nodes[ab[1]][0]))
        merged = (nodes[a][0] + nodes[b][0], nodes[a][1] + nodes[b][1], (nodes[a], nodes[b]))
        nodes = [node for index, node in enumerate(nodes) if index not in (a, b)] + [merged]
    return nodes[0]


def oracle_soft_drop(p4, beta, z_cut):
    node = oracle_ca_tree(p4)
    while node[2] is not None:
        harder, softer = sorted(node[2], key=lambda child: -pt_of(child[0]))
        z = pt_of(softer[0]) / (pt_of(harder[0]) + pt_of(softer[0]))
        if z > z_cut * (delta_r(harder[0], softer[0]) / R0) ** beta:
            break
        node = harder
    return sorted(node[1])


def oracle_trimmed_mass(p4, r_sub=0.2, fraction=0.03):
    """Inclusive kT (R = r_sub) subjets; keep those with pT > fraction * pT_jet."""
    jets, subjets = [np.array(p, dtype=float) for p in p4], []
    while jets:
        beam = [(pt_of(j) ** 2, ("beam", i)) for i, j in enumerate(jets)]
        pairs = [
            (min(pt_of(jets[i]), pt_of(jets[j])) ** 2 * (delta_r(jets[i], jets[j]) / r_sub) ** 2, ("pair", i, j))
            for i, j in itertools.combinations(range(len(jets)), 2)
        ]
        _, step = min(beam + pairs, key=lambda item: item[0])
        if step[0] == "beam":
            subjets.append(jets.pop(step[1]))
        else:
            merged = jets[step[1]] + jets[step[2]]
            jets = [j for index, j in enumerate(jets) if index not in step[1:]] + [merged]
    jet_pt = pt_of(np.sum(p4, axis=0))
    kept = [s for s in subjets if pt_of(s) > fraction * jet_pt]
    return mass_of(np.sum(kept, axis=0))


def oracle_pruned_mass(p4, z_cut=0.1, r_cut_factor=0.5):
    """C/A clustering in which a merging with z < z_cut and dR > R_cut drops the softer branch."""
    total = np.sum(p4, axis=0)
    r_cut = r_cut_factor * 2 * mass_of(total) / pt_of(total)
    jets = [np.array(p, dtype=float) for p in p4]
    while len(jets) > 1:
        pairs = itertools.combinations(range(len(jets)), 2)
        a, b = min(pairs, key=lambda ab: delta_r(jets[ab[0]], jets[ab[1]]))
        pa, pb = jets[a], jets[b]
        z = min(pt_of(pa), pt_of(pb)) / pt_of(pa + pb)
        merged = (pa if pt_of(pa) > pt_of(pb) else pb) if (z < z_cut and delta_r(pa, pb) > r_cut) else pa + pb
        jets = [j for index, j in enumerate(jets) if index not in (a, b)] + [merged]
    return mass_of(jets[0])


def features(p4):
    return dict(zip(JET_FEATURES, sub.jet_substructure(p4).astype(np.float64)))


# --------------------------------------------------------------------------- layout and API

def test_feature_names_and_untouched_columns():
    assert len(sub.SUBSTRUCTURE_FEATURES) == 52
    assert "j_ptfrac" not in sub.SUBSTRUCTURE_FEATURES
    assert not set(sub.SUBSTRUCTURE_FEATURES) & {"j_g", "j_q", "j_w", "j_z", "j_t", "j_undef"}
    assert set(HLF_FEATURES) <= set(sub.SUBSTRUCTURE_FEATURES)
    row = sub.jet_substructure(random_jet(np.random.default_rng(0), 25))
    assert row.dtype == np.float32 and row.shape == (59,)
    untouched = [COLUMN[name] for name in JET_FEATURES if name not in sub.SUBSTRUCTURE_FEATURES]
    assert np.all(row[untouched] == 0)
    assert np.all(np.isfinite(row))


@pytest.mark.parametrize("bad", [np.zeros((0, 4)), np.zeros((3, 3)), np.full((2, 4), np.nan)])
def test_bad_input_raises(bad):
    with pytest.raises(JetlabError):
        sub.jet_substructure(bad)


# --------------------------------------------------------------------------- kinematics

def test_two_body_mass_matches_analytic_formula():
    pt1, y1, f1, m1 = 300.0, 0.2, 0.1, 4.0
    pt2, y2, f2, m2 = 120.0, -0.1, 0.5, 1.5
    p4 = np.array([p4_from(pt1, y1, f1, m1), p4_from(pt2, y2, f2, m2)])
    mt1, mt2 = math.hypot(pt1, m1), math.hypot(pt2, m2)
    expected = math.sqrt(m1**2 + m2**2 + 2 * (mt1 * mt2 * math.cosh(y1 - y2) - pt1 * pt2 * math.cos(f1 - f2)))
    got = features(p4)
    assert got["j_mass"] == pytest.approx(expected, rel=1e-6)
    assert sub.invariant_mass(p4) == pytest.approx(expected, rel=1e-12)
    total = p4.sum(axis=0)
    assert got["j_pt"] == pytest.approx(math.hypot(total[0], total[1]), rel=1e-6)
    assert got["j_eta"] == pytest.approx(math.asinh(total[2] / math.hypot(total[0], total[1])), rel=1e-6)
    assert got["j_multiplicity"] == 2


def test_rapidity_phi_matches_definition():
    p4 = random_jet(np.random.default_rng(1), 20, phi=-0.2)
    rapidity, phi = sub.rapidity_phi(p4)
    for p, y, f in zip(p4, rapidity, phi):
        y_ref, f_ref = rap_phi(p)
        assert y == pytest.approx(y_ref, rel=1e-10, abs=1e-12)
        assert f == pytest.approx(f_ref % (2 * math.pi), rel=1e-12)
    matrix = sub.pairwise_delta_r(rapidity, phi)
    assert matrix[3, 7] == pytest.approx(delta_r(p4[3], p4[7]), rel=1e-10)


def test_zlogz_by_hand():
    p4 = np.array([p4_from(30.0, 0.0, 0.0), p4_from(10.0, 0.1, 0.1)])
    assert features(p4)["j_zlogz"] == pytest.approx(0.75 * math.log(0.75) + 0.25 * math.log(0.25), rel=1e-6)


# --------------------------------------------------------------------------- energy correlators

@pytest.mark.parametrize("seed,n", [(2, 3), (3, 7), (4, 16), (5, 28)])
def test_energy_correlation_ratios_match_loops(seed, n):
    p4 = random_jet(np.random.default_rng(seed), n)
    expected = oracle_ecf_observables(p4)
    fast = sub.energy_correlation_observables(p4)
    row = features(p4)
    for name, value in expected.items():
        assert fast[name] == pytest.approx(value, rel=2e-5, abs=1e-12), name
        assert row[f"j_{name}"] == pytest.approx(value, rel=2e-5, abs=1e-12), name


def test_large_jets_without_index_tables_agree(monkeypatch):
    """Above the table limit the triple indices are computed per chunk: same result."""
    p4 = random_jet(np.random.default_rng(18), 40)
    with_tables = sub.jet_substructure(p4)
    monkeypatch.setattr(ecf._ENUMERATION, "table_limit", 10)
    monkeypatch.setattr(ecf, "_TRIPLE_CHUNK", 997)         # many chunks, cut inside blocks
    np.testing.assert_allclose(sub.jet_substructure(p4), with_tables, rtol=1e-5)
    fast = sub.energy_correlation_observables(p4)
    for name, value in oracle_ecf_observables(p4).items():
        assert fast[name] == pytest.approx(value, rel=2e-5, abs=1e-12), name


def test_generalized_correlators_reference_path():
    p4 = random_jet(np.random.default_rng(6), 12)
    z = np.hypot(p4[:, 0], p4[:, 1]) / np.hypot(p4[:, 0], p4[:, 1]).sum()
    for beta in (0.0, 0.5, 1.0, 2.0):
        sums = {1: 0.0, 2: 0.0, 3: 0.0}
        for i, j, k in itertools.combinations(range(len(p4)), 3):
            a = sorted([delta_r(p4[i], p4[j]), delta_r(p4[i], p4[k]), delta_r(p4[j], p4[k])])
            for v in sums:
                sums[v] += z[i] * z[j] * z[k] * math.prod(a[:v]) ** beta
        for v, value in sums.items():
            assert sub.energy_correlation(p4, 3, beta, angles=v) == pytest.approx(value, rel=1e-10)
        assert sub.energy_correlation(p4, 3, beta) == pytest.approx(sums[3], rel=1e-10)
        pairs = itertools.combinations(range(len(p4)), 2)
        e2 = sum(z[i] * z[j] * delta_r(p4[i], p4[j]) ** beta for i, j in pairs)
        assert sub.energy_correlation(p4, 2, beta) == pytest.approx(e2, rel=1e-10)
    assert sub.energy_correlation(p4, 1, 1.0) == 1.0
    assert sub.energy_correlation(p4[:2], 3, 1.0) == 0.0


def test_three_equal_prongs_equilateral_by_hand():
    # z = 1/3 each, all angles d: e2 = d^b/3, e3 = d^3b/27, 1e3 = d^b/27, 2e3 = d^2b/27
    d = 0.3
    # vertices on a circle of radius d in (y, phi): side d sqrt(3)
    vertex_angles = (0.1, 0.1 + 2 * math.pi / 3, 0.1 + 4 * math.pi / 3)
    p4 = np.array([p4_from(100.0, d * math.cos(a), 1.0 + d * math.sin(a)) for a in vertex_angles])
    side = d * math.sqrt(3)
    got = features(p4)
    for b in (1, 2):
        assert got[f"j_c1_b{b}"] == pytest.approx(side**b / 3, rel=1e-5)
        assert got[f"j_c2_b{b}"] == pytest.approx(side**b / 3, rel=1e-5)
        assert got[f"j_d2_b{b}"] == pytest.approx(1.0, rel=1e-5)
        assert got[f"j_m2_b{b}"] == pytest.approx(1 / 9, rel=1e-5)
        assert got[f"j_n2_b{b}"] == pytest.approx(1 / 3, rel=1e-5)
    assert got["j_c1_b0"] == pytest.approx(1 / 3, rel=1e-6)
    assert got["j_d2_a1_b2"] == pytest.approx((side**3 / 27) / (side**2 / 3) ** 1.5, rel=1e-5)


def test_matches_fastjet_contrib():
    """fjcontrib's EnergyCorrelator, SoftDrop and Nsubjettiness (KT_Axes, NormalizedMeasure),
    shipped in the fastjet wheel behind its awkward interface."""
    ak = pytest.importorskip("awkward")
    import fastjet

    p4 = random_jet(np.random.default_rng(7), 14)
    events = ak.Array([[dict(px=a, py=b, pz=c, E=d) for a, b, c, d in p4.tolist()]])
    sequence = fastjet.ClusterSequence(events, fastjet.JetDefinition(fastjet.cambridge_algorithm, 1000.0))
    ours = sub.energy_correlation_observables(p4)
    for func, beta in [("c1", 0), ("c1", 1), ("c1", 2), ("c2", 1), ("c2", 2), ("d2", 1), ("d2", 2),
                       ("m2", 1), ("m2", 2), ("n2", 1), ("n2", 2)]:
        reference = sequence.exclusive_jets_energy_correlator(njets=1, func=func, beta=beta).tolist()[0]
        assert ours[f"{func}_b{beta}"] == pytest.approx(reference, rel=2e-5), (func, beta)
    for beta in (1.0, 2.0):
        taus = sequence.njettiness(
            measure_definition="NormalizedMeasure", axes_definition="KT_Axes", njets=[1, 2, 3], beta=beta, R0=R0
        ).tolist()[0]
        for n_axes, reference in zip((1, 2, 3), taus):
            assert sub.nsubjettiness(p4, n_axes, beta) == pytest.approx(reference, rel=1e-9)
    for beta in (0.0, 2.0, -1.0):
        groomed = sequence.exclusive_jets_softdrop_grooming(njets=1, beta=beta, symmetry_cut=0.1, R0=R0)
        reference = groomed.msoftdrop.tolist()[0]
        assert sub.invariant_mass(p4[sub.soft_drop(p4, beta, 0.1)]) == pytest.approx(reference, rel=1e-9)


# --------------------------------------------------------------------------- N-subjettiness

@pytest.mark.parametrize("seed,n", [(8, 5), (9, 12), (10, 20)])
def test_nsubjettiness_matches_naive_kt_axes(seed, n):
    p4 = random_jet(np.random.default_rng(seed), n)
    row = features(p4)
    for n_axes in (1, 2, 3):
        axes = oracle_kt_exclusive(p4, n_axes)
        np.testing.assert_allclose(
            sorted(map(tuple, sub.kt_axes(p4, n_axes))), sorted(map(tuple, axes)), rtol=1e-9, atol=1e-9
        )
        for beta in (1, 2):
            expected = oracle_tau(p4, axes, beta)
            assert sub.nsubjettiness(p4, n_axes, beta) == pytest.approx(expected, rel=1e-9)
            given_axes = sub.nsubjettiness(p4, n_axes, beta, axes=np.array(axes))
            assert given_axes == pytest.approx(expected, rel=1e-9)
            assert row[f"j_tau{n_axes}_b{beta}"] == pytest.approx(expected, rel=1e-5)
    for beta in (1, 2):
        ratio = row[f"j_tau3_b{beta}"] / row[f"j_tau2_b{beta}"]
        assert row[f"j_tau32_b{beta}"] == pytest.approx(ratio, rel=1e-5)


def test_two_equal_prongs_by_hand():
    # two equal-pT massless prongs a distance d apart: the one-axis is their midpoint,
    # tau1^(b) = (d/2)^b / R0^b, tau2 = 0; e2^(b) = d^b / 4; no 3-point correlations
    d = 0.4
    p4 = np.array([p4_from(200.0, 0.5, 1.0 - d / 2), p4_from(200.0, 0.5, 1.0 + d / 2)])
    got = features(p4)
    assert got["j_tau1_b1"] == pytest.approx(d / 2 / R0, rel=1e-6)
    assert got["j_tau1_b2"] == pytest.approx((d / 2 / R0) ** 2, rel=1e-6)
    vanishing = ("j_tau2_b1", "j_tau3_b1", "j_tau2_b2", "j_tau32_b1", "j_c2_b1", "j_d2_b2", "j_m2_b1", "j_n2_b2")
    for name in vanishing:
        assert got[name] == 0.0, name
    assert got["j_c1_b1"] == pytest.approx(d / 4, rel=1e-6)
    assert got["j_c1_b0"] == pytest.approx(0.25, rel=1e-6)
    assert got["j_mass"] == pytest.approx(math.sqrt(2 * 200.0 * 200.0 * (1 - math.cos(d))), rel=1e-6)


def test_two_prong_jet_has_smaller_tau21_than_one_prong_jet():
    rng = np.random.default_rng(11)
    two_prong = [p4_from(pt, rng.normal(0, 0.02), centre + rng.normal(0, 0.02))
                 for centre in (-0.2, 0.2) for pt in rng.exponential(10.0, 20) + 1]
    one_prong = [p4_from(pt, rng.normal(0, 0.1), rng.normal(0, 0.1)) for pt in rng.exponential(10.0, 40) + 1]
    tau21 = {}
    for name, p4 in (("two", np.array(two_prong)), ("one", np.array(one_prong))):
        got = features(p4)
        tau21[name] = got["j_tau2_b1"] / got["j_tau1_b1"]
    assert tau21["two"] < 0.5 * tau21["one"]


# --------------------------------------------------------------------------- grooming

def test_soft_wide_angle_particle_is_groomed_away():
    prongs = [p4_from(100.0, 0.0, 0.9), p4_from(100.0, 0.0, 1.1)]
    p4 = np.array(prongs + [p4_from(5.0, 0.6, 1.0)])
    got = features(p4)
    prong_mass = math.sqrt(2 * 100.0 * 100.0 * (1 - math.cos(0.2)))
    assert got["j_mass_mmdt"] == pytest.approx(prong_mass, rel=1e-6)
    assert got["j_mass_sdb2"] == pytest.approx(prong_mass, rel=1e-6)
    assert got["j_mass"] > 1.2 * prong_mass
    np.testing.assert_array_equal(sub.soft_drop(p4, 0.0, 0.1), [0, 1])
    # the *_mmdt observables are those of the two prongs alone
    assert got["j_c1_b1_mmdt"] == pytest.approx(0.25 * 0.2, rel=1e-5)
    assert got["j_tau1_b1_mmdt"] == pytest.approx(0.1 / R0, rel=1e-5)
    assert got["j_c2_b1_mmdt"] == 0.0 and got["j_c2_b1"] > 0


@pytest.mark.parametrize("seed,n", [(12, 6), (13, 15), (14, 25)])
def test_grooming_matches_naive_clustering(seed, n):
    p4 = random_jet(np.random.default_rng(seed), n, spread=0.3)
    got = features(p4)
    for beta, column in ((0.0, "j_mass_mmdt"), (2.0, "j_mass_sdb2"), (-1.0, "j_mass_sdm1")):
        kept = oracle_soft_drop(p4, beta, 0.1)
        np.testing.assert_array_equal(sub.soft_drop(p4, beta, 0.1), kept)
        assert got[column] == pytest.approx(mass_of(p4[kept].sum(axis=0)), rel=1e-5)
    assert got["j_mass_trim"] == pytest.approx(oracle_trimmed_mass(p4), rel=1e-5)
    assert sub.invariant_mass(p4[sub.trim(p4)]) == pytest.approx(oracle_trimmed_mass(p4), rel=1e-9)
    assert got["j_mass_prun"] == pytest.approx(oracle_pruned_mass(p4), rel=1e-5)
    assert sub.invariant_mass(p4[sub.prune(p4)]) == pytest.approx(oracle_pruned_mass(p4), rel=1e-9)


def test_mmdt_columns_equal_observables_of_groomed_constituents():
    rng = np.random.default_rng(15)
    # a hard two-prong core plus soft wide-angle radiation, so mMDT removes something
    core = [p4_from(pt, rng.normal(0, 0.03), centre + rng.normal(0, 0.03))
            for centre in (-0.15, 0.15) for pt in rng.exponential(30, 8) + 1]
    soft = [p4_from(pt, rng.normal(0, 0.5), rng.normal(0, 0.5)) for pt in rng.exponential(0.5, 12) + 0.1]
    p4 = np.array(soft[:6] + core + soft[6:])
    kept = sub.soft_drop(p4, 0.0, 0.1)
    assert 3 <= len(kept) < len(p4)
    got = features(p4)
    groomed = p4[kept]
    reference = oracle_ecf_observables(groomed)
    for name, value in reference.items():
        assert got[f"j_{name}_mmdt"] == pytest.approx(value, rel=2e-5, abs=1e-12), name
    for n_axes in (1, 2, 3):
        axes = oracle_kt_exclusive(groomed, n_axes)
        for beta in (1, 2):
            expected = oracle_tau(groomed, axes, beta)
            assert got[f"j_tau{n_axes}_b{beta}_mmdt"] == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------------- invariances, degenerate jets

def test_azimuthal_rotation_and_longitudinal_boost_invariance():
    rng = np.random.default_rng(16)
    p4 = random_jet(rng, 40, rapidity=0.1, phi=0.05)   # straddles phi = 0 = 2 pi
    reference = sub.jet_substructure(p4).astype(np.float64)
    angle = 2.0
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    rotated = p4.copy()
    rotated[:, :2] = p4[:, :2] @ rotation.T
    np.testing.assert_allclose(sub.jet_substructure(rotated), reference, rtol=2e-5, atol=1e-6)

    rapidity_shift = 0.7                                # boost along z: only j_eta changes
    boosted = p4.copy()
    boosted[:, 2] = p4[:, 2] * math.cosh(rapidity_shift) + p4[:, 3] * math.sinh(rapidity_shift)
    boosted[:, 3] = p4[:, 3] * math.cosh(rapidity_shift) + p4[:, 2] * math.sinh(rapidity_shift)
    got = sub.jet_substructure(boosted).astype(np.float64)
    others = [i for i, name in enumerate(JET_FEATURES) if name != "j_eta"]
    np.testing.assert_allclose(got[others], reference[others], rtol=2e-4, atol=1e-6)
    assert got[COLUMN["j_eta"]] != pytest.approx(reference[COLUMN["j_eta"]], abs=0.1)


def test_single_particle_jet():
    p4 = np.array([p4_from(500.0, 0.4, 2.0)])
    got = features(p4)
    assert got["j_pt"] == pytest.approx(500.0, rel=1e-6)
    assert got["j_eta"] == pytest.approx(0.4, rel=1e-6)
    assert got["j_multiplicity"] == 1
    zero = [name for name in sub.SUBSTRUCTURE_FEATURES if name not in ("j_pt", "j_eta", "j_multiplicity")]
    for name in zero:
        assert got[name] == pytest.approx(0.0, abs=1e-3), name   # massless: all masses 0


@pytest.mark.parametrize("case", ["two", "three", "collinear", "beam_particle", "tiny_pt"])
def test_degenerate_jets_are_finite(case):
    base = [p4_from(100.0, 0.0, 1.0), p4_from(50.0, 0.1, 1.1), p4_from(20.0, -0.1, 0.9)]
    p4 = {
        "two": base[:2],
        "three": base,
        "collinear": [base[0], base[0], base[0]],
        "beam_particle": base + [[0.0, 0.0, 30.0, 30.0]],
        "tiny_pt": base + [p4_from(1e-12, 0.3, 1.2)],
    }[case]
    row = sub.jet_substructure(np.array(p4))
    assert np.all(np.isfinite(row))
    if case == "collinear":
        got = dict(zip(JET_FEATURES, row))
        assert got["j_c1_b1"] == 0 and got["j_c2_b1"] == 0 and got["j_tau1_b1"] == 0


def test_no_fastjet_banner_in_a_fresh_process():
    src = str(Path(sub.__file__).resolve().parents[2])
    code = (
        "import numpy as np; from jetlab.physics.substructure import jet_substructure as f; "
        "p = np.array([[10., 1., 3., 10.6], [5., -1., 2., 5.5], [7., 0.5, 1., 7.1]]); f(p); f(p)"
    )
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-W", "error", "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "FastJet" not in result.stdout and "FastJet" not in result.stderr
