"""A griffe extension for the docs build: docstrings write cross-references as reST roles
(``:func:`soft_solve```), which Markdown would print verbatim; turn them into mkdocstrings
cross-references, resolved in the docstring's scope (a reference to nothing fails the strict build)."""

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


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring once the object tree is loaded."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = crossrefs(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self.on_object(obj=pkg)  # a top-level package is not passed to on_object
