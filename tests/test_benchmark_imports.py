"""The benchmark scripts import jetlab names inside functions too; a rename in the package
must not leave them broken until someone runs them (bench_generation and bench_generative
were, after the training-engine redesign)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("bench_*.py"))


def jetlab_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name or None) of every ``import jetlab...`` / ``from jetlab... import`` in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "jetlab":
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names if alias.name.split(".")[0] == "jetlab"]
    return found


def test_there_are_benchmarks_to_check():
    assert len(BENCHMARKS) >= 6
    assert any(jetlab_imports(path) for path in BENCHMARKS)


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_every_jetlab_import_of_a_benchmark_resolves(path):
    missing = []
    for line, module_name, name in jetlab_imports(path):
        module = importlib.import_module(module_name)
        if name is not None and not hasattr(module, name):
            try:
                importlib.import_module(f"{module_name}.{name}")
            except ImportError:
                missing.append(f"{path.name}:{line}: {module_name}.{name}")
    assert not missing, missing
