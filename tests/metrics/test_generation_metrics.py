"""Tests for jetlab.metrics.generation (JetNet-style W1s, FD6, EMD, COV/MMD, evaluation)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg

from jetlab.errors import JetlabError
from jetlab.metrics import get_fpd_kpd_jet_features
from jetlab.metrics.generation import (
    METRICS,
    as_particles,
    coverage_mmd,
    emd,
    emd_matrix,
    evaluate_generated,
    fd6,
    format_metrics_table,
    fpd,
    frechet_distance,
    jet_mass,
    kpd,
    w1efp,
    w1m,
    w1nn,
    w1p,
)
from jetlab.physics.kinematics import nearest_neighbour_delta_r

REFERENCE = Path(__file__).parent / "data" / "efp_reference.npz"
EXACT = dict(num_eval_samples=None, num_batches=2, replace=False)  # whole samples, no bootstrap


def make_jets(rng, n_jets=40, n_particles=10, spread=0.1):
    particles = np.zeros((n_jets, n_particles, 3))
    n_real = rng.integers(2, n_particles + 1, n_jets)
    mask = np.arange(n_particles)[None] < n_real[:, None]
    particles[..., :2] = rng.normal(0, spread, (n_jets, n_particles, 2))
    pt = np.where(mask, rng.exponential(1.0, (n_jets, n_particles)), 0.0)
    particles[..., 2] = pt / pt.sum(1, keepdims=True)
    particles[~mask] = 0.0
    return particles, mask


@pytest.fixture
def jets():
    return make_jets(np.random.default_rng(11))


def test_jet_mass_two_particles_by_hand():
    pt1, pt2, eta1, eta2, phi1, phi2 = 0.3, 0.7, 0.1, -0.2, 0.25, -0.15
    particles = np.array([[[eta1, phi1, pt1], [eta2, phi2, pt2], [0.0, 0.0, 0.0]]])
    expected = np.sqrt(2 * pt1 * pt2 * (np.cosh(eta1 - eta2) - np.cos(phi1 - phi2)))
    assert jet_mass(particles)[0] == pytest.approx(expected, rel=1e-12)
    assert jet_mass(particles[:, :1])[0] == 0.0  # a single massless particle


def test_jet_mass_matches_pairwise_formula(jets):
    particles, mask = jets
    expected = []
    for jet, m in zip(particles, mask):
        eta, phi, pt = jet[m].T
        pairs = np.outer(pt, pt) * (np.cosh(eta[:, None] - eta) - np.cos(phi[:, None] - phi))
        expected.append(np.sqrt(pairs.sum()))
    np.testing.assert_allclose(jet_mass(particles, mask), expected, rtol=1e-9)


def test_mask_column_layout_and_torch_input(jets):
    particles, mask = jets
    with_column = np.concatenate([particles, mask[..., None].astype(float)], -1)
    got_particles, got_mask = as_particles(torch.from_numpy(with_column))
    np.testing.assert_array_equal(got_mask, mask)
    np.testing.assert_array_equal(got_particles, particles)
    # without a mask, all-zero rows are padding (JetNet exclude_zeros)
    np.testing.assert_array_equal(as_particles(particles)[1], mask)
    with pytest.raises(JetlabError, match="generated jets: expected particles of shape"):
        as_particles(np.zeros((3, 4, 5)), name="generated jets")


def test_w1_identical_samples_are_zero(jets):
    particles, mask = jets
    shuffled = np.random.default_rng(0).permutation(len(particles))
    for metric in (w1m, w1p, w1efp, w1nn):
        score = metric(particles, particles[shuffled], real_mask=mask,
                       generated_mask=mask[shuffled], **EXACT)
        assert score.mean == pytest.approx(0.0, abs=1e-15) and score.std == 0.0


def test_w1p_of_shifted_sample_is_the_shift(jets):
    particles, mask = jets
    shifted = particles.copy()
    shifted[..., 0] += 0.05
    eta, phi, pt = w1p(particles, shifted, real_mask=mask, generated_mask=mask,
                       per_feature=True, **EXACT)
    assert eta.mean == pytest.approx(0.05, rel=1e-9)
    assert phi.mean == pytest.approx(0.0, abs=1e-15) and pt.mean == pytest.approx(0, abs=1e-15)
    mean = w1p(particles, shifted, real_mask=mask, generated_mask=mask, **EXACT).mean
    assert mean == pytest.approx(0.05 / 3, rel=1e-9)
    # mass is invariant under a rapidity boost; scaling pT by c scales it by c
    assert w1m(particles, shifted, real_mask=mask, generated_mask=mask, **EXACT).mean \
        == pytest.approx(0.0, abs=1e-12)
    scaled = particles.copy()
    scaled[..., 2] *= 1.5
    expected = 0.5 * jet_mass(particles, mask).mean()
    assert w1m(particles, scaled, real_mask=mask, generated_mask=mask, **EXACT).mean \
        == pytest.approx(expected, rel=1e-9)


def test_nearest_neighbour_delta_r_by_hand():
    particles = np.zeros((3, 4, 3))
    particles[0, :3, :2] = [[0.0, 0.0], [0.03, 0.04], [0.3, 0.0]]
    particles[1, :2, :2] = [[0.0, 3.1], [0.0, -3.1]]  # across φ = ±π: ΔR = 2π − 6.2
    particles[2, 0, :2] = [0.1, 0.1]  # alone in its jet
    mask = np.zeros((3, 4), bool)
    mask[0, :3] = mask[1, :2] = mask[2, 0] = True
    particles[0, 3, :2] = [0.001, 0.0]  # padding next to a real particle: never a neighbour
    nearest = nearest_neighbour_delta_r(particles, mask, chunk=2)
    np.testing.assert_allclose(nearest[0, :3], [0.05, 0.05, np.hypot(0.27, 0.04)], rtol=1e-12)
    np.testing.assert_allclose(nearest[1, :2], 2 * np.pi - 6.2, rtol=1e-9)
    assert np.isnan(nearest[0, 3]) and np.isnan(nearest[1, 2:]).all() and np.isnan(nearest[2]).all()


def test_nearest_neighbour_delta_r_matches_a_loop(jets):
    particles, mask = jets
    expected = np.full(mask.shape, np.nan)
    for j, (jet, m) in enumerate(zip(particles, mask)):
        for i in np.flatnonzero(m):
            others = [np.hypot(*(jet[i, :2] - jet[k, :2])) for k in np.flatnonzero(m) if k != i]
            expected[j, i] = min(others)
    np.testing.assert_allclose(nearest_neighbour_delta_r(particles, mask, chunk=7), expected, rtol=1e-12)


def test_w1nn_of_a_spread_sample_is_the_mean_distance(jets):
    particles, mask = jets
    spread = particles.copy()
    spread[..., :2] *= 2.0  # every distance doubles: W1(X, 2X) = E[X]
    nearest = nearest_neighbour_delta_r(particles, mask)
    expected = np.nanmean(nearest)
    assert w1nn(particles, spread, real_mask=mask, generated_mask=mask, **EXACT).mean \
        == pytest.approx(expected, rel=1e-9)
    # W1-P's η and φ move too, but the pT_rel and the masks do not
    assert w1p(particles, spread, real_mask=mask, generated_mask=mask, per_feature=True, **EXACT)[2].mean == 0.0


def test_bootstrap_spread_and_seed(jets):
    particles, mask = jets
    other, other_mask = make_jets(np.random.default_rng(12), spread=0.2)
    first = w1p(particles, other, real_mask=mask, generated_mask=other_mask, num_batches=4, seed=1)
    again = w1p(particles, other, real_mask=mask, generated_mask=other_mask, num_batches=4, seed=1)
    assert first == again and first.std > 0 and first.mean > 0.01


def test_frechet_distance_closed_forms():
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    d1, d2 = np.array([1.0, 2.0, 0.5]), np.array([4.0, 1.0, 0.5])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 5.0 + np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2)
    assert frechet_distance(mu1, np.diag(d1), mu2, np.diag(d2)) == pytest.approx(expected)
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    sigma1, sigma2 = a @ a.T + 0.1 * np.eye(4), b @ b.T + 0.1 * np.eye(4)
    oracle = np.trace(sigma1 + sigma2 - 2 * np.real(linalg.sqrtm(sigma1 @ sigma2)))
    assert frechet_distance(mu1[:3].tolist() + [0.0], sigma1, mu1[:3].tolist() + [0.0], sigma2) \
        == pytest.approx(oracle, rel=1e-9)
    assert frechet_distance(mu1, np.diag(d1), mu1, np.diag(d1)) == pytest.approx(0, abs=1e-12)


def test_fd6_identical_and_shifted():
    rng = np.random.default_rng(4)
    features = rng.normal(size=(300, 3)) + 5
    shuffled = features[rng.permutation(300)]
    assert fd6(features, shuffled, normalise=False, **EXACT).mean == pytest.approx(0, abs=1e-9)
    shifted = features + np.array([1.0, 0.0, 2.0])
    assert fd6(features, shifted, normalise=False, **EXACT).mean == pytest.approx(5.0, rel=1e-9)


def test_w1efp_per_feature_averages_to_w1efp(jets):
    particles, mask = jets
    other, other_mask = make_jets(np.random.default_rng(12), spread=0.2)
    kwargs = dict(real_mask=mask, generated_mask=other_mask, num_eval_samples=20, seed=1)
    per_efp = w1efp(particles, other, per_feature=True, **kwargs)
    assert len(per_efp) == 5 and all(s.mean > 0 for s in per_efp)
    assert np.mean([s.mean for s in per_efp]) == pytest.approx(w1efp(particles, other, **kwargs).mean)


def test_emd_translation_is_the_distance(jets):
    particles, mask = jets
    jet, m = particles[0], mask[0]
    moved = jet.copy()
    moved[m, 0] += 0.03
    moved[m, 1] -= 0.04
    assert emd(jet, moved, m, m) == pytest.approx(0.05, rel=1e-9)
    assert emd(jet, moved, m, m, norm=True) == pytest.approx(0.05, rel=1e-9)
    assert emd(jet, moved, m, m, radius=0.5) == pytest.approx(0.1, rel=1e-9)


def test_emd_unbalanced_by_hand():
    a = np.array([[0.0, 0.0, 1.0]])
    b = np.array([[0.3, 0.4, 0.6]])
    # 0.6 moved by 0.5, the missing 0.4 costs 1 per unit
    assert emd(a, b) == pytest.approx(0.6 * 0.5 + 0.4)
    assert emd(b, a) == pytest.approx(0.7)
    assert emd(a, b, norm=True) == pytest.approx(0.5)
    assert emd(a, np.zeros((0, 3))) == pytest.approx(1.0)


def test_emd_matches_energyflow_reference():
    reference = np.load(REFERENCE)
    particles, mask = reference["particles"], reference["mask"]
    got = emd_matrix(particles[:10], particles[10:20], mask[:10], mask[10:20])
    np.testing.assert_allclose(got, reference["emd"], rtol=1e-9)
    got = emd_matrix(particles[:10], particles[10:20], mask[:10], mask[10:20], norm=True)
    np.testing.assert_allclose(got, reference["emd_normed"], rtol=1e-9)


def test_coverage_mmd_identical_sets(jets):
    particles, mask = jets
    particles, mask = particles[:15], mask[:15]
    cov, mmd = coverage_mmd(particles, particles[::-1], real_mask=mask,
                            generated_mask=mask[::-1], **EXACT)
    assert cov.mean == 1.0 and mmd.mean == pytest.approx(0.0, abs=1e-12)


def test_coverage_mmd_by_hand(jets):
    particles, mask = jets
    real, real_mask = particles[:3], mask[:3]
    generated = np.repeat(particles[:1], 3, axis=0)
    generated_mask = np.repeat(mask[:1], 3, axis=0)
    cov, mmd = coverage_mmd(real, generated, real_mask=real_mask, generated_mask=generated_mask,
                            **EXACT)
    assert cov.mean == pytest.approx(1 / 3)
    expected = np.mean([emd(real[i], particles[0], real_mask[i], mask[0]) for i in range(3)])
    assert mmd.mean == pytest.approx(expected, rel=1e-12)


def test_coverage_mmd_one_particle_jets_by_hand():
    # one particle of pT 1 per jet, so EMD = distance in eta. real at 0, 1, 0.3; generated at
    # 0, 1, 0.1: generated 0.1 is nearest to real 0, so real 0.3 is not covered (COV 2/3);
    # real 0.3's nearest generated jet is at 0.1 (MMD (0 + 0 + 0.2) / 3)
    def one_particle(etas):
        return np.array([[[eta, 0.0, 1.0]] for eta in etas])

    cov, mmd = coverage_mmd(one_particle([0.0, 1.0, 0.3]), one_particle([0.0, 1.0, 0.1]), **EXACT)
    assert cov.mean == pytest.approx(2 / 3) and mmd.mean == pytest.approx(0.2 / 3)


def test_negative_pt_rejected(jets):
    particles, mask = jets
    bad = particles.copy()
    bad[0, 0, 2] = -0.1
    with pytest.raises(JetlabError, match="generated jets: 1 particles have negative pT"):
        coverage_mmd(particles, bad, real_mask=mask, generated_mask=mask)


def test_evaluate_generated_reports_both_rows():
    rng = np.random.default_rng(21)
    real, real_mask = make_jets(rng, n_jets=60)
    generated = real[:30].copy()
    generated[..., 0] += np.where(real_mask[:30], 0.2, 0.0)
    result = evaluate_generated(real, generated, real_mask=real_mask,
                                generated_mask=real_mask[:30], num_batches=2,
                                cov_mmd_samples=8, cov_mmd_batches=2, seed=3)
    assert set(result["generated"]) == set(METRICS) - {"classifier_auc"} == set(result["truth"])
    assert (result["n_real"], result["n_generated"], result["n_reference"], result["n_truth"]) \
        == (60, 30, 30, 30)
    generated_eta = result["generated"]["w1p_eta"]["mean"]
    truth_eta = result["truth"]["w1p_eta"]["mean"]
    assert 0.15 < generated_eta < 0.25 and truth_eta < 0.1
    assert result["generated"]["fd6"]["mean"] >= 0 and 0 < result["truth"]["cov"]["mean"] <= 1
    assert result["generated"]["w1efp"]["mean"] == pytest.approx(
        np.mean([result["generated"][f"w1efp_{k}"]["mean"] for k in range(5)]))
    # JetNet's FPD/KPD of the reference half A against the generated jets, sizes capped
    half_a = np.random.default_rng(3).permutation(60)[:30]
    features_a = get_fpd_kpd_jet_features(np.where(real_mask[half_a, :, None], real[half_a], 0))
    features_gen = get_fpd_kpd_jet_features(np.where(real_mask[:30, :, None], generated, 0))
    assert result["generated"]["fpd"]["mean"] == pytest.approx(fpd(features_a, features_gen)[0])
    assert result["generated"]["kpd"]["mean"] == pytest.approx(kpd(features_a, features_gen)[0])
    # W1-NN of A against the generated jets, with the row's draws (seed + 1 for the generated row)
    assert result["generated"]["w1nn"]["mean"] == pytest.approx(w1nn(
        real[half_a], generated, real_mask=real_mask[half_a], generated_mask=real_mask[:30], num_eval_samples=30,
        num_batches=2, seed=(4, 5)).mean)
    settings = result["settings"]
    assert settings["w1_eval_samples"] == 30 and settings["cov_mmd_eval_samples"] == 8
    assert settings["fpd"]["max_samples"] == 30 and settings["kpd"]["batch_size"] == 30
    assert any("W1s and FD6 on batches of 30 jets" in note for note in result["notes"])
    table = format_metrics_table(result)
    assert "W1-EFP" in table and "real vs real" in table and "FPD (JetNet" in table
    assert "KPD: 10 batches of 30" in table and "note: W1s and FD6" in table
    assert f"{generated_eta:.4g}" in table
    again = evaluate_generated(real, generated, real_mask=real_mask,
                               generated_mask=real_mask[:30], num_batches=2,
                               cov_mmd_samples=8, cov_mmd_batches=2, seed=3)
    assert again == result


def test_truth_and_generated_rows_use_the_same_number_of_jets():
    rng = np.random.default_rng(22)
    real, real_mask = make_jets(rng, n_jets=20)
    generated, generated_mask = make_jets(rng, n_jets=25)
    kwargs = dict(num_batches=2, cov_mmd_samples=4, cov_mmd_batches=1, seed=1)
    result = evaluate_generated(real, generated, real_mask=real_mask,
                                generated_mask=generated_mask, **kwargs)
    assert result["n_compared"] == 10 and result["settings"]["w1_eval_samples"] == 10
    same = evaluate_generated(real, generated[:10], real_mask=real_mask,
                              generated_mask=generated_mask[:10], **kwargs)
    assert same["generated"] == result["generated"] and same["truth"] == result["truth"]


def test_evaluate_generated_with_the_classifier_test():
    rng = np.random.default_rng(23)
    real, real_mask = make_jets(rng, n_jets=48)
    shifted = real.copy()
    shifted[..., 0] += np.where(real_mask, 0.5, 0.0)
    result = evaluate_generated(real, shifted, real_mask=real_mask, generated_mask=real_mask,
                                num_batches=1, cov_mmd_samples=4, cov_mmd_batches=1,
                                classifier=dict(epochs=15, n_bootstrap=20, batch_size=8,
                                                hyperparameters={"n_layers": 1}))
    assert result["generated"]["classifier_auc"]["mean"] > 0.9
    assert result["truth"]["classifier_auc"]["mean"] < 0.8
    assert result["settings"]["classifier"]["n_test"] == 12
    assert "classifier: garnet, 12 + 12 training" in format_metrics_table(result)


def test_too_few_jets_for_the_classifier_test_skip_it_and_say_so():
    rng = np.random.default_rng(24)
    real, real_mask = make_jets(rng, n_jets=6)  # truth halves of 3 jets: fewer than the test takes
    result = evaluate_generated(real, real, real_mask=real_mask, generated_mask=real_mask, num_batches=1,
                                cov_mmd_samples=2, cov_mmd_batches=1, classifier=dict(epochs=1))
    assert "classifier_auc" not in result["generated"] and "classifier_auc" not in result["truth"]
    assert any(note.startswith("classifier test skipped: it needs 4 jets") for note in result["notes"])


def test_evaluate_generated_needs_enough_jets(jets):
    particles, mask = jets
    with pytest.raises(JetlabError, match="at least 4 jets"):
        evaluate_generated(particles[:3], particles, real_mask=mask[:3], generated_mask=mask)


def test_progress_bar_does_not_change_result(jets, capsys, monkeypatch):
    monkeypatch.delenv("JETLAB_NO_PROGRESS", raising=False)  # conftest silences bars; this test wants one
    particles, mask = jets
    kwargs = dict(real_mask=mask[:6], generated_mask=mask[6:12], num_eval_samples=4,
                  num_batches=2, seed=5)
    quiet = coverage_mmd(particles[:6], particles[6:12], **kwargs)
    capsys.readouterr()
    shown = coverage_mmd(particles[:6], particles[6:12], progress=True, **kwargs)
    assert quiet == shown
    assert "COV/MMD" in capsys.readouterr().err
