"""``jetlab hpo run`` as a function: open (or create) the study, then work on it, in one process
or as one of the groups of an ``mpiexec`` world (:mod:`jetlab.hpo.parallel`)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from pathlib import Path

from jetlab.distributed.env import detect_launcher
from jetlab.errors import JetlabError
from jetlab.hpo.objective import TrialRunner
from jetlab.hpo.parallel import split_world
from jetlab.hpo.study import (
    close_storage,
    make_pruner,
    make_sampler,
    open_storage,
    open_study,
    run_worker,
    trial_counts,
)
from jetlab.hpo.study import storage_url as full_url

__all__ = ["WorkerOptions", "run_study"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class WorkerOptions:
    """How this worker runs (not stored in the study): see ``jetlab hpo run --help``."""

    trials: int = 20
    sampler: str | None = None  # None: the study's
    pruner: str | None = None
    sampler_seed: int | None = None
    population: int | None = None
    heartbeat_s: int = 60
    ranks_per_trial: int = 1
    timeout_s: float | None = None
    dir: str | None = None  # None: the study's


def run_study(name: str, storage_url: str, request, options: WorkerOptions) -> dict | None:
    """Work on study ``name`` at ``storage_url`` (``request`` as in :func:`~jetlab.hpo.study.open_study`).

    Returns, on the process that reports (the only one, or world rank 0), ``{"spec",
    "counts", "ran", "best"}`` (best: finished trials); None on the others. The database
    connections are closed on return.
    """
    if options.trials < 0:
        raise JetlabError(f"--trials must be >= 0, got {options.trials}")
    launcher = detect_launcher()[0]
    if launcher == "torchrun":
        raise JetlabError("jetlab hpo run under torchrun is not supported: start several `jetlab hpo run` processes, "
                          "or mpiexec -n K ... --ranks-per-trial R for data-parallel trials")
    groups = None
    if launcher == "mpi":
        groups = split_world(options.ranks_per_trial)
    elif options.ranks_per_trial != 1:
        raise JetlabError(f"--ranks-per-trial {options.ranks_per_trial} needs mpiexec -n K (K a multiple of it)")

    storages = []

    def open_here():
        storages.append(open_storage(storage_url, heartbeat_s=options.heartbeat_s))
        return open_study(storages[-1], name, request)

    try:
        return _work(options, groups, open_here, full_url(storage_url))
    finally:
        for storage in storages:
            close_storage(storage)


def _work(options: WorkerOptions, groups, open_here, lock_url: str) -> dict | None:
    if groups is not None:  # world rank 0 creates the study (and its tables) before any other rank opens it
        opened, problem = None, None
        if groups.is_world_root:
            try:
                opened = open_here()
            except JetlabError as exc:
                problem = str(exc)
        problem = groups.world.bcast(problem, root=0)
        if problem:
            raise JetlabError(problem)
        if groups.is_group_root and not groups.is_world_root:
            opened = open_here()
        if not groups.is_group_root:
            with groups.abort_on_error():
                groups.follow(groups.group.bcast(None, root=0).recipe)
            groups.world.reduce(0, root=0)
            return None
        study, spec = opened
        groups.group.bcast(spec, root=0)
    else:
        study, spec = open_here()

    sampler = options.sampler or spec.sampler
    seed = None if options.sampler_seed is None else options.sampler_seed + (groups.index if groups else 0)
    study.sampler = make_sampler(sampler, n_objectives=len(spec.objectives), trials=options.trials, seed=seed,
                                 population=options.population)
    study.pruner = make_pruner(options.pruner or spec.pruner, spec.base_config.epochs)
    runner = TrialRunner(spec, Path(options.dir or spec.dir), processes=options.ranks_per_trial,
                         launch=groups.launcher(spec.recipe) if groups else None,
                         threads=groups.threads_per_process() if groups and groups.local_processes > 1 else None)
    with groups.abort_on_error() if groups is not None else contextlib.nullcontext():
        ran = run_worker(study, runner, options.trials, timeout_s=options.timeout_s,
                         poll_s=options.heartbeat_s or None, lock_url=lock_url)
    if groups is not None:
        groups.stop_followers()
        ran = groups.world.reduce(ran, root=0)
        if not groups.is_world_root:
            return None
    return {"spec": spec, "counts": trial_counts(study), "ran": ran,
            "best": [copy.deepcopy(t) for t in _best(study)]}


def _best(study):
    from optuna.trial import TrialState

    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return []
    return study.best_trials if len(study.directions) > 1 else [study.best_trial]
