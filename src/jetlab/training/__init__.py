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
  (``sample``, ``evaluate``), with :mod:`.point_sets` (the generators' data);
* the runs' settings, which load no torch (the ``jetlab`` command builds its flags from them):
  :mod:`.settings`, :mod:`.tagger_config`, :mod:`.generator_config`; :mod:`.optimizers`
  builds the optimizer and learning-rate schedule they name.

The names below but the settings are imported on first use (``jetlab.training.Engine``), so that importing
one of the settings modules does not load the engine and torch.
"""

from jetlab.training.generator_config import GeneratorConfig
from jetlab.training.settings import TrainSettings
from jetlab.training.tagger_config import TaggerTrainConfig

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


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from jetlab.training import (  # lazy: start-up (torch)  # lazy: start-up (torch)
        batches,
        checkpoint,
        engine,
        generator,
        strategies,
        tagger,
        tagger_eval,
        tasks,
    )

    for module in (batches, checkpoint, engine, generator, strategies, tagger, tagger_eval, tasks):
        if name in module.__all__:
            return getattr(module, name)
    raise AssertionError(f"{name} is in jetlab.training.__all__ but in none of its modules")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
