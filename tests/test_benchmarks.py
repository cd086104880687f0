"""The benchmark tables of the docs have the shape their scripts write: each block sits in the page
its script rewrites, under a setting line the script could have written (date, command, machine,
load, versions, what to expect elsewhere), with the script's header and row labels, and with the
sentences the script derives from the table's own cells. Times are not compared: they cannot be
reproduced bit for bit (see docs/maintaining.md)."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from tests.helpers import DOCS_SCRIPTS

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture(scope="module", autouse=True)
def benchmarks_on_path():
    sys.path.insert(0, str(BENCHMARKS))
    yield
    sys.path.remove(str(BENCHMARKS))


def _report():
    return importlib.import_module("_report")


def _block(mod) -> str:
    found = _report().find((ROOT / mod.PAGE).read_text(encoding="utf-8"), mod.NAME)
    assert len(found) == 1, f"{mod.PAGE} needs exactly one {mod.NAME} block (has {len(found)})"
    return found[0]


def _detail(setting: str) -> str:
    return _report().SETTING.match(setting)["detail"]


def _rebuild(name: str, mod, rows, machine, body: str) -> str:
    """The block the script writes for these rows on this machine."""
    setting = body.split("\n", 1)[0]
    if name == "toybandit_fit":
        threads = int(re.search(r"(\d+) torch threads", _detail(setting))[1])
        return mod.markdown(
            rows, machine, Namespace(prompts=64, responses=8, strength=0.5), threads
        )
    if name == "tree_solve" or name == "timings":
        return mod.markdown(rows, machine)
    if name == "lm_logprobs":
        threads = int(re.match(r"(\d+) torch thread", _detail(setting))[1])
        minutes = float(re.search(r"([\d.]+) min in all", setting)[1])
        err = float(re.search(r"agree with the fused head to (\S+)\. ", body)[1])
        return mod.markdown(rows, err, machine, threads, minutes)
    if name == "lm_expand":
        return mod.markdown(rows, machine, Namespace(**mod.DEFAULTS))
    if name == "lab_results":
        pytest.importorskip("trl")
        from tokenmdp.lm import lab

        return mod.markdown(rows, machine, lab.QUICK)
    if name == "tolerance_sweep":
        setting = _sweep_setting(body)
        setting.hours = float(re.search(r"([\d.]+) h of claim time", body)[1])
        off = re.search(r"to within (\S+); the least margin .* is (.+×) \((`\S+`)\)\.", body)
        setting.errata = off.groups()
        rows = [(*r[:3], mod.margin(r[1], r[2])) for r in rows]  # the margin is tolerance / worst
        return mod.markdown(rows, machine, setting)
    raise AssertionError(name)


@pytest.mark.parametrize("name", DOCS_SCRIPTS)
def test_each_docs_table_has_the_shape_its_script_writes(name):
    mod = importlib.import_module(name)
    report = _report()
    body = _block(mod)
    setting = body.split("\n", 1)[0]
    machine = report.parse_setting(setting)
    assert machine is not None, f"{mod.NAME}: not a setting line of _report.setting_line: {setting}"
    assert report.SETTING.match(setting)["command"] == mod.COMMAND
    header, rows = report.cells(body)
    assert header == mod.HEADER, f"{mod.NAME}: the columns are not the script's"
    assert all(len(r) == len(header) for r in rows)
    if name == "lab_results":
        pytest.importorskip("trl")
    labels = mod.labels()
    assert [r[: len(labels[0])] for r in rows] == labels, (
        f"{mod.NAME}: the rows are not the script's"
    )
    assert body == _rebuild(name, mod, rows, machine, body), (
        f"{mod.NAME}: the block is not what `{mod.COMMAND}` writes for these cells (the setting "
        "line's detail, the alignment or the sentences under the table differ)"
    )


def test_the_measured_worst_residuals_are_the_tolerance_sweep_table():
    """proofs_check/measured.py, which the claims' why_tolerance quotes, is what the sweep wrote
    with the docs block: the same claims, worst residuals and run."""
    sweep = importlib.import_module("tolerance_sweep")
    body = _block(sweep)
    _, rows = _report().cells(body)
    written = sweep.measured_module(rows, _sweep_setting(body))
    assert sweep.MEASURED.read_text(encoding="utf-8") == written, (
        f"proofs_check/measured.py is not the tolerance-sweep table: rerun `{sweep.COMMAND}`"
    )
    from proofs_check import REGISTRY
    from proofs_check.measured import WORST

    for label, tolerance, *_ in rows:
        claim = REGISTRY[label.strip("`")]
        assert tolerance == f"{claim.tolerance:.0e}", (
            f"{claim.id}: its tolerance moved since the sweep"
        )
        assert WORST[claim.id] <= claim.tolerance, claim.id


def test_every_margin_below_10x_is_explained():
    """The paragraph after the sweep's block explains each claim whose margin is below 10× (they
    are not rounding), and only those."""
    sweep = importlib.import_module("tolerance_sweep")
    page = (ROOT / sweep.PAGE).read_text(encoding="utf-8")
    _, rows = _report().cells(_block(sweep))
    after = page.split(f"<!-- {sweep.NAME}:end -->", 1)[1].strip().split("\n\n", 1)[0]
    assert after.startswith("The margins below 10× are not rounding")
    tabled = {r[0]: float(r[1]) / max(float(r[2]), 1e-300) for r in rows}
    named = {f"`{c}`" for c in re.findall(r"`([a-z]+20\d\d\.[\w.-]+)`", after)} & set(tabled)
    assert named == {c for c, m in tabled.items() if m < 10}


def _sweep_setting(body: str) -> Namespace:
    detail = _detail(body.split("\n", 1)[0])
    first, last, instances = re.match(r"seeds (\d+)–(\d+) × (\d+) instances", detail).groups()
    return Namespace(first=first, last=last, instances=instances)


def test_the_summaries_quote_the_timings_table():
    timings = importlib.import_module("timings")
    report = _report()
    body = _block(timings)
    _, rows = report.cells(body)
    want = timings.summary(rows, report.parse_setting(body.split("\n", 1)[0]))
    for page in timings.SUMMARY_PAGES:
        found = report.find((ROOT / page).read_text(encoding="utf-8"), timings.SUMMARY)
        assert found == [want], f"{page}: the timings summary is not the timings table's"


def test_setting_lines_round_trip_and_have_teeth():
    report = _report()
    for load, state in ((0.1, "unrecorded"), (3.0, "unrecorded"), (None, "idle"),
                        (None, "loaded"), (None, "unrecorded")):  # fmt: skip
        machine = report.Machine("2026-01-02", 2, "x86_64 (AMD EPYC)", "torch 2.13.0", load, state)
        for kind in ("timing", "times", "result"):
            line = report.setting_line(
                "python benchmarks/x.py --write", machine, "one thread", kind=kind
            )
            assert report.parse_setting(line) == report.Machine(
                "2026-01-02", 2, "x86_64 (AMD EPYC)", "torch 2.13.0", load,
                machine.condition if load is None else "unrecorded",
            )  # fmt: skip
    idle = report.Machine("2026-01-02", 2, "x86_64", "torch 2.13.0", load=0.1)
    busy = report.Machine("2026-01-02", 2, "x86_64", "torch 2.13.0", load=1.5)
    assert (idle.condition, busy.condition) == ("idle", "loaded")
    line = report.setting_line("python benchmarks/x.py --write", busy, "one thread")
    assert "a loaded 2-core" in line and report.EXPECT["loaded"] in line
    # a hand edit that calls a loaded run idle, or drops what to expect, is not a setting line
    assert report.parse_setting(line.replace("a loaded", "an idle")) is None
    assert report.parse_setting(line.split(". ")[0] + ".") is None


def test_write_replaces_only_its_block(tmp_path, monkeypatch):
    report = _report()
    monkeypatch.setattr(report, "ROOT", tmp_path)
    page = tmp_path / "page.md"
    page.write_text("a\n<!-- x:start -->\nold\n<!-- x:end -->\nb\n", encoding="utf-8")
    report.write("page.md", "x", "new\n| t |")
    assert (
        page.read_text(encoding="utf-8") == "a\n<!-- x:start -->\nnew\n| t |\n<!-- x:end -->\nb\n"
    )
    assert report.find(page.read_text(encoding="utf-8"), "x") == ["new\n| t |"]
    with pytest.raises(ValueError, match="no <!-- y:start -->"):
        report.write("page.md", "y", "z")


def test_cuda_and_quick_runs_are_not_written_to_the_docs():
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("needs the lm extra")
    lm_logprobs = importlib.import_module("lm_logprobs")
    with pytest.raises(SystemExit):
        lm_logprobs.main(["--quick", "--write"])
