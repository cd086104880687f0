"""Hypothesis strategies for bandit instances, usable in anyone's tests.

Every strategy yields float64 tensors with the project's conventions (responses on the last dim).
Distributions are drawn as softmax of bounded logits, so their entries are ≥ e^{-2·spread}/Y; pass
``zeros=True`` to also get exact zeros (never a whole row of them).

>>> from hypothesis import given
>>> @given(bandits(max_prompts=3))
... def test_optimum_is_a_distribution(b):
...     total = optimal_policy(b.reward, b.ref, b.beta).sum(-1)
...     assert torch.allclose(total, torch.ones_like(total))
>>> test_optimum_is_a_distribution()
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from hypothesis import strategies as st

from .optimal import optimal_policy  # noqa: F401  (used by the doctest above)
from .preferences import bradley_terry, from_upper_triangle

Tensor = torch.Tensor

__all__ = [
    "Bandit",
    "PreferenceWorld",
    "bandits",
    "betas",
    "preference_worlds",
    "preferences",
    "probabilities",
    "rewards",
]


def _tensor(
    shape: tuple[int, ...], elements: st.SearchStrategy[float]
) -> st.SearchStrategy[Tensor]:
    size = math.prod(shape)
    return st.lists(elements, min_size=size, max_size=size).map(
        lambda xs: torch.tensor(xs, dtype=torch.float64).reshape(shape)
    )


def rewards(
    num_responses: int, *, batch_shape: tuple[int, ...] = (), scale: float = 10.0
) -> st.SearchStrategy[Tensor]:
    """Finite rewards uniform on [−scale, scale], shape [*batch_shape, Y]."""
    return _tensor((*batch_shape, num_responses), st.floats(-scale, scale, allow_nan=False))


def betas(min_value: float = 0.05, max_value: float = 20.0) -> st.SearchStrategy[float]:
    """β (or τ) log-uniform on [min_value, max_value]."""
    return st.floats(math.log(min_value), math.log(max_value)).map(math.exp)


@st.composite
def probabilities(
    draw: st.DrawFn,
    num_responses: int,
    *,
    batch_shape: tuple[int, ...] = (),
    spread: float = 4.0,
    zeros: bool = False,
) -> Tensor:
    """Distributions over the last dim: softmax of logits in [−spread, spread], optionally with
    exact zeros (at least one entry of every row stays positive)."""
    logits = draw(rewards(num_responses, batch_shape=batch_shape, scale=spread))
    if zeros:
        mask = draw(_tensor(tuple(logits.shape), st.sampled_from([0.0, 1.0]))).bool()
        mask[..., 0] |= ~mask.any(-1)
        logits = torch.where(mask, logits, float("-inf"))
    return torch.softmax(logits, dim=-1)


@st.composite
def preferences(
    draw: st.DrawFn,
    num_responses: int,
    *,
    kind: str = "general",
    batch_shape: tuple[int, ...] = (),
) -> Tensor:
    """Preference matrices satisfying Nguyen 2025 (8a–c), shape [*batch_shape, Y, Y].

    ``kind``: ``"general"`` (any P_ij ∈ [0, 1] above the diagonal, endpoints included: intransitive
    and deterministic ones too), ``"bradley_terry"`` (σ(r_i − r_j), |r| ≤ 5), ``"cyclic"`` (general
    with y₀ ≻ y₁ ≻ y₂ ≻ y₀, each with probability > ½: not explainable by any reward; Y ≥ 3).
    """
    n = num_responses
    if kind == "bradley_terry":
        return bradley_terry(draw(rewards(n, batch_shape=batch_shape, scale=5.0)))
    if kind not in ("general", "cyclic"):
        raise ValueError(f"kind must be 'general', 'bradley_terry' or 'cyclic', got {kind!r}")
    upper = draw(_tensor((*batch_shape, n, n), st.floats(0.0, 1.0)))
    if kind == "cyclic":
        if n < 3:
            raise ValueError(f"a cyclic preference needs num_responses ≥ 3, got {n}")
        above = st.floats(0.5, 1.0, exclude_min=True)
        upper[..., 0, 1] = draw(_tensor(batch_shape, above))
        upper[..., 1, 2] = draw(_tensor(batch_shape, above))
        upper[..., 0, 2] = 1 - draw(_tensor(batch_shape, above))
    return from_upper_triangle(upper)


class Bandit(NamedTuple):
    """A KL-regularised bandit: reward [X, Y] (or [Y]), ref of the same shape, β > 0."""

    reward: Tensor
    ref: Tensor
    beta: float


class PreferenceWorld(NamedTuple):
    """A preference bandit: pref [.., Y, Y], behaviour policy mu, ref [.., Y], strength β = τ."""

    pref: Tensor
    mu: Tensor
    ref: Tensor
    beta: float


def _sizes(min_responses: int, max_responses: int, max_prompts: int):
    prompts = st.just(()) if max_prompts == 0 else st.integers(1, max_prompts).map(lambda x: (x,))
    return st.tuples(st.integers(min_responses, max_responses), prompts)


@st.composite
def bandits(
    draw: st.DrawFn,
    *,
    min_responses: int = 2,
    max_responses: int = 6,
    max_prompts: int = 0,
    reward_scale: float = 10.0,
    zeros: bool = False,
) -> Bandit:
    """A random bandit; ``max_prompts=0`` gives a single prompt (1-D tensors)."""
    y, batch = draw(_sizes(min_responses, max_responses, max_prompts))
    return Bandit(
        draw(rewards(y, batch_shape=batch, scale=reward_scale)),
        draw(probabilities(y, batch_shape=batch, zeros=zeros)),
        draw(betas()),
    )


@st.composite
def preference_worlds(
    draw: st.DrawFn,
    *,
    kind: str = "general",
    min_responses: int = 2,
    max_responses: int = 6,
    max_prompts: int = 0,
    mu_zeros: bool = False,
) -> PreferenceWorld:
    """A random preference world; μ has full support unless ``mu_zeros``."""
    lo = max(min_responses, 3) if kind == "cyclic" else min_responses
    y, batch = draw(_sizes(lo, max(lo, max_responses), max_prompts))
    return PreferenceWorld(
        draw(preferences(y, kind=kind, batch_shape=batch)),
        draw(probabilities(y, batch_shape=batch, zeros=mu_zeros)),
        draw(probabilities(y, batch_shape=batch)),
        draw(betas()),
    )
