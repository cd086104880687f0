"""Gradient-based estimators: a tabular softmax policy fitted to preference pairs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from . import losses
from . import validation as v
from .validation import TensorLike

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
    chosen: TensorLike,
    rejected: TensorLike,
    ref: TensorLike,
    loss: str = "dpo",
    *,
    beta: float | None = None,
    tau: float | None = None,
    label_smoothing: float = 0.0,
    steps: int = 500,
    prompts: TensorLike | None = None,
    weights: TensorLike | None = None,
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
    inputs = _checked_inputs(
        chosen, rejected, ref, loss, beta, tau, label_smoothing, steps, prompts, weights, tolerance
    )
    support = inputs.ref > 0
    log_ref = torch.where(support, inputs.ref.log(), 0.0)
    graph = _comparison_graph(inputs, log_ref)
    theta = log_ref.clone()
    for _ in range(inputs.steps if graph.chosen.numel() else 0):
        move = _newton_step(graph, theta)
        if move is None:
            break
        theta = theta + move
        if move.abs().max() <= inputs.tolerance:
            break
    policy = torch.softmax(torch.where(support, theta, float("-inf")), dim=-1)
    return policy[0] if inputs.single else policy


class _Inputs(NamedTuple):
    """:func:`fit_policy`'s arguments once checked."""

    ref: Tensor  # π_ref [X, Y] (a [Y] ref gains a leading prompt dim)
    single: bool  # ref was [Y]: the result drops the prompt dim again
    chosen: Tensor  # int [n]
    rejected: Tensor  # int [n]
    prompts: Tensor  # int [n], all 0 for a single prompt
    weights: Tensor  # [n] in ref's dtype, as given (not normalised)
    margin_loss: _MarginLoss
    steps: int
    tolerance: float


def _checked_inputs(
    chosen, rejected, ref, loss, beta, tau, label_smoothing, steps, prompts, weights, tolerance
) -> _Inputs:
    """Every check of :func:`fit_policy`, in the order its errors are raised."""
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
    prompts = _checked_prompts(prompts, ref, n)
    weights = v.weights(weights, n, dtype=ref.dtype, device=ref.device)
    ref2 = ref.unsqueeze(0) if single else ref
    support = ref2 > 0
    if n and not (support[prompts, chosen].all() and support[prompts, rejected].all()):
        raise ValueError("a pair uses a response with ref = 0, whose log-ratio is undefined")
    return _Inputs(ref2, single, chosen, rejected, prompts, weights, margin_loss, steps, tolerance)


def _checked_prompts(prompts, ref: Tensor, n: int) -> Tensor:
    """The prompt index of each pair: none for a [Y] ref (all 0), required for [X, Y]."""
    if ref.dim() == 1:
        if prompts is not None:
            raise ValueError("prompts must be None when ref is [Y] (a single prompt)")
        return torch.zeros(n, dtype=torch.long, device=ref.device)
    if prompts is None:
        raise ValueError(
            f"prompts is required when ref is [X, Y], got ref of shape {tuple(ref.shape)}"
        )
    return _indices(prompts, "prompts", ref.shape[0], n)


class _Graph(NamedTuple):
    """The comparison graph of the pairs that are not ties, as index lists for scatter-adds, so
    that gradient and Laplacian take O(n) memory."""

    prompts: Tensor  # int [n]
    chosen: Tensor  # int [n]
    rejected: Tensor  # int [n]
    weights: Tensor  # w_k / Σ_k w_k (the sum over all pairs, ties included), [n]
    offset: Tensor  # log π_ref(y_w)/π_ref(y_l), [n]
    ends: tuple[Tensor, Tensor]  # (prompt, response) of y_w then y_l: where ±ℓ' lands
    sign: Tensor  # +1 for y_w, −1 for y_l, [2n]
    quad: tuple[Tensor, Tensor, Tensor]  # (prompt, row, col) of the 4 Laplacian entries per pair
    quad_sign: Tensor  # +(w,w) +(l,l) −(w,l) −(l,w), [4n]
    margin_loss: _MarginLoss


