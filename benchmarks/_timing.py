"""Timing helper shared by the benchmark scripts (run as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import time


def timed(function, repeats: int, device) -> float:
    """Mean seconds per call of ``function()`` over ``repeats`` calls after one warm-up,
    synchronising the GPU around the timed calls on CUDA."""
    function()  # warm-up
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats
