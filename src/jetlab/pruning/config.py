"""The settings of a prune run (:class:`PruneConfig`, saved as PRUNED/config.yaml;
:mod:`jetlab.pruning.run` runs it).

Apart from the run so that it loads no torch: the ``jetlab`` command builds ``tagger
prune``'s flags from it.
"""

from __future__ import annotations

import dataclasses

from jetlab.choices import PRUNING_SCOPES
from jetlab.errors import JetlabError
from jetlab.pruning.schedule import SCHEDULES, check_sparsity
from jetlab.training.settings import setting

__all__ = ["PruneConfig"]


@dataclasses.dataclass
class PruneConfig:
    """Everything that defines a prune run (saved as PRUNED/config.yaml)."""

    #: the trained run directory RUN (the positional argument)
    source: str = setting("", None)
    iterations: int = setting(7, "prune-and-retrain iterations", metavar="K")
    target_sparsity: float = setting(0.7, "fraction of the weight-matrix entries that are zero after the last "
                                          "iteration", metavar="S")
    schedule: str = setting("geometric", "sparsity per iteration: geometric (the same fraction of the remaining "
                                         "weights each time) or linear", choices=SCHEDULES,
                            flag="--sparsity-schedule")
    scope: str = setting("global", "rank the magnitudes of all weight matrices together (global) or each matrix "
                                   "on its own (layer)", choices=PRUNING_SCOPES)
    rewind: bool = setting(False, "reset the surviving weights and the biases to the run's initial values before "
                                  "each retraining (lottery-ticket rewinding)")
    l1: float = setting(0.0, "L1 penalty: add l1 * sum |W| over the weight matrices to the retraining loss",
                        metavar="LAMBDA")
    epochs_per_iteration: int = setting(10, "maximum retraining epochs per iteration", metavar="E")
    patience: int = setting(3, "stop an iteration after this many epochs without a better validation loss (0: never)")
    lr: float | None = setting(None, "retraining learning rate (default: the run's)", type=float)
    device: str = setting("cpu", "cpu or cuda", choices=("cpu", "cuda"), resumable=True)
    threads: int | None = setting(None, "torch CPU threads (default: torch's)", type=int, resumable=True)

    def validate(self, source: str = "options") -> None:
        def whole(name: str, minimum: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise JetlabError(f"{source}: {name.replace('_', '-')} must be an integer >= {minimum}, got {value!r}")

        whole("iterations", 1)
        whole("epochs_per_iteration", 1)
        whole("patience", 0)
        check_sparsity(self.target_sparsity, f"{source}: target-sparsity")
        if self.schedule not in SCHEDULES or self.scope not in PRUNING_SCOPES:
            raise JetlabError(f"{source}: schedule must be one of {', '.join(SCHEDULES)} and scope one of "
                              f"{', '.join(PRUNING_SCOPES)}, got {self.schedule!r}, {self.scope!r}")
        if not isinstance(self.l1, (int, float)) or self.l1 < 0:
            raise JetlabError(f"{source}: l1 must be >= 0, got {self.l1!r}")
        if self.lr is not None and not self.lr > 0:
            raise JetlabError(f"{source}: lr must be positive, got {self.lr}")
        if self.threads is not None:
            whole("threads", 1)
