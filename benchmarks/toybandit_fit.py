"""Time-to-accuracy of toybandit.fit_policy against first-order baselines, in one process.

For X prompts × Y responses, fit the exact population IPO and DPO (Bradley–Terry) objectives and
report wall time and the max error against the closed-form optimum, for
  - fit_policy (damped Newton on the per-prompt comparison-graph Laplacian),
  - torch.optim.LBFGS (strong Wolfe) on the same objective, same start, same float64,
  - torch.optim.Adam (lr 0.05, fixed number of steps).
Ratios are against fit_policy measured in the same run.

Usage: python benchmarks/toybandit_fit.py [--markdown | --write]
(--markdown prints the table of docs/performance.md with its setting line, --write replaces it there)
"""

from __future__ import annotations

import argparse
import sys
import time

import _report
import torch

import toybandit as tb
from toybandit import losses

NAME, PAGE = "toybandit-fit", "docs/performance.md"
COMMAND = "python benchmarks/toybandit_fit.py --write"
HEADER = ("loss", "method", "time [ms]", "ratio", "max \\|π − π\\*\\|")
ALIGN = "llrrr"
METHODS = {
    "fit_policy": "`fit_policy`",
    "LBFGS": "`torch.optim.LBFGS` (strong Wolfe)",
    "Adam x2000": "`torch.optim.Adam`, 2000 steps",
}
LOSSES = ("ipo", "dpo")


def labels() -> list[tuple[str, str]]:
    """The first two cells of every row of the table, in order."""
    return [(loss.upper(), shown) for loss in LOSSES for shown in METHODS.values()]


def cells(loss: str, method: str, seconds: float, ratio: float, err: float) -> tuple[str, ...]:
    """One row of the docs table."""
    return (loss.upper(), METHODS[method], f"{1e3 * seconds:.1f}", f"{ratio:.1f}", f"{err:.1e}")


def markdown(rows: list[tuple[str, ...]], machine, args, threads: int) -> str:
    """The docs block: the setting line and the table (rows from :func:`cells`)."""
    detail = (
        f"{args.prompts} prompts × {args.responses} responses, β = τ = {args.strength}, float64, "
        f"{threads} torch threads, best of 3"
    )
    return "\n".join(
        [_report.setting_line(COMMAND, machine, detail), "", *_report.table(HEADER, rows, ALIGN)]
    )


def population_loss(pairs, ref, loss):
    log_ref = ref.log()
    p, w, l_ = pairs.prompts, pairs.chosen, pairs.rejected
    weights = pairs.weights / pairs.weights.sum()

    def value(theta):
        log_pi = torch.log_softmax(theta, -1)
        return (weights * loss(log_pi[p, w] - log_ref[p, w], log_pi[p, l_] - log_ref[p, l_])).sum()

    return value


def first_order(value, ref, make_opt, steps):
    theta = ref.log().clone().requires_grad_(True)
    opt = make_opt([theta])

    def closure():
        opt.zero_grad()
        v = value(theta)
        v.backward()
        return v

    for _ in range(steps):
        opt.step(closure)
    return torch.softmax(theta.detach(), -1)


def timed(fn, repeat=3):
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--responses", type=int, default=8)
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--markdown", action="store_true", help="print the docs table")
    parser.add_argument("--write", action="store_true", help="rewrite the table in " + PAGE)
    args = parser.parse_args()
    machine = _report.this_machine()
    log = sys.stderr if args.markdown else sys.stdout  # --markdown: only the block on stdout
    g = torch.Generator().manual_seed(0)
    x, y, s = args.prompts, args.responses, args.strength
    reward = 2 * torch.randn(x, y, generator=g, dtype=torch.float64)
    ref = torch.softmax(torch.randn(x, y, generator=g, dtype=torch.float64), -1)
    mu = torch.softmax(torch.randn(x, y, generator=g, dtype=torch.float64), -1)
    cases = {
        "ipo": (tb.random_preference(y, generator=g, batch_shape=(x,)), {"tau": s}),
        "dpo": (tb.bradley_terry(reward), {"beta": s}),
    }
    assert tuple(cases) == LOSSES
    print(
        f"X = {x} prompts, Y = {y} responses, β = τ = {s}, float64, {torch.get_num_threads()} threads",
        file=log,
    )
    print(f"{'loss':<5}{'method':<14}{'time [ms]':>11}{'ratio':>8}{'max |π − π*|':>15}", file=log)
    table = []
    for name, (pref, kw) in cases.items():
        pairs = tb.population_pairs(pref, mu)
        if name == "ipo":
            exact = tb.psi_optimal_policy(pref, mu, ref, s)
            loss = lambda a, b: losses.ipo(a, b, s)  # noqa: E731
        else:
            exact = tb.optimal_policy(reward, ref, s)
            loss = lambda a, b: losses.dpo(a, b, s)  # noqa: E731
        value = population_loss(pairs, ref, loss)
        runs = {
            "fit_policy": lambda: tb.fit_policy(
                pairs.chosen,
                pairs.rejected,
                ref,
                name,
                prompts=pairs.prompts,
                weights=pairs.weights,
                **kw,
            ),
            "LBFGS": lambda: first_order(
                value,
                ref,
                lambda p: torch.optim.LBFGS(
                    p,
                    max_iter=500,
                    tolerance_grad=1e-12,
                    tolerance_change=1e-15,
                    history_size=50,
                    line_search_fn="strong_wolfe",
                ),
                1,
            ),
            "Adam x2000": lambda: first_order(
                value, ref, lambda p: torch.optim.Adam(p, lr=0.05), 2000
            ),
        }
        base = None
        for method, run in runs.items():
            seconds, policy = timed(run)
            base = base or seconds
            err = (policy - exact).abs().max().item()
            print(
                f"{name:<5}{method:<14}{1e3 * seconds:>11.1f}{seconds / base:>8.1f}{err:>15.2e}",
                file=log,
            )
            table.append(cells(name, method, seconds, seconds / base, err))
    if args.markdown or args.write:
        body = markdown(table, machine, args, torch.get_num_threads())
        _report.emit(PAGE, NAME, body, markdown=args.markdown, write_page=args.write)


if __name__ == "__main__":
    main()
