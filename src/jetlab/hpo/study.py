"""Studies in a database: created once, remembered settings, samplers, pruners, the worker loop.

**Storage.** An Optuna :class:`~optuna.storages.RDBStorage`: SQLite by default
(``sqlite:///<study dir>/study.db``; fine for a few workers on one machine), PostgreSQL
(``postgresql://user@host:port/db``) for many workers on many machines. Workers record a
heartbeat every ``heartbeat_s`` seconds; a running trial whose heartbeat is older than
``3 x heartbeat_s`` belongs to a dead worker: the next worker to look marks it failed and
queues a copy with the same parameters (``RetryHeartbeatStaleTrialCallback``, up to 3
retries, per-epoch numbers inherited), which the next free worker runs.

**Created once.** Two processes creating the tables of an empty database at the same time
collide, so every worker opens the storage and creates or loads its study under a lock:
a file lock beside an SQLite file, a PostgreSQL advisory lock on a server (other databases:
create the study first, e.g. with ``jetlab hpo run ... --trials 0``). Under ``mpiexec``
world rank 0 does it before any other rank starts.

**Remembered settings.** A new study stores its :class:`StudySpec` (model, objectives,
search space, fixed training settings, sampler, pruner, trial directory) as the study's
user attribute ``"jetlab"``. ``jetlab hpo run`` on an existing study continues it with
those: trial numbers go on, finished trials are kept. Flags that would change what a trial
is (model, objectives, space, a training setting) are a one-line error; only how a worker
runs may differ (sampler, pruner, trial directory, device, threads, data loading).

**Budget.** ``n_trials`` is the study's target of finished (complete or pruned) trials,
shared by all workers: a worker starts a trial while finished + running trials are fewer,
always runs queued (retried) trials first, and while others' trials still run at the end
it waits for them (one may die and need a retry), then stops. Counting the trials and
starting one happen under the same lock as study creation (held until the new trial is
recorded as running), so workers starting at the same moment do not overshoot the target.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

from jetlab.errors import JetlabError, Stopped
from jetlab.hpo.objective import objective_directions
from jetlab.hpo.recipes import recipe_for
from jetlab.hpo.space import SearchSpace
from jetlab.utils.config import config_from_dict
from jetlab.utils.locking import cache_lock
from jetlab.utils.secrets import mask_url, scrub

__all__ = ["PRUNERS", "SAMPLERS", "StudySpec", "close_storage", "default_storage", "make_pruner", "make_sampler", "open_study",
           "open_storage", "require_optuna", "run_worker", "storage_url", "trial_counts"]

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "gp", "cmaes", "nsga2", "random")
PRUNERS = ("median", "halving", "none")
SPEC_ATTR = "jetlab"
SPEC_FORMAT = "jetlab-hpo/1"
#: settings that say how a worker runs, not what a trial is: they may differ between workers
WORKER_SETTINGS = ("device", "threads", "num_workers", "max_memory_gb")
_PG_LOCK_KEY = 0x6A65746C6162  # "jetlab": the advisory lock taken while creating tables and studies


def require_optuna():
    """The optuna module, or the one-line error that names the extra to install."""
    try:
        import optuna
    except ImportError:
        raise JetlabError("hyperparameter search needs Optuna: pip install 'jetlab[hpo]' "
                          "(optuna, cmaes and the PostgreSQL driver psycopg)") from None
    return optuna


@contextlib.contextmanager
def quiet_optuna():
    """Optuna flags heartbeats, retries and GP options as experimental on every use: not news."""
    optuna = require_optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield optuna


def default_storage(study_dir: str | os.PathLike) -> str:
    return f"sqlite:///{Path(study_dir) / 'study.db'}"


def storage_url(url: str) -> str:
    """``postgresql://...`` names psycopg 3 (the ``hpo`` extra's driver) whatever SQLAlchemy's
    default; ``postgresql+DRIVER://`` and other databases are kept as given."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


