"""jetlab's packages stand on floors (docs/architecture.md): a module imports only from its own
floor or the floors below, and no chain of imports between jetlab modules comes back to where
it started. An import written inside a function counts like any other (hiding a dependency
there does not remove it), and each one says in a comment why it is not at the top:

* ``# lazy: start-up`` — the imported module pulls in a heavy library (torch, matplotlib,
  scipy, numba, ...) that the importing module does not, so commands that never reach this
  function start faster (``jetlab --help``, ``jetlab data info``);
* ``# lazy: optional`` — the imported module needs an optional extra (MPI, Optuna, Triton,
  the export tools, ...) that may not be installed.

Both reasons are checked against the code, so a stale comment fails too. The comment goes on
the import's line or on the line just above it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

#: the floors, bottom first; a package's submodules stand on its floor (docs/architecture.md)
FLOORS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("jetlab", "jetlab.errors", "jetlab.choices", "jetlab.utils")),
    ("file layouts, reading and writing", ("jetlab.io",)),
    ("physics", ("jetlab.physics",)),
    ("data making", ("jetlab.data",)),
    ("building blocks", ("jetlab.models", "jetlab.losses", "jetlab.metrics", "jetlab.viz")),
    ("distributed machinery", ("jetlab.distributed",)),
    ("training engine", ("jetlab.training",)),
    ("applications", ("jetlab.pruning", "jetlab.export", "jetlab.hpo")),
    ("command line", ("jetlab.cli", "jetlab.__main__")),
]

#: libraries slow enough to import (0.1 s or more on a laptop) that keeping them out of a
#: command's start-up is worth an import inside a function
HEAVY = frozenset({"torch", "matplotlib", "scipy", "numba", "mplhep", "skimage", "ot", "h5py",
                   "sklearn", "mlxtend", "pythia8mc", "fastjet"})
#: libraries of the optional extras (pyproject.toml), absent from a plain install
OPTIONAL = frozenset({"mpi4py", "dask", "distributed", "triton", "onnx", "onnxscript", "onnxruntime",
                      "hls4ml", "optuna", "cmaes", "psycopg", "torch_geometric"})
REASONS = {"start-up": HEAVY, "optional": OPTIONAL}


@dataclass(frozen=True)
class Import:
    source: str  # the importing jetlab module
    target: str  # the imported jetlab module
    line: int
    in_function: bool


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    lines: list[str]

    def comment(self, line: int) -> str:
        """The comment at the end of line ``line`` (1-based; an import line holds no strings),
        else the comment line just above it, else ''."""
        text = self.lines[line - 1]
        if "#" in text:
            return text[text.index("#"):]
        above = self.lines[line - 2].strip() if line >= 2 else ""
        return above if above.startswith("#") else ""


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def load_package(src: Path = SRC) -> dict[str, Module]:
    modules = {}
    for path in sorted((src / "jetlab").rglob("*.py")):
        text = path.read_text()
        name = module_name(path, src)
        modules[name] = Module(name, path, ast.parse(text, str(path)), text.splitlines())
    return modules


def _function_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes inside a function body (imports there run only when it is called)."""
    inside: set[int] = set()
    todo = [(tree, False)]
    while todo:
        node, in_function = todo.pop()
        if in_function:
            inside.add(id(node))
        in_body = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        todo.extend((child, in_body) for child in ast.iter_child_nodes(node))
    return inside


