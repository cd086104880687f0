"""fit_policy against exact answers: closed-form IPO minimisers, the RLHF optimum, DPO's divergence."""

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import connected_components

import toybandit as tb
from tests.helpers import F64
from toybandit import strategies as tbst


def ipo_least_squares(chosen, rejected, ref, tau):
    """Closed-form minimiser of Σ_k (q_w − q_l − 1/(2τ))² over log-ratios q (numpy lstsq on the
    incidence matrix): q is unique up to a constant on a connected comparison graph, and
    π ∝ π_ref e^q."""
    y = ref.shape[-1]
    a = np.zeros((len(chosen), y))
    a[np.arange(len(chosen)), chosen] += 1
    a[np.arange(len(chosen)), rejected] -= 1
    q = np.linalg.lstsq(a, np.full(len(chosen), 1 / (2 * tau)), rcond=None)[0]
    w = ref * np.exp(q - q.max())
    return w / w.sum()


def fit_population(pref, mu, ref, loss, **kwargs):
    """fit_policy on the exact population: every labelled pair, weighted by its probability."""
    pairs = tb.population_pairs(pref, mu)
    return tb.fit_policy(
        pairs.chosen,
        pairs.rejected,
        ref,
        loss,
        prompts=pairs.prompts,
        weights=pairs.weights,
        **kwargs,
    )


def connected(chosen, rejected, y):
    graph = np.zeros((y, y))
    graph[chosen, rejected] = graph[rejected, chosen] = 1
    return connected_components(graph, directed=False)[0] == 1


@given(tbst.preference_worlds(max_responses=5), st.integers(2, 60), st.integers(0, 2**31 - 1))
def test_ipo_on_sampled_pairs_reaches_the_closed_form_minimiser(world, n, seed):
    data = tb.sample_preferences(world.pref, world.mu, n, torch.Generator().manual_seed(seed))
    y = world.ref.shape[-1]
    assume(connected(data.chosen.numpy(), data.rejected.numpy(), y))
    fitted = tb.fit_policy(data.chosen, data.rejected, world.ref, "ipo", tau=world.beta)
    expected = ipo_least_squares(
        data.chosen.numpy(), data.rejected.numpy(), world.ref.numpy(), world.beta
    )
    np.testing.assert_allclose(fitted.numpy(), expected, atol=1e-6)


@given(tbst.preference_worlds(max_responses=5, max_prompts=3))
def test_ipo_on_the_population_reaches_the_identity_psi_optimum(world):
    fitted = fit_population(world.pref, world.mu, world.ref, "ipo", tau=world.beta)
    expected = tb.psi_optimal_policy(world.pref, world.mu, world.ref, world.beta, "identity")
    assert (fitted - expected).abs().max() < 1e-6


def test_ipo_population_fit_misses_the_psi_optimum_without_full_support():
    """Negative twin: μ never samples response 2, the data say nothing about it, and the fit keeps
    π_ref's odds for it while the Ψ optimum extrapolates P(2 ≻ ·)."""
    pref = torch.tensor([[0.5, 0.9, 0.2], [0.1, 0.5, 0.7], [0.8, 0.3, 0.5]], dtype=F64)
    mu = torch.tensor([0.5, 0.5, 0.0], dtype=F64)
    ref = torch.full((3,), 1 / 3, dtype=F64)
    fitted = fit_population(pref, mu, ref, "ipo", tau=0.2)
    star = tb.psi_optimal_policy(pref, mu, ref, 0.2)
    assert (fitted[0] / fitted[1]).item() == pytest.approx(
        (star[0] / star[1]).item(), rel=1e-9
    )  # identified
    assert abs((fitted[2] / fitted[0]) / (star[2] / star[0]) - 1) > 0.1  # not identified


@given(tbst.bandits(max_responses=5, max_prompts=2, reward_scale=3.0), st.data())
@settings(max_examples=20)
def test_dpo_on_a_bradley_terry_population_reaches_the_rlhf_optimum(b, data):
    """DPO's population minimiser under Bradley–Terry with full-support μ is π* of eq. (1)."""
    mu = data.draw(tbst.probabilities(b.reward.shape[-1], batch_shape=b.reward.shape[:-1]))
    fitted = fit_population(tb.bradley_terry(b.reward), mu, b.ref, "dpo", beta=b.beta)
    assert (fitted - tb.optimal_policy(b.reward, b.ref, b.beta)).abs().max() < 1e-6


