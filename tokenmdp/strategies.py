"""Hypothesis strategies for token trees and what lives on them, usable in anyone's tests.

Trees come from :func:`tokenmdp.random_tree` with a drawn seed (full or randomly pruned, with or
without EOS, optionally with impossible edges); rewards and potentials are float64 tensors over the
nodes, drawn from a seed too so that trees of a few hundred nodes stay cheap to generate.

>>> from hypothesis import given
>>> @given(tree_worlds(max_depth=3))
... def test_policy_is_normalised(world):
...     sol = soft_solve(world.tree, world.reward, world.beta)
...     assert abs(path_sum(world.tree, sol.log_policy).exp().sum() - 1) < 1e-12
>>> test_policy_is_normalised()
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from hypothesis import strategies as st

from toybandit.strategies import betas

from .sequences import path_sum  # noqa: F401  (used by the doctest above)
from .solve import soft_solve  # noqa: F401
from .tree import TokenTree, random_tree

Tensor = torch.Tensor

__all__ = ["TreeWorld", "betas", "potentials", "rewards", "tree_worlds", "trees"]

TREE_KINDS = ("full", "pruned", "any")


@st.composite
def trees(
    draw: st.DrawFn,
    *,
    kind: str = "any",
    max_vocab: int = 4,
    max_depth: int = 4,
    impossible: bool = False,
    eos: bool | None = None,
    concentration: tuple[float, float] = (0.3, 10.0),
) -> TokenTree:
    """Random token trees.

    Args:
        kind: "full" (every token expanded), "pruned" (each token kept with probability in
            [0.3, 0.9], at least one per state) or "any".
        max_vocab: bound on the vocabulary size (vocabulary ≥ 2).
        max_depth: bound on the depth (depth ≥ 1).
        impossible: allow edges with π_ref = 0.
        eos: force an EOS token (True), forbid it (False), or either (None).
        concentration: range of π_ref's concentration (see :func:`tokenmdp.random_tree`); the
            low end gives next-token probabilities down to ~1e-7.
    """
    if kind not in TREE_KINDS:
        raise ValueError(f"kind must be one of {TREE_KINDS}, got {kind!r}")
    vocab = draw(st.integers(2, max_vocab))
    depth = draw(st.integers(1, max_depth))
    with_eos = draw(st.booleans()) if eos is None else eos
    eos_token = draw(st.integers(0, vocab - 1)) if with_eos else None
    pruned = draw(st.booleans()) if kind == "any" else kind == "pruned"
    keep = draw(st.floats(0.3, 0.9)) if pruned else 1.0
    dead = draw(st.sampled_from([0.0, 0.3])) if impossible else 0.0
    conc = draw(st.floats(*concentration))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    return random_tree(
        vocab,
        depth,
        eos_token,
        generator=generator,
        concentration=conc,
        keep=keep,
        impossible=dead,
    )


def _seeded(shape: tuple[int, ...], scale: float) -> st.SearchStrategy[Tensor]:
    def make(seed: int) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        return scale * (2 * torch.rand(shape, generator=g, dtype=torch.float64) - 1)

    return st.integers(0, 2**31 - 1).map(make)


def rewards(
    tree: TokenTree, *, scale: float = 5.0, batch_shape: tuple[int, ...] = ()
) -> st.SearchStrategy[Tensor]:
    """Per-edge rewards uniform on [−scale, scale], shape [*batch_shape, N], 0 at the root."""

    def zero_root(r: Tensor) -> Tensor:
        r[..., 0] = 0.0
        return r

    return _seeded((*batch_shape, tree.n_nodes), scale).map(zero_root)


def potentials(tree: TokenTree, *, scale: float = 5.0) -> st.SearchStrategy[Tensor]:
    """Potentials Φ uniform on [−scale, scale] at non-terminal states and 0 at terminal ones (the
    condition of Rafailov et al. 2024, Theorem 1), shape [N]."""
    return _seeded((tree.n_nodes,), scale).map(lambda p: p.masked_fill(tree.terminal, 0.0))


class TreeWorld(NamedTuple):
    """A KL-regularised token MDP: a tree, a per-edge reward [N] and β > 0."""

    tree: TokenTree
    reward: Tensor
    beta: float


@st.composite
def tree_worlds(
    draw: st.DrawFn,
    *,
    kind: str = "any",
    max_vocab: int = 4,
    max_depth: int = 4,
    impossible: bool = False,
    concentration: tuple[float, float] = (0.3, 10.0),
) -> TreeWorld:
    """A random tree with a random reward and β (log-uniform on [0.05, 20])."""
    tree = draw(
        trees(
            kind=kind,
            max_vocab=max_vocab,
            max_depth=max_depth,
            impossible=impossible,
            concentration=concentration,
        )
    )
    return TreeWorld(tree, draw(rewards(tree)), draw(betas()))
