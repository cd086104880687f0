"""Rafailov et al. 2024, Appendix B and D (Lemma 2, eqs. (15)–(16)) on a finite stand-in.

The diffusion MDP of Appendix B has deterministic dynamics over time-indexed states (c, x_t, t);
its states *merge* (many paths reach the same image x_t at step t), so it is a layered DAG, not a
tree. Here x_t takes K values and there are T steps: a time-layered deterministic MDP with a
reference kernel π_ref(x_{t+1} | x_t, t), solved by backward induction over layers.

What this checks: Lemma 2 (the r ↔ Q* bijection survives merging states, by induction over layers),
that the optimum's path law is the bandit optimum over whole paths, and eqs. (15)–(16) in their
exact form — the DPO reward of a hybrid MDP is the sum of per-step log-ratios of both parts, with
strength β on the text steps and γ on the image steps. Out of reach: continuous images and the
Gaussian reverse process, hence the noise-prediction term γ T ω(λ_t) E_t[‖ε − ε_ref‖² − ‖ε − ε_φ‖²]
of eq. (15), which is Wallace et al.'s (2023) bound on the per-step log-ratio sum, not an identity.
"""

from __future__ import annotations

import itertools
import math
from functools import partial
from typing import NamedTuple

import torch

import toybandit as tb

from . import registry
from .registry import Outcome, maxabs

claim = partial(registry.claim, tags=("layered",))
SRC = "Rafailov et al. 2024"
F64 = torch.float64
LAYERS = "T ≤ 4 layers of K ≤ 3 states, values ≤ 10²: rounding ≤ 1e-13; 1e-9 leaves margin"


class Layered(NamedTuple):
    """log π_ref [T, K, K] (row x_t, column x_{t+1}), reward [T, K, K], strength per step [T]."""

    log_ref: torch.Tensor
    reward: torch.Tensor
    beta: torch.Tensor
    g: torch.Generator


