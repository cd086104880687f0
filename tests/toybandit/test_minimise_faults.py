"""Fault injection: break the minimisers once (a dropped |·|, a wrong ratio, a shifted bound, an
off-by-one length) and watch the checks that guard them go red."""

import math

import numpy as np
import pytest
import torch

import tokenmdp.minimise as TM
from toybandit import minimise as M

from ..tokenmdp import test_minimise_tree as tree_tests
from . import test_minimise as tests


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_newton_without_absolute_eigenvalues_is_caught(monkeypatch):
    """Inverting λ instead of |λ| walks uphill along negative curvature (non-convex losses)."""
    original = torch.linalg.eigh

    def broken_step(grad, hess, support):
        g = torch.where(support, grad, 0.0).reshape(-1)
        mask = support.reshape(-1)
        h = hess * (mask.unsqueeze(0) & mask.unsqueeze(1))
        lam, vec = original((h + h.T) / 2)
        keep = lam.abs() > 1e-12 * lam.abs().max()
        inv = torch.where(keep, 1.0 / lam, 0.0)  # the fault: λ, not |λ|
        return -(vec @ (inv * (vec.T @ g))).reshape(grad.shape)

    monkeypatch.setattr(M, "_newton_step", broken_step)
    # the line search falls back to steepest descent where λ points uphill, so the convex and
    # mildly non-convex losses still land; a bounded loss with strong negative curvature does not
    with pytest.raises(AssertionError):
        tests.test_bounded_loss_escape_lands_on_the_infimum_not_a_plateau()


def test_escape_rate_from_the_wrong_decreases_is_caught(monkeypatch):
    def broken(decrease, theta, step, support):
        d, rates = M._unit_ray(step, support)
        delta = (step.norm() / d.norm()).item()
        drops = [-decrease(theta + j * step, theta + (j + 1) * step) for j in range(8, 11)]
        return rates, math.log(drops[0] / drops[2]) / delta  # the fault: two steps apart

    monkeypatch.setattr(M, "_escape_rates", broken)
    with pytest.raises(AssertionError):
        tests.test_dpo_on_deterministic_preferences_has_no_minimiser(0.5)


def test_cutting_planes_with_a_shifted_bound_are_caught(monkeypatch):
    original = M._cutting_planes

    # the fault: the planes hand back a point 1e-3 off the one they certified
    def perturbed(objective, theta, support, **kw):
        out = original(objective, theta, support, **kw)
        if out is None:
            return out
        moved = out[0].clone()
        moved[..., 0] += 1e-3
        return moved, out[1]

    monkeypatch.setattr(M, "_cutting_planes", perturbed)
    with pytest.raises(AssertionError):
        tests.test_hinge_reaches_the_linear_programme_optimum(0, "general")


def test_tree_lengths_off_by_one_are_caught(monkeypatch):
    original = TM.minimise_loss

    def off_by_one(loss, pairs, ref, *, lengths=None, **kw):
        return original(loss, pairs, ref, lengths=None if lengths is None else lengths + 1, **kw)

    monkeypatch.setattr(TM, "minimise_loss", off_by_one)
    with pytest.raises(AssertionError):
        tree_tests.test_length_normalised_minimiser_equals_scipy_on_edge_logits()


def test_scipy_reference_itself_detects_a_wrong_answer():
    """The scipy comparison is not vacuous: a policy off by 1e-6 fails its tolerance."""
    torch_loss, numpy_loss = tests.random_loss(0)
    pref, mu, ref = tests.world(100, y=5, kind="general")
    pairs = tests.tb.population_pairs(pref, mu)
    want = tests.scipy_minimum(numpy_loss, pairs, ref)
    got = M.minimise_loss(torch_loss, pairs, ref).policy.numpy()
    assert np.abs(got - want).max() < 1e-8
    assert np.abs(got + np.array([1e-6, -1e-6, 0, 0, 0]) - want).max() > 1e-8
