"""Gradient-based estimators: a tabular softmax policy fitted to preference pairs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from . import _validation as v
from . import losses

Tensor = torch.Tensor


_indices = v.indices


class _MarginLoss(NamedTuple):
    """ℓ(h) with its first two derivatives in closed form (autograd's second derivative of
    log σ underflows to 0 long before σ(βh)σ(−βh) does)."""

    value: Callable[[Tensor], Tensor]
    d1: Callable[[Tensor], Tensor]
    d2: Callable[[Tensor], Tensor]


def _margin_loss(loss: str, beta, tau, label_smoothing) -> _MarginLoss:
    """The loss as a function of the log-ratio margin h = q_w − q_l alone."""
    if loss == "dpo":
        if beta is None or tau is not None:
            raise ValueError("loss='dpo' takes beta (its KL strength) and no tau")
        beta = v.positive(beta, "beta")
        eps = v.in_range(label_smoothing, "label_smoothing", 0.0, 1.0)
        return _MarginLoss(
            lambda h: losses.dpo(h, torch.zeros_like(h), beta, label_smoothing=eps),
            # ℓ' = −(1 − ε)β σ(−βh) + εβ σ(βh),  ℓ'' = β² σ(βh) σ(−βh)
            lambda h: beta * (eps * torch.sigmoid(beta * h) - (1 - eps) * torch.sigmoid(-beta * h)),
            lambda h: beta**2 * torch.exp(F.logsigmoid(beta * h) + F.logsigmoid(-beta * h)),
        )
    if loss == "ipo":
        if tau is None or beta is not None:
            raise ValueError("loss='ipo' takes tau (its regularisation strength) and no beta")
        tau = v.positive(tau, "tau")
        return _MarginLoss(
            lambda h: losses.ipo(h, torch.zeros_like(h), tau),
            lambda h: 2 * (h - 1 / (2 * tau)),
            lambda h: torch.full_like(h, 2.0),
        )
    raise ValueError(f"loss must be 'dpo' or 'ipo', got {loss!r}")


def fit_policy(
    chosen,
    rejected,
    ref,
    loss: str = "dpo",
    *,
    beta: float | None = None,
    tau: float | None = None,
    label_smoothing: float = 0.0,
    steps: int = 500,
    prompts=None,
    weights=None,
    tolerance: float = 1e-12,
) -> Tensor:
    """Fit π_θ = softmax(θ) to preference pairs by damped Newton descent from θ = log π_ref.

    Minimises L(θ) = Σ_k w_k ℓ(h_k) / Σ_k w_k over free logits θ[x, y], where
    h_k = q_θ(y_w,k) − q_θ(y_l,k) = θ_w − θ_l − log π_ref(y_w)/π_ref(y_l) (log Z cancels) and ℓ is
    ``losses.dpo`` (Nguyen 2025, eq. (6)) or ``losses.ipo`` (eq. (12); Azar et al. 2023, eq. (17)).
    On sampled pairs (:func:`toybandit.sample_preferences`) this is the empirical loss; on
    :func:`toybandit.population_pairs` with their weights it is the exact population objective.

    L is convex in θ; its gradient is Σ_k w_k ℓ'(h_k)(e_w − e_l) and its Hessian the weighted graph
    Laplacian Σ_k w_k ℓ''(h_k)(e_w − e_l)(e_w − e_l)ᵀ of each prompt's comparison graph, so each
    iteration solves one small Y × Y system per prompt (pseudo-inverse: θ is defined up to a
    per-prompt constant, and up to more where the graph is disconnected) with an Armijo
    backtracking line search. IPO is quadratic: one step reaches its minimiser. DPO on
    deterministic (or perfectly separated) preferences has no minimiser: each step raises βh by
    about 1, the iteration runs for all ``steps``, and the policy goes to the boundary of the
    simplex whatever β — the overfitting of Azar et al. 2023, sec. 4.2.

    Args:
        chosen: response index of the chosen response of each pair, int [n].
        rejected: response index of the rejected response of each pair, int [n].
        ref: π_ref, [Y] (one prompt) or [X, Y]; its dtype is the working precision (use float64).
        loss: ``"dpo"`` or ``"ipo"``.
        beta: DPO's β (with ``loss="dpo"``). tau: IPO's τ (with ``loss="ipo"``).
        label_smoothing: DPO's ε.
        steps: maximum number of Newton iterations.
        prompts: prompt index of each pair, int [n]; required iff ``ref`` is [X, Y].
        weights: non-negative weight of each pair, [n]; all 1 by default.
        tolerance: stop when no logit moves by more than this in one iteration.

    Returns:
        The fitted policy, probabilities of the shape of ``ref``, exactly 0 where π_ref = 0.
        Responses that appear in no pair keep their π_ref odds against each other.

    Raises:
        ValueError: invalid ``ref``, indices out of range or on responses with π_ref = 0, missing or
            superfluous β/τ, mismatched lengths.
    """
    ref = v.probabilities(ref, "ref")
    if ref.dim() not in (1, 2):
        raise ValueError(f"ref must be [Y] or [X, Y], got shape {tuple(ref.shape)}")
    margin_loss = _margin_loss(loss, beta, tau, label_smoothing)
    steps = v.integer(steps, "steps", minimum=1)
    tolerance = v.in_range(tolerance, "tolerance", 0.0, math.inf, high_open=True)
    num_responses = ref.shape[-1]
    chosen = _indices(chosen, "chosen", num_responses, None)
    n = chosen.shape[0]
    rejected = _indices(rejected, "rejected", num_responses, n)
    single = ref.dim() == 1
    if single:
        if prompts is not None:
            raise ValueError("prompts must be None when ref is [Y] (a single prompt)")
        ref2 = ref.unsqueeze(0)
        prompts = torch.zeros(n, dtype=torch.long, device=ref.device)
    else:
        if prompts is None:
            raise ValueError(
                f"prompts is required when ref is [X, Y], got ref of shape {tuple(ref.shape)}"
            )
        ref2 = ref
        prompts = _indices(prompts, "prompts", ref.shape[0], n)
    if weights is None:
        weights = torch.ones(n, dtype=ref.dtype, device=ref.device)
    else:
        weights = v.as_tensor(weights, "weights").to(ref.dtype)
        if weights.shape != (n,):
            raise ValueError(f"weights must have shape ({n},), got {tuple(weights.shape)}")
        if not torch.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("weights must be finite, non-negative and not all zero")
    support = ref2 > 0
    if n and not (support[prompts, chosen].all() and support[prompts, rejected].all()):
        raise ValueError("a pair uses a response with ref = 0, whose log-ratio is undefined")

    # A tie (y_w = y_l) adds a constant to L and nothing to its derivatives; dropping it keeps the
    # exact ±ℓ'(0) pair from swamping gradients of size e^{−βh} in the scatter-add below.
    weights = weights / weights.sum()
    keep = chosen != rejected
    chosen, rejected, prompts, weights = chosen[keep], rejected[keep], prompts[keep], weights[keep]
    n = chosen.shape[0]

    log_ref = torch.where(support, ref2.log(), 0.0)
    theta = log_ref.clone()
    offset = log_ref[prompts, chosen] - log_ref[prompts, rejected]
    # Index lists so that gradient and Laplacian are scatter-adds, O(n) memory.
    ends = (torch.cat([prompts, prompts]), torch.cat([chosen, rejected]))
    ones = torch.ones(n, dtype=ref.dtype, device=ref.device)
    sign = torch.cat([ones, -ones])
    quad = (
        torch.cat([prompts] * 4),
        torch.cat([chosen, rejected, chosen, rejected]),
        torch.cat([chosen, rejected, rejected, chosen]),
    )
    quad_sign = torch.cat([ones, ones, -ones, -ones])  # +(w,w) +(l,l) −(w,l) −(l,w)

    def margins(theta: Tensor) -> Tensor:
        return theta[prompts, chosen] - theta[prompts, rejected] - offset

    def decrease(theta: Tensor, new: Tensor) -> Tensor:
        # Σ w (ℓ(h_new) − ℓ(h_old)) pair by pair: near the infimum the change is far below the
        # rounding error of L itself (DPO's loss tends to e^{−βh}).
        return (
            weights * (margin_loss.value(margins(new)) - margin_loss.value(margins(theta)))
        ).sum()

    for _ in range(steps if n else 0):
        h = margins(theta)
        d1, d2 = weights * margin_loss.d1(h), weights * margin_loss.d2(h)
        grad = torch.zeros_like(theta).index_put_(ends, sign * d1.repeat(2), accumulate=True)
        hess = theta.new_zeros(*theta.shape, theta.shape[-1])
        hess.index_put_(quad, quad_sign * d2.repeat(4), accumulate=True)
        # Jacobi scaling keeps pairs whose curvatures differ by many orders of magnitude solvable.
        # A response in no pair has a zero row: scale 0 keeps pinv's rounding noise there from
        # being blown up into a step.
        diag = torch.diagonal(hess, dim1=-2, dim2=-1)
        scale = torch.where(diag > 0, diag.clamp_min(torch.finfo(ref.dtype).tiny).rsqrt(), 0.0)
        scaled = scale.unsqueeze(-1) * hess * scale.unsqueeze(-2)
        step = -scale * (
            torch.linalg.pinv(scaled, hermitian=True) @ (scale * grad).unsqueeze(-1)
        ).squeeze(-1)
        slope = (grad * step).sum()
        if not slope < 0:  # zero gradient, or curvature underflowed to 0
            break
        t = 1.0
        # Below the rounding error of Σ w ℓ the line search sees no decrease: trust the full
        # Newton step there (local quadratic convergence), else it stalls ~1e-10 from the minimiser.
        noise = 16 * torch.finfo(ref.dtype).eps * (weights * margin_loss.value(h).abs()).sum()
        if not -slope <= noise:
            while decrease(theta, theta + t * step) > 1e-4 * t * slope and t > 1e-10:
                t /= 2
        theta = theta + t * step
        if (t * step).abs().max() <= tolerance:
            break
    policy = torch.softmax(torch.where(support, theta, float("-inf")), dim=-1)
    return policy[0] if single else policy
