"""proofs_check's registry: the claims' contract, run_claim's verdicts (the expected-outcome logic,
non-finite values, tolerances, a raising claim) and the selection of claims by tag."""

import math
import re

import pytest
import torch

import proofs_check as pc
from proofs_check.cli import main
from proofs_check.coverage import LOSS_PAPERS, REQUIRED
from proofs_check.registry import Claim, Miss, NonFinite, Outcome, maxabs, register


def test_registry_contract():
    with pytest.raises(ValueError, match="registered twice"):
        register(pc.REGISTRY["nguyen2025.eq1.optimum"])
    for claim in pc.REGISTRY.values():
        assert re.fullmatch(r"[a-z]+20\d\d\.[\w.-]+", claim.id)
        assert claim.source in (*REQUIRED, *LOSS_PAPERS)
        assert claim.statement and claim.why and claim.refs
        author = claim.source.split()[0].lower().replace("'", "")
        assert claim.id.startswith(author + claim.source[-4:]), (claim.id, claim.source)
        if claim.expected is Outcome.ERRATUM:
            assert pc.REGISTRY[claim.corrected].expected is Outcome.HOLDS
    errata = {c.id for c in pc.REGISTRY.values() if c.expected is Outcome.ERRATUM}
    assert len(errata) >= 5


def test_why_tolerance_quotes_the_sweep_for_tabled_claims_only(monkeypatch):
    from proofs_check import registry

    swept = pc.REGISTRY["nguyen2025.eq1.optimum"]  # tolerance 1e-10
    monkeypatch.setitem(registry.WORST, swept.id, 4.0e-15)
    assert swept.why_tolerance == (
        f"{swept.why}; measured: worst 4.0e-15 over {registry.RUN}, 25,000× below it"
    )
    monkeypatch.setitem(registry.WORST, swept.id, 2.1e-11)
    assert swept.why_tolerance.endswith("4.8× below it")
    monkeypatch.setitem(registry.WORST, swept.id, 1e-17)
    assert swept.why_tolerance.endswith("> 10⁶× below it")
    monkeypatch.setitem(registry.WORST, swept.id, 0.0)
    assert swept.why_tolerance.endswith(f"measured: 0 on every instance of {registry.RUN}")
    needs = pc.REGISTRY["nguyen2025.eq14-15.not-iid"]
    assert needs.id not in registry.WORST and needs.why_tolerance == needs.why
    record = pc.run_claim(swept, instances=1).record()
    assert record["why_tolerance"] == swept.why_tolerance != swept.why


def test_nan_residual_is_a_failure():
    claim = Claim("test.nan", "Nguyen 2025", ("eq. (1)",), "nan", Outcome.HOLDS,
                  lambda g, d: None, lambda inst: float("nan"), 1.0, "test", "test")  # fmt: skip
    assert not pc.run_claim(claim, instances=1).ok


def test_instances_are_reproducible():
    claim = pc.REGISTRY["rafailov2024.eq13.printed"]
    a = pc.run_claim(claim, seed=3, instances=4).residuals
    assert a == pc.run_claim(claim, seed=3, instances=4).residuals


def test_tags_named_in_help_and_docstrings_select_claims():
    from proofs_check.cli import _parser

    help_text = _parser().format_help()
    for tag in ("bandit", "tree", "layered", "symbolic", "erratum", "identity"):
        assert tag in help_text
        assert pc.select([tag]), f"--claim {tag} selects nothing"
    for tag in re.findall(r'"(\w+)"', Claim.__doc__.split("tags:")[1].split("quick:")[0]):
        assert pc.select([tag]), f"Claim docstring's example tag {tag!r} selects nothing"


def test_every_holds_claim_is_anchored_and_tight():
    """Each holds claim names a reference that is not 'by construction', and its tolerance is a
    round-off or optimiser bound, never a number that lets anything pass."""
    for c in pc.REGISTRY.values():
        if c.expected is Outcome.HOLDS:
            assert c.reference and "by construction" not in c.reference, c.id
            assert c.tolerance <= 1e-5 or "symbolic" in c.tags, c.id
        if c.expected is Outcome.IDENTITY:
            assert "by construction" in c.reference, c.id
        assert c.tolerance <= 1e-5 or "symbolic" in c.tags, c.id


# -- verdicts: exactly the expected-outcome logic --------------------------------------------------


