"""Pairwise preference losses on sequence log-ratios, in TRL's conventions.

Every function takes ``chosen_logratios`` and ``rejected_logratios``: q(y) = log π(y) − log π_ref(y)
(natural log, **not** multiplied by β) of the preferred and the dispreferred response of each pair,
and returns one loss per pair (same shape). h = q(y_w) − q(y_l). The names and formulas are those of
``trl.DPOTrainer`` (``loss_type``), so a number computed here equals TRL's for the same log-ratios,
with one exception stated where it applies: TRL's ``"ipo"`` divides each log-ratio by the completion
length before the loss; :func:`ipo` is the paper's loss on summed log-ratios, and TRL's variant is
``ipo(chosen / n_chosen, rejected / n_rejected, tau)``.

Losses that need more than the two summed log-ratios (completion lengths, per-token log-probs,
log π itself, unpaired data, a whole batch) live in :mod:`toybandit.more_losses` and are re-exported
here, so every TRL loss is ``toybandit.losses.<name>``; their signatures say what they need.
:func:`trl_pair_loss` turns a ``DPOConfig`` (loss_type, beta, label_smoothing, f-divergence,
discopop_tau) into one per-pair callable for :func:`toybandit.minimise_loss`.

This module is the single implementation: ``tokenmdp`` and the LM adapter call it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from . import validation as v
from .validation import TensorLike

Tensor = torch.Tensor

__all__ = [
    "TRL_LOSS_TYPES",
    "apo_down",
    "apo_zero",
    "bco_pair",
    "discopop",
    "dpo",
    "exo_pair",
    "f_divergence_scores",
    "hinge",
    "ipo",
    "mix",
    "nca_pair",
    "robust",
    "sppo_hard",
]


def dpo(
    chosen_logratios: TensorLike,
    rejected_logratios: TensorLike,
    beta: float | Tensor,
    label_smoothing: float = 0.0,
) -> Tensor:
    """ℓ = −(1 − ε) log σ(βh) − ε log σ(−βh).

    The DPO loss (Rafailov et al. 2023, eq. (7); Nguyen 2025, eq. (6) for one labelled pair), with the
    conservative label smoothing ε of the original DPO code (preference labels flipped with
    probability ε). ε = 0 is TRL's ``loss_type="sigmoid"``.

    Args:
        chosen_logratios: q(y_w).
        rejected_logratios: q(y_l), same shape as ``chosen_logratios``.
        beta: β > 0.
        label_smoothing: ε ∈ [0, 1].

    >>> dpo(torch.tensor([0.0]), torch.tensor([0.0]), beta=0.1)  # log 2
    tensor([0.6931])
    """
    chosen, rejected = v.logratio_pair(chosen_logratios, rejected_logratios)
    beta = v.positive(beta, "beta")
    eps = v.in_range(label_smoothing, "label_smoothing", 0.0, 1.0)
    logits = beta * (chosen - rejected)
    loss = -F.logsigmoid(logits)
    if eps == 0.0:  # skip 0·(−inf) when βh = +inf
        return loss
    return (1 - eps) * loss - eps * F.logsigmoid(-logits)


def ipo(
    chosen_logratios: TensorLike, rejected_logratios: TensorLike, tau: float | Tensor
) -> Tensor:
    """ℓ = (h − 1/(2τ))², the IPO loss on summed log-ratios (Azar et al. 2023, eq. (17)).

    Nguyen 2025, eq. (12) writes (βh − ½)² = β²·ℓ with τ = β: the same minimiser. TRL's
    ``loss_type="ipo"`` is this function applied to length-averaged log-ratios (see the module doc).
    """
    chosen, rejected = v.logratio_pair(chosen_logratios, rejected_logratios)
    tau = v.positive(tau, "tau")
    return (chosen - rejected - 1 / (2 * tau)) ** 2


def hinge(
    chosen_logratios: TensorLike, rejected_logratios: TensorLike, beta: float | Tensor
) -> Tensor:
    """ℓ = max(0, 1 − βh), the SLiC hinge loss (Zhao et al. 2023); TRL's ``"hinge"``."""
    chosen, rejected = v.logratio_pair(chosen_logratios, rejected_logratios)
    return torch.relu(1 - v.positive(beta, "beta") * (chosen - rejected))


def robust(
    chosen_logratios: TensorLike,
    rejected_logratios: TensorLike,
    beta: float | Tensor,
    label_smoothing: float = 0.0,
) -> Tensor:
    """ℓ = [−(1 − ε) log σ(βh) + ε log σ(−βh)] / (1 − 2ε), ε ∈ [0, ½).

    The unbiased loss under label noise of rate ε (Chowdhury et al. 2024, rDPO); TRL's ``"robust"``.
    ε = 0 is :func:`dpo`.
    """
    chosen, rejected = v.logratio_pair(chosen_logratios, rejected_logratios)
    beta = v.positive(beta, "beta")
    eps = v.in_range(label_smoothing, "label_smoothing", 0.0, 0.5, high_open=True)
    logits = beta * (chosen - rejected)
    loss = -(1 - eps) * F.logsigmoid(logits)
    if eps == 0.0:
        return loss
    return (loss + eps * F.logsigmoid(-logits)) / (1 - 2 * eps)


