"""The catalogue's teeth: every injected fault is caught, non-finite values never pass, a raising
claim is an error for that claim only, and the verdict logic is exactly the expected-outcome one."""

import math

import pytest
import torch

import proofs_check as pc
import tokenmdp
from proofs_check import faults
from proofs_check.cli import main
from proofs_check.registry import Claim, Miss, NonFinite, Outcome, maxabs, register

# Each fault and a claim that must catch it (seen in `proofs-check --faults`): a claim copied onto
# the wrong quantity, or a tolerance made huge, loses its catch and fails here.
CAUGHT_BY = {
    "tokenmdp.solve.no-log-ref": "rafailov2024.eq5-7.bellman",
    "tokenmdp.solve.beta-inverted": "rafailov2024.eq5-7.bellman",
    "tokenmdp.solve.reward-sign": "rafailov2024.eq5-7.bellman",
    "tokenmdp.solve.lse-is-max": "rafailov2024.eq5-7.bellman",
    "tokenmdp.solve.no-normaliser": "rafailov2024.sec41.telescoping",
    "tokenmdp.solve.terminal-value": "rafailov2024.eq5-7.bellman",
    "tokenmdp.solve.level-off-by-one": "rafailov2024.lemma1.bijection",
    "tokenmdp.solve.inverse-ref-sign": "rafailov2024.lemma1.bijection",
    "tokenmdp.solve.inverse-no-value": "rafailov2024.lemma1.tree-injective",
    "tokenmdp.sequences.implicit-sign": "rafailov2024.eq10-11.advantage",
    "tokenmdp.sequences.implicit-no-beta": "rafailov2024.sec41.telescoping",
    "tokenmdp.sequences.prefix-off-by-one": "rafailov2024.eq1.token-bradley-terry",
    "tokenmdp.sequences.shaping-sign": "rafailov2024.theorem1.shaping",
    "tokenmdp.sequences.expected-under-policy": "rafailov2024.eq14.expected-implicit",
    "tokenmdp.train.preference-transposed": "rafailov2024.eq1.token-bradley-terry",
    "tokenmdp.train.pairs-swapped": "rafailov2024.eq9.token-dpo",
    "tokenmdp.search.beam-keeps-worst": "rafailov2024.sec52.beam",
    "tokenmdp.search.prefix-argmin": "rafailov2024.eq13.corrected",
    "toybandit.optimal.beta-multiplier": "nguyen2025.eq1.optimum",
    "toybandit.optimal.log-partition-sign": "nguyen2025.sec22.gibbs",
    "toybandit.optimal.kl-reversed": "nguyen2025.sec22.gibbs",
    "toybandit.preferences.bradley-terry-transposed": "nguyen2025.eq2.bradley-terry",
    "toybandit.data.pairs-swapped": "nguyen2025.eq6.dpo",
    "toybandit.fit.newton-loose": "nguyen2025.eq6.dpo",
    "toybandit.fit.ipo-target": "nguyen2025.eq7.score",
    "toybandit.losses.dpo-swapped": "rafailov2024.eq9.token-dpo",
    "toybandit.objectives.label-target-printed": "nguyen2025.eq11.corrected",
    "toybandit.objectives.ipo-target-one": "nguyen2025.eq12.symmetrised",
    "toybandit.losses.robust-smoothing-sign": "chowdhury2024.rdpo.unbiased",
    "toybandit.losses.f-scores-doubled": "wang2024.fdpo.optimum",
    "toybandit.losses.sigmoid-norm-summed": "rafailov2023.dpo.token-averaged",
    "toybandit.losses.orpo-probability-ratio": "hong2024.orpo.odds-ratio",
    "toybandit.losses.apo-zero-rejected-sign": "doosterlinck2024.apo-zero.no-minimiser",
    "toybandit.minimise.any-escape": "zhao2023.hinge.deterministic",
    "toybandit.minimise.underflow-is-a-minimum": "wang2024.fdpo.deterministic",
    "tokenmdp.lm.shifted-logprobs": "rafailov2024.lm.token-logprobs",
    "tokenmdp.lm.mask-ignored": "rafailov2024.lm.token-logprobs",
}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_at_least_25_faults_each_with_a_catcher():
    ids = [f.id for f in faults.FAULTS]
    assert len(ids) >= 25 and len(set(ids)) == len(ids)
    assert set(ids) == set(CAUGHT_BY)
    assert {f.module.split(".")[0] for f in faults.FAULTS} == {"toybandit", "tokenmdp"}
    assert any(f.module.startswith("tokenmdp.lm") for f in faults.FAULTS)


