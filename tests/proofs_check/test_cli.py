"""proofs-check, the command line: exit codes, JSON records, filters, teeth, the table it prints,
the options it refuses, --list, --help and --threads."""

import json
import subprocess
import sys

import pytest
import torch

import proofs_check as pc
import tokenmdp
import toybandit
from proofs_check.cli import main, run
from proofs_check.registry import Claim, Outcome, register

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


# -- the CLI's contract: refusals, listing, pluralisation, schema, threads --------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--instances", "0"], "--instances must be ≥ 1, got 0"),
        (["--instances", "-3"], "--instances must be ≥ 1, got -3"),
        (["--device", "foo"], "is not a torch device"),
        (["--device", "tpu"], "is not a torch device"),
        (["--threads", "0"], "--threads must be ≥ 1"),
    ],
)
def test_bad_options_are_one_line_errors(capsys, argv, message):
    assert main([*argv, "--claim", "nguyen2025.eq1"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0 and "Traceback" not in err


def test_unavailable_cuda_is_refused(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["--device", "cuda", "--claim", "nguyen2025.eq1"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_device_errors_from_the_console_have_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "proofs_check", "--device", "foo"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("proofs-check: error:")


def test_list_shows_ids_kinds_tags_and_sources(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for c in pc.REGISTRY.values():
        assert c.id in out
    for word in ("identity", "erratum", "needs-assumption", "holds", "bandit", "tree", "layered",
                 "symbolic", "Nguyen 2025", "Rafailov et al. 2024"):  # fmt: skip
        assert word in out
    assert main(["--list", "--claim", "erratum"]) == 0
    listed = capsys.readouterr().out
    assert "rafailov2024.eq13.printed" in listed and "rafailov2024.eq13.corrected" not in listed


def test_help_carries_the_json_schema():
    from proofs_check.cli import JSON_SCHEMA, _parser

    help_text = _parser().format_help()
    assert "JSON schema" in help_text and JSON_SCHEMA.splitlines()[1] in help_text
    for key in RECORD_KEYS:
        assert key in JSON_SCHEMA, key


def test_one_claim_is_singular(capsys):
    assert main(["--claim", "nguyen2025.eq1.optimum", "--instances", "1"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("1 claim (") and "1/1 verified" in line
    assert main(["--claim", "nguyen2025.eq11", "--instances", "1"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("2 claims (") and "1 erratum measured" in line


def test_summary_counts_only_anchored_claims_as_verified(capsys):
    assert main(["--claim", "rafailov2024.eq15-16", "--instances", "1"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "0/0 verified" in line and "1 identity (not counted as verified)" in line


def test_threads_are_one_during_the_run_and_restored(monkeypatch):
    seen = []
    register(Claim("test.threads", "Nguyen 2025", ("eq. (1)",), "threads", Outcome.HOLDS,
                   lambda g, d: None, lambda inst: seen.append(torch.get_num_threads()) or 0.0,
                   1.0, "test", "test"))  # fmt: skip
    before = torch.get_num_threads()
    try:
        assert main(["--claim", "test.threads", "--instances", "1"]) == 0
        assert main(["--claim", "test.threads", "--instances", "1", "--threads", "2"]) == 0
    finally:
        del pc.REGISTRY["test.threads"]
    assert seen == [1, 2] and torch.get_num_threads() == before
