"""Model access: the facts a scorer needs about a causal LM, the input checks, and the probe that
decides whether the fast body + head path is the model's own computation.

The fast path runs the transformer body once (``model.get_decoder()``) and applies the output head
(``model.get_output_embeddings()``) to chunks of positions, so that no vocabulary-sized tensor of the
whole batch exists. It is only valid for models whose logits are exactly ``head(body(x))``. Many are
not: Gemma 2/3, VaultGemma and nanochat soft-cap the logits, Cohere multiplies them by
``logit_scale``, Granite divides them by ``logits_scaling``, Falcon-H1 multiplies by
``lm_head_multiplier``, MiniCPM3 rescales the hidden state by a width ratio, and new architectures
keep adding such steps. So the fast path is never assumed: :func:`fast_path` proves it, once per
model instance, by comparing ``head(body(x))`` with ``model(x).logits`` bit for bit on a small
probe batch (one row left-padded); any difference, any error of the body, or a known post-head step
in the config sends the model through ``model(...)`` instead. A wrong verdict can only cost speed.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

import torch

from toybandit.validation import TensorLike

if TYPE_CHECKING:
    from transformers.models.gpt2.modeling_gpt2 import GPT2LMHeadModel

Tensor = torch.Tensor

CausalLM: TypeAlias = Any
"""The ``model`` (and ``ref_model``) of every function of :mod:`tokenmdp.lm`: a causal LM as
``transformers`` builds them (a ``PreTrainedModel`` with an LM head, ``*ForCausalLM``), also wrapped
by PEFT. It is read by duck typing: called as ``model(input_ids=..., attention_mask=...,
position_ids=...)`` for ``.logits`` [B, L, V], with a ``config`` and the ``get_output_embeddings``,
``get_input_embeddings`` and ``get_decoder`` of a ``PreTrainedModel``. ``Any`` to a type checker:
PEFT's wrappers are no ``PreTrainedModel`` (they forward attributes at run time), and
``torch.nn.Module`` declares none of these."""

# Config fields that transform the logits after (or the hidden state before) the output head in
# transformers' causal LMs. A model with any of them set never takes the fast path, whatever the
# probe says: a tiny random model's small logits could hide a soft-cap below rounding.
POST_HEAD_FIELDS = (
    "final_logit_softcapping",
    "logit_scale",
    "logits_scaling",
    "lm_head_multiplier",
    "logits_mup_width_multiplier",
    "output_multiplier",
    "mup_width_multiplier",
    "width_multiplier",
    "dim_model_base",
)

_VERDICTS: weakref.WeakKeyDictionary[Any, tuple[tuple, bool]] = weakref.WeakKeyDictionary()


def vocab_size(model: CausalLM) -> int:
    """Rows of the model's output head (the vocabulary it scores); ``config.vocab_size`` if the
    head is not a weight matrix."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if isinstance(weight, Tensor) and weight.dim() == 2:
        return int(weight.shape[0])
    config = getattr(model, "config", None)
    size = getattr(config, "vocab_size", None)
    if size is None and config is not None and hasattr(config, "get_text_config"):
        size = getattr(config.get_text_config(), "vocab_size", None)
    if size is None:
        raise ValueError(
            "model must be a causal LM with an output head or a config.vocab_size; got "
            f"{type(model).__name__}"
        )
    return int(size)


