"""tokenmdp.lm.lab: the bridge to Hugging Face, the exact scorer, and a real (tiny) TRL training run."""

import math
from types import SimpleNamespace

import pytest
import torch

import tokenmdp as tm
import toybandit as tb

pytest.importorskip("trl")
from tokenmdp.lm import lab


@pytest.fixture(scope="module")
def world():
    g = torch.Generator().manual_seed(0)
    tree = lab.eos_tree(3, 3, generator=g)
    reward = 2 * torch.randn(tree.n_nodes, generator=g, dtype=torch.float64)
    reward[0] = 0.0
    return tree, reward, lab.tree_vocabulary(tree)


class TabularLM(torch.nn.Module):
    """A causal LM whose next-token law at every tree state is a given per-edge policy (ids outside
    the state's children get logit −30): a model whose answer is known."""

    def __init__(self, tree, log_policy, vocab):
        super().__init__()
        n = len(vocab.words)
        self.config = SimpleNamespace(vocab_size=n, n_positions=tree.max_depth + 2)
        self.embed = torch.nn.Embedding(n, 1).double()
        self.table = {}
        paths = tree.path_nodes(torch.arange(tree.n_nodes)).tolist()
        for s in range(tree.n_nodes):
            prefix = (lab.BOS, *(int(vocab.token_ids[tree.token[x]]) for x in paths[s] if x >= 0))
            logits = torch.full((n,), -30.0, dtype=torch.float64)
            kids = (tree.parent == s).nonzero().squeeze(-1)
            logits[vocab.token_ids[tree.token[kids]]] = log_policy[kids]
            self.table[prefix] = logits

    def get_input_embeddings(self):
        return self.embed

    def get_output_embeddings(self):
        return None

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        n = self.config.vocab_size
        out = torch.full((*input_ids.shape, n), -30.0, dtype=torch.float64)
        for b, row in enumerate(input_ids.tolist()):
            for t in range(len(row)):
                out[b, t] = self.table.get(tuple(row[: t + 1]), out[b, t])
        return SimpleNamespace(logits=out)


def test_eos_tree_and_vocabulary(world):
    tree, _, vocab = world
    assert (tree.token[tree.terminal] == tree.eos).all()
    assert vocab.words[:3] == ["<pad>", "<bos>", "<eos>"]
    texts = lab._texts(tree, vocab, torch.arange(tree.leaves.numel()))
    for text, row in zip(texts, tree.paths().tolist(), strict=True):
        assert vocab.tokenizer(text)["input_ids"] == [t + 2 for t in row if t >= 0]
    with pytest.raises(ValueError, match="does not end with EOS"):
        lab.check_lab_tree(tm.TokenTree.full(3, 2, eos=0))
    with pytest.raises(ValueError, match="needs an EOS"):
        lab.check_lab_tree(tm.TokenTree.full(3, 2, eos=None))


def test_datasets_are_reproducible(world):
    tree, reward, vocab = world
    a = lab.preference_dataset(tree, reward, vocab, 20, generator=torch.Generator().manual_seed(1))
    b = lab.preference_dataset(tree, reward, vocab, 20, generator=torch.Generator().manual_seed(1))
    assert a["chosen"] == b["chosen"] and a["rejected"] == b["rejected"]
    assert all(c.startswith(" ") and c.endswith("<eos>") for c in a["chosen"])
    sft = lab.sft_dataset(tree, vocab, 500, generator=torch.Generator().manual_seed(2))
    counts = torch.zeros(tree.leaves.numel())
    texts = lab._texts(tree, vocab, torch.arange(tree.leaves.numel()))
    for t in sft["text"]:
        counts[texts.index(t.removeprefix("<bos> "))] += 1
    law = tm.path_sum(tree, tree.log_ref).exp().float()
    assert (counts / 500 - law).abs().max() < 0.08  # 500 draws: ≤ 4 standard errors


def test_score_of_the_optimum_itself_is_exact(world):
    tree, reward, vocab = world
    beta = 0.7
    star = tm.soft_solve(tree, reward, beta).log_policy
    s = lab.score(TabularLM(tree, star, vocab), tree, reward, beta, vocab)
    assert s.kl_model_opt < 1e-12 and s.kl_opt_model < 1e-12
    assert max(abs(k) for k in s.kl_by_depth) < 1e-12
    assert s.accuracy == 1.0 and s.credit == pytest.approx(1.0, abs=1e-12)
    assert s.cut < 1e-10  # −30 logits outside the tree: e^{-30}·V


def test_score_of_the_reference_is_its_kl(world):
    """Negative twin: the warm-up target π_ref is scored at its exact distance to π*."""
    tree, reward, vocab = world
    beta = 0.7
    s = lab.score(TabularLM(tree, tree.log_ref, vocab), tree, reward, beta, vocab)
    ref_law = tm.path_sum(tree, tree.log_ref).exp()
    star_law = tm.path_sum(tree, tm.soft_solve(tree, reward, beta).log_policy).exp()
    assert s.kl_model_opt == pytest.approx(tb.kl_divergence(ref_law, star_law).item(), rel=1e-10)
    assert s.kl_opt_model == pytest.approx(sum(s.kl_by_depth), rel=1e-10)  # chain rule
    assert s.kl_opt_model > 0.05
    # credit: π_ref's implicit reward is 0, so what is left after removing the best shaping is
    # −(Φ(s·a) − Φ(s)), Φ fitted to map r onto 0; its correlation with r, written out here
    phi, _ = tm.recover_potential(tree, reward, torch.zeros_like(reward))
    unshaped = -(phi - phi[tree.parent.clamp(min=0)])[1:]
    want = torch.corrcoef(torch.stack([unshaped, reward[1:]]))[0, 1].item()
    assert s.credit == pytest.approx(want, abs=1e-9) and abs(want) < 0.99


