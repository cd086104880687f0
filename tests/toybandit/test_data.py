"""Sampled and population preference pairs."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import toybandit as tb
from tests.helpers import F64, gen
from tests.stats import PER_RUN, binomial_outliers
from toybandit import strategies as tbst

EXAMPLES = 10


def pair_counts(data, x, y):
    counts = torch.zeros(x, y, y, dtype=F64)
    idx = (data.prompts if data.prompts is not None else torch.zeros_like(data.chosen),)
    counts.index_put_(
        (*idx, data.chosen, data.rejected),
        torch.ones(data.chosen.numel(), dtype=F64),
        accumulate=True,
    )
    return counts


@given(tbst.preference_worlds(max_prompts=3), st.integers(0, 2**31 - 1))
@settings(max_examples=EXAMPLES)
def test_sample_frequencies_match_the_exact_pair_law(world, seed):
    """Each (prompt, chosen, rejected) count against Binomial(n, ρ(x) W_x(i, j)): exact tails,
    Bonferroni over cells and examples, false-failure probability ≤ 1e-6 per run."""
    n = 40_000
    data = tb.sample_preferences(world.pref, world.mu, n, gen(seed))
    x, y = world.pref.shape[0], world.pref.shape[-1]
    expected = tb.pair_weights(world.pref, world.mu).expand(x, y, y) / x
    bad = binomial_outliers(pair_counts(data, x, y), n, expected, PER_RUN / EXAMPLES)
    assert bad.size == 0, f"cells {bad[:5]} off the pair law"


def test_the_frequency_check_catches_a_wrong_sampler():
    """Negative twins at the same level: labels swapped (law W transposed), and μ replaced by the
    uniform law, are both flagged."""
    pref = torch.tensor([[0.5, 0.8, 0.3], [0.2, 0.5, 0.6], [0.7, 0.4, 0.5]], dtype=F64)
    mu = torch.tensor([0.5, 0.3, 0.2], dtype=F64)
    n = 40_000
    expected = tb.pair_weights(pref, mu)[None]
    data = tb.sample_preferences(pref, mu, n, gen(3))
    assert binomial_outliers(pair_counts(data, 1, 3), n, expected, PER_RUN).size == 0
    swapped = tb.PreferencePairs(data.rejected, data.chosen, None)
    assert binomial_outliers(pair_counts(swapped, 1, 3), n, expected, PER_RUN).size > 0
    uniform = tb.sample_preferences(pref, torch.full((3,), 1 / 3, dtype=F64), n, gen(3))
    assert binomial_outliers(pair_counts(uniform, 1, 3), n, expected, PER_RUN).size > 0


def test_sampling_is_deterministic_and_single_prompt_has_no_prompts():
    pref = tb.random_preference(4, generator=gen(1))
    mu = torch.full((4,), 0.25, dtype=F64)
    a = tb.sample_preferences(pref, mu, 100, gen(7))
    b = tb.sample_preferences(pref, mu, 100, gen(7))
    c = tb.sample_preferences(pref, mu, 100, gen(8))
    assert a.prompts is None and a.chosen.dtype == torch.long and a.chosen.shape == (100,)
    assert torch.equal(a.chosen, b.chosen) and torch.equal(a.rejected, b.rejected)
    assert not torch.equal(a.chosen, c.chosen)


def test_deterministic_preferences_always_choose_the_winner():
    pref = torch.tensor([[0.5, 1.0], [0.0, 0.5]], dtype=F64)
    data = tb.sample_preferences(pref, torch.tensor([0.5, 0.5], dtype=F64), 500, gen())
    differ = data.chosen != data.rejected
    assert differ.any() and (data.chosen[differ] == 0).all()


def test_rho_weights_the_prompts():
    pref = tb.random_preference(3, generator=gen(), batch_shape=(2,))
    data = tb.sample_preferences(
        pref,
        torch.full((3,), 1 / 3, dtype=F64),
        2000,
        gen(),
        rho=torch.tensor([0.9, 0.1], dtype=F64),
    )
    k = int((data.prompts == 0).sum())
    assert binomial_outliers([k], 2000, [0.9], PER_RUN).size == 0
    assert binomial_outliers([k], 2000, [0.5], PER_RUN).size > 0  # the uniform ρ is refuted


def test_population_pairs_carry_the_exact_weights():
    pref = tb.random_preference(3, generator=gen(), batch_shape=(2,))
    mu = torch.tensor([[0.2, 0.8, 0.0], [0.3, 0.3, 0.4]], dtype=F64)
    pairs = tb.population_pairs(pref, mu, rho=torch.tensor([0.25, 0.75], dtype=F64))
    assert pairs.weights.sum().item() == pytest.approx(1.0, abs=1e-14)
    dense = torch.zeros(2, 3, 3, dtype=F64).index_put_(
        (pairs.prompts, pairs.chosen, pairs.rejected), pairs.weights
    )
    expected = torch.tensor([0.25, 0.75], dtype=F64)[:, None, None] * tb.pair_weights(pref, mu)
    np.testing.assert_allclose(dense.numpy(), expected.numpy(), atol=1e-15)
    assert not ((pairs.prompts == 0) & ((pairs.chosen == 2) | (pairs.rejected == 2))).any()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": -1}, "n must be"),
        ({"mu": torch.full((3,), 0.5, dtype=F64)}, "mu must sum to 1"),
        ({"mu": torch.full((4,), 0.25, dtype=F64)}, "mu must be"),
        ({"rho": torch.tensor([1.0], dtype=F64)}, "rho is only meaningful"),
        ({"generator": 0}, "generator must be"),
    ],
)
def test_sample_bad_inputs(kwargs, match):
    args = {
        "pref": tb.random_preference(3, generator=gen()),
        "mu": torch.full((3,), 1 / 3, dtype=F64),
        "n": 5,
        "generator": gen(),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        tb.sample_preferences(**args)
