"""``proofs-check``: run the claim catalogue and report, claim by claim, whether each has its
expected outcome. Exit status 0 iff every selected claim does; 2 on a usage error.

The JSON schema (``--json``) is ``proofs_check.cli.JSON_SCHEMA``, also printed at the end of ``--help``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import torch

from .coverage import coverage_markdown
from .registry import REGISTRY, Outcome, Result, run_claim, select

JSON_SCHEMA = """\
JSON schema (--json): an object {"seed": int, "ok": bool, "claims": [record, ...]}; each record:
  id (str), source (str), refs (list of str: the equations, lemmas, ... it covers),
  statement (str),
  expected ("holds" | "identity" | "erratum" | "needs-assumption"),
  reference (str: the independent computation a holds claim is checked against; for an
    identity, why it holds by construction; "" for errata and needs-assumption claims),
  observed ("holds" | "fails" | "error": whether some instance exceeded the tolerance, or a
    residual raised / an erratum or needs-assumption discrepancy was not finite),
  ok (bool: the claim has its expected outcome), instances (int),
  max_residual (float, or null when not finite; for an erratum: the size of the printed form's
    miss), tolerance (float), why_tolerance (str),
  failing_instance (int or null: the first instance over tolerance),
  max_off (float or null: erratum only, the worst |miss - predicted discrepancy| /
    (1 + |predicted discrepancy|)),
  max_corrected (float or null: erratum only, the worst residual of the corrected form),
  error (str or null: the exception or non-finite value that made the claim an error),
  message (str or null: the first non-finite quantity of a holds claim, with its instance),
  corrected (str or null: for an erratum, the id of the corrected claim),
  tags (list of str), seconds (float).
"""

QUICK_INSTANCES = 5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="proofs-check",
        description="Check every numbered equation, lemma and theorem of Nguyen 2025 and "
        "Rafailov et al. 2024 on random exact instances.",
        epilog=JSON_SCHEMA,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # What to run.
    parser.add_argument("--quick", action="store_true", help="the CI subset (fewer instances)")
    parser.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="ID/TAG",
        help="only claims whose id, dotted id prefix (e.g. rafailov2024.eq13), tag (bandit, tree, "
        "layered, lm, symbolic) or kind (holds, identity, erratum, needs-assumption) matches; "
        "repeatable; --list shows them all",
    )
    parser.add_argument("--symbolic", action="store_true", help="also run the sympy proofs")
    parser.add_argument("--seed", type=int, default=0, help="seed of every instance (default 0)")
    parser.add_argument(
        "--instances",
        type=int,
        metavar="N",
        help="instances per claim, ≥ 1 (default: each claim's)",
    )
    # Where and how.
    parser.add_argument(
        "--device", default="cpu", help="torch device for the tree solves (cpu, cuda)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="torch intra-op threads during the run (default 1: each claim is many small ops, "
        "which extra threads slow down on a busy machine); restored afterwards",
    )
    parser.add_argument(
        "--model",
        metavar="PATH",
        help="a local causal-LM checkpoint for the '.lm' claims (default: a tiny random GPT-2)",
    )
    # What to print instead of running the catalogue.
    parser.add_argument("--json", action="store_true", help="print JSON records (schema below)")
    parser.add_argument("--markdown", action="store_true", help="print the coverage table and exit")
    parser.add_argument(
        "--list", action="store_true", help="list the claims (id, kind, tags, source) and exit"
    )
    parser.add_argument(
        "--faults",
        action="store_true",
        help="run the fault-injection suite: break the library one fault at a time, print the "
        "fault × claim matrix; exit 0 iff some claim catches every fault",
    )
    parser.add_argument(
        "--loss",
        metavar="MODULE:FUNCTION",
        help="instead of the catalogue: where a per-pair loss (or FILE.py:FUNCTION) converges "
        "on a panel of exact worlds, against π* (see proofs_check.user_loss)",
    )
    parser.add_argument("--beta", type=float, default=0.5, help="β for --loss (default 0.5)")
    return parser


def _usage_error(message: str) -> tuple[list[Result], int]:
    print(f"proofs-check: error: {message}", file=sys.stderr)
    return [], 2


def _check_device(text: str) -> str | None:
    """None when ``text`` names a usable device, else why not (one line)."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        return f"--device {text!r} is not a torch device (use cpu or cuda[:N])"
    if device.type == "cpu":
        return None
    if device.type != "cuda":
        return f"--device {text!r}: only cpu and cuda are supported"
    if not torch.cuda.is_available():
        return f"--device {text!r}: CUDA is not available on this machine"
    if device.index is not None and device.index >= torch.cuda.device_count():
        return f"--device {text!r}: only {torch.cuda.device_count()} CUDA device(s) here"
    return None


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def run(argv: Sequence[str] | None = None) -> tuple[list[Result], int]:
    """Parse ``argv``, run the selected claims, print the report; return (results, exit code)."""
    args = _parser().parse_args(argv)
    if args.instances is not None and args.instances < 1:
        return _usage_error(f"--instances must be ≥ 1, got {args.instances}")
    if args.threads < 1:
        return _usage_error(f"--threads must be ≥ 1, got {args.threads}")
    bad_device = _check_device(args.device)
    if bad_device:
        return _usage_error(bad_device)
    if args.loss:
        from .user_loss import run_user_loss

        return [], run_user_loss(args.loss, args.beta, as_json=args.json)
    if args.markdown:
        print(coverage_markdown())
        return [], 0
    if args.list:
        print(_listing(select(args.claim)))
        return [], 0
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        if args.faults:
            from .faults import fault_matrix, matrix_table

            matrix = fault_matrix(quick=args.quick, seed=args.seed, progress=_progress)
            _progress_done()
            print(matrix_table(matrix))
            return [], 0 if all(any(row.values()) for row in matrix.values()) else 1
        return _run_claims(args)
    finally:
        torch.set_num_threads(threads)


