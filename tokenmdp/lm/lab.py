"""Ground truth for real training: a transformer trained with TRL on a token tree's preferences,
scored exactly against the tree's optimum.

The tree gives π_ref, a per-token reward r and β; π*, Q*, V* are exact (:func:`tokenmdp.soft_solve`).
A small GPT-2 is warmed up to imitate π_ref on sampled sequences (a plain next-token loop), then trained
with TRL's ``DPOTrainer`` (DPO or IPO) on preference pairs whose winner is drawn by Bradley–Terry on the
summed reward (Rafailov et al. 2024, eq. (1)). :func:`score` reads the trained model back onto the
tree (:func:`tokenmdp.lm.tree_policy`) and reports exact distances to π* and how well its implicit
per-token reward recovers the true one up to potential shaping (Theorem 1).

Run ``python -m tokenmdp.lm.lab --quick`` for a small sweep (CSV and figure). Needs the ``lm`` extra.
All rows are scored against π* of the KL-regularised reward problem; IPO's own optimum differs from it
(Ψ = identity, and TRL's IPO averages log-ratios over tokens), so IPO rows show that gap too.
Every sequence of a lab tree ends with EOS (as TRL appends EOS to completions), see :func:`eos_tree`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

import toybandit as tb
from toybandit.validation import TensorLike

from ..segments import segment_log_softmax
from ..sequences import (
    implicit_rewards,
    path_sum,
    prefix_sum,
    recover_potential,
    sequence_logratios,
)
from ..solve import soft_solve
from ..train import sample_trajectory_pairs
from ..tree import TokenTree
from .expand import tree_policy
from .model import CausalLM, tiny_gpt2, vocab_size

Tensor = torch.Tensor

PAD, BOS = 0, 1  # model ids; tree token t is model id t + 2


# -- trees whose every sequence ends with EOS ---------------------------------------------------------


def eos_tree(
    vocab_size: int,
    depth: int,
    *,
    generator: torch.Generator,
    concentration: float = 1.0,
    eos: int = 0,
) -> TokenTree:
    """Every sequence of up to ``depth − 1`` non-EOS tokens followed by EOS, with a random π_ref.

    π_ref(·|s) = softmax(z / concentration), z ∼ N(0, 1), over EOS and the other tokens (only EOS at
    depth − 1), so every leaf is an EOS edge and every complete sequence is what TRL trains on.
    """
    if int(vocab_size) < 2 or int(depth) < 1:
        raise ValueError(f"need vocab_size ≥ 2 and depth ≥ 1, got {vocab_size}, {depth}")
    if not 0 <= int(eos) < int(vocab_size):
        raise ValueError(f"eos must be a token in [0, {vocab_size}), got {eos}")
    others = [t for t in range(int(vocab_size)) if t != int(eos)]
    sequences: list[list[int]] = []
    frontier_: list[list[int]] = [[]]
    for d in range(int(depth)):
        sequences += [[*p, int(eos)] for p in frontier_]
        if d + 1 < int(depth):
            frontier_ = [[*p, t] for p in frontier_ for t in others]
    tree = TokenTree.from_sequences(sequences, vocab_size=vocab_size, eos=eos)
    z = torch.randn(tree.n_nodes, generator=generator, dtype=torch.float64) / concentration
    # siblings are contiguous, one block per internal state in order: a segmented log-softmax
    log_ref = torch.zeros_like(z)
    log_ref[1:] = segment_log_softmax(z[1:], tree.n_children[~tree.terminal])
    return TokenTree(tree.parent, tree.token, log_ref, vocab_size=vocab_size, eos=eos)


def check_lab_tree(tree: TokenTree) -> None:
    """Raise unless every complete sequence of ``tree`` ends with its EOS token."""
    if tree.eos is None:
        raise ValueError("a lab tree needs an EOS token (TRL ends every completion with EOS)")
    bad = (tree.terminal & (tree.token != tree.eos)).nonzero()
    if bad.numel():
        raise ValueError(
            f"node {bad[0].item()} is a leaf that does not end with EOS: TRL would append an EOS the "
            "tree does not have; build the tree with eos_tree()"
        )


# -- the Hugging Face side: tokenizer, datasets, models ------------------------------------------------


class Vocabulary(NamedTuple):
    """A word-level tokenizer for a tree: ``<pad>`` = 0, ``<bos>`` = 1 (the prompt s₀), tree token
    t = t + 2 (its word ``t{t}``, or ``<eos>`` for EOS)."""

    tokenizer: Any
    words: list[str]
    token_ids: Tensor  # tree token → model id


def tree_vocabulary(tree: TokenTree) -> Vocabulary:
    """The tokenizer (``tokenizers`` WordLevel in a ``PreTrainedTokenizerFast``) of a lab tree."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    check_lab_tree(tree)
    n = int(tree.vocab_size or int(tree.token.max()) + 1)
    words = ["<pad>", "<bos>"] + ["<eos>" if t == tree.eos else f"t{t}" for t in range(n)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>"
    )
    return Vocabulary(tokenizer, words, torch.arange(n) + 2)


