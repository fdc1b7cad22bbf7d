"""Trials in parallel, each trial data-parallel: ``mpiexec -n K ... jetlab hpo run --ranks-per-trial r``.

``COMM_WORLD`` is split into ``K / r`` groups of ``r`` consecutive ranks. World rank 0
opens the storage and creates (or loads) the study before any other rank touches it. The
rank 0 of each group is then an ordinary worker (:func:`jetlab.hpo.study.run_worker`):
it asks the study for a trial, broadcasts the trial's job (config, run directory, resume)
to its group, and all ``r`` ranks train it with the recipe, whose
:func:`~jetlab.training.run_dir.training_session` joins a torch.distributed group of just
those ranks (:func:`jetlab.distributed.env.mpi_group`), so the update strategy
(``--strategy``: all-reduce, or an asynchronous one) works within the group while the
groups run different trials. The other ranks of a group follow: receive a job, train,
until their rank 0 says stop.

Without ``mpiexec`` the worker is one process and trials train in it (``r = 1``); many
such workers (on any machines that reach the database) share a study all the same.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback

from jetlab.distributed.env import mpi_group
from jetlab.errors import JetlabError
from jetlab.hpo.objective import train_job

__all__ = ["MPIGroups", "split_world"]

log = logging.getLogger(__name__)


class MPIGroups:
    """This process's place in the split world: ``world``, ``group`` (mpi4py communicators),
    ``index`` (which group), ``n_groups``, ``local_processes`` (world ranks on this node)."""

    def __init__(self, world, group, index: int, n_groups: int, local_processes: int):
        self.world, self.group, self.index, self.n_groups = world, group, index, n_groups
        self.local_processes = local_processes

    @property
    def is_world_root(self) -> bool:
        return self.world.Get_rank() == 0

    @property
    def is_group_root(self) -> bool:
        return self.group.Get_rank() == 0

    def threads_per_process(self) -> int:
        """CPU threads for each rank so that the ranks of this node share its cores."""
        return max(1, (os.cpu_count() or 1) // self.local_processes)

    def launcher(self, recipe):
        """``launch(job, on_epoch)`` for the group root's :class:`~jetlab.hpo.objective.TrialRunner`:
        the job goes to every rank of the group, and all of them train it."""
        def launch(job: dict, on_epoch=None):
            self.group.bcast(job, root=0)
            with mpi_group(self.group):
                return train_job(recipe, job, on_epoch=on_epoch)

        return launch

    def follow(self, recipe) -> int:
        """A non-root rank: train every job the group root sends until it sends None; returns the count."""
        done = 0
        while (job := self.group.bcast(None, root=0)) is not None:
            try:
                with mpi_group(self.group):
                    train_job(recipe, job)
            except JetlabError as exc:  # the root meets the same error and decides (pruned, failed)
                log.debug("rank %d: trial in %s ended with: %s", self.world.Get_rank(), job["out"], exc)
            done += 1
        return done

    def stop_followers(self) -> None:
        self.group.bcast(None, root=0)

    @contextlib.contextmanager
    def abort_on_error(self):
        """A rank that fails while the others go on would leave them waiting in a collective
        forever: print the error and end the whole job (``MPI_Abort``)."""
        try:
            yield
        except BaseException as exc:
            if self.world.Get_size() > 1:
                text = (f"jetlab: error: {exc}" if isinstance(exc, JetlabError)
                        else "".join(traceback.format_exception(exc)).rstrip())
                print(f"rank {self.world.Get_rank()}: {text}", file=sys.stderr, flush=True)
                time.sleep(1.0)  # mpiexec forwards output through its proxies: give them time before the abort
                self.world.Abort(exc.exit_code if isinstance(exc, JetlabError) else 1)
            raise


def split_world(ranks_per_trial: int) -> MPIGroups:
    """Split ``COMM_WORLD`` into groups of ``ranks_per_trial`` consecutive ranks (module docstring)."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise JetlabError("launched by mpiexec but mpi4py is not installed; pip install 'jetlab[mpi]'") from None
    world = MPI.COMM_WORLD
    size, rank = world.Get_size(), world.Get_rank()
    if ranks_per_trial < 1 or size % ranks_per_trial:
        raise JetlabError(f"--ranks-per-trial {ranks_per_trial}: must divide the {size} processes of mpiexec -n")
    index = rank // ranks_per_trial
    group = world.Split(color=index, key=rank)
    local = world.Split_type(MPI.COMM_TYPE_SHARED, key=rank)
    local_processes = local.Get_size()
    local.Free()
    return MPIGroups(world, group, index, size // ranks_per_trial, local_processes)