def context_length(model: CausalLM) -> int | None:
    """The longest sequence the model's positions cover (None if the config states no limit)."""
    configs = [model.config]
    if hasattr(model.config, "get_text_config"):
        configs.append(model.config.get_text_config())
    for config in configs:
        for name in ("n_positions", "max_position_embeddings", "n_ctx", "max_sequence_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
    return None


def input_device(model: CausalLM) -> torch.device:
    """Where the model wants its token ids: the device of its input embeddings."""
    return model.get_input_embeddings().weight.device


def out_dtype(model: CausalLM) -> torch.dtype:
    """float64 for float64 models, float32 for every other precision."""
    dtype = next(model.parameters()).dtype
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_batch(
    model: CausalLM,
    input_ids: TensorLike,
    attention_mask: TensorLike | None,
    *,
    min_tokens: int = 2,
) -> tuple[Tensor, Tensor]:
    """Check a batch before any model call; return (ids, mask) on the model's input device.

    Raises:
        ValueError: ``input_ids`` not an integer [B, L] tensor, shorter than ``min_tokens``, or
            holding ids outside [0, V) (padding included: every id is fed to the model);
            ``attention_mask`` of another shape or not binary (position ids are its cumulative
            sum, so 0.5 or 2 would shift them silently); a row longer than the model's context.
    """
    input_ids = torch.as_tensor(input_ids)
    if input_ids.dim() != 2 or input_ids.is_floating_point() or input_ids.is_complex():
        raise ValueError(
            f"input_ids must be an integer tensor [B, L], got {input_ids.dtype} "
            f"{tuple(input_ids.shape)}"
        )
    if input_ids.shape[0] < 1 or input_ids.shape[1] < min_tokens:
        raise ValueError(
            f"input_ids must hold at least one row of {min_tokens} token(s), got "
            f"{tuple(input_ids.shape)}"
        )
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    attention_mask = torch.as_tensor(attention_mask)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, got "
            f"{tuple(attention_mask.shape)}"
        )
    binary = (attention_mask == 0) | (attention_mask == 1)
    if attention_mask.dtype != torch.bool and not binary.all():
        raise ValueError("attention_mask must be binary (0 on padding, 1 on real tokens)")
    attention_mask = attention_mask.to(torch.long)
    n = vocab_size(model)
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= n:
        raise ValueError(
            f"input_ids hold ids outside the model's vocabulary [0, {n}): range [{low}, {high}] "
            "(padding positions are fed to the model too: pad with an id it knows)"
        )
    context = context_length(model)
    longest = int(attention_mask.sum(-1).max())
    if context is not None and longest > context:
        raise ValueError(
            f"input_ids: a sequence of {longest} tokens exceeds the model's context of {context}; "
            "nothing is truncated silently"
        )
    device = input_device(model)
    return input_ids.to(device), attention_mask.to(device)


@contextlib.contextmanager
def scoring_mode(model: CausalLM) -> Iterator[None]:
    """Evaluate in eval mode (no dropout: two identical calls give identical numbers) and give
    every submodule its own train/eval flag back afterwards, as the caller had it."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _parts(model: CausalLM) -> tuple[Any, Any] | None:
    """(body, head) of the model, or None when it has no separate body and head."""
    try:
        head = model.get_output_embeddings()
        body = model.get_decoder()
    except (AttributeError, NotImplementedError, ValueError, TypeError):
        return None
    if head is None or body is None or body is model or not callable(head):
        return None
    return body, head


def _post_head_field(model) -> str | None:
    configs = [model.config]
    if hasattr(model.config, "get_text_config"):
        configs.append(model.config.get_text_config())
    for config in configs:
        for name in POST_HEAD_FIELDS:
            if getattr(config, name, None) is not None:
                return name
    return None


def _kwargs(input_ids: Tensor, attention_mask: Tensor) -> dict[str, Tensor]:
    # position ids follow the mask, so a left-padded row sees the positions of its right-padded twin
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}


def logits_of(model: CausalLM, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """``model(...).logits`` [B, L, V], checked to be a causal LM's output."""
    out = model(**_kwargs(input_ids, attention_mask), **_no_cache(model))
    logits = getattr(out, "logits", None)
    if not isinstance(logits, Tensor) or logits.shape[:2] != input_ids.shape:
        raise ValueError(
            f"model must be a causal LM whose output has logits [B, L, V]; {type(model).__name__} "
            "returned none of that shape"
        )
    if logits.shape[-1] != vocab_size(model):
        raise ValueError(
            f"model's logits have {logits.shape[-1]} entries but its head has "
            f"{vocab_size(model)} rows"
        )
    return logits


def _no_cache(model) -> dict[str, bool]:
    # a transformers model builds a KV cache by default: memory a scorer never reads
    return {"use_cache": False} if getattr(model.config, "use_cache", None) is not None else {}


def _probe_key(model) -> tuple:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    p = next(model.parameters())
    return (p.dtype, p.device, id(head), vocab_size(model))


