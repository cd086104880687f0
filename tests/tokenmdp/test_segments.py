"""tokenmdp.segments: the one segmented logsumexp / log-softmax, against plain Python per segment."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import F64
from tokenmdp.segments import (
    group_logsumexp,
    segment_log_softmax,
    segment_log_softmax_,
    segment_logsumexp,
)


def python_lse(xs):
    """log Σ exp over a list of floats, −inf for an empty or all −inf list."""
    m = max(xs, default=-math.inf)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(x - m) for x in xs))


@st.composite
def segmented(draw, batch=()):
    """(x [L, *batch], lengths [K]) with empty segments, −inf entries and all −inf segments."""
    lengths = draw(st.lists(st.integers(0, 5), min_size=1, max_size=8))
    if draw(st.booleans()):  # equal lengths (and some empty): the reshape path
        c = draw(st.integers(1, 5))
        lengths = [c if k else 0 for k in lengths]
    n = sum(lengths) * math.prod(batch)
    entry = st.one_of(st.floats(-300, 300), st.just(-math.inf))
    x = torch.tensor(draw(st.lists(entry, min_size=n, max_size=n)), dtype=F64)
    return x.reshape(sum(lengths), *batch), torch.tensor(lengths)


def _segments(x, lengths):
    return torch.split(x, lengths.tolist())


@given(segmented())
def test_logsumexp_and_log_softmax_match_python_per_segment(case):
    x, lengths = case
    lse = segment_logsumexp(x, lengths)
    log_pi = segment_log_softmax(x, lengths)
    for k, part in enumerate(_segments(x, lengths)):
        want = python_lse(part.tolist())
        assert lse[k].item() == pytest.approx(want, rel=1e-12, abs=1e-12) or lse[k] == want
        got = log_pi[sum(lengths[:k].tolist()) :][: len(part)]
        for a, b in zip(got.tolist(), part.tolist(), strict=True):
            expected = -math.inf if want == -math.inf or b == -math.inf else b - want
            assert a == pytest.approx(expected, rel=1e-12, abs=1e-12) or a == expected
    assert not lse.isnan().any() and not log_pi.isnan().any()


@given(segmented(batch=(3,)))
def test_in_place_is_bit_for_bit_the_out_of_place_pair(case):
    x, lengths = case
    y = x.clone()
    scratch = torch.empty(x.shape[0] + 2, 3, dtype=F64)
    lse = segment_log_softmax_(y, lengths, scratch=scratch)
    assert torch.equal(lse, segment_logsumexp(x, lengths))
    assert torch.equal(y, segment_log_softmax(x, lengths))
    per_column = [segment_logsumexp(x[:, j].contiguous(), lengths) for j in range(3)]
    assert torch.equal(lse, torch.stack(per_column, -1))  # trailing dims are a batch


def test_reference_values_and_edge_cases():
    # [log 1 + log 2 → log(1 + 2)], an empty segment, [−inf, −inf], [5]
    x = torch.tensor([0.0, math.log(2.0), -math.inf, -math.inf, 5.0], dtype=F64)
    lengths = torch.tensor([2, 0, 2, 1])
    lse = segment_logsumexp(x, lengths)
    assert lse.tolist() == pytest.approx([math.log(3.0), -math.inf, -math.inf, 5.0])
    log_pi = segment_log_softmax(x, lengths)
    assert log_pi.exp().tolist() == pytest.approx([1 / 3, 2 / 3, 0.0, 0.0, 1.0])
    assert segment_logsumexp(torch.zeros(0), torch.tensor([0, 0])).tolist() == [-math.inf] * 2
    assert segment_log_softmax(torch.zeros(0), torch.tensor([0])).shape == (0,)
    with pytest.raises(ValueError, match=r"lengths must sum to x\.shape"):
        segment_logsumexp(torch.zeros(4), torch.tensor([2, 1]))


def test_huge_logits_stay_exact_and_gradients_finite():
    x = torch.tensor([1e4, 1e4 - 1.0, -math.inf, -1e4, 3.0], dtype=F64, requires_grad=True)
    lengths = torch.tensor([3, 2])
    log_pi = segment_log_softmax(x, lengths)
    assert log_pi[0].item() == pytest.approx(-math.log1p(math.exp(-1.0)), abs=1e-15)
    (log_pi[torch.isfinite(log_pi)].sum() + segment_logsumexp(x, lengths).sum()).backward()
    assert torch.isfinite(x.grad).all()
    # d/dx of Σ_i log π_i + lse over one segment of size c: 1 − c·softmax + softmax
    p = torch.softmax(torch.tensor([-1e4, 3.0], dtype=F64), 0)
    assert x.grad[3:].tolist() == pytest.approx((1 - 2 * p + p).tolist())


@given(st.lists(st.integers(0, 4), min_size=1, max_size=12), st.data())
def test_group_logsumexp_is_the_segmented_one_after_sorting(labels, data):
    group = torch.tensor(labels)
    x = torch.tensor(data.draw(st.lists(st.floats(-50, 50), min_size=len(labels),
                                        max_size=len(labels))), dtype=F64)  # fmt: skip
    got = group_logsumexp(x, group, 6)
    for g in range(6):
        want = python_lse([v for v, lab in zip(x.tolist(), labels, strict=True) if lab == g])
        assert got[g].item() == pytest.approx(want, rel=1e-12, abs=1e-12) or got[g] == want


@pytest.mark.gpu
def test_cuda_gives_the_cpu_numbers():
    g = torch.Generator().manual_seed(0)
    for lengths in (torch.tensor([3, 3, 0, 3]), torch.tensor([1, 4, 0, 2, 5])):
        x = torch.randn(int(lengths.sum()), 2, generator=g, dtype=F64)
        x[1, 0] = -math.inf
        for fn in (segment_logsumexp, segment_log_softmax):
            torch.testing.assert_close(fn(x.cuda(), lengths.cuda()).cpu(), fn(x, lengths))
        y = x.cuda()
        lse = segment_log_softmax_(y, lengths.cuda())
        torch.testing.assert_close(y.cpu(), segment_log_softmax(x, lengths))
        torch.testing.assert_close(lse.cpu(), segment_logsumexp(x, lengths))
