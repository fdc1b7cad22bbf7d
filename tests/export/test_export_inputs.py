"""The rebuilt test split of a run reproduces what training evaluated (RUN/predictions.npz)."""

import numpy as np
import pytest

from jetlab.errors import InputError
from jetlab.export.inputs import load_run_test_set, torch_probabilities


@pytest.mark.parametrize("model", ["dnn", "jedinet"])
def test_rebuilt_test_split_gives_the_runs_predictions(trained_run, model):
    run = trained_run(model)
    test = load_run_test_set(run)
    assert test.model_name == model and tuple(test.inputs) == test.input_keys
    with np.load(f"{run}/predictions.npz") as saved:
        np.testing.assert_array_equal(test.labels, saved["labels"])
        np.testing.assert_allclose(torch_probabilities(test.model, test), saved["probs"], rtol=0, atol=1e-6)
        first = load_run_test_set(run, max_jets=7)
        assert len(first) == 7
        np.testing.assert_allclose(torch_probabilities(first.model, first, batch_size=3), saved["probs"][:7], atol=1e-6)


def test_a_folder_without_a_model_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no trained model here"):
        load_run_test_set(tmp_path)
