"""An intransitive preference (y₀ ≻ y₁ ≻ y₂ ≻ y₀): what Bradley–Terry can and cannot express, and the
ΨPO optima for Ψ = identity (IPO) and Ψ = logit (RLHF/DPO when Bradley–Terry holds).

The best Bradley–Terry fit (the logistic MLE of Nguyen 2025, eq. (3)) flattens the cycle; ΨPO with
Ψ = identity needs no reward at all: its optimum is π_ref·exp(E_μ[P(y ≻ y')]/τ)/Z (eq. (7)).

    python examples/psi_preferences.py [--quick] [--out DIR]
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import optimize

import toybandit as tb

from _common import parse, save


def bradley_terry_fit(pref, mu):
    """The logistic MLE of eq. (3) on the population, by scipy."""

    def f(z):
        s = torch.as_tensor(z, dtype=torch.float64).requires_grad_(True)
        value = tb.logistic_objective(s, pref, mu)
        value.backward()
        return value.item(), s.grad.numpy()

    res = optimize.minimize(f, np.zeros(len(mu)), jac=True, method="BFGS", options={"gtol": 1e-12})
    return torch.as_tensor(res.x - res.x.mean())


def main(argv=None) -> dict:
    args = parse(__doc__.splitlines()[0], argv)
    pref = tb.from_upper_triangle(
        torch.tensor(
            [[0.5, 0.8, 0.25, 0.7], [0, 0.5, 0.8, 0.6], [0, 0, 0.5, 0.55], [0, 0, 0, 0.5]],
            dtype=torch.float64,
        )
    )
    n = len(pref)
    mu = ref = torch.full((n,), 1.0 / n, dtype=torch.float64)
    score = bradley_terry_fit(pref, mu)
    fitted = tb.bradley_terry(score)
    taus = torch.logspace(-1.5, 1, 6 if args.quick else 25, dtype=torch.float64)
    identity = torch.stack([tb.psi_optimal_policy(pref, mu, ref, t) for t in taus])
    logit = torch.stack([tb.psi_optimal_policy(pref, mu, ref, t, psi="logit") for t in taus])
    summary = {
        "max |P − best Bradley–Terry fit|": (pref - fitted).abs().max().item(),
        "cycle in P: P01, P12, P20": (pref[0, 1].item(), pref[1, 2].item(), pref[2, 0].item()),
        "Ψ-score (identity) E_μ[P(y ≻ ·)]": tb.psi_scores(pref, mu).tolist(),
    }
    for k, v in summary.items():
        print(f"{k}: {np.round(v, 4).tolist() if not isinstance(v, float) else round(v, 4)}")

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, m, title in (
        (axes[0], pref, "P (intransitive)"),
        (axes[1], fitted, "best Bradley–Terry fit"),
    ):
        im = ax.imshow(m.numpy(), vmin=0, vmax=1, cmap="coolwarm")
        ax.set(title=title, xticks=range(n), yticks=range(n), xlabel="y'", ylabel="y")
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=axes[1], shrink=0.8, label="P(y ≻ y')")
    for k in range(n):
        axes[2].semilogx(taus, identity[:, k], f"C{k}-", label=f"y{k} Ψ=identity")
        axes[2].semilogx(taus, logit[:, k], f"C{k}:", label=f"y{k} Ψ=logit")
    axes[2].set(xlabel="τ", ylabel="ΨPO optimum π(y)", title="ΨPO optima")
    axes[2].legend(fontsize=6, ncol=2)
    save(fig, args, "psi_preferences")
    return summary


if __name__ == "__main__":
    main()
