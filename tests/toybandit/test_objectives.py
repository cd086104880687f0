"""Exact population objectives of Nguyen 2025, eqs. (3), (6), (9)–(12), and Lemma 3.1."""

import functools
import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import optimize, special

import toybandit as tb
from tests.helpers import F64
from toybandit import losses
from toybandit import strategies as tbst


def enumerate_pairs(pref, mu):
    """Every outcome (y₁, y₂, c) of the data model with its probability, by explicit loops."""
    n = len(mu)
    for y1, y2 in itertools.product(range(n), repeat=2):
        for c, p_c in ((1, pref[y1][y2]), (2, 1 - pref[y1][y2])):
            yield y1, y2, c, mu[y1] * mu[y2] * p_c


def brute_force(world, policy, term):
    """E over (y₁, y₂, c) of term(h, y₁, y₂, c), h = β(q(y₁) − q(y₂)); plain Python floats."""
    pref, mu, ref = world.pref.tolist(), world.mu.tolist(), world.ref.tolist()
    q = [math.log(p) - math.log(r) for p, r in zip(policy.tolist(), ref, strict=True)]
    total = 0.0
    for y1, y2, c, prob in enumerate_pairs(pref, mu):
        if prob > 0:
            total += prob * term(world.beta * (q[y1] - q[y2]), y1, y2, c, pref, mu)
    return total


def log_sig(x):
    return -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))


def s_dagger(pref, mu, y):
    return sum(m * pref[y][k] for k, m in enumerate(mu))


TERMS = {
    # eq. (6): −𝓛_logistic(σ(h), c)
    "6": lambda h, y1, y2, c, P, mu: -log_sig(h) if c == 1 else -log_sig(-h),
    # eq. (9): (h − E_y[v(y₁, y) − v(y₂, y)])²
    "9": lambda h, y1, y2, c, P, mu: (h - s_dagger(P, mu, y1) + s_dagger(P, mu, y2)) ** 2,
    # eq. (10): (h − v(y₁, y₂))²
    "10": lambda h, y1, y2, c, P, mu: (h - P[y1][y2]) ** 2,
    # eq. (11) as printed: (h − c + 1)²
    "11-printed": lambda h, y1, y2, c, P, mu: (h - c + 1) ** 2,
    # eq. (11) corrected: target 𝟙[c = 1] = 2 − c
    "11": lambda h, y1, y2, c, P, mu: (h - (2 - c)) ** 2,
    # eq. (12): (h(y_w, y_l) − ½)², y_w the winner
    "12": lambda h, y1, y2, c, P, mu: (h - 0.5) ** 2 if c == 1 else (-h - 0.5) ** 2,
}


def library(eq):
    if eq == "11-printed":
        return functools.partial(tb.ipo_label_objective, printed=True)
    return tb.NGUYEN_2025[eq]


@given(tbst.preference_worlds(mu_zeros=True), st.data())
def test_objectives_equal_brute_force_enumeration(world, data):
    policy = data.draw(tbst.probabilities(world.ref.shape[-1]))
    for eq, term in TERMS.items():
        got = library(eq)(policy, world.pref, world.mu, world.ref, world.beta).item()
        expected = brute_force(world, policy, term)
        assert got == pytest.approx(expected, rel=1e-10, abs=1e-12), eq


@given(tbst.preference_worlds(mu_zeros=True), st.data())
def test_logistic_objective_eq3_by_enumeration(world, data):
    score = data.draw(tbst.rewards(world.ref.shape[-1]))
    s = score.tolist()
    expected = sum(
        p * (-log_sig(s[y1] - s[y2]) if c == 1 else -log_sig(s[y2] - s[y1]))
        for y1, y2, c, p in enumerate_pairs(world.pref.tolist(), world.mu.tolist())
        if p > 0
    )
    assert tb.logistic_objective(score, world.pref, world.mu).item() == pytest.approx(
        expected, rel=1e-10
    )


@given(tbst.preference_worlds(max_prompts=3, mu_zeros=True))
def test_pair_weights_is_the_law_of_a_labelled_pair(world):
    weights = tb.pair_weights(world.pref, world.mu)
    assert torch.allclose(weights.sum((-1, -2)), torch.ones((), dtype=F64), atol=1e-12)
    for x in range(weights.shape[0]):
        expected = np.zeros(weights.shape[-2:])
        for y1, y2, c, p in enumerate_pairs(world.pref[x].tolist(), world.mu[x].tolist()):
            w, l_ = (y1, y2) if c == 1 else (y2, y1)
            expected[w, l_] += p
        np.testing.assert_allclose(weights[x].numpy(), expected, atol=1e-15)


