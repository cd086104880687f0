"""Pairwise losses in TRL's conventions (Nguyen 2025, eqs. (6), (12); Azar et al. 2023, eq. (17))."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import F64
from toybandit import losses

logratio = st.floats(-50, 50)
strength = st.floats(1e-2, 1e2)


def t(x):
    return torch.tensor([x], dtype=F64)


def test_reference_values():
    # h = 0: DPO = log 2 whatever β and ε; IPO = (1/(2τ))²; hinge = 1.
    assert losses.dpo(t(0.3), t(0.3), 0.1).item() == pytest.approx(math.log(2), rel=1e-15)
    assert losses.dpo(t(0.0), t(0.0), 5.0, label_smoothing=0.2).item() == pytest.approx(
        math.log(2), rel=1e-15
    )
    assert losses.ipo(t(1.0), t(1.0), 0.25).item() == pytest.approx(4.0, rel=1e-15)
    assert losses.hinge(t(0.0), t(0.0), 1.0).item() == 1.0
    # h = 1/(2τ): IPO is 0; βh = 1: hinge is 0 and DPO = log(1 + e^{-1}).
    assert losses.ipo(t(2.0), t(0.0), 0.25).item() == 0.0
    assert losses.hinge(t(2.0), t(0.0), 0.5).item() == 0.0
    assert losses.dpo(t(2.0), t(0.0), 0.5).item() == pytest.approx(
        math.log1p(math.exp(-1)), rel=1e-15
    )


@given(logratio, logratio, strength, st.floats(0, 1))
def test_dpo_is_bernoulli_cross_entropy(w, l_, beta, eps):
    """−(1−ε) log σ(βh) − ε log σ(−βh) against the formula in float arithmetic."""
    z = beta * (w - l_)
    log_sig = lambda x: -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))  # noqa: E731
    expected = -(1 - eps) * log_sig(z) - eps * log_sig(-z)
    assert losses.dpo(t(w), t(l_), beta, label_smoothing=eps).item() == pytest.approx(
        expected, rel=1e-12, abs=1e-300
    )


@given(logratio, logratio, strength, st.floats(0, 0.49))
def test_robust_is_unbiased_under_label_noise(w, l_, beta, eps):
    """rDPO: E over a flip of rate ε of the robust loss is the clean DPO loss."""
    noisy = (1 - eps) * losses.robust(t(w), t(l_), beta, eps) + eps * losses.robust(
        t(l_), t(w), beta, eps
    )
    assert noisy.item() == pytest.approx(losses.dpo(t(w), t(l_), beta).item(), rel=1e-9, abs=1e-9)


@given(logratio, logratio, strength)
def test_robust_twin_is_biased_with_the_wrong_rate(w, l_, beta):
    """Negative twin: correcting for ε = 0.2 when the flips have rate 0.1 is biased unless h = 0."""
    noisy = 0.9 * losses.robust(t(w), t(l_), beta, 0.2) + 0.1 * losses.robust(
        t(l_), t(w), beta, 0.2
    )
    clean = losses.dpo(t(w), t(l_), beta)
    if abs(beta * (w - l_)) > 1e-3:
        assert abs((noisy - clean).item()) > 1e-9
    assert losses.robust(t(w), t(l_), beta, 0.0).item() == clean.item()


@given(logratio, logratio, strength)
def test_ipo_matches_nguyen_eq12_scaling(w, l_, tau):
    """Nguyen 2025 eq. (12) writes (βh − ½)² with τ = β: β² times the IPO loss."""
    blog = (tau * (w - l_) - 0.5) ** 2
    assert (tau**2 * losses.ipo(t(w), t(l_), tau)).item() == pytest.approx(
        blog, rel=1e-9, abs=1e-12
    )


@pytest.mark.parametrize("name", sorted(losses.TRL_LOSS_TYPES))
def test_extreme_logratios_are_finite_with_finite_gradients(name):
    fn = losses.TRL_LOSS_TYPES[name]
    kwargs = {"label_smoothing": 0.1} if name in ("robust", "exo_pair") else {}
    chosen = torch.tensor([1e4, -1e4, 0.0, 700.0], dtype=F64, requires_grad=True)
    rejected = torch.tensor([-1e4, 1e4, 0.0, -700.0], dtype=F64, requires_grad=True)
    value = fn(chosen, rejected, 1.0, **kwargs)
    assert torch.isfinite(value).all(), value
    value.sum().backward()
    assert torch.isfinite(chosen.grad).all() and torch.isfinite(rejected.grad).all()


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        losses.dpo(torch.zeros(3), torch.zeros(2), 0.1)
    with pytest.raises(ValueError, match="same shape"):
        losses.ipo(torch.zeros(3, 1), torch.zeros(1, 3), 0.1)
    with pytest.raises(ValueError, match="beta must be positive"):
        losses.dpo(torch.zeros(3), torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match="tau must be positive"):
        losses.ipo(torch.zeros(3), torch.zeros(3), -1.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.dpo(torch.zeros(3), torch.zeros(3), 0.1, label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.robust(torch.zeros(3), torch.zeros(3), 0.1, label_smoothing=0.5)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.exo_pair(torch.zeros(3), torch.zeros(3), 0.1, label_smoothing=0.0)


# --- TRL's own loss code, on a real trainer with real (tiny, random) transformers models -----------


@pytest.fixture(scope="module")
def trl_world(tmp_path_factory):
    pytest.importorskip("trl")
    from . import trl_reference

    world = trl_reference.dpo_world(str(tmp_path_factory.mktemp("trl")))
    # Sequence log-ratios computed independently of TRL (trl_reference: log-softmax, gather, mask).
    logratios = (world.logps - world.ref_logps).sum(-1)
    lengths = world.mask.sum(-1)
    return world, logratios.chunk(2), lengths.chunk(2)


@pytest.mark.parametrize("name", sorted(losses.TRL_LOSS_TYPES))
@pytest.mark.parametrize("beta", [0.1, 2.0])
def test_losses_equal_trl_dpo_trainer(trl_world, name, beta):
    from .trl_reference import trl_dpo_loss

    world, (chosen, rejected), (n_chosen, n_rejected) = trl_world
    eps = 0.1 if name in ("robust", "exo_pair") else 0.0
    expected = trl_dpo_loss(world, name, beta=beta, label_smoothing=eps)
    fn = losses.TRL_LOSS_TYPES[name]
    kwargs = {"label_smoothing": eps} if eps else {}
    if name == "ipo":  # TRL averages the log-ratios over completion tokens; the paper sums them
        got = fn(chosen / n_chosen, rejected / n_rejected, beta)
        assert fn(chosen, rejected, beta).mean().item() != pytest.approx(expected, rel=1e-3)
    else:
        got = fn(chosen, rejected, beta, **kwargs)
    # TRL evaluates in float32: agreement to float32 rounding of O(10) log-probabilities.
    assert got.mean().item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_trl_world_has_distinct_policies(trl_world):
    """The comparison above has teeth only if the log-ratios are not all equal."""
    _, (chosen, rejected), _ = trl_world
    assert (chosen - rejected).abs().min() > 1e-3
    assert np.ptp(torch.cat([chosen, rejected]).numpy()) > 1e-2
