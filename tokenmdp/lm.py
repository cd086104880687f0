"""A Hugging Face causal LM seen as a token MDP (Rafailov et al. 2024, secs. 4–5).

Works with any ``transformers`` causal LM (the module itself imports no ``transformers`` code; install
the ``lm`` extra to build models). Conventions, as in TRL:

- A batch is ``input_ids`` [B, L] with ``attention_mask`` [B, L] (left or right padding) and, for
  preference data, ``completion_mask`` [B, L] marking completion tokens.
- Per-token outputs are [B, L − 1]: entry t belongs to the token ``input_ids[:, t + 1]`` taken in the
  state ``input_ids[:, :t + 1]``; entries whose token is padding are 0.
- dtypes: log-probabilities, Q and V are float32 for float32/bfloat16/float16 models and float64
  for float64 models, whatever the model computes in.
- Devices: inputs are moved to the device of the model's input embeddings; ``device_map``-sharded
  models are used as they are (never moved); outputs stay where the model's head puts them.

The log-softmax of the whole vocabulary is never materialised for the batch: the transformer body
(``model.base_model``) runs once, then the output head is applied to chunks of positions, and each
chunk keeps only the chosen token's logit and the per-position logsumexp. Models whose logits are
not ``head(hidden)`` (final soft-capping or a logit scale) go through ``model(...)`` instead. Since
the body and head are called directly, a wrapper around ``model.forward`` is bypassed — notably
accelerate's mixed-precision autocast, which TRL installs by default (``bf16=True``): the values here
are then in the model's own precision, and differ from such a trainer's by bf16 rounding (~1e-3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch

from toybandit import _validation as v
from toybandit import losses

from .tree import TokenTree, segment_logsumexp

Tensor = torch.Tensor

# Logits per chunk of the output head: 2^22 (16 MB in float32) at a time. Smaller chunks cost more
# head matmuls; this size keeps them large enough to run at full speed (benchmarks/lm_logprobs.py).
_CHUNK_LOGITS = 2**22


# -- model facts and input checks ------------------------------------------------------------------


def vocab_size(model) -> int:
    """Rows of the model's output head (the vocabulary it scores)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and hasattr(head, "weight"):
        return int(head.weight.shape[0])
    return int(model.config.vocab_size)


def _context_length(model) -> int | None:
    config = model.config
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, name, None)
        if value:
            return int(value)
    return None


def _input_device(model) -> torch.device:
    return model.get_input_embeddings().weight.device


def _out_dtype(model) -> torch.dtype:
    dtype = next(model.parameters()).dtype
    return torch.float64 if dtype == torch.float64 else torch.float32


def _ids(model, input_ids, attention_mask, *, min_tokens: int = 2) -> tuple[Tensor, Tensor]:
    input_ids = torch.as_tensor(input_ids)
    if input_ids.dim() != 2 or input_ids.is_floating_point():
        raise ValueError(
            f"input_ids must be an integer tensor [B, L], got {input_ids.dtype} "
            f"{tuple(input_ids.shape)}"
        )
    if input_ids.shape[1] < min_tokens:
        raise ValueError(f"input_ids must hold at least {min_tokens} token(s) per row")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    attention_mask = torch.as_tensor(attention_mask)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, got "
            f"{tuple(attention_mask.shape)}"
        )
    n = vocab_size(model)
    real = attention_mask.bool()
    if (input_ids[real] < 0).any() or (input_ids[real] >= n).any():
        raise ValueError(
            f"input_ids hold token ids outside the model's vocabulary [0, {n}): "
            f"range [{input_ids[real].min().item()}, {input_ids[real].max().item()}]"
        )
    context = _context_length(model)
    longest = int(attention_mask.sum(-1).max())
    if context is not None and longest > context:
        raise ValueError(
            f"a sequence of {longest} tokens exceeds the model's context of {context}; "
            "nothing is truncated silently"
        )
    device = _input_device(model)
    return input_ids.to(device), attention_mask.to(device)


def _same_vocabulary(model, ref_model) -> None:
    if vocab_size(model) != vocab_size(ref_model):
        raise ValueError(
            f"model and ref_model score different vocabularies: {vocab_size(model)} and "
            f"{vocab_size(ref_model)} tokens"
        )


