"""``proofs-check``: run the claim catalogue and report, claim by claim, whether each has its
expected outcome. Exit status 0 iff every selected claim does.

JSON schema (``--json``): an object ``{"seed": int, "ok": bool, "claims": [record, ...]}`` where
each record has

    id (str), source (str), refs (list of str: the equations, lemmas, … it covers),
    statement (str), expected ("holds" | "erratum" | "needs-assumption"),
    observed ("holds" | "fails": whether some instance exceeded the tolerance),
    ok (bool: observed agrees with expected), instances (int),
    max_residual (float, or null when infinite), tolerance (float), why_tolerance (str),
    failing_instance (int or null: the first instance over tolerance),
    corrected (str or null: for an erratum, the id of the corrected claim), tags (list of str),
    seconds (float).

``--markdown`` prints the coverage table (equation → claims → expected outcomes) without running.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .coverage import coverage_markdown
from .registry import Result, run_claim, select


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="proofs-check",
        description="Check every numbered equation, lemma and theorem of Nguyen 2025 and "
        "Rafailov et al. 2024 on random exact instances.",
    )
    parser.add_argument("--quick", action="store_true", help="the CI subset (fewer instances)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every instance (default 0)")
    parser.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="ID/TAG",
        help="only claims whose id, dotted id prefix or tag matches (repeatable)",
    )
    parser.add_argument("--instances", type=int, help="instances per claim (default: each claim's)")
    parser.add_argument("--symbolic", action="store_true", help="also run the sympy proofs")
    parser.add_argument("--device", default="cpu", help="torch device for the tree solves")
    parser.add_argument(
        "--model",
        metavar="PATH",
        help="a local causal-LM checkpoint for the '.lm' claims (default: a tiny random GPT-2)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON records (schema above)")
    parser.add_argument("--markdown", action="store_true", help="print the coverage table and exit")
    return parser


QUICK_INSTANCES = 5


def run(argv: Sequence[str] | None = None) -> tuple[list[Result], int]:
    """Parse ``argv``, run the selected claims, print the report; return (results, exit code)."""
    args = _parser().parse_args(argv)
    if args.markdown:
        print(coverage_markdown())
        return [], 0
    claims = select(args.claim, quick=args.quick)
    if not args.symbolic and "symbolic" not in args.claim:
        claims = [c for c in claims if "symbolic" not in c.tags]
    if not claims:
        print(f"no claim matches {args.claim}", file=sys.stderr)
        return [], 2
    if any("lm" in c.tags for c in claims) and (args.model or args.device != "cpu"):
        from .lm_claims import set_model

        try:
            source = set_model(args.model, args.device)
        except ValueError as error:  # a missing checkpoint: one line, not a traceback
            print(f"proofs-check: {error}", file=sys.stderr)
            return [], 2
        print(f"LM claims on {source}", file=sys.stderr)
    elif args.model:
        print("--model given but no LM claim is selected (needs the `lm` extra)", file=sys.stderr)
        return [], 2
    results = []
    for k, c in enumerate(claims, start=1):
        n = (
            args.instances
            if args.instances
            else (min(c.instances, QUICK_INSTANCES) if args.quick else None)
        )
        _progress(k, len(claims), c.id)
        results.append(run_claim(c, seed=args.seed, instances=n, device=args.device))
    _progress_done()
    ok = all(r.ok for r in results)
    if args.json:
        print(
            json.dumps(
                {"seed": args.seed, "ok": ok, "claims": [r.record() for r in results]}, indent=1
            )
        )
    else:
        print(_table(results))
    return results, 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    return run(argv)[1]


def _progress(k: int, n: int, name: str) -> None:
    width = 24
    done = int(width * (k - 1) / n)
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {k}/{n} {name[:60]:<60}")
    sys.stderr.flush()


def _progress_done() -> None:
    sys.stderr.write("\r" + " " * 100 + "\r")
    sys.stderr.flush()


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(results: list[Result]) -> str:
    head = ("id", "source", "statement", "n", "max residual", "tol", "expected", "")
    rows = []
    for r in results:
        c = r.claim
        rows.append(
            (
                c.id,
                c.source,
                _short(c.statement, 64),
                str(r.instances),
                f"{r.max_residual:.2e}",
                f"{c.tolerance:.0e}",
                c.expected.value,
                "ok" if r.ok else "MISMATCH",
            )
        )
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(head, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    bad = [r.claim.id for r in results if not r.ok]
    counts = {
        o: sum(r.claim.expected.value == o for r in results)
        for o in ("holds", "erratum", "needs-assumption")
    }
    seconds = sum(r.seconds for r in results)
    lines.append("")
    lines.append(
        f"{len(results)} claims ({counts['holds']} hold, {counts['erratum']} errata, "
        f"{counts['needs-assumption']} need their assumption) in {seconds:.1f} s: "
        + ("every claim has its expected outcome" if not bad else f"MISMATCH in {', '.join(bad)}")
    )
    return "\n".join(lines)