@pytest.mark.parametrize("fault", faults.FAULTS, ids=lambda f: f.id)
def test_every_fault_is_caught(fault):
    if "lm" in fault.against:
        pytest.importorskip("transformers")
    claim = pc.REGISTRY[CAUGHT_BY[fault.id]]
    assert pc.run_claim(claim, instances=3).ok, f"{claim.id} fails without the fault"
    with faults.injected(fault):
        result = pc.run_claim(claim, instances=3)
    assert not result.ok, f"{fault.id} ({fault.description}) is not caught by {claim.id}"


def test_injection_is_undone():
    original = tokenmdp.soft_solve
    fault = next(f for f in faults.FAULTS if f.id == "tokenmdp.solve.reward-sign")
    with faults.injected(fault):
        assert tokenmdp.soft_solve is not original
        assert tokenmdp.solve.soft_solve is tokenmdp.soft_solve  # every binding of the name
    assert tokenmdp.soft_solve is original and tokenmdp.solve.soft_solve is original


def test_cli_faults_prints_the_matrix(monkeypatch, capsys):
    chosen = [f for f in faults.FAULTS if f.id in ("tokenmdp.train.preference-transposed",)]
    chosen = [f.__class__(**{**f.__dict__, "against": ("rafailov2024.eq1",)}) for f in chosen]
    monkeypatch.setattr(faults, "FAULTS", tuple(chosen))
    assert main(["--faults", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "tokenmdp.train.preference-transposed" in out and "every one caught" in out
    harmless = faults.Fault("test.harmless", "tokenmdp.solve", "soft_solve", lambda f: f, "none",
                            ("rafailov2024.eq1",))  # fmt: skip
    monkeypatch.setattr(faults, "FAULTS", (harmless,))
    assert main(["--faults", "--quick"]) == 1
    assert "NOT CAUGHT: test.harmless" in capsys.readouterr().out


# -- non-finite values ------------------------------------------------------------------------------


def _nan_solver(original):
    """soft_solve returning NaN on half the edges and V*(s₀) = +inf (the review's example)."""

    def soft_solve(tree, reward, beta):
        sol = original(tree, reward, beta)
        q, v, lp = sol.q.clone(), sol.v.clone(), sol.log_policy.clone()
        q[1::2], lp[1::2], v[0] = math.nan, math.nan, math.inf
        return sol._replace(q=q, v=v, log_policy=lp)

    return soft_solve


@pytest.mark.parametrize(
    "claim_id",
    [
        "rafailov2024.eq5-7.bellman",
        "rafailov2024.sec41.telescoping",
        "rafailov2024.eq8.policy-preference",
    ],
)
def test_nan_and_inf_from_the_solver_fail_holds_claims(claim_id):
    fault = faults.Fault("test.nan", "tokenmdp.solve", "soft_solve", _nan_solver, "NaN")
    with faults.injected(fault):
        result = pc.run_claim(pc.REGISTRY[claim_id], instances=2)
    assert not result.ok and result.observed == "fails" and result.failing_instance == 0
    assert result.message.startswith("instance 0: ")
    assert any(name in result.message for name in ("Q*", "V*", "log π*", "nan", "inf"))


def test_nan_from_the_solver_is_an_error_for_errata_and_assumptions():
    fault = faults.Fault("test.nan", "tokenmdp.solve", "soft_solve", _nan_solver, "NaN")
    with faults.injected(fault):
        for claim_id in ("rafailov2024.eq13.printed", "rafailov2024.eq8.different-starts"):
            result = pc.run_claim(pc.REGISTRY[claim_id], instances=2)
            assert result.observed == "error" and not result.ok, claim_id
            assert result.error.startswith("instance 0: ")  # NonFinite, or the library refusing NaN


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
