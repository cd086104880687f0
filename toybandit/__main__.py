"""A short tour of the exact bandit: ``python -m toybandit``."""

from __future__ import annotations

import torch

import toybandit as tb


def main() -> None:
    f64 = torch.float64
    print("alignment-testbed · toybandit: the one-step alignment world, solved exactly\n")

    reward = torch.tensor([0.0, 1.0, 2.0], dtype=f64)
    ref = torch.tensor([0.5, 0.3, 0.2], dtype=f64)
    beta = 0.5
    star = tb.optimal_policy(reward, ref, beta)
    print("RLHF optimum, Nguyen 2025 eq. (1): π* = π_ref·exp(r/β)/Z")
    print(f"  r = {reward.tolist()}, π_ref = {ref.tolist()}, β = {beta}")
    print(f"  π* = {[round(p, 4) for p in star.tolist()]}")
    print(
        f"  β log Z = {tb.log_partition(reward, ref, beta).item():.6f}"
        f" = J(π*) = {tb.regularized_value(star, reward, ref, beta).item():.6f}\n"
    )

    pref = tb.random_preference(3, generator=torch.Generator().manual_seed(0), kind="cyclic")
    mu = torch.full((3,), 1 / 3, dtype=f64)
    print("An intransitive preference (y0 ≻ y1 ≻ y2 ≻ y0), which no Bradley–Terry reward explains:")
    print("  P =", [[round(p, 3) for p in row] for row in pref.tolist()])
    ipo_star = tb.psi_optimal_policy(pref, mu, ref, beta, "identity")
    print(f"  IPO (Ψ = identity) optimum, τ = {beta}: {[round(p, 4) for p in ipo_star.tolist()]}")
    a, b = ref, torch.tensor([0.2, 0.2, 0.6], dtype=f64)
    d = [
        (
            tb.ipo_target_objective(p, pref, mu, ref, beta)
            - tb.ipo_preference_objective(p, pref, mu, ref, beta)
        ).item()
        for p in (a, b)
    ]
    print(f"  Lemma 3.1: (9) − (10) = {d[0]:.12f} at π_ref and {d[1]:.12f} elsewhere: a constant")
    printed = [
        tb.ipo_label_objective(p, pref, mu, ref, beta, printed=True)
        - tb.ipo_preference_objective(p, pref, mu, ref, beta)
        for p in (a, b)
    ]
    print(
        f"  eq. (11) as printed: (11) − (10) = {printed[0].item():.4f} vs {printed[1].item():.4f}:"
        " the target c − 1 is reversed\n"
    )

    det = torch.tensor([[0.5, 1.0], [0.0, 0.5]], dtype=f64)
    half = torch.full((2,), 0.5, dtype=f64)
    pairs = tb.population_pairs(det, half)
    print("Deterministic preference y0 ≻ y1, exact population losses fitted from π_ref = (½, ½):")
    for b_ in (0.1, 1.0, 10.0):
        dpo = [
            tb.fit_policy(
                pairs.chosen, pairs.rejected, half, "dpo", beta=b_, weights=pairs.weights, steps=k
            )[1].item()
            for k in (30, 60)
        ]
        ipo = tb.fit_policy(
            pairs.chosen, pairs.rejected, half, "ipo", tau=b_, weights=pairs.weights
        )
        print(
            f"  β = τ = {b_:>4}: DPO 1 − π(y0) = {dpo[0]:.1e} after 30 steps, {dpo[1]:.1e} after 60"
            f"   IPO π(y0) = {ipo[0].item():.6f}"
        )
    print(
        "  DPO has no minimiser: for every β, 1 − π(y0) keeps falling toward 0 as steps go on (more"
        " slowly for larger β);\n  IPO stops at its finite optimum."
    )


if __name__ == "__main__":
    main()
