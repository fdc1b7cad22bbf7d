"""``jetlab tagger prune``: iterative magnitude pruning of a trained tagger (hls4ml recipe).

::

    jetlab tagger prune runs/dnn --iterations 7 --target-sparsity 0.7 --out runs/dnn-pruned
    jetlab tagger prune runs/jedinet --scope layer --sparsity-schedule linear --rewind --l1 1e-4
    jetlab tagger prune runs/dnn --out runs/dnn-pruned --resume     # continue a killed run

See :mod:`jetlab.pruning.run` for what PRUNED holds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jetlab.cli.settings import add_deprecated_aliases, add_model_code_flag, add_settings_flags, build_config
from jetlab.errors import InputError, JetlabError
from jetlab.pruning.config import PruneConfig
from jetlab.utils.config import load_config

__all__ = ["register"]


def _stop_after(text: str) -> tuple[int, int | None]:
    iteration, _, epoch = text.partition(":")
    try:
        stop = (int(iteration), int(epoch) if epoch else None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--stop-after expects K or K:E (integers), got {text!r}") from None
    if stop[0] < 1 or (stop[1] is not None and stop[1] < 1):
        raise argparse.ArgumentTypeError(f"--stop-after: iteration and epoch count from 1, got {text!r}")
    return stop


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prune", help="iterative magnitude pruning: prune, retrain, repeat (hls4ml recipe)",
        description="Prune the weight matrices of the tagger in RUN to --target-sparsity over --iterations "
                    "prune-and-retrain steps; writes PRUNED/{config.yaml, iter-<k>/, prune_curve.json, "
                    "prune_curve.png, model.pt, metrics.json, predictions.npz}. The model.pt holds the pruned "
                    "weights as exact zeros (masks made permanent).",
    )
    p.add_argument("run_dir", metavar="RUN", help="run directory written by `jetlab tagger train`")
    p.add_argument("--out", metavar="PRUNED", help="output directory (default: RUN-pruned)")
    p.add_argument("--resume", action="store_true",
                   help="continue the prune run in PRUNED (finished iterations are kept)")
    p.add_argument("--stop-after", type=_stop_after, metavar="K[:E]",
                   help="end this invocation after iteration K (or epoch E of iteration K); continue with --resume")
    add_settings_flags(p, PruneConfig)
    add_model_code_flag(p)
    add_deprecated_aliases(p, {"--schedule": "--sparsity-schedule"})
    p.set_defaults(run=_prune)


def _prune(args: argparse.Namespace) -> int:
    from jetlab.pruning.run import prune_tagger  # lazy: start-up (torch)

    out = args.out or f"{str(args.run_dir).rstrip('/')}-pruned"
    if args.resume and (Path(out) / "config.yaml").is_file():
        saved = load_config(PruneConfig, Path(out) / "config.yaml").source
        if Path(saved).resolve() != Path(args.run_dir).resolve():
            raise InputError(out, f"prunes {saved}, not {args.run_dir}; --resume continues it with its own RUN")
    elif args.resume:
        raise InputError(out, "holds no prune run to resume; drop --resume to start one")
    config = build_config(PruneConfig, args, out=out, resume=args.resume,
                          overrides=None if args.resume else {"source": str(Path(args.run_dir).resolve())})
    if args.stop_after and args.stop_after[0] > config.iterations:
        raise JetlabError(f"--stop-after {args.stop_after[0]}: the run has only {config.iterations} iterations")
    metrics = prune_tagger(config, out, resume=args.resume, stop_after=args.stop_after)
    if metrics is None:
        print(f"stopped before the end; continue with: jetlab tagger prune {args.run_dir} --out {out} --resume")
        return 0
    summary, unpruned = metrics["pruning"], metrics["pruning"]["unpruned"]
    within = summary["sparsity_within_tolerance"]
    print(f"{metrics['model']}: {metrics['sparsity']['sparsity']:.1%} of the weights are zero after "
          f"{config.iterations} iterations; test mean AUC {metrics['mean_auc']:.4f} (unpruned {unpruned['mean_auc']:.4f}), "
          f"accuracy {metrics['accuracy']:.4f} (unpruned {unpruned['accuracy']:.4f}); highest sparsity within "
          f"{summary['auc_tolerance']} mean AUC: {'none' if within is None else f'{within:.1%}'} "
          f"-> {out}/prune_curve.png")
    return 0
