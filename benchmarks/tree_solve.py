"""Soft backward induction on full token trees: tokenmdp.soft_solve against three baselines.

For full trees of 1e2 … 1e7 nodes (vocabulary 10, no EOS), a full tree with EOS and a randomly
pruned one (unequal sibling counts), in one process and on one CPU thread, float64:
  - soft_solve: level-by-level vectorised backward induction (Rafailov et al. 2024, eqs. (5)–(7));
  - naive: a recursive Python solver, one call per node (up to 1e5 nodes);
  - tabular VI: general finite-horizon soft value iteration over the same tree written as a tabular
    MDP, a next-state table [S, V] swept over all states once per step of the horizon (up to 1e6);
  - memory floor: one plain pass that allocates the three outputs and copies the three inputs
    (reward, log_ref, parent) into them, the traffic any solver must do.
Ratios are times relative to soft_solve in the same run (naive/VI: how much slower; soft_solve/floor:
how far from the bandwidth floor). Peak memory of one solve beyond its inputs is reported in
node-sized float64 arrays (the three outputs are three of them). With --cuda the solve also runs on
the GPU.

Usage: python benchmarks/tree_solve.py [--max-depth 7] [--cuda]
"""

from __future__ import annotations

import argparse
import math
import re
import time

import torch

from tokenmdp import TokenTree, random_tree, soft_solve

VOCAB = 10


def timed(fn, repeat=3, sync=None):
    best = math.inf
    for _ in range(repeat):
        if sync:
            sync()
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        best = min(best, time.perf_counter() - start)
    return best


def naive_solve(parent: list[int], log_ref: list[float], reward: list[float], beta: float):
    kids: list[list[int]] = [[] for _ in parent]
    for n, p in enumerate(parent[1:], start=1):
        kids[p].append(n)
    q, v = [0.0] * len(parent), [0.0] * len(parent)

    def visit(s: int) -> float:
        if not kids[s]:
            return 0.0
        qs = [reward[c] + beta * log_ref[c] + visit(c) for c in kids[s]]
        m = max(qs)
        v[s] = m + beta * math.log(sum(math.exp((x - m) / beta) for x in qs))
        for c, x in zip(kids[s], qs, strict=True):
            q[c] = x
        return v[s]

    visit(0)
    return q, v


def tabular_mdp(tree: TokenTree, reward: torch.Tensor):
    """next[s, a] (−1 where a is not expanded), r[s, a], log π_ref[s, a] as dense [S, V] tables."""
    s, a = tree.parent[1:], tree.token[1:]
    nxt = torch.full((tree.n_nodes, VOCAB), -1, dtype=torch.long)
    nxt[s, a] = torch.arange(1, tree.n_nodes)
    r = torch.zeros(tree.n_nodes, VOCAB, dtype=torch.float64)
    r[s, a] = reward[1:]
    lr = torch.full((tree.n_nodes, VOCAB), -math.inf, dtype=torch.float64)
    lr[s, a] = tree.log_ref[1:]
    return nxt, r, lr


def value_iteration(nxt, r, lr, horizon: int, beta: float):
    """V_{h+1}(s) = β logsumexp_a [(r + β log π_ref)(s, a) + V_h(next(s, a))]/β, V_0 = 0; terminal
    states (no actions) keep V = 0. One sweep over all S·V entries per step."""
    base = r + beta * lr
    valid = nxt >= 0
    index = nxt.clamp(min=0)
    v = torch.zeros(nxt.shape[0], dtype=torch.float64)
    for _ in range(horizon):
        q = base + torch.where(valid, v[index], 0.0)
        v = torch.where(valid.any(-1), beta * torch.logsumexp(q / beta, -1), 0.0)
    return v


def floor_pass(reward, log_ref, parent):
    outs = [torch.empty_like(reward) for _ in range(3)]
    outs[0].copy_(reward)
    outs[1].copy_(log_ref)
    outs[2].copy_(parent)
    return outs


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{key}:\s+(\d+) kB", f.read()).group(1)) * 1024


