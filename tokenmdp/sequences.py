"""Sequence-level views of per-edge quantities: path sums, the bandit over complete sequences,
implicit rewards and potential-based shaping."""

from __future__ import annotations

import math

import torch

from toybandit import validation as v
from toybandit.validation import TensorLike

from .segments import segment_logsumexp
from .tree import TokenTree
from .validation import batch_beta, edge_values, node_values

Tensor = torch.Tensor


def prefix_sum(tree: TokenTree, values: TensorLike) -> Tensor:
    """Σ of a per-edge quantity along the path root → n, for every node n (0 at the root).

    Args:
        values: per-edge values stored at the child node, shape [..., N] (the root's is ignored).

    Returns:
        [..., N].
    """
    x = node_values(tree, values, "values").movedim(-1, 0)
    out = torch.empty_like(x)
    out[0] = 0.0
    for d in range(1, tree.max_depth + 1):
        rows = tree.level(d)
        torch.add(out.index_select(0, tree.parent[rows]), x[rows], out=out[rows])
    return out.movedim(0, -1)


def path_sum(tree: TokenTree, values: TensorLike) -> Tensor:
    """Σ_t x(s_t, a_t) over each complete sequence: one entry per leaf, leaves in node order.

    With ``values`` = log π this is the sequence log-probability log π(y|x) = Σ_t log π(a_t|s_t);
    with a reward it is the return Σ_t r(s_t, a_t) of Rafailov et al. 2024, eq. (1).

    >>> tree = TokenTree.full(2, 2, eos=0)                # leaves: "0", "1 0", "1 1"
    >>> path_sum(tree, torch.arange(5.0)).tolist()        # node values 0..4; paths 1, 2+3, 2+4
    [1.0, 5.0, 6.0]
    """
    return prefix_sum(tree, values)[..., tree.leaves]


def as_bandit(tree: TokenTree, reward: TensorLike) -> tuple[Tensor, Tensor]:
    """The tree as a one-step bandit whose responses are its complete sequences.

    Returns (R, π_ref) over leaves: R(y) = Σ_t r(s_t, a_t) and π_ref(y) = Π_t π_ref(a_t|s_t), so that
    ``toybandit.optimal_policy(R, π_ref, β)`` is the sequence law of the token policy of
    :func:`tokenmdp.soft_solve` and ``toybandit.log_partition(R, π_ref, β)`` = V*(s₀) (Rafailov et
    al. 2024, sec. 4.1: the token MDP and the bandit have the same optimum).

    Returns:
        (reward per leaf [..., L], π_ref per leaf [L]).
    """
    reward = edge_values(tree, reward, "reward")
    return path_sum(tree, reward), path_sum(tree, tree.log_ref).exp()


def token_policy(tree: TokenTree, leaf_log_prob: TensorLike) -> Tensor:
    """The tree policy whose sequence law is a given distribution over complete sequences.

    By the chain rule, log π(a|s) = log M(s·a) − log M(s) with M(s) = Σ_{leaves y below s} p(y).
    Edges into subtrees of probability 0 get −inf; below a state of mass 0 the policy is π_ref (any
    law there represents the same p).

    Args:
        leaf_log_prob: log p(y), one per leaf in node order, shape [..., L], logsumexp 0.

    Returns:
        log π per edge, shape [..., N] (0 at the root).
    """
    if not isinstance(tree, TokenTree):
        raise ValueError(f"tree must be a TokenTree, got {type(tree)}")
    leaf_log_prob = v.as_tensor(leaf_log_prob, "leaf_log_prob")
    n_leaves = int(tree.terminal.sum())
    if leaf_log_prob.dim() == 0 or leaf_log_prob.shape[-1] != n_leaves:
        raise ValueError(
            f"leaf_log_prob must have one entry per leaf ({n_leaves}) on its last dim, "
            f"got shape {tuple(leaf_log_prob.shape)}"
        )
    if torch.isnan(leaf_log_prob).any() or (leaf_log_prob == math.inf).any():
        raise ValueError("leaf_log_prob must hold log-probabilities (no NaN or +inf)")
    v.log_normalised(torch.logsumexp(leaf_log_prob, -1), "leaf_log_prob", "sequence law")
    x = leaf_log_prob.movedim(-1, 0)
    mass = torch.full((tree.n_nodes, *x.shape[1:]), -math.inf, dtype=x.dtype, device=x.device)
    mass[tree.leaves] = x
    for d in range(tree.max_depth, 0, -1):
        rows, parents = tree.level(d), tree.level(d - 1)
        counts = tree.n_children[parents]
        lse = segment_logsumexp(mass[rows], counts)
        internal = (counts > 0).reshape(-1, *([1] * (x.dim() - 1)))
        mass[parents] = torch.where(internal, lse, mass[parents])
    parent_mass = mass[tree.parent.clamp(min=0)]
    log_ref = tree.log_ref.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
    log_policy = torch.where(parent_mass == -math.inf, log_ref.expand_as(mass), mass - parent_mass)
    log_policy[0] = 0.0
    return log_policy.movedim(0, -1)


