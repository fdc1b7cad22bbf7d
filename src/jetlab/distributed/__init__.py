"""The machinery of training at scale; the update strategies that use it are in
:mod:`jetlab.training.strategies`.

* :mod:`jetlab.distributed.env`: process groups from ``torchrun`` or ``mpiexec`` (gloo on CPU,
  NCCL on GPU) for synchronous all-reduce (:mod:`jetlab.training.strategies.allreduce`).
* for the asynchronous master/worker algorithms over MPI point-to-point
  (:mod:`jetlab.training.strategies.asynchronous`: Downpour SGD, Elastic Averaging SGD, Gradient
  Energy Matching): the update rules in :mod:`~jetlab.distributed.rules`, the master's and
  sub-masters' loops in :mod:`~jetlab.distributed.serve`, messages in
  :mod:`~jetlab.distributed.transport`, sub-masters in :mod:`~jetlab.distributed.topology`.
* :mod:`jetlab.distributed.supervise`: surviving a dead rank under MPICH's ``mpiexec``.
* :mod:`jetlab.distributed.scaling`: a performance model past one machine.
"""

from jetlab.distributed.env import (
    DistContext,
    detect_launcher,
    free_port,
    init_distributed,
)

__all__ = ["DistContext", "detect_launcher", "free_port", "init_distributed"]
