"""tokenmdp.lm on real transformers models built from small configs (random weights, no downloads)."""

import math

import pytest
import torch

import tokenmdp as tm
from tests.helpers import F64
from tests.toybandit.trl_reference import trainer_loss
from tokenmdp import lm

transformers = pytest.importorskip("transformers")

VOCAB = 40


def gpt2(seed=0, vocab=VOCAB, dtype=F64, positions=32):
    return lm.tiny_gpt2(vocab, seed=seed, positions=positions, width=16, dtype=dtype)


def llama(seed=0, vocab=VOCAB, dtype=F64):
    cfg = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
        bos_token_id=1, eos_token_id=1, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(cfg).eval().to(dtype)


MODELS = {"gpt2": gpt2, "llama": llama}


def naive_logprobs(model, ids, mask=None):
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    return torch.log_softmax(logits.to(torch.float64), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)


def ids(batch=3, length=9, seed=0):
    return torch.randint(2, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


# -- token log-probabilities ------------------------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_token_logprobs_match_the_naive_gather(arch):
    model = MODELS[arch]()
    x = ids()
    got = lm.token_logprobs(model, x)
    assert got.dtype == F64 and got.shape == (3, 8)
    torch.testing.assert_close(got, naive_logprobs(model, x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_left_and_right_padding_agree(arch):
    model = MODELS[arch]()
    x = ids()
    lengths = [9, 6, 4]
    left, right = torch.zeros_like(x), torch.zeros_like(x)
    left_mask, right_mask = torch.zeros_like(x), torch.zeros_like(x)
    for i, n in enumerate(lengths):
        left[i, 9 - n :], left_mask[i, 9 - n :] = x[i, :n], 1
        right[i, :n], right_mask[i, :n] = x[i, :n], 1
    a = lm.token_logprobs(model, left, left_mask)
    b = lm.token_logprobs(model, right, right_mask)
    for i, n in enumerate(lengths):
        torch.testing.assert_close(a[i, 9 - n :], b[i, : n - 1], atol=1e-12, rtol=0)
        alone = naive_logprobs(model, x[i : i + 1, :n])[0]
        torch.testing.assert_close(b[i, : n - 1], alone, atol=1e-12, rtol=0)
        assert (b[i, n - 1 :] == 0).all()  # padding targets


def test_chunking_does_not_change_values(monkeypatch):
    model = gpt2()
    x = ids(batch=4, length=12)
    whole = lm.token_logprobs(model, x)
    monkeypatch.setattr(lm.scoring, "CHUNK_LOGITS", 3 * VOCAB)  # three positions per chunk
    torch.testing.assert_close(
        lm.token_logprobs(model, x), whole, atol=1e-12, rtol=0
    )  # matmul blocking


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("tile", [16, 13, VOCAB - 1])
def test_vocabulary_tiles_do_not_change_values(monkeypatch, tile, bias):
    """A plain linear head (with a bias too: addmm) in blocks of positions × vocabulary tiles
    (the last of each partial), the tiles' logsumexps combined per position: the same numbers as
    the whole log-softmax."""
    model = llama()
    if bias:
        head = torch.nn.Linear(16, VOCAB, bias=True, dtype=F64)
        with torch.no_grad():
            head.bias.copy_(torch.linspace(-3, 3, VOCAB, dtype=F64))
        model.lm_head = head
    x = ids(batch=4, length=12)
    monkeypatch.setattr(lm.scoring, "TILE_VOCAB", tile)
    monkeypatch.setattr(lm.scoring, "TILE_ROWS", 5)  # five positions per block, the last partial
    view = lm.q_values(model, x, None, 1.0)
    with torch.no_grad():
        logits = model(x).logits[:, :-1]
    torch.testing.assert_close(view.v, torch.logsumexp(logits, -1), atol=1e-12, rtol=0)
    torch.testing.assert_close(
        view.q, logits.gather(-1, x[:, 1:, None]).squeeze(-1), atol=1e-12, rtol=0
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_a_vocabulary_over_one_tile_in_every_precision(dtype):
    """2500 tokens (the head in 1024-row tiles, the last partial), tied embeddings, a float32,
    bfloat16 or float16 model: the log-probabilities of its own logits (upcast to float32, as the
    adapter computes them) to float32 rounding of a 2500-term sum."""
    model = lm.tiny_gpt2(2500, width=16, dtype=dtype)
    x = torch.randint(2, 2500, (3, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(x).logits[:, :-1].float()
    want = torch.log_softmax(logits, -1).gather(-1, x[:, 1:, None])[..., 0]
    got = lm.token_logprobs(model, x)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=2e-6, rtol=0)


def test_a_hooked_head_is_called_not_tiled(monkeypatch):
    """A forward hook on the head (here doubling the logits) is part of the model's logits; the
    tiled path reads the weight and would skip it. Twin: tiling it anyway is off by ~1 nat."""
    model = lm.tiny_gpt2(2500, width=16, dtype=F64)
    model.lm_head.register_forward_hook(lambda module, args, out: 2 * out)
    x = torch.randint(2, 2500, (3, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(x).logits[:, :-1]
    want = torch.log_softmax(logits, -1).gather(-1, x[:, 1:, None])[..., 0]
    torch.testing.assert_close(lm.token_logprobs(model, x), want, atol=1e-12, rtol=0)
    monkeypatch.setattr(lm.scoring, "_plain_linear", lambda head: True)
    assert (lm.token_logprobs(model, x) - want).abs().max() > 0.1


def test_unsplittable_models_use_their_full_logits(monkeypatch):
    model = gpt2()
    x = ids()
    monkeypatch.setattr(lm.model, "fast_path", lambda m: False)
    torch.testing.assert_close(
        lm.token_logprobs(model, x), naive_logprobs(model, x), atol=1e-12, rtol=0
    )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models_give_float32(dtype):
    model = gpt2(dtype=dtype)
    x = ids()
    got = lm.token_logprobs(model, x)
    assert got.dtype == torch.float32
    # the model's own half-precision logits, log-softmaxed in float32: the same numbers
    with torch.no_grad():
        logits = model(x).logits[:, :-1].float()
    want = torch.log_softmax(logits, -1).gather(-1, x[:, 1:, None]).squeeze(-1)
    torch.testing.assert_close(got, want, atol=2e-2, rtol=0)


# -- implicit rewards, the Q-function view and the implied reward -----------------------------------


def completion_batch():
    x = ids(batch=3, length=10, seed=1)
    x[:, -1] = 1  # EOS ends every completion
    mask = torch.ones_like(x)
    mask[2, :2] = 0  # a left-padded row
    completion = torch.zeros_like(x)
    completion[:, 5:] = 1
    return x, mask, completion


def test_implicit_rewards_are_masked_log_ratios():
    model, ref = gpt2(0), gpt2(1)
    x, mask, completion = completion_batch()
    got = lm.implicit_token_rewards(model, ref, x, mask, completion, beta=0.3)
    want = 0.3 * (lm.token_logprobs(model, x, mask) - lm.token_logprobs(ref, x, mask))
    torch.testing.assert_close(got[:, 4:], want[:, 4:], atol=1e-12, rtol=0)
    assert (got[:, :4] == 0).all() and (got[:, 4:] != 0).all()


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_implied_rewards_telescope(arch):
    """Sec. 4.1 on a real model: Σ_t r_t = V(s_first) + Σ_t β log π/π_ref along each completion."""
    model, ref = MODELS[arch](0), MODELS[arch](1)
    x, mask, completion = completion_batch()
    beta = 0.7
    r = lm.implied_rewards(model, ref, x, mask, completion, beta, eos_token_id=1)
    implicit = lm.implicit_token_rewards(model, ref, x, mask, completion, beta)
    view = lm.q_values(model, x, mask, beta)
    v_first = view.v[:, 4]  # the state before the first completion token (position 5)
    torch.testing.assert_close(r.sum(-1), v_first + implicit.sum(-1), atol=1e-10, rtol=0)
    # eq. (5): log π = (Q − V)/β
    torch.testing.assert_close(
        (view.q - view.v) / beta, lm.token_logprobs(model, x, mask), atol=1e-12, rtol=0
    )


def test_implied_rewards_without_the_terminal_condition_do_not_telescope():
    """Negative twin: keep V(s_{t+1}) at the end of the completion and the sum is off by it."""
    model, ref = gpt2(0), gpt2(1)
    x, mask, completion = completion_batch()
    x = torch.cat([x, x[:, -1:]], 1)  # one more (non-completion) token after EOS
    mask = torch.cat([mask, mask[:, -1:]], 1)
    completion = torch.cat([completion, torch.zeros_like(completion[:, -1:])], 1)
    beta = 0.7
    terminal = lm.implied_rewards(model, ref, x, mask, completion, beta, eos_token_id=1)
    view = lm.q_values(model, x, mask, beta)
    lp_ref = lm.token_logprobs(ref, x, mask)
    no_terminal = view.q - beta * lp_ref - torch.cat([view.v[:, 1:], view.v[:, :1] * 0], -1)
    no_terminal = torch.where(completion[:, 1:].bool(), no_terminal, 0.0)
    gap = (no_terminal.sum(-1) - terminal.sum(-1)).abs()
    assert (gap > 1e-3).all()


# -- preference losses, equal to TRL's --------------------------------------------------------------


@pytest.fixture(scope="module")
def trl_setup(tmp_path_factory):
    pytest.importorskip("trl")
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from trl import DPOConfig, DPOTrainer

    words = ["<pad>", "<eos>", *"abcdefgh"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    model, ref = (
        gpt2(0, vocab=len(words), dtype=torch.float32),
        gpt2(1, vocab=len(words), dtype=torch.float32),
    )
    rows = {
        "prompt": ["a b", "c", "d e a", "b"],
        "chosen": [" c d", " e", " b", " a a c d"],
        "rejected": [" d", " a b c", " c c", " e"],
    }
    args = DPOConfig(
        output_dir=str(tmp_path_factory.mktemp("trl_lm")), beta=0.1, report_to=[], use_cpu=True,
        per_device_train_batch_size=4, max_length=16, disable_tqdm=True,
        bf16=False, fp16=False,  # else accelerate wraps forward() in bf16 autocast on CPU
    )  # fmt: skip
    trainer = DPOTrainer(
        model=model, ref_model=ref, args=args, train_dataset=Dataset.from_dict(rows),
        processing_class=tokenizer,
    )  # fmt: skip
    trl_batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    return trainer, trl_batch, tokenizer, rows, model, ref


def test_preference_batch_tokenises_like_trl(trl_setup):
    _, trl_batch, tokenizer, rows, _, _ = trl_setup
    ours = lm.preference_batch(tokenizer, rows)
    for key in ("input_ids", "completion_mask"):
        theirs = trl_batch[key]
        width = min(theirs.shape[1], ours[key].shape[1])
        assert torch.equal(ours[key][:, :width], theirs[:, :width])
        assert (ours["attention_mask"][:, width:] == 0).all() and (
            trl_batch["attention_mask"][:, width:] == 0
        ).all()


@pytest.mark.parametrize(("ours", "theirs"), [("dpo", "sigmoid"), ("ipo_mean", "ipo")])
@pytest.mark.parametrize("beta", [0.1, 2.0])
def test_preference_losses_equal_trl(trl_setup, ours, theirs, beta):
    trainer, trl_batch, tokenizer, rows, model, ref = trl_setup
    expected = trainer_loss(trainer, trl_batch, loss_types=[theirs], loss_weights=[1.0], beta=beta)
    batch = lm.preference_batch(tokenizer, rows)
    strength = {"beta": beta} if ours == "dpo" else {"tau": beta}  # TRL's "ipo" beta is IPO's τ
    got = lm.preference_loss(model, ref, batch, ours, **strength, tokenizer=tokenizer).mean().item()
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)  # TRL computes in float32
    if ours == "ipo_mean":  # the paper's summed IPO is a different number
        summed = lm.preference_loss(model, ref, batch, "ipo", tau=beta).mean().item()
        assert summed != pytest.approx(expected, rel=1e-3)


def test_pretokenised_rows_and_bad_rows(trl_setup):
    _, _, tokenizer, _, model, ref = trl_setup
    rows = [{"prompt_ids": [2, 3], "chosen_ids": [4, 1], "rejected_ids": [5, 6, 1]}]
    batch = lm.preference_batch(tokenizer, rows)
    assert batch["input_ids"].tolist() == [[2, 3, 4, 1, 0], [2, 3, 5, 6, 1]]
    assert batch["completion_mask"].tolist() == [[0, 0, 1, 1, 0], [0, 0, 1, 1, 1]]
    assert lm.preference_loss(model, ref, batch, "ipo", tau=0.5).shape == (1,)
    with pytest.raises(ValueError, match="empty chosen completion"):
        lm.preference_batch(tokenizer, [{"prompt_ids": [2], "chosen_ids": [], "rejected_ids": [3]}])
    with pytest.raises(ValueError, match="needs 'prompt'"):
        lm.preference_batch(tokenizer, [{"prompt": "a"}])
    with pytest.raises(ValueError, match="loss must be one of"):
        lm.preference_loss(model, ref, batch, "kto", tau=0.5)


# -- the model as a tree ------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_expanded_tree_matches_direct_model_calls(arch):
    model = MODELS[arch]()
    prompt, tokens = [2, 3, 4], [1, 5, 7, 9, 11]
    ex = lm.expand_tree(model, prompt, tokens, 3, eos=1)
    tree = ex.tree
    assert tree.vocab_size == VOCAB and tree.eos == 1
    assert (tree.terminal[tree.token == 1]).all()
    paths = tree.paths(torch.arange(tree.n_nodes)).tolist()
    for n in range(tree.n_nodes):
        if tree.terminal[n]:
            continue
        state = prompt + [t for t in paths[n] if t >= 0]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([state])).logits[0, -1].double(), -1)
        kids = (tree.parent == n).nonzero().squeeze(-1)
        assert tree.token[kids].tolist() == tokens
        kept = logp[tokens]
        torch.testing.assert_close(
            tree.log_ref[kids], kept - torch.logsumexp(kept, 0), atol=1e-12, rtol=0
        )
        assert ex.cut[n].item() == pytest.approx(1 - kept.exp().sum().item(), abs=1e-12)


def test_top_k_expansion_and_solve_on_a_real_tree():
    """Every LM is a Q-function, on a real model's tree: Q = β log π_ref gives back π_ref."""
    model = llama()
    ex = lm.expand_tree(model, [3], list(range(2, 14)), 3, top_k=3)
    tree = ex.tree
    internal = (~tree.terminal).nonzero().squeeze(-1)
    assert (tree.n_children[internal] == 3).all()
    beta = 0.5
    sol = tm.soft_solve(tree, tm.reward_from_q(tree, beta * tree.log_ref, beta), beta)
    torch.testing.assert_close(sol.log_policy, tree.log_ref, atol=1e-12, rtol=0)
    assert (ex.cut[internal] > 0).all() and (ex.cut[tree.terminal] == 0).all()


@pytest.mark.parametrize("width", [1, 2, 5])
def test_adapter_beam_search_agrees_with_tree_beam_search(width):
    model = gpt2(3)
    prompt, tokens = [2, 3], [1, 4, 6, 8]
    ex = lm.expand_tree(model, prompt, tokens, 4, eos=1)
    best = tm.beam_search(ex.tree, ex.tree.log_ref, width)
    path, score = lm.model_beam_search(model, prompt, tokens, 4, width, eos=1)
    want = [t for t in ex.tree.paths([best.node])[0].tolist() if t >= 0]
    assert path == want and score == pytest.approx(best.score, abs=1e-10)


def test_plot_credit():
    import matplotlib

    matplotlib.use("Agg")
    fig = lm.plot_credit(
        [(["a", "b", "c"], [0.5, -1.0, 0.0]), (["d", "e"], torch.tensor([2.0, -0.1]))],
        titles=["chosen", "rejected"],
    )
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["chosen", "a", "b", "c", "rejected", "d", "e"]
    with pytest.raises(ValueError, match="3 tokens but 2 rewards"):
        lm.plot_credit([(["a", "b", "c"], [1.0, 2.0])])


# -- bad input -----------------------------------------------------------------------------------------


def test_bad_input_raises():
    model, other = gpt2(), gpt2(vocab=VOCAB + 5)
    x, mask, completion = completion_batch()
    with pytest.raises(ValueError, match="different vocabularies"):
        lm.implicit_token_rewards(model, other, x, mask, completion, 0.1)
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        lm.token_logprobs(model, torch.full((1, 3), VOCAB))
    with pytest.raises(ValueError, match="exceeds the model's context"):
        lm.token_logprobs(model, torch.ones(1, 40, dtype=torch.long))
    with pytest.raises(ValueError, match="empty completion"):
        lm.implicit_token_rewards(model, model, x, mask, torch.zeros_like(x), 0.1)
    with pytest.raises(ValueError, match="beta"):
        lm.q_values(model, x, mask, 0.0)
    with pytest.raises(ValueError, match="vocabulary"):
        lm.expand_tree(model, [2], [3, VOCAB], 2)
    with pytest.raises(ValueError, match="eos"):
        lm.expand_tree(model, [2], [3, 4], 2, eos=1)
    with pytest.raises(ValueError, match="context"):
        lm.expand_tree(model, [2] * 30, [3, 4], 5)
    with pytest.raises(ValueError, match="distinct"):
        lm.expand_tree(model, [2], [3, 3], 2)

    class Tok:
        def __len__(self):
            return VOCAB + 10

    batch = {"input_ids": x, "attention_mask": mask, "completion_mask": completion}
    with pytest.raises(ValueError, match="do not belong together"):
        lm.preference_loss(model, model, batch, beta=0.1, tokenizer=Tok())


# -- CUDA ------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_logprobs_and_tree(dtype):
    model = gpt2(dtype=dtype).cuda()
    x = ids().cuda()
    got = lm.token_logprobs(model, x)
    assert got.is_cuda and got.dtype == torch.float32
    cpu = lm.token_logprobs(gpt2(dtype=torch.float64), x.cpu())
    torch.testing.assert_close(
        got.cpu().double(), cpu, atol=5e-2 if dtype == torch.bfloat16 else 1e-4, rtol=0
    )
    ex = lm.expand_tree(model, [2, 3], [1, 4, 6], 3, eos=1)
    assert math.isclose(tm.path_sum(ex.tree, ex.tree.log_ref).exp().sum().item(), 1.0, rel_tol=1e-5)


def test_device_map_models_are_used_in_place(tmp_path):
    """A model loaded through a device_map is used where it is (multi-device sharding needs ≥ 2
    devices and is not exercised here)."""
    pytest.importorskip("accelerate")
    gpt2().save_pretrained(tmp_path)
    mapped = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, device_map={"": "cpu"}, torch_dtype=F64
    ).eval()
    x = ids()
    torch.testing.assert_close(
        lm.token_logprobs(mapped, x), naive_logprobs(gpt2(), x), atol=1e-12, rtol=0
    )


@pytest.mark.parametrize("top_k", [None, 2])
def test_tree_policy_scores_a_given_tree_like_expansion(top_k):
    model = llama(2)
    ex = lm.expand_tree(model, [2, 3], [1, 5, 7, 9], 3, eos=1, top_k=top_k)
    scored = lm.tree_policy(model, ex.tree, [2, 3], batch_size=3)
    torch.testing.assert_close(scored.tree.log_ref, ex.tree.log_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(scored.cut, ex.cut, atol=1e-12, rtol=0)
    # through a token map: tree tokens 0..3 stand for model ids 1, 5, 7, 9
    tokens = [-1, *[[1, 5, 7, 9].index(t) for t in ex.tree.token[1:].tolist()]]
    small = tm.TokenTree(ex.tree.parent, torch.tensor(tokens), ex.tree.log_ref)
    mapped = lm.tree_policy(model, small, [2, 3], token_ids=[1, 5, 7, 9])
    torch.testing.assert_close(mapped.tree.log_ref, ex.tree.log_ref, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="vocabulary"):
        lm.tree_policy(model, small, [2, 3], token_ids=[VOCAB] * 4)


# -- no silent wrong number from real use ---------------------------------------------------------------


def test_a_model_in_train_mode_scores_deterministically_and_keeps_its_modes():
    dropout = {"resid_pdrop": 0.5, "embd_pdrop": 0.5, "attn_pdrop": 0.5}
    model = lm.tiny_gpt2(VOCAB, width=16, dtype=F64, **dropout).train()
    model.transformer.h[0].eval()  # a caller's mixed modes come back as they were
    x = ids()
    a, b = lm.token_logprobs(model, x), lm.token_logprobs(model, x)
    assert torch.equal(a, b)
    assert (
        model.training and not model.transformer.h[0].training and model.transformer.h[1].training
    )
    torch.testing.assert_close(a, naive_logprobs(model.eval(), x), atol=1e-12, rtol=0)


def test_the_first_real_token_is_not_a_prediction():
    """Left padding gives its right-padded twin's entries exactly; the first real token is 0."""
    model = llama()
    x = ids(batch=2, length=7)
    left = torch.cat([torch.zeros(2, 3, dtype=torch.long), x], 1)
    mask = torch.cat([torch.zeros(2, 3, dtype=torch.long), torch.ones_like(x)], 1)
    got = lm.token_logprobs(model, left, mask)
    assert (got[:, :3] == 0).all()  # entry 2 is x[0] after padding only: not a prediction
    torch.testing.assert_close(got[:, 3:], lm.token_logprobs(model, x), atol=1e-12, rtol=0)
    torch.testing.assert_close(got.sum(-1), lm.token_logprobs(model, x).sum(-1), atol=1e-12, rtol=0)


def test_bad_masks_models_and_ids_are_refused_before_the_model_runs():
    model = gpt2()
    x = ids()
    with pytest.raises(ValueError, match="attention_mask must be binary"):
        lm.token_logprobs(model, x, torch.full(x.shape, 2))
    with pytest.raises(ValueError, match="attention_mask must be binary"):
        lm.token_logprobs(model, x, torch.full(x.shape, 0.5))
    with pytest.raises(ValueError, match="attention_mask must have the shape"):
        lm.token_logprobs(model, x, torch.ones(3, 8))
    with pytest.raises(ValueError, match="input_ids hold ids outside"):
        padded = x.clone()
        padded[0, 0] = -100  # a label id used as padding: the model would index with it
        lm.token_logprobs(model, padded, (padded >= 0).long())
    with pytest.raises(ValueError, match="input_ids must be an integer tensor"):
        lm.token_logprobs(model, x.double())
    with pytest.raises(ValueError, match="completion_mask must be binary"):
        lm.implicit_token_rewards(model, model, x, None, torch.full(x.shape, 3), 0.1)
    body = transformers.GPT2Model(model.config).double()
    with pytest.raises(ValueError, match="causal LM"):
        lm.token_logprobs(body, x)


def test_search_inputs_share_one_check():
    model = gpt2()
    for call in (
        lambda **kw: lm.expand_tree(model, [2], depth=2, **kw),
        lambda **kw: lm.model_beam_search(model, [2], depth=2, width=2, **kw),
    ):
        with pytest.raises(ValueError, match="distinct"):
            call(tokens=[3, 3, 4])
        with pytest.raises(ValueError, match="eos 1 must be one of"):
            call(tokens=[3, 4], eos=1)
        with pytest.raises(ValueError, match="vocabulary"):
            call(tokens=[3, VOCAB])
        with pytest.raises(ValueError, match="top_k"):
            call(tokens=[3, 4], top_k=0)
    with pytest.raises(ValueError, match="depth"):
        lm.model_beam_search(model, [2], [3, 4], 0, 2)
    with pytest.raises(ValueError, match="prompt_ids"):
        lm.model_beam_search(model, [VOCAB], [3, 4], 2, 2)
    tree = lm.expand_tree(model, [2], [3, 4, 5], 2).tree
    with pytest.raises(ValueError, match="token_ids must be distinct"):
        lm.tree_policy(model, tree, [2], token_ids=[7, 7, 7, 7, 7, 7])


def test_beam_search_with_unsorted_tokens_gives_the_exact_log_probability():
    model = gpt2(3)
    path, score = lm.model_beam_search(model, [2, 3], [8, 1, 6, 4], 3, 1, eos=1)
    ex = lm.expand_tree(model, [2, 3], [1, 4, 6, 8], 3, eos=1)
    node = 0
    total = 0.0
    for token in path:
        kids = (ex.tree.parent == node).nonzero().squeeze(-1)
        node = int(kids[ex.tree.token[kids] == token])
        total += float(ex.tree.log_ref[node])
    assert score == pytest.approx(total, abs=1e-12)


# -- faults that must not go unnoticed -----------------------------------------------------------------


def test_implied_reward_of_an_eos_token_has_no_next_value():
    """After EOS the state is terminal: r at the EOS token is Q − β log π_ref, with no V(s_{t+1}),
    even when more completion tokens follow it in the row."""
    model, ref = gpt2(0), gpt2(1)
    x = ids(batch=2, length=10, seed=4)
    x[:, 6] = 1  # EOS inside the completion
    completion = torch.zeros_like(x)
    completion[:, 4:] = 1
    beta = 0.7
    r = lm.implied_rewards(model, ref, x, None, completion, beta, eos_token_id=1)
    view = lm.q_values(model, x, None, beta)
    lp_ref = lm.token_logprobs(ref, x)
    eos_entry = 5  # entry t scores token t + 1
    torch.testing.assert_close(
        r[:, eos_entry], view.q[:, eos_entry] - beta * lp_ref[:, eos_entry], atol=1e-12, rtol=0
    )
    before = 4  # an ordinary completion token: its next state's value is subtracted
    torch.testing.assert_close(
        r[:, before],
        view.q[:, before] - beta * lp_ref[:, before] - view.v[:, before + 1],
        atol=1e-12, rtol=0,
    )  # fmt: skip


def test_top_k_keeps_the_most_likely_tokens():
    model = llama(1)
    prompt, tokens = [3, 4], list(range(2, 14))
    ex = lm.expand_tree(model, prompt, tokens, 2, top_k=3)
    tree = ex.tree
    paths = tree.paths(torch.arange(tree.n_nodes)).tolist()
    for n in (~tree.terminal).nonzero().squeeze(-1).tolist():
        state = prompt + [t for t in paths[n] if t >= 0]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([state])).logits[0, -1], -1)[tokens]
        kept = set(tree.token[tree.parent == n].tolist())
        assert kept == {tokens[i] for i in logp.topk(3).indices.tolist()}


def test_label_smoothing_reaches_the_dpo_loss(trl_setup):
    """ℓ = −(1 − ε) log σ(βh) − ε log σ(−βh), h from the batch's log-ratios (written out here)."""
    _, _, tokenizer, rows, model, ref = trl_setup
    batch = lm.preference_batch(tokenizer, rows)
    h_chosen, h_rejected = lm.completion_logratios(model, ref, batch).double().chunk(2)
    h = h_chosen - h_rejected
    beta, eps = 0.8, 0.3
    logsigmoid = torch.nn.functional.logsigmoid
    want = -(1 - eps) * logsigmoid(beta * h) - eps * logsigmoid(-beta * h)
    got = lm.preference_loss(model, ref, batch, "dpo", beta=beta, label_smoothing=eps)
    torch.testing.assert_close(got.double(), want, atol=1e-6, rtol=0)
    plain = lm.preference_loss(model, ref, batch, "dpo", beta=beta)
    assert (got - plain).abs().max() > 1e-3
    with pytest.raises(ValueError, match="takes tau"):
        lm.preference_loss(model, ref, batch, "ipo", beta=beta)
    with pytest.raises(ValueError, match="takes beta"):
        lm.preference_loss(model, ref, batch, "dpo", tau=beta)
