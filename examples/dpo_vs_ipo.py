"""Deterministic preferences (Azar et al. 2023, the cases Nguyen 2025 sec. 2.3 describes): DPO runs to
the boundary of the simplex whatever β, IPO settles at its finite optimum for every τ.

Two and three responses, y₁ ≻ y₂ (≻ y₃) always; μ = π_ref uniform; gradient descent on the exact
population losses from π_ref. Dashed lines: the closed-form IPO optima (Ψ = identity).

    python examples/dpo_vs_ipo.py [--quick] [--out DIR]
"""

from __future__ import annotations

import time

import matplotlib.pyplot as plt
import torch

import toybandit as tb

from _common import parse, save


def trajectory(loss, pref, ref, strength, steps, lr=0.1):
    """π(y₁) along Adam steps on the population loss over pairs (y_w, y_l) drawn from μ = ref."""
    pairs = tb.population_pairs(pref, ref)
    weights = pairs.weights / pairs.weights.sum()
    theta = ref.log().clone().requires_grad_(True)
    # short second-moment memory and no eps floor: steps stay ~lr however small the gradient gets,
    # so the runs show where each loss is heading rather than how Adam slows down
    opt = torch.optim.Adam([theta], lr=lr, betas=(0.9, 0.9), eps=1e-30)
    out = []
    for _ in range(steps):
        logratio = torch.log_softmax(theta, -1) - ref.log()
        w, lose = logratio[pairs.chosen], logratio[pairs.rejected]
        value = (
            weights
            * (
                tb.losses.dpo(w, lose, strength)
                if loss == "dpo"
                else tb.losses.ipo(w, lose, strength)
            )
        ).sum()
        opt.zero_grad()
        value.backward()
        opt.step()
        out.append(torch.softmax(theta.detach(), -1)[0].item())
    return out


def main(argv=None) -> dict:
    args = parse(__doc__.splitlines()[0], argv)
    steps = 300 if args.quick else 3000
    strengths = (0.1, 1.0, 10.0)
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), sharey=True)
    summary = {}
    runs, start = 0, time.perf_counter()
    for ax, n in zip(axes, (2, 3), strict=True):
        pref = tb.from_upper_triangle(torch.ones(n, n, dtype=torch.float64))  # y₁ ≻ y₂ ≻ … always
        ref = torch.full((n,), 1.0 / n, dtype=torch.float64)
        for k, s in enumerate(strengths):
            color = f"C{k}"
            dpo = trajectory("dpo", pref, ref, s, steps)
            ipo = trajectory("ipo", pref, ref, s, steps)
            star = tb.psi_optimal_policy(pref, ref, ref, s)[0].item()
            ax.plot(dpo, color=color, label=f"DPO β={s:g}")
            ax.plot(ipo, color=color, ls=":", label=f"IPO τ={s:g}")
            ax.axhline(star, color=color, ls="--", lw=0.8)
            summary[f"{n} responses, β=τ={s:g}: π_DPO(y₁)"] = dpo[-1]
            summary[f"{n} responses, β=τ={s:g}: π_IPO(y₁) vs optimum"] = (ipo[-1], star)
            runs += 1
            print(
                f"  [{runs}/{2 * len(strengths)}] {n} responses, β=τ={s:g}: {2 * steps} Adam steps "
                f"done ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
        ax.set(xlabel="Adam step", title=f"{n} responses, y₁ always preferred", ylim=(0, 1.02))
    axes[0].set_ylabel("π(y₁)")
    axes[1].legend(fontsize=7, ncol=2)
    for k, v in summary.items():
        print(f"{k}: " + (f"{v:.4f}" if isinstance(v, float) else f"{v[0]:.4f} vs {v[1]:.4f}"))
    save(fig, args, "dpo_vs_ipo")
    return summary


if __name__ == "__main__":
    main()
