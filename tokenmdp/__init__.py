"""tokenmdp: the tree-structured token MDP of Rafailov et al. 2024, solved exactly.

A :class:`TokenTree` holds the states of the MDP (breadth-first, per-edge values at the child
node, see ``docs/conventions.md``); :func:`soft_solve` gives Q*, V*, π* by backward induction and
:func:`reward_from_q` inverts it (Lemma 1). Sequence-level views, shaping, search and token-level
DPO/IPO training build on those two. Shared helpers are public modules: :mod:`tokenmdp.segments`
(logsumexp and log-softmax over each state's children) and :mod:`tokenmdp.validation` (checks of
tree-valued inputs).
"""

from .minimise import TreeLossMinimum, minimise_tree_loss
from .search import Best, beam_search, best_prefix, best_sequence, frontier
from .sequences import (
    as_bandit,
    expected_implicit_reward,
    implicit_rewards,
    path_sum,
    prefix_sum,
    reachable,
    recover_potential,
    sequence_logratios,
    shape_reward,
    token_policy,
)
from .solve import Solution, reward_from_q, soft_solve
from .train import (
    fit_tree_policy,
    population_trajectory_pairs,
    sample_trajectory_pairs,
    trajectory_preference,
)
from .tree import TokenTree, random_tree, set_memory_budget

__all__ = [
    "Best",
    "Solution",
    "TokenTree",
    "TreeLossMinimum",
    "as_bandit",
    "beam_search",
    "best_prefix",
    "best_sequence",
    "expected_implicit_reward",
    "fit_tree_policy",
    "frontier",
    "implicit_rewards",
    "minimise_tree_loss",
    "path_sum",
    "population_trajectory_pairs",
    "prefix_sum",
    "random_tree",
    "reachable",
    "recover_potential",
    "reward_from_q",
    "sample_trajectory_pairs",
    "sequence_logratios",
    "set_memory_budget",
    "shape_reward",
    "soft_solve",
    "token_policy",
    "trajectory_preference",
]
