"""One CLI vocabulary: every command names an idea the same way (a small table of synonyms
that must not appear side by side), every flag says what it does, a former spelling still
works with one line naming the new flag, and a flag the run would not use is refused."""

from __future__ import annotations

import argparse
import re

import pytest

from jetlab.cli.main import build_parser, main


def _commands() -> dict[str, argparse.ArgumentParser]:
    """"group command" -> its parser, for every jetlab command."""
    found = {}
    groups = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for group, group_parser in groups.choices.items():
        commands = next(a for a in group_parser._actions if isinstance(a, argparse._SubParsersAction))
        found.update({f"{group} {command}": parser for command, parser in commands.choices.items()})
    return found


COMMANDS = _commands()

#: idea -> the one flag every command uses for it, and the other spellings that must not appear
#: in any command's --help (former names stay accepted, hidden, see test_former_spellings_...)
SYNONYMS = {
    "learning-rate schedule": ("--lr-schedule", {"--schedule", "--lr-scheduler", "--scheduler"}),
    "sparsity schedule": ("--sparsity-schedule", {"--schedule", "--prune-schedule"}),
    "end early, --resume continues": ("--stop-after", {"--stop-after-epoch", "--stop-after-iteration", "--stop-at"}),
    "time limit of a run": ("--time-limit-min", {"--timeout-min", "--timeout", "--time-limit", "--max-minutes"}),
    "time limit of a study": ("--study-time-limit-min", {"--timeout-min", "--study-timeout-min"}),
    "time limit of a test": ("--classifier-time-limit-s", {"--classifier-seconds", "--classifier-timeout"}),
    "worker processes": ("--workers", {"--num-workers", "--n-workers", "--jobs", "--processes", "--nproc"}),
    "read only the first N": ("--limit", {"--max-jets", "--max-train", "--max-sets", "--max-items", "--first"}),
    "how many sets to make": ("--n", {"--num", "--n-samples", "--samples", "--count", "--n-jets"}),
    # a multi-class set's size per class: its own name, --n would hide the unit (total or per class?)
    "how many jets per class": ("--jets-per-class", {"--per-class", "--n-per-class", "--jets"}),
    "which jet class(es)": ("--jet-class", {"--classes", "--class", "--jet-classes"}),
    "how many sets a figure draws": ("--plot-samples", {"--plot", "--plot-n", "--n-plot"}),
    "an evaluation's name": ("--eval-name", {"--eval", "--name"}),
    "output": ("--out", {"--output", "--outdir", "--out-dir", "-o"}),
}


