"""The exact minimiser of any per-pair preference loss over the policy simplex.

:func:`minimise_loss` takes a loss as a callable (any torch expression of the chosen and rejected
log-ratios, e.g. ``functools.partial(losses.hinge, beta=0.5)``), weighted pairs (the exact
population of :func:`toybandit.population_pairs`, or sampled pairs) and π_ref, and minimises

    L(θ) = Σ_k w_k ℓ(q_θ(x_k, y_w,k), q_θ(x_k, y_l,k)) / Σ_k w_k,  q_θ = log softmax(θ) − log π_ref,

over free logits θ[x, y] (π = softmax θ reaches every policy with the support of π_ref) by
Newton's method with an Armijo line search: autograd gradient and Hessian in float64, Jacobi
scaling, and the pseudo-inverse on the directions the loss sees (θ is defined only up to one
constant per prompt, the gauge). Negative curvature (non-convex losses such as ``apo_zero``) is
handled by inverting |λ| (a saddle-free Newton step). Where a minimiser exists and the loss is
smooth, the iteration converges quadratically, to ~1e-12 in π.

Losses convex in the margin h = q_w − q_l (sigmoid, ipo, hinge, robust with ε < ½, any convex
ℓ(h)) are convex in θ, since h is linear in θ: every local minimiser is global. Margin losses that
are not convex in h (exo_pair, discopop: bounded, non-constant) and losses of q_w and q_l
separately (nca_pair, bco_pair, sppo_hard, apo_zero, apo_down) or of log π need not be: the result
is the minimiser reached from π_ref by descent, as training from π_ref would. Non-smooth
losses (hinge) stall Newton at a kink; from there Kelley's cutting planes (scipy's HiGHS linear
programmes on autograd subgradients) close the gap between the best value and the planes' lower
bound, which bounds min L when L is convex (each new point is checked against every earlier cut,
a necessary condition). The verdict says which route certified the result.

Where none exists (the loss keeps falling as some logits run to −∞, e.g. DPO on deterministic
preferences, Azar et al. 2023, sec. 4.2), Newton's steps settle into one direction of constant
length; the function detects this, checks along the ray that the objective falls
monotonically, and returns the verdict with the escape: which responses go to 0, the rate
d log π(y)/ds of each (the fastest is −1), and the exponential rate κ at which L approaches its
infimum along the ray, L(s) − inf L ∝ e^{−κs} (κ = β for DPO on one deterministic pair,
measured to 4e-8 relative for β from 0.01 to 500). The signs and rates along the ray come from
forward-mode derivatives pair by pair, which keep a slope of e^{−100} that the rounding of L (or
of a summed gradient) would lose. No step moves a log-probability by more than 8 nats: an
unbounded saddle-free step of a bounded loss would land on a saturated plateau, not the infimum.
A loss whose tail is faster than exponential (f-DPO's forward KL: e^{−βe^{s}}) stalls Newton with
a gradient below the rounding of L; there every pair's gradient still points the same way (no
cancellation, unlike any stationary point), and if L keeps falling on, the verdict is "no finite
minimiser" as well (``loss_rate`` NaN). Before an escape is reported, the responses it names
must make L fall (forward-mode slopes, out to 1024 nats) when they go down together; a response
that rose from π_ref less than another and settled with it only looks as if it fell, and a
saturated loss (apo_zero at β ≥ 40) can stop on such a way: then nothing is certified.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, cast

import numpy as np
import torch

from . import validation as v
from .data import PreferencePairs
from .validation import TensorLike

Tensor = torch.Tensor

__all__ = ["LossMinimum", "minimise_loss"]

# |log π/π_ref| beyond which a policy counts as on the boundary: e^{−600} is 1e-261, the loss of
# any pair through it is flat to float64, and a finite minimiser there would need r/β > 600.
_SATURATED = 600.0
# The longest step, in nats of any log π: the saddle-free step of a bounded loss near an inflection
# (apo_zero at π_ref) is nearly unbounded and would land on a saturated plateau (a saddle at
# infinity, not the infimum); descent as training does moves step by step.
_MAX_STEP = 8.0
# A stall with some log π/π_ref below −30 (π/π_ref < 1e-13) is in a tail, not at a kink.
_DEEP = 30.0
# the far probes of an escape reach 2^(_FAR − 1) nats along a linear piece (1024 otherwise)
_FAR = 61
_EPS = torch.finfo(torch.float64).eps


class LossMinimum(NamedTuple):
    """The result of :func:`minimise_loss`.

    Attributes:
        policy: the minimiser π, shape of ``ref`` (float64); where ``finite`` is False, the last
            iterate on the escape path (not a minimiser: none exists).
        value: L at ``policy``.
        finite: a finite minimiser exists (to the detection described in the module doc).
        converged: ``finite`` and the Newton step fell below ``tolerance`` (a certified stationary
            point), or not ``finite`` and the escape was confirmed along its ray; False: nothing
            is certified (the verdict says why), and ``vanishing`` is all False.
        iterations: Newton iterations taken.
        vanishing: bool, shape of ``ref``: responses whose probability goes to 0 on the escape.
        rates: d log π(y)/ds along the escape ray, ≤ 0, the fastest −1 (zeros if ``finite``);
            the ray is Newton's last step, within ~1e-3 of the asymptotic direction when
            several margins grow at once (exact for one).
        loss_rate: κ with L(s) − inf L ∝ e^{−κ s} along the ray; 0 for a slower (polynomial)
            approach; NaN if ``finite`` or unmeasurable (the decrease underflowed).
        verdict: one line in words.
        unique: for a Newton minimiser, whether the Hessian is non-singular off the gauge (False:
            L is flat along some direction, e.g. hinge with every margin met, or a response in no
            pair); None where unknown (a kink found by cutting planes, no minimiser).
    """

    policy: Tensor
    value: float
    finite: bool
    converged: bool
    iterations: int
    vanishing: Tensor
    rates: Tensor
    loss_rate: float
    verdict: str
    unique: bool | None = None


def minimise_loss(
    loss: Callable[..., Tensor],
    pairs: PreferencePairs,
    ref: TensorLike,
    *,
    on: str = "logratios",
    lengths: TensorLike | None = None,
    pair_inputs: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None,
    steps: int = 500,
    tolerance: float = 1e-12,
) -> LossMinimum:
    """Minimise the weighted mean of a per-pair loss over tabular policies, exactly (float64).

    Args:
        loss: ``loss(chosen, rejected) -> Tensor [n]``, one value per pair, built from torch
            operations (autograd differentiates it twice). ``chosen``/``rejected`` are the q (or
            log π, see ``on``) of each pair's two responses, float64 [n]. With ``lengths`` it is
            called as ``loss(chosen, rejected, chosen_lengths, rejected_lengths)``.
        pairs: :class:`toybandit.PreferencePairs` (population or sampled); ``weights`` None
            counts every pair once.
        ref: π_ref, [Y] or [X, Y] (float64 recommended: it is the working precision).
        on: ``"logratios"`` (q = log π/π_ref, the DPO family) or ``"logps"`` (log π itself: CPO,
            SimPO, ORPO, SFT, which have no reference model).
        lengths: tokens per response, ≥ 1, [Y] or [X, Y], for length-normalised losses
            (``losses.sigmoid_norm``, TRL's ``ipo``).
        pair_inputs: for losses whose inputs are other functions of the policy (LD-DPO's
            partly down-weighted log-ratios on a tree): ``pair_inputs(log_pi) -> (chosen,
            rejected)``, per pair [n], from log π [X, Y] (−inf off the support); replaces the
            gathering of q (or log π) by ``on``. ``lengths`` are still appended if given.
        steps: maximum Newton iterations.
        tolerance: stop when no logit moves by more than this in one step.

    Returns:
        :class:`LossMinimum`.

    Raises:
        ValueError: a non-callable loss, one returning the wrong shape, NaN, or no gradient;
            invalid ``ref``, ``pairs``, ``on`` or ``lengths``.
    """
    p = _checked(loss, pairs, ref, on, lengths, pair_inputs, steps)
    f = _Objective(p)
    _check_loss(f.per_pair, p.log_ref, p.weights.numel())
    run = _newton(f, int(steps), tolerance)
    _tail_test(f, run, int(steps))
    result = _result(f, run)
    if p.single:
        return result._replace(
            policy=result.policy[0], vanishing=result.vanishing[0], rates=result.rates[0]
        )
    return result


# -- the checked problem and its objective ---------------------------------------------------------


class _Problem(NamedTuple):
    """The checked inputs of :func:`minimise_loss`, on [X, Y] logits."""

    loss: Callable[..., Tensor]
    pair_inputs: Callable[[Tensor], tuple[Tensor, Tensor]] | None
    on: str
    single: bool  # ref was [Y]
    support: Tensor  # π_ref > 0
    log_ref: Tensor  # 0 off the support
    prompts: Tensor
    chosen: Tensor
    rejected: Tensor
    weights: Tensor  # summing to 1
    extra: tuple[Tensor, ...]  # (chosen lengths, rejected lengths), or ()
    lengths: Tensor | None  # [X, Y] tokens per response, or None


def _checked(
    loss: Callable[..., Tensor],
    pairs: PreferencePairs,
    ref: TensorLike,
    on: str,
    lengths: TensorLike | None,
    pair_inputs: Callable[[Tensor], tuple[Tensor, Tensor]] | None,
    steps: int,
) -> _Problem:
    if not callable(loss):
        raise ValueError(
            f"loss must be callable (chosen, rejected) -> per-pair losses, got {type(loss)}"
        )
    if pair_inputs is not None and not callable(pair_inputs):
        raise ValueError(f"pair_inputs must be callable or None, got {type(pair_inputs)}")
    if on not in ("logratios", "logps"):
        raise ValueError(f'on must be "logratios" or "logps", got {on!r}')
    if not isinstance(pairs, PreferencePairs):
        raise ValueError(f"pairs must be a toybandit.PreferencePairs, got {type(pairs)}")
    ref = v.probabilities(ref, "ref").to(torch.float64)
    if ref.dim() not in (1, 2):
        raise ValueError(f"ref must be [Y] or [X, Y], got shape {tuple(ref.shape)}")
    if int(steps) < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    single = ref.dim() == 1
    ref2 = ref.unsqueeze(0) if single else ref
    prompts, chosen, rejected, weights = _checked_pairs(pairs, ref2.shape, single)
    support = ref2 > 0
    if not (support[prompts, chosen].all() and support[prompts, rejected].all()):
        raise ValueError("a pair uses a response with ref = 0, whose log-ratio is undefined")
    extra: tuple[Tensor, ...] = ()
    lens = None
    if lengths is not None:
        lens = _checked_lengths(lengths, ref2)
        extra = (lens[prompts, chosen], lens[prompts, rejected])
    log_ref = torch.where(support, ref2.log(), 0.0)
    return _Problem(
        loss,
        pair_inputs,
        on,
        single,
        support,
        log_ref,
        prompts,
        chosen,
        rejected,
        weights,
        extra,
        lens,
    )


def _checked_pairs(pairs: PreferencePairs, shape, single: bool) -> tuple[Tensor, ...]:
    """(prompts, chosen, rejected, weights summing to 1) on the device of ``ref``."""
    num_prompts, num_responses = shape
    chosen = v.indices(pairs.chosen, "pairs.chosen", num_responses)
    n = chosen.shape[0]
    if n == 0:
        raise ValueError("pairs must hold at least one pair")
    rejected = v.indices(pairs.rejected, "pairs.rejected", num_responses, n)
    if pairs.prompts is None:
        if not single:
            raise ValueError("pairs.prompts is required when ref is [X, Y]")
        prompts = torch.zeros(n, dtype=torch.long)
    else:
        prompts = v.indices(pairs.prompts, "pairs.prompts", num_prompts, n)
    weights = v.weights(pairs.weights, n)
    return prompts, chosen, rejected, weights / weights.sum()


def _checked_lengths(lengths, ref2: Tensor) -> Tensor:
    lens = v.as_tensor(lengths, "lengths").to(torch.float64).to(ref2.device)
    try:
        lens = lens.expand(*ref2.shape)
    except RuntimeError as err:
        raise ValueError(
            f"lengths must be [Y] or [X, Y] like ref, got {tuple(lens.shape)}"
        ) from err
    if not (torch.isfinite(lens).all() and (lens >= 1).all()):
        raise ValueError("lengths must be finite and ≥ 1")
    return lens


def _noise(terms: Tensor) -> float:
    """The rounding error of L = Σ_k terms_k."""
    return 16 * _EPS * terms.abs().sum().item()


class _Objective:
    """L(θ) = Σ_k w_k ℓ_k(θ) of one problem (called on flat θ), and what the minimiser reads
    off it: the pairs' losses, changes of L pair by pair, and forward-mode slopes."""

    def __init__(self, p: _Problem):
        self.p = p
        self.neg_inf = torch.tensor(-math.inf, dtype=torch.float64, device=p.support.device)

    def per_pair(self, theta: Tensor) -> Tensor:
        p = self.p
        log_pi = self.log_pi(theta)
        if p.pair_inputs is not None:
            return p.loss(*p.pair_inputs(log_pi), *p.extra)
        x = log_pi - p.log_ref if p.on == "logratios" else log_pi
        x = torch.where(p.support, x, 0.0)
        return p.loss(x[p.prompts, p.chosen], x[p.prompts, p.rejected], *p.extra)

    def __call__(self, flat: Tensor) -> Tensor:
        return (self.p.weights * self.per_pair(flat.reshape(self.p.support.shape))).sum()

    def log_pi(self, theta: Tensor) -> Tensor:
        return torch.log_softmax(torch.where(self.p.support, theta, self.neg_inf), dim=-1)

    def decrease(self, old: Tensor, new: Tensor) -> float:
        """Σ w (ℓ(new) − ℓ(old)) pair by pair: near an infimum the change is far below the
        rounding error of L itself."""
        with torch.no_grad():
            d = self.p.weights * (self.per_pair(new) - self.per_pair(old))
        if torch.isnan(d).any():
            raise ValueError("loss returned NaN during the minimisation (at finite log-ratios)")
        return d.sum().item()

    def noise(self, theta: Tensor) -> float:
        """The rounding error of L at θ."""
        with torch.no_grad():
            return _noise(self.p.weights * self.per_pair(theta))

    def invisible(self, old: Tensor, new: Tensor) -> bool:
        """The change of L is below its rounding error: what an underflow leaves to slopes."""
        try:
            return abs(self.decrease(old, new)) <= self.noise(old)
        except ValueError:
            return False

    def slope_along(self, at: Tensor, direction: Tensor) -> float:
        """dL/ds = Σ_k w_k dℓ_k/ds by forward-mode AD, pair by pair: a change of 1e-22 in a loss
        of size 1 is lost to rounding in L(new) − L(old), and in a reverse-mode gradient it is
        lost when O(1) terms of other pairs (which cancel exactly) are accumulated first."""
        d = torch.where(self.p.support, direction, 0.0).detach()
        try:
            tangent = torch.func.jvp(self.per_pair, (at.detach(),), (d,))[1]
        except Exception:  # an op without a forward-mode rule: the double-backward JVP
            jvp = torch.autograd.functional.jvp(self.per_pair, at.detach(), d)[1]
            tangent = cast(Tensor, jvp)  # a tensor input: a tensor JVP
        value = (self.p.weights * tangent).sum().item()
        if math.isnan(value):
            raise ValueError("loss has a NaN derivative during the minimisation")
        return value


# -- Newton's iteration, the tail test and the verdict ---------------------------------------------


@dataclass
class _Run:
    """Where Newton's iteration ended and how."""

    theta: Tensor
    it: int = 0
    converged: bool = False
    escaped: bool = False
    stalled: bool = False
    saturated: bool = False  # stopped at the boundary (see _SATURATED)
    underflow: bool = False  # an escape seen by the tail test, below L's rounding
    history: list[Tensor] = field(default_factory=list)  # the moves, then the escape


def _newton(f: _Objective, steps: int, tolerance: float) -> _Run:
    """Newton's method from π_ref until it converges, stalls, or an escape is confirmed."""
    run = _Run(f.p.log_ref.clone())
    for it in range(1, steps + 1):
        run.it = it
        if _newton_iteration(f, run, tolerance):
            break
    return run


def _newton_iteration(f: _Objective, run: _Run, tolerance: float) -> bool:
    """One Newton step on ``run`` (in place); True when the iteration is over."""
    support, theta = f.p.support, run.theta
    grad, hess = _derivatives(f, theta)
    with torch.no_grad():
        terms = f.p.weights * f.per_pair(theta)
    scale = max(1.0, terms.sum().abs().item())
    # off the gauge: a constant per prompt moves nothing, but would count against the cap
    step = _off_gauge(_newton_step(grad, hess, support), support)
    newton = (grad * step).sum().item() < 0
    flat = bool(grad.abs().max() <= 1e-13 * scale)
    # stationary to rounding, unless Newton still sees a step: deep in a tail the gradient is
    # below the scale of L while the step is not small (checked after the loop)
    if flat and not (newton and step.abs().max() > tolerance):
        run.converged = True
        return True
    if flat and step.abs().max() > 1e-3 and _settled(step, support):
        # a tail: Newton still takes long steps towards the boundary (apo_zero once the
        # responses that stay have settled, before six equal steps were seen); confirm it as an
        # escape. (A smaller step with a tiny gradient is a flat minimiser: take it.)
        clean = _escape_direction(step, support)
        run.escaped = _confirm_escape(f.slope_along, theta, clean, support)
        run.stalled = not run.escaped
        if run.escaped:
            run.history.append(clean)
        return True
    if not newton:
        step = _off_gauge(-grad, support)
    t = _step_length(f, theta, step, grad, newton, _noise(terms))
    if t is None:  # no descent along the step: a kink, or rounding
        run.stalled = True
        return True
    run.theta = _gauge(theta + t * step, support)
    run.history.append(t * step)
    if (t * step).abs().max() <= tolerance:
        # a vanishing step certifies a minimiser only where the gradient vanishes too (at a
        # kink of a non-smooth loss the line search shrinks the step, not the gradient)
        run.converged = bool(grad.abs().max() <= 1e-8 * scale)
        run.stalled = not run.converged
        return True
    return _escape_seen(f, run)


def _step_length(
    f: _Objective, theta: Tensor, step: Tensor, grad: Tensor, newton: bool, noise: float
) -> float | None:
    """Armijo's backtracking from the longest step the cap allows; None if none descends.

    Below the rounding error of Σ w ℓ no line search can see a decrease; there the full Newton
    step is trusted (local quadratic convergence), as it must be to reach 1e-12 in π."""
    slope = (grad * step).sum().item()
    t = min(1.0, _MAX_STEP / step.abs().max().clamp_min(1e-300).item())
    if newton and -slope <= noise:
        return t
    while f.decrease(theta, theta + t * step) > 1e-4 * t * slope and t > 1e-12:
        t /= 2
    return None if t <= 1e-12 else t


def _escape_seen(f: _Objective, run: _Run) -> bool:
    """After a step: has the iterate reached the boundary, or do the steps escape?"""
    support, theta = f.p.support, run.theta
    if (theta - f.p.log_ref)[support].min() < -_SATURATED:
        # e^q underflows next: the loss went flat at the boundary (bounded losses such as
        # apo_zero saturate in one long step); the escape is the whole way travelled
        run.history.append(theta - f.p.log_ref)
        run.escaped = _confirm_escape(f.slope_along, theta, run.history[-1], support, strict=0)
        run.saturated = True
        return True
    if _escaping(run.history, support):
        # the escaping coordinates only: Newton's rounding-level moves on the face (the
        # responses that stay) would swamp a slope of e^{−100}
        run.history[-1] = _escape_direction(run.history[-1], support)
        run.escaped = _confirm_escape(f.slope_along, theta, run.history[-1], support)
        return run.escaped
    return False


def _tail_test(f: _Objective, run: _Run, steps: int) -> None:
    """A stop that is not a confirmed escape may still be one below the rounding of L (in place).

    Out of steps: steepest descent along a linear piece (hinge), or Newton crawling down a
    super-exponential tail (f-DPO's α-divergence on a total order) whose gradient is ~1e-12 when
    the steps run out; a saturated escape that was not confirmed is left unconfirmed."""
    exhausted = run.it == steps and not (
        run.converged or run.escaped or run.stalled or run.saturated
    )
    if run.escaped or not (run.converged or run.stalled or exhausted):
        return
    theta, travelled = run.theta, run.theta - f.p.log_ref
    cancels = _cancels(f.per_pair, f.p.weights, theta)
    if cancels is False:
        # "stationary" (or stalled) only because the gradient and the changes of L are below
        # their rounding: the pairs' gradients do not cancel (a tail such as e^{−e^x}, on which
        # Newton's steps shrink); no minimum if L falls on
        falls = _confirm_falling(f.slope_along, f.invisible, theta, travelled, f.p.support)
    elif cancels is None:
        # every pair's gradient exactly 0 (reverse mode): a genuine flat minimum, or every loss
        # underflowed; forward-mode slopes still see a fall of 1e-209, else bisect
        falls = _confirm_falling(
            f.slope_along, f.invisible, theta, travelled, f.p.support
        ) or _underflowed(f.per_pair, f.p.log_ref, theta)
    else:
        falls = False
    if falls:
        run.underflow = run.escaped = run.converged = True
        run.stalled = False
        run.history.append(travelled)


def _result(f: _Objective, run: _Run) -> LossMinimum:
    """Certify a kink by cutting planes or a Newton minimiser's uniqueness, and say which."""
    support = f.p.support
    planes, unique = None, None
    deep = bool((run.theta - f.p.log_ref)[support].min() < -_DEEP)
    if not (run.converged or run.escaped):
        run.stalled = True
    if run.stalled and not deep:
        # a kink of a non-smooth loss (hinge): Newton's model is useless there; for a convex
        # piecewise-smooth loss Kelley's cutting planes reach the minimum with a certified gap.
        # Not deep in a tail: there a bounded loss is flat to rounding (apo_down near a vertex)
        # and "gap 0" would certify a plateau
        planes = _cutting_planes(f, run.theta, support)
        if planes is not None:
            run.theta = _gauge(planes[0], support)
            run.converged = True
    elif run.converged and not run.escaped:
        unique = _nonsingular(_derivatives(f, run.theta)[1], support)
    with torch.no_grad():
        policy = f.log_pi(run.theta).exp()
        value = f(run.theta.reshape(-1)).item()
    if run.underflow:
        return _underflow_result(f, run, policy, value)
    if run.escaped:
        return _escape_result(f, run, policy, value)
    zeros = torch.zeros_like(policy)
    if run.converged and planes is not None:
        verdict = (
            f"finite minimiser at a kink (cutting planes: gap {planes[1]:.1e} in L, a "
            "certificate if L is convex; the cuts found no violation)"
        )
    elif run.converged:
        verdict = "finite minimiser (Newton converged" + (
            ")" if unique else "; not unique: L is flat along some direction)"
        )
    elif deep:
        verdict = (
            f"not certified: stalled after {run.it} steps deep in a tail (some π/π_ref < e^-30), "
            "where the loss is flat to rounding: an escape that could not be confirmed"
        )
    else:
        verdict = (
            f"not certified: stalled after {run.it} steps with a non-zero gradient (a kink where "
            "cutting planes found the loss not convex, or a minimiser beyond their box)"
        )
    return LossMinimum(
        policy, value, True, run.converged, run.it, zeros.bool(), zeros, math.nan, verdict, unique
    )


def _underflow_result(f: _Objective, run: _Run, policy: Tensor, value: float) -> LossMinimum:
    support, theta = f.p.support, run.theta
    rates = _unit_ray(run.history[-1], support)[1]
    # of the responses that went down: those that went at least a tenth as fast as the fastest,
    # and slower ones whose own slope (moving them alone further down) is not positive; one that
    # settled on the remaining face (a few nats against the tens the escaping ones travelled)
    # wants to go back up, and one balanced by its pairs to rounding only looks as if it fell
    balanced, felt = _balance(f.per_pair, f.p.weights, theta)
    balanced = balanced & felt
    slow = (rates < -1e-6) & _falls_alone(f.slope_along, theta, support) & ~balanced
    vanishing = (rates <= -0.1) | slow
    if not _block_falls(f, theta, vanishing):
        return _not_an_escape(f, run, policy, value, vanishing)
    verdict = (
        f"no finite minimiser: L keeps falling as log π → −∞ for {_names(vanishing, f.p.single)}, "
        "by amounts below float64's resolution of L (the pairs' gradients do not cancel; the "
        "slope along the way travelled stays negative)"
    )
    return LossMinimum(policy, value, False, True, run.it, vanishing, rates, math.nan, verdict)


def _escape_result(f: _Objective, run: _Run, policy: Tensor, value: float) -> LossMinimum:
    support, theta = f.p.support, run.theta
    rates, loss_rate = _escape_rates(f.slope_along, theta, run.history[-1], support)
    vanishing = rates < -1e-6
    # A response whose every pair has underflowed (its gradient is exactly 0) is left where it
    # is by Newton's step, though it is on its way out: it vanishes if the way travelled took it
    # below a response that stays.
    stuck = support & (_derivatives(f, theta)[0] == 0)
    if stuck.any() and (~stuck & support & ~vanishing).any():
        travelled = torch.where(support, theta - f.p.log_ref, math.inf)
        stays = torch.where(~stuck & support & ~vanishing, travelled, -math.inf)
        below = travelled < stays.max(dim=-1, keepdim=True).values
        vanishing = torch.where(stuck, below, vanishing)
        rates = torch.where(stuck & below & ~(rates < -1e-6), -1.0, rates)
    if not _block_falls(f, theta, vanishing):
        return _not_an_escape(f, run, policy, value, vanishing)
    tail = (
        f"L − inf L ∝ e^(−{loss_rate:.4g} s)"
        if loss_rate > 0
        else "L falls without bound or more slowly than any e^(−κs)"
        if loss_rate == 0
        else "the rate of L's approach is not measurable"
    )
    verdict = (
        f"no finite minimiser: L keeps falling as log π → −∞ for "
        f"{_names(vanishing, f.p.single)}; {tail} while the fastest log π falls like −s"
    )
    return LossMinimum(policy, value, False, True, run.it, vanishing, rates, loss_rate, verdict)


def _block_falls(f: _Objective, theta: Tensor, vanishing: Tensor) -> bool:
    """dL/ds ≤ 0 (forward mode) at θ and 2^k nats on (k ≤ 10) when the logits of the
    vanishing responses all move down together, each by its length |y| where the loss reads
    log π/|y| (``lengths``): what their going to 0 needs, whatever the rates inside the set
    (the margins the loss reads inside it stay as they are). A response that settled on the
    face with the stayers fails it: apo_zero at β = 40 ends saturated, and the way travelled
    from π_ref takes a net-chosen response that rose less than another for one going down,
    though moving it down costs its weight. (Slopes, not changes of L: 2^k nats on, rounding
    moves the margins inside the set by ~2^k·1e-16.) Losses of other functions of log π
    (``pair_inputs``) have no such direction: the test passes them."""
    if f.p.pair_inputs is not None:
        return True
    down = -vanishing.to(theta.dtype)
    if f.p.lengths is not None:
        down = down * f.p.lengths
    for k, t in enumerate((0.0, *(2.0**j for j in range(11)))):
        try:
            if f.slope_along(theta + t * down, down) > 0:
                return False
        except ValueError:  # NaN far out: a loss undefined there ends the probes
            return k > 2
    return True


def _not_an_escape(
    f: _Objective, run: _Run, policy: Tensor, value: float, vanishing: Tensor
) -> LossMinimum:
    zeros = torch.zeros_like(policy)
    verdict = (
        f"not certified: stopped after {run.it} steps on a way that would send "
        f"{_names(vanishing, f.p.single)} to 0, but L rises when they go down together: neither a "
        "minimiser nor an escape was found"
    )
    return LossMinimum(policy, value, False, False, run.it, zeros.bool(), zeros, math.nan, verdict)


def _names(vanishing: Tensor, single: bool) -> list:
    """The vanishing responses: y for one prompt, (x, y) for several."""
    return [int(i[1]) if single else tuple(i.tolist()) for i in vanishing.nonzero()]


def _cutting_planes(
    objective: Callable[[Tensor], Tensor],
    theta: Tensor,
    support: Tensor,
    *,
    box: float = 30.0,
    max_cuts: int = 400,
    gap_tol: float = 1e-9,
) -> tuple[Tensor, float] | None:
    """Kelley's cutting-plane method from ``theta``: min t s.t. L(θ_j) + g_jᵀ(θ − θ_j) ≤ t.

    Each LP value is a lower bound on min L when L is convex (g_j a subgradient); the best L(θ_j)
    an upper bound; a piecewise-linear L is solved in finitely many cuts. Every new point is
    checked against every earlier cut, a necessary condition for convexity: a violation returns
    None. The logits stay within ``box`` nats of the start and sum to their start per prompt
    (the gauge); a bound reached at the box, or a gap above ``gap_tol`` (relative to max(1, L))
    after ``max_cuts`` cuts, returns None as well. So does a gap closed only because every cut is
    flat to within ``gap_tol`` but not exactly flat: that certifies an ε-minimum, which a smooth
    loss's tail has everywhere far enough out, not a minimiser.

    Returns:
        (θ of the best point, certified gap), or None.
    """
    flat0 = theta.reshape(-1).detach()
    idx = support.reshape(-1).nonzero().squeeze(-1)
    spread = (flat0[idx].max() - flat0[idx].min()).item() if idx.numel() else 0.0
    box = max(box, 3 * spread)  # room for a minimiser as spread out again as the start
    x0 = flat0[idx].cpu().numpy()
    prompt = torch.arange(theta.shape[0]).repeat_interleave(theta.shape[1])[idx.cpu()].numpy()
    a_eq = (prompt[None, :] == np.unique(prompt)[:, None]).astype(float)  # the gauge

    def evaluate(x: np.ndarray) -> tuple[float, np.ndarray, Tensor]:
        full = flat0.clone()
        full[idx] = torch.as_tensor(x, dtype=flat0.dtype, device=flat0.device)
        full.requires_grad_(True)
        value = objective(full)
        (grad,) = torch.autograd.grad(value, full)
        return value.item(), grad[idx].cpu().numpy(), full.detach()

    points, values, grads, rows, rhs = [], [], [], [], []
    x, best, flat = x0, None, None
    for _ in range(max_cuts):
        value, grad, full = evaluate(x)
        if not (math.isfinite(value) and np.isfinite(grad).all()) or _below_a_cut(
            x, value, points, values, grads
        ):
            return None  # non-finite, or not convex: the LP bounds mean nothing
        points.append(x)
        values.append(value)
        grads.append(grad)
        if best is None or value < best[0]:
            best = (value, full, x)
        rows.append(np.append(grad, -1.0))
        rhs.append(grad @ x - value)
        flat = flat or ((x, value, full) if _flat(grad) else None)  # see the end
        lp = _lowest_plane(np.array(rows), np.array(rhs), a_eq, x0, box)
        if lp is None:
            return None
        tol = gap_tol * max(1.0, abs(best[0]))
        if best[0] - lp.fun > tol:
            x = lp.x[:-1]
            continue
        if box * max(np.abs(g).sum() for g in grads) <= tol and any(np.any(g) for g in grads):
            # every cut flat to within the tolerance: L is smooth with a tiny slope here (a
            # tail Newton left, L − inf L ~ 1e-13), where any point passes; a kink has a real
            # subgradient. Only exactly flat cuts (zero subgradients) certify a minimum
            return None
        if np.abs(best[2] - x0).max() <= box - 1e-6:
            return best[1].reshape(theta.shape), max(best[0] - lp.fun, 0.0)
        # at the box: a flat set of minimisers (hinge with every margin met) reaches it, or the
        # minimiser lies beyond. A point of the model's optimal set strictly inside the box
        # where L attains the bound is a global minimiser (L convex); find the closest
        level = lp.fun + 1e-12 * max(1.0, abs(best[0]))  # the bound, up to the LP's rounding
        inner = _inner_point(np.array(rows), np.array(rhs), a_eq, x0, level, box)
        if inner is None or np.abs(inner - x0).max() > box - 1e-6:
            return None
        value, _, full = evaluate(inner)
        if value - lp.fun <= tol:
            return full.reshape(theta.shape), max(value - lp.fun, 0.0)
        x = inner  # the model is loose there: cut at that point too and go on
    # out of cuts: Kelley's lower bound can lag for hundreds of cuts in a box of 30 nats
    # (zhao2023.hinge.deterministic, seed 0, instance 497)
    if flat is None or not _flat_is_lowest(evaluate, *flat[:2], x0, min(values), tol):
        return None
    return flat[2].reshape(theta.shape), 0.0


def _flat(grad: np.ndarray) -> bool:
    """An exactly flat cut: 0 is a subgradient there, so the point minimises a convex L."""
    return not np.any(grad)


def _flat_is_lowest(evaluate, x: np.ndarray, value: float, x0, lowest: float, tol: float) -> bool:
    """A point with a flat cut minimises a convex L (hinge with every margin met) if autograd's
    0 is a subgradient there, which a loss written as relu(z) − relu(−z) = z breaks at z = 0: so
    L there is the lowest seen, and no lower further out from the start (the point may lie on
    the box, with a minimiser beyond it)."""
    if value > lowest + tol:
        return False
    out = (x - x0) / max(np.abs(x - x0).max(), 1e-300)
    return all(evaluate(x + s * out)[0] >= value - tol for s in (1e-6, 1e-3, 0.1, 1.0, 10.0))


def _below_a_cut(x: np.ndarray, value: float, points, values, grads) -> bool:
    """L(x) below an earlier cut L(x_j) + g_jᵀ(x − x_j): L is not convex (a necessary check)."""
    scale = max(1.0, abs(value))
    return any(
        value < vj + gj @ (x - xj) - 1e-9 * scale
        for xj, vj, gj in zip(points, values, grads, strict=True)
    )


def _lowest_plane(rows, rhs, a_eq, x0, box: float):
    """Kelley's LP: min t over (x, t) with every cut ≤ t, the gauge kept and x within ``box``
    of x₀ (scipy's HiGHS); None if it fails."""
    from scipy.optimize import linprog

    cost = np.zeros(x0.size + 1)
    cost[-1] = 1.0
    lp = linprog(
        cost,
        A_ub=rows,
        b_ub=rhs,
        A_eq=np.hstack([a_eq, np.zeros((a_eq.shape[0], 1))]),
        b_eq=a_eq @ x0,
        bounds=[(x - box, x + box) for x in x0] + [(None, None)],
        method="highs",
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )
    return lp if lp.status == 0 else None


def _inner_point(rows, rhs, a_eq, x0, level: float, box: float):
    """argmin ‖x − x₀‖_∞ over the cutting-plane model's level set {max_j cut_j(x) ≤ level} (the
    gauge kept), by one more linear programme; None if infeasible."""
    from scipy.optimize import linprog

    m = x0.size
    # variables (x, r): every cut g_j·x − (g_j·x_j − v_j) ≤ level; |x − x₀| ≤ r
    cuts = np.hstack([rows[:, :m], np.zeros((len(rows), 1))])
    eye = np.eye(m)
    ones = np.ones((m, 1))
    a_ub = np.vstack([cuts, np.hstack([eye, -ones]), np.hstack([-eye, -ones])])
    b_ub = np.concatenate([rhs + level, x0, -x0])
    res = linprog(
        np.append(np.zeros(m), 1.0),
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=np.hstack([a_eq, np.zeros((a_eq.shape[0], 1))]),
        b_eq=a_eq @ x0,
        bounds=[(x - box, x + box) for x in x0] + [(0, None)],
        method="highs",
    )
    return res.x[:m] if res.status == 0 else None


def _check_loss(per_pair: Callable[[Tensor], Tensor], theta: Tensor, n: int) -> None:
    """Call the loss once at π_ref and name what is wrong with its output."""
    probe = theta.clone().requires_grad_(True)
    try:
        out = per_pair(probe)
    except ValueError:
        raise
    except Exception as err:  # a user's callable may raise anything
        raise ValueError(f"loss raised {type(err).__name__} on {n} pairs: {err}") from err
    if not isinstance(out, Tensor):
        raise ValueError(f"loss must return a torch.Tensor of per-pair losses, got {type(out)}")
    if out.shape != (n,):
        raise ValueError(
            f"loss must return one value per pair, shape ({n},), got shape {tuple(out.shape)}"
        )
    if out.dtype != torch.float64:
        raise ValueError(
            f"loss must compute in float64 (its inputs are float64), got {out.dtype}: "
            "an exact minimiser needs float64 throughout"
        )
    if torch.isnan(out).any():
        raise ValueError(
            f"loss returned NaN at π = π_ref (pairs {out.isnan().nonzero().flatten()[:5].tolist()})"
        )
    if not torch.isfinite(out).all():
        raise ValueError("loss returned ±inf at π = π_ref, where every log-ratio is 0")
    if not out.requires_grad:
        raise ValueError(
            "loss must be built from torch operations on its inputs (its output has no gradient)"
        )


def _cancels(
    per_pair: Callable[[Tensor], Tensor], weights: Tensor, theta: Tensor, ratio: float = 1e-6
) -> bool | None:
    """At a stationary point the pairs' gradients cancel in every logit (:func:`_balance`). None
    when every pair is exactly flat (a piecewise-linear loss past every kink, or a loss
    underflowed to its asymptote: :func:`_underflowed` tells them apart)."""
    balanced, felt = _balance(per_pair, weights, theta, ratio)
    if not felt.any():
        return None
    return bool(balanced.all())


def _balance(
    per_pair: Callable[[Tensor], Tensor], weights: Tensor, theta: Tensor, ratio: float = 1e-6
) -> tuple[Tensor, Tensor]:
    """Per logit, shaped like θ: whether |Σ_k w_k ∂ℓ_k/∂θ_y| ≤ ratio · Σ_k w_k |∂ℓ_k/∂θ_y| (at a
    minimiser reached to 1e-12 in π the left side is ~1e-12 of the right in every logit), and
    whether any pair has a slope there at all. Per logit, not in
    norm: a response deep in a tail whose own pairs have underflowed still feels the others
    through the normalisation, a slope of π_y·O(1) ≈ 1e-38 that no norm over all logits can
    see (apo_zero at β = 20, βq ≈ −1000)."""
    jac = torch.autograd.functional.jacobian(per_pair, theta.detach()).reshape(weights.numel(), -1)
    total = (weights @ jac).abs().reshape(theta.shape)
    terms = (weights.unsqueeze(-1) * jac.abs()).sum(0).reshape(theta.shape)
    return total <= ratio * terms, terms > 0


def _underflowed(per_pair: Callable[[Tensor], Tensor], start: Tensor, end: Tensor) -> bool:
    """Every pair is exactly flat at ``end``: was that reached by a kink (hinge: the slopes
    jump from ~βw to 0) or by a smooth tail running below float64 (e^{−e^x}: the slopes pass
    through the subnormals)? Bisect the way travelled for the last point where some pair's slope
    (forward mode, along the way) is non-zero; an underflow leaves it below 1e-250 there."""
    d = (end - start).detach()

    def slope(s: float) -> float:
        tangent = torch.func.jvp(per_pair, ((start + s * d).detach(),), (d,))[1]
        return tangent.abs().max().item()

    if not slope(0.0) > 0:
        return False
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if slope(mid) > 0 else (lo, mid)
    return slope(lo) < 1e-250


def _derivatives(objective: Callable[[Tensor], Tensor], theta: Tensor) -> tuple[Tensor, Tensor]:
    flat = theta.reshape(-1).detach()
    x = flat.clone().requires_grad_(True)
    grad = torch.autograd.grad(objective(x), x)[0]
    # one backward pass per coordinate: for the few logits of an exact world this beats vmap, and
    # it differentiates any torch code a user writes
    hess = cast(Tensor, torch.autograd.functional.hessian(objective, flat))  # one input: a tensor
    if not (torch.isfinite(grad).all() and torch.isfinite(hess).all()):
        raise ValueError("loss has a NaN or infinite derivative at a finite policy")
    return grad.reshape(theta.shape), hess


def _newton_step(grad: Tensor, hess: Tensor, support: Tensor) -> Tensor:
    """−|H|⁺ g with Jacobi scaling; |H| inverts the absolute eigenvalues (saddle-free Newton)."""
    g = torch.where(support, grad, 0.0).reshape(-1)
    mask = support.reshape(-1)
    h = hess * (mask.unsqueeze(0) & mask.unsqueeze(1))
    if h.abs().max() <= 1e-10 * g.abs().max():
        # rounding noise of a loss linear in the logits here (hinge below its kink): no curvature
        # to use, steepest descent (a real tail keeps |H| ≈ β|g|, far above this floor)
        return -torch.where(support, grad, 0.0)
    diag = h.diagonal().abs()
    scale = torch.where(diag > 0, diag.clamp_min(torch.finfo(h.dtype).tiny).rsqrt(), 0.0)
    scaled = scale.unsqueeze(-1) * h * scale.unsqueeze(-2)
    lam, vec = torch.linalg.eigh((scaled + scaled.T) / 2)
    keep = lam.abs() > 1e-12 * lam.abs().max().clamp_min(torch.finfo(h.dtype).tiny)
    inv = torch.where(keep, 1.0 / lam.abs().clamp_min(torch.finfo(h.dtype).tiny), 0.0)
    step = -scale * (vec @ (inv * (vec.T @ (scale * g))))
    return step.reshape(grad.shape)


def _nonsingular(hess: Tensor, support: Tensor) -> bool:
    """More than one zero eigenvalue per prompt (the gauge) of the Jacobi-scaled Hessian means
    a flat direction: the minimiser is not unique."""
    mask = support.reshape(-1)
    h = hess[mask][:, mask]
    diag = h.diagonal().abs()
    if (diag == 0).any():
        return False
    scale = diag.rsqrt()
    lam = torch.linalg.eigvalsh(scale.unsqueeze(-1) * h * scale.unsqueeze(-2))
    zero = (lam.abs() <= 1e-10 * lam.abs().max()).sum().item()
    return zero <= int((support.sum(-1) > 0).sum())


def _shifted(step: Tensor, support: Tensor) -> Tensor:
    """The step minus its largest component over the support, per prompt: the same move modulo
    the gauge, ≤ 0, with the response that falls least at exactly 0 (0 off the support)."""
    top = torch.where(support, step, -math.inf).max(dim=-1, keepdim=True).values
    return torch.where(support, step - top, 0.0)


def _escape_direction(step: Tensor, support: Tensor) -> Tensor:
    """:func:`_shifted`, with the components within 1e-6 of the largest set to exactly 0: the
    responses that stay do not move at all, so their rounding-level slopes cannot drown the
    escaping ones'."""
    shifted = _shifted(step, support)
    fastest = (-shifted.min()).clamp_min(1e-300)
    return torch.where(shifted < -1e-6 * fastest, shifted, 0.0)


def _off_gauge(step: Tensor, support: Tensor) -> Tensor:
    """The step minus its mean over the support, per prompt (the loss cannot see that part)."""
    count = support.sum(-1, keepdim=True).clamp_min(1)
    mean = torch.where(support, step, 0.0).sum(-1, keepdim=True) / count
    return torch.where(support, step - mean, 0.0)


def _gauge(theta: Tensor, support: Tensor) -> Tensor:
    """θ − logsumexp θ per prompt: log π itself, so that iterates are comparable."""
    lse = torch.logsumexp(torch.where(support, theta, -math.inf), dim=-1, keepdim=True)
    return torch.where(support, theta - lse, theta)


def _escaping(history: list[Tensor], support: Tensor, window: int = 6) -> bool:
    """Newton on a loss with no minimiser takes steps of constant length in one direction, once
    the responses that stay have settled (their part of the step, below 1e-3 of its largest
    component, is at rounding: the iterate then lies on the infimum's face)."""
    if len(history) < window:
        return False
    steps = history[-window:]
    for a, b in itertools.pairwise(steps):
        na, nb = a.norm(), b.norm()
        if nb < 0.5 * na or (a * b).sum() < 0.99 * na * nb:
            return False
    return bool(steps[-1].abs().max() > 1e-3) and _settled(steps[-1], support)


def _settled(step: Tensor, support: Tensor) -> bool:
    """The responses that stay have settled: relative to the largest component of the step (the
    gauge removed), those within 1e-3 of it are within 1e-12."""
    shifted = _shifted(step, support)
    near = support & (shifted.abs() <= 1e-3 * shifted.abs().max())
    return bool(shifted[near].abs().max() <= 1e-12) if near.any() else True


def _unit_ray(direction: Tensor, support: Tensor) -> tuple[Tensor, Tensor]:
    """The direction in log π, scaled so that the fastest-falling response has slope −1."""
    slope = _shifted(direction, support)
    fastest = -slope.min()
    return torch.where(support, direction, 0.0) / fastest.clamp_min(1e-300), slope / fastest


def _confirm_escape(
    slope_along, theta: Tensor, step: Tensor, support: Tensor, *, strict: int = 6
) -> bool:
    """L falls strictly at θ + 2^k·step for k < ``strict`` and never rises up to k = 9, nor at
    2^k nats (k ≤ 10, and on to k = 60 while the slope stays that of a linear piece, see
    :func:`_linear`) along the unit ray of the step (the sign of dL/ds along it).

    Strictly: a loss that reaches its infimum at a finite point (hinge once every βh ≥ 1) goes
    flat there, and then a finite minimiser exists; the far probes reach such a point even when
    the steps are short (steepest descent on a linear piece). A slope may be exactly 0 only as
    the end of a tail: the last non-zero one before it below 1e-30 of the first, or below 1e-250
    (a hinge's slopes drop from ~βw to 0 at its kink). Newton's step on an exponential tail
    moves the exponent by ~1 whatever β, so the 2^5 near probes stay above the float64
    underflow; a saturated escape (see ``_SATURATED``) passes ``strict=0``.
    """
    unit = _unit_ray(step, support)[0]
    probes = [(2.0**k) * step for k in range(10)] + [(2.0**k) * unit for k in range(_FAR)]
    first = last = 0.0
    slopes: list[float] = []
    for k, move in enumerate(probes):
        if k == 10 + 11 and not _linear(slopes[-2:]):
            break  # a curved tail out to 1024 nats; only a linear piece is followed further
        direction = step if k < 10 else unit
        try:
            d = slope_along(theta + move, direction)
        except ValueError:  # NaN far out: a loss undefined there confirms nothing
            return False
        slopes.append(d)
        if d > 0 or (k < strict and not d < 0):
            return False
        if d < 0:
            first, last = first or -d, -d
        elif _stops_dead(first, last):
            return False
        if k == 9:
            first = last = 0.0  # the far probes start over
    return True


def _linear(slopes: list[float]) -> bool:
    """Two slopes equal to 1e-9 and non-zero: L falls along a linear piece, which may end in a
    kink far out (a hinge whose last margin grows by 2e-3 nats per nat of the ray meets it
    2700 nats on), so the far probes follow it out to 2^60 nats."""
    a, b = slopes
    return a != 0 and abs(a - b) <= 1e-9 * abs(a)


def _stops_dead(first: float, last: float) -> bool:
    """A slope exactly 0 right after a visible fall (the last non-zero slope above 1e-30 of the
    first and above 1e-250): a kink at a finite point, not the end of a tail, whose slopes pass
    through the subnormals (a hinge's drop from ~βw to 0 at its kink)."""
    return last > 1e-30 * first and last > 1e-250


def _falls_alone(slope_along, theta: Tensor, support: Tensor) -> Tensor:
    """Per response: dL/ds ≤ 0 when its logit alone moves down (forward mode), [X, Y] bool."""
    out = torch.zeros_like(support)
    for idx in support.nonzero().tolist():
        e = torch.zeros_like(theta)
        e[tuple(idx)] = -1.0
        out[tuple(idx)] = slope_along(theta, e) <= 0
    return out


def _confirm_falling(
    slope_along, invisible, theta: Tensor, travelled: Tensor, support: Tensor
) -> bool:
    """L falls strictly a quarter nat further along the way travelled (the fastest log π moving
    by −¼), by less than its rounding error or with a slope that dies out further on, does not
    rise at ½ and 1 nat, and further out (2 … 512 nats) never rises nor stops dead after a
    visible fall, which is a kink at a finite point (a hinge stalled short of its flat set), not
    a tail. A far probe where the loss is
    NaN (−inf − (−inf) past an underflow) ends the probing."""
    unit, rates = _unit_ray(_escape_direction(travelled, support), support)
    # along the whole way travelled, or moving only the responses that went down at least half
    # as fast as the fastest (those that settled can drown a slope of e^{−100} in rounding); a
    # fall L itself shows a quarter nat on must die out like a tail's (a super-exponential one
    # that Newton's shrinking steps do not follow), not go on like a hinge's linear piece
    return any(
        _falls_on(
            slope_along, theta, direction, decaying=not invisible(theta, theta + 0.25 * direction)
        )
        for direction in (unit, torch.where(rates <= -0.5, unit, 0.0))
    )


def _falls_on(slope_along, theta: Tensor, unit: Tensor, *, decaying: bool = False) -> bool:
    """The probes of :func:`_confirm_falling` along ``unit``, out to 512 nats, and on to 2^60
    while the slope stays that of a linear piece (:func:`_linear`), whose end may be a kink far
    out. ``decaying``: the slope must also die out over the probes (below 1e-3 of the first, or
    an underflow or NaN ends them): a tail, not a long linear piece (a hinge far from its flat
    set). A slope exactly 0 after a fall is a kink unless the fall, counted from θ itself, died
    out first: 3e-189 at θ, 2e-248 a quarter nat on and 0 at half a nat is a super-exponential
    tail (f-DPO's forward KL, seed 2, instance 608 of ``wang2024.fdpo.deterministic``), as is a
    slope below 1e-250 at θ that is exactly 0 a quarter nat on (e^{−660} at θ). The dying out
    that ``decaying`` asks for is counted from the first probe: θ may sit on a steeper piece
    than the one the probes follow (a hinge, seed 7, instance 680 of
    ``zhao2023.hinge.deterministic``: −0.024 at θ, then −5.3e-5 on and on)."""
    try:
        at = slope_along(theta, unit)
    except ValueError:
        at = math.nan
    underflowing = -1e-250 < at < 0
    origin = -at if at < 0 else 0.0
    first = last = origin if underflowing else 0.0
    slopes: list[float] = []
    ended = False
    for k, t in enumerate((0.25, 0.5, *(2.0**j for j in range(_FAR)))):
        if k == 12 and not _linear(slopes[-2:]):
            break
        try:
            d = slope_along(theta + t * unit, unit)
        except ValueError:
            if k < 3:
                return False
            ended = True
            break
        slopes.append(d)
        if d > 0 or (k == 0 and not d < 0 and not underflowing):
            return False
        if d < 0:
            first, last = first or -d, -d
        elif _stops_dead(max(first, origin), last):
            return False
        else:
            ended = True
    return not decaying or ended or last <= 1e-3 * first


def _escape_rates(
    slope_along, theta: Tensor, step: Tensor, support: Tensor
) -> tuple[Tensor, float]:
    """Rates of log π along the unit ray, and κ from the slopes dL/ds one step apart:
    dL/ds = −κ b e^{−κs} for L = a + b e^{−κs}, δ the step's length in s."""
    d, rates = _unit_ray(step, support)
    delta = (step.norm() / d.norm()).item()  # the step is δ unit-ray lengths
    # 9m steps on, with m steps moving the exponent by ≥ 1: the tail's next-order term (e^{−2βh}
    # against e^{−βh}) has died down by e^{−9}. A Newton step moves it by ~1 (m = 1) unless the
    # step was capped at _MAX_STEP (small β), where a first estimate of κ sets m (≥ 2 per m).
    m, kappa = 1, math.nan
    for _ in range(3):
        slopes = [-slope_along(theta + j * m * step, step) for j in (9, 10)]
        if slopes[0] <= 0 or slopes[1] <= 0:
            return rates, kappa
        kappa = max(0.0, math.log(slopes[0] / slopes[1]) / (m * delta))
        if kappa * delta < 1e-3:  # no exponential tail: linear or polynomial (rounding in κ)
            return rates, 0.0
        if kappa * m * delta >= 2:
            break
        m = math.ceil(2 / (kappa * delta))
    return rates, kappa
