"""The tolerance sweep of docs/claims.md: each claim's worst residual over many seeds and
instances, against the tolerance it was given (the claims of the bandit and the layered trees;
hours on two cores for seeds 0–9 × 1000 instances).

Usage: python benchmarks/tolerance_sweep.py [--seeds 0-9] [--instances 1000] [--from DIR]
                                             [--markdown | --write]
(--from DIR reads sweep-<seed>.json files written by `proofs-check --seed S --instances N --json
--claim ...` for those patterns instead of running them; --markdown prints the block of
docs/claims.md, --write replaces it there). A seed on which a claim misses its expected outcome is
printed and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import _report

NAME, PAGE = "tolerance-sweep", "docs/claims.md"
COMMAND = "python benchmarks/tolerance_sweep.py --write"
HEADER = ("claim", "tolerance", "worst residual", "margin")
ALIGN = "lrrr"
PATTERNS = (
    "nguyen2025",
    "rafailov2024.sec33.corrected",
    "rafailov2024.eq4.dpo",
    "rafailov2024.lemma2",
    "rafailov2024.eq15-16",
)


def swept() -> list:
    """The claims the sweep runs: those of ``PATTERNS`` (the sympy proofs have no instances)."""
    from proofs_check.registry import select

    return [c for c in select(PATTERNS) if "symbolic" not in c.tags]


def labels() -> list[tuple[str]]:
    """The first cell of every row: the swept claims expected to hold, in registry order."""
    return [(f"`{c.id}`",) for c in swept() if c.expected.value == "holds"]


def margin(tolerance: str, worst: str) -> str:
    """tolerance / worst residual, as the table shows it."""
    t, w = float(tolerance), float(worst)
    if w == 0 or t / w >= 1e6:
        return "> 10⁶×"
    return f"{t / w:,.0f}×" if t / w >= 10 else f"{t / w:.2g}×"


def rows_from(runs: list[dict]) -> list[tuple[str, ...]]:
    """One row per claim expected to hold: its tolerance, worst residual and margin."""
    worst: dict[str, float] = {}
    tolerance: dict[str, float] = {}
    for run in runs:
        for r in run["claims"]:
            if r["expected"] == "holds":
                worst[r["id"]] = max(worst.get(r["id"], 0.0), r["max_residual"])
                tolerance[r["id"]] = r["tolerance"]
    out = []
    for (label,) in labels():
        cid = label.strip("`")
        t, w = f"{tolerance[cid]:.0e}", f"{worst[cid]:.1e}"
        out.append((label, t, w, margin(t, w)))
    return out


def summary(rows: list[tuple[str, ...]]) -> str:
    """The sentence under the table."""
    total = len(swept())
    low = min(rows, key=lambda r: float(r[1]) / max(float(r[2]), 1e-300))
    return (
        f"All {total} claims had their expected outcome on every seed; the {len(rows)} expected "
        f"to hold stay at least {margin(low[1], low[2])} below their tolerance ({low[0]})."
    )


def markdown(rows: list[tuple[str, ...]], machine, setting: Namespace) -> str:
    """The docs block: the setting line, the table and its summary."""
    detail = (
        f"seeds {setting.first}–{setting.last} × {setting.instances} instances of every claim of "
        f"`{'`, `'.join(PATTERNS)}`; the worst residual over all of them"
    )
    return "\n".join(
        [_report.setting_line(COMMAND, machine, detail, kind="result"), "",
         *_report.table(HEADER, rows, ALIGN), "", summary(rows)]
    )  # fmt: skip


def _run(seed: int, instances: int, folder: Path) -> Path:
    path = folder / f"sweep-{seed}.json"
    claims = [arg for p in PATTERNS for arg in ("--claim", p)]
    argv = ["proofs-check", "--seed", str(seed), "--instances", str(instances), "--json", *claims]
    with path.open("w") as out:
        subprocess.run(argv, stdout=out, check=False)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0-9", help="first-last (default 0-9)")
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--from", dest="folder", help="read sweep-<seed>.json from this folder")
    parser.add_argument("--markdown", action="store_true", help="print the docs block")
    parser.add_argument("--write", action="store_true", help="rewrite the block in " + PAGE)
    args = parser.parse_args(argv)
    first, last = (int(s) for s in args.seeds.split("-"))
    if not (0 <= first <= last) or args.instances < 1:
        sys.exit("--seeds must be first-last with 0 ≤ first ≤ last, --instances ≥ 1")
    folder = Path(args.folder or ".")
    runs = []
    for seed in range(first, last + 1):
        path = folder / f"sweep-{seed}.json" if args.folder else _run(seed, args.instances, folder)
        run = json.loads(path.read_text())
        wrong = [r["id"] for r in run["claims"] if not r["ok"]]
        if (
            run["seed"] != seed
            or wrong
            or {r["instances"] for r in run["claims"]} != {args.instances}
        ):
            sys.exit(f"{path}: seed {run['seed']}, claims off their outcome: {wrong or 'none'}")
        if sorted(r["id"] for r in run["claims"]) != sorted(c.id for c in swept()):
            sys.exit(f"{path}: not the claims of {PATTERNS} as registered now")
        runs.append(run)
    setting = Namespace(first=first, last=last, instances=args.instances)
    body = markdown(rows_from(runs), _report.this_machine(), setting)
    _report.emit(PAGE, NAME, body, markdown=args.markdown or not args.write, write_page=args.write)


if __name__ == "__main__":
    main()