def _texts(tree: TokenTree, vocab: Vocabulary, leaves: Tensor) -> list[str]:
    rows = tree.paths(tree.leaves[leaves]).tolist()
    return [" ".join(vocab.words[t + 2] for t in row if t >= 0) for row in rows]


def _leaf_law(tree: TokenTree) -> Tensor:
    return path_sum(tree, tree.log_ref).exp()


def sft_dataset(tree: TokenTree, vocab: Vocabulary, n: int, *, generator: torch.Generator):
    """``datasets.Dataset`` of n complete sequences drawn from π_ref: ``{"text": "<bos> t3 <eos>"}``."""
    from datasets import Dataset

    leaves = torch.multinomial(_leaf_law(tree), int(n), replacement=True, generator=generator)
    return Dataset.from_dict({"text": [f"<bos> {t}" for t in _texts(tree, vocab, leaves)]})


def preference_dataset(
    tree: TokenTree,
    reward,
    vocab: Vocabulary,
    n: int,
    *,
    generator: torch.Generator,
    behaviour=None,
    pref=None,
):
    """``datasets.Dataset`` of n rows ``{"prompt": "<bos>", "chosen": " …", "rejected": " …"}``: two
    sequences from ``behaviour`` (π_ref's sequence law by default), the winner drawn by
    Bradley–Terry on the summed reward (:func:`tokenmdp.sample_trajectory_pairs`), or by any
    preference matrix ``pref`` [L, L] over the leaves (Nguyen 2025 (8a–c); ``reward`` is then unused).
    """
    from datasets import Dataset

    if pref is None:
        pairs = sample_trajectory_pairs(
            tree, reward, int(n), generator=generator, behaviour=behaviour
        )
    else:
        mu = _leaf_law(tree) if behaviour is None else behaviour
        pairs = tb.sample_preferences(pref, mu, int(n), generator)
    chosen, rejected = _texts(tree, vocab, pairs.chosen), _texts(tree, vocab, pairs.rejected)
    return Dataset.from_dict(
        {
            "prompt": ["<bos>"] * int(n),
            "chosen": [f" {c}" for c in chosen],
            "rejected": [f" {r}" for r in rejected],
        }
    )


def small_model(vocab: Vocabulary, depth: int, *, seed: int = 0, width: int = 32, layers: int = 2):
    """A GPT-2 from a config sized for the tree (:func:`tokenmdp.lm.tiny_gpt2`: random weights,
    float32, no dropout), in train mode."""
    return tiny_gpt2(
        len(vocab.words), seed=seed, positions=int(depth) + 2, width=width, layers=layers,
        bos_token_id=BOS, eos_token_id=vocab.words.index("<eos>"), pad_token_id=PAD,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    ).train()  # fmt: skip


def warm_up(
    model,
    vocab: Vocabulary,
    dataset,
    *,
    epochs: int = 30,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
):
    """Imitate π_ref: next-token cross-entropy on the sampled sequences (a plain AdamW loop)."""
    ids = [vocab.tokenizer(t)["input_ids"] for t in dataset["text"]]
    width = max(len(i) for i in ids)
    batch = torch.full((len(ids), width), PAD, dtype=torch.long)
    for k, row in enumerate(ids):
        batch[k, : len(row)] = torch.tensor(row)
    labels = batch.masked_fill(batch == PAD, -100)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(int(epochs)):
        order = torch.randperm(len(ids), generator=generator)
        for start in range(0, len(ids), batch_size):
            rows = order[start : start + batch_size]
            out = model(
                input_ids=batch[rows].to(device),
                attention_mask=(batch[rows] != PAD).long().to(device),
                labels=labels[rows].to(device),
            )
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    return model.eval()