@pytest.mark.parametrize("beta", [0.1, 1.0, 10.0])
def test_dpo_overfits_deterministic_preferences_whatever_beta_while_ipo_does_not(beta):
    """Azar et al. 2023, sec. 4.2: with y₀ ≻ y₁ ≻ y₂ surely, DPO's loss has no minimiser and the
    fitted policy runs to the vertex of y₀ for every β; IPO stops at its finite optimum."""
    pref = torch.tensor([[0.5, 1.0, 1.0], [0.0, 0.5, 1.0], [0.0, 0.0, 0.5]], dtype=F64)
    mu = ref = torch.full((3,), 1 / 3, dtype=F64)
    pairs = tb.population_pairs(pref, mu)
    fit = lambda loss, steps, **kw: tb.fit_policy(  # noqa: E731
        pairs.chosen, pairs.rejected, ref, loss, weights=pairs.weights, steps=steps, **kw
    )
    short, long = fit("dpo", 5, beta=beta), fit("dpo", 40 * max(1, int(beta)), beta=beta)
    assert 0 < long[1] < short[1]  # still moving: no stationary point
    assert long[0] > 1 - 1e-6
    ipo = fit("ipo", 50, tau=beta)
    np.testing.assert_allclose(
        ipo.numpy(), tb.psi_optimal_policy(pref, mu, ref, beta).numpy(), atol=1e-10
    )
    assert ipo[0] < 1 - 1e-3 and (ipo > 0).all()


def test_fit_keeps_zero_reference_mass_and_unseen_odds():
    ref = torch.tensor([0.5, 0.0, 0.25, 0.25], dtype=F64)
    fitted = tb.fit_policy(torch.tensor([0]), torch.tensor([2]), ref, "ipo", tau=1.0)
    assert fitted[1] == 0.0
    assert fitted[2] < ref[2] and fitted[0] > ref[0]


def test_unseen_responses_keep_their_reference_odds():
    """Regression: a response in no pair has a zero Hessian row; pinv's rounding noise there once
    became a step of ~1e150 that moved all the mass onto it."""
    ref = torch.tensor([0.0298, 0.0005, 0.2227, 0.0424, 0.0144, 0.3955, 0.2657, 0.0290], dtype=F64)
    ref = ref / ref.sum()
    chosen = torch.tensor([6, 0, 2, 3, 5, 3, 0, 4, 2, 7])
    rejected = torch.tensor([7, 2, 4, 5, 4, 4, 7, 6, 3, 5])
    fitted = tb.fit_policy(chosen, rejected, ref, "ipo", tau=1.0)
    assert (fitted[1] / fitted.sum()).item() < 0.01  # 1 appears in no pair
    # Closed form: the IPO minimiser satisfies h = 1/(2τ) in least squares on the pairs.
    q = fitted.log() - ref.log()
    design = torch.zeros(len(chosen), 8, dtype=F64)
    design[torch.arange(len(chosen)), chosen] = 1.0
    design[torch.arange(len(chosen)), rejected] -= 1.0
    best = np.linalg.lstsq(design.numpy(), np.full(len(chosen), 0.5), rcond=None)[0]
    np.testing.assert_allclose((design @ q).numpy(), design.numpy() @ best, atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss": "kto"}, "loss must be"),
        ({"loss": "dpo", "tau": 0.1}, "takes beta"),
        ({"loss": "ipo", "beta": 0.1}, "takes tau"),
        ({"loss": "dpo", "beta": 0.0}, "beta must be positive"),
        ({"chosen": torch.tensor([0, 3])}, r"chosen must lie in \[0, 3\)"),
        ({"chosen": torch.tensor([0.0, 1.0])}, "integer indices"),
        ({"rejected": torch.tensor([1])}, "length 2"),
        ({"prompts": torch.tensor([0, 0])}, "prompts must be None"),
        ({"ref": torch.tensor([[0.5, 0.5, 0.0]], dtype=F64)}, "prompts is required"),
        ({"ref": torch.tensor([0.5, 0.0, 0.5], dtype=F64)}, "ref = 0"),
        ({"weights": torch.tensor([1.0, -1.0])}, "weights must be"),
        ({"steps": 0}, "steps must be"),
    ],
)
def test_fit_bad_inputs(kwargs, match):
    args = {
        "chosen": torch.tensor([0, 1]),
        "rejected": torch.tensor([1, 2]),
        "ref": torch.full((3,), 1 / 3, dtype=F64),
        "loss": "dpo",
        "beta": 0.5,
    }
    if kwargs.get("loss") == "ipo" or "tau" in kwargs:
        args.pop("beta")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        tb.fit_policy(**args)
