"""The lab's quick sweep as docs/lab.md shows it: ``tokenmdp.lm.lab.sweep`` in its quick setting
(what ``python -m tokenmdp.lm.lab --quick`` runs), one row per model, scored exactly against π*.

Usage: python benchmarks/lab_results.py [--markdown | --write] [--out lab_runs]
(--markdown prints the table of docs/lab.md with its setting line and summary, --write replaces it
there; the CSV and the figure go to --out)
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import _report

NAME, PAGE = "lab-results", "docs/lab.md"
COMMAND = "python benchmarks/lab_results.py --write"
HEADER = ("method", "β", "pairs", "KL(π_ref‖π_θ)", "KL(π_θ‖π\\*)", "KL(π\\*‖π_θ)",
          "pair accuracy", "credit corr.")  # fmt: skip
KEYS = ("method", "beta", "pairs", "kl_ref_model", "kl_model_opt", "kl_opt_model", "accuracy",
        "credit")  # fmt: skip
ALIGN = "lrrrrrrr"


def _setting():
    from tokenmdp.lm import lab

    return lab.QUICK


def labels(setting=None) -> list[tuple[str, str, str]]:
    """The first three cells of every row (method, β, pairs), in the order of the sweep."""
    s = setting or _setting()
    out = []
    for beta in s.betas:
        out.append(("warm-up", f"{beta:g}", "0"))
        out += [(loss, f"{beta:g}", str(n)) for loss in s.losses for n in s.pairs]
    return out


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summary(rows: list[tuple[str, ...]]) -> str:
    """The sentence under the table, from its cells (the docs' copy is checked against it)."""
    most = max(int(r[2]) for r in rows)
    best = next(r for r in rows if r[0] == "dpo" and int(r[2]) == most)
    warm = next(r for r in rows if r[0] == "warm-up" and r[1] == best[1])
    return (
        f"DPO with {most} pairs brings the transformer within {float(best[5]):.2g} nats of π\\* "
        f"(from {float(warm[5]):.2g} after warm-up), and its per-token implicit reward tracks the "
        f"true reward up to shaping ({float(best[7]):.2g} correlation)."
    )


def markdown(rows: list[tuple[str, ...]], machine, setting) -> str:
    """The docs block: the setting line, the table and its summary."""
    detail = (
        f"the quick setting of `python -m tokenmdp.lm.lab --quick` (vocabulary "
        f"{setting.vocab_size}, depth {setting.depth}, seed {setting.seed}, warm-up on "
        f"{setting.sft_samples} sequences, {setting.epochs} epochs), on the CPU"
    )
    return "\n".join(
        [_report.setting_line(COMMAND, machine, detail, kind="result"), "",
         *_report.table(HEADER, rows, ALIGN), "", summary(rows)]
    )  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print the docs table")
    parser.add_argument("--write", action="store_true", help="rewrite the table in " + PAGE)
    parser.add_argument("--out", default="lab_runs", help="directory for results.csv / results.png")
    args = parser.parse_args(argv)
    import torch

    from tokenmdp.lm import lab

    if torch.cuda.is_available():
        parser.error("the docs carry a CPU run: hide the GPU (CUDA_VISIBLE_DEVICES=)")
    machine = _report.this_machine("transformers", "trl")
    log = sys.stderr if args.markdown else sys.stdout
    with contextlib.redirect_stdout(log):
        result = lab.sweep(lab.QUICK, args.out, progress=print)
    rows = [tuple(_cell(r[k]) for k in KEYS) for r in result]
    body = markdown(rows, machine, lab.QUICK)
    if args.markdown or args.write:
        _report.emit(PAGE, NAME, body, markdown=args.markdown, write_page=args.write)
    else:
        print(body)


if __name__ == "__main__":
    main()
