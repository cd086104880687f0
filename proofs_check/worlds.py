"""Seeded random instances for the claims, and brute-force references that share no code with the
solvers they check (enumeration over complete sequences, plain sums)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

import tokenmdp as tm
import toybandit as tb

Tensor = torch.Tensor
F64 = torch.float64


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=g, dtype=F64).item()


def _int(g: torch.Generator, low: int, high: int) -> int:
    """An integer in [low, high]."""
    return int(torch.randint(low, high + 1, (), generator=g).item())


def _beta(g: torch.Generator) -> float:
    return math.exp(_uniform(g, math.log(0.1), math.log(10.0)))


def _distribution(g: torch.Generator, n: int, spread: float = 1.5) -> Tensor:
    return torch.softmax(spread * torch.randn(n, generator=g, dtype=F64), -1)


class World(NamedTuple):
    """A one-prompt preference bandit: P [Y, Y], μ, π_ref, a reward s (Bradley–Terry worlds: P =
    σ(s_i − s_j)), β, and a second behaviour law ν for the broken-assumption twins."""

    pref: Tensor
    mu: Tensor
    ref: Tensor
    reward: Tensor
    beta: float
    nu: Tensor


def world(g: torch.Generator, device=None, *, kind: str = "general") -> World:
    """Y ∈ [3, 6] responses; μ, ν, π_ref with full support; |s| ≤ 5; β log-uniform on [0.1, 10]."""
    n = _int(g, 3, 6)
    reward = 5 * (2 * torch.rand(n, generator=g, dtype=F64) - 1)
    if kind == "bradley_terry":
        pref = tb.bradley_terry(reward)
    else:
        pref = tb.random_preference(n, generator=g, kind=kind)
    return World(
        pref, _distribution(g, n), _distribution(g, n), reward, _beta(g), _distribution(g, n)
    )


def bt_world(g: torch.Generator, device=None) -> World:
    return world(g, device, kind="bradley_terry")


def random_policy(g: torch.Generator, n: int) -> Tensor:
    return _distribution(g, n, spread=2.0)


class TreeWorld(NamedTuple):
    tree: tm.TokenTree
    reward: Tensor
    beta: float
    g: torch.Generator  # for claims that draw more (policies, potentials)


def tree_world(
    g: torch.Generator,
    device=None,
    *,
    impossible: bool = False,
    max_depth: int = 4,
    prune: bool = True,
) -> TreeWorld:
    """A random tree (vocabulary 2–4, depth 1–max_depth, EOS or not, pruned or full), rewards uniform
    on [−3, 3], β log-uniform on [0.1, 10], on ``device``."""
    vocab, depth = _int(g, 2, 4), _int(g, 1, max_depth)
    eos = _int(g, 0, vocab - 1) if _uniform(g, 0, 1) < 0.5 else None
    keep = _uniform(g, 0.4, 1.0) if prune and _uniform(g, 0, 1) < 0.5 else 1.0
    tree = tm.random_tree(
        vocab,
        depth,
        eos,
        generator=g,
        concentration=_uniform(g, 0.5, 5.0),
        keep=keep,
        impossible=0.3 if impossible else 0.0,
    )
    reward = 3 * (2 * torch.rand(tree.n_nodes, generator=g, dtype=F64) - 1)
    reward[0] = 0.0
    device = torch.device("cpu") if device is None else torch.device(device)
    return TreeWorld(tree.to(device), reward.to(device), _beta(g), g)


def deep_tree_world(g: torch.Generator, device=None) -> TreeWorld:
    """A tree of depth ≥ 2 without EOS (every sequence has the same length), for the search and
    different-start-state claims."""
    tree = tm.random_tree(_int(g, 2, 3), _int(g, 2, 4), None, generator=g, concentration=2.0)
    reward = 3 * (2 * torch.rand(tree.n_nodes, generator=g, dtype=F64) - 1)
    reward[0] = 0.0
    device = torch.device("cpu") if device is None else torch.device(device)
    return TreeWorld(tree.to(device), reward.to(device), _beta(g), g)


# -- brute force over complete sequences ---------------------------------------------------------


def paths(tree: tm.TokenTree) -> Tensor:
    """[L, D] node index of each leaf's path (root excluded), padded with N (a slot holding 0)."""
    nodes = tree.path_nodes()
    return torch.where(nodes >= 0, nodes, tree.n_nodes)