def train_preferences(
    model,
    ref_model,
    vocab: Vocabulary,
    dataset,
    *,
    loss: str = "dpo",
    beta: float | None = None,
    tau: float | None = None,
    epochs: int = 4,
    lr: float = 1e-3,
    batch_size: int = 16,
    seed: int = 0,
    output_dir: str | Path = "lab_runs/trl",
):
    """Train ``model`` with TRL's ``DPOTrainer``: ``loss`` "dpo" (TRL's "sigmoid", strength
    ``beta``) or "ipo" (TRL's "ipo", IPO's ``tau``, which TRL calls beta), reference
    ``ref_model``; float32 (no autocast), on a GPU when present; TRL's own printing switched off."""
    from transformers import PrinterCallback, ProgressCallback

    # trl's lazy __init__ re-exports these at run time only (no __all__ for a type checker)
    from trl import DPOConfig, DPOTrainer  # pyright: ignore[reportPrivateImportUsage]

    if loss not in ("dpo", "ipo"):
        raise ValueError(f'loss must be "dpo" or "ipo", got {loss!r}')
    name, strength, other = ("beta", beta, tau) if loss == "dpo" else ("tau", tau, beta)
    if other is not None:
        raise ValueError(f"loss {loss!r} takes {name} only, got both beta and tau")
    if strength is None or not (float(strength) > 0 and math.isfinite(float(strength))):
        raise ValueError(f"{name} must be positive and finite, got {strength!r}")
    if len(vocab.tokenizer) != vocab_size(model):
        raise ValueError(
            f"the tokenizer has {len(vocab.tokenizer)} tokens but the model scores "
            f"{vocab_size(model)}: they do not belong together"
        )
    args = DPOConfig(
        output_dir=str(output_dir), beta=float(strength),
        loss_type=["sigmoid" if loss == "dpo" else "ipo"],
        learning_rate=lr, num_train_epochs=epochs, per_device_train_batch_size=batch_size,
        max_length=64, report_to=[], disable_tqdm=True, save_strategy="no", logging_strategy="no",
        bf16=False, fp16=False, use_cpu=not torch.cuda.is_available(), seed=seed,
        lr_scheduler_type="constant",
    )  # fmt: skip
    with quiet():
        trainer = DPOTrainer(
            model=model, ref_model=ref_model, args=args, train_dataset=dataset,
            processing_class=vocab.tokenizer,
        )  # fmt: skip
        for callback in (PrinterCallback, ProgressCallback):  # they print TRL's metric dicts
            trainer.remove_callback(callback)
        trainer.train()
    assert trainer.model is not None  # the model it was given
    return trainer.model.eval()


@contextlib.contextmanager
def quiet():
    """Silence library noise (transformers and datasets logging, progress bars, warnings) for the
    duration; the lab prints its own progress and table."""
    import datasets
    import transformers

    level = transformers.logging.get_verbosity()
    bars = datasets.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    datasets.utils.logging.disable_progress_bar()
    datasets_level = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers.logging.set_verbosity(level)
        datasets.logging.set_verbosity(datasets_level)
        if bars:
            datasets.utils.logging.enable_progress_bar()


# -- exact scoring ---------------------------------------------------------------------------------------


class Score(NamedTuple):
    """Exact distances of a model to the tree's optimum π* (all over complete sequences).

    kl_model_opt: KL(π_θ ‖ π*); kl_opt_model: KL(π* ‖ π_θ); kl_by_depth[d]: the part of KL(π* ‖ π_θ)
    from the tokens at depth d + 1 (they sum to kl_opt_model, chain rule); accuracy: the fraction of
    leaf pairs with different returns that the implicit reward β log π_θ/π_ref orders like the true
    return; credit: the correlation between the true per-token reward and the model's implicit
    per-token reward after removing the potential-shaping term recovered from the leaves up (Theorem
    1: only that difference is identifiable); cut: the largest probability the model puts outside
    the tree at a state; kl_ref_model: KL(π_ref ‖ π_θ), how far the model is from the tree's
    reference (small for a good warm-up).
    """

    kl_model_opt: float
    kl_opt_model: float
    kl_by_depth: list[float]
    accuracy: float
    credit: float
    cut: float
    kl_ref_model: float


