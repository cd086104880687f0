"""The exact minimiser of any sequence-level preference loss on a token tree.

A tabular tree policy (a free logit per edge) reaches every law over complete sequences with the
support of π_ref, and a sequence-level loss sees π only through that law: its sequence
log-ratios q(y) = Σ_t log π(a_t|s_t)/π_ref(a_t|s_t) (Rafailov et al. 2024, eqs. (8)–(9)) or
their per-token averages q(y)/|y|. So the minimum over tree policies is the minimum over leaf
laws, :func:`toybandit.minimise_loss` on the tree seen as a bandit (:func:`as_bandit`), turned
into edge probabilities by the chain rule (:func:`token_policy`). Length-normalised losses
(TRL's ``ipo`` and ``sigmoid_norm``) get each sequence's token count |y| = depth of its leaf;
that is exactly where they differ from the summed losses of the papers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from toybandit import minimise_loss
from toybandit import validation as v
from toybandit.data import PreferencePairs
from toybandit.minimise import LossMinimum

from .sequences import path_sum, token_policy
from .tree import TokenTree
from .validation import leaf_positions

Tensor = torch.Tensor

__all__ = ["TreeLossMinimum", "minimise_tree_loss"]


class TreeLossMinimum(NamedTuple):
    """log π per edge [N] (0 at the root) of the minimiser, and the bandit result over leaves
    (:class:`toybandit.LossMinimum`: its policy is the sequence law, its verdict applies here)."""

    log_policy: Tensor
    leaves: LossMinimum


def minimise_tree_loss(
    tree: TokenTree,
    loss: Callable[..., Tensor],
    pairs: PreferencePairs,
    *,
    on: str = "logratios",
    length_normalised: bool = False,
    ld_alpha: float | None = None,
    steps: int = 500,
    tolerance: float = 1e-12,
) -> TreeLossMinimum:
    """Minimise the weighted mean of a per-pair loss of sequence log-ratios over tree policies.

    Args:
        tree: the token tree (its ``log_ref`` is π_ref).
        loss: as in :func:`toybandit.minimise_loss`, on sequence log-ratios (or sequence log π
            with ``on="logps"``).
        pairs: :class:`toybandit.PreferencePairs` whose indices are leaf positions (into
            ``tree.leaves``), e.g. :func:`tokenmdp.population_trajectory_pairs`; ``prompts`` None.
        length_normalised: call ``loss(chosen, rejected, chosen_lengths, rejected_lengths)`` with
            each sequence's number of tokens (for ``losses.sigmoid_norm``, or TRL's ``ipo`` as
            ``lambda c, r, nc, nr: losses.ipo(c / nc, r / nr, tau)``).
        ld_alpha: LD-DPO's α ∈ [0, 1] (TRL's ``ld_alpha``, :func:`toybandit.losses.ld_sequence_logps`):
            each pair's log-ratios count the tokens beyond the shorter sequence's length with
            weight α, q_LD(y) = q_{≤ℓ}(y) + α (q(y) − q_{≤ℓ}(y)), ℓ = min(|y_w|, |y_l|), where
            q_{≤ℓ}(y) = log M_π(y_{≤ℓ})/M_ref(y_{≤ℓ}) is the prefix's log-ratio (M the law's
            mass below the prefix). These depend on the pair, not on the sequence alone.
        on: as in :func:`toybandit.minimise_loss`.
        steps: as in :func:`toybandit.minimise_loss`.
        tolerance: as in :func:`toybandit.minimise_loss`.

    Returns:
        :class:`TreeLossMinimum`. Where no finite minimiser exists, ``log_policy`` is the last
        iterate and ``leaves.verdict`` says which sequences go to 0.
    """
    if not isinstance(tree, TokenTree):
        raise ValueError(f"tree must be a tokenmdp.TokenTree, got {type(tree)}")
    if isinstance(pairs, PreferencePairs) and pairs.prompts is not None:
        raise ValueError("pairs.prompts must be None: a tree has one prompt (its root)")
    leaf_log_ref = path_sum(tree, tree.log_ref.to(torch.float64)).cpu()
    lengths = tree.depth[tree.leaves].to(torch.float64).cpu() if length_normalised else None
    inputs = None
    if ld_alpha is not None:
        if on != "logratios":
            raise ValueError('ld_alpha needs on="logratios" (it reweights log-ratios)')
        inputs = _ld_inputs(tree, pairs, leaf_log_ref, v.in_range(ld_alpha, "ld_alpha", 0.0, 1.0))
    result = minimise_loss(
        loss,
        pairs,
        leaf_log_ref.exp(),
        on=on,
        lengths=lengths,
        pair_inputs=inputs,
        steps=steps,
        tolerance=tolerance,
    )
    log_law = torch.where(result.policy > 0, result.policy.log(), -torch.inf)
    return TreeLossMinimum(token_policy(tree, log_law.to(tree.device)), result)


def _ld_inputs(tree: TokenTree, pairs: PreferencePairs, leaf_log_ref: Tensor, alpha: float):
    """pair_inputs for LD-DPO: q_LD of each pair's two sequences from the leaf law."""
    n_leaves = leaf_log_ref.numel()
    chosen = leaf_positions(pairs.chosen, "pairs.chosen", n_leaves).cpu()
    rejected = leaf_positions(pairs.rejected, "pairs.rejected", n_leaves).cpu()
    paths = tree.path_nodes().cpu()  # [L, D]: node after t + 1 tokens, −1 past the end
    depth = tree.depth[tree.leaves].cpu()
    shared = torch.minimum(depth[chosen], depth[rejected])  # ≥ 1: every sequence has a token
    prefix_w = paths[chosen, shared - 1]
    prefix_l = paths[rejected, shared - 1]
    # below[k, leaf]: the prefix node of pair-side k lies on the leaf's path
    nodes = torch.cat([prefix_w, prefix_l])
    below = (paths.unsqueeze(0) == nodes[:, None, None]).any(-1)  # [2n, L]
    ref_mass = torch.logsumexp(torch.where(below, leaf_log_ref, -torch.inf), -1)
    n = chosen.numel()

    def inputs(log_pi: Tensor) -> tuple[Tensor, Tensor]:
        law = log_pi[0]
        q = law - leaf_log_ref
        prefix = torch.logsumexp(torch.where(below, law, -torch.inf), -1) - ref_mass
        p_w, p_l = prefix[:n], prefix[n:]
        return p_w + alpha * (q[chosen] - p_w), p_l + alpha * (q[rejected] - p_l)

    return inputs
