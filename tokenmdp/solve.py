"""Exact soft (max-ent) backward induction on a token tree, and its inverse (r ↔ Q*)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import NamedTuple

import torch

from toybandit.validation import TensorLike

from .segments import segment_log_softmax_
from .tree import SOLVE_BYTES_PER_NODE, TokenTree, check_size
from .validation import batch_beta, edge_values, node_values

Tensor = torch.Tensor


class Solution(NamedTuple):
    """Q*, V* and log π* over the nodes of a tree, each of shape [..., N].

    ``q[..., n]`` and ``log_policy[..., n]`` belong to the edge into n (0 at the root);
    ``v[..., n]`` is V*(n), 0 at terminal nodes, and ``v[..., 0]`` is V*(s₀) = β log Z.
    """

    q: Tensor
    v: Tensor
    log_policy: Tensor


def soft_solve(tree: TokenTree, reward: TensorLike, beta: float | Tensor) -> Solution:
    """Q*, V*, π* of the KL-regularised token MDP by backward induction over levels.

    Rafailov et al. 2024, eqs. (5)–(7), with V* = 0 at terminal states:

        Q*(s, a) = r(s, a) + β log π_ref(a|s) + V*(s·a),
        V*(s)    = β log Σ_a exp(Q*(s, a)/β),
        log π*(a|s) = (Q*(s, a) − V*(s)) / β.

    One pass from the deepest level to the root, each level a handful of vectorised tensor ops
    (no Python loop over nodes); runs unchanged on CUDA tensors. Edges with π_ref = 0 get
    Q* = log π* = −inf.

    Args:
        tree: the :class:`TokenTree`.
        reward: r per edge, stored at the child node, finite, shape [..., N] (leading dims are a
            batch of reward functions on the same tree); the root's entry is ignored.
        beta: β > 0, a number or a tensor over the batch dims.

    Returns:
        :class:`Solution` (q, v, log_policy), each [..., N], in the dtype of ``reward`` promoted
        with that of ``tree.log_ref``.

    Raises:
        ValueError: ``reward`` is not finite or its last dim is not N, or β ≤ 0.

    >>> tree = TokenTree.full(2, 1, eos=None)              # two one-token responses, π_ref = ½, ½
    >>> sol = soft_solve(tree, torch.tensor([0.0, 0.0, math.log(3.0)]), beta=1.0)
    >>> sol.log_policy.exp(), sol.v[0].exp()               # π* ∝ (1, 3); Z = ½ + 3/2 = 2
    (tensor([1.0000, 0.2500, 0.7500], dtype=torch.float64), tensor(2.0000, dtype=torch.float64))
    """
    reward = node_values(tree, reward, "reward")
    _check_solve_size(tree, reward, "soft_solve")
    with intra_op_threads(reward):
        reward = edge_values(tree, reward, "reward")
        reward = reward.to(torch.promote_types(reward.dtype, tree.log_ref.dtype))
        beta = batch_beta(beta, reward)
        r = reward.movedim(-1, 0)  # node-major: each level is a contiguous block of rows
        q, lp = torch.empty_like(r), torch.empty_like(r)
        val = torch.zeros_like(r)
        scratch = _scratch(tree, r)
        log_ref = tree.log_ref.to(r.dtype).reshape(-1, *([1] * (r.dim() - 1)))
        for d in range(tree.max_depth, 0, -1):
            rows = tree.level(d)
            if torch.is_tensor(beta):
                torch.add(r[rows], log_ref[rows] * beta, out=q[rows])
            else:
                torch.add(r[rows], log_ref[rows], alpha=beta, out=q[rows])
            if d < tree.max_depth:  # V* = 0 on the deepest level (all leaves): skip a pass over it
                q[rows].add_(val[rows])
            torch.div(q[rows], beta, out=lp[rows])
            _soft_backup(tree, d, lp, val, scratch, beta)
        q[0], lp[0] = 0.0, 0.0
        return Solution(q.movedim(0, -1), val.movedim(0, -1), lp.movedim(0, -1))


def reward_from_q(tree: TokenTree, q: TensorLike, beta: float | Tensor) -> Tensor:
    """The reward whose optimal Q-function is ``q``: the inverse map of Lemma 1.

    Rafailov et al. 2024, eq. (7) solved for r (Lemma 1, Appendix A):

        r(s, a) = Q(s, a) − β log π_ref(a|s) − V(s·a),   V(s) = β log Σ_a exp(Q(s, a)/β),

    with V = 0 at terminal states. Any per-edge logits taken as Q give a reward whose
    :func:`soft_solve` returns exactly those logits, and π* = softmax(Q/β): every language model is
    the optimal Q-function of some reward. Adding Φ(s) to the logits of all children of s leaves the
    policy unchanged and shapes the reward by Φ (Definition 1; see :func:`tokenmdp.shape_reward`).

    Lemma 1 needs π_ref > 0: an edge with π_ref = 0 must have Q = −inf, and gets reward 0 (any
    finite reward gives Q = −inf there, so it is not identified).

    Args:
        q: Q per edge at the child node, shape [..., N]; the root's entry is ignored.
        beta: β > 0, a number or a tensor over the batch dims.

    Returns:
        r, shape [..., N], 0 at the root.

    Raises:
        ValueError: ``q`` is NaN or +inf, is −inf on an edge with π_ref > 0, or is finite on an
            edge with π_ref = 0; β ≤ 0; wrong last dim.
    """
    q = node_values(tree, q, "q")
    _check_solve_size(tree, q, "reward_from_q")
    with intra_op_threads(q):
        q = q.to(torch.promote_types(q.dtype, tree.log_ref.dtype))
        beta = batch_beta(beta, q)
        log_ref = tree.log_ref.to(q.dtype)
        impossible = log_ref == -math.inf
        finite = torch.isfinite(q[..., 1:])
        if torch.isnan(q).any() or (q == math.inf).any():
            raise ValueError("q must not hold NaN or +inf")
        mismatch = (finite == impossible[1:]).nonzero()
        if mismatch.numel():
            n = int(mismatch[0, -1].item()) + 1
            raise ValueError(
                f"q must be −inf exactly where π_ref = 0 (Lemma 1 needs π_ref > 0): node {n} has "
                f"q = {q[..., n].flatten()[0].item():.3g} and log_ref = {log_ref[n].item():.3g}"
            )
        qn = q.movedim(-1, 0)
        lp = qn / beta
        val = torch.zeros_like(qn)
        scratch = _scratch(tree, qn)
        for d in range(tree.max_depth, 0, -1):
            _soft_backup(tree, d, lp, val, scratch, beta)
        r = qn - val - beta * log_ref.reshape(-1, *([1] * (qn.dim() - 1)))
        r = torch.where(impossible.reshape(r.shape[:1] + (1,) * (r.dim() - 1)), 0.0, r)
        r[0] = 0.0
        return r.movedim(0, -1)


# -- thread choice ------------------------------------------------------------------------------

# Below this many node values (nodes × batch) a CPU solve runs on one intra-op thread: each level
# is a handful of small ops, and on a busy machine parallel regions cost more than they save.
# Measured on 2 shared cores under load (benchmarks/tree_solve.py re-measures it): 2 threads took
# 0.76–1.1× the one-thread time from 1e4 to 1.1e5 nodes, but 1.7× at 1.6e5, 2.9× at 2.7e5 and
# 9.8× at 8.7e5; above the threshold the caller's setting stands (an idle machine gains there).
SINGLE_THREAD_BELOW = 2**18


@contextlib.contextmanager
def intra_op_threads(x: Tensor) -> Iterator[None]:
    """One intra-op thread for a CPU solve on fewer than ``SINGLE_THREAD_BELOW`` values, the
    caller's setting otherwise; the setting is restored on exit."""
    before = torch.get_num_threads()
    if x.device.type != "cpu" or x.numel() >= SINGLE_THREAD_BELOW or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- the level kernel -----------------------------------------------------------------------