@given(tbst.preference_worlds(max_prompts=2), st.data())
def test_expected_pair_loss_reproduces_eq6_and_eq12(world, data):
    policy = data.draw(tbst.probabilities(world.ref.shape[-1], batch_shape=world.ref.shape[:-1]))
    q = tb.logratios(policy, world.ref)
    beta = world.beta
    dpo = tb.expected_pair_loss(functools.partial(losses.dpo, beta=beta), q, world.pref, world.mu)
    assert torch.allclose(
        dpo, tb.dpo_objective(policy, world.pref, world.mu, world.ref, beta), rtol=1e-12
    )
    ipo = tb.expected_pair_loss(functools.partial(losses.ipo, tau=beta), q, world.pref, world.mu)
    assert torch.allclose(
        beta**2 * ipo, tb.ipo_objective(policy, world.pref, world.mu, world.ref, beta), rtol=1e-10
    )


def _difference(world, eq_a, eq_b, p1, p2, **kw):
    f_a, f_b = library(eq_a), library(eq_b)
    args = (world.pref, world.mu, world.ref, world.beta)
    d1 = f_a(p1, *args, **kw) - f_b(p1, *args)
    d2 = f_a(p2, *args, **kw) - f_b(p2, *args)
    return d1, d2


def _scale(world, *policies):
    q = torch.stack([tb.logratios(p, world.ref) for p in policies])
    return 1 + (world.beta * q).abs().max().item() ** 2


@given(tbst.preference_worlds(mu_zeros=True), st.data())
def test_lemma_3_1_eq9_minus_eq10_is_constant(world, data):
    p1, p2 = (data.draw(tbst.probabilities(world.ref.shape[-1])) for _ in range(2))
    d1, d2 = _difference(world, "9", "10", p1, p2)
    assert abs((d1 - d2).item()) <= 1e-11 * _scale(world, p1, p2)
    # the constant itself: E_μ[g²] − E_μ[v²], g the target of (9)
    mu, pref = world.mu, world.pref
    s = (pref * mu).sum(-1)
    g = s[:, None] - s[None, :]
    const = (mu[:, None] * mu[None, :] * (g**2 - pref**2)).sum()
    assert d1.item() == pytest.approx(const.item(), abs=1e-11 * _scale(world, p1))


def test_lemma_3_1_fails_when_pairs_are_not_drawn_from_mu():
    """Negative twin: draw the pairs from ν ≠ μ while the target of (9) keeps μ: (9) − (10) then
    depends on the policy, so the two problems have different minimisers."""
    pref = torch.tensor([[0.5, 0.9, 0.2], [0.1, 0.5, 0.7], [0.8, 0.3, 0.5]], dtype=F64)
    mu = torch.tensor([0.6, 0.3, 0.1], dtype=F64)
    nu = torch.tensor([0.1, 0.2, 0.7], dtype=F64)
    ref = torch.full((3,), 1 / 3, dtype=F64)
    p1, p2 = ref, torch.tensor([0.7, 0.2, 0.1], dtype=F64)

    def diff(p):
        return tb.ipo_target_objective(
            p, pref, mu, ref, 1.0, pairs_from=nu
        ) - tb.ipo_preference_objective(p, pref, nu, ref, 1.0)

    assert abs((diff(p1) - diff(p2)).item()) > 1e-2


@given(tbst.preference_worlds(mu_zeros=True), st.data())
def test_eq11_corrected_and_eq12_differ_from_eq10_by_constants(world, data):
    p1, p2 = (data.draw(tbst.probabilities(world.ref.shape[-1])) for _ in range(2))
    tol = 1e-11 * _scale(world, p1, p2)
    d1, d2 = _difference(world, "11", "10", p1, p2)
    assert abs((d1 - d2).item()) <= tol
    mu, pref = world.mu, world.pref
    assert d1.item() == pytest.approx(
        (mu[:, None] * mu[None, :] * pref * (1 - pref)).sum().item(), abs=tol
    )
    d1, d2 = _difference(world, "11", "12", p1, p2)
    assert d1.item() == pytest.approx(0.25, abs=tol) and d2.item() == pytest.approx(0.25, abs=tol)


