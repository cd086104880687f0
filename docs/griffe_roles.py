"""A griffe extension for the docs build, for docstrings written to be read as plain text.

Cross-references are reST roles (``:func:`soft_solve```), which Markdown would print verbatim: they
become mkdocstrings cross-references, resolved in the docstring's scope (a reference to nothing
fails the strict build). Doctest lines (``>>> ...``) would read as nested block quotes: each run of
them, with its expected output, becomes a fenced ``pycon`` block."""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|meth|class|mod|data|attr|obj|exc):`(~?)([^`]+)`")


def _link(match: re.Match) -> str:
    short, target = match[1], match[2]
    label = target.rsplit(".", 1)[-1] if short else target
    return f"[`{label}`][{target}]"


def crossrefs(text: str) -> str:
    """``:func:`x``` → ``[`x`][x]``; ``:func:`~a.b.x``` shows ``x`` and links ``a.b.x``."""
    return _ROLE.sub(_link, text)


def fenced_doctests(text: str) -> str:
    """Wrap each doctest (from a ``>>>`` line to the next blank line) in a ``pycon`` fence."""
    out: list[str] = []
    indent = None  # the doctest's indentation while inside one
    for line in text.split("\n"):
        if indent is not None and not line.strip():
            out.append(f"{indent}```")
            indent = None
        elif indent is None and line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}```pycon")
        out.append(line)
    if indent is not None:
        out.append(f"{indent}```")
    return "\n".join(out)


class SphinxRoles(griffe.Extension):
    """Rewrite the roles and doctests of every docstring once the object tree is loaded."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fenced_doctests(crossrefs(obj.docstring.value))

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self.on_object(obj=pkg)  # a top-level package is not passed to on_object
