"""Scoring text with a causal LM: per-token log-probabilities, the Q/V view of the model and the
implicit and implied per-token rewards (Rafailov et al. 2024, secs. 4–5).

Conventions, as in TRL:

- A batch is ``input_ids`` [B, L] with a binary ``attention_mask`` [B, L] (left or right padding)
  and, for preference data, ``completion_mask`` [B, L] marking completion tokens.
- Per-token outputs are [B, L − 1]: entry t belongs to the token ``input_ids[:, t + 1]`` taken in
  the state ``input_ids[:, :t + 1]``. Entries are 0 where that token is padding, and where the
  state holds no real token: the first real token of a row is not a prediction (it has no context),
  so it is 0 like padding and a left-padded row gives exactly the entries of its right-padded twin.
- dtypes: float32 for float32/bfloat16/float16 models, float64 for float64 models.
- Devices: inputs go to the device of the model's input embeddings; ``device_map``-sharded models
  are used in place; outputs stay where the model's head puts them.
- Determinism: every call evaluates the model in eval mode (no dropout) and restores each
  submodule's train/eval flag afterwards, so a model in train mode gives the same numbers twice.

The log-softmax of the whole vocabulary is never materialised for the batch on the fast path (see
:mod:`tokenmdp.lm.model`): the head is applied to blocks of positions (and, for a plain linear
head, tiles of the vocabulary) and each block keeps only the chosen token's logit and the
per-position logsumexp. Because the body and head are called directly,
a wrapper around ``model.forward`` is bypassed, notably accelerate's mixed-precision autocast
(TRL's ``bf16=True``): values are in the model's own precision and differ from such a trainer's by
bf16 rounding (~1e-3).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from toybandit import validation as v
from toybandit.validation import TensorLike

from .model import (
    CausalLM,
    check_batch,
    hidden_or_logits,
    out_dtype,
    same_vocabulary,
    scoring_mode,
    vocab_size,
)

Tensor = torch.Tensor

# Logits per chunk of the output head: 2^22 (16 MB in float32) at a time. Smaller chunks cost more
# head matmuls; this size keeps them large enough to run at full speed (benchmarks/lm_logprobs.py).
CHUNK_LOGITS = 2**22
# A plain linear head goes in blocks of TILE_ROWS positions × TILE_VOCAB rows of its weight: one
# 4 MB float32 block of logits, written into the same buffer every time, stays in the CPU's cache
# through its matmul, gather and logsumexp, and no block is allocated afresh (larger blocks made
# the head's time half as large again on the 2-core machine of benchmarks/lm_logprobs.py).
TILE_ROWS = 1024
TILE_VOCAB = 1024


def _logsumexp_(logits: Tensor) -> Tensor:
    """logsumexp over the last dim, overwriting ``logits`` (a chunk this module owns) instead of
    allocating an exp() copy of it. Needs a finite maximum per row (logits are finite)."""
    m = logits.amax(-1, keepdim=True)
    return logits.sub_(m).exp_().sum(-1).log_().add_(m.squeeze(-1))


def scored_entries(attention_mask: Tensor) -> Tensor:
    """bool [B, L − 1]: entry t is a prediction (its token is real and its state holds a real
    token)."""
    mask = torch.as_tensor(attention_mask).bool()
    return mask[:, 1:] & (mask.cumsum(-1)[:, :-1] > 0)


def _scores(model, input_ids, attention_mask) -> tuple[Tensor, Tensor]:
    """(chosen logit, logsumexp over the vocabulary) at each state, [B, L − 1] each; 0 where the
    entry is not a prediction (:func:`scored_entries`)."""
    input_ids, attention_mask = check_batch(model, input_ids, attention_mask)
    dtype = out_dtype(model)
    n_vocab = vocab_size(model)
    with torch.no_grad(), scoring_mode(model):
        hidden, head = hidden_or_logits(model, input_ids, attention_mask)
        b, n = hidden.shape[0], hidden.shape[1] - 1
        targets = input_ids[:, 1:].to(hidden.device)
        chosen = torch.empty(b, n, dtype=dtype, device=hidden.device)
        lse = torch.empty_like(chosen)
        step = max(1, CHUNK_LOGITS // n_vocab)
        if _plain_linear(head) and n_vocab > TILE_VOCAB:
            flat = hidden[:, :-1].reshape(b * n, -1)
            _tiled(head, flat, targets.reshape(-1), chosen.view(-1), lse.view(-1), dtype)
            rows_of = []
        elif head is not None:  # hidden states are small: one flat [B·(L−1), H] matrix
            rows_of = [(chosen.view(-1), lse.view(-1), hidden[:, :-1].reshape(b * n, -1),
                        targets.reshape(-1))]  # fmt: skip
        else:  # full logits: row by row, never a copy of the whole [B, L, V]
            rows_of = [(chosen[i], lse[i], hidden[i, :-1], targets[i]) for i in range(b)]
        for out_chosen, out_lse, source, target in rows_of:
            for start in range(0, source.shape[0], step):
                rows = slice(start, start + step)
                # a tensor this function owns, in ``dtype``: _logsumexp_ overwrites it
                chunk = head(source[rows]) if head is not None else source[rows]
                logits = chunk.to(dtype, copy=head is None)
                out_chosen[rows] = logits.gather(-1, target[rows, None].to(logits.device))[:, 0]
                out_lse[rows] = _logsumexp_(logits)
    real = scored_entries(attention_mask).to(chosen.device)
    return chosen.masked_fill(~real, 0.0), lse.masked_fill(~real, 0.0)


def _plain_linear(head) -> bool:
    """An ``nn.Linear`` whose call is its weight and bias alone: no forward hook or pre-hook
    (its own or global) and no per-instance ``forward`` (accelerate's wrappers), which
    :func:`_tiled` would bypass by reading the weight."""
    if type(head) is not torch.nn.Linear:
        return False
    module = torch.nn.modules.module
    hooks = (head._forward_hooks, head._forward_pre_hooks,
             getattr(module, "_global_forward_hooks", None),
             getattr(module, "_global_forward_pre_hooks", None))  # fmt: skip
    return not any(hooks) and "forward" not in vars(head)


def _tiled(head, hidden: Tensor, targets: Tensor, chosen: Tensor, lse: Tensor, dtype) -> None:
    """Chosen logit and logsumexp of ``head(hidden)`` for a plain ``nn.Linear`` head, in blocks of
    ``TILE_ROWS`` positions × ``TILE_VOCAB`` rows of the weight: each block's logits are written
    into one reused buffer, the chosen logit gathered from the block that holds it, and the
    blocks' logsumexps combined per position (one logsumexp over the tiles)."""
    weight, bias = head.weight, head.bias
    n_vocab = weight.shape[0]
    tiles = range(0, n_vocab, TILE_VOCAB)
    rows_per = max(1, min(TILE_ROWS, hidden.shape[0]))
    width = min(TILE_VOCAB, n_vocab)
    block = torch.empty(rows_per, width, dtype=weight.dtype, device=hidden.device)
    # a half-precision model's logits are cast into a second buffer in ``dtype``
    cast = block if weight.dtype == dtype else torch.empty_like(block, dtype=dtype)
    parts = torch.empty(rows_per, len(tiles), dtype=dtype, device=block.device)
    for start in range(0, hidden.shape[0], rows_per):
        rows = slice(start, start + rows_per)
        h, target = hidden[rows], targets[rows]
        picked = torch.empty(h.shape[0], dtype=dtype, device=block.device)
        for j, v0 in enumerate(tiles):
            v1 = min(v0 + TILE_VOCAB, n_vocab)
            out = block[: h.shape[0], : v1 - v0]
            if bias is None:
                torch.mm(h, weight[v0:v1].t(), out=out)
            else:
                torch.addmm(bias[v0:v1], h, weight[v0:v1].t(), out=out)
            logits = cast[: h.shape[0], : v1 - v0]
            if cast is not block:
                logits.copy_(out)
            inside = (target >= v0) & (target < v1)
            local = (target - v0).clamp(0, v1 - v0 - 1)
            picked = torch.where(inside, logits.gather(-1, local[:, None])[:, 0], picked)
            parts[: h.shape[0], j] = _logsumexp_(logits)
        chosen[rows] = picked
        lse[rows] = torch.logsumexp(parts[: h.shape[0]], -1)


def next_logprobs(model: CausalLM, states: Tensor) -> Tensor:
    """log p(· | state) over the whole vocabulary for each row of ``states`` [P, L] (no padding),
    in the model's output dtype; [P, V]."""
    states = torch.as_tensor(states)
    states, mask = check_batch(model, states, None, min_tokens=1)
    with torch.no_grad(), scoring_mode(model):
        hidden, head = hidden_or_logits(model, states, mask)
        last = hidden[:, -1]
        logits = (head(last) if head is not None else last).to(out_dtype(model))
    return torch.log_softmax(logits, -1)


def token_logprobs(
    model: CausalLM, input_ids: TensorLike, attention_mask: TensorLike | None = None
) -> Tensor:
    """log π(a_t | s_t) for every token after the first: entry t = log p(x_{t+1} | x_{≤t}).

    Computed as the chosen logit minus a per-position logsumexp over the vocabulary (log-softmax,
    Rafailov et al. 2024, eq. (5) with Q = logits), chunk by chunk of positions, so no float32
    log-softmax of the whole batch exists at any time. Position ids follow the attention mask, so
    left- and right-padded batches give the same values.

    Args:
        model: a causal LM (``transformers`` ``*ForCausalLM``, also wrapped by PEFT).
        input_ids: [B, L] token ids; attention_mask: [B, L] binary, 1 on real tokens (all 1 by
            default).

    Returns:
        [B, L − 1]; 0 where the token is padding or is the first real token of its row.

    Raises:
        ValueError: ids outside the vocabulary, a mask of another shape or not binary, fewer than
            2 tokens, a sequence longer than the model's context, or a model without logits.
    """
    chosen, lse = _scores(model, input_ids, attention_mask)
    return chosen - lse


def _completion(completion_mask, like: Tensor) -> Tensor:
    mask = torch.as_tensor(completion_mask)
    if mask.dim() != 2 or mask.shape[0] != like.shape[0] or mask.shape[1] != like.shape[1] + 1:
        raise ValueError(
            f"completion_mask must be [B, L] like input_ids, got {tuple(mask.shape)} for per-token "
            f"values {tuple(like.shape)}"
        )
    if mask.dtype != torch.bool and not ((mask == 0) | (mask == 1)).all():
        raise ValueError("completion_mask must be binary (1 on completion tokens)")
    mask = mask[:, 1:].to(device=like.device, dtype=torch.bool)
    empty = (~mask.any(-1)).nonzero()
    if empty.numel():
        raise ValueError(f"completion_mask: row {empty[0].item()} has an empty completion")
    return mask


def implicit_token_rewards(
    model: CausalLM,
    ref_model: CausalLM,
    input_ids: TensorLike,
    attention_mask: TensorLike | None,
    completion_mask: TensorLike,
    beta: float,
) -> Tensor:
    """β (log π(a_t|s_t) − log π_ref(a_t|s_t)) on completion tokens, 0 elsewhere, [B, L − 1].

    Rafailov et al. 2024, eq. (11) (the per-token colouring of Fig. 1); their sum over a row is
    β log π(y|x)/π_ref(y|x), the quantity DPO compares (eq. (9)). The text version of
    :func:`tokenmdp.implicit_rewards` (which takes a tree).
    """
    same_vocabulary(model, ref_model)
    b = v.positive(beta, "beta")
    lp = token_logprobs(model, input_ids, attention_mask)
    lp_ref = token_logprobs(ref_model, input_ids, attention_mask).to(lp.device)
    mask = _completion(completion_mask, lp)
    return torch.where(mask, b * (lp - lp_ref), 0.0)


class QView(NamedTuple):
    """The language model as a Q-function (Rafailov et al. 2024, sec. 4.1): ``q`` [B, L − 1] is
    Q(s_t, a_t) = β · logit(a_t | s_t) of the token taken, ``v`` [B, L − 1] is
    V(s_t) = β logsumexp of the logits at s_t, so that log π(a_t|s_t) = (Q − V)/β (eq. (5))."""

    q: Tensor
    v: Tensor


def q_values(
    model: CausalLM, input_ids: TensorLike, attention_mask: TensorLike | None, beta: float
) -> QView:
    """Q and V of the model read as Q* = β · logits (Rafailov et al. 2024, eqs. (5)–(6)); see
    :class:`QView`. Entries that are not predictions are 0, as in :func:`token_logprobs`."""
    b = v.positive(beta, "beta")
    chosen, lse = _scores(model, input_ids, attention_mask)
    return QView(b * chosen, b * lse)


def implied_rewards(
    model: CausalLM,
    ref_model: CausalLM,
    input_ids: TensorLike,
    attention_mask: TensorLike | None,
    completion_mask: TensorLike,
    beta: float,
    *,
    eos_token_id: int | None = None,
) -> Tensor:
    """The reward whose optimal Q-function the model is: the inverse map of Lemma 1 on real text.

    r_t = Q(s_t, a_t) − β log π_ref(a_t|s_t) − V(s_{t+1}) (Rafailov et al. 2024, eq. (5) solved
    for r), with Q = β · logits, V = β logsumexp of the logits, and V = 0 at the end of the
    completion and after EOS (terminal states). Along a completion the sum telescopes (sec. 4.1):
    Σ_t r_t = V(s_first) + Σ_t β log π/π_ref, where s_first is the state before the first
    completion token.

    Returns:
        [B, L − 1], 0 outside the completion.
    """
    same_vocabulary(model, ref_model)
    b = v.positive(beta, "beta")
    view = q_values(model, input_ids, attention_mask, beta)
    lp_ref = token_logprobs(ref_model, input_ids, attention_mask).to(view.q.device)
    mask = _completion(completion_mask, view.q)
    # V(s_{t+1}) is V at the next position if that position still scores a completion token
    v_next = torch.cat([view.v[:, 1:], view.v.new_zeros(view.v.shape[0], 1)], -1)
    live = torch.cat([mask[:, 1:], mask.new_zeros(mask.shape[0], 1)], -1)
    if eos_token_id is not None:
        taken = torch.as_tensor(input_ids)[:, 1:].to(mask.device)
        live &= taken != eos_token_id
    reward = view.q - b * lp_ref - torch.where(live, v_next, 0.0)
    return torch.where(mask, reward, 0.0)
