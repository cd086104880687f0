"""Token-level DPO/IPO: trajectory preference data on a tree and a tabular tree policy fitted to it."""

from __future__ import annotations

import math
from typing import NamedTuple, cast

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from toybandit import bradley_terry, fit_policy, losses, population_pairs, sample_preferences
from toybandit import validation as v
from toybandit.data import PreferencePairs
from toybandit.validation import TensorLike

from .segments import group_logsumexp, segment_logsumexp
from .sequences import as_bandit, path_sum, token_policy
from .tree import TokenTree
from .validation import edge_values, leaf_positions

Tensor = torch.Tensor


def trajectory_preference(tree: TokenTree, reward: TensorLike) -> Tensor:
    """P(τ_i ≻ τ_j) = σ(Σ_t r(s^i_t, a^i_t) − Σ_t r(s^j_t, a^j_t)) between complete sequences.

    The token-level Bradley–Terry model, Rafailov et al. 2024, eq. (1); with the implicit reward
    β log π/π_ref in place of r it is the policy-induced model of eq. (8).

    Returns:
        [..., L, L] over leaves in node order.
    """
    return bradley_terry(path_sum(tree, edge_values(tree, reward, "reward")))


def sample_trajectory_pairs(
    tree: TokenTree,
    reward: TensorLike,
    n: int,
    *,
    generator: torch.Generator,
    behaviour: TensorLike | None = None,
) -> PreferencePairs:
    """n labelled pairs of complete sequences, both from the root, labelled by eq. (1).

    τ₁, τ₂ ∼ μ i.i.d., τ₁ ≻ τ₂ with probability σ(R(τ₁) − R(τ₂)), R the summed reward (Rafailov et
    al. 2024, sec. 3.1: pairs start at the same state and end at a terminal one).

    Args:
        reward: r per edge [N].
        n: number of pairs.
        generator: a seeded ``torch.Generator``.
        behaviour: μ over leaves [L] (probabilities); the sequence law of π_ref by default.

    Returns:
        :class:`toybandit.PreferencePairs` whose indices are leaf positions (into ``tree.leaves``).
    """
    pref, mu = _world(tree, reward, behaviour)
    return sample_preferences(pref, mu, n, generator)


def population_trajectory_pairs(
    tree: TokenTree, reward: TensorLike, *, behaviour: TensorLike | None = None
) -> PreferencePairs:
    """Every ordered pair of complete sequences with its population weight 2 μ_i μ_j P_ij.

    A weighted pairwise loss over these pairs is the exact population objective; leaves with
    μ = 0 never appear (partial coverage).
    """
    pref, mu = _world(tree, reward, behaviour)
    return population_pairs(pref, mu)


