"""Preference data: sampled pairs, and the exact population as a weighted list of pairs."""

from __future__ import annotations

from typing import NamedTuple

import torch

from . import validation as v
from .objectives import pair_weights
from .preferences import check_preference
from .validation import TensorLike

Tensor = torch.Tensor


class PreferencePairs(NamedTuple):
    """Labelled pairs: response indices ``chosen`` ≻ ``rejected`` for prompt ``prompts`` (None for a
    single prompt); ``weights`` None means every pair counts once."""

    chosen: Tensor
    rejected: Tensor
    prompts: Tensor | None
    weights: Tensor | None = None


def _prompt_world(pref, mu, rho):
    pref = check_preference(pref)
    mu = v.probabilities(mu, "mu").to(pref.dtype)
    if pref.dim() > 3:
        raise ValueError(f"pref must be [Y, Y] or [X, Y, Y], got shape {tuple(pref.shape)}")
    if mu.dim() > 2 or mu.shape[-1] != pref.shape[-1]:
        raise ValueError(
            f"mu must be [Y] or [X, Y] with the Y of pref: shapes {tuple(mu.shape)} and "
            f"{tuple(pref.shape)}"
        )
    single = pref.dim() == 2 and mu.dim() == 1
    num_prompts = (
        1
        if single
        else max(pref.shape[0] if pref.dim() == 3 else 1, mu.shape[0] if mu.dim() == 2 else 1)
    )
    y = pref.shape[-1]
    try:
        pref = pref.expand(num_prompts, y, y)
        mu = mu.expand(num_prompts, y)
    except RuntimeError as err:
        raise ValueError(
            f"pref and mu disagree on the number of prompts: {tuple(pref.shape)}, {tuple(mu.shape)}"
        ) from err
    if rho is None:
        rho = torch.full((num_prompts,), 1.0 / num_prompts, dtype=pref.dtype)
    else:
        if single:
            raise ValueError(
                "rho is only meaningful with several prompts (pref [X, Y, Y] or mu [X, Y])"
            )
        rho = v.probabilities(rho, "rho").to(pref.dtype)
        if rho.shape != (num_prompts,):
            raise ValueError(f"rho must have shape ({num_prompts},), got {tuple(rho.shape)}")
    return pref, mu, rho, single


def sample_preferences(
    pref: TensorLike,
    mu: TensorLike,
    n: int,
    generator: torch.Generator,
    rho: TensorLike | None = None,
) -> PreferencePairs:
    """Draw n labelled pairs: x ∼ ρ, y₁, y₂ ∼ μ(·|x) i.i.d., y₁ ≻ y₂ with probability P(y₁ ≻ y₂ | x).

    The data model of Nguyen 2025, eqs. (9)–(12) (and of the DPO loss (6) under Bradley–Terry).
    Deterministic for a seeded ``generator``.

    Args:
        pref: P, [Y, Y] for one prompt or [X, Y, Y].
        mu: μ, [Y] (shared by all prompts) or [X, Y].
        n: number of pairs.
        generator: the source of randomness (a seeded ``torch.Generator``).
        rho: ρ(x), [X]; uniform over prompts by default. Not allowed for a single prompt.

    Returns:
        :class:`PreferencePairs` of int64 index tensors of shape [n]; ``prompts`` is None for a single
        prompt.
    """
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator)}")
    n = v.integer(n, "n", minimum=0)
    pref, mu, rho, single = _prompt_world(pref, mu, rho)
    if n == 0:  # torch.multinomial refuses to draw nothing
        empty = torch.zeros(0, dtype=torch.long)
        return PreferencePairs(empty, empty, None if single else empty)
    prompts = torch.multinomial(rho, n, replacement=True, generator=generator)
    rows = mu[prompts]
    y1 = torch.multinomial(rows, 1, generator=generator).squeeze(-1)
    y2 = torch.multinomial(rows, 1, generator=generator).squeeze(-1)
    first_wins = torch.rand(n, generator=generator, dtype=pref.dtype) < pref[prompts, y1, y2]
    chosen = torch.where(first_wins, y1, y2)
    rejected = torch.where(first_wins, y2, y1)
    return PreferencePairs(chosen, rejected, None if single else prompts)


def population_pairs(
    pref: TensorLike, mu: TensorLike, rho: TensorLike | None = None
) -> PreferencePairs:
    """Every (prompt, chosen, rejected) with positive probability, weighted by ρ(x) W_x(i, j).

    W = :func:`toybandit.objectives.pair_weights` = 2 μ_i μ_j P_ij. A weighted pairwise loss over
    these pairs is the exact population objective, so :func:`toybandit.fit_policy` fits the
    population optimum when given them.
    """
    pref, mu, rho, single = _prompt_world(pref, mu, rho)
    weights = rho[:, None, None] * pair_weights(pref, mu)
    prompts, chosen, rejected = (weights > 0).nonzero(as_tuple=True)
    return PreferencePairs(
        chosen, rejected, None if single else prompts, weights[prompts, chosen, rejected]
    )
