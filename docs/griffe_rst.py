"""Griffe extension for jetlab's API pages: turns the reStructuredText of the docstrings into
the Markdown that mkdocstrings renders.

jetlab's docstrings are written to be read in the source (and by Sphinx-minded readers):
cross-reference roles (``:func:`~jetlab.io.open_jets```), ``.. math::`` blocks and
``:math:`` roles, ``Typical use::`` literal blocks, ``.. code-block:: yaml`` directives and
simple ``====`` tables. This extension rewrites them, once per object, into

* autorefs links ``[`open_jets`][jetlab.io.jets.open_jets]`` for every jetlab object
  (a reference that no API page defines makes ``mkdocs build --strict`` fail: broken
  references are caught); names outside jetlab (torch, numpy) and private names stay code;
* ``$$ ... $$`` / ``$ ... $`` math for pymdownx.arithmatex;
* ``:`` + an indented code block for ``::``;
* a fenced code block in the named language for ``.. code-block:: LANG``;
* Markdown pipe tables for simple RST tables.

Google-style sections (``Args:``, ``Returns:``, ``Shapes:``) are left for griffe's Google
parser (``docstring_style: google``), which renders Args and Returns as tables of the
signature's names and types and any other titled section (``Shapes:``) as a box.

It changes only what the documentation shows, never the docstrings in the code.
"""

from __future__ import annotations

import re
import textwrap

import griffe

_ROLE = re.compile(r":(func|class|mod|data|meth|attr|exc|obj):`(~?)([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`", re.S)
_TABLE_BORDER = re.compile(r"^\s*=+( +=+)+\s*$")
#: a Google-style section title (``Args:``, ``Returns:``, ``Shapes:`` ...): griffe parses
#: the indented block under it, so it is not an RST definition-list term
_SECTION_TITLE = re.compile(r"^[A-Z][A-Za-z ]{0,30}:\s*$")


class RstToMarkdown(griffe.Extension):
    """Rewrite the reStructuredText constructs of jetlab's docstrings as Markdown."""

    def on_object(self, *, obj, loader, **kwargs) -> None:  # noqa: ARG002 - griffe's signature
        if obj.is_alias or obj.docstring is None:
            return
        obj.docstring.value = convert(obj.docstring.value, obj)


def convert(text: str, obj=None) -> str:
    """The Markdown version of one docstring (``obj`` resolves names relative to it)."""
    text = _math_blocks(text)
    text = _MATH_ROLE.sub(lambda m: "$" + " ".join(m.group(1).split()) + "$", text)
    text = _ROLE.sub(lambda m: _reference(m.group(3), m.group(2) == "~", obj), text)
    text = _tables(text)
    if not re.search(r"(?m)^\s*-{3,}\s*$", text):  # an underlined (numpy-style) section: not a definition list
        text = _definition_lists(text)
    text = _code_blocks(text)
    text = re.sub(r"(?m)(\S)::$", r"\1:", text)  # "Typical use::" -> "Typical use:" + code block
    text = re.sub(r"(?m)^::$", "", text)
    return text


def _reference(target: str, short: bool, obj) -> str:
    target = target.strip()
    label = target.rsplit(".", 1)[-1] if short else target.lstrip(".")
    path = _resolve(target, obj)
    if path is None:
        return f"`{label}`"
    return f"[`{label}`][{path}]"


def _resolve(target: str, obj) -> str | None:
    """Full dotted path of a jetlab object named ``target`` in ``obj``'s scope, or None when
    it is not jetlab's (or private, which has no API entry)."""
    if target.startswith("."):  # relative to the current package, as in a module docstring
        module = obj.module if obj is not None else None
        if module is None:
            return None
        package = module if module.is_init_module else module.parent
        path = f"{package.path}{target}"
    elif target.startswith("jetlab."):
        path = target
    elif obj is not None:
        head, _, rest = target.partition(".")
        try:
            resolved = obj.resolve(head)
        except Exception:  # griffe's NameResolutionError and friends: not a name in scope
            return None
        path = f"{resolved}.{rest}" if rest else resolved
    else:
        return None
    if not path.startswith("jetlab") or any(part.startswith("_") for part in path.split(".")):
        return None
    return path


