"""``jetlab fastsim``: train generative models of sparse events, sample from them, evaluate them.

Commands::

    jetlab fastsim train --model vae|gan|flow --data jets|mnist-superpixels|mnist-sparse|PATH
                         [--jet-class g] [--particles 30] --epochs E [--out RUN] [--resume] ...
    torchrun --standalone --nproc_per_node=2 -m jetlab fastsim train ...   # data-parallel
    jetlab fastsim sample RUN --n N --out FILE [--format jetnet|hls4ml] [--seed S] [--ode-steps N]
    jetlab fastsim evaluate RUN [--data ...] [--n N] [--seed S] [--ode-steps N] [--ode-solver S]
                                [--classifier-epochs E] [--classifier-time-limit-s S] [--classifier-repeats K]

Every setting of :class:`~jetlab.training.generator_config.GeneratorConfig` is a flag; network
options are ``--hp vae.hidden=128``, ``--hp generator.n_layers=3``,
``--hp discriminator.hidden=64``, ``--hp flow.hidden=64``. ``--ode-steps`` / ``--ode-solver``
of ``sample`` and ``evaluate`` override a flow run's sampler. The training procedures and the run directory are
described in :mod:`jetlab.training.generator`.
"""

from __future__ import annotations

from pathlib import Path

from jetlab.choices import ODE_SOLVERS
from jetlab.cli.settings import (
    add_deprecated_aliases,
    add_model_code_flag,
    add_settings_flags,
    build_config,
    parse_hyperparameters,
    positive_int,
)
from jetlab.distributed.env import relaunch_prefix
from jetlab.errors import RESUME, JetlabError
from jetlab.training.generator_config import GeneratorConfig, generator_family, models_using
from jetlab.utils.config import load_config

__all__ = ["register"]

_NETWORKS = ("vae", "generator", "discriminator", "flow")


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a VAE, an MPGAN-style GAN or a flow-matching generator on jets or sparse MNIST",
        description="Train a generative model of point sets (in one process, or data-parallel under "
                    "torchrun/mpiexec). Writes RUN/config.yaml, RUN/checkpoint.pt (every epoch), RUN/model.pt, "
                    "RUN/history.json and sample plots. Unset flags take their value from --config (or, with "
                    "--resume, RUN/config.yaml), else the defaults shown.",
    )
    train.add_argument("--out", metavar="RUN", help="run directory (default: runs/<model>-<class><particles>, "
                       "runs/<model>-<data> for MNIST)")
    train.add_argument("--resume", action="store_true", help="continue RUN from its last checkpoint")
    train.add_argument("--config", default=None, metavar="FILE.yaml", help="settings file (GeneratorConfig keys)")
    train.add_argument("--hp", action="append", default=[], metavar="NET.KEY=VALUE",
                       help="network option (YAML value), NET one of vae, generator, discriminator, flow; repeatable")
    train.add_argument("--stop-after", type=positive_int, metavar="E",
                       help="end this invocation after epoch E's checkpoint (continue later with --resume)")
    add_settings_flags(train, GeneratorConfig)
    add_model_code_flag(train)
    add_deprecated_aliases(train, {"--schedule": "--lr-schedule"})
    train.set_defaults(run=_train, on_stop=RESUME)

    sample = subparsers.add_parser(
        "sample",
        help="generate events from a trained run and write them",
        description="Generate N sets. Jets: a JetNet file (--format jetnet) or hls4ml files labelled with the "
        "trained class (--format hls4ml; --out a .h5 file or a directory). MNIST: an HDF5 of point sets and a PNG.",
    )
    sample.add_argument("run_dir", metavar="RUN", help="run directory written by `jetlab fastsim train`")
    sample.add_argument("--n", type=positive_int, required=True, help="number of sets to generate")
    sample.add_argument("--out", required=True, metavar="FILE",
                        help="output: an .h5 file, or a directory for --format hls4ml")
    sample.add_argument("--format", default="jetnet", choices=("jetnet", "hls4ml"),
                        help="jet file layout (default: %(default)s)")
    sample.add_argument("--seed", type=int, default=0, help="random seed of the generation (default: 0)")
    _sampler_flags(sample)
    add_model_code_flag(sample)
    sample.set_defaults(run=_sample)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="compare generated with held-out real events (W1-M, W1-P, W1-EFP, FPD, KPD, COV, MMD, classifier AUC)",
        description="Generate sets, compute the generation metrics against the held-out test split "
        "beside truth-vs-truth, print them, write RUN/evaluation.json and plots.",
    )
    evaluate.add_argument("run_dir", metavar="RUN", help="run directory written by `jetlab fastsim train`")
    evaluate.add_argument("--data", default=None, help="real data to compare with (default: the run's)")
    evaluate.add_argument("--n", type=int, default=None, help="sets to compare (default: the whole test split)")
    evaluate.add_argument("--seed", type=int, default=1,
                          help="random seed of the generated sets (default: 1); the real sample's split, the "
                               "metrics' draws and the classifier test have seeds of their own, so the "
                               "truth-vs-truth row is the same under every --seed")
    _sampler_flags(evaluate)
    evaluate.add_argument("--classifier-epochs", type=int, default=20, metavar="E",
                          help="epochs of the classifier two-sample test's training per classifier, at most: "
                               "the time limit may stop it earlier, and evaluation.json says how many it "
                               "trained (default: 20)")
    evaluate.add_argument("--classifier-time-limit-s", dest="classifier_seconds", type=float, default=120.0,
                          metavar="S", help="time limit of the classifier two-sample test's training per "
                                            "classifier (each of --classifier-repeats), in seconds (0: skip "
                                            "the test; default: 120)")
    evaluate.add_argument("--classifier-model", default="garnet", choices=("garnet", "jedinet-sumo"),
                          help="network of the classifier test (default: %(default)s)")
    evaluate.add_argument("--classifier-repeats", type=int, default=1, metavar="K",
                          help="classifiers trained per comparison, each with its own split, initialisation and "
                               "batch order: the AUC is their mean, its error the standard error of that mean "
                               "(1: one classifier, its error a bootstrap of the scored half; default: 1)")
    add_model_code_flag(evaluate)
    add_deprecated_aliases(evaluate, {"--classifier-seconds": "--classifier-time-limit-s"})
    evaluate.set_defaults(run=_evaluate)


