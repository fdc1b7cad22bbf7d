"""Training loops: the generic supervised loop with exact resume (:mod:`.trainer`),
checkpoints (:mod:`.checkpoint`), update strategies for one process or data-parallel
all-reduce (:mod:`.strategies`), and the jet-tagger glue behind ``jetlab tagger``
(:mod:`.tagger`).
"""

from jetlab.training.checkpoint import load_checkpoint, save_checkpoint
from jetlab.training.strategies import (
    LocalUpdate,
    SynchronousAllReduce,
    UpdateStrategy,
    make_strategy,
)
from jetlab.training.tagger import (
    TaggerTrainConfig,
    compare_runs,
    evaluate_tagger,
    load_tagger,
    predict_probabilities,
    train_tagger,
)
from jetlab.training.trainer import (
    DatasetSource,
    FitResult,
    ShardedBatches,
    TensorSource,
    Trainer,
)

__all__ = [
    "DatasetSource",
    "FitResult",
    "LocalUpdate",
    "ShardedBatches",
    "SynchronousAllReduce",
    "TaggerTrainConfig",
    "TensorSource",
    "Trainer",
    "UpdateStrategy",
    "compare_runs",
    "evaluate_tagger",
    "load_checkpoint",
    "load_tagger",
    "make_strategy",
    "predict_probabilities",
    "save_checkpoint",
    "train_tagger",
]
