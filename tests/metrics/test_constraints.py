"""Physical checks of a jet sample (Σ pT_rel, pT_rel > 0, multiplicity) against hand counts, in
``evaluate_generated``, and the particles generation drops (``jetlab fastsim evaluate`` counts them:
tests/cli/test_fastsim_evaluate_cli.py)."""

import numpy as np
import pytest

from jetlab.errors import JetlabError
from jetlab.metrics.constraints import physical_constraints
from jetlab.metrics.generation import evaluate_generated, format_metrics_table


def jets_by_hand():
    """3 jets of up to 4 particles: (pT_rel of the listed particles) = (0.5, 0.3, 0.2, 0.1),
    (0.6, -0.1), (0.4, 0.0, 0.3)."""
    pts = [[0.5, 0.3, 0.2, 0.1], [0.6, -0.1], [0.4, 0.0, 0.3]]
    particles = np.zeros((3, 4, 3))
    mask = np.zeros((3, 4), bool)
    for j, row in enumerate(pts):
        particles[j, :len(row), 2] = row
        particles[j, :len(row), 0] = 0.1 * np.arange(len(row))
        mask[j, :len(row)] = True
    return particles, mask


def test_physical_constraints_by_hand():
    particles, mask = jets_by_hand()
    result = physical_constraints(particles, mask)
    assert result["n_jets"] == 3
    assert result["sum_pt_rel"]["mean"] == pytest.approx((1.1 + 0.5 + 0.7) / 3)
    assert result["sum_pt_rel"]["max"] == pytest.approx(1.1)
    assert result["sum_pt_rel"]["frac_above_1"] == pytest.approx(1 / 3)
    # -0.1 and 0.0 are listed with pT_rel <= 0: 2 of 9 listed particles, in 2 of 3 jets
    assert result["nonpositive_pt"] == {"particles": 2, "fraction": pytest.approx(2 / 9),
                                        "jets_with_any": pytest.approx(2 / 3)}
    multiplicity = result["multiplicity"]
    assert (multiplicity["mean"], multiplicity["min"], multiplicity["max"]) == (pytest.approx(3.0), 2, 4)
    assert multiplicity["q50"] == 3.0 and multiplicity["frac_full"] == pytest.approx(1 / 3)
    assert "w1_multiplicity" not in result
    # the mask column layout gives the same numbers
    assert physical_constraints(np.concatenate([particles, mask[..., None]], -1)) == result
    # float32 round-off of a sum of exactly 1 is not "above 1"
    exact = np.full((1, 30, 3), 1 / 30, np.float32)
    assert physical_constraints(exact, np.ones((1, 30), bool))["sum_pt_rel"]["frac_above_1"] == 0.0


def test_distances_to_a_reference_by_hand():
    particles, mask = jets_by_hand()
    reference = np.zeros((2, 4, 3))
    reference[..., 2] = 0.25  # two full jets of sum pT_rel 1
    result = physical_constraints(particles, mask, reference=reference, reference_mask=np.ones((2, 4), bool))
    # multiplicities 4, 2, 3 against 4, 4: W1 = mean |sorted differences| = (0 + 2 + 1) / 3 on
    # matched quantiles; Σ pT_rel 1.1, 0.5, 0.7 against 1, 1
    assert result["w1_multiplicity"] == pytest.approx(1.0)
    assert result["w1_sum_pt_rel"] == pytest.approx((0.1 + 0.5 + 0.3) / 3)


def test_an_empty_sample_is_refused():
    with pytest.raises(JetlabError, match="at least one jet"):
        physical_constraints(np.zeros((0, 4, 3)), np.zeros((0, 4), bool))


def test_evaluate_generated_reports_the_checks_of_both_rows():
    rng = np.random.default_rng(5)
    n_jets, n_particles = 40, 8
    real = np.zeros((n_jets, n_particles, 3))
    real[..., :2] = rng.normal(0, 0.1, (n_jets, n_particles, 2))
    real[..., 2] = 0.9 / n_particles
    real_mask = np.ones((n_jets, n_particles), bool)
    generated = real[:20].copy()
    generated[:, :, 2] *= 1.5  # Σ pT_rel 1.35
    generated_mask = real_mask[:20].copy()
    generated_mask[:, 5:] = False  # 5 particles where real jets list 8
    result = evaluate_generated(real, generated, real_mask=real_mask, generated_mask=generated_mask,
                                num_batches=1, cov_mmd_samples=4, cov_mmd_batches=1, seed=2)
    checks = result["constraints"]
    assert checks["truth"]["multiplicity"]["frac_full"] == 1.0 and checks["truth"]["w1_multiplicity"] == 0.0
    assert checks["generated"]["multiplicity"]["mean"] == 5.0 and checks["generated"]["w1_multiplicity"] == 3.0
    assert checks["generated"]["sum_pt_rel"]["mean"] == pytest.approx(5 * 1.5 * 0.9 / 8)
    assert checks["truth"]["sum_pt_rel"]["frac_above_1"] == 0.0
    assert checks["generated"]["n_jets"] == checks["truth"]["n_jets"] == result["n_compared"]
    table = format_metrics_table(result)
    assert "physical checks: generated | truth" in table
    assert "multiplicity: mean [5%, 95%] / fraction full: 5 [5, 5] / 0 | 8 [8, 8] / 1" in table


def test_generation_drops_exactly_the_listed_particles_with_nonpositive_pt(trained_generator_run):
    from jetlab.training.generator_run import TrainedGenerator
    from jetlab.training.point_sets import postprocess_jets

    generator = TrainedGenerator.load(trained_generator_run)
    points, mask = generator.generate(16, seed=3, postprocess=False)
    dropped = int((mask & (points[..., 2] <= 0)).sum())
    assert dropped > 0  # the one-epoch GAN lists such particles
    kept, kept_mask = generator.generate(16, seed=3)
    expected, expected_mask = postprocess_jets(points, mask)
    np.testing.assert_array_equal(kept_mask, expected_mask)
    np.testing.assert_array_equal(kept, expected)
    assert int(mask.sum()) - int(kept_mask.sum()) == dropped
    assert physical_constraints(kept, kept_mask)["nonpositive_pt"]["particles"] == 0