@dataclasses.dataclass
class StudySpec:
    """What every trial of a study shares (module docstring)."""

    model: str
    objectives: tuple[str, ...]
    space: Any  # SearchSpace
    base_config: Any  # the recipe's config dataclass: the fixed settings
    sampler: str = "tpe"
    pruner: str = "median"
    dir: str = "."

    @property
    def recipe(self):
        return recipe_for(self.model, getattr(self.base_config, "model_code", None))

    @property
    def directions(self) -> list[str]:
        return objective_directions(self.objectives, self.recipe)

    def to_attr(self) -> dict:
        return {"format": SPEC_FORMAT, "model": self.model, "objectives": list(self.objectives),
                "space": self.space.to_dict(), "space_source": self.space.source,
                "config": dataclasses.asdict(self.base_config), "sampler": self.sampler, "pruner": self.pruner,
                "dir": self.dir}

    @classmethod
    def from_attr(cls, values: dict, study: str) -> StudySpec:
        if not isinstance(values, dict) or values.get("format") != SPEC_FORMAT:
            raise JetlabError(f"study {study!r} was not created by jetlab hpo (no {SPEC_ATTR!r} attribute of format "
                              f"{SPEC_FORMAT})")
        recipe = recipe_for(values["model"], (values.get("config") or {}).get("model_code"))
        return cls(model=values["model"], objectives=tuple(values["objectives"]),
                   space=SearchSpace.from_dict(values["space"], values.get("space_source", "stored space")),
                   base_config=config_from_dict(recipe.config_class, values["config"], source=f"study {study}"),
                   sampler=values["sampler"], pruner=values["pruner"], dir=values["dir"])

    def check_compatible(self, other: StudySpec, study: str) -> None:
        """One-line error if ``other`` (what a worker asks for) changes what this study's trials are."""
        def refuse(what: str, mine, theirs):
            raise JetlabError(f"study {study!r} was created with {what} {mine}, not {theirs}: a study keeps its "
                              "model, objectives, space and training settings; drop the option or use a new --study")

        if other.model != self.model:
            refuse("model", self.model, other.model)
        if tuple(other.objectives) != tuple(self.objectives):
            refuse("objective", ",".join(self.objectives), ",".join(other.objectives))
        if other.space.to_dict() != self.space.to_dict():
            refuse("the search space of", self.space.source, other.space.source)
        for field in dataclasses.fields(self.base_config):
            mine, theirs = getattr(self.base_config, field.name), getattr(other.base_config, field.name)
            if field.name not in WORKER_SETTINGS and mine != theirs:
                refuse(field.name, repr(mine), repr(theirs))


@contextlib.contextmanager
def _creation_lock(url: str):
    """Serialise table and study creation, and the start of trials, between processes (module docstring)."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        with cache_lock(Path(url.removeprefix("sqlite:///")).parent, what="study database"):
            yield
    elif url.startswith(("postgresql", "postgres:")):
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
                try:
                    yield
                finally:
                    connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
        finally:
            engine.dispose()
    else:
        yield


def open_storage(url: str, *, heartbeat_s: int = 60, max_retry: int = 3):
    """The RDBStorage at ``url`` with heartbeats and retries of dead workers' trials (module docstring)."""
    shown, url = mask_url(url), storage_url(url)
    with quiet_optuna() as optuna:
        from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

        heartbeat = {}
        if heartbeat_s:
            heartbeat = {"heartbeat_interval": int(heartbeat_s), "grace_period": 3 * int(heartbeat_s),
                         "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(
                             max_retry=max_retry, inherit_intermediate_values=True)}
        engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
        try:
            with _creation_lock(url):
                return RDBStorage(url, engine_kwargs=engine, **heartbeat)
        except (ImportError, ModuleNotFoundError) as exc:
            raise JetlabError(f"--storage {shown}: no database driver ({scrub(str(exc), url)}); for PostgreSQL pip "
                              "install 'jetlab[hpo]' (psycopg)") from None
        except optuna.exceptions.StorageInternalError as exc:
            raise JetlabError(f"--storage {shown}: cannot open the database ({_first_line(exc, url)})") from None
        except Exception as exc:  # sqlalchemy: unreachable server, wrong password, bad URL, ...
            if type(exc).__module__.startswith(("sqlalchemy", "psycopg")):
                raise JetlabError(f"--storage {shown}: {_first_line(exc, url)}") from None
            raise


def _first_line(exc: Exception, url: str) -> str:
    """The first line of a driver's message, the password of ``url`` scrubbed (drivers may quote the URL)."""
    return scrub(str(exc), url, url.replace("postgresql+psycopg://", "postgresql://", 1)).splitlines()[0]


def close_storage(storage) -> None:
    """Close the database connections of ``storage`` (pooled ones too)."""
    storage.remove_session()
    storage.engine.dispose()


def open_study(storage, name: str, request=None, *, sampler=None, pruner=None):
    """Load study ``name`` or create it; returns ``(study, its stored StudySpec)``.

    ``request`` is what the caller asks for: a :class:`StudySpec`, or a function of the
    stored spec (None for a new study) returning one, or None (the study must exist). A new
    study is created from it; an existing one refuses a request that changes what its
    trials are (:meth:`StudySpec.check_compatible`).
    """
    def requested(stored):
        return request(stored) if callable(request) else request

    with quiet_optuna() as optuna:
        with _creation_lock(storage.url):
            try:
                study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
            except KeyError:
                spec = requested(None)
                if spec is None:
                    known = ", ".join(s.study_name for s in optuna.get_all_study_summaries(storage)) or "none"
                    raise JetlabError(f"no study {name!r} in {mask_url(storage.url)} (studies there: {known}); "
                                      "--model starts a new one") from None
                study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                            directions=spec.directions)
                study.set_user_attr(SPEC_ATTR, spec.to_attr())
                log.info("created study %r in %s: %s, objective %s", name, mask_url(storage.url), spec.model,
                         ",".join(spec.objectives))
                return study, spec
        stored = StudySpec.from_attr(study.user_attrs.get(SPEC_ATTR), name)
        spec = requested(stored)
        if spec is not None:
            stored.check_compatible(spec, name)
            # how this worker runs (device, threads, ...) is its own
            stored.base_config = dataclasses.replace(
                stored.base_config, **{k: getattr(spec.base_config, k) for k in WORKER_SETTINGS
                                       if hasattr(stored.base_config, k)})
        return study, stored


