"""Process-group set-up for data-parallel training, whichever launcher started us.

Launchers and what they tell each process:

* ``torchrun --standalone --nproc_per_node=K -m jetlab ...``: ``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` (the ``env://`` rendezvous).
* ``mpiexec -n K python -m jetlab ...`` (MPICH hydra): ``PMI_RANK``, ``PMI_SIZE``
  (Open MPI: ``OMPI_COMM_WORLD_RANK`` / ``_SIZE`` / ``_LOCAL_RANK``). There is no
  rendezvous address, so rank 0 picks its host name and a free TCP port and broadcasts
  them over MPI (``mpi4py``); every rank then joins the same ``env://`` group.
  Inside :func:`mpi_group` (a hyperparameter search training one trial per group of
  ranks) the group is an mpi4py sub-communicator instead of the whole world: its ranks
  rendezvous among themselves, on a fresh port each time.
* nothing: a single process, no process group.

The backend is ``nccl`` when training on CUDA and ``gloo`` otherwise.
:func:`init_distributed` returns a :class:`DistContext` that the trainer and the update
strategies use (rank, world size, device, ``is_main``, collective helpers).

The asynchronous strategies (``collective=False``; :mod:`jetlab.training.strategies.asynchronous`)
need no process group: their ranks talk over MPI point-to-point, and the context carries the
MPI communicator (``comm``) for the few start-up collectives (barrier, broadcast).
Under mpiexec SIGUSR1 (a rank died) is handled from here on (:mod:`jetlab.distributed.supervise`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import socket
import sys
from typing import Any

from jetlab.distributed.supervise import WATCH
from jetlab.errors import JetlabError

__all__ = ["DistContext", "detect_launcher", "init_distributed", "free_port", "mpi_group", "relaunch_prefix"]

#: the mpi4py communicator that init_distributed forms its group from (None: the world); see mpi_group
_GROUP_COMM = None


def _env_int(*names: str) -> int | None:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            return int(value)
    return None


def detect_launcher() -> tuple[str, int, int, int]:
    """``(launcher, rank, world_size, local_rank)`` from the environment.

    ``launcher`` is ``"torchrun"``, ``"mpi"`` or ``"none"``.
    """
    world = _env_int("WORLD_SIZE")
    if world is not None and _env_int("RANK") is not None:
        return "torchrun", _env_int("RANK"), world, _env_int("LOCAL_RANK") or 0
    world = _env_int("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE")
    if world is not None:
        rank = _env_int("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK") or 0
        local = _env_int("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK")
        return "mpi", rank, world, rank if local is None else local
    return "none", 0, 1, 0


def relaunch_prefix() -> str:
    """The launcher part of a command that reruns this job the way it was started (for the
    "continue with ... --resume" hints): ``""`` for one process, else e.g.
    ``"mpiexec -disable-auto-cleanup -n 3 python -m "``, to be followed by ``jetlab ...``."""
    launcher, _, world, _ = detect_launcher()
    if launcher == "torchrun":
        per_node = _env_int("LOCAL_WORLD_SIZE") or world
        if per_node == world:
            return f"torchrun --standalone --nproc_per_node={world} -m "
        return f"torchrun --nnodes={world // per_node} --nproc_per_node={per_node} <rendezvous options> -m "
    if launcher == "mpi":
        hydra = _env_int("PMI_SIZE") is not None  # MPICH's mpiexec; Open MPI's has no -disable-auto-cleanup
        return f"mpiexec {'-disable-auto-cleanup ' if hydra else ''}-n {world} {sys.executable} -m "
    return ""


def free_port() -> int:
    """A TCP port that was free a moment ago (bind to port 0, read it back)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class DistContext:
    """Who this process is in the data-parallel group.

    ``device`` is the torch device this rank computes on (``cuda:<local_rank>`` with NCCL).
    With ``world_size == 1`` and ``initialized False`` every collective is the identity.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "none"
    backend: str | None = None
    device: str = "cpu"
    initialized: bool = False
    #: the MPI communicator of an asynchronous job (no torch.distributed group), else None
    comm: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.initialized and self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()
        elif self.comm is not None:
            self.comm.Barrier()

    def all_reduce_sum(self, values):
        """Sum a float64 tensor (or list of floats) over ranks; returns a tensor."""
        import torch

        tensor = torch.as_tensor(values, dtype=torch.float64)
        if self.distributed:
            import torch.distributed as dist

            # NCCL reduces device tensors only; gloo the CPU ones
            on = tensor.to(self.device) if self.backend == "nccl" else tensor
            dist.all_reduce(on, op=dist.ReduceOp.SUM)
            tensor = on.cpu()
        return tensor

    def broadcast_object(self, obj, src: int = 0):
        if self.comm is not None and not self.distributed:
            return self.comm.bcast(obj, root=src)
        if not self.distributed:
            return obj
        import torch.distributed as dist

        holder = [obj]
        dist.broadcast_object_list(holder, src=src)
        return holder[0]

    def shutdown(self) -> None:
        if self.initialized:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.initialized = False


@contextlib.contextmanager
def mpi_group(comm):
    """Within the block, :func:`init_distributed` (and so every training recipe) forms its
    process group from the mpi4py communicator ``comm`` (e.g. ``COMM_WORLD.Split(...)``)
    instead of the launcher's whole world: rank and world size are those in ``comm``."""
    global _GROUP_COMM
    previous, _GROUP_COMM = _GROUP_COMM, comm
    try:
        yield comm
    finally:
        _GROUP_COMM = previous


