"""Seeded random instances for the claims, and closed forms for the bandit written here, sharing
no code with toybandit. The token-tree references are :mod:`proofs_check.reference`."""

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
    σ(s_i − s_j)), β, a second behaviour law ν for the broken-assumption twins, and the instance's
    generator for claims that draw more (policies, preferences)."""

    pref: Tensor
    mu: Tensor
    ref: Tensor
    reward: Tensor
    beta: float
    nu: Tensor
    g: torch.Generator


def world(
    g: torch.Generator, device: torch.device | str | None = None, *, kind: str = "general"
) -> World:
    """Y ∈ [3, 6] responses; μ, ν, π_ref with full support; |s| ≤ 5; β log-uniform on [0.1, 10]."""
    n = _int(g, 3, 6)
    reward = 5 * (2 * torch.rand(n, generator=g, dtype=F64) - 1)
    if kind == "bradley_terry":
        pref = tb.bradley_terry(reward)
    else:
        pref = tb.random_preference(n, generator=g, kind=kind)
    return World(
        pref, _distribution(g, n), _distribution(g, n), reward, _beta(g), _distribution(g, n), g
    )


def bt_world(g: torch.Generator, device: torch.device | str | None = None) -> World:
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
    device: torch.device | str | None = None,
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


def deep_tree_world(g: torch.Generator, device: torch.device | str | None = None) -> TreeWorld:
    """A tree of depth ≥ 2 without EOS (every sequence has the same length), for the search and
    different-start-state claims."""
    tree = tm.random_tree(_int(g, 2, 3), _int(g, 2, 4), None, generator=g, concentration=2.0)
    reward = 3 * (2 * torch.rand(tree.n_nodes, generator=g, dtype=F64) - 1)
    reward[0] = 0.0
    device = torch.device("cpu") if device is None else torch.device(device)
    return TreeWorld(tree.to(device), reward.to(device), _beta(g), g)


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
