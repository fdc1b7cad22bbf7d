"""``jetlab tagger``: train, evaluate and compare jet taggers.

::

    jetlab tagger train                                  # JEDI-net on the default 30-particle jets
    jetlab tagger train --model dnn --data DIR --epochs 20 --out runs/dnn
    jetlab tagger train --out runs/dnn --resume          # continue a killed run exactly
    torchrun --standalone --nproc_per_node=2 -m jetlab tagger train ...   # data-parallel
    mpiexec -n 2 python -m jetlab tagger train ...                         # the same over MPI
    jetlab tagger evaluate runs/dnn --data OTHER_DIR     # -> runs/dnn/eval-OTHER_DIR/
    jetlab tagger compare runs/* --out cmp               # paper-style table + ROC per class

Settings come from the :class:`~jetlab.training.tagger_config.TaggerTrainConfig` defaults, then
``--config FILE.yaml`` (or RUN/config.yaml with ``--resume``), then the flags given.
"""

from __future__ import annotations

import argparse
import sys

from jetlab.cli.settings import (
    add_deprecated_aliases,
    add_model_code_flag,
    add_settings_flags,
    build_config,
    parse_hyperparameters,
    positive_int,
)
from jetlab.cli.tagger_export import register_export
from jetlab.cli.tagger_prune import register as register_prune
from jetlab.distributed.env import detect_launcher, relaunch_prefix
from jetlab.errors import RESUME
from jetlab.training.tagger_config import TaggerTrainConfig
from jetlab.utils.config import load_config

__all__ = ["register"]

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a tagger (in one process, or data-parallel under torchrun/mpiexec)",
        description="Train a jet tagger; writes RUN/{config.yaml, checkpoint.pt, model.pt, metrics.json, "
                    "predictions.npz, roc.png, training_curve.png}. Unset flags take their value from --config (or, "
                    "with --resume, RUN/config.yaml), else the defaults shown.",
    )
    p.add_argument("--out", metavar="RUN", help="run directory (default: runs/<model>-<particles>)")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN from its last checkpoint")
    p.add_argument("--config", metavar="FILE.yaml", help="load settings from a YAML file (e.g. a RUN/config.yaml)")
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                   help="model hyperparameter (YAML value), repeatable: --hp hidden=30 --hp edge_dim=10")
    p.add_argument("--stop-after", type=positive_int, metavar="E",
                   help="end this invocation after epoch E's checkpoint (continue later with --resume)")
    add_settings_flags(p, TaggerTrainConfig)
    add_model_code_flag(p)
    add_deprecated_aliases(p, {"--schedule": "--lr-schedule"})
    p.set_defaults(run=_train, on_stop=RESUME)

    p = subparsers.add_parser(
        "evaluate", help="metrics of a trained tagger on another jet set",
        description="Evaluate RUN/model.pt on every jet of --data, standardised with the training statistics; "
                    "writes RUN/eval-<name>/{metrics.json, roc.png, predictions.npz}.",
    )
    p.add_argument("run_dir", metavar="RUN", help="run directory written by `jetlab tagger train`")
    p.add_argument("--data", required=True, metavar="DIR", help="jet files to evaluate on")
    p.add_argument("--eval-name", metavar="NAME",
                   help="results go to RUN/eval-NAME (default: the data folder's name)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs (default: cpu)")
    p.add_argument("--batch-size", type=positive_int, default=500, metavar="B",
                   help="jets per forward pass (default: 500)")
    add_model_code_flag(p)
    add_deprecated_aliases(p, {"--name": "--eval-name"})
    p.set_defaults(run=_evaluate)

    p = subparsers.add_parser(
        "compare", help="paper-style table and per-class ROC plots of several runs",
        description="Print per-class AUC and TPR at FPR 10% / 1% of each run (one row a model); with --out, "
                    "write one ROC plot per class with every model, compare.md and compare.json.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="run directories written by `jetlab tagger train` or `jetlab tagger prune`")
    p.add_argument("--out", metavar="DIR", help="folder for roc_<class>.png, compare.md, compare.json")
    p.add_argument("--eval-name", metavar="NAME",
                   help="compare the RUN/eval-NAME results of `jetlab tagger evaluate --eval-name NAME` instead of "
                        "the test split")
    add_deprecated_aliases(p, {"--eval": "--eval-name"})
    p.set_defaults(run=_compare)

    register_export(subparsers)
    register_prune(subparsers)


def build_train_config(args: argparse.Namespace):
    """Defaults <- --config file (or RUN/config.yaml when resuming) <- explicit flags, --hp."""
    from jetlab.models.registry import short_name  # lazy: start-up (torch)

    model = short_name(args.model or TaggerTrainConfig.model)
    out = args.out or f"runs/{model}-{args.particles or TaggerTrainConfig.particles}"
    # a model named afresh is loaded from the file named now: a --config's recorded hash does not apply
    overrides = {"model_code": {}} if args.model and not args.resume else {}
    if args.hp:
        overrides["hparams"] = parse_hyperparameters(args.hp)
        if not args.resume:
            base = TaggerTrainConfig()
            if args.config:
                base = load_config(TaggerTrainConfig, args.config)
            overrides["hparams"] = {**base.hparams, **overrides["hparams"]}
    return build_config(TaggerTrainConfig, args, out=out, resume=args.resume, overrides=overrides), out


def _train(args: argparse.Namespace) -> int:
    from jetlab.training.tagger import train_tagger  # lazy: start-up (torch)

    config, out = build_train_config(args)
    metrics = train_tagger(config, out, resume=args.resume, stop_after_epoch=args.stop_after)
    if metrics is not None:
        aucs = ", ".join(f"{c} {v['auc']:.3f}" for c, v in metrics["per_class"].items() if v["auc"] is not None)
        print(f"{config.model}: test accuracy {metrics['accuracy']:.3f}; AUC {aucs}; "
              f"{metrics['epochs_run']} epochs in {metrics['training_time_s']:.1f} s -> {out}/metrics.json")
    elif _is_main():
        print(f"stopped before the end; continue with: {relaunch_prefix()}jetlab tagger train --out {out} --resume")
    return 0


def _is_main() -> bool:
    return detect_launcher()[1] == 0


def _evaluate(args: argparse.Namespace) -> int:
    from jetlab.training.tagger_eval import evaluate_tagger  # lazy: start-up (torch)

    metrics = evaluate_tagger(args.run_dir, args.data, name=args.eval_name, device=args.device, batch_size=args.batch_size)
    aucs = ", ".join(f"{c} {v['auc']:.3f}" for c, v in metrics["per_class"].items() if v["auc"] is not None)
    # where the data hold one class only (e.g. generated jets) no AUC exists: say what they were called
    called = [sum(column) for column in zip(*metrics["confusion_matrix"])]
    shares = ", ".join(f"{c} {n / max(sum(called), 1):.1%}" for c, n in zip(metrics["class_names"], called))
    print(f"{metrics['model']} on {metrics['data']} ({metrics['n_jets']} jets): accuracy {metrics['accuracy']:.3f}; "
          f"AUC {aucs or 'n/a (one class)'}; called {shares} -> {metrics['out']}/metrics.json")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from jetlab.training.tagger_eval import compare_runs  # lazy: start-up (torch)

    table = compare_runs(args.runs, out=args.out, eval_name=args.eval_name)
    sys.stdout.write(table + "\n")
    if args.out:
        print(f"ROC plots per class, compare.md and compare.json -> {args.out}")
    return 0
