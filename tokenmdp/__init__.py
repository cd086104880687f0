"""tokenmdp: the tree-structured token MDP (Rafailov et al. 2024). Built in a later issue."""

__all__: list[str] = []