def _soft_backup(tree: TokenTree, d: int, lp: Tensor, val: Tensor, scratch: Tensor, beta) -> None:
    """One level of eq. (6): on entry lp[level d] = Q/β; on exit it is log π over siblings and
    val[level d − 1] = β logsumexp of the children (0 at leaves)."""
    rows, parents = tree.level(d), tree.level(d - 1)
    counts = tree.n_children[parents]
    lse = segment_log_softmax_(lp[rows], counts, scratch=scratch).mul_(beta)
    # −inf only for a leaf (no children; a state with children has a finite one): V* = 0 there
    val[parents] = lse.nan_to_num_(nan=math.nan, posinf=math.inf, neginf=0.0)


def _scratch(tree: TokenTree, like: Tensor) -> Tensor:
    widest = int(torch.tensor(tree.offsets[1:]).diff().max())
    return torch.empty((widest, *like.shape[1:]), dtype=like.dtype, device=like.device)


# -- input checks -----------------------------------------------------------------------------


def _check_solve_size(tree: TokenTree, x: Tensor, what: str) -> None:
    check_size(
        x.numel(),
        SOLVE_BYTES_PER_NODE,
        f"{what} on {tree.n_nodes:,} nodes × {x.numel() // tree.n_nodes:,} reward function(s)",
        x.device,
    )
