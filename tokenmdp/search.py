"""Search over complete sequences: exact max-sum, beam search, and the V*-guided frontier."""

from __future__ import annotations

from typing import NamedTuple

import torch

from toybandit import validation as v
from toybandit.validation import TensorLike

from .sequences import prefix_sum
from .tree import TokenTree
from .validation import edge_values, node_values

Tensor = torch.Tensor


class Best(NamedTuple):
    """The node a search ends at and its total score."""

    node: int
    score: float


def best_sequence(tree: TokenTree, scores: TensorLike) -> Best:
    """The complete sequence with the largest Σ_t score(s_t, a_t), by a max-sum backward pass.

    M(s) = max_a [score(s, a) + M(s·a)] with M = 0 at terminal states, one vectorised step per
    level (the β → 0 limit of :func:`tokenmdp.soft_solve`), then a greedy descent along the argmax
    children. Ties go to the smallest token. With scores = β log π* this is exact likelihood search
    on π*; with r + β log π_ref it is exact search on the regularised return (Rafailov et al. 2024,
    eqs. (12)–(13) with K at the full depth).

    Args:
        scores: per-edge scores at the child node, shape [N]; finite or −inf (a forbidden edge).

    Returns:
        :class:`Best` with the leaf's node index and its total score.
    """
    scores = _scores(tree, scores)
    m = torch.zeros_like(scores)
    for d in range(tree.max_depth, 0, -1):
        rows, parents = tree.level(d), tree.level(d - 1)
        counts = tree.n_children[parents]
        best = torch.segment_reduce(scores[rows] + m[rows], "max", lengths=counts)
        m[parents] = torch.where(counts > 0, best, m[parents])
    node, first = 0, tree.first_child
    while not tree.terminal[node]:
        children = slice(int(first[node]), int(first[node] + tree.n_children[node]))
        node = children.start + int((scores[children] + m[children]).argmax())
    return Best(node, float(m[0]))


def beam_search(tree: TokenTree, scores: TensorLike, width: int) -> Best:
    """Beam search on Σ_t score(s_t, a_t): keep the ``width`` best partial sequences per step.

    Each step replaces every unfinished sequence in the beam by its children and keeps the
    ``width`` highest cumulative scores among these and the finished sequences already in the beam
    (ties to the earlier node); it stops when the whole beam is finished and returns its best.
    ``width = 1`` is greedy decoding; a width at least the largest :func:`frontier` (at most the
    number of leaves) never prunes and is exact (:func:`best_sequence`); finished sequences keep
    their slots, so the widest level alone is not enough. With scores = log π it is the
    likelihood beam search of Rafailov et al. 2024, sec. 5.2.

    Args:
        scores: per-edge scores, shape [N].
        width: beam width ≥ 1.

    Returns:
        :class:`Best` (leaf node, total score).
    """
    scores = _scores(tree, scores)
    width = v.integer(width, "width", minimum=1)
    first = tree.first_child
    beam = torch.zeros(1, dtype=torch.long, device=scores.device)
    total = torch.zeros(1, dtype=scores.dtype, device=scores.device)
    while not tree.terminal[beam].all():
        done = tree.terminal[beam]
        open_, counts = beam[~done], tree.n_children[beam[~done]]
        starts = torch.repeat_interleave(first[open_], counts)
        offsets = torch.arange(int(counts.sum()), device=beam.device) - torch.repeat_interleave(
            counts.cumsum(0) - counts, counts
        )
        children = starts + offsets
        cand = torch.cat([beam[done], children])
        cand_total = torch.cat(
            [total[done], torch.repeat_interleave(total[~done], counts) + scores[children]]
        )
        order = torch.argsort(cand, stable=True)  # ties go to the earlier node
        cand, cand_total = cand[order], cand_total[order]
        keep = torch.argsort(cand_total, descending=True, stable=True)[:width]
        beam, total = cand[keep], cand_total[keep]
    k = int(total.argmax())
    return Best(int(beam[k]), float(total[k]))


def frontier(tree: TokenTree, depth: int) -> Tensor:
    """The states a search expanded ``depth`` tokens deep can end at: every node at that depth and
    every terminal node above it (sequences that ended early). Node indices, increasing."""
    depth = v.integer(depth, "depth", minimum=1, maximum=tree.max_depth)
    return ((tree.depth == depth) | (tree.terminal & (tree.depth < depth))).nonzero().squeeze(-1)


def best_prefix(
    tree: TokenTree, scores: TensorLike, depth: int, *, value: TensorLike | None = None
) -> Best:
    """The best partial sequence of a search ``depth`` tokens deep, with an optional value at the end.

    max over frontier states s of Σ_t score(s_t, a_t) + value(s): with scores = r + β log π_ref and
    value = V* this is Rafailov et al. 2024, eq. (12); with scores = β log π* and no value it is
    eq. (13), the same maximiser (the two objectives differ by the constant V*(s₀)).

    Args:
        scores: per-edge scores [N].
        depth: number of tokens expanded, 1 ≤ depth ≤ tree.max_depth.
        value: per-state value [N] added at the frontier (V* = 0 at terminal states); none by default.

    Returns:
        :class:`Best` (frontier node, objective).
    """
    scores = _scores(tree, scores)
    nodes = frontier(tree, depth)
    total = prefix_sum(tree, scores)[nodes]
    if value is not None:
        total = total + edge_values(tree, value, "value")[nodes]
    k = int(total.argmax())
    return Best(int(nodes[k]), float(total[k]))


def _scores(tree: TokenTree, scores) -> Tensor:
    scores = node_values(tree, scores, "scores")
    if scores.dim() != 1:
        raise ValueError(f"scores must be one value per node, shape [N], got {tuple(scores.shape)}")
    if torch.isnan(scores).any() or (scores[1:] == float("inf")).any():
        raise ValueError("scores must not hold NaN or +inf")
    return scores