def _run_claims(args) -> tuple[list[Result], int]:
    claims = select(args.claim, quick=args.quick)
    if not args.symbolic and "symbolic" not in args.claim:
        claims = [c for c in claims if "symbolic" not in c.tags]
    if not claims:
        return _usage_error(f"no claim matches {args.claim} (see --list)")
    if any("lm" in c.tags for c in claims) and (args.model or args.device != "cpu"):
        from .lm_claims import set_model

        try:
            source = set_model(args.model, args.device)
        except ValueError as error:  # a missing checkpoint: one line, not a traceback
            print(f"proofs-check: {error}", file=sys.stderr)
            return [], 2
        print(f"LM claims on {source}", file=sys.stderr)
    elif args.model:
        return _usage_error("--model given but no LM claim is selected (needs the `lm` extra)")
    results = []
    for k, c in enumerate(claims, start=1):
        if args.instances is not None:
            n = args.instances
        else:
            n = min(c.instances, QUICK_INSTANCES) if args.quick else None
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


def _columns(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(head, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return lines


def _listing(claims) -> str:
    rows = [
        (c.id, c.expected.value, ",".join(c.tags) or "-", c.source, "; ".join(c.refs))
        for c in claims
    ]
    tags = sorted({t for c in REGISTRY.values() for t in c.tags})
    lines = _columns(("id", "kind", "tags", "source", "covers"), rows)
    lines += ["", f"{_plural(len(rows), 'claim')}; tags: {', '.join(tags)}; kinds: "
              + ", ".join(o.value for o in Outcome)]  # fmt: skip
    return "\n".join(lines)


def _verdict(r: Result) -> str:
    if r.ok:
        return "ok"
    return "ERROR" if r.observed == "error" else "MISMATCH"


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
                _verdict(r),
            )
        )
    lines = _columns(head, rows)
    notes = [
        f"  {r.claim.id}: {r.error or r.message or _erratum_note(r)}"
        for r in results
        if not r.ok or r.message
    ]
    if notes:
        lines += ["", *notes]
    lines += ["", summary(results)]
    return "\n".join(lines)


def _erratum_note(r: Result) -> str:
    if r.claim.expected is Outcome.ERRATUM and r.observed == "fails":
        return (
            f"the printed form misses by {r.max_residual:.3g}, but not by the predicted "
            f"discrepancy (worst off {r.max_off:.3g}) or the corrected form fails "
            f"(worst {r.max_corrected:.3g})"
        )
    return f"observed {r.observed}, expected {r.claim.expected.value}"


def summary(results: list[Result]) -> str:
    """The closing line: only holds claims (checked against an independent reference) count as
    verified; identities, measured errata and needs-assumption claims are counted apart."""
    count = {o: sum(r.claim.expected is o for r in results) for o in Outcome}
    verified = sum(r.ok and r.claim.expected is Outcome.HOLDS for r in results)
    bad = [r.claim.id for r in results if not r.ok]
    seconds = sum(r.seconds for r in results)
    parts = [
        f"{verified}/{count[Outcome.HOLDS]} verified against an independent reference",
        f"{_plural(count[Outcome.IDENTITY], 'identity', 'identities')} (not counted as verified)",
        f"{_plural(count[Outcome.ERRATUM], 'erratum', 'errata')} measured",
        f"{_plural(count[Outcome.NEEDS_ASSUMPTION], 'assumption')} shown necessary",
    ]
    verdict = "every claim has its expected outcome" if not bad else f"MISMATCH in {', '.join(bad)}"
    return f"{_plural(len(results), 'claim')} ({'; '.join(parts)}) in {seconds:.1f} s: {verdict}"