def layered(
    g: torch.Generator, device: torch.device | str | None = None, *, hybrid: bool = False
) -> Layered:
    t, k = int(torch.randint(2, 5, (), generator=g)), int(torch.randint(2, 4, (), generator=g))
    log_ref = torch.log_softmax(1.5 * torch.randn(t, k, k, generator=g, dtype=F64), -1)
    reward = 3 * (2 * torch.rand(t, k, k, generator=g, dtype=F64) - 1)
    b = math.exp(math.log(0.1) + math.log(100) * torch.rand((), generator=g).item())
    beta = torch.full((t,), b, dtype=F64)
    if hybrid:  # text steps with β, then image steps with γ
        gamma = math.exp(math.log(0.1) + math.log(100) * torch.rand((), generator=g).item())
        beta[t // 2 :] = gamma
    return Layered(log_ref, reward, beta, g)


def solve(m: Layered):
    """Backward induction: V_T = 0; Q_t(x, x') = r + β_t log π_ref + V_{t+1}(x');
    V_t(x) = β_t logsumexp_{x'} Q_t(x, x')/β_t; log π_t = (Q_t − V_t)/β_t."""
    t, k, _ = m.reward.shape
    v = torch.zeros(t + 1, k, dtype=F64)
    q = torch.empty_like(m.reward)
    for s in range(t - 1, -1, -1):
        q[s] = m.reward[s] + m.beta[s] * m.log_ref[s] + v[s + 1][None, :]
        v[s] = m.beta[s] * torch.logsumexp(q[s] / m.beta[s], -1)
    log_pi = (q - v[:-1, :, None]) / m.beta[:, None, None]
    return q, v, log_pi


def reward_from_q(m: Layered, q: torch.Tensor) -> torch.Tensor:
    """Eq. (7) solved for r, layer by layer: r = Q − β_t log π_ref − V_{t+1}(x')."""
    v_next = torch.zeros_like(q[:, :, 0])
    v = m.beta[:, None] * torch.logsumexp(q / m.beta[:, None, None], -1)  # V_t(x) from Q_t
    v_next[:-1] = v[1:]
    v_next[-1] = 0.0
    return q - m.beta[:, None, None] * m.log_ref - v_next[:, None, :]


def paths(m: Layered):
    """Every path x_1 … x_T from x_0 = 0, with its summed values of a [T, K, K] tensor."""
    t, k, _ = m.reward.shape
    all_paths = list(itertools.product(range(k), repeat=t))

    def total(values):
        out = []
        for p in all_paths:
            x = (0, *p)
            out.append(sum(values[s, x[s], x[s + 1]] for s in range(t)))
        return torch.stack(out)

    return all_paths, total


def _preference_gap(implicit: torch.Tensor, returns: torch.Tensor) -> float:
    """max over path pairs of |σ(implicit_w − implicit_l) − σ(R_w − R_l)| (eqs. (1), (16))."""
    model = torch.sigmoid(implicit[:, None] - implicit[None, :])
    return (model - torch.sigmoid(returns[:, None] - returns[None, :])).abs().max().item()


@claim(
    "rafailov2024.lemma2.bijection",
    SRC,
    ("Lemma 2", "Appendix B"),
    "in a time-layered MDP whose states merge, inverting (7) recovers r from Q*, and any logits "
    "are the Q* of the reward it returns",
    draw=layered,
    tolerance=1e-9,
    why=LAYERS,
    reference="V*(x₀) as β log Σ over enumerated paths of π_ref e^{Σr/β} (itertools.product)",
)
def _(m: Layered) -> float:
    q, v, _ = solve(m)
    back = reward_from_q(m, q)
    logits = 3 * torch.randn(m.reward.shape, generator=m.g, dtype=F64)
    again, _, _ = solve(m._replace(reward=reward_from_q(m, logits)))
    _, total = paths(m)
    beta = float(m.beta[0])
    anchor = beta * torch.logsumexp(total(m.log_ref + m.reward / beta), 0)
    return max(
        maxabs("V*(x₀)", v[0, 0], anchor),
        maxabs("r from Q*", back, m.reward),
        maxabs("Q* of the returned reward", again, logits),
    )


@claim(
    "rafailov2024.lemma2.path-law",
    SRC,
    ("Lemma 2", "Appendix B"),
    "the layered optimum's path law is the KL-regularised bandit optimum over whole paths",
    draw=layered,
    tolerance=1e-9,
    why=LAYERS,
    reference="toybandit's closed-form optimum over enumerated whole paths; V*(x₀) by enumeration",
)
def _(m: Layered) -> float:
    _, v, log_pi = solve(m)
    _, total = paths(m)
    law = total(log_pi).exp()
    bandit = tb.optimal_policy(total(m.reward), total(m.log_ref).exp(), float(m.beta[0]))
    return max(
        (law - bandit).abs().max().item(),
        abs(
            v[0, 0] - float(m.beta[0]) * torch.logsumexp(total(m.log_ref + m.reward / m.beta[0]), 0)
        ).item(),
    )


@claim(
    "rafailov2024.eq15-16.hybrid",
    SRC,
    ("eq. (15)", "eq. (16)", "Appendix D"),
    "hybrid text→image MDP with strengths β (text) and γ (image): r_{θ,φ} = β Σ text log-ratios "
    "+ γ Σ image log-ratios of the optimum equals Σ r − V*(s₀), so σ(r_w − r_l) = p* in (16)",
    draw=lambda g, device: layered(g, device, hybrid=True),
    tolerance=1e-9,
    why=LAYERS,
    expected=Outcome.IDENTITY,
    reference="by construction: with log π = (Q − V)/β_t per step the sum telescopes for any V; "
    "the layered solver itself is anchored by lemma2.path-law and lemma2.bijection",
)
def _(m: Layered) -> float:
    _, v, log_pi = solve(m)
    _, total = paths(m)
    implicit = total(m.beta[:, None, None] * (log_pi - m.log_ref))
    returns = total(m.reward)
    p_model = torch.sigmoid(implicit[:, None] - implicit[None, :])
    p_true = torch.sigmoid(returns[:, None] - returns[None, :])
    return max(
        (implicit - (returns - v[0, 0])).abs().max().item(), (p_model - p_true).abs().max().item()
    )


def _two_starts(g: torch.Generator, device=None) -> Layered:
    return layered(g, device, hybrid=True)


@claim(
    "rafailov2024.eq15-16.different-prompts",
    SRC,
    ("eq. (15)", "eq. (16)", "Appendix D"),
    "drop 'both trajectories start from the same state (c, T)' (as eq. (8) needs): for paths from "
    "two different x₀, V*(x₀) − V*(x₀') does not cancel and the DPO reward misorders them",
    draw=_two_starts,
    tolerance=1e-9,
    why="a failure must exceed rounding (1e-13) by orders of magnitude to count",
    expected=Outcome.NEEDS_ASSUMPTION,
)
def _(m: Layered) -> float:
    _, _, log_pi = solve(m)
    t, k, _ = m.reward.shape
    worst = 0.0
    for p in itertools.product(range(k), repeat=t):
        x, y = (0, *p), (1, *p)  # the same images from two different starting states
        implicit = [
            sum(
                m.beta[s] * (log_pi[s, z[s], z[s + 1]] - m.log_ref[s, z[s], z[s + 1]])
                for s in range(t)
            )
            for z in (x, y)
        ]
        returns = [sum(m.reward[s, z[s], z[s + 1]] for s in range(t)) for z in (x, y)]
        # (sums of tensors: `sum` is typed as possibly its int start)
        implicit_gap = torch.as_tensor(implicit[0] - implicit[1])
        return_gap = torch.as_tensor(returns[0] - returns[1])
        gap = torch.sigmoid(implicit_gap) - torch.sigmoid(return_gap)
        worst = max(worst, abs(gap.item()))
    return worst
