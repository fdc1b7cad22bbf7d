"""``jetlab hpo``: hyperparameter search over training runs (Optuna), and its report.

::

    jetlab hpo run --model jedinet --data DIR --epochs 10 --trials 30 --study jedi   # TPE, SQLite in hpo/jedi/
    jetlab hpo run --study jedi --trials 40                       # continue it (its settings are stored)
    jetlab hpo run --model dnn --sampler nsga2 --objective accuracy,params --study dnn-front
    jetlab hpo run ... --storage postgresql://user@dbhost:5432/hpo  # run this on every machine
    jetlab hpo run ... --storage-env HPO_DB     # the URL (with its password) from $HPO_DB, not the command line
    mpiexec -n 8 python -m jetlab hpo run ... --ranks-per-trial 2  # 4 trials at a time, 2 ranks each
    jetlab hpo report --study jedi --out hpo/jedi/report

Training settings not in the search space are fixed for the whole study and given as
``jetlab tagger train`` / ``jetlab fastsim train`` flags (``--epochs``, ``--data``,
``--hp KEY=VALUE``, ...); see :mod:`jetlab.hpo` for the search itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

from jetlab.cli.fastsim import _network_options
from jetlab.cli.settings import (
    add_deprecated_aliases,
    add_model_code_flag,
    add_settings_flags,
    given_flags,
    parse_hyperparameters,
    refuse_unused,
)
from jetlab.errors import InputError, JetlabError
from jetlab.hpo.objective import OBJECTIVES
from jetlab.hpo.recipes import check_space, recipe_for
from jetlab.hpo.report import write_report
from jetlab.hpo.space import SearchSpace
from jetlab.hpo.study import PRUNERS, SAMPLERS, StudySpec, default_storage, make_sampler, require_optuna
from jetlab.hpo.worker import WorkerOptions, run_study
from jetlab.training.generator_config import GeneratorConfig
from jetlab.training.tagger_config import TaggerTrainConfig
from jetlab.utils.config import load_config
from jetlab.utils.secrets import keep_secret, mask_url, url_secrets

__all__ = ["register"]

log = logging.getLogger(__name__)


def _study_flags(p, study_help: str, *, required: bool = False) -> None:
    p = p.add_argument_group("study and storage", "which study, and the database that holds it")
    p.add_argument("--study", metavar="NAME", help=study_help, required=required)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--storage", metavar="URL", help="Optuna database: sqlite:///FILE.db or "
                       "postgresql://USER@HOST:PORT/DB (default: sqlite:///<dir>/study.db); a PostgreSQL password is "
                       "best left out of it: libpq reads PGPASSWORD or ~/.pgpass (PGPASSFILE)")
    where.add_argument("--storage-env", metavar="VAR", help="read the --storage URL from environment variable VAR "
                       "(a password in it stays out of the command line, which every user sees in ps)")
    where.add_argument("--storage-file", metavar="FILE", help="read the --storage URL from the first line of FILE "
                       "(e.g. readable only by you)")
    p.add_argument("--dir", metavar="DIR", help="study directory: trial-<n>/ run directories and the default "
                   "SQLite file (default: hpo/<study>; an existing study's own)")


def register(subparsers) -> None:
    objectives = ", ".join(f"{name} ({direction[:3]}: {what})" for name, (direction, _, what) in OBJECTIVES.items())
    p = subparsers.add_parser(
        "run", help="run trials of a hyperparameter study (create it first if new)",
        description="Train trials of a study, each a real training run into <dir>/trial-<n>, until the study holds "
                    "--trials finished trials; several processes (any machines reaching --storage) share a study. "
                    "A new study stores its model, space, objectives and fixed settings; running again continues "
                    "it. Training flags (as in `jetlab tagger train` / `jetlab fastsim train`) fix what the space does "
                    "not tune; each group below says which studies it applies to.")
    _study_flags(p, "study name (default: the model's name)")
    search = p.add_argument_group("search", "what is tuned and how (every study)")
    search.add_argument("--model", metavar="NAME", help="model of a new study: a tagger (jedinet, jedinet-sumo, "
                        "garnet, dnn, cnn, gru, ...) or a generator (vae, gan, flow), or your own (FILE.py:Class)")
    add_model_code_flag(p)
    search.add_argument("--space", metavar="FILE.yaml", help="search space (default: the one shipped for the model, "
                        "jetlab/hpo/spaces/<model>.yaml; JEDI-net's is the paper's)")
    search.add_argument("--objective", metavar="A[,B]", help=f"objective(s); several give a Pareto front: "
                        f"{objectives} (default: accuracy for taggers, w1m for generators)")
    search.add_argument("--sampler", choices=SAMPLERS, help="tpe, gp (Bayesian), cmaes, nsga2 (evolutionary), "
                        "random (default: the study's, tpe for a new one)")
    search.add_argument("--pruner", choices=PRUNERS, help="stop poor trials early on per-epoch validation numbers: "
                        "median (from epoch max(1, epochs // 3) on), halving (successive halving) or none "
                        "(default: median; none for several objectives)")
    search.add_argument("--trials", type=int, default=20, metavar="N", help="finished trials the study should "
                        "hold, over all workers (default: 20; 0: only create it)")
    search.add_argument("--sampler-seed", type=int, metavar="S", help="seed of the sampler (group k of mpiexec: S+k)")
    search.add_argument("--population", type=int, metavar="P", help="nsga2 population / cmaes population size")
    workers = p.add_argument_group("workers", "this process and the trials it trains (every study)")
    workers.add_argument("--heartbeat", type=int, default=60, metavar="S", help="seconds between a worker's "
                         "heartbeats; a trial silent for 3x this belongs to a dead worker and is retried "
                         "(0: off; default: 60)")
    workers.add_argument("--ranks-per-trial", type=int, default=1, metavar="R",
                         help="under mpiexec -n K: K/R trials at a time, each trained data-parallel by R ranks "
                              "(default: 1)")
    workers.add_argument("--study-time-limit-min", type=float, metavar="MIN",
                         help="start no trial after MIN minutes (default: no limit)")
    fixed = p.add_argument_group("fixed training settings (every study)",
                                 "what the space does not tune, as in `jetlab tagger train` / `jetlab fastsim train`")
    fixed.add_argument("--config", metavar="FILE.yaml", help="fixed training settings from a YAML file")
    fixed.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                       help="fixed model hyperparameter (generators: NET.KEY=VALUE), repeatable")
    tagger, generator = ({f.name for f in dataclasses.fields(c)} - {"model"} for c in (TaggerTrainConfig, GeneratorConfig))
    add_settings_flags(fixed, TaggerTrainConfig, names=tagger & generator, shown=_both_defaults)
    add_settings_flags(p.add_argument_group("tagger studies", "only where --model is a tagger"), TaggerTrainConfig,
                       names=tagger - generator)
    add_settings_flags(p.add_argument_group("generator studies", "only where --model is a generator; the "
                                            "VAE:/GAN:/flow: settings only for that model"), GeneratorConfig,
                       names=generator - tagger)
    add_deprecated_aliases(p, {"--schedule": "--lr-schedule"})
    p.set_defaults(run=_run, on_stop="the trial in progress is queued again and continues from its last finished "
                   "epoch: rerun the same command to continue")

    p = subparsers.add_parser(
        "report", help="best trials, optimisation history, importances, Pareto front",
        description="Write OUT/best_trials.md and .json (with the command that retrains each), history.png, "
                    "importances.png, pareto.png (several objectives) and intermediate.png (per-epoch numbers).")
    _study_flags(p, "name of the study to report on", required=True)
    p.add_argument("--out", required=True, metavar="DIR", help="report folder")
    p.add_argument("--top", type=int, default=5, metavar="K", help="best trials listed (one objective; default: 5)")
    p.set_defaults(run=_report)


def _both_defaults(field) -> str | None:
    """A shared setting's default where taggers and generators differ: "20 taggers, 10 generators"."""
    tagger, generator = (getattr(cls, field.name, None) for cls in (TaggerTrainConfig, GeneratorConfig))
    if tagger == generator:
        return None
    return f"{'unset' if tagger is None else tagger} taggers, {generator} generators"


