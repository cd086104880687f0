"""Lemma 3.1 of Nguyen 2025: IPO's unknown-target regression (9) and its label regression (10) differ by
a constant along any training path, so their gradients and minimisers coincide — as long as the pairs
are drawn from the μ inside the target. Pairs from another ν break it.

    python examples/ipo_equivalence.py [--quick] [--out DIR]
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

import toybandit as tb

from _common import parse, save


def objective10(policy, pref, pairs, ref, beta):
    """(10) with pairs drawn from ``pairs``: E[(h − v)²]."""
    q = beta * (policy.log() - ref.log())
    h = q[:, None] - q[None, :]
    return (pairs[:, None] * pairs[None, :] * (h - pref) ** 2).sum()


def path(pref, mu, ref, beta, pairs, steps, lr=0.5):
    """Gradient descent on (10) from π_ref; records (9) − (10) and the gradient gap at each step."""
    theta = ref.log().clone().requires_grad_(True)
    gaps, grad_gaps = [], []
    for _ in range(steps):
        policy = torch.softmax(theta, -1)
        nine = tb.ipo_target_objective(policy, pref, mu, ref, beta, pairs_from=pairs)
        ten = objective10(policy, pref, pairs, ref, beta)
        g9 = torch.autograd.grad(nine, theta, retain_graph=True)[0]
        g10 = torch.autograd.grad(ten, theta)[0]
        gaps.append((nine - ten).item())
        grad_gaps.append((g9 - g10).abs().max().item())
        with torch.no_grad():
            theta -= lr * g10
    return torch.softmax(theta.detach(), -1), gaps, grad_gaps


def main(argv=None) -> dict:
    args = parse(__doc__.splitlines()[0], argv)
    g = torch.Generator().manual_seed(0)
    n, beta, steps = 5, 0.5, 60 if args.quick else 400
    pref = tb.random_preference(n, generator=g)
    mu = torch.softmax(torch.randn(n, generator=g, dtype=torch.float64), -1)
    nu = torch.softmax(2 * torch.randn(n, generator=g, dtype=torch.float64), -1)
    ref = torch.softmax(torch.randn(n, generator=g, dtype=torch.float64), -1)
    final, gaps, grad_gaps = path(pref, mu, ref, beta, mu, steps)
    _, gaps_nu, grad_gaps_nu = path(pref, mu, ref, beta, nu, steps)
    optimum = tb.psi_optimal_policy(pref, mu, ref, beta)  # τ = β: the IPO optimum, Ψ = identity
    summary = {
        "spread of (9) − (10), pairs from μ": max(gaps) - min(gaps),
        "max gradient gap, pairs from μ": max(grad_gaps),
        "spread of (9) − (10), pairs from ν": max(gaps_nu) - min(gaps_nu),
        "max gradient gap, pairs from ν": max(grad_gaps_nu),
        "|π_GD(10) − ΨPO optimum| after descent": (final - optimum).abs().max().item(),
    }
    for k, v in summary.items():
        print(f"{k}: {v:.3g}")

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].plot(gaps, label="pairs from μ (Lemma 3.1)")
    axes[0].plot(gaps_nu, label="pairs from ν ≠ μ")
    axes[0].set(
        xlabel="gradient step on (10)", ylabel="(9) − (10)", title="a constant only if y₁, y₂ ∼ μ"
    )
    axes[0].legend(fontsize=8)
    axes[1].semilogy([max(x, 1e-18) for x in grad_gaps], label="pairs from μ")
    axes[1].semilogy(grad_gaps_nu, label="pairs from ν ≠ μ")
    axes[1].set(xlabel="gradient step on (10)", ylabel="max |∇(9) − ∇(10)|", title="gradients")
    axes[1].legend(fontsize=8)
    save(fig, args, "ipo_equivalence")
    return summary


if __name__ == "__main__":
    main()
