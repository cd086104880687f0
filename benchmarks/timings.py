"""Wall times of the project's own commands, as the docs quote them: the claim catalogue, the test
suite in its CI setting, the gallery, the lab and the loss atlas, each run once, one after the
other, in this checkout. A command that fails stops the run: a time is only quoted for a run that
did its job.

Usage: python benchmarks/timings.py [--markdown | --write]
(--markdown prints the table of docs/performance.md with its setting line; --write replaces it
there and the one-line summary in README.md and docs/getting-started.md)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _report

NAME, PAGE = "timings", "docs/performance.md"
SUMMARY, SUMMARY_PAGES = "timings-summary", ("README.md", "docs/getting-started.md")
COMMAND = "python benchmarks/timings.py --write"
HEADER = ("what", "command", "wall time", "outcome")
ALIGN = "llrl"
PY = sys.executable

# (what, the command as the docs show it, argv (OUT: a fresh temporary folder), extra environment)
RUNS: tuple[tuple[str, str, tuple[str, ...], dict[str, str]], ...] = (
    ("the claim catalogue", "proofs-check", (PY, "-m", "proofs_check"), {}),
    ("the test suite, CI setting", "CI=true python -m pytest", (PY, "-m", "pytest", "-q"),
     {"CI": "true"}),
    ("every example, full setting", "python examples/gallery.py",
     (PY, "examples/gallery.py", "--out", "OUT"), {}),
    ("the lab, quick setting", "python -m tokenmdp.lm.lab --quick",
     (PY, "-m", "tokenmdp.lm.lab", "--quick", "--out", "OUT"), {}),
    ("the loss atlas table", "python -m toybandit.atlas", (PY, "-m", "toybandit.atlas"), {}),
    ("the loss atlas files", "python -m toybandit.atlas --out DIR",
     (PY, "-m", "toybandit.atlas", "--out", "OUT"), {}),
)  # fmt: skip


def labels() -> list[tuple[str, str]]:
    """The first two cells of every row of the table, in order."""
    return [(what, f"`{shown}`") for what, shown, _, _ in RUNS]


def duration(seconds: float) -> str:
    """Seconds under a minute, minutes above."""
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def outcome(shown: str, output: str, code: int) -> str:
    """What the run reports about itself: claims, tests, or only its exit status."""
    status = f"exit {code}"
    if shown == "proofs-check":
        found = re.search(r"^(\d+) claims \(", output, re.M)
        return f"{found[1]} claims, {status}" if found else status
    if "pytest" in shown:
        last = output.strip().splitlines()[-1] if output.strip() else ""
        found = re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)", last)
        counts = ", ".join(f"{int(n):,} {word}" for n, word in found)
        return counts if counts and code == 0 else f"{counts}, {status}" if counts else status
    return status


def summary(rows: list[tuple[str, ...]], machine: _report.Machine) -> str:
    """The sentence the README and the getting-started page quote, from the table's cells and
    its setting line (their copies are checked against it)."""
    by = {r[1]: r for r in rows}
    catalogue, suite = by["`proofs-check`"], by["`CI=true python -m pytest`"]
    article = {"idle": "an idle ", "loaded": "a loaded ", "unrecorded": "a "}[machine.condition]
    return (
        f"Measured on {machine.date} on {article}{machine.cores}-core CPU: `proofs-check` "
        f"took {catalogue[2]} ({catalogue[3].split(',')[0]}), the test suite with `CI=true` "
        f"{suite[2]} ({suite[3]}). {_report.EXPECT[machine.condition]}."
    )


def run(
    shown: str, argv: tuple[str, ...], env: dict[str, str], keep_going: bool = False
) -> tuple[float, str, int]:
    """(wall seconds, stdout + stderr, exit status) of one command run from the repository root;
    a failure stops the run unless ``keep_going``."""
    with tempfile.TemporaryDirectory() as out:
        argv = tuple(out if a == "OUT" else a for a in argv)
        start = time.perf_counter()
        done = subprocess.run(
            argv, cwd=_report.ROOT, env={**os.environ, **env}, capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
    output = done.stdout + done.stderr
    if done.returncode != 0 and not keep_going:
        sys.exit(f"`{shown}` failed (exit {done.returncode}); its output ends:\n{output[-3000:]}")
    return seconds, output, done.returncode


def markdown(rows: list[tuple[str, ...]], machine: _report.Machine) -> str:
    """The docs block: the setting line and the table."""
    detail = (
        "each command once, one after the other, outputs (figures, CSV files) to a temporary folder"
    )
    return "\n".join(
        [_report.setting_line(COMMAND, machine, detail, kind="times"), "",
         *_report.table(HEADER, rows, ALIGN)]
    )  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print the docs table")
    parser.add_argument("--write", action="store_true", help="rewrite the tables in the docs")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="time a failing command too (its exit status shows)",
    )
    parser.add_argument("--log", type=Path, help="keep each command's output in this folder")
    args = parser.parse_args(argv)
    machine = _report.this_machine()
    log = sys.stderr if args.markdown else sys.stdout
    rows = []
    for what, shown, command, env in RUNS:
        print(f"running `{shown}` …", file=log, flush=True)
        seconds, output, code = run(shown, command, env, args.keep_going)
        rows.append((what, f"`{shown}`", duration(seconds), outcome(shown, output, code)))
        if args.log:
            args.log.mkdir(parents=True, exist_ok=True)
            slug = re.sub(r"\W+", "-", shown).strip("-")
            (args.log / f"{len(rows)}-{slug}.log").write_text(output, encoding="utf-8")
        print(f"  {duration(seconds)}: {rows[-1][3]}", file=log, flush=True)
    body = markdown(rows, machine)
    if not (args.markdown or args.write):
        print(body)
    _report.emit(PAGE, NAME, body, markdown=args.markdown, write_page=args.write)
    line = summary(rows, machine)
    for page in SUMMARY_PAGES:
        _report.emit(page, SUMMARY, line, markdown=False, write_page=args.write)
    if args.markdown:
        print(_report.block(SUMMARY, line))


if __name__ == "__main__":
    main()
