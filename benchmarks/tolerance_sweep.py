"""The tolerance sweep of docs/claims.md: each claim's worst residual over many seeds and
instances, against the tolerance it was given (every claim with instances: all but the sympy
proofs; the block's setting line says how much claim time seeds 0–9 × 1000 instances took).

Usage: python benchmarks/tolerance_sweep.py [--seeds 0-9] [--instances 1000] [--jobs 2]
                                             [--from DIR] [--markdown | --write]
(each seed runs as ``len(GROUPS)`` `proofs-check --seed S --instances N --json --claim ...`
processes, ``--jobs`` at a time, writing sweep-<seed>-<group>.json; --from DIR reads those files
instead of running them; --markdown prints the block of docs/claims.md, --write replaces it
there and writes each claim's worst residual to proofs_check/measured.py, which the claims'
``why_tolerance`` quotes). A seed on which a claim misses its expected outcome is printed and
nothing is written.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from argparse import Namespace
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _report

from proofs_check import registry
from proofs_check.registry import REGISTRY, select

NAME, PAGE = "tolerance-sweep", "docs/claims.md"
MEASURED = _report.ROOT / "proofs_check" / "measured.py"
TABLED = ("holds", "identity")  # the kinds whose residual is compared with the tolerance
COMMAND = "python benchmarks/tolerance_sweep.py --write"
HEADER = ("claim", "tolerance", "worst residual", "margin")
ALIGN = "lrrr"
# Disjoint groups of claims of about equal cost (one proofs-check process each); together they
# are every claim with instances.
GROUPS = {
    "bandit": ("nguyen2025", "rafailov2024.sec33", "rafailov2024.eq4", "layered"),
    "losses": ("chowdhury2024", "azar2023", "wang2024", "xu2024", "meng2024", "hong2024",
               "rafailov2023", "doosterlinck2024"),
    "hinge": ("zhao2023",),
    "tree": ("tree", "lm"),
}  # fmt: skip


def swept() -> list:
    """The claims the sweep runs: every claim but the sympy proofs, which have no instances."""
    return [c for c in select() if "symbolic" not in c.tags]


def labels() -> list[tuple[str]]:
    """The first cell of every row: the swept claims expected to hold or to be identities, in
    registry order."""
    return [(f"`{c.id}`",) for c in swept() if c.expected.value in TABLED]


def margin(tolerance: str, worst: str) -> str:
    """tolerance / worst residual of two table cells, as the table and ``why_tolerance`` show it."""
    return registry.margin(float(tolerance), float(worst))


def _worst(runs: list[dict], kinds, residual) -> tuple[dict[str, float], dict[str, float]]:
    """Per claim of these expected kinds: the worst ``residual(record)`` over the runs, and its
    tolerance."""
    worst: dict[str, float] = {}
    tolerance: dict[str, float] = {}
    for run in runs:
        for r in run["claims"]:
            if r["expected"] in kinds:
                worst[r["id"]] = max(worst.get(r["id"], 0.0), residual(r))
                tolerance[r["id"]] = r["tolerance"]
    return worst, tolerance


def rows_from(runs: list[dict]) -> list[tuple[str, ...]]:
    """One row per claim expected to hold or identity: its tolerance, worst residual and margin."""
    worst, tolerance = _worst(runs, TABLED, lambda r: r["max_residual"])
    out = []
    for (label,) in labels():
        cid = label.strip("`")
        t, w = f"{tolerance[cid]:.0e}", f"{worst[cid]:.1e}"
        out.append((label, t, w, margin(t, w)))
    return out


def errata_off(runs: list[dict]) -> tuple[str, str, str]:
    """Over the errata, the worst of a miss's distance from the predicted discrepancy and of a
    corrected form's residual; and the least margin below an erratum's tolerance, with its id."""
    worst, tolerance = _worst(runs, ("erratum",), lambda r: max(r["max_off"], r["max_corrected"]))
    cid = max(worst, key=lambda c: worst[c] / tolerance[c])
    least = margin(f"{tolerance[cid]:.0e}", f"{worst[cid]:.1e}")
    return f"{max(worst.values()):.1e}", least, f"`{cid}`"


def summary(rows: list[tuple[str, ...]], errata: tuple[str, str, str]) -> str:
    """The sentences under the table."""
    total = len(swept())
    low = min(rows, key=lambda r: float(r[1]) / max(float(r[2]), 1e-300))
    kinds = [c.expected.value for c in swept()]
    return (
        f"All {total} claims had their expected outcome on every seed. The {len(rows)} expected "
        f"to hold ({kinds.count('identity')} of them identities) stay at least "
        f"{margin(low[1], low[2])} below their tolerance ({low[0]}). The "
        f"{kinds.count('erratum')} errata miss by their predicted discrepancy, and their corrected "
        f"forms hold, to within {errata[0]}; the least margin below an erratum's tolerance is "
        f"{errata[1]} ({errata[2]})."
    )


def markdown(rows: list[tuple[str, ...]], machine, setting: Namespace) -> str:
    """The docs block: the setting line, the table and its summary (``setting.errata``: from
    :func:`errata_off`)."""
    detail = (
        f"seeds {setting.first}–{setting.last} × {setting.instances} instances of every claim "
        f"but the sympy proofs, {setting.hours:.1f} h of claim time in all (summed over the runs); "
        "the worst residual over all of them"
    )
    return "\n".join(
        [_report.setting_line(COMMAND, machine, detail, kind="result"), "",
         *_report.table(HEADER, rows, ALIGN), "", summary(rows, setting.errata)]
    )  # fmt: skip


def measured_module(rows: list[tuple[str, ...]], setting: Namespace) -> str:
    """proofs_check/measured.py: each tabled claim's worst residual, as the table shows it."""
    run = f"seeds {setting.first}–{setting.last} × {setting.instances} instances"
    lines = [f'    "{label.strip("`")}": {float(worst)!r},' for label, _, worst, _ in rows]
    return "\n".join([
        '"""The worst residual of each claim expected to hold (or an identity) in the tolerance',
        "sweep, quoted by its ``why_tolerance``. Written with the tolerance-sweep block of",
        f"docs/claims.md by `{COMMAND}`; tests/test_benchmarks.py checks",
        'that the two agree. Do not edit by hand."""',
        "",
        f'RUN = "{run}"',
        "WORST: dict[str, float] = {",
        *lines,
        "}",
        "",
    ])  # fmt: skip