def test_bad_settings(world):
    tree, reward, vocab = world
    model = lab.small_model(vocab, tree.max_depth)
    data = lab.preference_dataset(
        tree, reward, vocab, 8, generator=torch.Generator().manual_seed(0)
    )
    with pytest.raises(ValueError, match="beta"):
        lab.train_preferences(model, model, vocab, data, beta=0.0)
    with pytest.raises(ValueError, match="loss"):
        lab.train_preferences(model, model, vocab, data, loss="kto")
    other = lab.tree_vocabulary(lab.eos_tree(5, 3, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="do not belong together"):
        lab.train_preferences(lab.small_model(other, 3), model, vocab, data, beta=0.5)
    deeper = lab.eos_tree(3, 5, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="context"):  # the model was sized for depth 3
        lab.score(model, deeper, torch.zeros(deeper.n_nodes), 0.5, lab.tree_vocabulary(deeper))
    with pytest.raises(ValueError, match="beta"):
        lab.sweep(lab.Setting(betas=(-1.0,)), "unused")
    wider = lab.eos_tree(6, 3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="vocabulary"):  # the model knows 3 tree tokens, not 6
        lab.score(model, wider, torch.zeros(wider.n_nodes), 0.5, lab.tree_vocabulary(wider))


def test_preference_rows_from_any_preference_matrix(world):
    """Rows drawn from a given preference matrix (here deterministic) follow it."""
    tree, reward, vocab = world
    n_leaves = tree.leaves.numel()
    g = torch.Generator().manual_seed(4)
    pref = tb.random_preference(n_leaves, generator=g, kind="deterministic")
    data = lab.preference_dataset(tree, reward, vocab, 50, generator=g, pref=pref)
    texts = lab._texts(tree, vocab, torch.arange(n_leaves))
    for c, r in zip(data["chosen"], data["rejected"], strict=True):
        i, j = texts.index(c.strip()), texts.index(r.strip())
        assert i == j or pref[i, j] == 1.0


@pytest.mark.slow
def test_trl_training_moves_a_transformer_towards_the_exact_optimum(world, tmp_path):
    """Warm-up on π_ref samples, then TRL's DPOTrainer on Bradley–Terry pairs: the exact KL to π*
    must drop well below the warm-up model's."""
    tree, reward, vocab = world
    beta = 0.5
    base = lab.small_model(vocab, tree.max_depth, seed=0)
    lab.warm_up(
        base, vocab, lab.sft_dataset(tree, vocab, 2000, generator=torch.Generator().manual_seed(0))
    )
    before = lab.score(base, tree, reward, beta, vocab)
    data = lab.preference_dataset(
        tree, reward, vocab, 256, generator=torch.Generator().manual_seed(3)
    )
    import copy

    trained = lab.train_preferences(
        copy.deepcopy(base), copy.deepcopy(base), vocab, data, beta=beta, output_dir=tmp_path
    )
    after = lab.score(trained, tree, reward, beta, vocab)
    assert after.kl_opt_model < 0.5 * before.kl_opt_model
    assert after.accuracy >= before.accuracy
    assert math.isfinite(after.credit)


@pytest.mark.parametrize(
    ("loss", "strength", "trl_loss"), [("dpo", "beta", "sigmoid"), ("ipo", "tau", "ipo")]
)
def test_each_lab_loss_reaches_trl_as_its_own_loss_type(
    world, monkeypatch, loss, strength, trl_loss
):
    """The configuration TRL's trainer receives: the loss type and the strength (TRL's beta)."""
    import trl

    tree, reward, vocab = world
    seen = {}

    class Stop(Exception):
        pass

    class Recorder(trl.DPOTrainer):
        def __init__(self, *args, **kwargs):
            seen["loss_type"], seen["beta"] = list(kwargs["args"].loss_type), kwargs["args"].beta
            raise Stop

    monkeypatch.setattr(trl, "DPOTrainer", Recorder)
    model = lab.small_model(vocab, tree.max_depth)
    data = lab.preference_dataset(
        tree, reward, vocab, 8, generator=torch.Generator().manual_seed(0)
    )
    with pytest.raises(Stop):
        lab.train_preferences(model, model, vocab, data, loss=loss, **{strength: 0.3})
    assert seen == {"loss_type": [trl_loss], "beta": 0.3}
    with pytest.raises(ValueError, match="takes"):
        lab.train_preferences(model, model, vocab, data, loss=loss, beta=0.3, tau=0.3)


@pytest.mark.slow
def test_the_lab_prints_its_own_lines_only(tmp_path, capfd):
    """A whole (tiny) sweep through the command line: progress lines and the table, nothing from
    transformers, datasets or TRL (no warnings, progress bars or metric dicts)."""
    tiny = lab.Setting(sft_samples=64, pairs=(8,), losses=("dpo", "ipo"), epochs=1)
    import unittest.mock

    with unittest.mock.patch.object(lab, "QUICK", tiny):
        assert lab.main(["--quick", "--out", str(tmp_path)]) == 0
    out, err = capfd.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("tree: ") and lines[1].startswith("[1/2] dpo")
    assert lines[2].startswith("[2/2] ipo") and lines[3].startswith("method | beta")
    assert len(lines) == 4 + 3 + 1 and lines[-1].startswith("written: ")
    assert err == ""
    assert (tmp_path / "results.csv").exists() and (tmp_path / "results.png").exists()
