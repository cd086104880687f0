"""Input checks for tensors over the nodes of a token tree, shared by every tokenmdp module.

A tree-valued tensor has one entry per node on its last dim, [..., N], leading dims being a batch
(``docs/conventions.md``); a per-edge quantity sits at the edge's child node and the root's entry
is not used. Each check returns the tensor (floating, on the tree's device) or raises
``ValueError`` naming the argument; the generic checks (numbers, probabilities, indices) are
:mod:`toybandit.validation`.
"""

from __future__ import annotations

import torch

from toybandit import validation as v
from toybandit.validation import TensorLike

from .tree import TokenTree

Tensor = torch.Tensor

__all__ = ["batch_beta", "edge_values", "leaf_positions", "node_values"]


def node_values(tree: TokenTree, x: TensorLike, name: str) -> Tensor:
    """``x`` as a floating tensor [..., N] on the tree's device: one entry per node of ``tree``
    on the last dim (values may be ±inf or NaN; see :func:`edge_values`)."""
    if not isinstance(tree, TokenTree):
        raise ValueError(f"tree must be a TokenTree, got {type(tree)}")
    x = v.as_tensor(x, name)
    if x.dim() == 0 or x.shape[-1] != tree.n_nodes:
        raise ValueError(
            f"{name} must have one entry per node on its last dim ({tree.n_nodes}), "
            f"got shape {tuple(x.shape)}"
        )
    if x.device != tree.device:
        raise ValueError(f"{name} is on {x.device} but the tree is on {tree.device}")
    return x


def edge_values(tree: TokenTree, x: TensorLike, name: str) -> Tensor:
    """A finite per-edge quantity [..., N] (a reward, a potential): :func:`node_values` whose
    entries are finite at every node but the root, whose entry is not used."""
    x = node_values(tree, x, name)
    if not torch.isfinite(x[..., 1:]).all():
        bad = int((~torch.isfinite(x[..., 1:])).nonzero()[0, -1].item()) + 1
        raise ValueError(
            f"{name} must be finite, got {x[..., bad].flatten()[0].item()} at node {bad}"
        )
    return x


def batch_beta(beta: float | Tensor, like: Tensor, name: str = "beta") -> float | Tensor:
    """β > 0 for values ``like`` [..., N]: a float, or a tensor over the batch dims [...] (it
    must broadcast against them), in ``like``'s dtype."""
    beta = v.positive(beta, name)
    if torch.is_tensor(beta):
        beta = v.prompt_param(beta, name, like).squeeze(-1)
    return beta


def leaf_positions(x: TensorLike, name: str, n_leaves: int, n: int | None = None) -> Tensor:
    """Positions into ``tree.leaves`` (complete sequences in node order), not node ids: a 1-D
    int64 tensor with entries in [0, n_leaves) (and length n if given); floats and bool masks are
    refused (:func:`toybandit.validation.indices`)."""
    return v.indices(x, f"{name} (leaf positions)", n_leaves, n)
