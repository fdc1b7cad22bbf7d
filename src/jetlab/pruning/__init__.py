"""Iterative magnitude pruning of jet taggers (the hls4ml recipe, arXiv:1804.06913).

* :mod:`jetlab.models.weights` (below training, which needs them too) — which parameters are
  weight matrices, exact-zero counting (:func:`count_zeros`), masks folded into weights, the
  L1 norm; :mod:`.weights` — the sparsity of a model file (:func:`model_file_sparsity`);
* :mod:`.schedule` — the sparsity reached after each iteration (geometric, linear);
* :mod:`.masks` — magnitude masks (global or per-layer scope, ``torch.nn.utils.prune``),
  ``prune.remove``, rewinding to the run's initial weights;
* :mod:`.run` — ``jetlab tagger prune``: prune, retrain with the training engine, repeat.
"""

from jetlab.models.weights import count_zeros, fold_masks, prunable_weights, weight_l1_norm
from jetlab.pruning.masks import SCOPES, initial_state, make_permanent, prune_by_magnitude, rewind
from jetlab.pruning.run import AUC_TOLERANCE, PruneConfig, prune_tagger
from jetlab.pruning.schedule import SCHEDULES, sparsity_schedule
from jetlab.pruning.weights import model_file_sparsity

__all__ = [
    "AUC_TOLERANCE",
    "SCHEDULES",
    "SCOPES",
    "PruneConfig",
    "count_zeros",
    "fold_masks",
    "initial_state",
    "make_permanent",
    "model_file_sparsity",
    "prunable_weights",
    "prune_by_magnitude",
    "prune_tagger",
    "rewind",
    "sparsity_schedule",
    "weight_l1_norm",
]