def _existing(name: str, modules) -> str:
    """The deepest jetlab module that ``name`` (a module or a name inside one) refers to."""
    while name not in modules:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: Module, modules: dict[str, Module]) -> list[Import]:
    """Every import of a jetlab module in ``module``: ``import jetlab.x``, ``from jetlab.x import
    y`` (y a submodule or a name), relative imports resolved, at module level or in functions."""
    package = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
    in_function = _function_nodes(module.tree)
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            names = [f"{origin}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "jetlab" or name.startswith("jetlab."):
                found.append(Import(module.name, _existing(name, modules), node.lineno, id(node) in in_function))
    return found


def all_imports(modules: dict[str, Module]) -> list[Import]:
    return [imp for module in modules.values() for imp in imports_of(module, modules)]


@cache
def package_imports() -> list[Import]:
    return all_imports(load_package())


def dependency_graph(imports: list[Import], modules) -> dict[str, set[str]]:
    """module -> the jetlab modules importing it runs: the target and, as Python does, the
    packages above the target that are not already above the importer."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for imp in imports:
        target = imp.target
        while target and target != "jetlab" and not (imp.source + ".").startswith(target + "."):
            if target != imp.source:
                graph[imp.source].add(target)
            target = target.rpartition(".")[0]
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a chain ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def floor_of(name: str) -> int:
    for number, (_, packages) in enumerate(FLOORS):
        for package in packages:
            if name == package or (package != "jetlab" and name.startswith(package + ".")):
                return number
    raise AssertionError(f"{name} stands on no floor: add its package to FLOORS and docs/architecture.md")


def third_party_at_top(module: Module) -> set[str]:
    """Top-level names of the non-jetlab libraries ``module`` imports at module level."""
    inside = _function_nodes(module.tree)
    names = set()
    for node in ast.walk(module.tree):
        if id(node) in inside:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names - {"jetlab"}


def loads_at_import(modules, imports) -> dict[str, set[str]]:
    """module -> the libraries that importing it loads (its module-level imports, followed)."""
    top_graph = dependency_graph([imp for imp in imports if not imp.in_function], modules)
    direct = {name: third_party_at_top(module) for name, module in modules.items()}
    loaded = {}
    for name in modules:
        seen, todo = {name}, [name]
        while todo:
            current = todo.pop()
            parts = current.split(".")
            # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            parents = {".".join(parts[:i]) for i in range(1, len(parts))}
            for nxt in top_graph[current] | parents:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        loaded[name] = set().union(*(direct[other] for other in seen))
    return loaded


def lazy_import_problems(modules, imports) -> list[str]:
    """Imports inside functions without a reason, or whose stated reason does not hold."""
    loaded = loads_at_import(modules, imports)
    problems = []
    for imp in sorted({imp for imp in imports if imp.in_function}, key=lambda i: (i.source, i.line)):
        comment = modules[imp.source].comment(imp.line)
        where = f"{imp.source}, line {imp.line}, imports {imp.target}"
        reason = comment.removeprefix("#").strip().removeprefix("lazy:").strip().split(" ")[0].rstrip(",;:")
        if not comment.lstrip("# ").startswith("lazy:") or reason not in REASONS:
            problems.append(f"{where} inside a function without '# lazy: start-up' or '# lazy: optional' "
                            "(move it to the top of the module, or say why it stays)")
            continue
        gained = (loaded[imp.target] - loaded[imp.source]) & REASONS[reason]
        if not gained:
            problems.append(f"{where} inside a function for '{reason}', but importing it at the top "
                            f"would load no {'heavy' if reason == 'start-up' else 'optional'} library "
                            f"that {imp.source} does not load already: move it to the top")
    return problems


def upward_imports(imports) -> list[str]:
    return sorted({f"{imp.source} (floor {floor_of(imp.source)}, {FLOORS[floor_of(imp.source)][0]}) imports "
                   f"{imp.target} (floor {floor_of(imp.target)}, {FLOORS[floor_of(imp.target)][0]}), line {imp.line}"
                   for imp in imports if floor_of(imp.target) > floor_of(imp.source)})


# --- the package -------------------------------------------------------------------------------


def test_the_walk_sees_the_package():
    """Guards the checks below against passing on an empty or misread package."""
    modules = load_package()
    imports = package_imports()
    assert len(modules) > 100 and len(imports) > 300
    assert any(imp.in_function for imp in imports)
    assert any(imp.source == "jetlab.cli.main" and imp.target == "jetlab.errors" for imp in imports)


def test_every_module_stands_on_a_floor():
    for name in load_package():
        floor_of(name)


def test_no_import_points_up():
    found = upward_imports(package_imports())
    assert not found, "imports from a lower floor to a higher one:\n" + "\n".join(found)


def test_no_import_cycle():
    modules = load_package()
    cycle = find_cycle(dependency_graph(package_imports(), modules))
    assert cycle is None, "import cycle between jetlab modules: " + " -> ".join(cycle)


def test_imports_inside_functions_say_why():
    modules = load_package()
    problems = lazy_import_problems(modules, package_imports())
    assert not problems, "\n".join(problems)


def test_the_floors_are_documented():
    page = (ROOT / "docs" / "architecture.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    documented = [tuple(sorted(part.strip("` ") for part in row.split("|")[2].split(",") if part.strip()))
                  for row in rows]
    assert documented == [tuple(sorted(packages)) for _, packages in reversed(FLOORS)]


# --- the checks themselves, on small made-up packages --------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, Module]:
    for rel, text in files.items():
        path = tmp_path / "jetlab" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    load_package.cache_clear()
    try:
        return load_package(tmp_path)
    finally:
        load_package.cache_clear()


BASE = {"__init__.py": "", "errors.py": "", "io/__init__.py": "", "training/__init__.py": "",
        "models/__init__.py": ""}


def test_a_cycle_through_a_function_import_is_found(tmp_path):
    modules = _package(tmp_path, {**BASE,
                                  "training/a.py": "from . import b\n",
                                  "training/b.py": "def f():\n    from jetlab.training.c import x  # lazy: start-up\n",
                                  "training/c.py": "import torch\nfrom jetlab.training import a\nx = 1\n"})
    cycle = find_cycle(dependency_graph(all_imports(modules), modules))
    assert cycle == ["jetlab.training.a", "jetlab.training.b", "jetlab.training.c", "jetlab.training.a"]


def test_a_cycle_through_a_package_init_is_found(tmp_path):
    """``from jetlab.io.x import y`` runs jetlab/io/__init__.py first, which may come back."""
    modules = _package(tmp_path, {**BASE,
                                  "io/__init__.py": "from jetlab.io.x import y\n",
                                  "io/x.py": "from jetlab.models.m import z\ny = 1\n",
                                  "models/m.py": "from jetlab.io.x import y\nz = 2\n"})
    assert find_cycle(dependency_graph(all_imports(modules), modules)) is not None
    acyclic = _package(tmp_path, {"models/m.py": "z = 2\n"})
    assert find_cycle(dependency_graph(all_imports(acyclic), acyclic)) is None


def test_an_upward_import_is_found(tmp_path):
    modules = _package(tmp_path, {**BASE, "io/files.py": "def f():\n    from ..training import engine\n",
                                  "training/engine.py": ""})
    assert upward_imports(all_imports(modules)) == [
        "jetlab.io.files (floor 1, file layouts, reading and writing) imports jetlab.training.engine "
        "(floor 6, training engine), line 2"]


@pytest.mark.parametrize("comment, ok", [
    ("", False),
    ("  # because", False),
    ("  # lazy: start-up (torch)", True),
    ("  # lazy: optional", False),  # models/net.py needs no optional extra
])
def test_a_lazy_import_needs_a_reason_that_holds(tmp_path, comment, ok):
    modules = _package(tmp_path, {**BASE, "models/net.py": "import torch\n",
                                  "io/read.py": f"def f():\n    from jetlab.models import net{comment}\n"})
    assert not lazy_import_problems(modules, all_imports(modules)) == ok


def test_an_optional_extra_is_a_reason(tmp_path):
    modules = _package(tmp_path, {**BASE, "models/kernels.py": "import triton\n",
                                  "models/net.py": "def f():\n    from . import kernels  # lazy: optional (triton)\n"})
    assert lazy_import_problems(modules, all_imports(modules)) == []
    assert Import("jetlab.models.net", "jetlab.models.kernels", 2, True) in all_imports(modules)


def test_a_lazy_import_of_what_is_loaded_anyway_is_refused(tmp_path):
    modules = _package(tmp_path, {**BASE, "models/net.py": "import torch\n",
                                  "models/other.py": "import torch\n\n\ndef f():\n"
                                                     "    # lazy: start-up\n    from . import net\n"})
    problems = lazy_import_problems(modules, all_imports(modules))
    assert len(problems) == 1 and "would load no heavy library" in problems[0]
