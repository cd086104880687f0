"""The KL-regularised optimum of a one-step (bandit) alignment problem."""

from __future__ import annotations

import torch

from . import validation as v
from .validation import TensorLike

Tensor = torch.Tensor


def log_optimal_policy(reward: TensorLike, ref: TensorLike, beta: float | Tensor) -> Tensor:
    """log π*(y|x) = log π_ref(y|x) + r(x, y)/β − log Z(x).

    The maximiser of the KL-regularised objective of Nguyen 2025, eq. (1) (the Gibbs policy that
    Nguyen 2025 derives in sec. 2.2; Rafailov et al. 2023, eq. (4)). Responses with π_ref = 0 get −inf.

    Args:
        reward: r(x, y), finite, shape [..., Y].
        ref: π_ref(y|x), probabilities over the last dim, broadcastable against ``reward``.
        beta: β > 0, a number or a tensor over the prompt dims.

    Returns:
        log π*, shape of the broadcast of ``reward`` and ``ref``.

    Raises:
        ValueError: non-finite reward, invalid ``ref``, β ≤ 0, or shapes that do not broadcast.
    """
    reward, ref, beta = v.gibbs_inputs(reward, ref, beta)
    return log_gibbs(reward, ref, beta)


def log_gibbs(score: Tensor, ref: Tensor, beta: float | Tensor) -> Tensor:
    """log(π_ref e^{s/β} / Z) = log_softmax(log π_ref + s/β) over the last dim, on inputs already
    checked (:func:`toybandit.validation.gibbs_inputs`); −inf where π_ref = 0 or s = −inf."""
    return torch.log_softmax(ref.log() + score / beta, dim=-1)


def optimal_policy(reward: TensorLike, ref: TensorLike, beta: float | Tensor) -> Tensor:
    """π*(y|x) = π_ref(y|x) exp(r(x, y)/β) / Z(x), the maximiser of Nguyen 2025, eq. (1).

    Computed in log space (see :func:`log_optimal_policy`), so |r|/β up to 1e4 and π_ref down to
    1e-300 are exact to float precision.

    >>> optimal_policy(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.5]), beta=1.0)  # (1, e)/(1 + e)
    tensor([0.2689, 0.7311])
    """
    return log_optimal_policy(reward, ref, beta).exp()


def log_partition(reward: TensorLike, ref: TensorLike, beta: float | Tensor) -> Tensor:
    """β log Z(x) = β log Σ_y π_ref(y|x) exp(r(x, y)/β).

    The normaliser of π* in Nguyen 2025, sec. 2.2, and the optimal value of eq. (1):
    max_π E_π[r] − β KL(π‖π_ref) = β log Z(x) (it is V*(x) of Rafailov et al. 2024, eq. (7)).

    Returns:
        One value per prompt, shape [...] (the response dim is reduced).
    """
    reward, ref, beta = v.gibbs_inputs(reward, ref, beta)
    out = torch.logsumexp(ref.log() + reward / beta, dim=-1)
    return out * (beta.squeeze(-1) if isinstance(beta, Tensor) else beta)


def kl_divergence(policy: TensorLike, ref: TensorLike) -> Tensor:
    """KL(π‖π_ref) = Σ_y π(y) log(π(y)/π_ref(y)), with 0 log 0 = 0 and +inf where π > 0 = π_ref."""
    policy = v.probabilities(policy, "policy")
    ref = v.probabilities(ref, "ref")
    policy, ref = v.broadcast({"policy": policy, "ref": ref})
    return (torch.xlogy(policy, policy) - torch.xlogy(policy, ref)).sum(-1)


def regularized_value(
    policy: TensorLike, reward: TensorLike, ref: TensorLike, beta: float | Tensor
) -> Tensor:
    """J(π) = E_{y∼π}[r(x, y)] − β KL(π(·|x)‖π_ref(·|x)), the objective of Nguyen 2025, eq. (1).

    Evaluated exactly for any tabular policy; its maximum over π is :func:`log_partition`, reached at
    :func:`optimal_policy`. A policy putting mass where π_ref = 0 has value −inf.

    Returns:
        One value per prompt, shape [...].
    """
    reward, ref, beta = v.gibbs_inputs(reward, ref, beta)
    policy = v.probabilities(policy, "policy")
    policy, reward, ref = v.broadcast({"policy": policy, "reward": reward, "ref": ref})
    if isinstance(beta, Tensor):
        beta = beta.squeeze(-1)
    return (policy * reward).sum(-1) - beta * kl_divergence(policy, ref)
