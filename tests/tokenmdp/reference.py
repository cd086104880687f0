"""Independent reference computations for token trees: plain Python over dicts and lists.

Nothing here uses tokenmdp's level-by-level code: children are read from ``parent`` into dicts,
complete sequences are enumerated recursively, and path sums are computed from those
enumerations. The reference soft solver (Q*, V*, π* by enumeration) is the project's one:
:mod:`proofs_check.reference`.
"""

from __future__ import annotations

import math

NEG_INF = -math.inf


def children(tree) -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {n: [] for n in range(tree.n_nodes)}
    for n, p in enumerate(tree.parent.tolist()):
        if p >= 0:
            kids[p].append(n)
    return kids


def sequences(tree, start: int = 0) -> list[list[int]]:
    """Every complete sequence below ``start`` as its list of nodes (``start`` excluded)."""
    kids = children(tree)

    def walk(n: int) -> list[list[int]]:
        if not kids[n]:
            return [[]]
        return [[c, *rest] for c in kids[n] for rest in walk(c)]

    return walk(start)


def lse(xs: list[float]) -> float:
    m = max(xs)
    if m == NEG_INF:
        return NEG_INF
    return m + math.log(sum(math.exp(x - m) for x in xs))


def path_totals(tree, values: list[float]) -> list[float]:
    """Σ of per-edge values along each complete sequence, sequences in leaf (node) order."""
    paths = sorted(sequences(tree), key=lambda p: p[-1])
    return [sum(values[n] for n in path) for path in paths]
