"""tokenmdp: the tree-structured token MDP of Rafailov et al. 2024, solved exactly."""

from .solve import Solution, reward_from_q, soft_solve
from .tree import TokenTree, random_tree

__all__ = ["Solution", "TokenTree", "random_tree", "reward_from_q", "soft_solve"]
