"""The public API's docstrings carry the sections the API pages render (Google style, parsed
by griffe as ``mkdocs build`` parses them):

* every public model class of :mod:`jetlab.models` (an ``nn.Module`` in a module's
  ``__all__``): the paper it implements (``arXiv:``, in its docstring or its module's),
  ``Args:`` naming exactly its constructor's parameters, and a ``forward`` with ``Args:``,
  ``Returns:`` and ``Shapes:`` (tensor shapes with named dimensions);
* every public function of :mod:`jetlab.metrics` and of the model modules: ``Args:``
  naming exactly its parameters, ``Returns:`` (unless it returns None) and ``Shapes:``
  (unless it takes and gives plain numbers only: ``NO_SHAPES``); the same for the
  formulas of :mod:`jetlab.physics.kinematics` and :mod:`jetlab.physics.constituents`.

An ``Args:`` entry for a parameter that does not exist also fails ``mkdocs build --strict``
(griffe's warning); a parameter left out is caught here only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

griffe = pytest.importorskip("griffe", reason="griffe comes with the docs extra (pip install -e '.[docs]')")

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "metrics")
#: the physics modules whose public functions are checked too: the formulas written once
PHYSICS_MODULES = ("jetlab.physics.kinematics", "jetlab.physics.constituents")
#: functions whose arguments and results are all plain numbers (nothing to give a shape to)
NO_SHAPES = {
    "jetlab.metrics.feature_distances.fpd_sample_sizes",
    "jetlab.metrics.jet_samples.eval_size",
    "jetlab.metrics.tagging.auc_standard_error",
    "jetlab.metrics.generation.format_metrics_table",
    "jetlab.models.jedinet_triton.tile_sizes",
    # the registry: names, records and classes, no tensors
    "jetlab.models.registry.model_code_record",
    "jetlab.models.registry.resolve_model",
    "jetlab.models.registry.trusting",
    "jetlab.models.user_code.load_user_class",
    "jetlab.models.user_code.trusting",
}


def _sections(obj) -> dict[str, object]:
    """Title -> section of ``obj``'s Google-style docstring (``{}`` without one)."""
    if obj.docstring is None:
        return {}
    found = {}
    for section in obj.docstring.parse("google", warn_missing_types=False):
        kind = section.kind.value
        found[section.title if kind == "admonition" else kind] = section
    return found


def _parameter_names(function, *, skip_first: bool) -> list[str]:
    names = [p.name for p in function.parameters]
    return names[1:] if skip_first else names


def docstring_problems(function, *, skip_first: bool = False, what: str = "", returns: bool = True,
                       shapes: bool = True) -> list[str]:
    """What is missing from or wrong in the docstring of griffe function ``function``."""
    label = what or function.path
    sections = _sections(function)
    problems = []
    names = _parameter_names(function, skip_first=skip_first)
    documented = [p.name.lstrip("*") for p in sections["parameters"].value] if "parameters" in sections else []
    if names and "parameters" not in sections:
        problems.append(f"{label}: no Args section")
    missing = [n for n in names if n not in documented]
    unknown = [n for n in documented if n not in names]
    if missing and "parameters" in sections:
        problems.append(f"{label}: Args misses {', '.join(missing)}")
    if unknown:
        problems.append(f"{label}: Args names {', '.join(unknown)}, not a parameter")
    if returns and "returns" not in sections:
        problems.append(f"{label}: no Returns section")
    if shapes and "Shapes" not in sections:
        problems.append(f"{label}: no Shapes section")
    return problems


def _is_module_class(cls, package) -> bool:
    """Whether griffe class ``cls`` derives from ``torch.nn.Module`` (statically)."""
    for base in cls.bases:
        name = str(base)
        if name in ("nn.Module", "torch.nn.Module"):
            return True
        path = getattr(base, "canonical_path", name)
        if path.startswith("jetlab."):
            try:
                parent = package[path.removeprefix("jetlab.")]
            except KeyError:
                continue
            if parent.is_class and _is_module_class(parent, package):
                return True
    return False


def _public_objects(package, subpackage: str):
    """(module, object) for every name of a public module's ``__all__`` that it defines."""
    for module in package[subpackage].modules.values():
        if module.name.startswith("_"):
            continue
        for name in module.exports or ():
            obj = module.members.get(str(name))
            if obj is not None and not obj.is_alias:
                yield module, obj


def _class_args(cls) -> list[str] | None:
    """The names the class docstring's Args section documents (None: no such section)."""
    section = _sections(cls).get("parameters")
    return None if section is None else [p.name.lstrip("*") for p in section.value]