def make_sampler(name: str, *, n_objectives: int = 1, trials: int = 20, seed: int | None = None,
                 population: int | None = None):
    """The Optuna sampler ``name``: ``tpe`` (Bayesian, tree-structured Parzen estimators), ``gp``
    (Bayesian, Gaussian process), ``cmaes`` (evolution strategy; categorical parameters drawn at
    random), ``nsga2`` (genetic, multi-objective), ``random``. Random start-up trials of tpe/gp:
    a quarter of ``trials``, 2 to 10; NSGA-II population: a quarter of ``trials``, 4 to 50."""
    with quiet_optuna() as optuna:
        samplers = optuna.samplers
        startup = max(2, min(10, trials // 4))
        if name == "tpe":
            return samplers.TPESampler(seed=seed, n_startup_trials=startup)
        if name == "gp":
            return samplers.GPSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
        if name == "cmaes":
            if n_objectives > 1:
                raise JetlabError("--sampler cmaes optimises one objective; use nsga2, tpe, gp or random for several")
            return samplers.CmaEsSampler(seed=seed, popsize=population, warn_independent_sampling=False)
        if name == "nsga2":
            return samplers.NSGAIISampler(seed=seed, population_size=population or max(4, min(50, trials // 4)))
        if name == "random":
            return samplers.RandomSampler(seed=seed)
    raise JetlabError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")


def make_pruner(name: str, epochs: int = 10):
    """``median``: from the 6th trial on, stop a trial whose validation number after an epoch is
    worse than the median of earlier trials after that epoch, from epoch ``max(1, epochs // 3)``
    on (the first epochs are noisy: a slow starter such as AdaDelta is not judged on them);
    ``halving``: asynchronous successive halving, rungs at epochs 1, 3, 9, ...; ``none``."""
    optuna = require_optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, epochs // 3))
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise JetlabError(f"unknown pruner {name!r}; known: {', '.join(PRUNERS)}")


class _NoTracebackForUserErrors(logging.Filter):
    """Optuna logs a failed trial's exception with its traceback; a JetlabError's one line is enough
    (a trial stopped by Ctrl-C too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], (JetlabError, KeyboardInterrupt)):
            record.exc_info = None
        return True


def trial_counts(study) -> dict[str, int]:
    """Trials per state name (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``, ``WAITING``)."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def run_worker(study, objective, n_trials: int, *, timeout_s: float | None = None, poll_s: float | None = 5.0,
               lock_url: str | None = None) -> int:
    """Run trials of ``study`` until it holds ``n_trials`` finished ones (module docstring);
    returns how many this worker ran. At the end it polls every ``poll_s`` seconds while
    others' trials run (None: without heartbeats, a dead trial is never retried: no wait).
    ``lock_url``: the study's storage URL; other workers' budget checks wait while this one
    counts and starts a trial (None: no other worker, no lock). An error in a trial (other
    than pruning) stops the worker."""
    from optuna.storages import fail_stale_trials

    started, ran = time.monotonic(), 0
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, _NoTracebackForUserErrors) for f in handler.filters):
            handler.addFilter(_NoTracebackForUserErrors())
    with quiet_optuna():
        while True:
            with contextlib.ExitStack() as budget:  # released once our trial is recorded as running
                if lock_url is not None:
                    budget.enter_context(_creation_lock(lock_url))
                fail_stale_trials(study)  # dead workers' trials -> failed, copies queued
                counts = trial_counts(study)
                finished = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
                if finished >= n_trials:
                    break
                if timeout_s is not None and time.monotonic() - started > timeout_s:
                    log.info("time is up after %d trial(s) of this worker", ran)
                    break
                if not counts.get("WAITING") and finished + counts.get("RUNNING", 0) >= n_trials:
                    if poll_s is None:
                        break
                    budget.close()
                    time.sleep(poll_s)  # the last trials run elsewhere; one may die and need a retry here
                    continue
                started_trial: list = []
                try:
                    study.optimize(_released_when_started(objective, budget, started_trial), n_trials=1, catch=())
                except (Stopped, KeyboardInterrupt):
                    if started_trial:
                        _queue_again(study, started_trial[0])
                    raise
            ran += 1
    return ran


def _released_when_started(objective, budget: contextlib.ExitStack, started: list):
    """``objective`` that first releases ``budget``: Optuna calls it once the trial is in the storage
    (its number goes into ``started``)."""
    def run(trial):
        started.append(trial.number)
        budget.close()
        return objective(trial)

    return run


def _queue_again(study, number: int) -> None:
    """Trial ``number`` was stopped by a signal (SIGTERM, Ctrl-C), and Optuna has marked it failed:
    queue a copy with its parameters, run directory and per-epoch numbers, which the next worker
    runs first, continuing from the trial's last checkpoint (as for a dead worker's trial)."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    if trial.state.name != "FAIL":  # it finished before the signal
        return
    RetryHeartbeatStaleTrialCallback(max_retry=None, inherit_intermediate_values=True)(study, trial)
    log.info("trial %d was stopped; it is queued again and continues from its last finished epoch", number)