def _mpi_world():
    """The communicator ranks train in: the :func:`mpi_group` one, else ``COMM_WORLD``."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise JetlabError(
            "launched by mpiexec but mpi4py is not installed; run `pip install mpi4py mpich` "
            "(or launch with torchrun instead)"
        ) from None
    return MPI.COMM_WORLD if _GROUP_COMM is None else _GROUP_COMM


def _mpi_rendezvous() -> None:
    """Set MASTER_ADDR/MASTER_PORT on every rank of the training communicator from its rank 0's
    choice. A sub-communicator (:func:`mpi_group`) ignores the variables already set (by the user,
    or by its previous group): its rank 0 offers its own host and a fresh port, as groups and
    successive trials may not share one."""
    given = os.environ if _GROUP_COMM is None else {}
    comm = _mpi_world()
    if comm.Get_rank() == 0:
        address = (given.get("MASTER_ADDR") or socket.gethostname(), int(given.get("MASTER_PORT") or free_port()))
    else:
        address = None
    address = comm.bcast(address, root=0)
    os.environ["MASTER_ADDR"] = address[0]
    os.environ["MASTER_PORT"] = str(address[1])


def init_distributed(device: str = "cpu", *, timeout_s: float = 600.0, collective: bool = True) -> DistContext:
    """Join the process group the launcher set up (or none), choose backend and device.

    ``device`` is ``"cpu"`` or ``"cuda"``; with CUDA each rank takes GPU ``local_rank``.
    ``collective=False`` (asynchronous strategies): no process group, the MPI communicator.
    Inside :func:`mpi_group` the group is that communicator's ranks (``local_rank`` stays the
    node-local rank in the world, so processes on one node keep distinct GPUs).
    """
    import torch

    launcher, rank, world, local_rank = detect_launcher()
    comm = _GROUP_COMM
    if comm is not None:
        launcher, rank, world = "mpi", comm.Get_rank(), comm.Get_size()
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise JetlabError("--device cuda asked for, but torch sees no CUDA device")
        if world > 1 or device == "cuda":
            device = f"cuda:{local_rank % torch.cuda.device_count()}"
        torch.cuda.set_device(torch.device(device))
    elif device != "cpu":
        raise JetlabError(f"unknown device {device!r}; use cpu or cuda")
    context = DistContext(rank=rank, world_size=world, local_rank=local_rank, launcher=launcher, device=device)
    if world <= 1:
        return context
    if not collective:
        if launcher != "mpi":
            raise JetlabError("the asynchronous strategies (downpour, easgd, gem) talk over MPI: launch with "
                              "`mpiexec -disable-auto-cleanup -n K python -m jetlab ...`, not torchrun")

        context.comm = _mpi_world()
        WATCH.install(collective=False)
        return context
    import torch.distributed as dist

    if launcher == "mpi":
        _mpi_rendezvous()
    os.environ["RANK"] = str(rank)
    os.environ["WORLD_SIZE"] = str(world)
    os.environ["LOCAL_RANK"] = str(local_rank)
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            init_method="env://",
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
    context.backend = backend
    context.initialized = True
    if launcher == "mpi":
        WATCH.install(collective=True)
    return context