def _run(seed: int, group: str, instances: int, folder: Path) -> None:
    claims = [arg for p in GROUPS[group] for arg in ("--claim", p)]
    argv = ["proofs-check", "--seed", str(seed), "--instances", str(instances), "--json", *claims]
    stem = folder / f"sweep-{seed}-{group}"
    with stem.with_suffix(".json").open("w") as out, stem.with_suffix(".log").open("w") as log:
        subprocess.run(argv, stdout=out, stderr=log, check=False)


def _load(seed: int, folder: Path) -> dict:
    """The runs of one seed's groups, merged into one run."""
    claims = []
    for group in GROUPS:
        path = folder / f"sweep-{seed}-{group}.json"
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            sys.exit(f"{path}: no complete proofs-check --json output ({err}; see its .log)")
        if run["seed"] != seed:
            sys.exit(f"{path}: seed {run['seed']}, not {seed}")
        claims += run["claims"]
    return {"seed": seed, "claims": claims}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0-9", help="first-last (default 0-9)")
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2, help="processes at a time (default 2)")
    parser.add_argument("--from", dest="folder", help="read sweep-<seed>-<group>.json from here")
    parser.add_argument("--markdown", action="store_true", help="print the docs block")
    parser.add_argument("--write", action="store_true", help="rewrite the block in " + PAGE)
    args = parser.parse_args(argv)
    first, last = (int(s) for s in args.seeds.split("-"))
    if not (0 <= first <= last) or args.instances < 1 or args.jobs < 1:
        sys.exit("--seeds must be first-last with 0 ≤ first ≤ last, --instances and --jobs ≥ 1")
    folder = Path(args.folder or ".")
    seeds = range(first, last + 1)
    if not args.folder:
        with ThreadPoolExecutor(args.jobs) as pool:
            tasks = [(s, g, args.instances, folder) for s in seeds for g in GROUPS]
            list(pool.map(lambda task: _run(*task), tasks))
    runs = []
    for seed in seeds:
        run = _load(seed, folder)
        wrong = [r["id"] for r in run["claims"] if not r["ok"]]
        if wrong or {r["instances"] for r in run["claims"]} != {args.instances}:
            sys.exit(f"seed {seed}: claims off their outcome: {wrong or 'none'}")
        if sorted(r["id"] for r in run["claims"]) != sorted(c.id for c in swept()):
            sys.exit(f"seed {seed}: not the claims registered now")
        moved = [r["id"] for r in run["claims"] if r["tolerance"] != REGISTRY[r["id"]].tolerance]
        if moved:
            sys.exit(f"seed {seed}: tolerances changed since the run: {moved}")
        runs.append(run)
    hours = sum(r["seconds"] for run in runs for r in run["claims"]) / 3600
    setting = Namespace(
        first=first, last=last, instances=args.instances, hours=hours, errata=errata_off(runs)
    )
    rows = rows_from(runs)
    body = markdown(rows, _report.this_machine(), setting)
    _report.emit(PAGE, NAME, body, markdown=args.markdown or not args.write, write_page=args.write)
    if args.write:
        MEASURED.write_text(measured_module(rows, setting), encoding="utf-8")
        print(f"wrote {MEASURED.relative_to(_report.ROOT)}")


if __name__ == "__main__":
    main()
