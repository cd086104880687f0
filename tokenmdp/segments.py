"""logsumexp and log-softmax over consecutive segments of dim 0: the sibling sets of a token tree.

The children of each state are contiguous and states come in node order (``docs/conventions.md``),
so "over the children of every state" is "over consecutive segments of the node dim", with
``lengths = tree.n_children[states]``; for every internal state at once, ``x[1:]`` with
``lengths = tree.n_children[~tree.terminal]``. These are the packages' only segmented logsumexp
and log-softmax; the independent references of the tests and claims
(:mod:`proofs_check.reference`) do not use them.

With m_k = max over segment k (0 where that is not finite) and s_k = Σ_{i∈k} exp(x_i − m_k):

    logsumexp_k = m_k + log s_k,        log_softmax_i = (x_i − m_k) − log s_k.

Shifting by the segment's own maximum keeps every exponential ≤ 1, so any finite input is exact to
rounding in its dtype; subtracting m_k before log s_k keeps the error of a log-probability
relative to itself rather than to the size of the logits. An empty segment, or one whose entries
are all −inf, has logsumexp −inf and log-softmax −inf; −inf entries get −inf; valid input (finite
or −inf) never gives NaN. Pure torch ops with no loop over segments: the same code runs on CUDA
tensors, trailing dims are batch dims, and when every non-empty segment has the same length the
work is a reshape (the common case of a full tree).
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor

__all__ = [
    "group_logsumexp",
    "segment_log_softmax",
    "segment_log_softmax_",
    "segment_logsumexp",
]


def segment_logsumexp(x: Tensor, lengths: Tensor) -> Tensor:
    """log Σ_{i ∈ segment k} exp(x_i) for each of the K consecutive segments of dim 0.

    Args:
        x: [L, ...], L = Σ lengths; finite or −inf.
        lengths: int64 [K] ≥ 0, on ``x``'s device.

    Returns:
        [K, ...]; −inf for an empty segment or one whose entries are all −inf.

    Raises:
        ValueError: Σ lengths ≠ L.

    >>> segment_logsumexp(torch.tensor([0.0, 0.0, 5.0]), torch.tensor([2, 0, 1]))
    tensor([0.6931,   -inf, 5.0000])
    """
    m, _, log_s, ids = _reduce(x, lengths)
    return m + log_s if ids is not None else _place((m + log_s).squeeze(1), lengths)


def segment_log_softmax(x: Tensor, lengths: Tensor) -> Tensor:
    """x_i − logsumexp of x over i's segment, for every i: the log-softmax within each segment
    (edge logits → log π(a|s) over each state's children). Differentiable.

    Args:
        x: [L, ...], L = Σ lengths; finite or −inf.
        lengths: int64 [K] ≥ 0.

    Returns:
        [L, ...]: each segment logsumexps to 0, except an all −inf one, which stays −inf.

    >>> segment_log_softmax(torch.tensor([0.0, 0.0, 5.0]), torch.tensor([2, 0, 1])).exp()
    tensor([0.5000, 0.5000, 1.0000])
    """
    _, shifted, log_s, ids = _reduce(x, lengths)
    log_s = _finite_or_zero(log_s)
    if ids is None:  # the reshape path: [k, c, ...] against [k, 1, ...]
        return (shifted - log_s).reshape(x.shape)
    return shifted - log_s.index_select(0, ids)


def segment_log_softmax_(x: Tensor, lengths: Tensor, *, scratch: Tensor | None = None) -> Tensor:
    """In place: x ← :func:`segment_log_softmax` of x; returns :func:`segment_logsumexp` of the
    input. The same numbers, bit for bit, as the two out-of-place functions.

    This is the soft Bellman backup of one tree level (Rafailov et al. 2024, eqs. (5)–(6)): with
    x = Q*/β on the level's edges it leaves log π* there and returns V*/β of their parents,
    allocating nothing of the level's size when given ``scratch``.

    Args:
        x: [L, ...], contiguous, not requiring grad.
        lengths: int64 [K] ≥ 0.
        scratch: a buffer of x's dtype and device with ≥ L rows and x's trailing shape.

    Returns:
        [K, ...], −inf for an empty or all −inf segment.
    """
    width, rest = x.shape[0], x.shape[1:]
    plan = _plan(lengths, width)
    if plan is None:
        return x.new_full((lengths.shape[0], *rest), -torch.inf)
    buf = torch.empty_like(x) if scratch is None else scratch[:width]
    c, k = plan
    if c:
        x3 = x.view(k, c, *rest)
        m = _finite_or_zero(x3.amax(1, keepdim=True), inplace=True)
        x3.sub_(m)
        e = buf.view_as(x3)
        torch.exp(x3, out=e)
        log_s = e.sum(1, keepdim=True).log_()
        x3.sub_(_finite_or_zero(log_s))
        return _place((m + log_s).squeeze(1), lengths)
    ids = torch.repeat_interleave(lengths, output_size=width)
    m = _finite_or_zero(torch.segment_reduce(x, "max", lengths=lengths, axis=0), inplace=True)
    x.sub_(torch.index_select(m, 0, ids, out=buf))
    torch.exp(x, out=buf)
    log_s = torch.segment_reduce(buf, "sum", lengths=lengths, axis=0).log_()
    x.sub_(torch.index_select(_finite_or_zero(log_s), 0, ids, out=buf))
    return m + log_s


def group_logsumexp(x: Tensor, group: Tensor, n_groups: int) -> Tensor:
    """log Σ_{i: group_i = g} exp(x_i) for g = 0 … n_groups − 1, with a group label in
    [0, n_groups) per entry of dim 0, in any order: the entries are sorted by label (stably) and
    reduced by :func:`segment_logsumexp`. −inf for an empty group.

    >>> group_logsumexp(torch.tensor([1.0, 7.0, 1.0]), torch.tensor([0, 2, 0]), 3)
    tensor([1.6931,   -inf, 7.0000])
    """
    order = torch.argsort(group, stable=True)
    lengths = torch.bincount(group, minlength=int(n_groups))
    return segment_logsumexp(x[order], lengths)


# -- the shared pieces ----------------------------------------------------------------------------


def _finite_or_zero(t: Tensor, *, inplace: bool = False) -> Tensor:
    """0 where a segment's maximum (or log-sum) is ±inf, i.e. the segment is empty or all −inf:
    keeps −inf − (−inf) out. NaN stays NaN (invalid input shows)."""
    fn = torch.nan_to_num_ if inplace else torch.nan_to_num
    return fn(t, nan=math.nan, posinf=0.0, neginf=0.0)


def _plan(lengths: Tensor, width: int) -> tuple[int, int] | None:
    """(c, k) when the k non-empty segments all have length c (a reshape does), (0, 0) for
    unequal lengths, None when there is nothing to reduce."""
    if lengths.numel() == 0:
        total, c, k = 0, 0, 0
    else:
        total, c, k = int(lengths.sum()), int(lengths.max()), int(lengths.count_nonzero())
    if total != width:
        raise ValueError(f"lengths must sum to x.shape[0] = {width}, got {total}")
    if width == 0:
        return None
    return (c, k) if c * k == width else (0, 0)


def _reduce(x: Tensor, lengths: Tensor):
    """(m, x − m, log s, ids) for the out-of-place functions. On the reshape path m and log s are
    [k, 1, ...], x − m is [k, c, ...] and ids is None; otherwise m and log s are [K, ...] and ids
    [L] is each entry's segment. The shift m is a constant for autograd (the result does not
    depend on it)."""
    width, rest = x.shape[0], x.shape[1:]
    plan = _plan(lengths, width)
    if plan is None:
        zero = x.new_zeros((lengths.shape[0], *rest))
        return zero, x, zero.log(), torch.zeros(0, dtype=torch.long, device=x.device)
    c, k = plan
    if c:
        x3 = x.reshape(k, c, *rest)
        m = _finite_or_zero(x3.detach().amax(1, keepdim=True))
        shifted = x3 - m
        return m, shifted, shifted.exp().sum(1, keepdim=True).log(), None
    ids = torch.repeat_interleave(lengths, output_size=width)
    m = _finite_or_zero(torch.segment_reduce(x.detach(), "max", lengths=lengths, axis=0))
    shifted = x - m.index_select(0, ids)
    log_s = torch.segment_reduce(shifted.exp(), "sum", lengths=lengths, axis=0).log()
    return m, shifted, log_s, ids


def _place(values: Tensor, lengths: Tensor) -> Tensor:
    """The values of the k non-empty segments (the reshape path) among all K, −inf for the
    empty ones."""
    if values.shape[0] == lengths.shape[0]:
        return values
    out = values.new_full((lengths.shape[0], *values.shape[1:]), -torch.inf)
    return out.index_copy_(0, lengths.nonzero().squeeze(-1), values)