def fit_tree_policy(
    tree: TokenTree,
    chosen: TensorLike,
    rejected: TensorLike,
    loss: str = "dpo",
    *,
    beta: float | None = None,
    tau: float | None = None,
    weights: TensorLike | None = None,
    method: str = "newton",
    steps: int = 200,
    tolerance: float = 1e-12,
) -> Tensor:
    """A tabular tree policy (one free logit per edge) fitted to trajectory pairs.

    Minimises the weighted mean over pairs of the token-level DPO loss, Rafailov et al. 2024,
    eq. (9), −log σ(β Σ_t log π/π_ref(τ_w) − β Σ_t log π/π_ref(τ_l)), or of IPO,
    (h − 1/(2τ))² with h the same difference of sequence log-ratios (Nguyen 2025, eq. (12)), both
    from :mod:`toybandit.losses`, over π(a|s) = softmax of the edge logits among siblings, started
    at π_ref. Edges with π_ref = 0 stay impossible.

    Two methods reach the minimum:

    - ``"newton"``: the loss depends on π only through the sequence law, and edge logits reach
      every law with full support, so the minimum is the bandit fit over complete sequences
      (:func:`toybandit.fit_policy`, damped Newton, exact to float64) turned into edge
      probabilities by the chain rule (:func:`tokenmdp.token_policy`). The loss fixes the sequence
      log-ratios only up to one constant per connected component of the comparison graph; the fit
      takes the minimiser in which every component keeps its π_ref mass, so a sequence in no pair
      keeps its π_ref probability.
    - ``"lbfgs"``: gradient training of the edge logits themselves, as a language model is
      trained (L-BFGS with a strong-Wolfe line search, float64, ``steps`` iterations). First
      order: directions whose pairs carry weight ~1e-12 are left where they started.

    Args:
        chosen: leaf positions (indices into ``tree.leaves``) of the chosen sequences, int [P].
        rejected: leaf positions of the rejected sequences, int [P].
        loss: "dpo" or "ipo".
        beta: β > 0 for DPO; tau: τ > 0 for IPO.
        weights: non-negative weight per pair (e.g. population weights); 1 each by default.
        method: "newton" or "lbfgs".
        steps: iterations of either method.
        tolerance: stop when the step (Newton) or the largest gradient entry (L-BFGS) falls below.

    Returns:
        log π per edge, shape [N] (0 at the root).
    """
    inputs = _checked_tree_inputs(
        tree, chosen, rejected, loss, beta, tau, weights, method, steps, tolerance
    )
    if inputs.method == "newton":
        return _fit_tree_newton(tree, inputs)
    return _fit_tree_lbfgs(tree, inputs)


class _TreeInputs(NamedTuple):
    """:func:`fit_tree_policy`'s arguments once checked."""

    chosen: Tensor  # leaf positions, int [P]
    rejected: Tensor  # leaf positions, int [P]
    weights: Tensor  # [P], as given (not normalised)
    loss: str  # "dpo" or "ipo"
    strength: float | Tensor  # β for DPO, τ for IPO
    method: str  # "newton" or "lbfgs"
    steps: int
    tolerance: float


def _checked_tree_inputs(
    tree, chosen, rejected, loss, beta, tau, weights, method, steps, tolerance
) -> _TreeInputs:
    """Every check of :func:`fit_tree_policy`, in the order its errors are raised."""
    if not isinstance(tree, TokenTree):
        raise ValueError(f"tree must be a TokenTree, got {type(tree)}")
    n_leaves = int(tree.terminal.sum())
    steps = v.integer(steps, "steps", minimum=1)
    tolerance = v.in_range(tolerance, "tolerance", 0.0, math.inf, high_open=True)
    chosen = leaf_positions(chosen, "chosen", n_leaves)
    rejected = leaf_positions(rejected, "rejected", n_leaves)
    if chosen.shape != rejected.shape:
        raise ValueError(
            f"chosen and rejected must have the same shape: {chosen.shape}, {rejected.shape}"
        )
    if chosen.numel() == 0:
        raise ValueError("chosen and rejected must hold at least one pair")
    if loss == "dpo":
        strength = v.positive(beta, "beta")
    elif loss == "ipo":
        strength = v.positive(tau, "tau")
    else:
        raise ValueError(f'loss must be "dpo" or "ipo", got {loss!r}')
    weights = v.weights(weights, chosen.shape[0])
    if method not in ("newton", "lbfgs"):
        raise ValueError(f'method must be "newton" or "lbfgs", got {method!r}')
    return _TreeInputs(chosen, rejected, weights, loss, strength, method, steps, tolerance)


def _fit_tree_newton(tree: TokenTree, inputs: _TreeInputs) -> Tensor:
    """``method="newton"``: the bandit fit over complete sequences, turned into edge log-probs."""
    leaf_log_ref = path_sum(tree, tree.log_ref.to(torch.float64)).cpu()
    strength = cast(float, inputs.strength)  # checked; fit_policy checks it again
    law = fit_policy(
        inputs.chosen.cpu(),
        inputs.rejected.cpu(),
        leaf_log_ref.exp(),
        inputs.loss,
        weights=inputs.weights.cpu(),
        steps=inputs.steps,
        tolerance=inputs.tolerance,
        beta=strength if inputs.loss == "dpo" else None,
        tau=strength if inputs.loss == "ipo" else None,
    )
    log_law = _keep_component_mass(
        law.log(), leaf_log_ref, inputs.chosen, inputs.rejected, inputs.weights
    )
    return token_policy(tree, log_law.to(tree.device))


