"""Sparsity schedules of iterative magnitude pruning (Han et al., arXiv:1506.02626; the hls4ml
jet-tagging recipe, Duarte et al., arXiv:1804.06913): the sparsity ``s_k`` reached after
iteration ``k = 1..K``, reaching the target ``s`` at ``K``::

    geometric   s_k = 1 − (1 − s)^{k/K}      every iteration removes the same fraction
                                             (1 − (1 − s)^{1/K}) of the weights still left
    linear      s_k = s · k / K              every iteration removes the same number of weights
"""

from __future__ import annotations

import math

from jetlab.errors import JetlabError

__all__ = ["SCHEDULES", "check_sparsity", "sparsity_schedule"]

SCHEDULES = ("geometric", "linear")


def check_sparsity(target: float, what: str = "target sparsity") -> float:
    """``target`` as a float in (0, 1), else :class:`JetlabError`."""
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target < 1:
        raise JetlabError(f"{what} must be in (0, 1) (a fraction of the weights), got {target!r}")
    return float(target)


def sparsity_schedule(target: float, iterations: int, kind: str = "geometric") -> list[float]:
    """``[s_1, ..., s_K]`` (module docstring); ``s_K == target`` exactly."""
    target = check_sparsity(target)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise JetlabError(f"iterations must be a positive integer, got {iterations!r}")
    if kind == "geometric":
        steps = [1 - math.pow(1 - target, k / iterations) for k in range(1, iterations)]
    elif kind == "linear":
        steps = [target * k / iterations for k in range(1, iterations)]
    else:
        raise JetlabError(f"unknown pruning schedule {kind!r}; known: {', '.join(SCHEDULES)}")
    return [*steps, target]
