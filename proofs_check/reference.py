"""The brute-force reference for token trees: independent enumeration over complete sequences.

This is the one reference soft solver of the project: the claims (:mod:`proofs_check`) and the
tests check :func:`tokenmdp.soft_solve` and everything built on it against :func:`soft_values`.
It shares no kernel with ``tokenmdp.solve`` or :mod:`tokenmdp.segments`: it reads only the
tree's layout (``parent``, ``log_ref``, ``terminal`` and the leaf paths of
:meth:`tokenmdp.TokenTree.path_nodes`), enumerates every complete sequence, and reduces with
plain gathers, sums and its own scatter logsumexp (:func:`group_logsumexp`, also the claims'
reference for eq. (6)) — no backward induction, no level loop. Everything runs on the tree's
device.
"""

from __future__ import annotations

import math

import torch

import tokenmdp as tm

Tensor = torch.Tensor

__all__ = [
    "children_logsumexp",
    "enumerated_policy",
    "group_logsumexp",
    "paths",
    "sequence_sums",
    "soft_values",
]


def paths(tree: tm.TokenTree) -> Tensor:
    """[L, D] node index of each leaf's path (root excluded), padded with N (a slot holding 0)."""
    nodes = tree.path_nodes()
    return torch.where(nodes >= 0, nodes, tree.n_nodes)


def sequence_sums(tree: tm.TokenTree, values: Tensor) -> Tensor:
    """Σ of a per-edge quantity along each complete sequence (leaves in node order), by gathering
    the whole path: [L]."""
    padded = torch.cat([values, values.new_zeros(1)])
    return padded[paths(tree)].sum(-1)


def group_logsumexp(x: Tensor, group: Tensor, n_groups: int) -> Tensor:
    """log Σ_{i: group_i = g} exp(x_i) for g = 0 … n_groups − 1 by a scatter max and an index_add
    (any order of the labels); −inf for an empty group."""
    m = torch.full((n_groups,), -math.inf, dtype=x.dtype, device=x.device)
    m = m.scatter_reduce(0, group, x, "amax", include_self=True)
    m = torch.where(torch.isfinite(m), m, 0.0)
    total = torch.zeros_like(m).index_add(0, group, (x - m[group]).exp())
    return m + total.log()


def children_logsumexp(tree: tm.TokenTree, x: Tensor) -> Tensor:
    """log Σ over the children c of each state of exp(x(c)), for a per-edge x [N]: [N], −inf at
    terminal states."""
    return group_logsumexp(x[1:], tree.parent[1:], tree.n_nodes)


def soft_values(tree: tm.TokenTree, reward: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """(Q*, V*) per node from enumeration, no recursion over states:

    V*(s) = β log Σ_{leaves y below s} exp(Σ_{edges from s to y} (r/β + log π_ref)),
    Q*(s, a) = r(s, a) + β log π_ref(a|s) + V*(s·a),

    with V* = 0 at terminal states (Rafailov et al. 2024, eqs. (5)–(7) unrolled to the leaves).

    Args:
        reward: r per edge [N] (the root's entry is ignored).
        beta: β > 0.

    Returns:
        (Q* [N] with Q*(root) = 0 and −inf on edges with π_ref = 0, V* [N]).
    """
    step = reward / beta + tree.log_ref
    p = paths(tree)  # [L, D]
    padded = torch.cat([step, step.new_zeros(1)])[p]
    total = padded.sum(-1)
    # suffix sums: below[l, t] = Σ of the edges after the (t + 1)-th (no ∞ − ∞ from a subtraction)
    from_t = torch.flip(torch.cumsum(torch.flip(padded, [-1]), -1), [-1])
    below = torch.cat([from_t[:, 1:], from_t.new_zeros(from_t.shape[0], 1)], -1)
    n = tree.n_nodes
    valid = p < n
    # node p[l, t] sees leaf l through the edges below it; the root sees every whole sum
    v = group_logsumexp(below[valid], p[valid], n)
    v[0] = torch.logsumexp(total, 0)
    v = torch.where(tree.terminal, 0.0, beta * v)
    q = reward + beta * tree.log_ref + v
    q[0] = 0.0
    return q, v


def enumerated_policy(
    tree: tm.TokenTree, reward: Tensor, beta: float
) -> tuple[Tensor, Tensor, Tensor]:
    """(Q*, V*, log π*) from :func:`soft_values`: log π*(a|s) = (Q*(s, a) − V*(s))/β, −inf on
    edges with π_ref = 0, 0 at the root."""
    q, v = soft_values(tree, reward, beta)
    parent = tree.parent.clamp(min=0)
    log_pi = torch.where(q == -math.inf, -math.inf, (q - v[parent]) / beta)
    log_pi[0] = 0.0
    return q, v, log_pi
