"""proofs-check: exit codes, JSON records, filters, teeth, and the README's coverage table."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import proofs_check as pc
import tokenmdp
import toybandit
from proofs_check.cli import main, run
from proofs_check.coverage import REQUIRED, coverage_markdown, uncovered
from proofs_check.registry import Claim, Outcome, register

README = Path(__file__).resolve().parents[2] / "README.md"

RECORD_KEYS = {
    "id", "source", "refs", "statement", "expected", "reference", "observed", "ok", "instances",
    "max_residual", "tolerance", "why_tolerance", "failing_instance", "max_off", "max_corrected",
    "error", "message", "corrected", "tags", "seconds",
}  # fmt: skip


def _json(capsys, argv):
    _, code = run([*argv, "--json"])
    out = json.loads(capsys.readouterr().out)
    return out, code


def test_json_records_follow_the_outcomes(capsys):
    out, code = _json(capsys, ["--quick", "--claim", "nguyen2025.eq11"])
    assert code == 0 and out["ok"] is True and out["seed"] == 0
    ids = [r["id"] for r in out["claims"]]
    assert ids == ["nguyen2025.eq11.printed", "nguyen2025.eq11.corrected"]
    printed, corrected = out["claims"]
    assert set(printed) == RECORD_KEYS
    assert printed["expected"] == "erratum" and printed["observed"] == "fails" and printed["ok"]
    assert printed["corrected"] == "nguyen2025.eq11.corrected" and printed["failing_instance"] == 0
    assert corrected["observed"] == "holds" and corrected["max_residual"] <= corrected["tolerance"]
    assert printed["instances"] == 5  # --quick


def test_table_and_exit_code(capsys):
    assert main(["--claim", "rafailov2024.lemma1", "--instances", "3"]) == 0
    out = capsys.readouterr()
    assert "rafailov2024.lemma1.cyclic" in out.out and "needs-assumption" in out.out
    assert "every claim has its expected outcome" in out.out
    assert "rafailov2024.lemma1.cyclic" in out.err  # the progress bar goes to stderr
    assert main(["--claim", "no-such-claim"]) == 2


def test_tags_and_symbolic_flag(capsys):
    out, _ = _json(capsys, ["--claim", "symbolic"])
    assert {r["id"] for r in out["claims"]} == {
        "nguyen2025.lemma31.symbolic", "nguyen2025.eq12.symbolic", "rafailov2024.sec41.symbolic",
    }  # fmt: skip
    assert all(r["max_residual"] == 0 for r in out["claims"])  # exact: no term left
    out, _ = _json(capsys, ["--quick"])
    assert not any("symbolic" in r["tags"] for r in out["claims"])  # only with --symbolic


def test_seed_changes_instances_but_not_outcomes(capsys):
    a, _ = _json(capsys, ["--claim", "nguyen2025.eq8.different-laws", "--seed", "1"])
    b, _ = _json(capsys, ["--claim", "nguyen2025.eq8.different-laws", "--seed", "2"])
    assert a["claims"][0]["max_residual"] != b["claims"][0]["max_residual"]
    assert a["ok"] and b["ok"]


@pytest.mark.parametrize(
    ("target", "name", "claim_id"),
    [
        (toybandit, "log_partition", "nguyen2025.sec22.gibbs"),
        (tokenmdp, "implicit_rewards", "rafailov2024.eq8.policy-preference"),
    ],
)
def test_a_wrong_sign_is_reported(monkeypatch, capsys, target, name, claim_id):
    """The catalogue has teeth: flip the sign of one library function and its claim fails."""
    original = getattr(target, name)
    monkeypatch.setattr(target, name, lambda *a, **k: -original(*a, **k))
    out, code = _json(capsys, ["--quick", "--claim", claim_id])
    assert code == 1 and out["ok"] is False
    assert out["claims"][0]["observed"] == "fails" and out["claims"][0]["expected"] == "holds"


def test_a_holds_claim_that_fails_is_a_mismatch(capsys):
    broken = Claim(
        id="test.broken",
        source="Nguyen 2025",
        refs=("eq. (1)",),
        statement="a residual of 1 everywhere",
        expected=Outcome.HOLDS,
        draw=lambda g, device: None,
        residual=lambda inst: 1.0,
        tolerance=1e-9,
        why="test",
        reference="test",
    )
    register(broken)
    try:
        assert main(["--claim", "test.broken", "--instances", "2"]) == 1
        assert "MISMATCH in test.broken" in capsys.readouterr().out
    finally:
        del pc.REGISTRY["test.broken"]


def test_registry_contract():
    with pytest.raises(ValueError, match="registered twice"):
        register(pc.REGISTRY["nguyen2025.eq1.optimum"])
    for claim in pc.REGISTRY.values():
        assert re.fullmatch(r"(nguyen2025|rafailov2024)\.[\w.-]+", claim.id)
        assert claim.source in REQUIRED and claim.statement and claim.why and claim.refs
        if claim.expected is Outcome.ERRATUM:
            assert pc.REGISTRY[claim.corrected].expected is Outcome.HOLDS
    errata = {c.id for c in pc.REGISTRY.values() if c.expected is Outcome.ERRATUM}
    assert len(errata) >= 5


def test_nan_residual_is_a_failure():
    claim = Claim("test.nan", "Nguyen 2025", ("eq. (1)",), "nan", Outcome.HOLDS,
                  lambda g, d: None, lambda inst: float("nan"), 1.0, "test", "test")  # fmt: skip
    assert not pc.run_claim(claim, instances=1).ok


def test_instances_are_reproducible():
    claim = pc.REGISTRY["rafailov2024.eq13.printed"]
    a = pc.run_claim(claim, seed=3, instances=4).residuals
    assert a == pc.run_claim(claim, seed=3, instances=4).residuals


def test_every_numbered_item_is_covered():
    assert uncovered() == []


def test_readme_coverage_table_is_current():
    text = README.read_text()
    found = re.search(r"<!-- coverage:start -->\n(.*?)<!-- coverage:end -->", text, re.S)
    assert found, "README.md lacks the coverage markers"
    assert found.group(1) == coverage_markdown(), (
        "README coverage table is stale: regenerate it with `proofs-check --markdown`"
    )


def test_console_script_and_module():
    proc = subprocess.run(
        [sys.executable, "-m", "proofs_check", "--quick", "--claim", "rafailov2024.eq1"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rafailov2024.eq1.token-bradley-terry" in proc.stdout


@pytest.mark.gpu
def test_tree_claims_on_cuda(capsys):
    out, code = _json(capsys, ["--quick", "--claim", "rafailov2024", "--device", "cuda"])
    assert code == 0, [r["id"] for r in out["claims"] if not r["ok"]]
    assert torch.cuda.is_available()


def test_lm_claims_on_a_local_checkpoint(tmp_path, capsys):
    pytest.importorskip("transformers")
    from proofs_check import lm_claims

    lm_claims.tiny_model(seed=5).save_pretrained(tmp_path)
    try:
        out, code = _json(capsys, ["--claim", "lm", "--instances", "2", "--model", str(tmp_path)])
        assert code == 0, [r["id"] for r in out["claims"] if not r["ok"]]
        assert {r["id"] for r in out["claims"]} >= {"rafailov2024.sec41.lm-text"}
    finally:
        lm_claims.set_model(None)
    assert main(["--claim", "nguyen2025.eq1", "--model", str(tmp_path)]) == 2  # no LM claim chosen