def _fit_tree_lbfgs(tree: TokenTree, inputs: _TreeInputs) -> Tensor:
    """``method="lbfgs"``: L-BFGS on the edge logits themselves, float64, ``inputs.steps``
    iterations, stopping when no gradient entry exceeds ``inputs.tolerance``."""
    device = tree.device
    weights = (inputs.weights / inputs.weights.sum()).to(torch.float64).to(device)
    chosen, rejected = inputs.chosen.to(device), inputs.rejected.to(device)
    pair_loss = losses.dpo if inputs.loss == "dpo" else losses.ipo

    log_ref = tree.log_ref.to(torch.float64)
    possible = torch.isfinite(log_ref)
    paths = tree.path_nodes()
    paths = torch.where(paths >= 0, paths, tree.n_nodes)  # padding reads a trailing 0
    parent = tree.parent.clamp(min=0)
    theta = torch.where(possible, log_ref, 0.0).clone().requires_grad_(True)

    internal = (~tree.terminal).nonzero().squeeze(-1)
    not_root = torch.arange(tree.n_nodes, device=device) > 0

    def log_policy(theta: Tensor) -> Tensor:
        """log-softmax of the edge logits over each state's (contiguous) children."""
        logits = torch.where(possible, theta, -math.inf)
        lse = segment_logsumexp(logits[1:], tree.n_children[internal])
        per_state = torch.zeros(tree.n_nodes, dtype=theta.dtype, device=device)
        per_state = per_state.index_copy(0, internal, lse)
        return torch.where(not_root, logits - per_state[parent], 0.0)

    def objective() -> Tensor:
        lp = log_policy(theta)
        edge = torch.where(possible, lp - torch.where(possible, log_ref, 0.0), 0.0)
        seq = torch.cat([edge, edge.new_zeros(1)])[paths].sum(-1)
        return (weights * pair_loss(seq[chosen], seq[rejected], inputs.strength)).sum()

    opt = torch.optim.LBFGS(
        [theta],
        lr=1.0,
        max_iter=inputs.steps,
        tolerance_grad=inputs.tolerance,
        tolerance_change=1e-16,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        value = objective()
        value.backward()
        return value

    opt.step(closure)
    with torch.no_grad():
        return log_policy(theta)


def _world(tree: TokenTree, reward, behaviour) -> tuple[Tensor, Tensor]:
    leaf_reward, leaf_ref = as_bandit(tree, reward)
    if leaf_reward.dim() != 1:
        raise ValueError(f"reward must be one value per node, shape [N], got {tuple(reward.shape)}")
    mu = leaf_ref if behaviour is None else v.probabilities(behaviour, "behaviour")
    if mu.shape != leaf_ref.shape:
        raise ValueError(
            f"behaviour must have one entry per leaf ({leaf_ref.numel()}), got {tuple(mu.shape)}"
        )
    return bradley_terry(leaf_reward), mu


def _keep_component_mass(log_law, leaf_log_ref, chosen, rejected, weights) -> Tensor:
    """Shift the log-law on each connected component of the comparison graph (pairs with positive
    weight) so that the component carries its π_ref mass; the law is a minimiser either way."""
    n = log_law.numel()
    used = (weights > 0).cpu().numpy()
    edges = (chosen.cpu().numpy()[used], rejected.cpu().numpy()[used])
    graph = coo_matrix((np.ones(int(used.sum())), edges), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    label = torch.as_tensor(label, dtype=torch.long)
    n_comp = int(label.max()) + 1
    fitted = group_logsumexp(log_law, label, n_comp)
    reference = group_logsumexp(leaf_log_ref, label, n_comp)
    shift = torch.where(torch.isfinite(reference), reference - fitted, 0.0)
    return log_law + shift[label]
