"""tokenmdp.lm on every kind of causal LM transformers ships: each architecture (tiny random config, no
download) is scored against its own ``log_softmax(model(ids).logits)``, row by row without padding,
under left and right padding, in float32 and bfloat16. Families that change the logits after the
head (soft-capping, logit scales, logit scaling, head multipliers) get strong settings, so that a
fast path wrongly taken would be far off; their negative twin forces the fast path and must fail.
"""

import pytest
import torch

from tests.tokenmdp.architectures import ARCHITECTURES, COMMON, PLAIN, POST_HEAD, VOCAB
from tokenmdp import lm

transformers = pytest.importorskip("transformers")


def build(name, dtype=torch.float32, seed=0):
    config = transformers.AutoConfig.for_model(name, **{**COMMON, **ARCHITECTURES[name]})
    torch.manual_seed(seed)
    return transformers.AutoModelForCausalLM.from_config(config).eval().to(dtype)


def own_logprobs(model, row):
    """log_softmax of the model's own logits on one unpadded row, in float64: [n − 1]."""
    with torch.no_grad():
        logits = model(row[None]).logits[0, :-1].double()
    return torch.log_softmax(logits, -1).gather(-1, row[1:, None]).squeeze(-1)


def padded(lengths, width, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = [torch.randint(2, VOCAB, (n,), generator=g) for n in lengths]
    left, right = (
        torch.zeros(len(rows), width, dtype=torch.long),
        torch.zeros(len(rows), width, dtype=torch.long),
    )
    left_mask, right_mask = torch.zeros_like(left), torch.zeros_like(right)
    for i, r in enumerate(rows):
        left[i, width - len(r) :], left_mask[i, width - len(r) :] = r, 1
        right[i, : len(r)], right_mask[i, : len(r)] = r, 1
    return rows, (left, left_mask), (right, right_mask)


# float32: the fast path's head runs on chunks of positions (another matmul blocking than the
# model's), ≤ 1e-6 observed; bfloat16: the model's bf16 logits themselves round at ~4e-3 relative
TOLERANCE = {torch.float32: 2e-5, torch.bfloat16: 3e-2}


def worst_residual(model, lengths=(9, 6, 3), width=9):
    rows, (left, lmask), (right, rmask) = padded(lengths, width)
    by_left = lm.token_logprobs(model, left, lmask).double()
    by_right = lm.token_logprobs(model, right, rmask).double()
    worst = 0.0
    for i, r in enumerate(rows):
        n = len(r)
        want = own_logprobs(model, r)
        got_right, got_left = by_right[i, : n - 1], by_left[i, width - n :]
        assert (by_right[i, n - 1 :] == 0).all() and (by_left[i, : width - n] == 0).all()
        for got in (got_right, got_left):
            worst = max(worst, (got - want).abs().max().item())
    assert torch.isfinite(by_left).all() and torch.isfinite(by_right).all()
    return worst


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_scores_its_own_logits(name, dtype):
    model = build(name, dtype)
    assert lm.fast_path(model) is (name in PLAIN)
    assert worst_residual(model) <= TOLERANCE[dtype]


def test_the_sweep_is_wide_enough():
    assert len(ARCHITECTURES) >= 15 and len(POST_HEAD) >= 8


@pytest.mark.parametrize("name", sorted(POST_HEAD))
def test_forcing_the_fast_path_on_a_post_head_family_is_caught(name, monkeypatch):
    """Negative twin: head(body(x)) for a model whose logits are not that is far off."""
    model = build(name)
    monkeypatch.setattr(lm.model, "fast_path", lambda m: True)
    assert worst_residual(model) > 100 * TOLERANCE[torch.float32]


class ScaledLlama(transformers.LlamaForCausalLM):
    """An architecture nobody listed: the logits are 1.7 · lm_head(hidden), nothing in the config."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out.logits = 1.7 * out.logits
        return out


def test_a_head_that_is_not_lm_head_of_hidden_takes_the_safe_path(monkeypatch):
    config = transformers.AutoConfig.for_model("llama", **COMMON)
    torch.manual_seed(0)
    model = ScaledLlama(config).eval()
    assert not lm.fast_path(model)  # the probe saw it
    assert worst_residual(model) <= TOLERANCE[torch.float32]
    monkeypatch.setattr(lm.model, "fast_path", lambda m: True)
    assert worst_residual(model) > 1e-3


def test_the_verdict_is_per_instance_and_follows_the_dtype():
    plain, scaled = (
        build("llama"),
        ScaledLlama(transformers.AutoConfig.for_model("llama", **COMMON)),
    )
    assert lm.fast_path(plain) and not lm.fast_path(scaled.eval())
    plain.double()
    assert lm.fast_path(plain)
    assert lm.model._VERDICTS[plain][0][0] == torch.float64  # probed again in the new dtype


def test_peft_lora_models_score_through_their_adapters():
    peft = pytest.importorskip("peft")
    base = build("llama")
    config = peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "lm_head"], init_lora_weights=False
    )
    model = peft.get_peft_model(build("llama"), config).eval()
    assert lm.fast_path(model)
    assert worst_residual(model) <= TOLERANCE[torch.float32]
    _rows, _, (right, mask) = padded((9, 6, 3), 9)
    with_adapter = lm.token_logprobs(model, right, mask)
    assert (with_adapter - lm.token_logprobs(base, right, mask)).abs().max() > 1e-3  # not the base
    with model.disable_adapter():
        torch.testing.assert_close(
            lm.token_logprobs(model, right, mask), lm.token_logprobs(base, right, mask),
            atol=1e-6, rtol=0,
        )  # fmt: skip
    ref = build("llama", seed=1)
    x = right.clone()
    completion = torch.zeros_like(x)
    completion[:, 2:] = 1
    r = lm.implied_rewards(model, ref, x, mask, completion * mask, 0.5)
    assert torch.isfinite(r).all()
