"""Preference models: Bradley–Terry, general (possibly intransitive) preference matrices, Ψ-scores."""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import validation as v
from .optimal import log_gibbs
from .validation import TensorLike

Tensor = torch.Tensor

PREFERENCE_KINDS = ("general", "bradley_terry", "cyclic", "deterministic")


def bradley_terry(reward: TensorLike) -> Tensor:
    """P[..., i, j] = σ(r_i − r_j), the Bradley–Terry model (Nguyen 2025, sec. 2.1).

    Args:
        reward: r(x, y), finite, shape [..., Y].

    Returns:
        The preference matrix, shape [..., Y, Y]; it satisfies Nguyen 2025 (8a–c).
    """
    reward = v.finite(reward, "reward")
    if reward.dim() == 0:
        raise ValueError("reward must have a response dim, got a scalar")
    return torch.sigmoid(reward.unsqueeze(-1) - reward.unsqueeze(-2))


def check_preference(pref: TensorLike, *, atol: float | None = None) -> Tensor:
    """Validate a preference matrix P[..., i, j] = P(y_i ≻ y_j) against Nguyen 2025 (8a–c).

    (8a) 0 ≤ P ≤ 1; (8b) P_ii = ½; (8c) P_ij + P_ji = 1 (to ``atol``, by default a few ulps of 1 in
    the tensor's dtype, since 1 − p is rounded).

    Returns:
        ``pref`` as a floating tensor, unchanged.

    Raises:
        ValueError: naming the violated condition and one offending entry.
    """
    pref = v.as_tensor(pref, "pref")
    if pref.dim() < 2 or pref.shape[-1] != pref.shape[-2] or pref.shape[-1] == 0:
        raise ValueError(f"pref must have shape [..., Y, Y] with Y ≥ 1, got {tuple(pref.shape)}")
    tol = v.pref_tol(pref.dtype) if atol is None else v.in_range(atol, "atol", 0.0, 1.0)

    def fail(cond: str, text: str, mask: Tensor):
        idx = tuple(int(i) for i in mask.nonzero()[0])
        raise ValueError(
            f"pref violates {cond} ({text}) at index {idx}: value {pref[idx].item()!r}"
        )

    bad = ~((pref >= 0) & (pref <= 1))  # also catches NaN
    if bad.any():
        fail("(8a)", "0 ≤ P ≤ 1", bad)
    diag = torch.diagonal(pref, dim1=-2, dim2=-1)
    bad = (diag - 0.5).abs() > tol
    if bad.any():
        idx = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"pref violates (8b) (P_ii = 1/2) at response {idx[-1]} of prompt {idx[:-1]}: "
            f"value {diag[idx].item()!r}"
        )
    bad = (pref + pref.transpose(-1, -2) - 1).abs() > tol
    if bad.any():
        fail("(8c)", "P_ij + P_ji = 1", bad)
    return pref


def random_preference(
    num_responses: int,
    *,
    generator: torch.Generator,
    kind: str = "general",
    batch_shape: tuple[int, ...] = (),
    scale: float = 3.0,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """A random preference matrix satisfying (8a–c) of Nguyen 2025, shape [*batch_shape, Y, Y].

    Kinds:
        ``"general"``: P_ij for i < j uniform on (0, 1), the rest from (8b–c); typically intransitive.
        ``"bradley_terry"``: σ(r_i − r_j) with r ∼ N(0, scale²).
        ``"cyclic"``: general, but with a preference cycle y₀ ≻ y₁ ≻ y₂ ≻ y₀ (each P > ½), which no
            reward can explain: Bradley–Terry needs r₀ > r₁ > r₂ > r₀. Needs Y ≥ 3.
        ``"deterministic"``: a random total order, P_ij ∈ {0, 1} off the diagonal (Azar et al. 2023,
            the case where DPO overfits).
    """
    if kind not in PREFERENCE_KINDS:
        raise ValueError(f"kind must be one of {PREFERENCE_KINDS}, got {kind!r}")
    n = v.integer(num_responses, "num_responses", minimum=1)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator)}")
    std = v.positive(scale, "scale")
    batch_shape = tuple(v.integer(b, "batch_shape", minimum=0) for b in batch_shape)
    if kind == "cyclic" and n < 3:
        raise ValueError(f"a cyclic preference needs num_responses ≥ 3, got {n}")
    shape = (*batch_shape, n, n)
    if kind == "bradley_terry":
        reward = std * torch.randn((*batch_shape, n), generator=generator, dtype=dtype)
        return bradley_terry(reward)
    if kind == "deterministic":
        rank = (
            torch.rand((*batch_shape, n), generator=generator, dtype=dtype).argsort(-1).argsort(-1)
        )
        pref = (rank.unsqueeze(-1) > rank.unsqueeze(-2)).to(dtype)
    else:
        pref = torch.rand(shape, generator=generator, dtype=dtype)
        if kind == "cyclic":
            # P_01, P_12 ∈ (½, 1) and P_02 ∈ (0, ½), so P_20 > ½ closes the cycle.
            pref[..., 0, 1] = 0.5 + 0.5 * pref[..., 0, 1]
            pref[..., 1, 2] = 0.5 + 0.5 * pref[..., 1, 2]
            pref[..., 0, 2] = 0.5 * pref[..., 0, 2]
    return from_upper_triangle(pref)


