"""Exact population objectives of Nguyen 2025, sec. 2–3, as finite sums (no sampling).

Pairs are drawn as y₁, y₂ ∼ μ(·|x) i.i.d. and labelled by c = 1 (y₁ ≻ y₂) with probability
P(y₁ ≻ y₂ | x), else c = 2. The blog writes h with β inside,

    h(y₁, y₂) = β log π(y₁)/π_ref(y₁) − β log π(y₂)/π_ref(y₂) = β (q(y₁) − q(y₂)),

and so does this module (``losses`` keeps β outside, as TRL does). Every function takes a tabular
``policy`` [..., Y], the preference matrix ``pref`` [..., Y, Y] (Nguyen 2025 (8a–c)), the behaviour
policy ``mu`` [..., Y], ``ref`` [..., Y] and ``beta``, broadcast over leading prompt dims, and returns
one expectation per prompt, shape [...]. Average over prompts with your ρ(x).

Useful facts, each checked in the tests: the probability that a drawn, labelled pair is
(chosen = i, rejected = j) is W_ij = 2 μ_i μ_j P_ij (:func:`pair_weights`; the diagonal gives μ_i²);
(9) − (10) is independent of the policy (Lemma 3.1); (11) corrected − (10) and (11) corrected − (12)
are constants too, so (9)–(12) share their minimisers; (11) as printed has the target reversed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch

from . import validation as v
from .losses import dpo
from .preferences import check_preference
from .validation import TensorLike

Tensor = torch.Tensor


def _inputs(policy, pref, mu, ref, beta, pairs_from=None):
    pref = check_preference(pref)
    policy = v.probabilities(policy, "policy")
    mu = v.probabilities(mu, "mu")
    ref = v.probabilities(ref, "ref")
    beta = v.positive(beta, "beta")
    names = {"policy": policy, "mu": mu, "ref": ref}
    if pairs_from is not None:
        names["pairs_from"] = v.probabilities(pairs_from, "pairs_from")
    if policy.shape[-1] != pref.shape[-1]:
        raise ValueError(
            f"policy and pref must have the same number of responses: shapes {tuple(policy.shape)} "
            f"and {tuple(pref.shape)}"
        )
    tensors = v.broadcast(names)
    if isinstance(beta, Tensor):
        beta = beta.to(tensors[0].dtype)
    return (*tensors, pref.to(tensors[0].dtype), beta)


def _wsum(weights: Tensor, values: Tensor) -> Tensor:
    """Σ_ij w_ij f_ij over the response dims, with 0·∞ = 0 for pairs that are never drawn."""
    return torch.where(weights > 0, weights * values, 0.0).sum((-1, -2))


def logratios(policy: TensorLike, ref: TensorLike) -> Tensor:
    """q(y) = log π(y) − log π_ref(y), natural log, not multiplied by β (the project's ``logratio``).

    −inf where π = 0 < π_ref; a policy with mass where π_ref = 0 has no finite KL and is rejected.
    """
    policy = v.probabilities(policy, "policy")
    ref = v.probabilities(ref, "ref")
    policy, ref = v.broadcast({"policy": policy, "ref": ref})
    if ((ref == 0) & (policy > 0)).any():
        raise ValueError("policy puts mass on a response with ref = 0: the log-ratio is +inf")
    return torch.where(ref > 0, policy.log() - ref.log(), 0.0)


def pair_weights(pref: TensorLike, mu: TensorLike) -> Tensor:
    """W[..., i, j] = Pr(chosen = y_i, rejected = y_j) = 2 μ_i μ_j P_ij.

    The distribution of a labelled pair when y₁, y₂ ∼ μ i.i.d. and the winner is drawn from P: the
    draws (y₁, y₂) = (i, j) and (j, i) each yield (chosen i, rejected j) with probability P_ij. It
    sums to 1; W_ii = μ_i² since P_ii = ½.
    """
    pref = check_preference(pref)
    mu = v.probabilities(mu, "mu").to(pref.dtype)
    return 2 * mu.unsqueeze(-1) * mu.unsqueeze(-2) * pref


def expected_pair_loss(
    loss: Callable[[Tensor, Tensor], Tensor], logratio: TensorLike, pref: TensorLike, mu: TensorLike
) -> Tensor:
    """E[ℓ(q(y_w), q(y_l))] = Σ_ij W_ij ℓ(q_i, q_j), the exact population value of a pairwise loss.

    ``loss`` is any elementwise function of (chosen, rejected) log-ratios, e.g.
    ``functools.partial(losses.dpo, beta=0.1)``; entries with W_ij = 0 contribute nothing.

    Args:
        logratio: q, shape [..., Y] (or a score s, for the reward-model loss (3)).
    """
    weights = pair_weights(pref, mu)
    q = v.as_tensor(logratio, "logratio").to(weights.dtype)
    chosen, rejected = torch.broadcast_tensors(q.unsqueeze(-1), q.unsqueeze(-2))
    return _wsum(weights, loss(chosen, rejected))


def logistic_objective(score: TensorLike, pref: TensorLike, mu: TensorLike) -> Tensor:
    """−E_{(y₁, y₂)∼μ, c}[𝓛_logistic(σ(s(y₁) − s(y₂)), c)], Nguyen 2025, eq. (3).

    The Bradley–Terry negative log-likelihood of a score s (a reward model), with
    𝓛_logistic(p, c) = 𝟙[c = 1] log p + 𝟙[c = 2] log(1 − p).

    Args:
        score: s(x, y), finite, shape [..., Y].
    """
    score = v.finite(score, "score")
    return expected_pair_loss(lambda w, l_: dpo(w, l_, beta=1.0), score, pref, mu)


def dpo_objective(
    policy: TensorLike, pref: TensorLike, mu: TensorLike, ref: TensorLike, beta: float | Tensor
) -> Tensor:
    """Nguyen 2025, eq. (6): the logistic loss (3) with s replaced by the implicit score βq.

    Equals ``expected_pair_loss(partial(losses.dpo, beta=beta), q, pref, mu)``, the population DPO
    loss (Rafailov et al. 2023, eq. (7)).

    Raises:
        ValueError: as the other objectives, and when ``policy`` is 0 on a response that μ samples
            and π_ref allows (its log-ratio is −inf: the loss is +inf or undefined).
    """
    policy, mu, ref, pref, beta = _inputs(policy, pref, mu, ref, beta)
    q = logratios(policy, ref)
    bad = (q == -math.inf) & (mu > 0)
    if bad.any():
        idx = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"policy must be > 0 on every response that mu samples and ref allows (its log-ratio "
            f"is −inf there and the DPO loss is +inf or undefined), got 0 at index {idx}"
        )
    q = torch.where(mu > 0, q, 0.0)  # unsampled responses carry weight 0
    b = beta.unsqueeze(-1) if isinstance(beta, Tensor) else beta
    return logistic_objective(b * q, pref, mu)


def _h(policy, ref, beta) -> Tensor:
    """h[..., i, j] = β(q_i − q_j), with h_ii = 0 even where q_i = −inf."""
    q = logratios(policy, ref)
    b = beta[..., None, None] if isinstance(beta, Tensor) else beta
    h = b * (q.unsqueeze(-1) - q.unsqueeze(-2))
    eye = torch.eye(q.shape[-1], dtype=torch.bool, device=q.device)
    return torch.where(eye, 0.0, h)


def _mu2(mu: Tensor) -> Tensor:
    return mu.unsqueeze(-1) * mu.unsqueeze(-2)


def ipo_target_objective(
    policy: TensorLike,
    pref: TensorLike,
    mu: TensorLike,
    ref: TensorLike,
    beta: float | Tensor,
    *,
    pairs_from: TensorLike | None = None,
) -> Tensor:
    """Nguyen 2025, eq. (9): E_{y₁,y₂∼μ}[(h(y₁, y₂) − E_{y∼μ}[v(y₁, y) − v(y₂, y)])²].

    Regression of h on the unknown target g(y₁, y₂) = s†(y₁) − s†(y₂), s† of eq. (7).

    Args:
        pairs_from: the distribution the pairs (y₁, y₂) are drawn from; by default ``mu``, the
            behaviour policy inside the target, which Lemma 3.1 needs. Pass another to break it.
    """
    policy, mu, ref, *rest = _inputs(policy, pref, mu, ref, beta, pairs_from)
    pairs = cast(Tensor, rest[0]) if pairs_from is not None else mu  # the checked pairs_from
    pref, beta = rest[-2], rest[-1]
    s = (pref * mu.unsqueeze(-2)).sum(-1)  # s†(y) = E_{y'∼μ} v(y, y')
    target = s.unsqueeze(-1) - s.unsqueeze(-2)
    return _wsum(_mu2(pairs), (_h(policy, ref, beta) - target) ** 2)


def ipo_preference_objective(
    policy: TensorLike, pref: TensorLike, mu: TensorLike, ref: TensorLike, beta: float | Tensor
) -> Tensor:
    """Nguyen 2025, eq. (10): E_{y₁,y₂∼μ}[(h(y₁, y₂) − v(y₁, y₂))²]."""
    policy, mu, ref, pref, beta = _inputs(policy, pref, mu, ref, beta)
    return _wsum(_mu2(mu), (_h(policy, ref, beta) - pref) ** 2)


def ipo_label_objective(
    policy: TensorLike,
    pref: TensorLike,
    mu: TensorLike,
    ref: TensorLike,
    beta: float | Tensor,
    *,
    printed: bool = False,
) -> Tensor:
    """Nguyen 2025, eq. (11): E_{y₁,y₂∼μ, c}[(h(y₁, y₂) − t(c))²], regression on the label.

    The blog approximates v(y₁, y₂) = Pr(c = 1) by the label and prints the target t(c) = c − 1,
    which is 0 when y₁ wins and 1 when y₂ wins: reversed. With ``printed=True`` this function
    evaluates eq. (11) as printed, whose minimiser is the IPO optimum for the *reversed* preference
    1 − P; the default uses the corrected target t(c) = 2 − c = 𝟙[c = 1], for which
    E_c[t] = v(y₁, y₂) and the objective equals (10) plus the constant E_μ[v(1 − v)].
    """
    policy, mu, ref, pref, beta = _inputs(policy, pref, mu, ref, beta)
    h = _h(policy, ref, beta)
    win, lose = (h - 1) ** 2, h**2  # target 1 when c = 1 (prob. P), 0 when c = 2
    if printed:
        win, lose = lose, win
    # 0·∞ = 0: an outcome of probability 0 adds nothing even where π = 0 makes h infinite
    mixed = torch.where(pref > 0, pref * win, 0.0) + torch.where(pref < 1, (1 - pref) * lose, 0.0)
    return _wsum(_mu2(mu), mixed)


def ipo_objective(
    policy: TensorLike, pref: TensorLike, mu: TensorLike, ref: TensorLike, beta: float | Tensor
) -> Tensor:
    """Nguyen 2025, eq. (12): E_{(y_w, y_l)}[(h(y_w, y_l) − ½)²], the IPO loss of Azar et al. 2023.

    Equals β² · E[``losses.ipo``(q_w, q_l, τ = β)] and (11) corrected minus ¼: the symmetrised pair
    (y_w, y_l, 1), (y_l, y_w, 2) gives (h − 1)² + h² = 2(h − ½)² + ½.
    """
    policy, mu, ref, pref, beta = _inputs(policy, pref, mu, ref, beta)
    h = _h(policy, ref, beta)
    return _wsum(pair_weights(pref, mu), (h - 0.5) ** 2)


NGUYEN_2025 = {
    "3": logistic_objective,
    "6": dpo_objective,
    "9": ipo_target_objective,
    "10": ipo_preference_objective,
    "11": ipo_label_objective,
    "12": ipo_objective,
}
"""Nguyen 2025 equation number → the function evaluating that population objective."""
