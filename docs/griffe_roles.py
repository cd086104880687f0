"""A griffe extension for the docs build: docstrings write cross-references as reST roles
(``:func:`soft_solve```), which Markdown would print verbatim; render them as inline code."""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|meth|class|mod|data|attr|obj|exc):`~?([^`]+)`")


def plain_roles(text: str) -> str:
    """``:func:`x``` → ```x```; the ``~`` prefix of a shortened reference is dropped."""
    return _ROLE.sub(r"`\1`", text)


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring once the object tree is loaded."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain_roles(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self.on_object(obj=pkg)  # a top-level package is not passed to on_object
