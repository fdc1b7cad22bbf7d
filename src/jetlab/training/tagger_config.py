"""The settings of a tagger training run (:class:`TaggerTrainConfig`, saved as RUN/config.yaml).

Apart from the recipe (:mod:`jetlab.training.tagger`) so that it loads no torch: the
``jetlab`` command builds ``tagger train``'s and ``hpo run``'s flags from it.
"""

from __future__ import annotations

import dataclasses

from jetlab.errors import JetlabError
from jetlab.training.settings import TrainSettings, setting, validate_settings

__all__ = ["TaggerTrainConfig"]


@dataclasses.dataclass
class TaggerTrainConfig(TrainSettings):
    """Everything that defines a tagger training run (saved as RUN/config.yaml)."""

    model: str = setting("jedinet", "tagger: jedinet, jedinet-sumo, garnet, dnn, cnn, gru, particlenet, "
                                      "particlenet-lite, part, part-small, jedinet-linear, or your own: FILE.py:Class, "
                                      "package.module:Class (docs: Your own model)", metavar="NAME")
    #: a user's model (``--model FILE.py:Class``): its spec, file, class, SHA-256 and task, recorded at the
    #: start of training (:func:`jetlab.models.registry.model_code_record`); empty for a built-in model
    model_code: dict = setting(help=None, factory=dict)
    data: str | None = setting(None, "jet files (directory or file); default: the cached default set, generated "
                                     "on first use", type=str, metavar="DIR")
    particles: int = setting(30, "particles per jet", metavar="N")
    #: model hyperparameters overriding the model's defaults (``--hp KEY=VALUE``)
    hparams: dict = setting(help=None, factory=dict)
    weight_decay: float = setting(0.0, "weight decay (L2) of the optimizer")
    l1: float = setting(0.0, "L1 penalty: add l1 * sum |W| over the weight matrices to the training loss (the hls4ml "
                             "recipe trains with it before pruning)", metavar="LAMBDA")
    #: DataLoader workers, used only when a split is too big for memory
    num_workers: int = setting(0, "processes reading batches for splits read from disk (DataLoader workers)",
                               resumable=True, flag="--workers", metavar="K")
    max_memory_gb: float = setting(4.0, "hold splits in memory up to this size (GB), else read batches from disk",
                                   resumable=True)

    def validate(self, source: str = "options") -> None:
        from jetlab.models.registry import check_model_name  # lazy: start-up (torch)

        validate_settings(self, source)
        check_model_name(self.model, self.model_code, "classify")
        if not isinstance(self.particles, int) or self.particles < 1:
            raise JetlabError(f"{source}: particles must be at least 1, got {self.particles!r}")
        if not isinstance(self.hparams, dict) or not isinstance(self.model_code, dict):
            raise JetlabError(f"{source}: hparams and model_code must be mappings, got {self.hparams!r}, "
                              f"{self.model_code!r}")
        if self.weight_decay < 0 or self.l1 < 0 or self.num_workers < 0 or self.max_memory_gb < 0:
            raise JetlabError(f"{source}: weight-decay, l1, num-workers and max-memory-gb must be >= 0")
