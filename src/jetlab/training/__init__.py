"""Training: one engine for every task, and the recipes behind the CLI.

* :mod:`.engine` — the loop (epochs, sharded batches, update strategy, schedules, early
  stopping, divergence check, atomic checkpoints, exact resume, progress, history);
* ``tasks`` (:mod:`.tasks.base`) — what is trained: classification, VAE, GAN;
* :mod:`.strategies` — how gradients become updates (local, synchronous all-reduce; the
  asynchronous MPI algorithms; the machinery they run on is :mod:`jetlab.distributed`);
* :mod:`.batches`, :mod:`.checkpoint`, :mod:`.settings` (the shared config fields),
  :mod:`.run_dir` (run-directory rules and the process session);
* recipes: :mod:`.tagger` (``jetlab tagger train``), :mod:`.tagger_eval` (``evaluate``,
  ``compare``), :mod:`.generator` (``jetlab fastsim train``), :mod:`.generator_run`
  (``sample``, ``evaluate``), with :mod:`.point_sets` (the generators' data).
"""

from jetlab.training.batches import DatasetSource, ShardedBatches, TensorSource
from jetlab.training.checkpoint import load_checkpoint, save_checkpoint
from jetlab.training.engine import Engine, FitResult
from jetlab.training.generator import GeneratorConfig, train_generator
from jetlab.training.settings import TrainSettings
from jetlab.training.strategies import LocalUpdate, SynchronousAllReduce, UpdateStrategy, make_strategy
from jetlab.training.tagger import TaggerTrainConfig, load_tagger, train_tagger
from jetlab.training.tagger_eval import compare_runs, evaluate_tagger, predict_probabilities
from jetlab.training.tasks import ClassifyTask, GANTask, Task, VAETask

__all__ = [
    "ClassifyTask",
    "DatasetSource",
    "Engine",
    "FitResult",
    "GANTask",
    "GeneratorConfig",
    "LocalUpdate",
    "ShardedBatches",
    "SynchronousAllReduce",
    "TaggerTrainConfig",
    "Task",
    "TensorSource",
    "TrainSettings",
    "UpdateStrategy",
    "VAETask",
    "compare_runs",
    "evaluate_tagger",
    "load_checkpoint",
    "load_tagger",
    "make_strategy",
    "predict_probabilities",
    "save_checkpoint",
    "train_generator",
    "train_tagger",
]
