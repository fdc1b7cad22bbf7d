"""Iterative magnitude pruning of jet taggers (the hls4ml recipe, arXiv:1804.06913).

* :mod:`jetlab.models.weights` (below training, which needs them too) — which parameters are
  weight matrices, exact-zero counting (:func:`count_zeros`), masks folded into weights, the
  L1 norm; :mod:`.weights` — the sparsity of a model file (:func:`model_file_sparsity`);
* :mod:`.schedule` — the sparsity reached after each iteration (geometric, linear);
* :mod:`.masks` — magnitude masks (global or per-layer scope, ``torch.nn.utils.prune``),
  ``prune.remove``, rewinding to the run's initial weights;
* :mod:`.run` — ``jetlab tagger prune``: prune, retrain with the training engine, repeat;
  :mod:`.config` — its settings, which load no torch (``jetlab tagger prune --help``).

The names below but the settings and schedules are imported on first use, so that
importing :mod:`.config` does not load torch.
"""

from jetlab.pruning.config import PruneConfig
from jetlab.pruning.schedule import SCHEDULES, sparsity_schedule

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


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from jetlab.models import weights as model_weights  # lazy: start-up (torch)
    from jetlab.pruning import masks, run, weights  # lazy: start-up (torch)

    for module in (model_weights, masks, run, weights):
        if name in module.__all__:
            return getattr(module, name)
    raise AssertionError(f"{name} is in jetlab.pruning.__all__ but in none of its modules")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
