"""Pairwise preference losses on sequence log-ratios, in TRL's conventions.

Every function takes ``chosen_logratios`` and ``rejected_logratios``: q(y) = log π(y) − log π_ref(y)
(natural log, **not** multiplied by β) of the preferred and the dispreferred response of each pair,
and returns one loss per pair (same shape). h = q(y_w) − q(y_l). The names and formulas are those of
``trl.DPOTrainer`` (``loss_type``), so a number computed here equals TRL's for the same log-ratios,
with one exception stated where it applies: TRL's ``"ipo"`` divides each log-ratio by the completion
length before the loss; :func:`ipo` is the paper's loss on summed log-ratios, and TRL's variant is
``ipo(chosen / n_chosen, rejected / n_rejected, tau)``.

This module is the single implementation: ``tokenmdp`` and the LM adapter call it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import _validation as v

Tensor = torch.Tensor

__all__ = [
    "TRL_LOSS_TYPES",
    "apo_down",
    "apo_zero",
    "bco_pair",
    "dpo",
    "exo_pair",
    "hinge",
    "ipo",
    "nca_pair",
    "robust",
    "sppo_hard",
]


def _pair(chosen_logratios, rejected_logratios) -> tuple[Tensor, Tensor]:
    chosen = v.as_tensor(chosen_logratios, "chosen_logratios")
    rejected = v.as_tensor(rejected_logratios, "rejected_logratios")
    if chosen.shape != rejected.shape:
        raise ValueError(
            "chosen_logratios and rejected_logratios must have the same shape (one entry per pair), "
            f"got {tuple(chosen.shape)} and {tuple(rejected.shape)}"
        )
    return chosen, rejected


def _beta(beta, name: str = "beta"):
    return v.positive(beta, name)


def dpo(chosen_logratios, rejected_logratios, beta, label_smoothing: float = 0.0) -> Tensor:
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
    chosen, rejected = _pair(chosen_logratios, rejected_logratios)
    beta = _beta(beta)
    eps = v.in_range(label_smoothing, "label_smoothing", 0.0, 1.0)
    logits = beta * (chosen - rejected)
    loss = -F.logsigmoid(logits)
    if eps == 0.0:  # skip 0·(−inf) when βh = +inf
        return loss
    return (1 - eps) * loss - eps * F.logsigmoid(-logits)


def ipo(chosen_logratios, rejected_logratios, tau) -> Tensor:
    """ℓ = (h − 1/(2τ))², the IPO loss on summed log-ratios (Azar et al. 2023, eq. (17)).

    Nguyen 2025, eq. (12) writes (βh − ½)² = β²·ℓ with τ = β: the same minimiser. TRL's
    ``loss_type="ipo"`` is this function applied to length-averaged log-ratios (see the module doc).
    """
    chosen, rejected = _pair(chosen_logratios, rejected_logratios)
    tau = _beta(tau, "tau")
    return (chosen - rejected - 1 / (2 * tau)) ** 2


def hinge(chosen_logratios, rejected_logratios, beta) -> Tensor:
    """ℓ = max(0, 1 − βh), the SLiC hinge loss (Zhao et al. 2023); TRL's ``"hinge"``."""
    chosen, rejected = _pair(chosen_logratios, rejected_logratios)
    return torch.relu(1 - _beta(beta) * (chosen - rejected))


def robust(chosen_logratios, rejected_logratios, beta, label_smoothing: float = 0.0) -> Tensor:
    """ℓ = [−(1 − ε) log σ(βh) + ε log σ(−βh)] / (1 − 2ε), ε ∈ [0, ½).

    The unbiased loss under label noise of rate ε (Chowdhury et al. 2024, rDPO); TRL's ``"robust"``.
    ε = 0 is :func:`dpo`.
    """
    chosen, rejected = _pair(chosen_logratios, rejected_logratios)
    beta = _beta(beta)
    eps = v.in_range(label_smoothing, "label_smoothing", 0.0, 0.5, high_open=True)
    logits = beta * (chosen - rejected)
    loss = -(1 - eps) * F.logsigmoid(logits)
    if eps == 0.0:
        return loss
    return (loss + eps * F.logsigmoid(-logits)) / (1 - 2 * eps)


