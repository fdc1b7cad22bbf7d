"""Tests for jetlab.metrics.classifier_test (classifier two-sample test)."""

import numpy as np
import pytest
from test_generation_metrics import make_jets

from jetlab.errors import JetlabError
from jetlab.metrics.classifier_test import classifier_two_sample_test, particle_inputs

FAST = dict(batch_size=16, n_bootstrap=50, hyperparameters={"n_layers": 1})


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(31)
    return make_jets(rng, n_jets=160, n_particles=8), make_jets(rng, n_jets=160, n_particles=8)


def test_shifted_jets_are_told_apart(samples):
    (real, mask), _ = samples
    shifted = real.copy()
    shifted[..., 0] += np.where(mask, 0.3, 0.0)  # every particle 0.3 further in eta
    result = classifier_two_sample_test(real, shifted, real_mask=mask, generated_mask=mask,
                                        epochs=8, **FAST)
    assert result["auc"] > 0.95 and 0 < result["auc_std"] < 0.05
    assert (result["n_train"], result["n_test"], result["epochs"]) == (80, 80, 8)


def test_real_against_real_is_a_coin_toss_and_seeded(samples):
    # 40 epochs on 80 + 80 jets memorise the training half: only held-out scoring stays at 0.5
    (real, mask), (other, other_mask) = samples
    kwargs = dict(real_mask=mask, generated_mask=other_mask, epochs=40, seed=3, **FAST)
    result = classifier_two_sample_test(real, other, **kwargs)
    assert abs(result["auc"] - 0.5) < 3 * result["auc_std"] + 0.02
    assert 0.02 < result["auc_std"] < 0.1
    again = classifier_two_sample_test(real, other, **kwargs)
    assert again["auc"] == result["auc"] and again["auc_std"] == result["auc_std"]


def test_jedinet_and_time_budget(samples):
    (real, mask), (other, other_mask) = samples
    result = classifier_two_sample_test(real[:20], other[:20], real_mask=mask[:20],
                                        generated_mask=other_mask[:20], model="jedinet-sumo",
                                        epochs=3, max_seconds=0.0, n_bootstrap=5)
    assert result["epochs"] == 0 and result["model"] == "jedinet-sumo"
    assert 0.0 <= result["auc"] <= 1.0


def test_inputs_and_bad_arguments(samples):
    (real, mask), _ = samples
    inputs = particle_inputs(real, mask)
    assert inputs.shape == real.shape[:2] + (4,)
    np.testing.assert_allclose(inputs[mask][:, 3], np.log(real[mask][:, 2]), rtol=1e-6)
    assert np.all(inputs[~mask] == 0)
    with pytest.raises(JetlabError, match="unknown classifier"):
        classifier_two_sample_test(real, real, model="bdt")
    with pytest.raises(JetlabError, match="at least 4 jets"):
        classifier_two_sample_test(real[:3], real, real_mask=mask[:3], generated_mask=mask)
    with pytest.raises(JetlabError, match="particle slots"):
        classifier_two_sample_test(real, real[:, :5], real_mask=mask, generated_mask=mask[:, :5])


def test_repeats_average_classifiers_of_their_own_seeds(samples):
    (real, mask), (other, other_mask) = samples
    kwargs = dict(real_mask=mask, generated_mask=other_mask, epochs=3, **FAST)
    singles = [classifier_two_sample_test(real, other, seed=7 + k, **kwargs) for k in range(3)]
    result = classifier_two_sample_test(real, other, seed=7, repeats=3, **kwargs)
    aucs = [single["auc"] for single in singles]
    assert len(set(aucs)) == 3                   # each repeat its own split, initialisation and batches
    assert result["aucs"] == aucs and result["repeats"] == 3
    assert result["auc"] == pytest.approx(np.mean(aucs))
    assert result["auc_spread"] == pytest.approx(np.std(aucs, ddof=1))
    assert result["auc_std"] == pytest.approx(np.std(aucs, ddof=1) / np.sqrt(3))
    assert result["epochs"] == 3 and result["n_test"] == singles[0]["n_test"]
    assert classifier_two_sample_test(real, other, seed=7, repeats=1, **kwargs)["auc"] == aucs[0]
    with pytest.raises(JetlabError, match="repeats >= 1"):
        classifier_two_sample_test(real, other, repeats=0, **kwargs)