def test_eq11_as_printed_is_not_equivalent():
    """Erratum: the printed target c − 1 is reversed; (11) printed − (10) depends on the policy."""
    pref = torch.tensor([[0.5, 0.9], [0.1, 0.5]], dtype=F64)
    half = torch.full((2,), 0.5, dtype=F64)
    p2 = torch.tensor([0.8, 0.2], dtype=F64)
    world = tbst.PreferenceWorld(pref, half, half, 1.0)
    d1, d2 = _difference(world, "11-printed", "10", half, p2)
    assert abs((d1 - d2).item()) > 0.1


def scipy_minimise(objective, world):
    """Minimise a population objective over free logits with scipy (independent of closed forms)."""

    def f(z):
        policy = torch.tensor(special.softmax(z), dtype=F64)
        return objective(policy, world.pref, world.mu, world.ref, world.beta).item()

    res = optimize.minimize(f, np.log(world.ref.numpy()), method="BFGS", options={"gtol": 1e-11})
    return torch.tensor(special.softmax(res.x)), res.fun


@given(tbst.preference_worlds(max_responses=4))
def test_ipo_population_minimiser_is_the_identity_psi_optimum(world):
    star = tb.psi_optimal_policy(world.pref, world.mu, world.ref, world.beta, "identity")
    for eq in ("9", "10", "11", "12"):
        found, value = scipy_minimise(tb.NGUYEN_2025[eq], world)
        at_star = tb.NGUYEN_2025[eq](star, world.pref, world.mu, world.ref, world.beta).item()
        assert at_star <= value + 1e-10, eq
        assert torch.allclose(star, found, atol=1e-4), (
            eq
        )  # BFGS to gtol 1e-11 on a strictly convex problem


@given(tbst.preference_worlds(max_responses=4))
def test_eq11_as_printed_is_minimised_by_the_reversed_preference(world):
    """Erratum, made concrete: (11) as printed is minimised by the IPO optimum of 1 − P = Pᵀ."""
    reversed_star = tb.psi_optimal_policy(world.pref.T, world.mu, world.ref, world.beta)
    found, _ = scipy_minimise(functools.partial(tb.ipo_label_objective, printed=True), world)
    assert torch.allclose(reversed_star, found, atol=1e-4)


def test_ipo_minimiser_is_not_unique_without_full_support():
    """μ misses response 2: its probability is a free direction of the IPO objective, and the Ψ
    optimum is one minimiser among many."""
    pref = torch.tensor([[0.5, 0.9, 0.2], [0.1, 0.5, 0.7], [0.8, 0.3, 0.5]], dtype=F64)
    mu = torch.tensor([0.5, 0.5, 0.0], dtype=F64)
    ref = torch.tensor([0.2, 0.3, 0.5], dtype=F64)
    star = tb.psi_optimal_policy(pref, mu, ref, 0.5)
    other = star.clone()
    other[2] = 0.9
    other[:2] *= 0.1 / star[:2].sum()  # same odds between the sampled responses
    for eq in ("9", "10", "11", "12"):
        f = tb.NGUYEN_2025[eq]
        assert f(other, pref, mu, ref, 0.5).item() == pytest.approx(
            f(star, pref, mu, ref, 0.5).item(), abs=1e-14
        )
    assert (other - star).abs().max() > 0.3
    # with full support the same move changes the objective
    full = torch.tensor([0.4, 0.4, 0.2], dtype=F64)
    star = tb.psi_optimal_policy(pref, full, ref, 0.5)
    other = star.clone()
    other[2] = 0.9
    other[:2] *= 0.1 / star[:2].sum()
    assert (
        tb.ipo_objective(other, pref, full, ref, 0.5)
        > tb.ipo_objective(star, pref, full, ref, 0.5) + 1e-3
    )


def test_objective_bad_inputs():
    pref = torch.tensor([[0.5, 0.9], [0.1, 0.5]], dtype=F64)
    half = torch.full((2,), 0.5, dtype=F64)
    with pytest.raises(ValueError, match="beta must be positive"):
        tb.ipo_objective(half, pref, half, half, 0.0)
    with pytest.raises(ValueError, match=r"\(8c\)"):
        tb.ipo_objective(half, torch.tensor([[0.5, 0.9], [0.2, 0.5]], dtype=F64), half, half, 1.0)
    with pytest.raises(ValueError, match="same number of responses"):
        tb.dpo_objective(torch.full((3,), 1 / 3, dtype=F64), pref, half, half, 1.0)
    with pytest.raises(ValueError, match="ref = 0"):
        tb.logratios(half, torch.tensor([1.0, 0.0], dtype=F64))
