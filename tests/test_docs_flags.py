"""Every `jetlab` flag the README and the docs name exists: on a command line written out
(``jetlab tagger train --epochs 5``) in that very command's parser, and a flag named on its own
(```--time-limit-min```, an option table's first column) in some jetlab command."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from jetlab.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
#: flags that docs name for other programs (pip, pytest, mkdocs, torchrun, mpiexec, ...)
OTHER_PROGRAMS = {"--strict", "--standalone", "--nproc_per_node", "--nnodes", "--rdzv", "--upgrade", "--quiet",
                  "--help", "--version", "--disable-auto-cleanup", "--oversubscribe", "--allow-run-as-root",
                  "--host", "--hosts", "--scheduler-file", "--nworkers", "--nthreads", "--durations",
                  "--no-deps", "--index-url", "--extra-index-url", "--tb", "--lf", "--maxfail"}


def _commands() -> dict[tuple[str, str], set[str]]:
    """(group, command) -> the option strings its parser takes."""
    found = {}
    groups = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for group, group_parser in groups.choices.items():
        commands = next(a for a in group_parser._actions if isinstance(a, argparse._SubParsersAction))
        for command, parser in commands.choices.items():
            found[(group, command)] = {s for action in parser._actions for s in action.option_strings
                                       if action.help != argparse.SUPPRESS}  # not the deprecated spellings
    return found


COMMANDS = _commands()
ALL_FLAGS = set().union(*COMMANDS.values())
#: a line naming this word lists former spellings (still accepted, hidden from --help)
FORMER = "formerly"


def _command_lines(text: str):
    """(line number, group, command, flags) of each written-out jetlab command (continuation
    lines joined; a pipe, ';' or '&&' ends it)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    for number, line in enumerate(joined.splitlines(), 1):
        for piece in re.split(r"\|\||&&|;|\|(?= )", line):
            match = re.search(r"(?:^|[\s`(/])jetlab\s+([a-z]+)\s+([a-z]+)\b(.*)", piece)
            if match and (match.group(1), match.group(2)) in COMMANDS:
                yield number, match.group(1), match.group(2), FLAG.findall(match.group(3).split("#")[0])


def _named_flags(text: str):
    """Flags named in inline code on their own: ```--flag``` or ```--flag VALUE``` (option tables)."""
    for number, line in enumerate(text.splitlines(), 1):
        for span in re.findall(r"`(--[a-z][^`]*)`", line):
            yield number, span.split()[0].split("=")[0]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_flag_the_docs_name_exists(page):
    text = page.read_text()
    wrong = [f"{page.name}:{n}: jetlab {g} {c} has no {flag}"
             for n, g, c, flags in _command_lines(text) for flag in flags
             if flag not in COMMANDS[(g, c)] and flag not in OTHER_PROGRAMS]
    lines = text.splitlines()
    wrong += [f"{page.name}:{n}: no jetlab command has {flag}" for n, flag in _named_flags(text)
              if flag not in ALL_FLAGS and flag not in OTHER_PROGRAMS and FORMER not in lines[n - 1]]
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_commands_and_tables():
    text = "```\njetlab tagger train --epochs 3 \\\n    --no-such-flag 1  # --comment-flag\n```\n| `--time-limit MIN` | x |\n"
    lines = list(_command_lines(text))
    assert lines == [(2, "tagger", "train", ["--epochs", "--no-such-flag"])]
    assert list(_named_flags(text)) == [(5, "--time-limit")]
    assert "--time-limit" not in ALL_FLAGS and "--epochs" in COMMANDS[("tagger", "train")]


def test_every_flag_says_what_it_does_and_its_default_once():
    groups = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    silent, twice = [], []
    for group, group_parser in groups.choices.items():
        commands = next(a for a in group_parser._actions if isinstance(a, argparse._SubParsersAction))
        for command, parser in commands.choices.items():
            silent += [f"jetlab {group} {command} {action.option_strings[0]}" for action in parser._actions
                       if action.option_strings and not action.help and action.help != argparse.SUPPRESS]
            shown = {action.option_strings[0]: parser._get_formatter()._expand_help(action)
                     for action in parser._actions if action.option_strings and action.help}
            twice += [f"jetlab {group} {command} {flag}: {text}" for flag, text in shown.items()
                      if len(re.findall(r"[(;,]\s*default\b", text)) > 1]
    assert not silent, "flags without help:\n" + "\n".join(silent)
    assert not twice, "defaults said twice:\n" + "\n".join(twice)


@pytest.mark.parametrize("page", [*PAGES, ROOT / "RESULTS.md", ROOT / "BENCHMARKS.md"], ids=lambda p: p.name)
def test_pages_hold_no_control_characters(page):
    # a formula written through a non-raw Python string turns \frac, \right, \text, \big into \f, \r,
    # \t, \b; the bytes are searched whole (read_text would turn \r into a line end, splitlines \f)
    text = page.read_bytes().decode("utf-8")
    bad = [(text.count("\n", 0, m.start()) + 1, hex(ord(m.group()))) for m in re.finditer(r"[\x00-\x09\x0b-\x1f]", text)]
    assert not bad, f"{page.name}: control characters (line, code) {bad[:5]}"
