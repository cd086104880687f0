"""A real transformers model as a token MDP: the Q/V view, the implied reward and its telescoping sum,
a credit-assignment plot, and the exact tree checks of proofs_check on the model's own tree.

A tiny random GPT-2 (float64) by default; ``--model PATH`` for a local checkpoint, cast to float64,
with a tiny random GPT-2 of its vocabulary as the reference (a model is no reference for itself:
its implicit rewards would all be 0); a GPU when there is one.

    python examples/lm_demo.py [--quick] [--out DIR] [--model PATH]
"""

from __future__ import annotations

import torch

import tokenmdp as tm
from tokenmdp import lm

from _common import parse, save


def models(path):
    from proofs_check.lm_claims import load_checkpoint, tiny_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if path:
        policy = load_checkpoint(path).double().to(device)
        ref = tiny_model(1, vocab_size=lm.vocab_size(policy)).to(device)
        return policy, ref, f"{path} (float64; reference: a tiny random GPT-2)"
    return tiny_model(0).to(device), tiny_model(1).to(device), "tiny random GPT-2 (float64)"


def main(argv=None) -> dict:
    args = parse(__doc__.splitlines()[0], argv, model=(str, None, "local checkpoint directory"))
    policy, ref, name = models(args.model)
    n_vocab = lm.vocab_size(policy)
    beta = 0.1
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, n_vocab, (2, 12), generator=g)
    completion = torch.zeros_like(ids)
    completion[:, 5:] = 1
    view = lm.q_values(policy, ids, None, beta)
    implied = lm.implied_rewards(policy, ref, ids, None, completion, beta)
    implicit = lm.implicit_token_rewards(policy, ref, ids, None, completion, beta)
    telescoping = (implied.sum(-1) - view.v[:, 4] - implicit.sum(-1)).abs().max().item()
    tokens = [2 + k for k in range(4 if args.quick else 6)]
    tree = lm.expand_tree(policy, ids[0, :3], tokens, 3, top_k=3).tree
    reward = torch.randn(tree.n_nodes, generator=g, dtype=torch.float64)
    sol = tm.soft_solve(tree, reward, beta)
    back = tm.reward_from_q(tree, sol.q, beta)
    summary = {
        "model": name,
        "log π = (Q − V)/β, max error": ((view.q - view.v) / beta - lm.token_logprobs(policy, ids))
        .abs()
        .max()
        .item(),
        "Σ implied r − V(s₀) − Σ β log π/π_ref (sec. 4.1)": telescoping,
        "expanded tree nodes": tree.n_nodes,
        "Lemma 1 on the model's tree, max |r − r(Q*(r))|": (back - reward)[1:].abs().max().item(),
    }
    from proofs_check import run_claim, select
    from proofs_check.lm_claims import set_model

    set_model(args.model, "cuda" if torch.cuda.is_available() else "cpu")
    results = [run_claim(c, instances=2 if args.quick else 10) for c in select(["lm"])]
    summary["proofs_check claims on the model's trees with their expected outcome"] = (
        f"{sum(r.ok for r in results)}/{len(results)}"
    )
    for k, v in summary.items():
        print(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}")
    rows = []
    for b in range(2):
        mask = completion[b, 1:].bool()
        words = [f"#{t}" for t in ids[b, 1:][mask.cpu()].tolist()]
        rows.append((words, implicit[b][mask].cpu()))
    fig = lm.plot_credit(rows, titles=["sequence 1", "sequence 2"])
    save(fig, args, "lm_demo")
    return summary


if __name__ == "__main__":
    main()