def _given_settings(cls, args) -> dict:
    """The training settings given as flags, checked against the recipe's config ``cls``."""
    own = {f.name for f in dataclasses.fields(cls)}
    given = {**given_flags(TaggerTrainConfig, args), **given_flags(GeneratorConfig, args)}
    given.pop("model", None)
    stray = sorted(flag for name, flag in given.items() if name not in own)
    if stray:
        what, other = ("tagger", "generator") if "hparams" in own else ("generator", "tagger")
        raise JetlabError(f"{stray[0]} is a {other} setting; a {what} study does not use it: drop it")
    return {name: getattr(args, name) for name in given if name in own}


def _fixed_config(recipe, args, base):
    """``base`` (defaults, --config file or a study's stored settings) with the flags given applied."""
    config = dataclasses.replace(base, **_given_settings(recipe.config_class, args))
    if hasattr(config, "foreign"):  # a generator study: another generator's setting is refused
        refuse_unused(config, args, why=config.foreign)
    if args.hp:
        if recipe.name == "tagger":
            config.hparams = {**config.hparams, **parse_hyperparameters(args.hp)}
        else:
            config = dataclasses.replace(config, **_network_options(args.hp, config, model=config.model))
    if config.data and Path(config.data).exists():
        config.data = str(Path(config.data).resolve())  # workers may start elsewhere
    config.validate("options")
    return config


