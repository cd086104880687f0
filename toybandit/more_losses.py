"""TRL's losses that need more than the two summed log-ratios q(y_w), q(y_l).

Each signature says what it needs: completion lengths (``sigmoid_norm``), a whole batch (``aot``,
``aot_unpaired``: they sort over it), per-token log-probabilities (``sft``, ``ld_sequence_logps``,
``wpo_weights``), unpaired data and a reference point (``kto``), or log π itself rather than a
log-ratio (``cpo``, ``simpo``, ``orpo``: no reference model). Batches live on dim 0; token dims are
[batch, T] with a 0/1 ``completion_mask``. Everything is re-exported by :mod:`toybandit.losses`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from . import validation as v
from .validation import TensorLike

Tensor = torch.Tensor

__all__ = [
    "PairLoss",
    "aot",
    "aot_unpaired",
    "apo_zero_unpaired",
    "cpo",
    "kto",
    "kto_reference_point",
    "ld_sequence_logps",
    "orpo",
    "sft",
    "sigmoid_norm",
    "simpo",
    "trl_pair_loss",
    "wpo_weights",
]


def _smoothing(label_smoothing) -> float:
    return v.in_range(label_smoothing, "label_smoothing", 0.0, 1.0)


def _bce(logits: Tensor, eps: float) -> Tensor:
    """−(1 − ε) log σ(z) − ε log σ(−z), without 0·∞ when ε = 0."""
    loss = -F.logsigmoid(logits)
    if eps == 0.0:
        return loss
    return (1 - eps) * loss - eps * F.logsigmoid(-logits)


def _lengths(lengths, name: str, like: Tensor) -> Tensor:
    n = v.as_tensor(lengths, name)
    if n.shape != like.shape:
        raise ValueError(
            f"{name} must have the shape of the log-ratios {tuple(like.shape)}, "
            f"got {tuple(n.shape)}"
        )
    if not (torch.isfinite(n).all() and (n >= 1).all()):
        raise ValueError(
            f"{name} must be ≥ 1 (tokens per completion), got minimum {n.min().item()!r}"
        )
    return n.to(like.dtype)


def sigmoid_norm(
    chosen_logratios: TensorLike,
    rejected_logratios: TensorLike,
    chosen_lengths: TensorLike,
    rejected_lengths: TensorLike,
    beta: float | Tensor,
) -> Tensor:
    """ℓ = −log σ(β(q_w/|y_w| − q_l/|y_l|)), DPO on log-ratios averaged over completion tokens.

    TRL's ``"sigmoid_norm"`` (the length normalisation of SimPO, Meng et al. 2024, eq. (4), kept
    with a reference model). TRL's ``"ipo"`` is ``ipo(q_w/|y_w|, q_l/|y_l|, τ)`` in the same way.

    Args:
        chosen_lengths: |y| ≥ 1, completion tokens, shape of the log-ratios.
        rejected_lengths: as ``chosen_lengths``, for the rejected response.
    """
    chosen, rejected = v.logratio_pair(chosen_logratios, rejected_logratios)
    n_w = _lengths(chosen_lengths, "chosen_lengths", chosen)
    n_l = _lengths(rejected_lengths, "rejected_lengths", rejected)
    return -F.logsigmoid(v.positive(beta, "beta") * (chosen / n_w - rejected / n_l))


def aot(
    chosen_logps: TensorLike,
    rejected_logps: TensorLike,
    ref_chosen_logps: TensorLike,
    ref_rejected_logps: TensorLike,
    beta: float | Tensor,
    label_smoothing: float = 0.0,
) -> Tensor:
    """ℓ_k = −(1 − ε) log σ(βΔ_k) − ε log σ(−βΔ_k), Δ = sort(log π_w/π_l) − sort(log π_ref,w/π_ref,l).

    AOT, paired (Melnyk et al. 2024, *Distributional Preference Alignment of LLMs via Optimal
    Transport*, sec. 3): first-order stochastic dominance of the policy's margins over the
    reference's, in one dimension an optimal transport computed by sorting over the batch. The
    loss of one pair depends on the whole batch (dim 0), so it needs log π and log π_ref themselves,
    not only q. TRL's ``"aot"``.
    """
    chosen, rejected = v.logratio_pair(chosen_logps, rejected_logps)
    ref_chosen, ref_rejected = v.logratio_pair(ref_chosen_logps, ref_rejected_logps)
    if chosen.shape != ref_chosen.shape or chosen.dim() == 0:
        raise ValueError(
            f"the policy and reference log-probs must be batches [n, ...] of one shape, "
            f"got {tuple(chosen.shape)} and {tuple(ref_chosen.shape)}"
        )
    delta = (
        torch.sort(chosen - rejected, dim=0).values
        - torch.sort(ref_chosen - ref_rejected, dim=0).values
    )
    return _bce(v.positive(beta, "beta") * delta, _smoothing(label_smoothing))


def aot_unpaired(
    chosen_logratios: TensorLike,
    rejected_logratios: TensorLike,
    beta: float | Tensor,
    label_smoothing: float = 0.0,
) -> Tensor:
    """ℓ_k = −(1 − ε) log σ(βΔ_k) − ε log σ(−βΔ_k), Δ = sort(q_w) − sort(q_l) over the batch (dim 0).

    AOT, unpaired (Melnyk et al. 2024, sec. 3): dominance of the chosen log-ratio distribution
    over the rejected one. TRL's ``"aot_unpaired"``.
    """
    chosen, rejected = v.logratio_pair(chosen_logratios, rejected_logratios)
    if chosen.dim() == 0:
        raise ValueError(
            "aot_unpaired sorts over a batch: the log-ratios must be [n, ...], got a scalar"
        )
    delta = torch.sort(chosen, dim=0).values - torch.sort(rejected, dim=0).values
    return _bce(v.positive(beta, "beta") * delta, _smoothing(label_smoothing))


def _tokens(token_logps, completion_mask, name: str) -> tuple[Tensor, Tensor]:
    x = v.as_tensor(token_logps, name)
    mask = v.as_tensor(completion_mask, "completion_mask")
    if x.dim() != 2 or mask.shape != x.shape:
        raise ValueError(
            f"{name} and completion_mask must be [batch, T] of one shape, "
            f"got {tuple(x.shape)} and {tuple(mask.shape)}"
        )
    if not ((mask == 0) | (mask == 1)).all():
        raise ValueError("completion_mask must hold only 0 and 1")
    return x, mask.to(x.dtype)


def sft(chosen_token_logps: TensorLike, completion_mask: TensorLike) -> Tensor:
    """ℓ = −(1/Σ_k |y_w,k|) Σ_k Σ_t log π(y_w,k,t | ·), the NLL of the chosen tokens, per token.

    TRL's ``"sft"``: one number for the batch (the mean over every chosen completion token, not the
    mean of per-sequence means), returned once per pair so that it mixes with per-pair losses
    (:func:`toybandit.losses.mix`). For one-token responses (a bandit) it is −log π(y_w) averaged.

    Args:
        chosen_token_logps: log π of each chosen token, [n, T]; masked entries are ignored.
        completion_mask: 1 on completion tokens, [n, T], at least one 1.
    """
    x, mask = _tokens(chosen_token_logps, completion_mask, "chosen_token_logps")
    if mask.sum() == 0:
        raise ValueError("completion_mask has no completion token: the SFT loss is undefined")
    total = torch.where(mask > 0, x, 0.0).sum() / mask.sum()
    return (-total).expand(x.shape[0])


def ld_sequence_logps(
    chosen_token_logps: TensorLike,
    rejected_token_logps: TensorLike,
    chosen_mask: TensorLike,
    rejected_mask: TensorLike,
    ld_alpha: float,
) -> tuple[Tensor, Tensor]:
    """log π_LD(y) = Σ_{t ≤ ℓ_s} log π(y_t | ·) + α Σ_{t > ℓ_s} log π(y_t | ·), ℓ_s = min(|y_w|, |y_l|).

    LD-DPO (Liu et al. 2024, *Length Desensitization in Direct Preference Optimization*):
    the tokens of the longer completion beyond the shared length count with weight α ∈ [0, 1].
    TRL's ``ld_alpha``: applied to policy and reference alike, the resulting log-ratios go to any
    loss. Positions are counted along each row's completion tokens (the mask may have gaps).

    Returns:
        (chosen, rejected) sequence log-probs, [n] each.
    """
    alpha = v.in_range(ld_alpha, "ld_alpha", 0.0, 1.0)
    xw, mw = _tokens(chosen_token_logps, chosen_mask, "chosen_token_logps")
    xl, ml = _tokens(rejected_token_logps, rejected_mask, "rejected_token_logps")
    if xw.shape[0] != xl.shape[0]:
        raise ValueError(
            f"chosen and rejected must have one row per pair, got {xw.shape[0]} and {xl.shape[0]}"
        )
    shared = torch.minimum(mw.sum(-1), ml.sum(-1)).unsqueeze(-1)

    def weighted(x: Tensor, m: Tensor) -> Tensor:
        position = m.cumsum(-1)  # 1, 2, ... on completion tokens
        w = torch.where(position <= shared, 1.0, alpha) * m
        return torch.where(m > 0, w * x, 0.0).sum(-1)

    return weighted(xw, mw), weighted(xl, ml)


def wpo_weights(
    chosen_token_logps: TensorLike,
    chosen_log_sum_sq_probs: TensorLike,
    chosen_mask: TensorLike,
    rejected_token_logps: TensorLike,
    rejected_log_sum_sq_probs: TensorLike,
    rejected_mask: TensorLike,
) -> Tensor:
    """w = exp(ā(y_w)) · exp(ā(y_l)), ā(y) = (1/|y|) Σ_t [log π(y_t|·) − log Σ_v π(v|·)²], detached.

    WPO (Zhou et al. 2024, *WPO: Enhancing RLHF with Weighted Preference Optimization*, eq. (2)
    with the aligned weights of sec. 3.2): each pair's loss is multiplied by how likely the
    current policy is to produce it, per token, relative to the policy's own expected token
    probability Σ_v π(v)². TRL's ``use_weighting=True`` (a length of 0 counts as 1). The weights
    carry no gradient.

    Args:
        chosen_token_logps: log π of each completion token of y_w, [n, T].
        chosen_log_sum_sq_probs: log Σ_v π(v|·)² at each position of y_w, [n, T].
        chosen_mask: 0/1 completion mask of y_w, [n, T].
        rejected_token_logps: as ``chosen_token_logps``, for y_l.
        rejected_log_sum_sq_probs: as ``chosen_log_sum_sq_probs``, for y_l.
        rejected_mask: as ``chosen_mask``, for y_l.
    """

    def side(x, s, m, name):
        x, m = _tokens(x, m, name)
        s = v.as_tensor(s, name.replace("token_logps", "log_sum_sq_probs"))
        if s.shape != x.shape:
            raise ValueError(
                f"log_sum_sq_probs must match {name} in shape: {tuple(s.shape)} vs {tuple(x.shape)}"
            )
        mean = torch.where(m > 0, x - s, 0.0).sum(-1) / m.sum(-1).clamp_min(1)
        return mean.detach().exp()

    w = side(chosen_token_logps, chosen_log_sum_sq_probs, chosen_mask, "chosen_token_logps")
    l_ = side(
        rejected_token_logps, rejected_log_sum_sq_probs, rejected_mask, "rejected_token_logps"
    )
    if w.shape != l_.shape:
        raise ValueError(
            f"chosen and rejected must have one row per pair, got {w.shape[0]} and {l_.shape[0]}"
        )
    return w * l_


def kto_reference_point(kl_logratios: TensorLike) -> Tensor:
    """z₀ = max(0, mean_k q(y'_k)), KTO's reference point: a batch estimate of KL(π‖π_ref).

    Ethayarajh et al. 2024, *KTO*, eq. (7) estimates z₀ = KL(π_θ(y|x)‖π_ref(y|x)) from mismatched
    (x, y') pairs of the batch; TRL averages their log-ratios and clamps at 0, with no gradient.

    Args:
        kl_logratios: q of the mismatched completions, [m], m ≥ 1.
    """
    q = v.as_tensor(kl_logratios, "kl_logratios")
    if q.numel() == 0:
        raise ValueError("kl_logratios must hold at least one log-ratio")
    return q.mean().detach().clamp(min=0)


def _unpaired(chosen_logratios, rejected_logratios) -> tuple[Tensor, Tensor]:
    chosen = v.as_tensor(chosen_logratios, "chosen_logratios")
    rejected = v.as_tensor(rejected_logratios, "rejected_logratios")
    if chosen.dim() != 1 or rejected.dim() != 1:
        raise ValueError(
            f"unpaired log-ratios must be 1-d (any lengths), got shapes "
            f"{tuple(chosen.shape)} and {tuple(rejected.shape)}"
        )
    return chosen, rejected


def kto(
    chosen_logratios: TensorLike,
    rejected_logratios: TensorLike,
    kl: TensorLike,
    beta: float | Tensor,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> Tensor:
    """ℓ = λ_D (1 − σ(β(q − z₀))) for a desirable y, λ_U (1 − σ(β(z₀ − q))) for an undesirable one.

    KTO (Ethayarajh et al. 2024, eq. (7)) on *unpaired* data: ``chosen_logratios`` [n_D] are the
    desirable completions, ``rejected_logratios`` [n_U] the undesirable ones (any lengths, either may
    be empty), z₀ = ``kl`` the reference point (:func:`kto_reference_point`). TRL's ``KTOTrainer``
    with ``loss_type="kto"``; its batch loss is the mean of the returned [n_D + n_U] losses.
    """
    chosen, rejected = _unpaired(chosen_logratios, rejected_logratios)
    beta = v.positive(beta, "beta")
    z0 = v.finite(kl, "kl")
    lam_d = v.in_range(desirable_weight, "desirable_weight", 0.0, math.inf, high_open=True)
    lam_u = v.in_range(undesirable_weight, "undesirable_weight", 0.0, math.inf, high_open=True)
    return torch.cat(
        [
            lam_d * torch.sigmoid(-beta * (chosen - z0)),  # 1 − σ(x) = σ(−x), no cancellation
            lam_u * torch.sigmoid(-beta * (z0 - rejected)),
        ]
    )


def apo_zero_unpaired(
    chosen_logratios: TensorLike,
    rejected_logratios: TensorLike,
    beta: float | Tensor,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> Tensor:
    """ℓ = λ_D (1 − σ(βq)) for a desirable y, λ_U σ(βq) for an undesirable one.

    APO-zero on unpaired data (D'Oosterlinck et al. 2024, eq. (7) split per completion); TRL's
    ``KTOTrainer`` with ``loss_type="apo_zero_unpaired"``. Shapes as in :func:`kto`.
    """
    chosen, rejected = _unpaired(chosen_logratios, rejected_logratios)
    beta = v.positive(beta, "beta")
    lam_d = v.in_range(desirable_weight, "desirable_weight", 0.0, math.inf, high_open=True)
    lam_u = v.in_range(undesirable_weight, "undesirable_weight", 0.0, math.inf, high_open=True)
    return torch.cat(
        [lam_d * torch.sigmoid(-beta * chosen), lam_u * torch.sigmoid(beta * rejected)]
    )


def _alpha_rewards(chosen, rejected, alpha: float) -> Tensor:
    if alpha == 0.0:
        return chosen - rejected
    # AlphaPO: r = (1 − π^{−α})/α = −expm1(−α log π)/α
    return (-torch.expm1(-alpha * chosen) + torch.expm1(-alpha * rejected)) / alpha


def cpo(
    chosen_logps: TensorLike,
    rejected_logps: TensorLike,
    beta: float | Tensor,
    label_smoothing: float = 0.0,
    alpha: float = 0.0,
) -> Tensor:
    """ℓ = −(1 − ε) log σ(β(log π(y_w) − log π(y_l))) − ε log σ(−β(...)), no reference model.

    CPO's preference term (Xu et al. 2024, *Contrastive Preference Optimization*, eq. (3)); the
    full CPO loss adds ``cpo_alpha`` times the NLL of the chosen tokens (:func:`sft`). With
    ``alpha`` ≠ 0 the log-probs are replaced by AlphaPO's rewards (1 − π^{−α})/α (Gupta et al.
    2025, AlphaPO). TRL's ``CPOTrainer.cpo_loss`` with ``loss_type="sigmoid"``; TRL's CPO ``hinge``
    and ``ipo`` are :func:`~toybandit.losses.hinge` and :func:`~toybandit.losses.ipo` on these
    log-probs (ipo on per-token averages).

    Args:
        chosen_logps: log π(y), summed over tokens (averaged for SimPO/IPO).
        rejected_logps: as ``chosen_logps``, for the rejected response.
    """
    chosen, rejected = v.logratio_pair(chosen_logps, rejected_logps)
    a = v.in_range(alpha, "alpha", -math.inf, math.inf, high_open=True)
    return _bce(
        v.positive(beta, "beta") * _alpha_rewards(chosen, rejected, a), _smoothing(label_smoothing)
    )


def simpo(
    chosen_logps: TensorLike,
    rejected_logps: TensorLike,
    beta: float | Tensor,
    simpo_gamma: float = 0.5,
    label_smoothing: float = 0.0,
    alpha: float = 0.0,
) -> Tensor:
    """ℓ = −(1 − ε) log σ(β(log π̄(y_w) − log π̄(y_l)) − γ) − ε log σ(−(...)), no reference model.

    SimPO (Meng et al. 2024, eq. (6)): log π̄(y) = (1/|y|) log π(y), the per-token average, and a
    target margin γ = ``simpo_gamma``. TRL's ``CPOTrainer`` with ``loss_type="simpo"`` (and
    ``cpo_alpha=0`` for pure SimPO), which passes the per-token averages; ``alpha`` as in :func:`cpo`.

    Args:
        chosen_logps: per-token average log π(y).
        rejected_logps: as ``chosen_logps``, for the rejected response.
    """
    chosen, rejected = v.logratio_pair(chosen_logps, rejected_logps)
    beta = v.positive(beta, "beta")
    gamma = v.in_range(simpo_gamma, "simpo_gamma", -math.inf, math.inf, high_open=True)
    a = v.in_range(alpha, "alpha", -math.inf, math.inf, high_open=True)
    return _bce(
        beta * (_alpha_rewards(chosen, rejected, a) - gamma / beta), _smoothing(label_smoothing)
    )


def _log1mexp(x: Tensor) -> Tensor:
    """log(1 − e^x) for x ≤ 0 (Mächler 2012: two branches at −log 2)."""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo(chosen_logps: TensorLike, rejected_logps: TensorLike, beta: float | Tensor) -> Tensor:
    """ℓ = −β log σ(log odds(y_w) − log odds(y_l)), odds(y) = π̄(y)/(1 − π̄(y)), no reference model.

    ORPO's odds-ratio term (Hong et al. 2024, eqs. (4), (7)), weighted by λ = β; the full ORPO loss
    adds the NLL of the chosen sequence. TRL's ``ORPOTrainer``: its ``odds_ratio_loss`` returns
    β log σ(·), which the trainer subtracts, and it passes per-token average log-probs.

    log π̄ = 0 (π̄ rounds to 1, as log-softmax returns for a response with 1 − π < 1e-16) has
    infinite odds: the loss is 0 for such a chosen response and +inf for such a rejected one; a
    pair of identical inputs has log odds ratio 0.

    Args:
        chosen_logps: log π̄(y) ≤ 0, per-token average log-probs.
        rejected_logps: as ``chosen_logps``, for the rejected response.
    """
    chosen, rejected = v.logratio_pair(chosen_logps, rejected_logps)
    beta = v.positive(beta, "beta")
    if (chosen > 0).any() or (rejected > 0).any():
        raise ValueError("orpo needs log-probabilities ≤ 0, got a positive one")
    log_odds = (chosen - rejected) - (_log1mexp(chosen) - _log1mexp(rejected))
    return -beta * F.logsigmoid(torch.where(chosen == rejected, 0.0, log_odds))


class PairLoss(NamedTuple):
    """A TRL ``loss_type`` as one per-pair callable, ready for :func:`toybandit.minimise_loss`:
    ``fn(chosen, rejected)``, or ``fn(chosen, rejected, chosen_lengths, rejected_lengths)`` when
    ``length_normalised``; its inputs are log-ratios (``on="logratios"``) or log π (``"logps"``)."""

    fn: Callable[..., Tensor]
    on: str
    length_normalised: bool


_BATCH_LEVEL = ("aot", "aot_unpaired")


def trl_pair_loss(
    loss_type: str,
    beta: float,
    *,
    label_smoothing: float = 0.0,
    f_divergence_type: str = "reverse_kl",
    f_alpha_divergence_coef: float = 0.5,
    discopop_tau: float = 0.05,
) -> PairLoss:
    """TRL's ``DPOConfig(loss_type=..., beta=..., ...)`` as a per-pair loss of this package.

    Length-normalised types (``ipo``, ``sigmoid_norm``) take the completion lengths, as TRL
    does; ``sft`` is −log π(y_w) per pair (TRL's token mean, for one-token responses or a batch
    of equal lengths); f-divergence scores apply to the types TRL allows them for. ``aot`` and
    ``aot_unpaired`` sort over a batch, so they have no per-pair form (ValueError).
    """
    from . import losses as L

    if loss_type in _BATCH_LEVEL:
        raise ValueError(
            f"loss_type {loss_type!r} sorts over the batch: it has no per-pair form "
            "(use losses.aot / losses.aot_unpaired on a batch)"
        )
    f_types = {"sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust", "discopop", "sft"}
    if f_divergence_type != "reverse_kl" and loss_type not in f_types:
        raise ValueError(
            f"f_divergence_type {f_divergence_type!r} is defined for {sorted(f_types)} only, "
            f"not for {loss_type!r} (TRL refuses it too)"
        )
    L.f_divergence_scores(torch.zeros(1), f_divergence_type, f_alpha_divergence_coef)  # checks

    def s(q: Tensor) -> Tensor:
        return L.f_divergence_scores(q, f_divergence_type, f_alpha_divergence_coef)

    eps = label_smoothing
    simple = {
        "sigmoid": lambda c, r: L.dpo(s(c), s(r), beta),
        "hinge": lambda c, r: L.hinge(s(c), s(r), beta),
        "exo_pair": lambda c, r: L.exo_pair(s(c), s(r), beta, label_smoothing=eps),
        "robust": lambda c, r: L.robust(s(c), s(r), beta, label_smoothing=eps),
        "discopop": lambda c, r: L.discopop(s(c), s(r), beta, discopop_tau=discopop_tau),
        "nca_pair": lambda c, r: L.nca_pair(c, r, beta),
        "bco_pair": lambda c, r: L.bco_pair(c, r, beta),
        "sppo_hard": lambda c, r: L.sppo_hard(c, r, beta),
        "apo_zero": lambda c, r: L.apo_zero(c, r, beta),
        "apo_down": lambda c, r: L.apo_down(c, r, beta),
    }
    if loss_type in simple:
        return PairLoss(simple[loss_type], "logratios", False)
    if loss_type == "ipo":
        return PairLoss(lambda c, r, nc, nr: L.ipo(s(c) / nc, s(r) / nr, beta), "logratios", True)
    if loss_type == "sigmoid_norm":
        return PairLoss(
            lambda c, r, nc, nr: sigmoid_norm(s(c), s(r), nc, nr, beta), "logratios", True
        )
    if loss_type == "sft":
        return PairLoss(lambda c, r: -c + 0 * r, "logps", False)
    raise ValueError(f"loss_type must be one of TRL 1.16's DPO loss types, got {loss_type!r}")