def _definition_lists(text: str) -> str:
    """RST definition lists (a term paragraph, then its definition indented by 4 or more) ->
    Markdown ``def_list`` items (the term's lines joined into one). A paragraph ending in
    ``::`` introduces a literal block instead; list items and display math are left alone."""
    lines = text.splitlines()
    out: list[str] = []
    paragraph: list[str] = []  # the plain lines since the last blank line
    in_math = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "$$":
            in_math = not in_math
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        plain = bool(line.strip()) and not line[:1].isspace() and not in_math and line.strip() != "$$"
        is_term = (plain and not line.rstrip().endswith("::") and not _SECTION_TITLE.match(line)
                   and not re.match(r"([-*+]|\d+\.)\s", line) and not line.startswith("|")
                   and nxt.strip() and len(nxt) - len(nxt.lstrip()) >= 4)
        if not is_term:
            paragraph = paragraph + [line] if plain else []
            out.append(line)
            i += 1
            continue
        if any(re.match(r"([-*+]|\d+\.)\s", p) for p in paragraph):
            paragraph = []  # a list item's continuation: not a term
        del out[len(out) - len(paragraph):]
        if out and out[-1].strip():
            out.append("")
        out.append(" ".join(p.strip() for p in paragraph + [line]))
        paragraph = []
        i += 1
        body = []
        while i < len(lines) and lines[i][:1].isspace() and lines[i].strip():
            body.append(lines[i])
            i += 1
        body = textwrap.dedent("\n".join(body)).splitlines()
        out.append(":   " + body[0])
        out += ["    " + b for b in body[1:]]
        out.append("")
    return "\n".join(out)


_CODE_BLOCK = re.compile(r"^(\s*)\.\. code-block::\s*(\S*)\s*$")


def _code_blocks(text: str) -> str:
    """``.. code-block:: LANG`` + indented lines -> a fenced ``LANG`` block (after the
    definition lists, so no line of the block is taken for a term)."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _CODE_BLOCK.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent, language = match.groups()
        i += 1
        block = []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            block.pop()
        body = textwrap.dedent("\n".join(block)).strip("\n")
        out += [indent + "```" + language, *(indent + b if b else b for b in body.splitlines()), indent + "```", ""]
    return "\n".join(out)


def _math_blocks(text: str) -> str:
    """``.. math::`` + indented lines -> ``$$`` display math."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == ".. math::":
            i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            body = textwrap.dedent("\n".join(block)).strip("\n")
            out += ["$$", body, "$$", ""]
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def _tables(text: str) -> str:
    """RST simple tables (``====`` borders; continuation lines have an empty first column)
    -> Markdown pipe tables."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not _TABLE_BORDER.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        border = lines[i]
        indent = len(border) - len(border.lstrip())
        spans = [m.span() for m in re.finditer(r"=+", border)]
        rows: list[list[str]] = []
        n_borders = 1
        i += 1
        header_rows = None
        while i < len(lines) and n_borders < 3:
            line = lines[i]
            if _TABLE_BORDER.match(line):
                n_borders += 1
                if n_borders == 2:
                    header_rows = len(rows)
                i += 1
                continue
            if not line.strip():
                if header_rows is None and not rows:
                    i += 1
                    continue
                break
            cells = _cells(line, spans)
            if rows and not cells[0] and (header_rows is None or len(rows) > header_rows):
                rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells)]
            else:
                rows.append(cells)
            i += 1
        if header_rows is None or not rows:
            out.append(border)
            continue
        if n_borders == 2:  # a table without a header: the rows were all between two borders
            header, body = [""] * len(spans), rows
        else:
            header = [" ".join(c).strip() for c in zip(*rows[:header_rows])] if header_rows else [""] * len(spans)
            body = rows[header_rows:]
        pad = " " * indent
        out.append("")
        out.append(pad + "| " + " | ".join(_escape(c) for c in header) + " |")
        out.append(pad + "|" + "---|" * len(spans))
        out += [pad + "| " + " | ".join(_escape(c) for c in row) + " |" for row in body]
        out.append("")
    return "\n".join(out)


def _cells(line: str, spans: list[tuple[int, int]]) -> list[str]:
    cells = []
    for k, (start, _end) in enumerate(spans):
        stop = spans[k + 1][0] if k + 1 < len(spans) else len(line)
        cells.append(line[start:stop].strip())
    return cells


def _escape(cell: str) -> str:
    return cell.replace("|", r"\|")