def _sampler_flags(parser) -> None:
    parser.add_argument("--ode-steps", type=positive_int, default=None, metavar="N",
                        help="flow runs: ODE steps of the sampler (default: the run's)")
    parser.add_argument("--ode-solver", default=None, choices=ODE_SOLVERS,
                        help="flow runs: ODE solver of the sampler (default: the run's)")


def _sampler(args) -> dict:
    return {"ode_steps": args.ode_steps, "ode_solver": args.ode_solver}


def _network_options(items: list[str], base, *, model: str) -> dict:
    """``--hp vae.hidden=128`` -> ``{"vae_options": {..., "hidden": 128}}``; a network ``model``
    does not have is an error."""
    options: dict = {}
    for key, value in parse_hyperparameters(items).items():
        network, dot, name = key.partition(".")
        if not dot or network not in _NETWORKS or not name:
            raise JetlabError(f"--hp {key}: expected NET.KEY=VALUE with NET one of {', '.join(_NETWORKS)}")
        field = f"{network}_options"
        if generator_family(model) not in models_using(field):
            raise JetlabError(f"--hp {key}: the {network} network belongs to --model {models_using(field)[0]}, "
                              f"not {model}; drop it")
        options.setdefault(field, dict(getattr(base, field)))[name] = value
    return options


def _train(args) -> int:
    from jetlab.training.generator import train_generator  # lazy: start-up (torch)

    out = args.out or _default_out(args)
    if args.resume:
        from jetlab.training.run_dir import CONFIG_NAME, check_run_dir  # lazy: start-up (torch)

        check_run_dir(out, resume=True)
        base = load_config(GeneratorConfig, Path(out) / CONFIG_NAME)
    else:
        base = load_config(GeneratorConfig, args.config) if args.config else GeneratorConfig()
    overrides = _network_options(args.hp, base, model=args.model or base.model)
    if args.model and not args.resume:  # a model named afresh: a --config's recorded hash does not apply
        overrides["model_code"] = {}
    config = build_config(GeneratorConfig, args, out=out, resume=args.resume, overrides=overrides)
    result = train_generator(config, out, resume=args.resume, stop_after_epoch=args.stop_after)
    if result is None:
        return 0
    last = result["epochs"][-1] if result["epochs"] else {}
    numbers = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k.startswith(("train_", "val_")))
    done = last.get("epoch", 0)
    print(f"trained {config.model} on {config.data} for {done} of {config.epochs} epochs -> {out}"
          + (f" ({numbers})" if numbers else ""))
    if not result["finished"]:
        print(f"stopped before the end; continue with: {relaunch_prefix()}jetlab fastsim train --out {out} --resume")
    if result.get("final_metrics"):
        from jetlab.metrics.generation import format_metrics_table  # lazy: start-up (scipy)

        print(format_metrics_table(result["final_metrics"]))
    return 0


def _default_out(args) -> str:
    """``runs/<model>-<class><particles>`` for jets, ``runs/<model>-<data>`` for MNIST (the rule
    of ``jetlab tagger train``'s ``runs/<model>-<particles>``), from the flags or the defaults."""
    from jetlab.models.registry import short_name  # lazy: start-up (torch)

    model, data = short_name(args.model or GeneratorConfig.model), args.data or GeneratorConfig.data
    if "mnist" in Path(data).name:
        return f"runs/{model}-{Path(data).stem}"
    return f"runs/{model}-{args.jet_class or GeneratorConfig.jet_class}{args.particles or GeneratorConfig.particles}"


def _sample(args) -> int:
    from jetlab.training.generator_run import write_samples  # lazy: start-up (torch)

    written = write_samples(args.run_dir, args.n, args.out, fmt=args.format, seed=args.seed, sampler=_sampler(args))
    print(f"wrote {args.n} generated sets: {', '.join(str(p) for p in written)}")
    return 0


def _evaluate(args) -> int:
    from jetlab.training.generator_run import evaluate_run  # lazy: start-up (torch)

    if args.n is not None and args.n < 4:
        raise JetlabError(f"--n must be at least 4, got {args.n}")
    if args.classifier_seconds < 0:
        raise JetlabError(f"--classifier-time-limit-s must be >= 0, got {args.classifier_seconds}")
    if args.classifier_epochs < 1:
        raise JetlabError(f"--classifier-epochs must be >= 1, got {args.classifier_epochs}")
    if args.classifier_repeats < 1:
        raise JetlabError(f"--classifier-repeats must be >= 1, got {args.classifier_repeats}")
    result = evaluate_run(args.run_dir, data=args.data, n=args.n, seed=args.seed, sampler=_sampler(args),
                          classifier_seconds=args.classifier_seconds, classifier_epochs=args.classifier_epochs,
                          classifier_model=args.classifier_model, classifier_repeats=args.classifier_repeats)
    print(f"{result['n_generated']} generated vs {result['n_real']} held-out real sets ({result['data']}, "
          f"epoch {result['epoch']})")
    if args.n is not None and args.n > result["n_real"]:
        print(f"note: {result['notes'][0]}")
    print(result["table"])
    print(f"wrote {Path(args.run_dir) / 'evaluation.json'} and {', '.join(result['plots'])}")
    return 0