def exo_pair(
    chosen_logratios: TensorLike,
    rejected_logratios: TensorLike,
    beta: float | Tensor,
    label_smoothing: float = 1e-3,
) -> Tensor:
    """ℓ = KL(p_θ ‖ p_ε) over {chosen, rejected}, p_θ = (σ(βh), σ(−βh)), p_ε = (1 − ε, ε), ε ∈ (0, 1).

    EXO for pairs (Ji et al. 2024, eq. (16)); TRL's ``"exo_pair"``.
    """
    chosen, rejected = v.logratio_pair(chosen_logratios, rejected_logratios)
    beta = v.positive(beta, "beta")
    eps = v.in_range(label_smoothing, "label_smoothing", 0.0, 1.0)
    if not 0.0 < eps < 1.0:
        raise ValueError(
            f"label_smoothing must lie in (0, 1) for exo_pair, got {label_smoothing!r}"
        )
    logits = beta * (chosen - rejected)
    log_qw, log_ql = F.logsigmoid(logits), F.logsigmoid(-logits)
    log_pw, log_pl = math.log1p(-eps), math.log(eps)
    return log_qw.exp() * (log_qw - log_pw) + log_ql.exp() * (log_ql - log_pl)


def nca_pair(
    chosen_logratios: TensorLike, rejected_logratios: TensorLike, beta: float | Tensor
) -> Tensor:
    """ℓ = −log σ(βq_w) − ½ log σ(−βq_w) − ½ log σ(−βq_l) (Chen et al. 2024, NCA); TRL's ``"nca_pair"``."""
    chosen, rejected = v.logratio_pair(chosen_logratios, rejected_logratios)
    beta = v.positive(beta, "beta")
    w, l_ = beta * chosen, beta * rejected
    return -F.logsigmoid(w) - 0.5 * F.logsigmoid(-w) - 0.5 * F.logsigmoid(-l_)


def bco_pair(
    chosen_logratios: TensorLike, rejected_logratios: TensorLike, beta: float | Tensor
) -> Tensor:
    """ℓ = −log σ(βq_w) − log σ(−βq_l), binary classification of each response; TRL's ``"bco_pair"``."""
    chosen, rejected = v.logratio_pair(chosen_logratios, rejected_logratios)
    beta = v.positive(beta, "beta")
    return -F.logsigmoid(beta * chosen) - F.logsigmoid(-beta * rejected)


def sppo_hard(
    chosen_logratios: TensorLike, rejected_logratios: TensorLike, beta: float | Tensor
) -> Tensor:
    """ℓ = (q_w − 1/(2β))² + (q_l + 1/(2β))², SPPO with hard labels (Wu et al. 2024, eq. (4.7));
    TRL's ``"sppo_hard"``. Unlike IPO it pins each log-ratio, not only their difference."""
    chosen, rejected = v.logratio_pair(chosen_logratios, rejected_logratios)
    beta = v.positive(beta, "beta")
    return (chosen - 0.5 / beta) ** 2 + (rejected + 0.5 / beta) ** 2


def apo_zero(
    chosen_logratios: TensorLike, rejected_logratios: TensorLike, beta: float | Tensor
) -> Tensor:
    """ℓ = 1 − σ(βq_w) + σ(βq_l) (D'Oosterlinck et al. 2024, APO-zero, eq. (7)); TRL's ``"apo_zero"``."""
    chosen, rejected = v.logratio_pair(chosen_logratios, rejected_logratios)
    beta = v.positive(beta, "beta")
    return 1 - torch.sigmoid(beta * chosen) + torch.sigmoid(beta * rejected)


def apo_down(
    chosen_logratios: TensorLike, rejected_logratios: TensorLike, beta: float | Tensor
) -> Tensor:
    """ℓ = σ(βq_w) + 1 − σ(βh) (D'Oosterlinck et al. 2024, APO-down, eq. (8)); TRL's ``"apo_down"``."""
    chosen, rejected = v.logratio_pair(chosen_logratios, rejected_logratios)
    beta = v.positive(beta, "beta")
    return torch.sigmoid(beta * chosen) + 1 - torch.sigmoid(beta * (chosen - rejected))


def discopop(
    chosen_logratios: TensorLike,
    rejected_logratios: TensorLike,
    beta: float | Tensor,
    discopop_tau: float = 0.05,
) -> Tensor:
    """ℓ = (1 − σ(βh/τ_d))·(−log σ(βh)) + σ(βh/τ_d)·e^{−βh}, the log-ratio modulated loss.

    DiscoPOP (Lu et al. 2024, eq. (5)): a blend of the logistic loss, dominant where βh < 0,
    and the exponential loss, dominant where βh > 0, switched by σ(βh/τ_d); TRL's ``"discopop"``
    with ``discopop_tau`` = τ_d.
    """
    chosen, rejected = v.logratio_pair(chosen_logratios, rejected_logratios)
    beta = v.positive(beta, "beta")
    tau = v.positive(discopop_tau, "discopop_tau")
    logits = beta * (chosen - rejected)
    gate = torch.sigmoid(logits / tau)
    # σ(βh/τ_d) e^{−βh} as exp(log σ − βh): finite where e^{−βh} alone overflows (βh ≪ 0)
    return -F.logsigmoid(logits) * (1 - gate) + torch.exp(F.logsigmoid(logits / tau) - logits)