def model_class_problems(cls, module, package) -> list[str]:
    problems = []
    init = cls.members.get("__init__")
    if init is not None and not init.is_alias:  # the constructor's Args are in the class docstring
        names, documented = _parameter_names(init, skip_first=True), _class_args(cls)
        label = f"{cls.path} (class docstring)"
        if names and documented is None:
            problems.append(f"{label}: no Args section for the constructor")
        missing = [n for n in names if documented is not None and n not in documented]
        unknown = [n for n in documented or () if n not in names]
        if missing:
            problems.append(f"{label}: Args misses {', '.join(missing)}")
        if unknown:
            problems.append(f"{label}: Args names {', '.join(unknown)}, not a constructor parameter")
    text = (cls.docstring.value if cls.docstring else "") + (module.docstring.value if module.docstring else "")
    if "arXiv:" not in text:
        problems.append(f"{cls.path}: no paper reference (arXiv:...) in the class or module docstring")
    forward = cls.members.get("forward")
    if forward is not None and not forward.is_alias:
        problems += docstring_problems(forward, skip_first=True)
    return problems


def api_problems(package) -> list[str]:
    problems = []
    for subpackage in PACKAGES:
        for module, obj in _public_objects(package, subpackage):
            if obj.is_class and subpackage == "models" and _is_module_class(obj, package):
                problems += model_class_problems(obj, module, package)
            elif obj.is_function:
                problems += docstring_problems(obj, shapes=obj.path not in NO_SHAPES,
                                               returns=str(obj.returns) != "None")
    for path in PHYSICS_MODULES:
        module = package.get_member(path.removeprefix("jetlab.")) if "physics" in package.members else None
        if module is None:  # a package without them (the checker's own test)
            continue
        for name in module.exports or ():
            obj = module.members.get(str(name))
            if obj is not None and not obj.is_alias and obj.is_function:
                problems += docstring_problems(obj, returns=str(obj.returns) != "None")
    return problems


@pytest.fixture(scope="module")
def jetlab_api():
    return griffe.load("jetlab", search_paths=[ROOT / "src"], docstring_parser="google",
                       docstring_options={"warn_missing_types": False})


def test_public_models_and_metrics_document_their_arguments_results_and_shapes(jetlab_api):
    problems = api_problems(jetlab_api)
    assert not problems, "\n".join(problems)


def test_the_check_sees_public_models_and_metrics(jetlab_api):
    checked = {obj.path for sub in PACKAGES for _, obj in _public_objects(jetlab_api, sub)}
    for path in ("jetlab.models.jedinet.JEDINet", "jetlab.models.vae.SetVAE", "jetlab.models.flow.FlowGenerator",
                 "jetlab.metrics.w1.w1m", "jetlab.metrics.feature_distances.fpd", "jetlab.metrics.tagging.roc_curve"):
        assert path in checked, path
    for path in PHYSICS_MODULES:
        assert jetlab_api[path.removeprefix("jetlab.")].exports, path
    assert _is_module_class(jetlab_api["models.particlenet.ParticleNetLite"], jetlab_api)
    assert not _is_module_class(jetlab_api["models.jedinet_blocked.FusedEdgeSum"], jetlab_api)


_GOOD = '''
"""A module (arXiv:0000.00000)."""
from torch import nn

__all__ = ["Net", "metric"]


class Net(nn.Module):
    """A net.

    Args:
        width: hidden width.
        depth: layers.
    """

    def __init__(self, width: int, *, depth: int = 2):
        super().__init__()

    def forward(self, x, mask=None):
        """Logits.

        Args:
            x: inputs.
            mask: real entries.

        Returns:
            Logits.

        Shapes:
            - x: ``(batch, particles, features)``
            - returns: ``(batch, classes)``
        """


def metric(real, generated, *, seed: int = 0):
    """A number.

    Args:
        real: real jets.
        generated: generated jets.
        seed: random seed.

    Returns:
        The number.

    Shapes:
        - real, generated: ``(jets, particles, 3)``
    """
'''


@pytest.mark.parametrize("mutation, message", [
    (None, None),
    (("        depth: layers.\n", ""), "Net (class docstring): Args misses depth"),
    (("def __init__(self, width: int", "def __init__(self, size: int"), "Args names width, not a constructor"),
    (("            mask: real entries.\n", ""), "forward: Args misses mask"),
    (("def metric(real, generated", "def metric(real, fake"), "metric: Args misses fake"),
    (("        seed: random seed.\n", "        seed: random seed.\n        n: jets.\n"), "Args names n, not a parameter"),
    (('''    Shapes:
        - real''', '''    Notes:
        - real'''), "metric: no Shapes section"),
    (('''        Returns:
            Logits.
''', ""), "forward: no Returns section"),
    (('"""A module (arXiv:0000.00000)."""', '"""A module."""'), "no paper reference"),
])
def test_the_check_fails_on_a_missing_or_wrong_section(tmp_path, mutation, message):
    """The checker on a small package: clean as written; each mutation is one problem."""
    code = _GOOD if mutation is None else _GOOD.replace(*mutation)
    assert code != _GOOD or mutation is None
    package = tmp_path / "jetlab"
    for sub in PACKAGES:
        (package / sub).mkdir(parents=True)
        (package / sub / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "models" / "toy.py").write_text(code)
    (package / "metrics" / "toy.py").write_text(code.replace("class Net", "class _Net"))
    loaded = griffe.load("jetlab", search_paths=[tmp_path], docstring_parser="google")
    problems = api_problems(loaded)
    if message is None:
        assert problems == []
    else:
        assert any(message in p for p in problems), problems
