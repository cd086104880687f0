"""The benchmarks' tables as the docs carry them: each inside ``<!-- name:start -->`` …
``<!-- name:end -->`` markers, under one line that says when, where and how it was measured and
what to expect elsewhere. Every script here that feeds the docs takes ``--markdown`` (print its
block) and ``--write`` (replace its block in its docs page); ``tests/test_benchmarks.py`` checks
that each block in the docs has the shape its script emits, and ``tests/test_docs.py`` that no
timing in the README or the docs stands outside such a block.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

IDLE_BELOW = 0.25
"""A machine counts as idle when its 1-minute load average, per core, is below this at the start."""

EXPECT = {
    "idle": "On a machine busy with other work expect absolute times several times larger (6–14× "
    "has been seen)",
    "loaded": "Other work shared the cores during the run: on an idle machine expect shorter "
    "absolute times",
    "unrecorded": "Whether other work shared the cores was not recorded: expect absolute times to "
    "vary several-fold with the load",
}
"""What to expect elsewhere, by the state of the machine during the run."""

RATIOS = (
    "; ratios against baselines timed in the same run move less, though contention for the cores "
    "distorts them too."
)
RESULTS = (
    "Results of a seeded run, not timings: other versions of torch, transformers or TRL, or other "
    "hardware, can move the last digits."
)


@dataclass(frozen=True)
class Machine:
    """Where a table was measured. ``load``: the 1-minute load average when the run started (None:
    not recorded); ``state`` then says whether the run was recorded as idle or loaded."""

    date: str
    cores: int
    cpu: str
    versions: str
    load: float | None = None
    state: str = "unrecorded"

    @property
    def condition(self) -> str:
        """The machine's state during the run: "idle", "loaded" or "unrecorded"."""
        if self.load is None:
            return self.state
        return "idle" if self.load < IDLE_BELOW * self.cores else "loaded"


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            found = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
    except OSError:
        found = None
    name = found.group(1).strip() if found else ""
    return f"{platform.machine()}{f' ({name})' if name else ''}"


def this_machine(*packages: str) -> Machine:
    """This machine now: today's date, cores, CPU, the load average, and the versions of torch
    and of ``packages`` (distribution names, e.g. "transformers", "trl")."""
    import torch

    versions = [f"torch {torch.__version__}"]
    versions += [f"{p if p != 'trl' else 'TRL'} {metadata.version(p)}" for p in packages]
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return Machine(
        date=datetime.date.today().isoformat(),
        cores=os.cpu_count() or 1,
        cpu=_cpu(),
        versions=", ".join(versions),
        load=load,
    )


def setting_line(command: str, machine: Machine, detail: str, *, kind: str = "timing") -> str:
    """The line above a generated table. ``kind``: "timing" (times against baselines of the same
    run), "times" (wall times alone) or "result" (seeded numbers that are not times)."""
    state = machine.condition
    article = {"idle": "an idle ", "loaded": "a loaded ", "unrecorded": "a "}[state]
    load = (
        f"load average {machine.load:.2f} at the start"
        if machine.load is not None
        else f"recorded as {state}"
        if state != "unrecorded"
        else "load not recorded"
    )
    head = (
        f"Measured on {machine.date} with `{command}` on {article}{machine.cores}-core "
        f"{machine.cpu} CPU ({load}), {machine.versions}; {detail}."
    )
    tail = {"timing": EXPECT[state] + RATIOS, "times": EXPECT[state] + ".", "result": RESULTS}
    return f"{head} {tail[kind]}"


SETTING = re.compile(
    r"^Measured on (?P<date>\d{4}-\d\d-\d\d) with `(?P<command>[^`]+)` on "
    r"(?P<article>an idle |a loaded |a )(?P<cores>\d+)-core (?P<cpu>.+?) CPU "
    r"\((?P<load>load average (?P<value>[\d.]+) at the start|recorded as (idle|loaded)|load not recorded)\), "
    r"(?P<versions>torch [^;]+); (?P<detail>.+?)\. (?P<expect>.+)$"
)
"""A setting line as :func:`setting_line` writes it."""


def parse_setting(line: str) -> Machine | None:
    """The machine a setting line names, or None when the line is not one :func:`setting_line`
    could have written (checked by writing it again)."""
    m = SETTING.match(line)
    if not m:
        return None
    state = {"an idle ": "idle", "a loaded ": "loaded", "a ": "unrecorded"}[m["article"]]
    machine = Machine(
        date=m["date"],
        cores=int(m["cores"]),
        cpu=m["cpu"],
        versions=m["versions"],
        load=float(m["value"]) if m["value"] else None,
        state=state if not m["value"] else "unrecorded",  # with a load average, it decides
    )
    for kind in ("timing", "times", "result"):
        if setting_line(m["command"], machine, m["detail"], kind=kind) == line:
            return machine
    return None


def table(header: tuple[str, ...], rows: list[tuple[str, ...]], align: str) -> list[str]:
    """A markdown table; ``align`` has one letter per column, "l" or "r"."""
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    return ["| " + " | ".join(header) + " |", rule, *("| " + " | ".join(r) + " |" for r in rows)]


def cells(text: str) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(header, rows) of the first markdown table in ``text`` (cells stripped; ``\\|`` kept)."""
    all_lines = text.splitlines()
    start = next((i for i, ln in enumerate(all_lines) if ln.startswith("|")), None)
    if start is None:
        raise ValueError("no markdown table in the text")
    lines = []
    for ln in all_lines[start:]:
        if not ln.startswith("|"):
            break
        lines.append(ln)

    def split(line: str) -> tuple[str, ...]:
        return tuple(c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1])

    return split(lines[0]), [split(ln) for ln in lines[2:]]


def block(name: str, body: str) -> str:
    """``body`` between the markers of ``name``."""
    return f"<!-- {name}:start -->\n{body.rstrip()}\n<!-- {name}:end -->"


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"<!-- {re.escape(name)}:start -->\n(.*?)\n?<!-- {re.escape(name)}:end -->", re.S
    )


def find(text: str, name: str) -> list[str]:
    """The bodies of every block ``name`` in ``text``."""
    return _pattern(name).findall(text)


def write(page: str | Path, name: str, body: str) -> Path:
    """Replace every block ``name`` of ``page`` (relative to the repository root) with ``body``."""
    path = ROOT / page
    text = path.read_text(encoding="utf-8")
    if not find(text, name):
        raise ValueError(f"{page} has no <!-- {name}:start --> … <!-- {name}:end --> block")
    path.write_text(_pattern(name).sub(lambda _m: block(name, body), text), encoding="utf-8")
    return path


def emit(page: str, name: str, body: str, *, markdown: bool, write_page: bool) -> None:
    """What ``--markdown`` and ``--write`` do: print the block, or rewrite it in ``page``."""
    if markdown:
        print(block(name, body))
    if write_page:
        print(f"rewrote the {name} block of {write(page, name, body).relative_to(ROOT)}")
