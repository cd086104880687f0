"""The token tree: the state space of the token-level MDP as flat, breadth-first tensors."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import overload

import torch

from toybandit import validation as v
from toybandit.validation import TensorLike

from .segments import segment_logsumexp

Tensor = torch.Tensor


class TokenTree:
    """A deterministic, tree-structured token MDP (Rafailov et al. 2024, sec. 3.1).

    Nodes are states s_t (the prompt followed by the tokens so far); node 0 is the root s₀. Nodes
    are in breadth-first order and the children of a node are contiguous, in increasing token order.
    Every non-root node has exactly one incoming edge (s, a), so a per-edge quantity such as
    r(s, a) or log π(a|s) is stored at the child node; the root's slot holds 0.

    Attributes (each a tensor over nodes, shape [N]):
        parent: int64, the parent node (−1 at the root).
        token: int64, the token on the edge into the node (−1 at the root).
        depth: int64, the number of tokens after the prompt.
        log_ref: log π_ref of the edge into the node (0 at the root, −inf for impossible tokens).
        terminal: bool, the node is a leaf (its edge was EOS, or it is at the maximum depth).
        n_children: int64, the number of children.
        offsets: tuple of ints; level d is ``range(offsets[d], offsets[d + 1])``.

    The constructor checks every invariant; use :meth:`full`, :meth:`from_sequences` or
    :func:`tokenmdp.random_tree` to build one.

    Raises:
        ValueError: ``parent`` is not a breadth-first tree with contiguous children, sibling tokens
            are not strictly increasing, an EOS edge has children, or the children of some node have
            ``log_ref`` that do not logsumexp to 0 (tolerance 1e-9 in float64, 1e-5 in float32);
            the message names the node.
    """

    __slots__ = (
        "depth",
        "eos",
        "log_ref",
        "n_children",
        "offsets",
        "parent",
        "terminal",
        "token",
        "vocab_size",
    )

    def __init__(
        self,
        parent: TensorLike,
        token: TensorLike,
        log_ref: TensorLike,
        *,
        vocab_size: int | None = None,
        eos: int | None = None,
        validate: bool = True,
    ) -> None:
        parent = torch.as_tensor(parent)
        token = torch.as_tensor(token)
        log_ref = v.as_tensor(log_ref, "log_ref")
        if vocab_size is not None:
            vocab_size = v.integer(vocab_size, "vocab_size", minimum=1)
        if eos is not None:
            eos = v.integer(eos, "eos", minimum=0)
        if validate:
            _check_structure(parent, token, log_ref, vocab_size, eos)
        self.parent = parent.long()
        self.token = token.long()
        self.log_ref = log_ref
        self.vocab_size = None if vocab_size is None else int(vocab_size)
        self.eos = None if eos is None else int(eos)
        n = parent.numel()
        self.n_children = torch.bincount(self.parent[1:], minlength=n)
        self.terminal = self.n_children == 0
        self.offsets = _level_offsets(self.parent)
        sizes = torch.tensor(self.offsets).diff()
        self.depth = torch.repeat_interleave(torch.arange(len(sizes)), sizes).to(parent.device)
        if validate:
            if eos is not None:
                bad = ((self.token == eos) & ~self.terminal).nonzero()
                if bad.numel():
                    raise ValueError(f"token: node {bad[0].item()} is an EOS edge with children")
            _check_normalised(self)

    # -- constructors -------------------------------------------------------------------------

    @classmethod
    def full(
        cls, vocab_size: int, depth: int, eos: int | None, log_ref: TensorLike | None = None
    ) -> TokenTree:
        """Every token sequence of length ≤ ``depth``; an EOS edge ends its sequence.

        Args:
            vocab_size: number of tokens V ≥ 1.
            depth: maximum number of tokens, ≥ 1.
            eos: the EOS token in [0, V), or None for sequences that all run to ``depth``.
            log_ref: log π_ref per node, shape [N]; uniform (−log V per edge) by default.

        >>> TokenTree.full(2, 2, eos=0).n_nodes   # root, tokens 0 and 1, then 1·0 and 1·1
        5
        """
        vocab_size, depth = _size(vocab_size, "vocab_size"), _size(depth, "depth")
        eos = _eos(eos, vocab_size)
        check_size(
            _count_nodes(vocab_size, depth, eos, vocab_size),
            BUILD_BYTES_PER_NODE,
            f"TokenTree.full({vocab_size}, {depth}, eos={eos})",
        )
        parent, token = _grow(vocab_size, depth, eos, None)
        if log_ref is None:
            log_ref = torch.full(parent.shape, -math.log(vocab_size), dtype=torch.float64)
            log_ref[0] = 0.0
        else:
            log_ref = v.as_tensor(log_ref, "log_ref")
            if log_ref.shape != parent.shape:
                raise ValueError(
                    f"log_ref must have one entry per node, shape ({parent.numel()},), "
                    f"got {tuple(log_ref.shape)}"
                )
        return cls(parent, token, log_ref, vocab_size=vocab_size, eos=eos)

    @classmethod
    def from_sequences(
        cls,
        sequences: Sequence[Sequence[int]],
        *,
        weights: TensorLike | None = None,
        vocab_size: int | None = None,
        eos: int | None = None,
    ) -> TokenTree:
        """The prefix tree of a set of token sequences; π_ref is their empirical next-token law.

        π_ref(a|s) = w(s·a)/w(s), where w(s) is the total weight of the sequences that start with
        s. Duplicate sequences merge. Each sequence is one complete response, so none may be a
        proper prefix of another (end them with EOS).

        Args:
            sequences: non-empty token sequences (lists of ints ≥ 0).
            weights: positive weight per sequence; 1 each by default.
            vocab_size: recorded on the tree and checked against the tokens.
            eos: recorded on the tree and checked against the tokens.

        >>> tree = TokenTree.from_sequences([[1, 0], [1, 2, 0], [2, 0]], eos=0)
        >>> tree.token.tolist(), tree.log_ref.exp().tolist()
        ([-1, 1, 2, 0, 2, 0, 0], [1.0, 0.6666666666666666, 0.3333333333333333, 0.5, 0.5, 1.0, 1.0])
        """
        padded, lengths = _padded_sequences(sequences)
        width = max(lengths)
        if weights is None:
            weights = torch.ones(len(sequences), dtype=torch.float64)
        weights = v.finite(weights, "weights")
        if weights.shape != (len(sequences),) or (weights <= 0).any():
            raise ValueError(
                f"weights must be positive, one per sequence ({len(sequences)}), "
                f"got shape {tuple(weights.shape)}"
            )
        lengths_t = torch.tensor(lengths)
        parents, tokens, node_weight = [torch.tensor([-1])], [torch.tensor([-1])], [weights.sum()]
        inverse = torch.zeros(len(sequences), dtype=torch.long)  # node of each sequence, level d
        start = 1  # first node index of the level being built
        prev_start = 0
        for d in range(1, width + 1):
            rows = (lengths_t >= d).nonzero().squeeze(-1)
            keys = torch.stack([inverse[rows], padded[rows, d - 1]], dim=-1)
            nodes, inv = torch.unique(keys, dim=0, return_inverse=True)  # lexicographic = BFS
            parents.append(nodes[:, 0] + prev_start)
            tokens.append(nodes[:, 1])
            node_weight.append(
                torch.zeros(len(nodes), dtype=weights.dtype).index_add_(0, inv, weights[rows])
            )
            ended = lengths_t[rows] == d
            inverse = torch.zeros(len(sequences), dtype=torch.long)
            inverse[rows] = inv
            prev_start, start = start, start + len(nodes)
            if d < width:
                deeper = inv[~ended].unique()
                clash = torch.isin(inv[ended], deeper)
                if clash.any():
                    i = rows[ended][clash][0].item()
                    raise ValueError(
                        f"sequences: sequence {i} is a proper prefix of another; "
                        "end every sequence with EOS"
                    )
        parent = torch.cat(parents)
        token = torch.cat(tokens)
        weight = torch.cat([w.reshape(-1) for w in node_weight])
        log_ref = weight.log() - weight[parent.clamp(min=0)].log()
        log_ref[0] = 0.0
        if vocab_size is not None and token.max() >= vocab_size:
            raise ValueError(f"sequences hold token {token.max().item()} ≥ vocab_size {vocab_size}")
        return cls(parent, token, log_ref, vocab_size=vocab_size, eos=eos)

    # -- views --------------------------------------------------------------------------------

    @property
    def n_nodes(self) -> int:
        """N, the number of nodes (states), root included."""
        return self.parent.numel()

    @property
    def max_depth(self) -> int:
        """The depth of the deepest node."""
        return len(self.offsets) - 2

    @property
    def device(self) -> torch.device:
        return self.log_ref.device

    @property
    def first_child(self) -> Tensor:
        """Index of each node's first child (children are contiguous); for a leaf, where its
        children would start. int64 [N]."""
        return self.n_children.cumsum(0) - self.n_children + 1

    @property
    def leaves(self) -> Tensor:
        """Node indices of the terminal states (complete sequences), increasing, shape [L]."""
        return self.terminal.nonzero().squeeze(-1)

    def level(self, d: int) -> slice:
        """The nodes at depth d, as a slice of the node dim."""
        return slice(self.offsets[d], self.offsets[d + 1])

    def path_nodes(self, nodes: TensorLike | None = None) -> Tensor:
        """The node path root→n (root excluded) of each given node, padded with −1 on the right.

        Args:
            nodes: node indices, shape [K]; the leaves by default.

        Returns:
            int64 [K, max_depth]; entry t is the node reached after t + 1 tokens.
        """
        nodes = self.leaves if nodes is None else torch.as_tensor(nodes, device=self.device)
        out = torch.full((nodes.numel(), self.max_depth), -1, dtype=torch.long, device=self.device)
        current, depth = nodes.clone(), self.depth[nodes]
        for t in range(self.max_depth - 1, -1, -1):
            here = depth == t + 1
            out[here, t] = current[here]
            current = torch.where(here, self.parent[current], current)
            depth = torch.where(here, depth - 1, depth)
        return out

    def paths(self, nodes: TensorLike | None = None) -> Tensor:
        """The token sequence of each given node (the leaves by default), padded with −1.

        >>> TokenTree.full(2, 2, eos=0).paths().tolist()
        [[0, -1], [1, 0], [1, 1]]
        """
        nodes = self.path_nodes(nodes)
        return torch.where(nodes >= 0, self.token[nodes.clamp(min=0)], -1)

    def to(self, device: torch.device | str) -> TokenTree:
        """The same tree with every tensor on ``device`` (no re-validation)."""
        tree = object.__new__(TokenTree)
        for name in self.__slots__:
            value = getattr(self, name)
            setattr(tree, name, value.to(device) if isinstance(value, Tensor) else value)
        return tree

    def __repr__(self) -> str:
        return (
            f"TokenTree(nodes={self.n_nodes}, leaves={int(self.terminal.sum())}, "
            f"max_depth={self.max_depth}, vocab_size={self.vocab_size}, eos={self.eos})"
        )


def random_tree(
    vocab_size: int,
    depth: int,
    eos: int | None,
    *,
    generator: torch.Generator,
    concentration: float = 1.0,
    keep: float = 1.0,
    impossible: float = 0.0,
) -> TokenTree:
    """A tree with a random π_ref and, optionally, randomly pruned children.

    π_ref(·|s) = softmax(z / concentration) over the kept tokens, z ∼ N(0, 1) per edge: a small
    concentration gives peaked next-token laws, a large one nearly uniform. With ``keep < 1`` each
    token is kept with that probability (at least one per state), as a top-k expansion of a real LM
    produces; with ``impossible > 0`` that fraction of the other kept edges gets π_ref = 0.

    Args:
        vocab_size: as in :meth:`TokenTree.full`.
        depth: as in :meth:`TokenTree.full`.
        eos: as in :meth:`TokenTree.full`.
        generator: a seeded ``torch.Generator``.
        concentration: must be > 0.
        keep: probability that a token is expanded, in (0, 1].
        impossible: probability that an expanded edge is impossible (log π_ref = −inf), in [0, 1).
    """
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator)}")
    vocab_size, depth = _size(vocab_size, "vocab_size"), _size(depth, "depth")
    eos = _eos(eos, vocab_size)
    conc = v.positive(concentration, "concentration")
    keep = v.in_range(keep, "keep", 0.0, 1.0)
    if keep == 0.0:
        raise ValueError("keep must lie in (0, 1], got 0")
    impossible = v.in_range(impossible, "impossible", 0.0, 1.0, high_open=True)
    # Each state keeps one forced token plus each other with probability `keep`: the expected
    # branching, so the guard does not refuse a sparse top-k tree for the size of the full one.
    check_size(
        _count_nodes(vocab_size, depth, eos, 1 + keep * (vocab_size - 1)),
        BUILD_BYTES_PER_NODE,
        f"random_tree({vocab_size}, {depth}, eos={eos}, keep={keep:g}) (expected size)",
    )

    def draw(n_parents: int) -> tuple[Tensor, Tensor]:
        shape = (n_parents, vocab_size)
        u = torch.rand(shape, generator=generator, dtype=torch.float64)
        forced = torch.zeros(shape, dtype=torch.bool)
        forced[torch.arange(n_parents), u.argmax(-1)] = True
        kept = forced | (torch.rand(shape, generator=generator, dtype=torch.float64) < keep)
        dead = ~forced & (torch.rand(shape, generator=generator, dtype=torch.float64) < impossible)
        z = torch.randn(shape, generator=generator, dtype=torch.float64) / conc
        logp = torch.log_softmax(z.masked_fill(~kept | dead, -math.inf), dim=-1)
        return kept, logp

    parent, token, log_ref = _grow(vocab_size, depth, eos, draw)
    return TokenTree(parent, token, log_ref, vocab_size=vocab_size, eos=eos)


# -- the size guard ---------------------------------------------------------------------------

# Bytes per node while building: five per-node tensors (parent, token, depth, n_children int64;
# log_ref float64), the terminal mask, the concatenation copies of _grow and, for random_tree,
# the [parents, V] draws of the widest level. An upper estimate, so the guard refuses before the
# allocator does.
BUILD_BYTES_PER_NODE = 96
# Bytes per node and batch element while solving: the promoted reward, q, log π, V and scratch.
SOLVE_BYTES_PER_NODE = 5 * 8
_BUDGET_ENV = "TOKENMDP_MEMORY_BUDGET"
_budget: int | None = None


def set_memory_budget(nbytes: int | None) -> None:
    """Set the most memory (bytes) that building or solving one tree may take; ``None`` restores
    the default: the ``TOKENMDP_MEMORY_BUDGET`` environment variable if set, else half the
    memory available when the check runs (half the free GPU memory for a tree on CUDA).

    Every tree constructor and solver computes the node count and the bytes it needs first, with
    integer arithmetic, and raises ``ValueError`` above the budget before allocating anything.

    >>> set_memory_budget(10**6)
    >>> TokenTree.full(2, 20, eos=None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: TokenTree.full(2, 20, eos=None) needs 2,097,151 nodes, about 201 MB, above ...
    >>> set_memory_budget(None)
    """
    global _budget
    _budget = None if nbytes is None else v.integer(nbytes, "nbytes", minimum=1)


def memory_budget(device: torch.device | str | None = None) -> tuple[int, str]:
    """The budget in bytes and where it comes from (see :func:`set_memory_budget`)."""
    if _budget is not None:
        return _budget, "set by set_memory_budget"
    env = os.environ.get(_BUDGET_ENV)
    if env:
        try:
            return v.integer(float(env), _BUDGET_ENV, minimum=1), f"from {_BUDGET_ENV}"
        except ValueError as err:
            raise ValueError(
                f"{_BUDGET_ENV} must be a positive number of bytes, got {env!r}"
            ) from err
    if device is not None and torch.device(device).type == "cuda":
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free // 2, "half the free GPU memory"
    return _available_memory() // 2, "half the available memory"


def check_size(
    n_nodes: int, bytes_per_node: int, what: str, device: torch.device | str | None = None
) -> None:
    """Raise ``ValueError`` if ``n_nodes · bytes_per_node`` exceeds :func:`memory_budget`."""
    need = n_nodes * bytes_per_node
    count = "more than 2^80" if n_nodes >= 2**80 else f"{n_nodes:,}"
    budget, source = memory_budget(device)
    if need > budget:
        raise ValueError(
            f"{what} needs {count} nodes, about {_bytes(need)}, above the memory budget of "
            f"{_bytes(budget)} ({source}); raise it with tokenmdp.set_memory_budget(nbytes) or the "
            f"{_BUDGET_ENV} environment variable"
        )


def _count_nodes(vocab_size: int, depth: int, eos: int | None, branching: float) -> int:
    """Nodes of a tree whose root has ``branching`` children and whose every non-EOS node at depth
    < ``depth`` has ``branching`` children (EOS children end), without building it: the geometric
    sum 1 + b(1 + r + … + r^(depth−1)), r the non-EOS branching. Exact integers for a full tree;
    capped at 2^80 (far above any budget), so a huge depth costs nothing."""
    cap = 2**80
    r = branching if eos is None else branching * (vocab_size - 1) / vocab_size
    if r == 1:
        return min(cap, math.ceil(1 + branching * depth))
    if r > 1 and depth * math.log2(r) > 80:
        return cap
    if float(branching).is_integer() and float(r).is_integer():
        b, r = int(branching), int(r)
        return 1 + b * ((r**depth - 1) // (r - 1)) if r != 1 else 1 + b * depth
    return min(cap, math.ceil(1 + branching * (r**depth - 1) / (r - 1)))


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def _bytes(n: int) -> str:
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


# -- private helpers --------------------------------------------------------------------------


def _size(x, name: str) -> int:
    return v.integer(x, name, minimum=1)


def _eos(eos, vocab_size: int) -> int | None:
    if eos is None:
        return None
    return v.integer(eos, "eos", minimum=0, maximum=vocab_size - 1)


@overload
def _grow(vocab_size: int, depth: int, eos: int | None, draw: None) -> tuple[Tensor, Tensor]: ...
@overload
def _grow(
    vocab_size: int, depth: int, eos: int | None, draw: Callable[[int], tuple[Tensor, Tensor]]
) -> tuple[Tensor, Tensor, Tensor]: ...
def _grow(vocab_size, depth, eos, draw):
    """Expand level by level; ``draw(n)`` gives (kept mask, log π_ref) of shape [n, V]."""
    parents, tokens, logps = [torch.tensor([-1])], [torch.tensor([-1])], [torch.zeros(1)]
    frontier, start = torch.tensor([0]), 1
    for _ in range(depth):
        n = frontier.numel()
        if draw is None:
            parent = frontier.repeat_interleave(vocab_size)
            token = torch.arange(vocab_size).repeat(n)
        else:
            kept, logp = draw(n)
            rows, token = kept.nonzero(as_tuple=True)
            parent = frontier[rows]
            logps.append(logp[rows, token])
        parents.append(parent)
        tokens.append(token)
        internal = torch.ones_like(token, dtype=torch.bool) if eos is None else token != eos
        frontier = start + internal.nonzero().squeeze(-1)
        start += token.numel()
        if frontier.numel() == 0:
            break
    parent, token = torch.cat(parents), torch.cat(tokens)
    if draw is None:
        return parent, token
    return parent, token, torch.cat([lp.to(torch.float64) for lp in logps])


def _level_offsets(parent: Tensor) -> tuple[int, ...]:
    """Start of each level: level d + 1 is every node whose parent lies in level d."""
    offsets, n = [0, 1], parent.numel()
    tail = parent[1:].contiguous()
    while offsets[-1] < n:
        end = 1 + int(torch.searchsorted(tail, offsets[-1]).item())
        if end == offsets[-1]:  # guarded by validation; keeps a bad tree from looping
            raise ValueError("parent: the nodes do not form a tree")
        offsets.append(end)
    return tuple(offsets)


def _padded_sequences(sequences) -> tuple[Tensor, list[int]]:
    """The checked sequences of :meth:`TokenTree.from_sequences` as rows of a long tensor padded
    with −1, and their lengths."""
    if len(sequences) == 0:
        raise ValueError("sequences must not be empty")
    lengths = [len(s) for s in sequences]
    if min(lengths) == 0:
        raise ValueError(f"sequences: sequence {lengths.index(0)} is empty")
    for i, s in enumerate(sequences):
        t = s if isinstance(s, torch.Tensor) else torch.as_tensor(s)
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool or t.dim() != 1:
            raise ValueError(
                f"sequences: sequence {i} must be a 1-D list of integer tokens, got "
                f"{t.dtype} {tuple(t.shape)} (a float token is never truncated)"
            )
    if any(t < 0 for s in sequences for t in s):
        raise ValueError("sequences must hold tokens ≥ 0")
    padded = torch.full((len(sequences), max(lengths)), -1, dtype=torch.long)
    for i, s in enumerate(sequences):
        padded[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return padded, lengths


def _check_structure(parent, token, log_ref, vocab_size, eos) -> None:
    _check_node_arrays(parent, token, log_ref)
    _check_parents(parent)
    _check_tokens(parent, token, vocab_size)
    if log_ref[0] != 0:
        raise ValueError(f"log_ref must be 0 at the root, got {log_ref[0].item()}")
    if torch.isnan(log_ref).any() or (log_ref == math.inf).any():
        raise ValueError("log_ref must not hold NaN or +inf")


def _check_node_arrays(parent, token, log_ref) -> None:
    """One entry per node in each array, integer parent and token, −1 for both at the root."""
    for name, t in (("parent", parent), ("token", token)):
        if t.dim() != 1 or t.is_floating_point() or t.is_complex():
            raise ValueError(f"{name} must be a 1-D integer tensor, got {t.dtype} {tuple(t.shape)}")
    if not (parent.shape == token.shape == log_ref.shape):
        raise ValueError(
            f"parent, token and log_ref must have one entry per node: shapes "
            f"{tuple(parent.shape)}, {tuple(token.shape)}, {tuple(log_ref.shape)}"
        )
    n = parent.numel()
    if n < 2:
        raise ValueError(f"a tree needs a root and at least one edge, got {n} node(s)")
    if parent[0] != -1 or token[0] != -1:
        raise ValueError("parent and token must be −1 at the root (node 0)")


def _check_parents(parent) -> None:
    """Every parent comes before its child, and parents are non-decreasing (breadth-first order,
    the children of a node contiguous)."""
    idx = torch.arange(1, parent.numel(), device=parent.device)
    bad = ((parent[1:] < 0) | (parent[1:] >= idx)).nonzero()
    if bad.numel():
        i = bad[0].item() + 1
        raise ValueError(f"parent: node {i} has parent {parent[i].item()}, must lie in [0, {i})")
    step = parent[2:] - parent[1:-1]
    bad = (step < 0).nonzero()
    if bad.numel():
        i = bad[0].item() + 2
        raise ValueError(
            f"parent: node {i} breaks breadth-first order (its parent {parent[i].item()} comes "
            f"before node {i - 1}'s parent {parent[i - 1].item()}); children must be contiguous"
        )


def _check_tokens(parent, token, vocab_size) -> None:
    """Tokens in [0, vocab_size) below the root, strictly increasing among siblings."""
    step = parent[2:] - parent[1:-1]
    if (token[1:] < 0).any():
        raise ValueError(f"token must be ≥ 0 below the root, got {token[1:].min().item()}")
    if vocab_size is not None and (token >= vocab_size).any():
        raise ValueError(f"token must be < vocab_size {vocab_size}, got {token.max().item()}")
    bad = ((step == 0) & (token[2:] <= token[1:-1])).nonzero()
    if bad.numel():
        i = bad[0].item() + 2
        raise ValueError(
            f"token: the children of node {parent[i].item()} must have strictly increasing "
            f"tokens (node {i})"
        )


def _check_normalised(tree: TokenTree) -> None:
    log_ref = tree.log_ref
    internal = ~tree.terminal
    lengths = tree.n_children[internal]
    lse = segment_logsumexp(log_ref[1:], lengths)
    err = lse.abs()
    tol = v.sum_tol(log_ref.dtype)
    if not (err <= tol).all():
        k = int(torch.nan_to_num(err, nan=math.inf).argmax())
        node = int(internal.nonzero()[k].item())
        raise ValueError(
            f"log_ref: the children of node {node} (depth {tree.depth[node].item()}) logsumexp to "
            f"{lse[k].item():.3g}, not 0 (tolerance {tol:g} for {log_ref.dtype})"
        )