def from_upper_triangle(upper: Tensor) -> Tensor:
    """The preference matrix whose entries above the diagonal are those of ``upper``: P_ii = ½ (8b)
    and P_ji = 1 − P_ij (8c). Entries on and below the diagonal of ``upper`` are ignored.

    Raises:
        ValueError: ``upper`` is not [..., Y, Y], or an entry above the diagonal is not a
            probability (outside [0, 1], or NaN).
    """
    upper = v.as_tensor(upper, "upper")
    if upper.dim() < 2 or upper.shape[-1] != upper.shape[-2]:
        raise ValueError(f"upper must have shape [..., Y, Y], got {tuple(upper.shape)}")
    above = torch.ones(upper.shape[-2:], dtype=torch.bool, device=upper.device).triu(1)
    v.preference_entries(upper[..., above], "upper (above the diagonal)")
    upper = torch.triu(upper, diagonal=1)
    eye = torch.eye(upper.shape[-1], dtype=upper.dtype, device=upper.device)
    return upper + torch.tril(1 - upper.transpose(-1, -2), diagonal=-1) + 0.5 * eye


# Ψ maps, non-decreasing from [0, 1] to the extended reals (Azar et al. 2023, sec. 4).
def _identity(p: Tensor) -> Tensor:
    return p


def _logit(p: Tensor) -> Tensor:
    # log p − log(1 − p): exact ±inf at 0 and 1, no clipping.
    return torch.log(p) - torch.log1p(-p)


PSI = {"identity": _identity, "logit": _logit}


def psi_scores(
    pref: TensorLike, mu: TensorLike, psi: str | Callable[[Tensor], Tensor] = "identity"
) -> Tensor:
    """s_Ψ(y) = E_{y'∼μ}[Ψ(P(y ≻ y'))] = Σ_{y'} μ(y') Ψ(P[..., y, y']).

    The Ψ-preference of Azar et al. 2023, eq. (6); with Ψ = identity it is the IPO score s†(x, y) of
    Nguyen 2025, eq. (7). Responses y' with μ(y') = 0 contribute nothing (not 0·∞), so a deterministic
    preference against an unsampled response is harmless.

    Args:
        pref: P, shape [..., Y, Y], satisfying (8a–c).
        mu: μ(y'|x), probabilities, shape [..., Y] broadcastable against ``pref``'s prompt dims.
        psi: ``"identity"`` (IPO), ``"logit"`` (RLHF/DPO under Bradley–Terry) or a callable applied
            elementwise to P, non-decreasing.

    Returns:
        The scores, shape [..., Y]; may be ±inf for ``"logit"`` with P ∈ {0, 1}.

    Raises:
        ValueError: invalid ``pref`` or ``mu``; a callable Ψ that decreases somewhere on a grid of
            1001 points of [0, 1], returns NaN there, or is not elementwise.
    """
    pref = check_preference(pref)
    mu = v.probabilities(mu, "mu")
    if mu.shape[-1] != pref.shape[-1]:
        raise ValueError(
            f"mu and pref must have the same number of responses: shapes {tuple(mu.shape)} and "
            f"{tuple(pref.shape)}"
        )
    if isinstance(psi, str):
        if psi not in PSI:
            raise ValueError(f"psi must be one of {tuple(PSI)} or a callable, got {psi!r}")
        psi_fn = PSI[psi]
    elif callable(psi):
        v.non_decreasing(psi, "psi")
        psi_fn = psi
    else:
        raise ValueError(f"psi must be one of {tuple(PSI)} or a callable, got {psi!r}")
    values = psi_fn(pref)
    if not isinstance(values, Tensor) or values.shape != pref.shape:
        raise ValueError("psi must map the preference tensor elementwise to a tensor of its shape")
    if values.isnan().any():
        raise ValueError("psi returned NaN on a valid preference matrix")
    weights = mu.unsqueeze(-2).to(values.dtype)
    scores = torch.where(weights > 0, values * weights, 0.0).sum(-1)
    if scores.isnan().any():
        raise ValueError(
            "the Ψ-score is undefined (+inf − inf): Ψ is unbounded and a response both surely beats "
            "and surely loses to responses that μ samples"
        )
    return scores


