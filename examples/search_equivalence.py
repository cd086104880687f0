"""Rafailov et al. 2024, eqs. (12)–(13): search on r + β log π_ref with V* at the frontier is likelihood
search on π*; and how wide a beam must be to find the best complete sequence.

    python examples/search_equivalence.py [--quick] [--out DIR]
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

import tokenmdp as tm

from _common import parse, save


def main(argv=None) -> dict:
    args = parse(__doc__.splitlines()[0], argv)
    trees = 10 if args.quick else 100
    widths = [1, 2, 3, 4, 6, 8, 12, 16]
    agree, myopic_agree, regrets = 0, 0, []
    checks = 0
    for seed in range(trees):
        g = torch.Generator().manual_seed(seed)
        tree = tm.random_tree(4, 5, 0, generator=g, keep=0.7, concentration=1.0)
        reward = 2 * torch.randn(tree.n_nodes, generator=g, dtype=torch.float64)
        beta = 0.5
        sol = tm.soft_solve(tree, reward, beta)
        for depth in range(1, tree.max_depth + 1):
            guided = tm.best_prefix(tree, reward + beta * tree.log_ref, depth, value=sol.v)
            likelihood = tm.best_prefix(tree, beta * sol.log_policy, depth)
            myopic = tm.best_prefix(tree, reward + beta * tree.log_ref, depth)
            agree += guided.node == likelihood.node
            myopic_agree += myopic.node == likelihood.node
            checks += 1
        best = tm.best_sequence(tree, sol.log_policy).score
        regrets.append([best - tm.beam_search(tree, sol.log_policy, w).score for w in widths])
    regrets = np.array(regrets)
    summary = {
        "V*-guided search = likelihood search (prefixes checked)": f"{agree}/{checks}",
        "without V* at the frontier": f"{myopic_agree}/{checks}",
        "mean log π* regret of beam width 1, 4, 16": regrets[:, [0, 3, 7]]
        .mean(0)
        .round(4)
        .tolist(),
        "share of trees where width 16 is exact": float((regrets[:, -1] < 1e-12).mean()),
    }
    for k, v in summary.items():
        print(f"{k}: {v}")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].bar(
        ["with V*", "without V*"], [agree / checks, myopic_agree / checks], color=["C0", "C3"]
    )
    axes[0].set(ylim=(0, 1.05), ylabel="same choice as likelihood search", title="eqs. (12)–(13)")
    axes[1].plot(widths, regrets.mean(0), "o-", label="mean")
    axes[1].plot(widths, np.quantile(regrets, 0.9, axis=0), "s--", label="90th percentile")
    axes[1].set(
        xscale="log",
        xlabel="beam width",
        ylabel="log π*(best) − log π*(beam)",
        title="beam search on π*",
    )
    axes[1].legend(fontsize=8)
    save(fig, args, "search_equivalence")
    return summary


if __name__ == "__main__":
    main()