def sequence_logratios(tree: TokenTree, log_policy: TensorLike) -> Tensor:
    """log π(y)/π_ref(y) = Σ_t log π(a_t|s_t)/π_ref(a_t|s_t) per complete sequence, shape [..., L].

    The q of ``docs/conventions.md`` at the sequence level; the quantity token-level DPO/IPO compare
    (Rafailov et al. 2024, eqs. (8)–(9)). Edges impossible under both π and π_ref add 0.
    """
    return path_sum(tree, _edge_logratio(tree, log_policy))


def implicit_rewards(tree: TokenTree, log_policy: TensorLike, beta: float | Tensor) -> Tensor:
    """The implicit per-token reward β log π(a|s)/π_ref(a|s) of every edge.

    Rafailov et al. 2024, eq. (11) (Theorem 1; the quantity colouring Fig. 1). For the optimal
    policy of a reward r it is the advantage of eq. (10):

        β log π*(a_t|s_t)/π_ref(a_t|s_t) = r(s_t, a_t) + V*(s_{t+1}) − V*(s_t),

    i.e. r shaped by the potential V* (which is 0 at terminal states). Edges impossible under both
    π and π_ref get 0; edges possible only under π_ref get −inf.

    Args:
        log_policy: log π per edge, shape [..., N].
        beta: β > 0.

    Returns:
        [..., N], 0 at the root.
    """
    logratio = _edge_logratio(tree, log_policy)
    return logratio * _beta_last(beta, logratio)


def expected_implicit_reward(
    tree: TokenTree, log_policy: TensorLike, beta: float | Tensor
) -> Tensor:
    """E_{a∼π_ref(·|s)}[β log π(a|s)/π_ref(a|s)] for every state (0 at terminal states).

    Rafailov et al. 2024, eq. (14): this equals −β KL(π_ref(·|s) ‖ π(·|s)) ≤ 0, so the average
    implicit reward of a policy trained away from π_ref must fall (sec. 5.3).

    Returns:
        [..., N], one value per state.
    """
    reward = implicit_rewards(tree, log_policy, beta)
    weighted = torch.where(
        torch.isfinite(tree.log_ref) | (reward == 0), tree.log_ref.exp() * reward, 0.0
    ).movedim(-1, 0)
    out = torch.zeros_like(weighted)
    internal = ~tree.terminal
    out[internal] = torch.segment_reduce(
        weighted[1:], "sum", lengths=tree.n_children[internal], axis=0
    )
    return out.movedim(0, -1)


def shape_reward(
    tree: TokenTree, reward: TensorLike, potential: TensorLike, *, strict: bool = True
) -> Tensor:
    """Potential-based shaping r'(s_t, a_t) = r(s_t, a_t) + Φ(s_{t+1}) − Φ(s_t).

    Rafailov et al. 2024, Definition 1. Along a complete sequence the shaping telescopes to
    Φ(s_T) − Φ(s₀): with Φ = 0 at terminal states (the condition of Theorem 1) every return moves by
    the same −Φ(s₀), so the preferences of eq. (1) between sequences from s₀ and the optimal policy
    are unchanged, while Q* moves by −Φ(s) and V* by −Φ(s). A potential that is not 0 at terminal
    states adds a terminal reward and in general changes both.

    Args:
        reward: r per edge, [..., N].
        potential: Φ per state, [..., N]; Φ(s₀) is free.
        strict: require Φ = 0 at every terminal state (raise otherwise). ``strict=False`` computes
            the shaping anyway, to show what breaks.

    Returns:
        r' per edge, [..., N], 0 at the root.

    Raises:
        ValueError: with ``strict``, a terminal state has Φ ≠ 0 (the message names it).
    """
    reward = edge_values(tree, reward, "reward")
    potential = edge_values(tree, potential, "potential")
    if not torch.isfinite(potential[..., 0]).all():
        raise ValueError("potential must be finite at the root")
    if strict:
        bad = (potential[..., tree.leaves] != 0).nonzero()
        if bad.numel():
            n = int(tree.leaves[bad[0, -1]].item())
            raise ValueError(
                f"potential must be 0 at terminal states (Rafailov et al. 2024, Theorem 1), got "
                f"{potential[..., n].flatten()[0].item():.3g} at node {n}; pass strict=False to "
                "shape anyway"
            )
    shaped = reward + potential - potential[..., tree.parent.clamp(min=0)]
    shaped[..., 0] = 0.0
    return shaped


