"""Reference solutions of the course's exercises, kept apart from the notebooks.

Each function is written from its equation alone (no call into the library it is checked
against), as a learner would. ``check(solutions.gibbs_policy, "kl_bandit.gibbs")`` passes for every
exercise (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def gibbs_policy(reward: Tensor, ref: Tensor, beta: float) -> Tensor:
    """π* ∝ π_ref exp(r/β) (Nguyen 2025, eq. (1)'s maximiser), normalised in log space."""
    return torch.softmax(reward / beta + ref.log(), -1)


def regularized_value(policy: Tensor, reward: Tensor, ref: Tensor, beta: float) -> Tensor:
    """J(π) = E_π[r] − β KL(π‖π_ref) (Nguyen 2025, eq. (1))."""
    return (policy * reward).sum(-1) - beta * (policy * (policy.log() - ref.log())).sum(-1)


def bt_matrix(reward: Tensor) -> Tensor:
    """P[i, j] = σ(r_i − r_j) (Bradley–Terry)."""
    return torch.sigmoid(reward[:, None] - reward[None, :])


def reward_model_loss(reward: Tensor, chosen: Tensor, rejected: Tensor) -> Tensor:
    """−mean log σ(r(y_w) − r(y_l)) (Nguyen 2025, eq. (3))."""
    return -F.logsigmoid(reward[chosen] - reward[rejected]).mean()


def implied_reward(policy: Tensor, ref: Tensor, beta: float) -> Tensor:
    """β log π/π_ref (Nguyen 2025, eq. (5) without the β log Z that cancels)."""
    return beta * (policy.log() - ref.log())


def dpo_loss(policy: Tensor, ref: Tensor, beta: float, chosen: Tensor, rejected: Tensor) -> Tensor:
    """−mean log σ(β(q_w − q_l)) (Rafailov et al. 2024, eq. (4))."""
    q = policy.log() - ref.log()
    return -F.logsigmoid(beta * (q[chosen] - q[rejected])).mean()


def psi_scores(pref: Tensor, mu: Tensor) -> Tensor:
    """s†(y) = Σ_y' μ(y') P(y ≻ y') (Nguyen 2025, eq. (7))."""
    return pref @ mu


def label_loss(h: Tensor, c: Tensor) -> Tensor:
    """(h − (2 − c))², eq. (11) of Nguyen 2025 with the corrected target."""
    return (h - (2 - c)) ** 2


def ipo_optimum(pref: Tensor, mu: Tensor, ref: Tensor, beta: float) -> Tensor:
    """π* ∝ π_ref exp(s†/β)."""
    return torch.softmax(pref @ mu / beta + ref.log(), -1)


def soft_value(q: Tensor, beta: float) -> Tensor:
    """V = β logsumexp(Q/β) over actions (Rafailov et al. 2024, eq. (6))."""
    return beta * torch.logsumexp(q / beta, -1)


def soft_q(reward: Tensor, log_ref: Tensor, v_next: Tensor, beta: float) -> Tensor:
    """Q = r + β log π_ref + V(next) (Rafailov et al. 2024, eq. (7))."""
    return reward + beta * log_ref + v_next


def log_policy(q: Tensor, v_state: Tensor, beta: float) -> Tensor:
    """log π* = (Q − V)/β (Rafailov et al. 2024, eq. (5))."""
    return (q - v_state) / beta


def reward_from_q(q: Tensor, log_ref: Tensor, v_next: Tensor, beta: float) -> Tensor:
    """r = Q − β log π_ref − V(next) (Rafailov et al. 2024, Lemma 1)."""
    return q - beta * log_ref - v_next


def shape(reward: Tensor, phi_state: Tensor, phi_next: Tensor) -> Tensor:
    """r' = r + Φ(s') − Φ(s) (Rafailov et al. 2024, Definition 1)."""
    return reward + phi_next - phi_state


def token_rewards(log_policy: Tensor, log_ref: Tensor, beta: float) -> Tensor:
    """β log π/π_ref per token (Rafailov et al. 2024, eq. (11))."""
    return beta * (log_policy - log_ref)


def search_score(
    prefix_return: Tensor, prefix_log_ref: Tensor, v_frontier: Tensor, beta: float
) -> Tensor:
    """Σ (r + β log π_ref) + V*(frontier) (Rafailov et al. 2024, eq. (12))."""
    return prefix_return + beta * prefix_log_ref + v_frontier


def noisy_preference(pref: Tensor, eps: float) -> Tensor:
    """P_ε = (1 − ε)P + εPᵀ: a label kept with probability 1 − ε, reversed with ε."""
    return (1 - eps) * pref + eps * pref.mT


def robust_loss(
    chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float, eps: float
) -> Tensor:
    """ℓ̃ = [(1 − ε)ℓ(h) − εℓ(−h)]/(1 − 2ε), ℓ(h) = −log σ(βh) (rDPO, Chowdhury et al. 2024)."""
    h = beta * (chosen_logratios - rejected_logratios)
    return ((1 - eps) * -F.logsigmoid(h) + eps * F.logsigmoid(-h)) / (1 - 2 * eps)


def length_normalised_optimum(reward: Tensor, ref: Tensor, lengths: Tensor, beta: float) -> Tensor:
    """π̂ = π_ref e^{|y|(r/β + c)}, c the root of Σ π̂ = 1 (increasing in c, bracketed by
    c = −max r/β, where every term is ≤ π_ref, and c = −min r/β, where every term is ≥ π_ref)."""
    from scipy.optimize import brentq

    score = reward / beta

    def excess(c: float) -> float:
        return (ref * torch.exp(lengths * (score + c))).sum().item() - 1.0

    c = brentq(excess, -score.max().item(), -score.min().item(), xtol=1e-15)
    return ref * torch.exp(lengths * (score + c))
