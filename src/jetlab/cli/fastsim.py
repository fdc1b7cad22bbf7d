"""``jetlab fastsim``: train generative models of sparse events, sample from them, evaluate them.

Commands::

    jetlab fastsim train --model vae|gan --data mnist-superpixels|mnist-sparse|jets|DIR
                         [--jet-class g|q|w|z|t] [--particles 30] --epochs E --out RUN
                         [--resume] [--batch-size B] [--lr LR] [--device cpu|cuda]
                         [--config FILE.yaml] [--seed S]
    jetlab fastsim sample RUN --n N --out FILE [--format jetnet|hls4ml] [--seed S]
    jetlab fastsim evaluate RUN [--data ...] [--n N] [--seed S]

Training procedures, losses and the run directory are described in
:mod:`jetlab.training.fastsim`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from jetlab.errors import InputError, JetlabError

__all__ = ["register"]

_CLASS_CHOICES = ("g", "q", "w", "z", "t")

#: CLI option -> FastsimConfig field, for options that override the config
_OVERRIDES = {
    "model": "model",
    "data": "data",
    "jet_class": "jet_class",
    "particles": "particles",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "lr_g": "lr_g",
    "lr_d": "lr_d",
    "device": "device",
    "seed": "seed",
    "max_train": "max_train",
    "plot_every": "plot_every",
    "time_limit": "time_limit_min",
}
#: settings a resumed run may change
_RESUMABLE = ("epochs", "device", "plot_every", "time_limit_min")


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a VAE or MPGAN-style GAN on jets or sparse MNIST",
        description="Train a generative model of point sets. Writes RUN/config.yaml, RUN/checkpoint.pt "
        "(every epoch), RUN/history.json and per-epoch sample plots. Options override --config.",
    )
    train.add_argument("--model", default=None, metavar="{vae,gan}", help="generative model (default gan)")
    train.add_argument("--data", default=None, metavar="mnist-superpixels|mnist-sparse|jets|PATH",
                       help="training data: an MNIST point-set kind, 'jets' (jetlab's default generated jets), "
                            "or a directory of hls4ml files / a JetNet file (default jets)")
    train.add_argument("--jet-class", default=None, metavar="{g,q,w,z,t}", help="jet class to learn (default g)")
    train.add_argument("--particles", type=int, default=None, help="leading particles per jet (default 30)")
    train.add_argument("--epochs", type=int, default=None, help="total epochs (default 10)")
    train.add_argument("--out", required=True, metavar="RUN", help="run directory")
    train.add_argument("--resume", action="store_true", help="continue RUN from its last checkpoint")
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--lr", type=float, default=None, help="learning rate (VAE; GAN: both lr_g and lr_d unless given)")
    train.add_argument("--lr-g", type=float, default=None, help="GAN generator learning rate")
    train.add_argument("--lr-d", type=float, default=None, help="GAN discriminator learning rate")
    train.add_argument("--device", default=None, help="cpu or cuda (default cpu)")
    train.add_argument("--config", default=None, metavar="FILE.yaml", help="settings file (FastsimConfig keys)")
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--max-train", type=int, default=None, help="use at most this many training sets")
    train.add_argument("--plot-every", type=int, default=None, help="sample plots every k epochs (default 1)")
    train.add_argument("--time-limit", type=float, default=None, metavar="MIN",
                       help="stop after the epoch that passes MIN minutes (--resume continues)")
    train.set_defaults(run=_train)

    sample = subparsers.add_parser(
        "sample",
        help="generate events from a trained run and write them",
        description="Generate N sets. Jets: a JetNet file (--format jetnet) or hls4ml files labelled with the "
        "trained class (--format hls4ml; --out a .h5 file or a directory). MNIST: an HDF5 of point sets and a PNG.",
    )
    sample.add_argument("run_dir", metavar="RUN")
    sample.add_argument("--n", type=int, required=True, help="number of sets to generate")
    sample.add_argument("--out", required=True, metavar="FILE")
    sample.add_argument("--format", default="jetnet", metavar="{jetnet,hls4ml}", help="jet file layout (default jetnet)")
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(run=_sample)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="compare generated with held-out real events (W1-M, W1-P, W1-EFP, COV, MMD, FPD)",
        description="Generate sets, compute the generation metrics against the held-out test split "
        "beside truth-vs-truth, print them, write RUN/evaluation.json and plots.",
    )
    evaluate.add_argument("run_dir", metavar="RUN")
    evaluate.add_argument("--data", default=None, help="real data to compare with (default: the run's)")
    evaluate.add_argument("--n", type=int, default=None, help="sets to compare (default: the whole test split)")
    evaluate.add_argument("--seed", type=int, default=1)
    evaluate.set_defaults(run=_evaluate)


def _given(args) -> dict:
    values = {field: getattr(args, opt) for opt, field in _OVERRIDES.items() if getattr(args, opt, None) is not None}
    if "lr" in values and args.lr_g is None and args.lr_d is None:
        values.setdefault("lr_g", values["lr"])
        values.setdefault("lr_d", values["lr"])
    return values


def _train(args) -> int:
    from jetlab.training.fastsim import (
        CONFIG_NAME,
        FastsimConfig,
        load_run_config,
        train_fastsim,
    )
    from jetlab.utils.config import load_config

    run_dir = Path(args.out)
    given = _given(args)
    if args.model is not None and args.model not in ("vae", "gan"):
        raise JetlabError(f"--model {args.model!r}: choose vae or gan")
    if args.jet_class is not None and args.jet_class not in _CLASS_CHOICES:
        raise JetlabError(f"--jet-class {args.jet_class!r}: choose one of {', '.join(_CLASS_CHOICES)}")
    if args.resume and (run_dir / CONFIG_NAME).is_file():
        config = load_run_config(run_dir)
        for key, value in given.items():
            if key in _RESUMABLE:
                setattr(config, key, value)
            elif getattr(config, key) != value:
                raise JetlabError(
                    f"{run_dir}: was trained with {key}={getattr(config, key)!r}; --resume continues it with its own "
                    f"settings (only {', '.join(_RESUMABLE)} may change), drop the option or use a new --out"
                )
    else:
        if args.resume:
            if not run_dir.is_dir():
                raise InputError(run_dir, "no such run directory to resume")
            raise InputError(run_dir, f"no {CONFIG_NAME} to resume from")
        config = load_config(FastsimConfig, args.config) if args.config else FastsimConfig()
        config = dataclasses.replace(config, **given)
    config.validate(source=args.config or "options")
    result = train_fastsim(config, run_dir, resume=args.resume)
    last = result["epochs"][-1] if result["epochs"] else {}
    losses = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if isinstance(v, float) and k not in ("time_s", "samples_per_s"))
    done = last.get("epoch", 0)
    print(f"trained {config.model} on {config.data} for {done} of {config.epochs} epochs -> {run_dir}"
          + (f" ({losses})" if losses else ""))
    if result.get("final_metrics"):
        from jetlab.metrics.generation import format_metrics_table

        print(format_metrics_table(result["final_metrics"]))
    return 0


def _sample(args) -> int:
    from jetlab.training.fastsim import write_samples

    if args.format not in ("jetnet", "hls4ml"):
        raise JetlabError(f"--format {args.format!r}: choose jetnet or hls4ml")
    written = write_samples(args.run_dir, args.n, args.out, fmt=args.format, seed=args.seed)
    print(f"wrote {args.n} generated sets: {', '.join(str(p) for p in written)}")
    return 0


def _evaluate(args) -> int:
    from jetlab.training.fastsim import evaluate_run

    if args.n is not None and args.n < 4:
        raise JetlabError(f"--n must be at least 4, got {args.n}")
    result = evaluate_run(args.run_dir, data=args.data, n=args.n, seed=args.seed)
    print(f"{result['n_generated']} generated vs {result['n_real']} held-out real sets ({result['data']}, epoch {result['epoch']})")
    print(result["table"])
    print(f"wrote {Path(args.run_dir) / 'evaluation.json'} and {', '.join(result['plots'])}")
    return 0

