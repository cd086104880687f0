"""Rafailov et al. 2024, eq. (14) and sec. 5.3: when the reference is fitted on the chosen responses (SFT
on the winners), DPO lowers the implicit reward β log π/π_ref of the chosen responses on average:
E_{π_ref}[β log π*/π_ref] = −β KL(π_ref ‖ π*) < 0.

A bandit of 8 responses with Bradley–Terry preferences; pairs from μ; π_ref^w = the law of the chosen
response of a pair (what SFT on the winners converges to). DPO is run by gradient descent from π_ref^w;
the mean implicit reward of chosen and rejected responses is tracked along the way.

    python examples/decreasing_likelihood.py [--quick] [--out DIR]
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

import toybandit as tb

from _common import parse, save


def main(argv=None) -> dict:
    args = parse(__doc__.splitlines()[0], argv)
    g = torch.Generator().manual_seed(3)
    n, beta, steps = 8, 0.5, 150 if args.quick else 1500
    reward = 2 * torch.randn(n, generator=g, dtype=torch.float64)
    pref = tb.bradley_terry(reward)
    mu = torch.softmax(torch.randn(n, generator=g, dtype=torch.float64), -1)
    weights = tb.pair_weights(pref, mu)  # W_ij = P(chosen = i, rejected = j)
    ref_w = weights.sum(-1)  # SFT on the winners: the law of the chosen response
    curves = {}
    for name, ref in (("π_ref = SFT on chosen", ref_w), ("π_ref = μ (no SFT)", mu)):
        pairs = tb.population_pairs(pref, mu)
        w = pairs.weights / pairs.weights.sum()
        theta = ref.log().clone().requires_grad_(True)
        opt = torch.optim.Adam([theta], lr=0.05)
        chosen_mean, rejected_mean = [], []
        for _ in range(steps):
            logratio = torch.log_softmax(theta, -1) - ref.log()
            with torch.no_grad():
                chosen_mean.append(beta * (weights.sum(-1) * logratio).sum().item())
                rejected_mean.append(beta * (weights.sum(-2) * logratio).sum().item())
            loss = (w * tb.losses.dpo(logratio[pairs.chosen], logratio[pairs.rejected], beta)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        curves[name] = (chosen_mean, rejected_mean)
    star = tb.optimal_policy(reward, ref_w, beta)
    summary = {
        "E_{π_ref^w}[β log π*/π_ref^w]": (ref_w * beta * (star.log() - ref_w.log())).sum().item(),
        "−β KL(π_ref^w ‖ π*)": -beta * tb.kl_divergence(ref_w, star).item(),
        "chosen implicit reward at the end, SFT reference": curves["π_ref = SFT on chosen"][0][-1],
        "chosen implicit reward at the end, no SFT": curves["π_ref = μ (no SFT)"][0][-1],
    }
    for k, v in summary.items():
        print(f"{k}: {v:.4f}")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, (name, (c, r)) in zip(axes, curves.items(), strict=True):
        ax.plot(c, label="chosen")
        ax.plot(r, label="rejected")
        ax.axhline(0, c="grey", lw=0.7)
        ax.set(title=name, xlabel="DPO step (population)")
    axes[0].set_ylabel("mean implicit reward β log π/π_ref")
    axes[0].legend(fontsize=8)
    save(fig, args, "decreasing_likelihood")
    return summary


if __name__ == "__main__":
    main()
