"""Optimal policy, partition function and the regularised value (Nguyen 2025, eqs. (1), (4), (5))."""

import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given
from scipy import optimize, special

import toybandit as tb
from tests.helpers import F64
from toybandit import strategies as tbst


def scipy_maximise(reward, ref, beta):
    """Maximise eq. (1) over the simplex with scipy, parametrised by free logits (independent of
    the closed form). Returns the policy found."""
    r, p = reward.numpy(), ref.numpy()
    support = p > 0

    def negative_value(z):
        logits = np.full(p.shape, -np.inf)
        logits[support] = z
        pi = special.softmax(logits)
        kl = np.sum(special.rel_entr(pi, p))
        # d/dz of E_π[r] − βKL: π ⊙ (g − E_π[g]) with g = r − β log(π/p) on the support
        g = r[support] - beta * (np.log(pi[support]) - np.log(p[support]))
        grad = pi[support] * (g - pi[support] @ g)
        return -(pi @ r - beta * kl), -grad

    res = optimize.minimize(
        negative_value,
        np.zeros(support.sum()),
        jac=True,
        method="BFGS",
        options={"gtol": 1e-13, "maxiter": 10_000},
    )
    logits = np.full(p.shape, -np.inf)
    logits[support] = res.x
    return torch.tensor(special.softmax(logits))


@given(tbst.bandits(max_responses=5, reward_scale=3.0, zeros=True))
def test_optimal_policy_maximises_eq1_against_scipy(b):
    star = tb.optimal_policy(b.reward, b.ref, b.beta)
    found = scipy_maximise(b.reward, b.ref, b.beta)
    j_star = tb.regularized_value(star, b.reward, b.ref, b.beta)
    j_found = tb.regularized_value(found, b.reward, b.ref, b.beta)
    # π* is at least as good as anything scipy finds (up to rounding of J, ~1e-12 here) ...
    assert j_star >= j_found - 1e-10
    # ... and scipy, given the exact gradient, converges to it (BFGS stops at gtol 1e-13; flat
    # directions have curvature ≥ min π ≈ 1e-9 here, so probabilities settle to well under 1e-5).
    assert torch.allclose(star, found, atol=1e-5)


@given(tbst.bandits(max_responses=5, reward_scale=3.0))
def test_wrong_sign_optimum_is_beaten_by_scipy(b):
    """Negative twin: π_ref·exp(−r/β)/Z is not the maximiser unless r is constant on the support."""
    wrong = tb.optimal_policy(-b.reward, b.ref, b.beta)
    found = scipy_maximise(b.reward, b.ref, b.beta)
    gap = tb.regularized_value(found, b.reward, b.ref, b.beta) - tb.regularized_value(
        wrong, b.reward, b.ref, b.beta
    )
    spread = (b.reward.max() - b.reward.min()).item()
    if spread > 1e-3:
        assert gap > 0
    else:
        assert gap > -1e-9


@given(tbst.bandits(max_prompts=3, zeros=True))
def test_log_partition_against_scipy_logsumexp_and_value(b):
    expected = b.beta * special.logsumexp(b.reward.numpy() / b.beta, b=b.ref.numpy(), axis=-1)
    got = tb.log_partition(b.reward, b.ref, b.beta)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)
    # The optimal value of eq. (1) is β log Z (Gibbs variational principle).
    star = tb.optimal_policy(b.reward, b.ref, b.beta)
    value = tb.regularized_value(star, b.reward, b.ref, b.beta)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-9, atol=1e-9)


@given(tbst.bandits(max_prompts=3))
def test_reward_differences_recovered_eq4_eq5(b):
    """Nguyen 2025, eqs. (4)–(5): r(y₁) − r(y₂) = β q*(y₁) − β q*(y₂); Z cancels, and
    r − β q* = β log Z for every y."""
    q = tb.logratios(tb.optimal_policy(b.reward, b.ref, b.beta), b.ref)
    diffs = lambda t: t.unsqueeze(-1) - t.unsqueeze(-2)  # noqa: E731
    scale = 1 + b.reward.abs().max().item()
    assert torch.allclose(diffs(b.beta * q), diffs(b.reward), atol=1e-11 * scale)
    log_z = special.logsumexp(b.reward.numpy() / b.beta, b=b.ref.numpy(), axis=-1)
    np.testing.assert_allclose(
        (b.reward - b.beta * q).numpy(),
        b.beta * log_z[..., None] * np.ones(b.reward.shape),
        atol=1e-10 * scale,
    )


@given(tbst.bandits(max_prompts=2))
def test_reward_differences_fail_with_another_beta(b):
    """Negative twin: the log-ratios of the optimum for 2β recover r/2, not r."""
    q = tb.logratios(tb.optimal_policy(b.reward, b.ref, 2 * b.beta), b.ref)
    diffs = lambda t: t.unsqueeze(-1) - t.unsqueeze(-2)  # noqa: E731
    err = (diffs(b.beta * q) - diffs(b.reward)).abs().max().item()
    spread = (b.reward.max(-1).values - b.reward.min(-1).values).max().item()
    assert err == pytest.approx(spread / 2, rel=1e-9, abs=1e-9)


