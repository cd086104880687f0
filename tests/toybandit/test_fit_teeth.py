"""fit_policy's Newton iteration against references that share nothing with it: the closed-form
optimum (to rounding, so a loosened stopping tolerance shows) and scipy on the label-smoothed loss
(so the sign of label smoothing shows)."""

import math

import numpy as np
import pytest
import torch
from scipy import optimize, special

import toybandit as tb

pytestmark = pytest.mark.usefixtures("one_thread")


def _bt_instance(g: torch.Generator):
    """Y ∈ [3, 6], scores |s| ≤ 5, μ and π_ref with full support (entries down to ~1e-3), β
    log-uniform on [0.1, 10]: Bradley–Terry population pairs."""
    n = int(torch.randint(3, 7, (), generator=g))
    s = 5 * (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1)
    mu = torch.softmax(1.5 * torch.randn(n, generator=g, dtype=torch.float64), -1)
    ref = torch.softmax(1.5 * torch.randn(n, generator=g, dtype=torch.float64), -1)
    beta = math.exp(math.log(0.1) + math.log(100) * torch.rand((), generator=g).item())
    pref = torch.sigmoid(s[:, None] - s[None, :])
    return s, mu, ref, beta, pref


def _pairs(pref, mu):
    """Every ordered pair (i ≻ j), i ≠ j, with weight μ_i μ_j P_ij, written here."""
    n = len(mu)
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = i != j
    return i[keep], j[keep], (mu[:, None] * mu[None, :] * pref)[keep]


def test_newton_fit_reaches_the_closed_form_to_rounding():
    """Over 300 instances the DPO population fit is π_ref e^{s/β}/Z to 1e-13 (measured worst
    ~1e-15): a stopping tolerance 1e6× looser leaves up to ~6e-13, and a stall ~1e-9."""
    worst = 0.0
    for seed in range(300):
        s, mu, ref, beta, pref = _bt_instance(torch.Generator().manual_seed(seed))
        chosen, rejected, weights = _pairs(pref, mu)
        fitted = tb.fit_policy(chosen, rejected, ref, beta=beta, weights=weights)
        x = ref.log() + s / beta
        star = (x - x.max()).exp() / (x - x.max()).exp().sum()
        worst = max(worst, (fitted - star).abs().max().item())
    assert worst <= 1e-13, worst


def _smoothed_loss_minimiser(chosen, rejected, weights, ref, beta, eps):
    """argmin over logits of Σ w [(1 − ε)(−log σ(βh)) + ε(−log σ(−βh))], h the log-ratio margin,
    by scipy BFGS with the analytic gradient."""
    c, r, w = chosen.numpy(), rejected.numpy(), (weights / weights.sum()).numpy()
    log_ref = ref.log().numpy()

    def f(theta):
        h = (theta[c] - log_ref[c]) - (theta[r] - log_ref[r])
        value = np.sum(
            w * ((1 - eps) * -special.log_expit(beta * h) + eps * -special.log_expit(-beta * h))
        )
        dh = w * beta * (-(1 - eps) * special.expit(-beta * h) + eps * special.expit(beta * h))
        grad = np.zeros_like(theta)
        np.add.at(grad, c, dh)
        np.add.at(grad, r, -dh)
        return value, grad

    res = optimize.minimize(f, log_ref.copy(), jac=True, method="BFGS", options={"gtol": 1e-12})
    return torch.as_tensor(special.softmax(res.x))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_label_smoothing_matches_scipy_on_the_smoothed_loss(seed, eps):
    _, mu, ref, beta, pref = _bt_instance(torch.Generator().manual_seed(100 + seed))
    beta = min(beta, 3.0)  # keeps scipy's minimiser well conditioned
    chosen, rejected, weights = _pairs(pref, mu)
    fitted = tb.fit_policy(chosen, rejected, ref, beta=beta, weights=weights, label_smoothing=eps)
    reference = _smoothed_loss_minimiser(chosen, rejected, weights, ref, beta, eps)
    assert (fitted - reference).abs().max().item() <= 1e-6
    plain = tb.fit_policy(chosen, rejected, ref, beta=beta, weights=weights)
    assert (fitted - plain).abs().max().item() > 1e-4  # smoothing changes the fit


def test_half_smoothing_is_symmetric_and_keeps_the_reference():
    """ε = ½ weighs σ(βh) and σ(−βh) alike: the loss is even in h, so the minimiser is π_ref."""
    _, mu, ref, beta, pref = _bt_instance(torch.Generator().manual_seed(7))
    chosen, rejected, weights = _pairs(pref, mu)
    fitted = tb.fit_policy(chosen, rejected, ref, beta=beta, weights=weights, label_smoothing=0.5)
    assert (fitted - ref).abs().max().item() <= 1e-12
