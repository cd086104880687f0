"""The checking API: every solution passes, every known wrong answer is caught with its own hint,
and a broken learner function gets a short message instead of a traceback."""

from __future__ import annotations

import math

import pytest
import torch

from course import EXERCISES, Result, check, solutions
from course.checker import _close

IDS = list(EXERCISES)


@pytest.mark.parametrize("eid", IDS)
def test_solution_passes(eid):
    result = check(getattr(solutions, EXERCISES[eid].name), eid)
    assert isinstance(result, Result) and result.passed and bool(result), result.message
    assert result.message.startswith("PASS")


@pytest.mark.parametrize("eid", IDS)
def test_each_pitfall_is_caught_with_its_hint(eid):
    ex = EXERCISES[eid]
    assert len(ex.pitfalls) >= 2
    for pitfall in ex.pitfalls:
        result = check(pitfall.fn, eid)
        assert not result.passed and result.pitfall == pitfall.name, result.message
        assert pitfall.hint in result.message and "exact:" in result.message
        assert "yours:" in result.message


@pytest.mark.parametrize("eid", IDS)
def test_pitfalls_differ_from_the_answer_and_each_other_somewhere(eid):
    # a pitfall equal to the exact answer on every instance could never be reported
    ex = EXERCISES[eid]
    for kwargs in ex.instances():
        assert torch.isfinite(ex.reference(**kwargs)).all()
    for p in ex.pitfalls:
        assert any(
            not _close(p.fn(**kw).double(), ex.reference(**kw).double(), ex.tol)
            for kw in ex.instances()
        ), p.name


def test_reference_is_independent_of_the_solution_under_a_fault():
    # fault injection: a solution with one flipped sign fails, with no known pitfall to blame
    def gibbs_policy(reward, ref, beta):
        return torch.softmax(-reward / beta + ref.log(), -1)

    result = check(gibbs_policy, "kl_bandit.gibbs")
    assert not result.passed and result.pitfall is None
    assert "no known mistake matches" in result.message


def test_a_wrong_answer_on_one_instance_only_is_not_blamed_on_a_pitfall():
    calls = []

    def soft_value(q, beta):
        calls.append(1)
        if len(calls) == 1:
            return q.max(-1).values  # the hard backup on the first instance only
        return solutions.soft_value(q, beta)

    result = check(soft_value, "soft_bellman.value")
    assert not result.passed and result.pitfall is None


def test_float32_gets_a_precision_hint():
    def gibbs_policy(reward, ref, beta):
        return torch.softmax(reward.float() / beta + ref.float().log(), -1)

    result = check(gibbs_policy, "kl_bandit.gibbs")
    assert not result.passed and "float64" in result.message


@pytest.mark.parametrize(
    ("fn", "needle"),
    [
        (lambda reward, ref, beta: 1 / 0, "raised ZeroDivisionError"),
        (lambda reward, ref: reward, "raised TypeError"),
        (lambda reward, ref, beta: None, "returned None"),
        (lambda reward, ref, beta: "π", "expected a tensor of numbers"),
        (lambda reward, ref, beta: (reward, ref), "expected one tensor"),
        (lambda reward, ref, beta: reward[:2], "expected shape (4,)"),
        (lambda reward, ref, beta: reward[None], "returned shape (1, 4)"),
        (lambda reward, ref, beta: reward * math.nan, "returned NaN"),
        (lambda reward, ref, beta: reward / 0.0, "returned ±inf"),
        (lambda reward, ref, beta: reward > 0, "expected a tensor of numbers"),
    ],
)
def test_a_broken_function_gets_a_short_message(fn, needle):
    result = check(fn, "kl_bandit.gibbs")
    assert not result.passed and needle in result.message, result.message
    assert "Traceback" not in result.message and len(result.message.splitlines()) <= 6


def test_a_stub_is_not_yet_done():
    def gibbs_policy(reward, ref, beta):
        raise NotImplementedError

    result = check(gibbs_policy, "kl_bandit.gibbs")
    assert not result.passed and result.message.startswith("NOT YET")


def test_in_place_edits_do_not_leak_into_the_next_instance():
    def gibbs_policy(reward, ref, beta):
        reward.mul_(0.0)
        ref.fill_(math.nan)
        return solutions.gibbs_policy(reward, ref, beta)

    assert not check(gibbs_policy, "kl_bandit.gibbs").passed
    assert check(solutions.gibbs_policy, "kl_bandit.gibbs").passed


def test_a_scalar_answer_may_be_a_float():
    def regularized_value(policy, reward, ref, beta):
        return float(solutions.regularized_value(policy, reward, ref, beta))

    assert check(regularized_value, "kl_bandit.value").passed


def test_bad_calls_to_check_raise():
    with pytest.raises(ValueError, match="exercise_id must be one of"):
        check(solutions.gibbs_policy, "kl_bandit.gibs")
    with pytest.raises(ValueError, match="student_fn must be a function"):
        check(42, "kl_bandit.gibbs")


def test_ids_name_their_functions_uniquely():
    names = [ex.name for ex in EXERCISES.values()]
    assert len(set(names)) == len(names) and all(eid == ex.id for eid, ex in EXERCISES.items())


@pytest.mark.parametrize("eid", IDS)
def test_a_broken_reference_fails_the_solution(eid, monkeypatch):
    # fault injection in the checker's own exact answer: the reference solution must go red
    import dataclasses

    import course.checker

    ex = EXERCISES[eid]
    broken = dataclasses.replace(ex, reference=ex.pitfalls[0].fn)
    monkeypatch.setitem(course.checker.EXERCISES, eid, broken)
    result = check(getattr(solutions, ex.name), eid)
    assert not result.passed and result.message.startswith("FAIL")
