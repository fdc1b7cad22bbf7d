"""The documentation site builds in strict mode: a broken link, anchor or API reference
(a docstring naming a jetlab object that does not exist) fails the build.

Needs the ``docs`` extra (``pip install -e ".[docs]"``, which CI installs); skipped with a
reason without it. Build by hand with ``mkdocs build --strict``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings[python] is not installed (docs extra)")
pytest.importorskip("material", reason="mkdocs-material is not installed (docs extra)")


def _build(project: Path, site: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(project / "src"))
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(project / "mkdocs.yml"), "-d", str(site)],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.mark.slow
def test_site_builds_strictly(tmp_path):
    done = _build(ROOT, tmp_path / "site")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "WARNING" not in log, log
    for page in ("index.html", "formulas/index.html", "layouts/index.html", "api/models/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    models = (tmp_path / "site" / "api/models/index.html").read_text()
    assert "jetlab.models.jedinet.JEDINet" in models  # the API pages are generated from the code
    assert 'class="autorefs' in models  # ... with the docstrings' cross-references resolved
    forward = models[models.index('id="jetlab.models.dnn.DNNTagger.forward"'):]
    forward = forward[:forward.index('class="doc doc-object doc-module"')]
    for section in ('doc-section-title">Parameters:', 'doc-section-title">Returns:', "<summary>Shapes</summary>"):
        assert section in forward, section  # Google-style Args / Returns / Shapes rendered
    assert "<code>(batch, n_classes)</code>" in forward
    formulas = (tmp_path / "site" / "formulas/index.html").read_text()
    assert 'class="arithmatex"' in formulas and "katex.min.js" in formulas  # rendered by the bundled KaTeX
    for page in (tmp_path / "site").rglob("*.html"):  # nothing fetched from the network at view time
        remote = re.findall(r'<(?:script|link)\b[^>]*(?:src|href)="(?:https?:)?//[^"]*"', page.read_text())
        assert not remote, (page, remote)


def _small_project(where: Path, page: str, *, src: Path = ROOT / "src") -> Path:
    """A three-page site built through the project's own mkdocs.yml (its plugins, markdown
    extensions, griffe extension and validation settings; only ``nav`` is replaced): ``page``
    (Markdown) as the home page, a page with one section, and an API page of
    :mod:`jetlab.metrics.tagging`. A few seconds to build instead of the whole site's ~12 s."""
    import yaml

    project = where / "project"
    (project / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "docs" / "griffe_rst.py", project / "docs")
    shutil.copytree(ROOT / "docs" / "javascripts", project / "docs" / "javascripts")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config["nav"] = [{"Home": "index.md"}, {"Formulas": "formulas.md"}, {"API": "api.md"}]
    (project / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    (project / "docs" / "index.md").write_text(page)
    (project / "docs" / "formulas.md").write_text("# Formulas\n\n## Jet mass\n\nText.\n")
    (project / "docs" / "api.md").write_text("# API\n\n::: jetlab.metrics.tagging\n")
    (project / "src").symlink_to(src)
    return project


#: a working reference of each kind, and the same reference broken -> what the build's warning about it names
REFERENCES = {
    "[`tpr_at_fpr`][jetlab.metrics.tagging.tpr_at_fpr]": (
        "[`tpr_at_fpz`][jetlab.metrics.tagging.tpr_at_fpz]", "jetlab.metrics.tagging.tpr_at_fpz"),  # no such API object
    "[formulas](formulas.md#jet-mass)": ("[formulas](formulas.md#no-such-section)", "#no-such-section"),  # no such anchor
    "[api](api.md)": ("[missing](no-such-page.md)", "no-such-page.md"),  # no such page
}


def _warnings(log: str) -> list[str]:
    return [line for line in log.splitlines() if "WARNING" in line]


@pytest.mark.slow
def test_a_broken_reference_fails_the_build(tmp_path):
    """The same small site with working references builds; with a broken reference of each kind
    it fails, with a warning naming each (strict mode fails on any warning, so each alone fails
    it too) and no other warning."""
    good = _small_project(tmp_path / "good", "# Home\n\n" + "".join(f"See {ok}.\n" for ok in REFERENCES))
    done = _build(good, tmp_path / "good" / "site")
    assert done.returncode == 0 and not _warnings(done.stdout + done.stderr), done.stdout + done.stderr
    assert 'href="api/#jetlab.metrics.tagging.tpr_at_fpr"' in (tmp_path / "good/site/index.html").read_text()

    broken = _small_project(tmp_path / "broken", "# Home\n\n" + "".join(f"See {b}.\n" for b, _ in REFERENCES.values()))
    done = _build(broken, tmp_path / "broken" / "site")
    log = done.stdout + done.stderr
    assert done.returncode != 0, log
    warnings = _warnings(log)
    for reference, named in REFERENCES.values():
        assert any(named in line for line in warnings), (reference, warnings)
    assert len(warnings) == len(REFERENCES), warnings


@pytest.mark.slow
def test_a_docstring_naming_a_parameter_that_does_not_exist_fails_the_build(tmp_path):
    """griffe's warning about an ``Args:`` entry the signature lacks is an error in strict mode
    (the unchanged sources build: test_a_broken_reference_fails_the_build)."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__"))
    source = src / "jetlab" / "metrics" / "tagging.py"
    text = source.read_text()
    assert "        target_fpr: the mistag rate eps_B." in text
    source.write_text(text.replace("        target_fpr: the mistag rate eps_B.", "        target: the mistag rate eps_B."))
    done = _build(_small_project(tmp_path, "# Home\n", src=src), tmp_path / "site")
    log = done.stdout + done.stderr
    assert done.returncode != 0 and "'target' does not appear in the function signature" in log, log


def test_the_site_needs_no_network_to_be_viewed():
    """Scripts, stylesheets and the fonts they load ship with the site (the formulas render
    with the bundled KaTeX): nothing is fetched from a CDN or Google Fonts at view time."""
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assets = [*config.get("extra_javascript", []), *config.get("extra_css", [])]
    assert any(a.endswith("katex.min.js") for a in assets) and any(a.endswith("katex.min.css") for a in assets)
    for asset in assets:
        assert not re.match(r"^([a-z]+:)?//", str(asset)), f"mkdocs.yml loads {asset} from the network"
        assert (ROOT / "docs" / asset).is_file(), f"mkdocs.yml names {asset}, which is not in docs/"
    assert config["theme"].get("font") is False, "theme.font must be false (else pages load Google Fonts)"
    for css in [a for a in assets if a.endswith(".css")]:
        path = ROOT / "docs" / css
        for url in re.findall(r"url\(([^)]+)\)", path.read_text()):
            url = url.strip("'\"")
            assert not re.match(r"^([a-z]+:)?//", url), f"{css} loads {url} from the network"
            assert url.startswith("data:") or (path.parent / url).is_file(), f"{css} names {url}, which is missing"


def test_docs_point_only_inside_the_project():
    for path in [ROOT / "mkdocs.yml", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = path.read_text()
        assert "shared/" not in text and "DESIGN.md" not in text, path


# -- the reStructuredText -> Markdown conversion of the docstrings ---------------------------------
def _converter():
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("griffe_rst", ROOT / "docs" / "griffe_rst.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.convert


def test_rst_roles_tables_and_math_become_markdown():
    convert = _converter()
    text = """Intro :func:`~jetlab.io.jets.open_jets` and :mod:`jetlab.physics` and :class:`torch.nn.Module`.

=========== ====== ==============
key         shape  content
=========== ====== ==============
points      (N,)   first line
                   continued
mask        (N,)   bool
=========== ====== ==============

.. math::

    L = \\sum_a x_a

Inline :math:`z_i = p_{T,i}`. Typical use::

    code()
"""
    out = convert(text)
    assert "[`open_jets`][jetlab.io.jets.open_jets]" in out
    assert "[`jetlab.physics`][jetlab.physics]" in out
    assert "`torch.nn.Module`" in out and "[`torch.nn.Module`]" not in out  # not jetlab's: plain code
    assert "| key | shape | content |" in out
    assert "| points | (N,) | first line continued |" in out
    assert "| mask | (N,) | bool |" in out
    assert "$$\nL = \\sum_a x_a\n$$" in out
    assert "$z_i = p_{T,i}$" in out
    assert "Typical use:\n" in out and "::" not in out


def test_rst_definition_lists_become_markdown_ones():
    convert = _converter()
    out = convert("""Kinematics (E-scheme
sum P)
    ``j_pt = |P_T|``,
    ``j_mass``.

* a list item
  continued

Literal::

    code()
""")
    assert "Kinematics (E-scheme sum P)\n:   ``j_pt = |P_T|``,\n    ``j_mass``." in out
    assert "* a list item\n  continued" in out
    assert "Literal:\n\n    code()" in out


def test_rst_code_block_directives_become_fenced_blocks():
    convert = _converter()
    out = convert("""A space::

.. code-block:: yaml

    settings:
      lr:
        - {when: {optimizer: adam}, type: float}

After.
""")
    assert "```yaml\nsettings:\n  lr:\n    - {when: {optimizer: adam}, type: float}\n```" in out
    assert "code-block" not in out and ":   " not in out  # no directive left, no definition list made
    assert out.rstrip().endswith("After.")


def test_google_sections_are_left_to_griffe_not_made_definition_lists():
    convert = _converter()
    text = """Logits.

Args:
    x: inputs.

Shapes:
    - x: ``(batch, particles, features)``
"""
    out = convert(text)
    assert "Args:\n    x: inputs." in out and "Shapes:\n    - x:" in out
    assert ":   " not in out  # no RST definition list made of a section title