def recover_potential(
    tree: TokenTree, reward: TensorLike, shaped: TensorLike, *, edges: TensorLike | None = None
) -> tuple[Tensor, Tensor]:
    """The potential Φ (0 at terminal states) that best maps ``reward`` to ``shaped``, and the misfit.

    Solves r'(s, a) − r(s, a) = Φ(s·a) − Φ(s) from the leaves up, Φ(s) being the mean over the
    children (in ``edges``) of Φ(s·a) − (r' − r)(s, a). The residual per edge,
    (r' − r) − (Φ(s·a) − Φ(s)), is 0 on every edge exactly when r' is r shaped with a potential
    that vanishes at terminal states (Definition 1 with the terminal condition of Theorem 1); where
    it is not 0 the two rewards are not equivalent on that part of the tree.

    Args:
        reward: per-edge rewards r [..., N].
        shaped: per-edge rewards r' [..., N].
        edges: bool [N], the edges that must be explained: a subtree hanging from the root (each
            edge's parent edge is in it, each of its non-terminal nodes keeps a child edge in it).
            By default the edges reachable under π_ref (rewards behind an edge with π_ref = 0
            change no preference and no policy on the reachable tree).

    Returns:
        (Φ [..., N], residual [..., N]); Φ and the residual are 0 outside ``edges`` and at the root.

    Raises:
        ValueError: ``edges`` is not such a subtree.
    """
    reward = edge_values(tree, reward, "reward")
    shaped = edge_values(tree, shaped, "shaped")
    edges = reachable(tree) if edges is None else _subtree_mask(tree, edges)
    shape = (-1, *([1] * (reward.dim() - 1)))
    diff = (shaped - reward).movedim(-1, 0)
    phi = torch.zeros_like(diff)
    for d in range(tree.max_depth, 0, -1):
        rows, parents = tree.level(d), tree.level(d - 1)
        counts = tree.n_children[parents]
        inside = edges[rows].reshape(shape)
        target = torch.where(inside, phi[rows] - diff[rows], 0.0)
        total = torch.segment_reduce(target, "sum", lengths=counts, axis=0)
        n_in = torch.segment_reduce(edges[rows].to(diff.dtype), "sum", lengths=counts)
        phi[parents] = torch.where(
            (n_in > 0).reshape(shape), total / n_in.clamp(min=1).reshape(shape), 0.0
        )
    residual = diff - (phi - phi[tree.parent.clamp(min=0)])
    residual = torch.where(edges.reshape(shape), residual, 0.0)
    residual[0] = 0.0
    return phi.movedim(0, -1), residual.movedim(0, -1)


def reachable(tree: TokenTree) -> Tensor:
    """bool [N]: the states reachable from s₀ under π_ref (no edge with π_ref = 0 on the way)."""
    return torch.isfinite(prefix_sum(tree, tree.log_ref))


def _subtree_mask(tree: TokenTree, edges) -> Tensor:
    edges = torch.as_tensor(edges, device=tree.device)
    if edges.dtype != torch.bool or edges.shape != (tree.n_nodes,):
        raise ValueError(
            f"edges must be a bool tensor of shape ({tree.n_nodes},), got {edges.dtype} {tuple(edges.shape)}"
        )
    edges = edges.clone()
    edges[0] = True
    orphan = (edges & ~edges[tree.parent.clamp(min=0)]).nonzero()
    if orphan.numel():
        raise ValueError(f"edges: node {orphan[0].item()} is in edges but its parent edge is not")
    has_child = torch.zeros(tree.n_nodes, dtype=torch.bool, device=tree.device)
    has_child[tree.parent[1:][edges[1:]]] = True
    dead_end = (edges & ~tree.terminal & ~has_child).nonzero()
    if dead_end.numel():
        raise ValueError(f"edges: non-terminal node {dead_end[0].item()} keeps no child edge")
    return edges


def _beta_last(beta, like: Tensor):
    """β made to broadcast against [..., N]."""
    beta = batch_beta(beta, like)
    return beta.unsqueeze(-1) if torch.is_tensor(beta) else beta


def _log_policy(tree: TokenTree, log_policy) -> Tensor:
    """A tree policy: log π per edge [..., N], the children of every state logsumexp to 0 (the
    tolerance of ``log_ref``), no NaN or +inf, and no mass on an edge with π_ref = 0."""
    log_policy = node_values(tree, log_policy, "log_policy")
    if torch.isnan(log_policy).any() or (log_policy == math.inf).any():
        raise ValueError("log_policy must hold log-probabilities (no NaN or +inf)")
    x = log_policy.movedim(-1, 0)
    internal = ~tree.terminal
    v.log_normalised(
        segment_logsumexp(x[1:], tree.n_children[internal]),
        "log_policy",
        "state's children",
    )
    outside = (tree.log_ref[1:] == -math.inf) & (x[1:] > -math.inf).reshape(x.shape[0] - 1, -1).any(
        -1
    )
    if outside.any():
        n = outside.nonzero()[0].item() + 1
        raise ValueError(
            f"log_policy puts mass on node {n}, an edge with π_ref = 0: the log-ratio is +inf"
        )
    return log_policy


def _edge_logratio(tree: TokenTree, log_policy) -> Tensor:
    log_policy = _log_policy(tree, log_policy)
    log_ref = tree.log_ref.to(log_policy.dtype)
    both_impossible = (log_policy == -math.inf) & (log_ref == -math.inf)
    ratio = torch.where(both_impossible, 0.0, log_policy - log_ref)
    ratio[..., 0] = 0.0
    return ratio
