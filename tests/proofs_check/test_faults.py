"""The catalogue's teeth: every injected fault is caught, and non-finite values from the solver
never pass (the verdict logic itself: test_registry.py)."""

import math

import pytest

import proofs_check as pc
import tokenmdp
from proofs_check import faults
from proofs_check.cli import main

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


pytestmark = pytest.mark.usefixtures("one_thread")


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