def score(
    model: CausalLM, tree: TokenTree, reward: TensorLike, beta: float, vocab: Vocabulary
) -> Score:
    """Score a model against the exact optimum of (tree, reward, β); see :class:`Score`.

    The model's weights are evaluated in float64 (a copy), so the scores are exact for those weights.
    """
    check_lab_tree(tree)
    reward = torch.as_tensor(reward, dtype=torch.float64)
    if next(model.parameters()).dtype != torch.float64:  # score the trained weights in float64
        model = copy.deepcopy(model).double()
    scored = tree_policy(model, tree, [BOS], token_ids=vocab.token_ids)
    log_pi = scored.tree.log_ref.to(torch.float64)
    log_star = soft_solve(tree, reward, beta).log_policy
    law, star = path_sum(tree, log_pi).exp(), path_sum(tree, log_star).exp()
    visit = prefix_sum(tree, log_star).exp()  # π*-probability of reaching each node
    per_edge = visit * (log_star - log_pi)
    per_edge[0] = 0.0
    by_depth = [float(per_edge[tree.depth == d].sum()) for d in range(1, tree.max_depth + 1)]
    returns = path_sum(tree, reward)
    implicit = beta * sequence_logratios(tree, log_pi)
    i, j = torch.triu_indices(len(returns), len(returns), 1)
    differ = (returns[i] - returns[j]).abs() > 1e-12
    agree = torch.sign(implicit[i] - implicit[j]) == torch.sign(returns[i] - returns[j])
    accuracy = float(agree[differ].double().mean()) if differ.any() else 1.0
    token_implicit = implicit_rewards(tree, log_pi, beta)
    _, residual = recover_potential(tree, reward, token_implicit)
    unshaped = (reward + residual)[1:]
    credit = float(torch.corrcoef(torch.stack([unshaped, reward[1:]]))[0, 1])
    return Score(
        float(tb.kl_divergence(law, star)),
        float(tb.kl_divergence(star, law)),
        by_depth,
        accuracy,
        credit if math.isfinite(credit) else float("nan"),
        float(scored.cut.max()),
        float(tb.kl_divergence(_leaf_law(tree), law)),
    )


# -- the sweep --------------------------------------------------------------------------------------


class Setting(NamedTuple):
    vocab_size: int = 3
    depth: int = 3
    seed: int = 0
    sft_samples: int = 4000
    pairs: Sequence[int] = (64, 256)
    betas: Sequence[float] = (0.5,)
    losses: Sequence[str] = ("dpo", "ipo")
    epochs: int = 4


QUICK = Setting()
FULL = Setting(
    vocab_size=4,
    depth=4,
    sft_samples=20_000,
    pairs=(64, 256, 1024, 4096),
    betas=(0.1, 0.5, 2.0),
    epochs=6,
)