def peak_arrays(tree: TokenTree, reward: torch.Tensor) -> float | None:
    """Peak resident memory of one solve beyond its inputs, in node-sized float64 arrays (Linux:
    the high-water mark is reset through /proc/self/clear_refs just before the solve)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _status_bytes("VmRSS")
    except OSError:
        return None
    sol = soft_solve(tree, reward, 1.0)
    peak = _status_bytes("VmHWM") - base
    del sol
    return peak / (8 * tree.n_nodes)


def _tree(depth: int, eos) -> TokenTree:
    """Full trees; "pruned": EOS = 0, each token kept with probability 0.7, random π_ref (unequal
    sibling counts: the solver's general segmented path)."""
    if eos == "pruned":
        generator = torch.Generator().manual_seed(0)
        return random_tree(VOCAB, depth, 0, generator=generator, keep=0.7)
    return TokenTree.full(VOCAB, depth, eos)


def _name(depth: int, eos) -> str:
    return f"V={VOCAB} D={depth}" + {None: "", 0: " EOS", "pruned": " pruned"}[eos]


def _ratio(x: float) -> str:
    return f"{x:.1f}" if x < 10 else f"{x:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-depth", type=int, default=7)
    parser.add_argument("--cuda", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    beta = 1.0
    cases = [(d, None) for d in range(2, args.max_depth + 1)]
    cases += [(args.max_depth, 0), (args.max_depth + 1, "pruned")]
    print(
        f"{'tree':>16} {'nodes':>10} {'solve ms':>9} {'nodes/s':>9} {'naive×':>8} "
        f"{'VI×':>7} {'floor ms':>9} {'solve/floor':>11} {'peak':>6}"
    )
    for depth, eos in cases:
        tree = _tree(depth, eos)
        n = tree.n_nodes
        reward = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        t_solve = timed(lambda tree=tree, reward=reward: soft_solve(tree, reward, beta))
        naive = vi = "—"
        if n <= 200_000:
            args_naive = (tree.parent.tolist(), tree.log_ref.tolist(), reward.tolist(), beta)
            t_naive = timed(lambda a=args_naive: naive_solve(*a), repeat=3 if n < 20_000 else 1)
            naive = _ratio(t_naive / t_solve)
        if n <= 2_000_000:
            tables = tabular_mdp(tree, reward)
            t_vi = timed(lambda t=tables, d=depth: value_iteration(*t, d, beta), repeat=1)
            v_vi = value_iteration(*tables, depth, beta)
            assert torch.allclose(v_vi, soft_solve(tree, reward, beta).v, atol=1e-9)
            vi = _ratio(t_vi / t_solve)
            del tables
        t_floor = timed(lambda r=reward, t=tree: floor_pass(r, t.log_ref, t.parent))
        arrays = peak_arrays(tree, reward) if n >= 5_000_000 else None  # above malloc's cache
        peak = "—" if arrays is None else f"{arrays:.1f}"
        print(
            f"{_name(depth, eos):>16} {n:>10,} {t_solve * 1e3:>9.2f} {n / t_solve:>9.2e} {naive:>8} {vi:>7} "
            f"{t_floor * 1e3:>9.2f} {t_solve / t_floor:>11.1f} {peak:>6}"
        )
    if args.cuda and torch.cuda.is_available():
        print("\nCUDA:", torch.cuda.get_device_name())
        for depth, eos in cases:
            tree = _tree(depth, eos).to("cuda")
            reward = torch.randn(tree.n_nodes, dtype=torch.float64, device="cuda")
            sync = torch.cuda.synchronize
            t = timed(lambda tree=tree, reward=reward: soft_solve(tree, reward, beta), sync=sync)
            t_floor = timed(
                lambda r=reward, tr=tree: floor_pass(r, tr.log_ref, tr.parent), sync=sync
            )
            print(
                f"{_name(depth, eos):>16} {tree.n_nodes:>10,} {t * 1e3:>9.2f} ms {tree.n_nodes / t:>9.2e} "
                f"nodes/s, solve/floor {t / t_floor:.1f}"
            )


if __name__ == "__main__":
    main()
