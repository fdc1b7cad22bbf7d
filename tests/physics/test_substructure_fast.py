"""The compiled substructure path against the numpy + FastJet reference (the oracle), on real
Pythia jets and on synthetic corner cases."""

from __future__ import annotations

import numpy as np
import pytest

from jetlab.io.layout import JET_FEATURES
from jetlab.physics import substructure as sub
from jetlab.physics.substructure_fast import fast_path_applies


@pytest.fixture(scope="module")
def pythia_jets():
    """Constituents of real Pythia 8 + FastJet jets: gluon, W and top, ~15 each."""
    from jetlab.data.generate import JetGenerator

    jets = []
    for jet_class in ("g", "w", "t"):
        generator = JetGenerator(jet_class, 30)
        generator.pythia.rndm.init(2024)
        found = []
        while len(found) < 15:
            if generator.pythia.next():
                found += [p4 for p4, _ in generator.matched_jets(generator.pythia.event)]
        jets += found[:15]
    return jets


def assert_same_row(p4, rtol=1e-6):
    fast = sub.jet_substructure(p4).astype(np.float64)
    reference = sub.jet_substructure_reference(p4).astype(np.float64)
    bad = ~np.isclose(fast, reference, rtol=rtol, atol=1e-12)
    assert not bad.any(), {JET_FEATURES[i]: (fast[i], reference[i]) for i in np.flatnonzero(bad)}


def test_compiled_path_equals_reference_on_pythia_jets(pythia_jets):
    assert len(pythia_jets) == 45
    assert np.mean([len(p4) for p4 in pythia_jets]) > 40       # real multiplicities, not toys
    for p4 in pythia_jets:
        assert fast_path_applies(p4)
        assert_same_row(p4)


def test_compiled_path_is_what_jet_substructure_uses(pythia_jets):
    p4 = pythia_jets[0]
    row = sub.jet_substructure(p4)
    np.testing.assert_array_equal(row, sub.jet_substructure(p4, compiled=True))
    # the ECF columns are summed differently (float64 in one pass vs float32 chunks): not bitwise equal
    assert not np.array_equal(row, sub.jet_substructure(p4, compiled=False))


@pytest.mark.parametrize("n", [2, 3, 4, 7, 31, 120])
def test_compiled_path_equals_reference_on_synthetic_jets(n):
    rng = np.random.default_rng(n)
    pt = rng.exponential(20.0, n) + 0.5
    rapidity, phi = rng.normal(0.2, 0.3, n), rng.normal(0.05, 0.3, n)   # straddles phi = 0
    mass = rng.choice([0.0, 0.14], n)
    mt = np.hypot(pt, mass)
    p4 = np.stack([pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(rapidity), mt * np.cosh(rapidity)], axis=1)
    assert_same_row(p4)


def test_jets_outside_the_compiled_path_use_the_reference():
    one = np.array([[10.0, 1.0, 3.0, 10.6]])
    beam = np.array([[10.0, 1.0, 3.0, 10.6], [5.0, -1.0, 2.0, 5.5], [0.0, 0.0, 30.0, 30.0]])
    for p4 in (one, beam):
        assert not fast_path_applies(p4)
        np.testing.assert_array_equal(sub.jet_substructure(p4), sub.jet_substructure_reference(p4))