def _request(args, study_dir: Path):
    """The study spec this command asks for, as a function of the stored one (None: new study)."""
    from jetlab.models.registry import is_user_model, model_code_record, resolve_model  # lazy: start-up (torch)

    def request(stored):
        model = args.model or (stored.model if stored else None)
        if model is None:
            raise JetlabError("a new study needs --model NAME")
        recipe = recipe_for(model, stored.base_config.model_code if stored and stored.model == model else None)
        if args.config:
            base = load_config(recipe.config_class, args.config)
        else:
            base = stored.base_config if stored and stored.model == model else recipe.config_class()
        config = _fixed_config(recipe, args, dataclasses.replace(base, model=model))
        if args.space:
            space = SearchSpace.load(args.space)
        else:
            space = stored.space if stored else SearchSpace.packaged(model)
        if is_user_model(model):  # loaded from the file named by --model / --model-code, with the recorded hash
            task = "classify" if recipe.name == "tagger" else "generate"
            entry = resolve_model(model, config.model_code, task=task, where=f"study {args.study or model}")
            config.model_code = model_code_record(entry)
        check_space(space, recipe, model, getattr(config, "particles", 30), config.model_code)
        if args.objective:
            objectives = tuple(o.strip() for o in args.objective.split(","))
        else:
            objectives = stored.objectives if stored else ("accuracy",) if recipe.name == "tagger" else ("w1m",)
        pruner = "median" if len(objectives) == 1 else "none"
        spec = StudySpec(model=model, objectives=objectives, space=space, base_config=config,
                         sampler=args.sampler or "tpe", pruner=args.pruner or pruner,
                         dir=str(study_dir.resolve()))
        spec.directions  # noqa: B018 -- checks the objectives
        make_sampler(spec.sampler, n_objectives=len(objectives))  # checks the sampler suits them
        if spec.pruner != "none" and len(objectives) > 1:
            raise JetlabError("--pruner: pruning needs a single objective (Optuna cannot prune multi-objective trials)")
        return spec

    return request


def _names(args) -> tuple[str, Path, str, str]:
    """(study name, study directory, storage URL, the flag that names the storage again in hints)."""
    model = getattr(args, "model", None)
    name = args.study or (model.rpartition(":")[2] if model else None)  # a user's FILE.py:Class: its class
    if not name:
        raise JetlabError("--study NAME is needed" + (" (or --model for a new study)" if hasattr(args, "model") else ""))
    study_dir = Path(args.dir or Path("hpo") / name)
    return name, study_dir, *_storage(args, study_dir)


def _storage(args, study_dir: Path) -> tuple[str, str]:
    """The storage URL from --storage, --storage-env or --storage-file (default: SQLite in the study
    directory), and the flag that names it again without showing a password."""
    if args.storage_env:
        url = os.environ.get(args.storage_env, "").strip()
        if not url:
            raise JetlabError(f"--storage-env {args.storage_env}: no such environment variable, or it is empty")
        return url, f"--storage-env {args.storage_env}"
    if args.storage_file:
        try:
            lines = [line.strip() for line in Path(args.storage_file).read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(args.storage_file, f"cannot read the storage URL ({getattr(exc, 'strerror', exc)})") from None
        if not lines:
            raise InputError(args.storage_file, "is empty; it should hold the storage URL on its first line")
        return lines[0], f"--storage-file {args.storage_file}"
    if args.storage:
        if url_secrets(args.storage):
            log.warning("the password in --storage is visible to every user of this machine (ps, shell history); "
                        "prefer --storage-env, --storage-file or PGPASSWORD / ~/.pgpass")
        return args.storage, f"--storage {mask_url(args.storage)}"
    url = default_storage(study_dir)
    return url, f"--storage {url}"


def _run(args: argparse.Namespace) -> int:
    require_optuna()
    name, study_dir, storage, again = _names(args)
    with keep_secret(storage):
        return _run_study(args, name, study_dir, storage, again)


def _run_study(args, name: str, study_dir: Path, storage: str, again: str) -> int:
    options = WorkerOptions(trials=args.trials, sampler=args.sampler, pruner=args.pruner,
                            sampler_seed=args.sampler_seed, population=args.population, heartbeat_s=args.heartbeat,
                            ranks_per_trial=args.ranks_per_trial, dir=args.dir,
                            timeout_s=None if args.study_time_limit_min is None else 60 * args.study_time_limit_min)
    if args.heartbeat < 0:
        raise JetlabError(f"--heartbeat must be >= 0, got {args.heartbeat}")
    if args.population is not None and args.population < 2:
        raise JetlabError(f"--population must be at least 2, got {args.population}")
    request = _request(args, study_dir)
    if storage.startswith("sqlite:///") and not Path(storage.removeprefix("sqlite:///")).exists():
        request(None)  # a new study: refuse a bad space or setting before the database file is made
    summary = run_study(name, storage, request, options)
    if summary is None:
        return 0
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(summary["counts"].items())) or "no trials"
    print(f"study {name} ({mask_url(storage)}): {counts}; this run trained {summary['ran']}")
    spec = summary["spec"]
    for trial in summary["best"][:5]:
        values = ", ".join(f"{o} {v:.4g}" for o, v in zip(spec.objectives, trial.values))
        print(f"  best: trial {trial.number}: {values} -> {trial.user_attrs.get('run_dir')}")
    print(f"report: jetlab hpo report --study {name} {again} --out {study_dir}/report", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    name, _, storage, _ = _names(args)
    if args.top < 1:
        raise JetlabError(f"--top must be at least 1, got {args.top}")
    with keep_secret(storage):
        report = write_report(storage, name, args.out, top=args.top)
    print(report["summary"])
    print(f"wrote {', '.join(report['files'])} -> {args.out}")
    return 0
