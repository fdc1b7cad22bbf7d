"""The (receiver, sender) pair grid of a jet, walked one block of receivers at a time.

JEDI-net's interaction step (:mod:`jetlab.models.jedinet_blocked`) and the Particle
Transformer's pair embedding (:mod:`jetlab.models.part`) both evaluate a small network on
every ordered pair ``(r, s)`` of the ``N`` particles of each jet. Materialising the whole
``(B, N, N, width)`` grid costs ``B·N²·width`` numbers (100 particles, width 64 and a batch
of 100: 256 MB of float32); these helpers cut it into blocks of receivers ``r0:r1`` so that
only ``(B, r1 - r0, N, width)`` exists at a time:

* :func:`grid_block_size` — receivers per block for a budget of grid entries,
* :func:`receiver_blocks` — the ``(r0, r1)`` ranges covering ``0:N``,
* :func:`edge_mask_block` — ``m_rs = mask_r mask_s [r != s]`` of one block.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

__all__ = ["DEFAULT_BLOCK_ELEMENTS", "edge_mask_block", "grid_block_size", "receiver_blocks"]

#: block budget: about this many grid entries (B·n_block·N·width) per block. CPU: 2^20
#: (4 MiB of float32) per intra-op thread, fastest single-threaded on a 2-core EPYC while
#: keeping the number of parallel regions (each ends in a barrier) low with more threads.
#: GPU: large, so that few kernels are launched.
DEFAULT_BLOCK_ELEMENTS = {"cpu": 1 << 20, "cuda": 1 << 25}


def grid_block_size(batch: int, n: int, width: int, device: torch.device, block_size: int | None = None) -> int:
    """Receivers per block: ``block_size`` when given, else as many as fit the device's budget
    (:data:`DEFAULT_BLOCK_ELEMENTS`).

    Args:
        batch: jets B in the batch.
        n: particles N per jet.
        width: width of the per-pair activations.
        device: where the grid is computed (the budget is per CPU thread, or one GPU's).
        block_size: a fixed block size (``None``: from the budget).

    Returns:
        The block size, in ``[1, n]`` when computed.

    Shapes:
        - the grid of one block: ``(batch, block_size, n, width)``
    """
    if block_size is not None:
        return max(1, int(block_size))
    per_receiver = max(1, batch * n * width)
    if device.type == "cpu":
        budget = DEFAULT_BLOCK_ELEMENTS["cpu"] * max(1, torch.get_num_threads())
    else:
        budget = DEFAULT_BLOCK_ELEMENTS["cuda"]
    return max(1, min(n, budget // per_receiver))


def receiver_blocks(n: int, block_size: int) -> Iterator[tuple[int, int]]:
    """``(r0, r1)`` for consecutive blocks of ``block_size`` receivers covering ``0:n``.

    Args:
        n: particles N.
        block_size: receivers per block.

    Returns:
        An iterator of ``(r0, r1)`` ranges.

    Shapes:
        - one block of receivers: ``r1 - r0 <= block_size``
    """
    block_size = max(1, min(int(block_size), n))
    for r0 in range(0, n, block_size):
        yield r0, min(n, r0 + block_size)


def edge_mask_block(mask: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
    """``m_rs = mask_r mask_s [r != s]`` for receivers ``r0:r1``.

    Args:
        mask: float mask of the real particles.
        r0: first receiver of the block.
        r1: one past the last receiver.

    Returns:
        The edge mask of the block (0 on the diagonal).

    Shapes:
        - mask: ``(batch, particles)``
        - returns: ``(batch, r1 - r0, particles)``
    """
    receivers = torch.arange(r0, r1, device=mask.device)[:, None]
    senders = torch.arange(mask.shape[1], device=mask.device)
    return (mask[:, r0:r1, None] * mask[:, None, :]).masked_fill(receivers == senders, 0)  # no in-place: exportable