def exo_pair(chosen_logratios, rejected_logratios, beta, label_smoothing: float = 1e-3) -> Tensor:
    """ℓ = KL(p_θ ‖ p_ε) over {chosen, rejected}, p_θ = (σ(βh), σ(−βh)), p_ε = (1 − ε, ε), ε ∈ (0, 1).

    EXO for pairs (Ji et al. 2024, eq. (16)); TRL's ``"exo_pair"``.
    """
    chosen, rejected = _pair(chosen_logratios, rejected_logratios)
    beta = _beta(beta)
    eps = v.in_range(label_smoothing, "label_smoothing", 0.0, 1.0)
    if not 0.0 < eps < 1.0:
        raise ValueError(
            f"label_smoothing must lie in (0, 1) for exo_pair, got {label_smoothing!r}"
        )
    logits = beta * (chosen - rejected)
    log_qw, log_ql = F.logsigmoid(logits), F.logsigmoid(-logits)
    log_pw, log_pl = math.log1p(-eps), math.log(eps)
    return log_qw.exp() * (log_qw - log_pw) + log_ql.exp() * (log_ql - log_pl)


def nca_pair(chosen_logratios, rejected_logratios, beta) -> Tensor:
    """ℓ = −log σ(βq_w) − ½ log σ(−βq_w) − ½ log σ(−βq_l) (Chen et al. 2024, NCA); TRL's ``"nca_pair"``."""
    chosen, rejected = _pair(chosen_logratios, rejected_logratios)
    beta = _beta(beta)
    w, l_ = beta * chosen, beta * rejected
    return -F.logsigmoid(w) - 0.5 * F.logsigmoid(-w) - 0.5 * F.logsigmoid(-l_)


def bco_pair(chosen_logratios, rejected_logratios, beta) -> Tensor:
    """ℓ = −log σ(βq_w) − log σ(−βq_l), binary classification of each response; TRL's ``"bco_pair"``."""
    chosen, rejected = _pair(chosen_logratios, rejected_logratios)
    beta = _beta(beta)
    return -F.logsigmoid(beta * chosen) - F.logsigmoid(-beta * rejected)


def sppo_hard(chosen_logratios, rejected_logratios, beta) -> Tensor:
    """ℓ = (q_w − 1/(2β))² + (q_l + 1/(2β))², SPPO with hard labels (Wu et al. 2024, eq. (4.7));
    TRL's ``"sppo_hard"``. Unlike IPO it pins each log-ratio, not only their difference."""
    chosen, rejected = _pair(chosen_logratios, rejected_logratios)
    beta = _beta(beta)
    return (chosen - 0.5 / beta) ** 2 + (rejected + 0.5 / beta) ** 2


def apo_zero(chosen_logratios, rejected_logratios, beta) -> Tensor:
    """ℓ = 1 − σ(βq_w) + σ(βq_l) (D'Oosterlinck et al. 2024, APO-zero, eq. (7)); TRL's ``"apo_zero"``."""
    chosen, rejected = _pair(chosen_logratios, rejected_logratios)
    beta = _beta(beta)
    return 1 - torch.sigmoid(beta * chosen) + torch.sigmoid(beta * rejected)


def apo_down(chosen_logratios, rejected_logratios, beta) -> Tensor:
    """ℓ = σ(βq_w) + 1 − σ(βh) (D'Oosterlinck et al. 2024, APO-down, eq. (8)); TRL's ``"apo_down"``."""
    chosen, rejected = _pair(chosen_logratios, rejected_logratios)
    beta = _beta(beta)
    return torch.sigmoid(beta * chosen) + 1 - torch.sigmoid(beta * (chosen - rejected))


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
}