def _shown(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The flags --help lists (not the hidden former spellings)."""
    return {s: a for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings}


def test_the_table_names_flags_that_exist():
    shown = set().union(*(_shown(p) for p in COMMANDS.values()))
    assert {flag for flag, _ in SYNONYMS.values()} <= shown


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_idea_has_one_name_and_each_flag_a_help(command):
    shown = _shown(COMMANDS[command])
    other = [f"jetlab {command} {flag}: {idea} is {name} elsewhere" for idea, (name, others) in SYNONYMS.items()
             for flag in others & set(shown) if flag != name and flag not in {n for n, _ in SYNONYMS.values()}]
    silent = [f"jetlab {command} {flag}" for flag, action in shown.items() if flag not in ("-h", "--help")
              and not (action.help or "").strip()]
    silent += [f"jetlab {command} {action.metavar or action.dest}" for action in COMMANDS[command]._actions
               if not action.option_strings and not (action.help or "").strip()]  # positional arguments too
    assert not other, "\n".join(other)
    assert not silent, "flags without help:\n" + "\n".join(silent)


def test_a_default_is_said_one_way():
    """Every help that states its default says "(default: X)" (or "; default: X"), never
    "(default X)" or "(unset: X)", so a newcomer finds each default the same way (and
    add_settings_flags, seeing it, adds no second one)."""
    loose = []
    for command, parser in COMMANDS.items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.option_strings and action.help and action.help != argparse.SUPPRESS:
                text = " ".join(formatter._expand_help(action).split())
                if re.search(r"[(;,]\s*default(?!:)\b|\(unset\b|\bdefault: unset\b.*\bunset\b", text):
                    loose.append(f"jetlab {command} {action.option_strings[0]}: {text}")
    assert not loose, "\n".join(loose)
    # a help that only uses the word ("jetlab's default generated jets") still gets its default said
    assert "output) (default: jets)" in " ".join(COMMANDS["fastsim train"].format_help().split())


def test_help_says_required_where_the_parser_requires():
    """What --help says (e.g. of `hpo report --study`) matches what the parser demands."""
    wrong = []
    for command, parser in COMMANDS.items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.option_strings and action.help and action.help != argparse.SUPPRESS:
                if ("(required)" in formatter._get_help_string(action)) != action.required:
                    wrong.append(f"jetlab {command} {action.option_strings[0]}")
    assert not wrong, "\n".join(wrong)
    assert "--study NAME name of the study to report on (required)" in " ".join(COMMANDS["hpo report"].format_help().split())


@pytest.mark.parametrize("command, old, new, value, dest, parsed", [
    ("tagger train", "--schedule", "--lr-schedule", "cosine", "schedule", "cosine"),
    ("tagger train", "--stop-after-epoch", "--stop-after", "2", "stop_after", 2),
    ("tagger train", "--num-workers", "--workers", "3", "num_workers", 3),
    ("tagger prune RUN", "--schedule", "--sparsity-schedule", "linear", "schedule", "linear"),
    ("tagger export RUN --format onnx", "--max-jets", "--limit", "5", "limit", 5),
    ("tagger evaluate RUN --data D", "--name", "--eval-name", "x", "eval_name", "x"),
    ("tagger compare RUN", "--eval", "--eval-name", "x", "eval_name", "x"),
    ("fastsim train", "--max-train", "--limit", "64", "max_train", 64),
    ("fastsim train", "--stop-after-epoch", "--stop-after", "1", "stop_after", 1),
    ("hpo run", "--timeout-min", "--study-time-limit-min", "0.5", "study_time_limit_min", 0.5),
    ("hpo run", "--schedule", "--lr-schedule", "none", "schedule", "none"),
    ("fastsim evaluate RUN", "--classifier-seconds", "--classifier-time-limit-s", "5", "classifier_seconds", 5.0),
    ("data generate --out D", "--classes", "--jet-class", "g,t", "classes", "g,t"),
    ("data jetnet SRC --out D", "--classes", "--jet-class", "z", "classes", "z"),
    ("data mnist --out D", "--plot", "--plot-samples", "6", "plot", 6),
])
def test_former_spellings_still_work_and_name_the_new_flag(capsys, command, old, new, value, dest, parsed):
    argv = command.split()
    args = build_parser(argv).parse_args([*argv, old, value])
    assert getattr(args, dest) == parsed
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and old in err and new in err and "deprecated" in err
    assert old not in _shown(COMMANDS[" ".join(argv[:2])]) and f"{old} " not in COMMANDS[" ".join(argv[:2])].format_help()
    build_parser(argv).parse_args([*argv, new, value])
    assert capsys.readouterr().err == ""  # the new spelling says nothing


@pytest.mark.parametrize("flags, message", [
    (["--model", "gan", "--lr", "1e-3"], "--lr applies to --model vae/flow only, not gan (the GAN's learning rates "
                                         "are --lr-g and --lr-d)"),
    (["--model", "vae", "--lr-g", "1e-3"], "--lr-g applies to --model gan only, not vae (its learning rate is --lr)"),
    (["--model", "flow", "--lr-d", "1e-3"], "--lr-d applies to --model gan only, not flow"),
    (["--model", "vae", "--adam-beta1", "0.8"], "--adam-beta1 applies to --model gan only, not vae"),
    (["--model", "flow", "--adam-beta2", "0.9"], "--adam-beta2 applies to --model gan only, not flow"),
    (["--model", "gan", "--optimizer", "sgd", "--adam-beta1", "0.8"], "--adam-beta1 applies to --optimizer adam only"),
    (["--model", "gan", "--kl-weight", "0.1"], "--kl-weight applies to --model vae only, not gan"),
    (["--model", "vae", "--d-steps", "2"], "--d-steps applies to --model gan only, not vae"),
    (["--model", "flow", "--latent-dim", "8"], "--latent-dim applies to --model vae/gan only, not flow"),
    (["--model", "vae", "--ode-steps", "4"], "--ode-steps applies to --model flow only, not vae"),
    (["--model", "vae", "--hp", "generator.hidden=8"], "--hp generator.hidden: the generator network belongs to "
                                                       "--model gan, not vae"),
    (["--model", "vae", "--momentum", "0.5"], "--momentum applies to --optimizer sgd"),
    (["--data", "mnist-sparse", "--jet-class", "t"], "--jet-class applies to jets only, not --data mnist-sparse"),
    (["--model", "vae", "--lr-schedule", "cosine", "--lr-patience", "3"], "--lr-patience applies to --lr-schedule "
                                                                          "plateau only, not cosine"),
])
def test_fastsim_train_refuses_what_the_model_does_not_use(tmp_path, capsys, flags, message):
    # --epochs 0 is refused too, after the flags: a missing refusal fails at once instead of training
    assert main(["fastsim", "train", "--out", str(tmp_path / "run"), "--epochs", "0", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "drop it" in err
    assert not (tmp_path / "run").exists()  # refused before anything is written


@pytest.mark.parametrize("flags, message", [
    (["--momentum", "0.5"], "--momentum applies to --optimizer sgd (and --strategy gem) only, not --optimizer adam"),
    (["--optimizer", "adadelta", "--momentum", "0.5"], "not --optimizer adadelta"),
    (["--lr-schedule", "none", "--lr-factor", "0.1"], "--lr-factor applies to --lr-schedule plateau only, not none"),
])
def test_tagger_train_refuses_what_the_optimizer_or_schedule_does_not_use(tmp_path, capsys, flags, message):
    assert main(["tagger", "train", "--model", "dnn", "--out", str(tmp_path / "run"), "--epochs", "0", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()


def test_defaults_and_used_flags_are_not_refused():
    """The same settings the refusals watch, given where they apply, pass (the refusal looks
    at the flags given, not at values that differ from a default)."""
    from jetlab.cli.settings import build_config
    from jetlab.training.generator import GeneratorConfig
    from jetlab.training.tagger import TaggerTrainConfig

    parser = build_parser(["fastsim"])
    for flags in (["--model", "gan", "--lr-g", "2e-4", "--adam-beta1", "0.6"], ["--model", "vae", "--lr", "3e-4"],
                  ["--model", "flow", "--lr", "3e-4", "--ode-steps", "4"], ["--model", "gan"]):
        args = parser.parse_args(["fastsim", "train", *flags])
        build_config(GeneratorConfig, args, out="unused", resume=False)
    args = build_parser(["tagger"]).parse_args(["tagger", "train", "--optimizer", "sgd", "--momentum", "0.5",
                                                "--lr-factor", "0.3"])
    assert build_config(TaggerTrainConfig, args, out="unused", resume=False).momentum == 0.5


def test_hpo_refuses_another_generators_setting(tmp_path, capsys):
    pytest.importorskip("optuna")
    assert main(["hpo", "run", "--model", "vae", "--dir", str(tmp_path), "--trials", "0", "--lr-g", "1e-3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--lr-g applies to --model gan only, not vae" in err


def test_fastsim_train_out_follows_the_taggers_rule():
    from jetlab.cli.fastsim import _default_out

    parser = build_parser(["fastsim"])
    assert _default_out(parser.parse_args(["fastsim", "train", "--model", "vae", "--jet-class", "t"])) == "runs/vae-t30"
    assert _default_out(parser.parse_args(["fastsim", "train", "--data", "mnist-sparse"])) == "runs/gan-mnist-sparse"
    assert not COMMANDS["fastsim train"]._option_string_actions["--out"].required
    assert not COMMANDS["tagger train"]._option_string_actions["--out"].required


def test_hpo_run_help_groups_the_flags_by_the_studies_they_apply_to():
    groups = {g.title: {s for a in g._group_actions for s in a.option_strings}
              for g in COMMANDS["hpo run"]._action_groups}
    assert {"--study", "--storage"} <= groups["study and storage"]
    assert {"--model", "--space", "--trials"} <= groups["search"]
    assert {"--epochs", "--lr", "--lr-schedule", "--data"} <= groups["fixed training settings (every study)"]
    assert {"--workers", "--weight-decay", "--l1"} <= groups["tagger studies"]
    assert {"--kl-weight", "--lr-g", "--ode-steps", "--jet-class"} <= groups["generator studies"]
    assert not groups["tagger studies"] & groups["generator studies"]
    text = " ".join(COMMANDS["hpo run"].format_help().split())
    assert "maximum epochs, counted across resumes (default: 20 taggers, 10 generators)" in text