F_DIVERGENCES = ("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence")


def f_divergence_scores(
    logratios: TensorLike, f_divergence_type: str = "reverse_kl", alpha: float = 0.5
) -> Tensor:
    """s = f′(π/π_ref) as a function of q = log π/π_ref: the score that replaces q in f-DPO.

    f-DPO (Wang et al. 2024, *Beyond Reverse KL*) regularises with an f-divergence; its
    loss is the DPO-type loss of the difference s(y_w) − s(y_l) of the scores f′(e^q):

    - ``"reverse_kl"``: f′(t) = log t + 1, s = q (the constant cancels; standard DPO);
    - ``"forward_kl"``: f′(t) = 1 − 1/t, s = 1 − e^{−q};
    - ``"js_divergence"``: f′(t) = log(2t/(1 + t)), s = log 2 + log σ(q);
    - ``"alpha_divergence"``: f′(t) = (t^{α−1} − 1)/(α − 1), s = (e^{(α−1)q} − 1)/(α − 1), which
      tends to q as α → 1.

    TRL's ``f_divergence_type`` and ``f_alpha_divergence_coef`` = α; TRL feeds s to the losses whose
    argument is h (sigmoid, hinge, ipo, exo_pair, robust, discopop, sigmoid_norm), e.g.
    ``dpo(f_divergence_scores(q_w, t), f_divergence_scores(q_l, t), β)``. TRL falls back to
    ``reverse_kl`` for |α − 1| < 1e-6 and, in float32, clamps (α − 1)q at 80 before the exponential;
    here α = 1 alone is the limit and nothing is clamped (e^{(α−1)q} may be +inf, never NaN).
    """
    q = v.as_tensor(logratios, "logratios")
    if f_divergence_type == "reverse_kl":
        return q
    if f_divergence_type == "forward_kl":
        return -torch.expm1(-q)
    if f_divergence_type == "js_divergence":
        return math.log(2) + F.logsigmoid(q)
    if f_divergence_type == "alpha_divergence":
        try:
            a = float(alpha)
        except (TypeError, ValueError) as err:
            raise ValueError(f"alpha must be a number, got {alpha!r}") from err
        if not math.isfinite(a):
            raise ValueError(f"alpha must be finite, got {alpha!r}")
        if a == 1.0:
            return q
        return torch.expm1((a - 1) * q) / (a - 1)
    raise ValueError(f"f_divergence_type must be one of {F_DIVERGENCES}, got {f_divergence_type!r}")


def mix(
    per_pair_losses: Sequence[TensorLike], loss_weights: Sequence[float] | None = None
) -> Tensor:
    """Σ_k w_k ℓ_k per pair: TRL's multi-loss ``loss_type=[...]`` with ``loss_weights=[...]``.

    TRL's batch loss Σ_k w_k mean(ℓ_k) is the mean of this per-pair sum (the mean is linear), e.g.
    MPO's sigmoid + bco_pair + sft mix (Wang et al. 2024, *Mixed Preference Optimization*).

    Args:
        per_pair_losses: a sequence of per-pair loss tensors of one shape.
        loss_weights: one weight each; all 1 by default (TRL's default).
    """
    terms = [v.as_tensor(t, f"per_pair_losses[{i}]") for i, t in enumerate(per_pair_losses)]
    if not terms:
        raise ValueError("per_pair_losses must hold at least one loss")
    if any(t.shape != terms[0].shape for t in terms):
        raise ValueError(
            f"per_pair_losses must share one shape, got {[tuple(t.shape) for t in terms]}"
        )
    if loss_weights is None:
        loss_weights = [1.0] * len(terms)
    if len(loss_weights) != len(terms):
        raise ValueError(
            f"loss_weights must have one weight per loss: {len(loss_weights)} weights for "
            f"{len(terms)} losses"
        )
    weights = [
        v.in_range(w, f"loss_weights[{i}]", -math.inf, math.inf, high_open=True)
        for i, w in enumerate(loss_weights)
    ]
    total = weights[0] * terms[0]
    for w, t in zip(weights[1:], terms[1:], strict=True):
        total = total + w * t
    return total


# TRL's loss_type name → function; ``"ipo"`` here is the paper's summed form (see the module doc).
TRL_LOSS_TYPES = {
    "sigmoid": dpo,
    "hinge": hinge,
    "ipo": ipo,
    "robust": robust,
    "exo_pair": exo_pair,
    "nca_pair": nca_pair,
    "bco_pair": bco_pair,
    "sppo_hard": sppo_hard,
    "apo_zero": apo_zero,
    "apo_down": apo_down,
    "discopop": discopop,
}

from . import more_losses as _more_losses  # noqa: E402
from .more_losses import *  # noqa: E402, F403  (re-export; more_losses builds on the helpers above)

__all__ += _more_losses.__all__