def sweep(
    setting: Setting, out: str | Path, *, progress: Callable[[str], object] | None = None
) -> list[dict[str, Any]]:
    """Run a grid (pairs × β × loss) on one tree; write ``results.csv`` and ``results.png`` under
    ``out`` and return the rows. IPO runs use τ = β (the β column). ``progress``: called with one
    line of text per finished step (e.g. ``print``)."""
    say = progress or (lambda _line: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for b in setting.betas:
        if not (float(b) > 0 and math.isfinite(float(b))):
            raise ValueError(f"every beta must be positive and finite, got {b!r}")
    g = torch.Generator().manual_seed(setting.seed)
    tree = eos_tree(setting.vocab_size, setting.depth, generator=g, concentration=1.0)
    reward = 2 * torch.randn(tree.n_nodes, generator=g, dtype=torch.float64)
    reward[0] = 0.0
    vocab = tree_vocabulary(tree)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # transformers wraps `to` with functools.wraps(nn.Module.to), which hides its `self`
    base = small_model(vocab, tree.max_depth, seed=setting.seed).to(device)  # pyright: ignore[reportArgumentType]
    say(
        f"tree: {tree.n_nodes} nodes, {tree.leaves.numel()} sequences; warming up on "
        f"{setting.sft_samples} samples"
    )
    with quiet():
        data = sft_dataset(tree, vocab, setting.sft_samples, generator=g)
        warm_up(base, vocab, data, seed=setting.seed)
    rows = []
    runs, done = len(setting.betas) * len(setting.losses) * len(setting.pairs), 0
    for beta in setting.betas:
        s = score(base, tree, reward, beta, vocab)
        rows.append(_row("warm-up", beta, 0, s))
        for loss in setting.losses:
            for n in setting.pairs:
                with quiet():
                    data = preference_dataset(
                        tree, reward, vocab, n,
                        generator=torch.Generator().manual_seed(setting.seed + n),
                    )  # fmt: skip
                strength = {"beta": beta} if loss == "dpo" else {"tau": beta}
                model = train_preferences(
                    copy.deepcopy(base), copy.deepcopy(base), vocab, data, loss=loss,
                    beta=strength.get("beta"), tau=strength.get("tau"),
                    epochs=setting.epochs, seed=setting.seed, output_dir=out / "trl",
                )  # fmt: skip
                rows.append(_row(loss, beta, n, score(model, tree, reward, beta, vocab)))
                done += 1
                kl = rows[-1]["kl_opt_model"]
                say(f"[{done}/{runs}] {loss}, β={beta}, {n} pairs: KL(π* ‖ π_θ) = {kl:.4g}")
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _figure(rows, out / "results.png")
    return rows


def _row(method: str, beta: float, pairs: int, s: Score) -> dict[str, Any]:
    row = {"method": method, "beta": beta, "pairs": pairs, "kl_model_opt": s.kl_model_opt,
           "kl_opt_model": s.kl_opt_model, "accuracy": s.accuracy, "credit": s.credit,
           "cut": s.cut, "kl_ref_model": s.kl_ref_model}  # fmt: skip
    row.update({f"kl_depth{d + 1}": v for d, v in enumerate(s.kl_by_depth)})
    return row


def _figure(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for (beta, method), style in zip(
        sorted({(r["beta"], r["method"]) for r in rows if r["method"] != "warm-up"}),
        ("o-", "s-", "^-", "v-", "d-", "x-"),
        strict=False,
    ):
        sel = [r for r in rows if r["beta"] == beta and r["method"] == method]
        x = [r["pairs"] for r in sel]
        axes[0].plot(x, [r["kl_opt_model"] for r in sel], style, label=f"{method}, β={beta}")
        axes[1].plot(x, [r["credit"] for r in sel], style, label=f"{method}, β={beta}")
    for r in rows:
        if r["method"] == "warm-up":
            axes[0].axhline(
                r["kl_opt_model"], ls="--", c="grey", lw=0.8, label=f"warm-up, β={r['beta']}"
            )
    axes[0].set(xscale="log", yscale="log", xlabel="preference pairs", ylabel="KL(π* ‖ π_θ)",
                title="distance to the exact optimum")  # fmt: skip
    axes[1].set(xscale="log", xlabel="preference pairs", ylabel="corr(r, implicit r − shaping)",
                title="credit assignment")  # fmt: skip
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tokenmdp.lm.lab [--quick] [--out DIR]``: run the sweep, print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m tokenmdp.lm.lab", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="the small CPU setting (minutes)")
    parser.add_argument("--out", default="lab_runs", help="directory for results.csv / results.png")
    args = parser.parse_args(argv)
    rows = sweep(
        QUICK if args.quick else FULL, args.out, progress=lambda line: print(line, flush=True)
    )
    keys = ["method", "beta", "pairs", "kl_ref_model", "kl_model_opt", "kl_opt_model", "accuracy"]
    keys.append("credit")
    print(" | ".join(keys))
    for r in rows:
        print(" | ".join(f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in keys))
    print(f"written: {Path(args.out) / 'results.csv'}, {Path(args.out) / 'results.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
