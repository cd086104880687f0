"""A causal LM as an exact token tree: level-by-level expansion of a prompt's continuations, the
model's law on a given tree's edges, and beam search run directly on the model (Rafailov et al.
2024, secs. 4–5)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from toybandit.validation import TensorLike

from ..segments import segment_log_softmax_
from ..tree import TokenTree
from .model import CausalLM, context_length, out_dtype, vocab_size
from .scoring import next_logprobs

Tensor = torch.Tensor


class Expansion(NamedTuple):
    """A model expanded into a :class:`TokenTree`; ``cut`` [N] is the next-token probability mass
    the model puts outside the kept children of each state (0 at leaves)."""

    tree: TokenTree
    cut: Tensor


def expand_tree(
    model: CausalLM,
    prompt_ids: TensorLike,
    tokens: TensorLike,
    depth: int,
    *,
    eos: int | None = None,
    top_k: int | None = None,
    batch_size: int = 256,
) -> Expansion:
    """Expand a model into an exact token tree of the continuations of a prompt.

    Every state (prompt + path) is scored by the model, level by level in batches; its children
    are the allowed ``tokens`` (or the ``top_k`` most likely of them), in increasing id order, and
    ``log_ref`` is the model's next-token log-probability restricted to those children and
    renormalised: π_ref(a|s) = p(a|s)/Σ_{a' kept} p(a'|s). The removed mass is in ``cut``. An EOS
    child is a terminal state, as are the states at ``depth``.

    Args:
        model: a causal LM. prompt_ids: the prompt's token ids (1-D, ≥ 1 token).
        tokens: the allowed vocabulary ids (1-D, distinct, inside the vocabulary).
        depth: ≥ 1 tokens after the prompt.
        eos: the EOS id (must be in ``tokens``), or None.
        top_k: keep the k most likely allowed tokens at each state.

    Returns:
        :class:`Expansion` (tree, cut); ``tree.token`` holds vocabulary ids, ``tree.vocab_size`` is
        the model's vocabulary. The tree is the token MDP of Rafailov et al. 2024, sec. 4 with the
        model as π_ref, on which every tabular check of :mod:`tokenmdp` runs.

    Raises:
        ValueError: the inputs :func:`check_search` refuses.
    """
    prompt, allowed = check_search(model, prompt_ids, depth, tokens, eos=eos, top_k=top_k)
    n_vocab = vocab_size(model)
    dtype = out_dtype(model)
    parents, toks, log_refs, cuts = (
        [torch.tensor([-1])],
        [torch.tensor([-1])],
        [torch.zeros(1, dtype=dtype)],
        [],
    )
    frontier = prompt[None, :]  # token ids of each state of the current level
    frontier_nodes = torch.tensor([0])
    next_node = 1
    for d in range(int(depth)):
        logp = torch.cat(
            [
                next_logprobs(model, frontier[start : start + batch_size]).cpu()
                for start in range(0, frontier.shape[0], batch_size)
            ]
        )[:, allowed]  # [P, |tokens|]
        keep = _top_k(logp, top_k)
        kept_lse = torch.logsumexp(logp.masked_fill(~keep, -math.inf), -1)
        cuts.append((-torch.expm1(kept_lse)).clamp(min=0.0))
        rows, cols = keep.nonzero(as_tuple=True)
        parents.append(frontier_nodes[rows])
        toks.append(allowed[cols])
        log_refs.append((logp - kept_lse[:, None])[rows, cols].to(dtype))
        child_nodes = next_node + torch.arange(rows.numel())
        next_node += rows.numel()
        open_ = torch.ones(rows.numel(), dtype=torch.bool) if eos is None else allowed[cols] != eos
        if d + 1 == int(depth) or not open_.any():
            break
        frontier = torch.cat([frontier[rows][open_], allowed[cols][open_, None]], 1)
        frontier_nodes = child_nodes[open_]
    parent, token = torch.cat(parents), torch.cat(toks)
    tree = TokenTree(parent, token, torch.cat(log_refs), vocab_size=n_vocab, eos=eos)
    cut = torch.zeros(tree.n_nodes, dtype=dtype)
    cut[~tree.terminal] = torch.cat(cuts).to(dtype)[: int((~tree.terminal).sum())]
    return Expansion(tree, cut)


def tree_policy(
    model: CausalLM,
    tree: TokenTree,
    prompt_ids: TensorLike,
    *,
    token_ids: TensorLike | None = None,
    batch_size: int = 256,
) -> Expansion:
    """The model's next-token law on the edges of a given tree, restricted and renormalised.

    For every internal state s of ``tree`` (the prompt followed by the path to s), the model's
    log-probabilities of the children's tokens, renormalised over those children:
    log π_θ(a|s) − log Σ_{a' child of s} π_θ(a'|s). This is :func:`expand_tree` following an existing
    tree's shape, so that a trained model can be compared edge by edge with π* on that tree.

    Args:
        tree: the tree; ``tree.token`` holds tree tokens. prompt_ids: the model ids of s₀.
        token_ids: model id of each tree token (a 1-D map, tree token t → ``token_ids[t]``);
            identity by default.

    Returns:
        :class:`Expansion` whose ``tree`` is ``tree`` with ``log_ref`` replaced by the model's law,
        and ``cut`` the model's mass outside the children of each state.

    Raises:
        ValueError: ``token_ids`` too short for the tree's tokens, or the inputs
            :func:`check_search` refuses (the mapped ids play the part of ``tokens``).
    """
    mapping = (
        torch.arange(int(tree.token.max()) + 1)
        if token_ids is None
        else torch.as_tensor(token_ids, dtype=torch.long).reshape(-1)
    )
    if int(tree.token.max()) >= mapping.numel():
        raise ValueError(f"token_ids maps {mapping.numel()} tree tokens; the tree uses more")
    used = mapping[tree.token[1:].cpu().unique()]
    prompt, _ = check_search(model, prompt_ids, max(tree.max_depth, 1), used, name="token_ids")
    ids = torch.cat([torch.tensor([-1]), mapping[tree.token[1:].cpu()]])
    internal = (~tree.terminal).nonzero().squeeze(-1).cpu()
    paths = tree.path_nodes(internal).cpu()
    dtype = out_dtype(model)
    logp = torch.empty(tree.n_nodes, dtype=dtype)
    logp[0] = 0.0
    cut = torch.zeros(tree.n_nodes, dtype=dtype)
    parent, n_children = tree.parent.cpu(), tree.n_children.cpu()
    by_depth = tree.depth.cpu()[internal]
    for d in range(tree.max_depth):  # states of one depth share a length: one batch each
        rows = (by_depth == d).nonzero().squeeze(-1)
        for start in range(0, rows.numel(), batch_size):
            chunk = rows[start : start + batch_size]
            states = torch.cat(
                [
                    prompt.expand(chunk.numel(), -1),
                    ids[paths[chunk, :d].clamp(min=0)].reshape(chunk.numel(), d),
                ],
                1,
            )
            full = next_logprobs(model, states).cpu()
            nodes = internal[chunk]  # consecutive internal states: their children are one block
            kids = ((parent >= nodes[0]) & (parent <= nodes[-1])).nonzero().squeeze(-1)
            which = torch.searchsorted(nodes, parent[kids])
            kept = full[which, ids[kids]]
            total = segment_log_softmax_(kept, n_children[nodes])  # kept ← log π over siblings
            logp[kids] = kept
            cut[nodes] = (-torch.expm1(total)).clamp(min=0.0)
    shaped = TokenTree(
        tree.parent.cpu(), tree.token.cpu(), logp, vocab_size=tree.vocab_size, eos=tree.eos
    )
    return Expansion(shaped, cut)


def model_beam_search(
    model: CausalLM,
    prompt_ids: TensorLike,
    tokens: TensorLike,
    depth: int,
    width: int,
    *,
    eos: int | None = None,
    top_k: int | None = None,
) -> tuple[list[int], float]:
    """Likelihood beam search run directly on the model, with the tree's semantics.

    Each step scores the open beam members with the model, restricts and renormalises the
    next-token law as :func:`expand_tree` does, and keeps the ``width`` best cumulative
    log-probabilities among the extended and the finished sequences (finished ones keep their
    slots; ties to the earlier state and then the smaller token id) — the same search as
    :func:`tokenmdp.beam_search` on the expanded tree with scores ``log_ref`` (Rafailov et al.
    2024, sec. 5.2), without expanding the tree. Inputs are checked as in :func:`expand_tree`.

    Returns:
        (the best token sequence after the prompt, its log-probability under the tree's π_ref).
    """
    if isinstance(width, bool) or int(width) != width or int(width) < 1:
        raise ValueError(f"width must be an integer ≥ 1, got {width!r}")
    prompt, allowed = check_search(model, prompt_ids, depth, tokens, eos=eos, top_k=top_k)
    beam: list[tuple[list[int], float, bool]] = [([], 0.0, False)]
    for d in range(int(depth)):
        if all(done for _, _, done in beam):
            break
        open_rows = [b for b in beam if not b[2]]
        ids = torch.stack(
            [torch.cat([prompt, torch.tensor(p, dtype=torch.long)]) for p, _, _ in open_rows]
        )
        logp = next_logprobs(model, ids).cpu().double()[:, allowed]
        logp = logp.masked_fill(~_top_k(logp, top_k), -math.inf)
        logp = logp - torch.logsumexp(logp, -1, keepdim=True)
        candidates = [(p, s, True) for p, s, done in beam if done]
        for (path, score, _), row in zip(open_rows, logp, strict=True):
            for j in range(allowed.numel()):
                if row[j] > -math.inf:
                    token = int(allowed[j])
                    finished = d + 1 == int(depth) or (eos is not None and token == eos)
                    candidates.append(([*path, token], score + float(row[j]), finished))
        order = sorted(range(len(candidates)), key=lambda i: -candidates[i][1])  # stable
        beam = [candidates[i] for i in order[: int(width)]]
    best = max(beam, key=lambda b: b[1])
    return best[0], best[1]


def _top_k(logp: Tensor, top_k: int | None) -> Tensor:
    """bool mask [P, K] of the ``top_k`` largest entries of each row (all of them for None)."""
    keep = torch.ones_like(logp, dtype=torch.bool)
    if top_k is not None and int(top_k) < logp.shape[-1]:
        keep = torch.zeros_like(keep).scatter_(1, logp.topk(int(top_k), -1).indices, True)
    return keep


def check_search(
    model: CausalLM,
    prompt_ids: TensorLike,
    depth: int,
    tokens: TensorLike,
    *,
    eos: int | None = None,
    top_k: int | None = None,
    name: str = "tokens",
) -> tuple[Tensor, Tensor]:
    """The input check shared by :func:`expand_tree`, :func:`tree_policy` and
    :func:`model_beam_search`; returns (prompt [P], the allowed ids sorted).

    Raises:
        ValueError: ``depth`` not an integer ≥ 1; ``prompt_ids`` empty, outside the vocabulary, or
            with no room for ``depth`` more tokens in the model's context; ``tokens`` (``name``)
            empty, repeated or outside the vocabulary; ``eos`` not one of them; ``top_k`` < 1.
    """
    if isinstance(depth, bool) or int(depth) != depth or int(depth) < 1:
        raise ValueError(f"depth must be an integer ≥ 1, got {depth!r}")
    depth = int(depth)
    if top_k is not None and (isinstance(top_k, bool) or int(top_k) != top_k or int(top_k) < 1):
        raise ValueError(f"top_k must be an integer ≥ 1, got {top_k!r}")
    n_vocab = vocab_size(model)
    prompt = torch.as_tensor(prompt_ids).reshape(-1)
    if prompt.is_floating_point() or prompt.numel() == 0:
        raise ValueError("prompt_ids must hold at least one integer token id")
    prompt = prompt.long().cpu()
    if (prompt < 0).any() or (prompt >= n_vocab).any():
        raise ValueError(f"prompt_ids must lie in the model's vocabulary [0, {n_vocab})")
    context = context_length(model)
    if context is not None and prompt.numel() + depth > context:
        raise ValueError(
            f"prompt_ids ({prompt.numel()}) + depth ({depth}) exceed the model's context of "
            f"{context}"
        )
    allowed = torch.as_tensor(tokens).reshape(-1)
    if allowed.is_floating_point() or allowed.numel() == 0:
        raise ValueError(f"{name} must be a non-empty set of integer vocabulary ids")
    allowed = allowed.long().cpu()
    if allowed.unique().numel() != allowed.numel():
        raise ValueError(f"{name} must be distinct vocabulary ids, got repeats")
    if (allowed < 0).any() or (allowed >= n_vocab).any():
        raise ValueError(f"{name} must lie in the model's vocabulary [0, {n_vocab})")
    if eos is not None and int(eos) not in allowed.tolist():
        raise ValueError(f"eos {eos} must be one of the allowed {name}")
    return prompt, allowed.sort().values
