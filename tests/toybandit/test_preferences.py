"""Preference models and Ψ-preferences (Nguyen 2025 (7), (8a–c); Azar et al. 2023)."""

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import toybandit as tb
from tests.helpers import F64
from toybandit import strategies as tbst


def logit(p):
    return math.log(p) - math.log1p(-p)


@given(tbst.rewards(5, batch_shape=(2,)))
def test_bradley_terry_entries_and_conditions(r):
    pref = tb.check_preference(tb.bradley_terry(r))
    for x, i, j in itertools.product(range(2), range(5), range(5)):
        expected = 1 / (1 + math.exp(-(r[x, i] - r[x, j]).item()))
        assert pref[x, i, j].item() == pytest.approx(expected, rel=1e-14, abs=1e-300)


@given(st.sampled_from(tb.PREFERENCE_KINDS), st.integers(3, 7), st.integers(0, 2**31 - 1))
def test_random_preferences_are_valid(kind, n, seed):
    pref = tb.random_preference(
        n, generator=torch.Generator().manual_seed(seed), kind=kind, batch_shape=(2,)
    )
    assert pref.shape == (2, n, n)
    tb.check_preference(pref)
    if kind == "deterministic":
        off = ~torch.eye(n, dtype=torch.bool)
        assert ((pref[:, off] == 0) | (pref[:, off] == 1)).all()


def cycle_sum(pref, cycle=(0, 1, 2)):
    """Σ logit P over a cycle: 0 for every Bradley–Terry model (the r's telescope)."""
    a, b, c = cycle
    return logit(pref[a, b].item()) + logit(pref[b, c].item()) + logit(pref[c, a].item())


@given(tbst.preferences(4, kind="bradley_terry"))
def test_bradley_terry_has_no_cycle(pref):
    assert abs(cycle_sum(pref)) < 1e-9


@given(tbst.preferences(4, kind="cyclic"))
def test_cyclic_preference_is_not_bradley_terry(pref):
    """Negative twin: a cycle y₀ ≻ y₁ ≻ y₂ ≻ y₀ has a positive logit cycle sum, so no reward fits."""
    assume(all(0 < pref[i, j] < 1 for i, j in ((0, 1), (1, 2), (2, 0))))
    assert cycle_sum(pref) > 0


def test_seeded_cyclic_preference_is_intransitive():
    pref = tb.random_preference(3, generator=torch.Generator().manual_seed(0), kind="cyclic")
    assert pref[0, 1] > 0.5 and pref[1, 2] > 0.5 and pref[2, 0] > 0.5


@pytest.mark.parametrize(
    ("pref", "match"),
    [
        ([[0.5, 1.2], [-0.2, 0.5]], r"\(8a\)"),
        ([[0.5, math.nan], [0.5, 0.5]], r"\(8a\)"),
        ([[0.4, 0.5], [0.5, 0.5]], r"\(8b\)"),
        ([[0.5, 0.7], [0.7, 0.5]], r"\(8c\)"),
        ([0.5, 0.5], "shape"),
        ([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]], "shape"),
    ],
)
def test_check_preference_names_the_condition(pref, match):
    with pytest.raises(ValueError, match=match):
        tb.check_preference(torch.tensor(pref, dtype=F64))


def psi_scores_by_loops(pref, mu, psi):
    n = len(mu)
    out = []
    for y in range(n):
        total = 0.0
        for y2 in range(n):
            if mu[y2] > 0:
                total += mu[y2] * psi(pref[y][y2])
        out.append(total)
    return out


@given(tbst.preference_worlds(mu_zeros=True))
def test_psi_scores_identity_by_enumeration(w):
    got = tb.psi_scores(w.pref, w.mu, "identity")
    expected = psi_scores_by_loops(w.pref.tolist(), w.mu.tolist(), lambda p: p)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-13, atol=1e-15)


