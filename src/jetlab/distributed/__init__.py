"""Training at scale: process groups from ``torchrun`` or ``mpiexec`` (gloo on CPU,
NCCL on GPU). The update rules that use them live in :mod:`jetlab.training.strategies`.
"""

from jetlab.distributed.env import (
    DistContext,
    detect_launcher,
    free_port,
    init_distributed,
)

__all__ = ["DistContext", "detect_launcher", "free_port", "init_distributed"]