def mp_optimum(reward, ref, beta):
    mpmath.mp.dps = 60
    terms = [
        mpmath.mpf(p) * mpmath.exp(mpmath.mpf(r) / beta) for r, p in zip(reward, ref, strict=True)
    ]
    z = mpmath.fsum(terms)
    return [float(t / z) for t in terms], float(beta * mpmath.log(z))


@pytest.mark.parametrize(
    ("reward", "ref", "beta"),
    [
        ([1e4, 0.0, -1e4], [1 / 3, 1 / 3, 1 / 3], 1.0),  # |r|/β = 1e4
        ([0.0, 1.0, 2.0], [1e-300, 0.5, 0.5 - 1e-300], 1.0),  # tiny reference mass
        ([700.0, 0.0, 0.0], [1e-300, 0.5, 0.5 - 1e-300], 1.0),  # exp(700)·1e-300 competes with 1
        ([5.0, -3.0], [0.25, 0.75], 1e-4),  # |r|/β = 5e4
        ([0.0, 0.0, 1.0], [0.0, 0.5, 0.5], 0.1),  # a response π_ref cannot produce
    ],
)
def test_extreme_inputs_are_finite_and_exact(reward, ref, beta):
    r, p = torch.tensor(reward, dtype=F64), torch.tensor(ref, dtype=F64)
    pi = tb.optimal_policy(r, p, beta)
    value = tb.log_partition(r, p, beta)
    expected_pi, expected_value = mp_optimum(reward, ref, beta)
    assert torch.isfinite(pi).all() and torch.isfinite(value)
    np.testing.assert_allclose(pi.numpy(), expected_pi, rtol=1e-12, atol=1e-300)
    assert value.item() == pytest.approx(expected_value, rel=1e-13)
    assert torch.isfinite(tb.regularized_value(pi, r, p, beta))


def test_reference_value():
    # Two responses, uniform ref, r = (0, 1), β = 1: π* = (1, e)/(1 + e), β log Z = log((1 + e)/2).
    pi = tb.optimal_policy(
        torch.tensor([0.0, 1.0], dtype=F64), torch.tensor([0.5, 0.5], dtype=F64), 1.0
    )
    assert pi.tolist() == pytest.approx([1 / (1 + math.e), math.e / (1 + math.e)], rel=1e-15)
    z = tb.log_partition(
        torch.tensor([0.0, 1.0], dtype=F64), torch.tensor([0.5, 0.5], dtype=F64), 1.0
    )
    assert z.item() == pytest.approx(math.log((1 + math.e) / 2), rel=1e-15)


def test_value_is_minus_infinity_off_support():
    r, ref = torch.zeros(2, dtype=F64), torch.tensor([1.0, 0.0], dtype=F64)
    assert (
        tb.regularized_value(torch.tensor([0.5, 0.5], dtype=F64), r, ref, 1.0).item() == -math.inf
    )


def test_per_prompt_beta_broadcasts():
    r = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=F64)
    ref = torch.full((2, 2), 0.5, dtype=F64)
    got = tb.optimal_policy(r, ref, torch.tensor([1.0, 0.5], dtype=F64))
    assert torch.allclose(got[0], tb.optimal_policy(r[0], ref[0], 1.0))
    assert torch.allclose(got[1], tb.optimal_policy(r[1], ref[1], 0.5))
    z = tb.log_partition(r, ref, torch.tensor([1.0, 0.5], dtype=F64))
    assert z.shape == (2,)
    assert z[1] == pytest.approx(tb.log_partition(r[1], ref[1], 0.5).item())


@pytest.mark.parametrize(
    ("reward", "ref", "beta", "match"),
    [
        ([0.0, 1.0], [0.6, 0.6], 1.0, "ref must sum to 1"),
        ([0.0, 1.0], [1.5, -0.5], 1.0, "ref must be non-negative"),
        ([0.0, 1.0], [0.5, 0.5], 0.0, "beta must be positive"),
        ([0.0, 1.0], [0.5, 0.5], -1.0, "beta must be positive"),
        ([0.0, 1.0], [0.5, 0.5], math.inf, "beta must be positive"),
        ([0.0, math.nan], [0.5, 0.5], 1.0, "reward must be finite"),
        ([0.0, math.inf], [0.5, 0.5], 1.0, "reward must be finite"),
        ([0.0, 1.0, 2.0], [0.5, 0.5], 1.0, "same response dim"),
        ([[0.0, 1.0]] * 3, [[0.5, 0.5]] * 2, 1.0, "prompt dims do not broadcast"),
    ],
)
def test_bad_inputs_raise(reward, ref, beta, match):
    for fn in (tb.optimal_policy, tb.log_partition):
        with pytest.raises(ValueError, match=match):
            fn(torch.tensor(reward, dtype=F64), torch.tensor(ref, dtype=F64), beta)