@given(tbst.preference_worlds(kind="bradley_terry"))
def test_psi_scores_logit_and_callable_by_enumeration(w):
    got = tb.psi_scores(w.pref, w.mu, "logit")
    expected = psi_scores_by_loops(w.pref.tolist(), w.mu.tolist(), logit)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-9)
    cube = tb.psi_scores(w.pref, w.mu, lambda p: p**3)
    np.testing.assert_allclose(
        cube.numpy(),
        psi_scores_by_loops(w.pref.tolist(), w.mu.tolist(), lambda p: p**3),
        rtol=1e-13,
    )


@given(tbst.bandits(max_prompts=2, reward_scale=5.0), st.data())
def test_psi_logit_on_bradley_terry_is_the_rlhf_optimum_for_every_mu(b, data):
    """Azar et al. 2023, Prop. 1: Ψ = logit with a Bradley–Terry P gives the RLHF optimum whatever μ."""
    mu = data.draw(
        tbst.probabilities(b.reward.shape[-1], batch_shape=b.reward.shape[:-1], zeros=True)
    )
    got = tb.psi_optimal_policy(tb.bradley_terry(b.reward), mu, b.ref, b.beta, "logit")
    assert torch.allclose(got, tb.optimal_policy(b.reward, b.ref, b.beta), rtol=1e-9, atol=1e-12)


def test_psi_identity_on_bradley_terry_is_not_the_rlhf_optimum():
    """Negative twin: with Ψ = identity the scores are E_μ σ(r − r'), a squashed reward."""
    reward = torch.tensor([0.0, 2.0, 4.0], dtype=F64)
    ref = mu = torch.full((3,), 1 / 3, dtype=F64)
    got = tb.psi_optimal_policy(tb.bradley_terry(reward), mu, ref, 1.0, "identity")
    assert (got - tb.optimal_policy(reward, ref, 1.0)).abs().max() > 0.1


def test_psi_optimum_is_gibbs_on_the_score():
    # Reference value: P = [[½, 0.9], [0.1, ½]], μ uniform ⇒ s = (0.7, 0.3); τ = 0.2, uniform ref:
    # π(0) = 1/(1 + e^{(0.3 − 0.7)/0.2}) = 1/(1 + e^{−2}).
    pref = torch.tensor([[0.5, 0.9], [0.1, 0.5]], dtype=F64)
    half = torch.full((2,), 0.5, dtype=F64)
    got = tb.psi_optimal_policy(pref, half, half, 0.2)
    assert got[0].item() == pytest.approx(1 / (1 + math.exp(-2)), rel=1e-14)


def test_unbounded_psi_on_deterministic_preferences_has_no_optimum():
    pref = torch.tensor([[0.5, 1.0], [0.0, 0.5]], dtype=F64)
    half = torch.full((2,), 0.5, dtype=F64)
    with pytest.raises(ValueError, match="does not exist"):
        tb.psi_optimal_policy(pref, half, half, 1.0, "logit")
    # the identity Ψ is bounded: a finite optimum
    assert torch.isfinite(tb.psi_optimal_policy(pref, half, half, 1.0)).all()
    # a response that surely loses to a sampled one gets probability 0 under Ψ = logit
    got = tb.psi_optimal_policy(pref, torch.tensor([1.0, 0.0], dtype=F64), half, 1.0, "logit")
    assert got.tolist() == [1.0, 0.0]


def test_psi_bad_inputs():
    pref = torch.tensor([[0.5, 0.9], [0.1, 0.5]], dtype=F64)
    half = torch.full((2,), 0.5, dtype=F64)
    with pytest.raises(ValueError, match="psi must be one of"):
        tb.psi_scores(pref, half, "exp")
    with pytest.raises(ValueError, match="same number of responses"):
        tb.psi_scores(pref, torch.full((3,), 1 / 3, dtype=F64))
    with pytest.raises(ValueError, match="tau must be positive"):
        tb.psi_optimal_policy(pref, half, half, 0.0)
    with pytest.raises(ValueError, match="mu must sum to 1"):
        tb.psi_scores(pref, torch.tensor([0.5, 0.6], dtype=F64))