# -- the scoring core -----------------------------------------------------------------------------


def _splittable(model) -> bool:
    """The logits are exactly ``head(body(x))`` (no soft-capping or scaling after the head)."""
    config = model.config
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return False
    base = getattr(model, "base_model", None)
    return base is not None and base is not model and model.get_output_embeddings() is not None


def _forward(model, input_ids: Tensor, attention_mask: Tensor):
    """(hidden states, head) when the logits are head(hidden), else (logits, None); [B, L, ·]."""
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    kwargs = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": position_ids,
    }
    with torch.no_grad():
        if _splittable(model):
            return model.base_model(**kwargs).last_hidden_state, model.get_output_embeddings()
        return model(**kwargs).logits, None


def _scores(model, input_ids, attention_mask):
    """(chosen logit, logsumexp over the vocabulary) at each state, [B, L − 1] each."""
    input_ids, attention_mask = _ids(model, input_ids, attention_mask)
    hidden, head = _forward(model, input_ids, attention_mask)
    dtype = _out_dtype(model)
    hidden = hidden[:, :-1]
    b, n = hidden.shape[:2]
    flat_hidden = hidden.reshape(b * n, hidden.shape[-1])
    flat_targets = input_ids[:, 1:].reshape(-1)
    chosen = torch.empty(b * n, dtype=dtype, device=hidden.device)
    lse = torch.empty_like(chosen)
    step = max(1, _CHUNK_LOGITS // vocab_size(model))
    with torch.no_grad():
        for start in range(0, b * n, step):
            rows = slice(start, start + step)
            logits = (head(flat_hidden[rows]) if head is not None else flat_hidden[rows]).to(dtype)
            chosen[rows] = logits.gather(-1, flat_targets[rows, None].to(logits.device)).squeeze(-1)
            lse[rows] = _logsumexp_(logits)
    real = attention_mask[:, 1:].bool().to(chosen.device)
    return chosen.reshape(b, n).masked_fill(~real, 0.0), lse.reshape(b, n).masked_fill(~real, 0.0)


def _logsumexp_(logits: Tensor) -> Tensor:
    """logsumexp over the last dim, overwriting ``logits`` (a chunk this module owns) instead of
    allocating an exp() copy of it. Needs a finite maximum per row (logits are finite)."""
    m = logits.amax(-1, keepdim=True)
    return logits.sub_(m).exp_().sum(-1).log_().add_(m.squeeze(-1))


def _next_logprobs(model, states: Tensor) -> Tensor:
    """log p(· | state) over the whole vocabulary for each row of ``states`` [P, L] (no padding)."""
    states, mask = (
        _ids(model, states, None)
        if states.shape[1] > 1
        else (states.to(_input_device(model)), torch.ones_like(states, device=_input_device(model)))
    )
    hidden, head = _forward(model, states, mask)
    with torch.no_grad():
        last = hidden[:, -1]
        logits = (head(last) if head is not None else last).to(_out_dtype(model))
    return torch.log_softmax(logits, -1)


def token_logprobs(model, input_ids, attention_mask=None) -> Tensor:
    """log π(a_t | s_t) for every token after the first: entry t = log p(x_{t+1} | x_{≤t}).

    Computed as the chosen logit minus a per-position logsumexp over the vocabulary, in float32
    (float64 for float64 models), chunk by chunk of positions, so no float32 log-softmax of the
    whole batch exists at any time (TRL's ``selective_log_softmax`` does the same on full logits).
    Position ids follow the attention mask, so left- and right-padded batches give the same values.

    Args:
        model: a causal LM (``transformers`` ``*ForCausalLM``).
        input_ids: [B, L] token ids; attention_mask: [B, L], 1 on real tokens (all 1 by default).

    Returns:
        [B, L − 1]; 0 where the token is padding.

    Raises:
        ValueError: ids outside the vocabulary, shapes that disagree, fewer than 2 tokens, or a
            sequence longer than the model's context.
    """
    chosen, lse = _scores(model, input_ids, attention_mask)
    return chosen - lse


def _completion(completion_mask, like: Tensor) -> Tensor:
    mask = torch.as_tensor(completion_mask)
    if mask.shape[0] != like.shape[0] or mask.shape[1] != like.shape[1] + 1:
        raise ValueError(
            f"completion_mask must be [B, L] like input_ids, got {tuple(mask.shape)} for per-token "
            f"values {tuple(like.shape)}"
        )
    mask = mask[:, 1:].to(device=like.device, dtype=torch.bool)
    empty = (~mask.any(-1)).nonzero()
    if empty.numel():
        raise ValueError(f"row {empty[0].item()} has an empty completion")
    return mask


def implicit_rewards(
    model, ref_model, input_ids, attention_mask, completion_mask, beta: float
) -> Tensor:
    """β (log π(a_t|s_t) − log π_ref(a_t|s_t)) on completion tokens, 0 elsewhere, [B, L − 1].

    Rafailov et al. 2024, eq. (11) (the per-token colouring of Fig. 1); their sum over a row is
    β log π(y|x)/π_ref(y|x), the quantity DPO compares (eq. (9)).
    """
    _same_vocabulary(model, ref_model)
    beta = v.positive(beta, "beta")
    lp = token_logprobs(model, input_ids, attention_mask)
    lp_ref = token_logprobs(ref_model, input_ids, attention_mask).to(lp.device)
    mask = _completion(completion_mask, lp)
    return torch.where(mask, beta * (lp - lp_ref), 0.0)


class QView(NamedTuple):
    """The language model as a Q-function (Rafailov et al. 2024, sec. 4.1): ``q`` [B, L − 1] is
    Q(s_t, a_t) = β · logit(a_t | s_t) of the token taken, ``v`` [B, L − 1] is
    V(s_t) = β logsumexp of the logits at s_t, so that log π(a_t|s_t) = (Q − V)/β (eq. (5))."""

    q: Tensor
    v: Tensor


def q_values(model, input_ids, attention_mask, beta: float) -> QView:
    """Q and V of the model read as Q* = β · logits (eqs. (5)–(6)); see :class:`QView`."""
    beta = v.positive(beta, "beta")
    chosen, lse = _scores(model, input_ids, attention_mask)
    return QView(beta * chosen, beta * lse)


def implied_rewards(
    model,
    ref_model,
    input_ids,
    attention_mask,
    completion_mask,
    beta: float,
    *,
    eos_token_id: int | None = None,
) -> Tensor:
    """The reward whose optimal Q-function the model is: the inverse map of Lemma 1 on real text.

    r_t = Q(s_t, a_t) − β log π_ref(a_t|s_t) − V(s_{t+1}), with Q = β · logits, V = β logsumexp of
    the logits, and V = 0 at the end of the completion and after EOS (terminal states). Along a
    completion the sum telescopes (sec. 4.1): Σ_t r_t = V(s_first) + Σ_t β log π/π_ref, where
    s_first is the state before the first completion token.

    Returns:
        [B, L − 1], 0 outside the completion.
    """
    _same_vocabulary(model, ref_model)
    beta = v.positive(beta, "beta")
    view = q_values(model, input_ids, attention_mask, beta)
    lp_ref = token_logprobs(ref_model, input_ids, attention_mask).to(view.q.device)
    mask = _completion(completion_mask, view.q)
    # V(s_{t+1}) is V at the next position if that position still scores a completion token
    v_next = torch.cat([view.v[:, 1:], view.v.new_zeros(view.v.shape[0], 1)], -1)
    live = torch.cat([mask[:, 1:], mask.new_zeros(mask.shape[0], 1)], -1)
    if eos_token_id is not None:
        taken = torch.as_tensor(input_ids)[:, 1:].to(mask.device)
        live &= taken != eos_token_id
    reward = view.q - beta * lp_ref - torch.where(live, v_next, 0.0)
    return torch.where(mask, reward, 0.0)


# -- preference data in TRL's format ----------------------------------------------------------------


def preference_batch(tokenizer, rows, *, add_eos: bool = True) -> dict[str, Tensor]:
    """Tokenise preference rows as TRL's ``DPOTrainer`` does, into one right-padded batch.

    Rows are ``{"prompt", "chosen", "rejected"}`` strings (a list of dicts or a dict of lists), or
    already tokenised ``{"prompt_ids", "chosen_ids", "rejected_ids"}``. For strings, EOS is appended
    to each completion unless present; prompt, prompt + chosen and prompt + rejected are tokenised
    and the completion starts where the token ids diverge from the prompt's (TRL 1.x).

    Returns:
        ``input_ids``, ``attention_mask``, ``completion_mask``, each [2B, L]: the B chosen rows
        first, then the B rejected rows.

    Raises:
        ValueError: missing keys, an empty completion, or a tokenizer producing ids it does not know.
    """
    rows = _as_rows(rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sequences = {"chosen": [], "rejected": []}
    for i, row in enumerate(rows):
        if {"prompt_ids", "chosen_ids", "rejected_ids"} <= row.keys():
            prompt = list(row["prompt_ids"])
            pair = {k: list(row[f"{k}_ids"]) for k in sequences}
        elif {"prompt", "chosen", "rejected"} <= row.keys():
            text = {k: row[k] for k in sequences}
            if add_eos:
                eos = tokenizer.eos_token
                text = {k: v if v.endswith(eos) else v + eos for k, v in text.items()}
            prompt = tokenizer(row["prompt"])["input_ids"]
            full = {k: tokenizer(row["prompt"] + text[k])["input_ids"] for k in sequences}
            cut = min(_common_prefix(prompt, full[k]) for k in sequences)
            prompt, pair = prompt[:cut], {k: full[k][cut:] for k in sequences}
        else:
            raise ValueError(
                f"row {i} needs 'prompt', 'chosen', 'rejected' (strings) or their '_ids' versions"
            )
        for k in sequences:
            if not pair[k]:
                raise ValueError(f"row {i} has an empty {k} completion")
            sequences[k].append((prompt, pair[k]))
    pairs = sequences["chosen"] + sequences["rejected"]
    width = max(len(p) + len(c) for p, c in pairs)
    ids = torch.full((len(pairs), width), pad, dtype=torch.long)
    attention = torch.zeros_like(ids)
    completion = torch.zeros_like(ids)
    for i, (p, c) in enumerate(pairs):
        ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        attention[i, : len(p) + len(c)] = 1
        completion[i, len(p) : len(p) + len(c)] = 1
    known = len(tokenizer)
    if ids.max() >= known:
        raise ValueError(f"tokenizer produced id {ids.max().item()} ≥ its own size {known}")
    return {"input_ids": ids, "attention_mask": attention, "completion_mask": completion}


PREFERENCE_LOSSES = ("dpo", "ipo", "ipo_mean")
"""``dpo``: TRL's "sigmoid"; ``ipo``: IPO on summed log-ratios (Azar et al. 2023; Nguyen 2025,
eq. (12)); ``ipo_mean``: TRL's "ipo", log-ratios averaged over completion tokens."""


def sequence_logratios(model, ref_model, batch: Mapping[str, Tensor]) -> Tensor:
    """log π(y|x)/π_ref(y|x) summed over the completion tokens of each row, [2B]."""
    return implicit_rewards(
        model,
        ref_model,
        batch["input_ids"],
        batch["attention_mask"],
        batch["completion_mask"],
        1.0,
    ).sum(-1)


def preference_loss(
    model,
    ref_model,
    batch: Mapping[str, Tensor],
    loss: str = "dpo",
    *,
    beta: float,
    label_smoothing: float = 0.0,
    tokenizer=None,
) -> Tensor:
    """Per-pair DPO/IPO loss of a :func:`preference_batch`, through :mod:`toybandit.losses`.

    Rafailov et al. 2024, eq. (9) (``dpo``) and the IPO loss with summed (``ipo``) or token-averaged
    (``ipo_mean``, TRL's "ipo") log-ratios, τ = ``beta``.

    Returns:
        [B] losses (``.mean()`` is TRL's reported loss).

    Raises:
        ValueError: an unknown ``loss``; a ``tokenizer`` whose size exceeds the model's vocabulary;
            model and ref_model with different vocabularies.
    """
    if loss not in PREFERENCE_LOSSES:
        raise ValueError(f"loss must be one of {PREFERENCE_LOSSES}, got {loss!r}")
    if tokenizer is not None and len(tokenizer) > vocab_size(model):
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens but the model scores only "
            f"{vocab_size(model)}: they do not belong together"
        )
    logratio = sequence_logratios(model, ref_model, batch)
    chosen, rejected = logratio.chunk(2)
    if loss == "dpo":
        return losses.dpo(chosen, rejected, beta, label_smoothing)
    if loss == "ipo":
        return losses.ipo(chosen, rejected, beta)
    lengths = batch["completion_mask"].sum(-1).to(logratio)
    n_chosen, n_rejected = lengths.chunk(2)
    return losses.ipo(chosen / n_chosen, rejected / n_rejected, beta)


# -- the model as an exact tree ---------------------------------------------------------------------


class Expansion(NamedTuple):
    """A model expanded into a :class:`TokenTree`; ``cut`` [N] is the next-token probability mass
    the model puts outside the kept children of each state (0 at leaves)."""

    tree: TokenTree
    cut: Tensor


def expand_tree(
    model,
    prompt_ids,
    tokens,
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
        the model's vocabulary.
    """
    n_vocab = vocab_size(model)
    allowed = torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
    if allowed.numel() == 0 or allowed.unique().numel() != allowed.numel():
        raise ValueError("tokens must be a non-empty set of distinct vocabulary ids")
    if (allowed < 0).any() or (allowed >= n_vocab).any():
        raise ValueError(f"tokens must lie in the model's vocabulary [0, {n_vocab})")
    if eos is not None and int(eos) not in allowed.tolist():
        raise ValueError(f"eos {eos} must be one of the allowed tokens")
    if int(depth) < 1:
        raise ValueError(f"depth must be ≥ 1, got {depth}")
    if top_k is not None and not 1 <= int(top_k):
        raise ValueError(f"top_k must be ≥ 1, got {top_k}")
    prompt = _prompt(model, prompt_ids, int(depth))
    allowed = allowed.sort().values
    dtype = _out_dtype(model)
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
                _next_logprobs(model, frontier[start : start + batch_size]).cpu()
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
    model, tree: TokenTree, prompt_ids, *, token_ids=None, batch_size: int = 256
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
    """
    n_vocab = vocab_size(model)
    prompt = _prompt(model, prompt_ids, tree.max_depth)
    mapping = (
        torch.arange(int(tree.token.max()) + 1)
        if token_ids is None
        else torch.as_tensor(token_ids, dtype=torch.long).reshape(-1)
    )
    if int(tree.token.max()) >= mapping.numel():
        raise ValueError(f"token_ids maps {mapping.numel()} tree tokens; the tree uses more")
    ids = torch.cat([torch.tensor([-1]), mapping[tree.token[1:].cpu()]])
    if (ids[1:] < 0).any() or (ids[1:] >= n_vocab).any():
        raise ValueError(f"the tree's tokens must map into the vocabulary [0, {n_vocab})")
    internal = (~tree.terminal).nonzero().squeeze(-1).cpu()
    paths = tree.path_nodes(internal).cpu()
    dtype = _out_dtype(model)
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
            full = _next_logprobs(model, states).cpu()
            nodes = internal[chunk]  # consecutive internal states: their children are one block
            kids = ((parent >= nodes[0]) & (parent <= nodes[-1])).nonzero().squeeze(-1)
            which = torch.searchsorted(nodes, parent[kids])
            kept = full[which, ids[kids]]
            total = segment_logsumexp(kept, n_children[nodes])
            logp[kids] = kept - total[which]
            cut[nodes] = (-torch.expm1(total)).clamp(min=0.0)
    shaped = TokenTree(
        tree.parent.cpu(), tree.token.cpu(), logp, vocab_size=tree.vocab_size, eos=tree.eos
    )
    return Expansion(shaped, cut)


def beam_search(
    model,
    prompt_ids,
    tokens,
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
    :func:`tokenmdp.beam_search` on the expanded tree with scores ``log_ref``.

    Returns:
        (the best token sequence after the prompt, its log-probability under the tree's π_ref).
    """
    if int(width) < 1:
        raise ValueError(f"width must be ≥ 1, got {width}")
    prompt = _prompt(model, prompt_ids, int(depth))
    allowed = torch.as_tensor(tokens, dtype=torch.long).reshape(-1).sort().values
    beam: list[tuple[list[int], float, bool]] = [([], 0.0, False)]
    for d in range(int(depth)):
        if all(done for _, _, done in beam):
            break
        open_rows = [b for b in beam if not b[2]]
        ids = torch.stack(
            [torch.cat([prompt, torch.tensor(p, dtype=torch.long)]) for p, _, _ in open_rows]
        )
        logp = _next_logprobs(model, ids).cpu().double()[:, allowed]
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


# -- Fig. 1: credit assignment -----------------------------------------------------------------------


def plot_credit(rows: Sequence[tuple[Sequence[str], Any]], *, titles=None, ax=None):
    """Tokens coloured by their implicit reward (Rafailov et al. 2024, Fig. 1).

    Args:
        rows: one (tokens, rewards) per response: token strings and a 1-D array-like of the same
            length (e.g. :func:`implicit_rewards` of the completion tokens).
        titles: optional label per row (e.g. "chosen", "rejected").
        ax: a matplotlib Axes to draw in; a new figure by default.

    Returns:
        The matplotlib Figure. Colours: a diverging map centred at 0 (red < 0 < blue), shared by
        all rows.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    values = [torch.as_tensor(r, dtype=torch.float64).reshape(-1) for _, r in rows]
    for (tokens, _), row_values in zip(rows, values, strict=True):
        if len(tokens) != row_values.numel():
            raise ValueError(f"{len(tokens)} tokens but {row_values.numel()} rewards in a row")
    bound = max(1e-12, max(float(x.abs().max()) for x in values if x.numel()))
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound)
    cmap = plt.get_cmap("RdBu")
    if ax is None:
        longest = max(len(tokens) for tokens, _ in rows)
        fig, ax = plt.subplots(figsize=(min(14, 3 + 0.7 * longest), 0.7 * len(rows) + 0.8))
    else:
        fig = ax.figure
    ax.set_axis_off()
    width = max(len(tokens) for tokens, _ in rows)
    left = 0.2 if titles else 0.0
    slot = (1 - left) / max(width, 1)
    for i, ((tokens, _), row_values) in enumerate(zip(rows, values, strict=True)):
        y = 1 - (i + 0.5) / len(rows)
        if titles:
            ax.text(0.0, y, titles[i], va="center", ha="left", fontsize=9, weight="bold")
        for k, (token, value) in enumerate(zip(tokens, row_values.tolist(), strict=True)):
            dark = abs(float(norm(value)) - 0.5) > 0.3  # white text on strong colours
            ax.text(
                left + k * slot, y, token, va="center", ha="left", fontsize=9, family="monospace",
                color="white" if dark else "black",
                bbox={"facecolor": cmap(norm(value)), "edgecolor": "none", "pad": 1.5},
            )  # fmt: skip
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="β log π/π_ref")
    return fig


# -- helpers ------------------------------------------------------------------------------------------


def _prompt(model, prompt_ids, depth: int) -> Tensor:
    """The prompt as 1-D ids, checked: non-empty, in the vocabulary, and room for ``depth`` more
    tokens in the model's context."""
    n_vocab = vocab_size(model)
    prompt = torch.as_tensor(prompt_ids, dtype=torch.long).reshape(-1)
    if prompt.numel() == 0:
        raise ValueError("prompt_ids must hold at least one token")
    if (prompt < 0).any() or (prompt >= n_vocab).any():
        raise ValueError(f"prompt_ids must lie in the model's vocabulary [0, {n_vocab})")
    context = _context_length(model)
    if context is not None and prompt.numel() + depth > context:
        raise ValueError(
            f"prompt ({prompt.numel()}) + depth ({depth}) exceeds the model's context of {context}"
        )
    return prompt


def _top_k(logp: Tensor, top_k: int | None) -> Tensor:
    """bool mask [P, K] of the ``top_k`` largest entries of each row (all of them for None)."""
    keep = torch.ones_like(logp, dtype=torch.bool)
    if top_k is not None and int(top_k) < logp.shape[-1]:
        keep = torch.zeros_like(keep).scatter_(1, logp.topk(int(top_k), -1).indices, True)
    return keep


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _as_rows(rows) -> list[Mapping[str, Any]]:
    if isinstance(rows, Mapping):
        keys = list(rows)
        return [dict(zip(keys, values, strict=True)) for values in zip(*rows.values(), strict=True)]
    return list(rows)