def fast_path(model: CausalLM) -> bool:
    """Whether ``head(body(x))`` is this model's ``model(x).logits``, bit for bit (see the module
    docstring). Decided once per model instance (and again after a change of dtype, device or
    head), in eval mode, on a 2 × 6 probe batch with one left-padded row."""
    key = _probe_key(model)
    known = _VERDICTS.get(model)
    if known is not None and known[0] == key:
        return known[1]
    verdict = _probe(model)
    _VERDICTS[model] = (key, verdict)
    return verdict


def _probe(model) -> bool:
    parts = _parts(model)
    if parts is None or _post_head_field(model) is not None:
        return False
    body, head = parts
    n = vocab_size(model)
    length = min(6, context_length(model) or 6)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, n, (2, length), generator=g).to(input_device(model))
    mask = torch.ones_like(ids)
    mask[1, : length // 2] = 0
    with torch.no_grad(), scoring_mode(model):
        want = logits_of(model, ids, mask)
        try:
            hidden = body(**_kwargs(ids, mask), use_cache=False).last_hidden_state
            got = head(hidden)
        except Exception:
            return False
    if not isinstance(got, Tensor) or got.shape != want.shape:
        return False
    real = mask.bool().to(want.device)
    return torch.equal(got.to(want.device, torch.float64)[real], want.to(torch.float64)[real])


def hidden_or_logits(
    model: CausalLM, input_ids: Tensor, attention_mask: Tensor
) -> tuple[Tensor, Callable[[Tensor], Tensor] | None]:
    """(hidden states, head) on the fast path, else (logits, None); [B, L, ·]. No grad; call
    inside :func:`scoring_mode`."""
    with torch.no_grad():
        if fast_path(model):
            parts = _parts(model)
            assert parts is not None  # fast_path found them
            body, head = parts
            hidden = body(**_kwargs(input_ids, attention_mask), use_cache=False).last_hidden_state
            return hidden, head
        return logits_of(model, input_ids, attention_mask), None


def same_vocabulary(model: CausalLM, ref_model: CausalLM) -> None:
    """Raise unless the two models score the same vocabulary."""
    if vocab_size(model) != vocab_size(ref_model):
        raise ValueError(
            f"model and ref_model score different vocabularies: {vocab_size(model)} and "
            f"{vocab_size(ref_model)} tokens"
        )


def tiny_gpt2(
    vocab_size: int = 64,
    *,
    seed: int = 0,
    generator: torch.Generator | None = None,
    positions: int = 32,
    width: int = 32,
    layers: int = 2,
    heads: int = 2,
    dtype: torch.dtype = torch.float32,
    **config: Any,
) -> GPT2LMHeadModel:
    """A small GPT-2 with random weights, built from a config: nothing is downloaded.

    ``transformers.GPT2LMHeadModel`` of a ``GPT2Config`` with ``vocab_size``, ``n_positions =
    positions``, ``n_embd = width``, ``n_layer = layers``, ``n_head = heads``, ``bos_token_id =
    eos_token_id = 1`` and ``pad_token_id = 0``; ``config`` overrides those ids or sets any other
    field (dropouts, ``initializer_range``). The tests, the claims, the lab and the examples build
    their models here.

    The weights are drawn from a CPU generator seeded with ``seed``, or from ``generator`` (which
    then advances, so two calls on one generator give two different models); torch's global
    random state is left as it was. The weights equal those of ``torch.manual_seed(seed)``
    followed by ``GPT2LMHeadModel(config)``.

    Returns:
        The model, in eval mode and in ``dtype``.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    fields = {"bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 0, **config}
    cfg = GPT2Config(
        vocab_size=int(vocab_size), n_positions=int(positions), n_embd=int(width),
        n_layer=int(layers), n_head=int(heads), **fields,
    )  # fmt: skip
    g = torch.Generator().manual_seed(int(seed)) if generator is None else generator
    # transformers initialises from the global generator: run it on g's state, then hand it back
    with torch.random.fork_rng(devices=[]):
        torch.random.set_rng_state(g.get_state())
        model = GPT2LMHeadModel(cfg)
        g.set_state(torch.random.get_rng_state())
    # transformers wraps `to` with functools.wraps(nn.Module.to), which hides its `self`
    return model.to(dtype).eval()  # pyright: ignore[reportArgumentType]
