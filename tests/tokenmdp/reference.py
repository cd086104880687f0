"""Independent reference computations for token trees: plain Python over dicts and lists.

Nothing here uses tokenmdp's level-by-level code: children are read from ``parent`` into dicts,
complete sequences are enumerated recursively, and values are computed from those enumerations.
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


def soft_values(tree, reward: list[float], beta: float) -> tuple[list[float], list[float]]:
    """(Q*, V*) per node from enumeration: V*(s) = β log Σ_{y below s} Π π_ref · exp(Σ r / β)."""
    log_ref = tree.log_ref.tolist()
    v, q = [0.0] * tree.n_nodes, [0.0] * tree.n_nodes
    for s in range(tree.n_nodes):
        paths = sequences(tree, s)
        if paths == [[]]:
            continue
        v[s] = beta * lse([sum(log_ref[n] + reward[n] / beta for n in path) for path in paths])
    for n in range(1, tree.n_nodes):
        q[n] = reward[n] + beta * log_ref[n] + v[n] if log_ref[n] > NEG_INF else NEG_INF
    return q, v


def naive_solve(tree, reward: list[float], beta: float):
    """The naive recursive soft Bellman solver (one Python call per node)."""
    kids, log_ref = children(tree), tree.log_ref.tolist()
    q, v, log_pi = [0.0] * tree.n_nodes, [0.0] * tree.n_nodes, [0.0] * tree.n_nodes

    def visit(s: int) -> float:
        if not kids[s]:
            return 0.0
        for c in kids[s]:
            q[c] = reward[c] + beta * log_ref[c] + visit(c)
        v[s] = beta * lse([q[c] / beta for c in kids[s]])
        for c in kids[s]:
            log_pi[c] = q[c] / beta - v[s] / beta if q[c] > NEG_INF else NEG_INF
        return v[s]

    visit(0)
    return q, v, log_pi


def path_totals(tree, values: list[float]) -> list[float]:
    """Σ of per-edge values along each complete sequence, sequences in leaf (node) order."""
    paths = sorted(sequences(tree), key=lambda p: p[-1])
    return [sum(values[n] for n in path) for path in paths]