def _comparison_graph(inputs: _Inputs, log_ref: Tensor) -> _Graph:
    """The pairs of ``inputs`` as a :class:`_Graph`, with weights normalised and ties dropped."""
    # A tie (y_w = y_l) adds a constant to L and nothing to its derivatives; dropping it keeps the
    # exact ±ℓ'(0) pair from swamping gradients of size e^{−βh} in the scatter-add below.
    weights = inputs.weights / inputs.weights.sum()
    keep = inputs.chosen != inputs.rejected
    chosen, rejected = inputs.chosen[keep], inputs.rejected[keep]
    prompts, weights = inputs.prompts[keep], weights[keep]
    offset = log_ref[prompts, chosen] - log_ref[prompts, rejected]
    ones = torch.ones(chosen.shape[0], dtype=log_ref.dtype, device=log_ref.device)
    return _Graph(
        prompts,
        chosen,
        rejected,
        weights,
        offset,
        ends=(torch.cat([prompts, prompts]), torch.cat([chosen, rejected])),
        sign=torch.cat([ones, -ones]),
        quad=(
            torch.cat([prompts] * 4),
            torch.cat([chosen, rejected, chosen, rejected]),
            torch.cat([chosen, rejected, rejected, chosen]),
        ),
        quad_sign=torch.cat([ones, ones, -ones, -ones]),
        margin_loss=inputs.margin_loss,
    )


def _margins(graph: _Graph, theta: Tensor) -> Tensor:
    """h_k = θ_w − θ_l − log π_ref(y_w)/π_ref(y_l) for every pair."""
    return theta[graph.prompts, graph.chosen] - theta[graph.prompts, graph.rejected] - graph.offset


def _newton_step(graph: _Graph, theta: Tensor) -> Tensor | None:
    """One damped Newton iteration at θ: the move Δθ (the Newton direction shortened by the Armijo
    line search), or None where there is no descent direction (zero gradient, or curvature
    underflowed to 0)."""
    h = _margins(graph, theta)
    grad, step = _newton_direction(graph, theta, h)
    slope = (grad * step).sum()
    if not slope < 0:
        return None
    return _step_length(graph, theta, h, step, slope) * step


def _newton_direction(graph: _Graph, theta: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """The gradient of L at θ and the Newton direction −H⁺ ∇L, H the weighted Laplacian (one
    Y × Y system per prompt)."""
    d1 = graph.weights * graph.margin_loss.d1(h)
    d2 = graph.weights * graph.margin_loss.d2(h)
    grad = torch.zeros_like(theta).index_put_(
        graph.ends, graph.sign * d1.repeat(2), accumulate=True
    )
    hess = theta.new_zeros(*theta.shape, theta.shape[-1])
    hess.index_put_(graph.quad, graph.quad_sign * d2.repeat(4), accumulate=True)
    # Jacobi scaling keeps pairs whose curvatures differ by many orders of magnitude solvable.
    # A response in no pair has a zero row: scale 0 keeps pinv's rounding noise there from
    # being blown up into a step.
    diag = torch.diagonal(hess, dim1=-2, dim2=-1)
    scale = torch.where(diag > 0, diag.clamp_min(torch.finfo(theta.dtype).tiny).rsqrt(), 0.0)
    scaled = scale.unsqueeze(-1) * hess * scale.unsqueeze(-2)
    step = -scale * (
        torch.linalg.pinv(scaled, hermitian=True) @ (scale * grad).unsqueeze(-1)
    ).squeeze(-1)
    return grad, step


def _step_length(graph: _Graph, theta: Tensor, h: Tensor, step: Tensor, slope: Tensor) -> float:
    """Armijo backtracking from t = 1 along ``step`` (``slope`` = ∇L · step < 0)."""
    t = 1.0
    # Below the rounding error of Σ w ℓ the line search sees no decrease: trust the full
    # Newton step there (local quadratic convergence), else it stalls ~1e-10 from the minimiser.
    noise = (
        16 * torch.finfo(theta.dtype).eps * (graph.weights * graph.margin_loss.value(h).abs()).sum()
    )
    if -slope <= noise:
        return t
    while _decrease(graph, theta, theta + t * step) > 1e-4 * t * slope and t > 1e-10:
        t /= 2
    return t


def _decrease(graph: _Graph, theta: Tensor, new: Tensor) -> Tensor:
    """Σ w (ℓ(h_new) − ℓ(h_old)) pair by pair: near the infimum the change is far below the
    rounding error of L itself (DPO's loss tends to e^{−βh})."""
    value = graph.margin_loss.value
    return (graph.weights * (value(_margins(graph, new)) - value(_margins(graph, theta)))).sum()