def test_maxabs_never_skips_a_position():
    x = torch.tensor([0.0, 1.0, -math.inf], dtype=torch.float64)
    assert maxabs("x", x, x) == 0.0  # −inf where the reference has it
    for bad in (math.nan, math.inf, -math.inf):
        y = x.clone()
        y[1] = bad
        with pytest.raises(NonFinite, match="x"):
            maxabs("x", y, x)
        with pytest.raises(NonFinite, match=r"reference|x"):
            maxabs("x", x, y)
    with pytest.raises(TypeError, match="float64"):
        maxabs("x", x, x.float())


def _claim(residual, expected=Outcome.HOLDS, **kw):
    return Claim(
        id=kw.pop("id", "test.synthetic"), source="Nguyen 2025", refs=("eq. (1)",),
        statement="synthetic", expected=expected, draw=lambda g, d: None, residual=residual,
        tolerance=1e-9, why="test", reference="test", corrected="x" if expected is Outcome.ERRATUM else None,
        **kw,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("expected", "residual", "ok", "observed"),
    [
        (Outcome.HOLDS, lambda i: 0.0, True, "holds"),
        (Outcome.HOLDS, lambda i: 1.0, False, "fails"),
        (Outcome.HOLDS, lambda i: math.nan, False, "fails"),
        (Outcome.HOLDS, lambda i: math.inf, False, "fails"),
        (Outcome.IDENTITY, lambda i: 0.0, True, "holds"),
        (Outcome.IDENTITY, lambda i: 1.0, False, "fails"),
        (Outcome.NEEDS_ASSUMPTION, lambda i: 1.0, True, "fails"),
        (Outcome.NEEDS_ASSUMPTION, lambda i: 0.0, False, "holds"),
        (Outcome.NEEDS_ASSUMPTION, lambda i: math.nan, False, "error"),
        (Outcome.NEEDS_ASSUMPTION, lambda i: math.inf, False, "error"),
        (Outcome.ERRATUM, lambda i: Miss(size=2.0, off=0.0, corrected=0.0), True, "fails"),
        (Outcome.ERRATUM, lambda i: Miss(size=2.0, off=0.5, corrected=0.0), False, "fails"),
        (Outcome.ERRATUM, lambda i: Miss(size=2.0, off=0.0, corrected=0.5), False, "fails"),
        (Outcome.ERRATUM, lambda i: Miss(size=0.0, off=0.0, corrected=0.0), False, "holds"),
        (Outcome.ERRATUM, lambda i: Miss(size=math.nan, off=0.0, corrected=0.0), False, "error"),
        (Outcome.ERRATUM, lambda i: 2.0, False, "error"),  # not measured at all
    ],
)
def test_verdict_follows_the_expected_outcome(expected, residual, ok, observed):
    result = pc.run_claim(_claim(residual, expected), instances=3)
    assert (result.ok, result.observed) == (ok, observed)


def test_a_raising_claim_is_an_error_and_the_run_goes_on(capsys):
    def boom(inst):
        raise RuntimeError("the solver exploded")

    register(_claim(boom, id="test.raises"))
    register(_claim(lambda i: 0.0, id="test.fine"))
    try:
        code = main(["--claim", "test.raises", "--claim", "test.fine", "--instances", "2"])
        out = capsys.readouterr().out
    finally:
        del pc.REGISTRY["test.raises"], pc.REGISTRY["test.fine"]
    assert code == 1
    assert "ERROR" in out and "RuntimeError: the solver exploded" in out
    assert "test.fine" in out and "MISMATCH in test.raises" in out and "test.fine," not in out


def test_exit_code_needs_every_claim_ok(capsys):
    register(_claim(lambda i: 0.0, id="test.good"))
    register(_claim(lambda i: 1.0, id="test.bad"))
    try:
        assert main(["--claim", "test.good", "--claim", "test.bad", "--instances", "1"]) == 1
        assert main(["--claim", "test.good", "--instances", "1"]) == 0
        assert main(["--claim", "test.bad", "--claim", "test.good", "--instances", "1"]) == 1
    finally:
        del pc.REGISTRY["test.good"], pc.REGISTRY["test.bad"]
    capsys.readouterr()


def test_the_tolerance_is_the_boundary():
    """A residual at the tolerance holds, one 1.5× above it fails: tolerances are not padded."""
    assert pc.run_claim(_claim(lambda i: 1e-9), instances=1).ok
    assert not pc.run_claim(_claim(lambda i: 1.5e-9), instances=1).ok
    needs = Outcome.NEEDS_ASSUMPTION
    assert pc.run_claim(_claim(lambda i: 1.5e-9, needs), instances=1).ok
    assert not pc.run_claim(_claim(lambda i: 1e-9, needs), instances=1).ok
