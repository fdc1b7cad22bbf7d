"""Who talks to whom in asynchronous master/worker training (:mod:`jetlab.training.strategies.asynchronous`).

With K MPI ranks and ``masters`` = M:

* M = 1 (flat, as in NNLO's default): rank 0 is the master, ranks 1…K−1 are workers; every
  worker exchanges with rank 0, so rank 0 receives the messages of all K−1 workers.
* M ≥ 2 (hierarchical): rank 0 is the top master, ranks 1…M are sub-masters ("relays"),
  ranks M+1…K−1 are workers, dealt round-robin to the sub-masters (worker j of W talks to
  sub-master 1 + j mod M). A sub-master serves its ≈ W/M workers from its own copy of the
  weights and exchanges with the top master once per round of its workers, so no rank
  receives more than max(M, ⌈W/M⌉) workers' traffic (M ≈ √W balances the two).

Workers are numbered 0…W−1 (``worker_index``): worker j trains on shard j of W.
"""

from __future__ import annotations

import dataclasses

from jetlab.errors import JetlabError

__all__ = ["Topology"]


@dataclasses.dataclass(frozen=True)
class Topology:
    """The ranks' roles and parents for ``world_size`` ranks and ``masters`` sub-masters."""

    world_size: int
    masters: int = 1

    def __post_init__(self) -> None:
        if self.masters < 1:
            raise JetlabError(f"--masters must be at least 1, got {self.masters}")
        needed = 2 if self.masters == 1 else 2 * self.masters + 1
        if self.world_size < needed:
            layout = ("a master and at least one worker" if self.masters == 1 else
                      f"a top master, {self.masters} sub-masters and at least one worker under each")
            raise JetlabError(f"asynchronous training with --masters {self.masters} needs at least {needed} processes "
                              f"({layout}), got {self.world_size}: launch with mpiexec -n {needed} or more")

    @property
    def relays(self) -> tuple[int, ...]:
        return tuple(range(1, self.masters + 1)) if self.masters > 1 else ()

    @property
    def workers(self) -> tuple[int, ...]:
        return tuple(range(1 + len(self.relays), self.world_size))

    def role(self, rank: int) -> str:
        """"master" (rank 0), "relay" (a sub-master) or "worker"."""
        if rank == 0:
            return "master"
        return "relay" if rank in self.relays else "worker"

    def worker_index(self, rank: int) -> int:
        return self.workers.index(rank)

    def parent(self, rank: int) -> int | None:
        if rank == 0:
            return None
        if rank in self.relays or not self.relays:
            return 0
        return self.relays[self.worker_index(rank) % len(self.relays)]

    def children(self, rank: int) -> tuple[int, ...]:
        if rank == 0 and self.relays:
            return self.relays
        return tuple(r for r in self.workers if self.parent(r) == rank)
