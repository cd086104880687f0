"""Preference data and losses in TRL's format: tokenised batches as ``DPOTrainer`` builds them,
sequence log-ratios and the DPO/IPO losses on them (equal to TRL's, see the tests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import torch

from toybandit import losses

from .model import CausalLM, vocab_size
from .scoring import implicit_token_rewards

if TYPE_CHECKING:
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

Tensor = torch.Tensor


def preference_batch(
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
    *,
    add_eos: bool = True,
) -> dict[str, Tensor]:
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
    ids = torch.full((len(pairs), width), cast(int, pad), dtype=torch.long)  # a token id
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


def completion_logratios(
    model: CausalLM, ref_model: CausalLM, batch: Mapping[str, Tensor]
) -> Tensor:
    """log π(y|x)/π_ref(y|x) summed over the completion tokens of each row, [2B] (the text version
    of :func:`tokenmdp.sequence_logratios`; Rafailov et al. 2024, eq. (9))."""
    return implicit_token_rewards(
        model,
        ref_model,
        batch["input_ids"],
        batch["attention_mask"],
        batch["completion_mask"],
        1.0,
    ).sum(-1)


def preference_loss(
    model: CausalLM,
    ref_model: CausalLM,
    batch: Mapping[str, Tensor],
    loss: str = "dpo",
    *,
    beta: float | None = None,
    tau: float | None = None,
    label_smoothing: float = 0.0,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> Tensor:
    """Per-pair DPO/IPO loss of a :func:`preference_batch`, through :mod:`toybandit.losses`.

    ``dpo``: Rafailov et al. 2023, eq. (7) (their 2024 paper's eq. (9)) with strength ``beta`` and
    conservative label smoothing ε = ``label_smoothing`` (TRL's "sigmoid");
    ``ipo``: (h − 1/(2τ))² on summed log-ratios h (Azar et al. 2023, eq. (17); Nguyen 2025,
    eq. (12)); ``ipo_mean``: the same on log-ratios averaged over completion tokens (TRL's "ipo",
    whose ``beta`` is this τ).

    Returns:
        [B] losses (``.mean()`` is TRL's reported loss).

    Raises:
        ValueError: an unknown ``loss``; ``beta`` missing for dpo or given for ipo (and ``tau``
            the other way round); label smoothing for ipo; a ``tokenizer`` whose size exceeds the
            model's vocabulary; model and ref_model with different vocabularies.
    """
    if loss not in PREFERENCE_LOSSES:
        raise ValueError(f"loss must be one of {PREFERENCE_LOSSES}, got {loss!r}")
    if loss == "dpo" and (beta is None or tau is not None):
        raise ValueError("loss 'dpo' takes beta (and no tau)")
    if loss != "dpo" and (tau is None or beta is not None or label_smoothing):
        raise ValueError(f"loss {loss!r} takes tau (IPO's τ; no beta, no label_smoothing)")
    if tokenizer is not None and len(tokenizer) > vocab_size(model):
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens but the model scores only "
            f"{vocab_size(model)}: they do not belong together"
        )
    logratio = completion_logratios(model, ref_model, batch)
    chosen, rejected = logratio.chunk(2)
    if loss == "dpo":
        assert beta is not None  # checked above
        return losses.dpo(chosen, rejected, beta, label_smoothing)
    assert tau is not None
    if loss == "ipo":
        return losses.ipo(chosen, rejected, tau)
    lengths = torch.as_tensor(batch["completion_mask"]).sum(-1).to(logratio)
    n_chosen, n_rejected = lengths.chunk(2)
    return losses.ipo(chosen / n_chosen, rejected / n_rejected, tau)


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
