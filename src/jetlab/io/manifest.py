"""The layout of a generated jet directory: ``generation.json`` and the files it promises.

``jetlab data generate --out DIR`` writes ``DIR/generation.json`` first (the command's
settings), then the files one by one. The manifest therefore says what a finished
directory holds: :func:`planned_files` lists the files (``jets_<class>_<P>p_<NNNN>.h5``,
at most :data:`MAX_JETS_PER_FILE` jets each, cut at :data:`BLOCK_JETS` boundaries) and
:func:`check_complete` refuses a directory that holds fewer (an interrupted run), for every
reader, with the command that finishes it.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from jetlab.errors import InputError
from jetlab.io.layout import CLASS_NAMES, MAX_JETS_PER_FILE

__all__ = [
    "BLOCK_JETS",
    "MANIFEST_NAME",
    "PlannedFile",
    "check_complete",
    "file_name",
    "finish_command",
    "planned_files",
    "read_manifest",
]

MANIFEST_NAME = "generation.json"
#: jets per reproducible unit of work (one Pythia seed each)
BLOCK_JETS = 100


@dataclass(frozen=True)
class PlannedFile:
    """One file of a generated directory: ``name``, its ``jet_class``, jets ``start`` .. ``stop``."""

    name: str
    jet_class: str
    start: int
    stop: int

    @property
    def n_jets(self) -> int:
        return self.stop - self.start


def file_name(jet_class: str, n_particles: int, file_no: int) -> str:
    return f"jets_{jet_class}_{n_particles}p_{file_no:04d}.h5"


def planned_files(classes, jets_per_class: int, n_particles: int) -> list[PlannedFile]:
    """The files a generation of ``jets_per_class`` jets of each of ``classes`` writes, in order."""
    per_file = min(MAX_JETS_PER_FILE, jets_per_class)
    per_file -= per_file % BLOCK_JETS if per_file > BLOCK_JETS else 0
    plan = []
    for jet_class in classes:
        for file_no, start in enumerate(range(0, jets_per_class, per_file)):
            stop = min(start + per_file, jets_per_class)
            plan.append(PlannedFile(file_name(jet_class, n_particles, file_no), jet_class, start, stop))
    return plan


def read_manifest(directory) -> dict | None:
    """``directory``'s generation manifest, None if it has none; InputError if unreadable."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        manifest["classes"], manifest["jets_per_class"], manifest["n_particles"]  # noqa: B018 - the keys must exist
    except (OSError, ValueError, TypeError, KeyError):
        raise InputError(path, "corrupt generation manifest; remove the directory and generate it again") from None
    return manifest


def finish_command(directory, manifest: dict) -> str:
    """The ``jetlab data generate`` command that (re)creates ``directory`` from ``manifest``."""
    return (
        f"jetlab data generate --jet-class {','.join(manifest['classes'])} --jets-per-class "
        f"{manifest['jets_per_class']} --particles {manifest['n_particles']} --seed {manifest.get('seed', 0)} "
        f"--out {shlex.quote(str(directory))}"
    )


def check_complete(directory, jet_counts: dict[str, int]) -> None:
    """Raise InputError unless ``directory`` holds every file its manifest promises.

    ``jet_counts``: file name -> jets, of the jet files found in ``directory``.
    """
    manifest = read_manifest(directory)
    if manifest is None:
        return
    if not all(c in CLASS_NAMES for c in manifest["classes"]):
        raise InputError(Path(directory) / MANIFEST_NAME, "corrupt generation manifest (unknown jet class)")
    plan = planned_files(manifest["classes"], manifest["jets_per_class"], manifest["n_particles"])
    have = sum(jet_counts.get(f.name) == f.n_jets for f in plan)
    if have < len(plan):
        raise InputError(
            directory,
            f"incomplete: {have} of {len(plan)} files; rerun the same `jetlab data generate` command to finish "
            f"({finish_command(directory, manifest)})",
        )