def psi_optimal_policy(
    pref: TensorLike,
    mu: TensorLike,
    ref: TensorLike,
    tau: float | Tensor,
    psi: str | Callable[[Tensor], Tensor] = "identity",
) -> Tensor:
    """π*(y) ∝ π_ref(y) exp(τ⁻¹ E_{y'∼μ}[Ψ(P(y ≻ y'))]), the ΨPO optimum.

    Maximiser of E_{y∼π, y'∼μ}[Ψ(P(y ≻ y'))] − τ KL(π‖π_ref) (Azar et al. 2023, eqs. (6)–(7)):
    the Gibbs policy of Nguyen 2025, eq. (1) with the score :func:`psi_scores` and β = τ. With
    Ψ = identity this is the IPO optimum; with Ψ = logit and a Bradley–Terry ``pref`` it is the
    RLHF/DPO optimum for every μ (the E_μ[r] term is a per-prompt constant).

    Raises:
        ValueError: for invalid inputs, and when a score is +inf (Ψ = logit with P = 1 against a
            response μ samples): the optimum does not exist, the policy runs to the boundary.
    """
    scores = psi_scores(pref, mu, psi)
    if torch.isposinf(scores).any():
        raise ValueError(
            "the Ψ-score is +inf (Ψ unbounded with P(y ≻ y') = 1 for some y' with μ(y') > 0): "
            "the ΨPO optimum does not exist (Azar et al. 2023, sec. 4.2)"
        )
    # A −inf score (y always loses to a sampled y') is legitimate: probability 0.
    neg = torch.isneginf(scores)
    _, ref, tau = v.gibbs_inputs(
        torch.where(neg, 0.0, scores), ref, tau, beta_name="tau", reward_name="scores"
    )
    log_pi = log_gibbs(scores, ref, tau)
    if log_pi.isnan().any():
        raise ValueError(
            "every response with π_ref > 0 has Ψ-score −inf: the ΨPO optimum is undefined"
        )
    return log_pi.exp()


def maximal_lottery(pref: TensorLike) -> Tensor:
    """The maximal lottery p of one preference matrix: Σ_i p_i (2P_ij − 1) ≥ 0 for every j.

    The von Neumann winner of the symmetric zero-sum game with payoff 2P − 1 (Fishburn 1984): a
    lottery no response beats in expectation. It exists for every P satisfying Nguyen 2025 (8a–c)
    and is the target of Nash-style preference optimisation when P is intransitive; for a
    Bradley–Terry P it is the point mass on the best response. Computed as the linear programme
    max v s.t. Σ_i p_i (2P_ij − 1) ≥ v ∀j, Σ p = 1, p ≥ 0 (scipy's HiGHS); the game's value v is
    0 by symmetry, which the LP's value must reproduce.

    Args:
        pref: P, shape [Y, Y] (one prompt).

    Returns:
        p, shape [Y], float64; unique for generic P (ties may have other maximal lotteries).

    Raises:
        ValueError: ``pref`` not [Y, Y] or breaking (8a–c).
    """
    from scipy.optimize import linprog

    pref = check_preference(pref)
    if pref.dim() != 2:
        raise ValueError(f"pref must be one matrix [Y, Y], got shape {tuple(pref.shape)}")
    a = 2 * pref.detach().to(torch.float64).cpu().numpy() - 1
    y = a.shape[0]
    # variables (p, v): minimise −v s.t. v − Σ_i p_i a_ij ≤ 0, Σ p = 1, p ≥ 0
    res = linprog(
        [0.0] * y + [-1.0],
        A_ub=[[-a[i, j] for i in range(y)] + [1.0] for j in range(y)],
        b_ub=[0.0] * y,
        A_eq=[[1.0] * y + [0.0]],
        b_eq=[1.0],
        bounds=[(0, None)] * y + [(None, None)],
        method="highs",
    )
    if res.status != 0 or abs(res.x[-1]) > 1e-9:
        raise RuntimeError(f"maximal lottery LP failed (value {res.x[-1]}): {res.message}")
    p = torch.as_tensor(res.x[:y], dtype=torch.float64).clamp_min(0)
    return p / p.sum()