def sequence_sums(tree: tm.TokenTree, values: Tensor) -> Tensor:
    """Σ of a per-edge quantity along each complete sequence, by gathering the whole path."""
    padded = torch.cat([values, values.new_zeros(1)])
    return padded[paths(tree)].sum(-1)


def soft_values(tree: tm.TokenTree, reward: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """(Q*, V*) per node from enumeration, no recursion over states:

    V*(s) = β log Σ_{leaves y below s} exp(Σ_{edges from s to y} (r/β + log π_ref)),
    Q*(s, a) = r(s, a) + β log π_ref(a|s) + V*(s·a).
    """
    step = reward / beta + tree.log_ref
    p = paths(tree)  # [L, D]
    padded = torch.cat([step, step.new_zeros(1)])[p]
    total = padded.sum(-1)
    # suffix sums: below[l, t] = Σ of the edges after the (t + 1)-th (no ∞ − ∞ from a subtraction)
    from_t = torch.flip(torch.cumsum(torch.flip(padded, [-1]), -1), [-1])
    below = torch.cat([from_t[:, 1:], from_t.new_zeros(from_t.shape[0], 1)], -1)
    n = tree.n_nodes
    v = torch.full((n,), -math.inf, dtype=reward.dtype, device=reward.device)
    # the root sees every leaf with its whole sum; node p[l, t] sees total − before[l, t]
    v[0] = torch.logsumexp(total, 0)
    valid = p < n
    flat_nodes, flat_vals = p[valid], below[valid]
    v = v.scatter_reduce(0, flat_nodes, flat_vals, "amax", include_self=True)
    m = torch.where(torch.isfinite(v), v, 0.0)
    acc = torch.zeros_like(v).index_add(0, flat_nodes, (flat_vals - m[flat_nodes]).exp())
    v_below = m + acc.log()
    v = torch.where(torch.arange(n, device=v.device) == 0, v, v_below)
    v = torch.where(tree.terminal, 0.0, beta * v)
    q = reward + beta * tree.log_ref + v
    q[0] = 0.0
    return q, v


# -- closed forms written here, sharing no code with toybandit ----------------------------------


def gibbs(reward: Tensor, ref: Tensor, beta: float) -> Tensor:
    """π_ref e^{r/β} / Σ π_ref e^{r/β}, written directly (max-shifted exponentials)."""
    x = ref.log() + reward / beta
    e = (x - x.max()).exp()
    return e / e.sum()


def log_z(reward: Tensor, ref: Tensor, beta: float) -> Tensor:
    """β log Σ_y π_ref(y) e^{r(y)/β}, written directly."""
    x = ref.log() + reward / beta
    m = x.max()
    return beta * (m + (x - m).exp().sum().log())


def kl(p: Tensor, q: Tensor) -> Tensor:
    """Σ p log p/q with 0 log 0 = 0, written directly."""
    seen = p > 0
    return (p[seen] * (p[seen].log() - q[seen].log())).sum()


def enumerated_policy(
    tree: tm.TokenTree, reward: Tensor, beta: float
) -> tuple[Tensor, Tensor, Tensor]:
    """(Q*, V*, log π*) from :func:`soft_values`: log π*(a|s) = (Q*(s, a) − V*(s))/β."""
    q, v = soft_values(tree, reward, beta)
    parent = tree.parent.clamp(min=0)
    log_pi = torch.where(q == -math.inf, -math.inf, (q - v[parent]) / beta)
    log_pi[0] = 0.0
    return q, v, log_pi
