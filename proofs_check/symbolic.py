"""Exact symbolic proofs (sympy) of the algebraic identities, for small instance sizes.

Each residual is the number of terms left in the expanded difference of the two sides: 0 is a proof
of the identity for that size, with every quantity a free symbol except what the source fixes
((8b–c) for v, Σμ = 1, V* = 0 at the terminal state). Run with ``proofs-check --symbolic``.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
import torch

from .registry import claim

EXACT = "exact arithmetic: the expanded difference must have no term left"


def _size(low: int, high: int):
    def draw(g: torch.Generator, device=None) -> int:
        return int(torch.randint(low, high + 1, (), generator=g))

    return draw


def _terms(expr) -> int:
    expr = sp.expand(expr)
    return 0 if expr == 0 else len(sp.Add.make_args(expr))


@claim(
    "nguyen2025.lemma31.symbolic",
    "Nguyen 2025",
    ("Lemma 3.1", "eq. (9)", "eq. (10)", "eq. (13)", "eq. (14)", "eq. (15)"),
    "symbolically, for Y responses: (9) − (10) = E_μ[g²] − E_μ[v²] for all q, v under (8b–c), Σμ = 1",
    draw=_size(2, 3),
    tolerance=0.5,
    why=EXACT,
    reference="sympy: the expanded difference of the two sides has no term left",
    tags=("symbolic",),
    instances=2,
)
def _(n: int) -> float:
    q = sp.symbols(f"q0:{n}")
    mu = list(sp.symbols(f"mu0:{n - 1}"))
    mu.append(1 - sum(mu))
    v: list[list[Any]] = [
        [sp.Rational(1, 2) if i == j else None for j in range(n)] for i in range(n)
    ]
    for i in range(n):
        for j in range(i + 1, n):
            v[i][j] = sp.Symbol(f"v{i}{j}")
            v[j][i] = 1 - v[i][j]  # (8c)
    s = [sum(mu[k] * v[i][k] for k in range(n)) for i in range(n)]  # s†, eq. (7)

    def expect(f):
        return sum(mu[i] * mu[j] * f(i, j) for i in range(n) for j in range(n))

    nine = expect(lambda i, j: (q[i] - q[j] - (s[i] - s[j])) ** 2)
    ten = expect(lambda i, j: (q[i] - q[j] - v[i][j]) ** 2)
    const = expect(lambda i, j: (s[i] - s[j]) ** 2) - expect(lambda i, j: v[i][j] ** 2)
    return float(_terms(nine - ten - const))


@claim(
    "nguyen2025.eq12.symbolic",
    "Nguyen 2025",
    ("eq. (11)", "eq. (12)"),
    "symbolically: P(h − 1)² + (1 − P)h² averaged with its mirror pair is (12) + ¼",
    draw=_size(1, 1),
    tolerance=0.5,
    why=EXACT,
    reference="sympy: the expanded difference of the two sides has no term left",
    tags=("symbolic",),
    instances=1,
)
def _(n: int) -> float:
    h, p = sp.symbols("h p")
    eleven = p * (h - 1) ** 2 + (1 - p) * h**2  # pair (y1, y2), corrected target 𝟙[y1 ≻ y2]
    mirror = (1 - p) * (-h - 1) ** 2 + p * h**2  # pair (y2, y1): h → −h, P → 1 − P
    twelve = p * (h - sp.Rational(1, 2)) ** 2 + (1 - p) * (-h - sp.Rational(1, 2)) ** 2
    return float(_terms((eleven + mirror) / 2 - twelve - sp.Rational(1, 4)))


@claim(
    "rafailov2024.sec41.symbolic",
    "Rafailov et al. 2024",
    ("unnumbered: sec. 4.1, Σ r = V*(s₀) + Σ β log π*/π_ref", "eq. (10)", "eq. (12)", "eq. (13)"),
    "symbolically, along a path of T steps with free r, log π_ref, V (V_T = 0): Σ r = V₀ + "
    "Σ β log π/π_ref, and (12) = V₀ + Σ_{t≤K} β log π (eq. (13) with +V₀)",
    draw=_size(2, 5),
    tolerance=0.5,
    why=EXACT,
    reference="sympy: the expanded difference of the two sides has no term left",
    tags=("symbolic",),
    instances=3,
)
def _(t: int) -> float:
    beta = sp.Symbol("beta", positive=True)
    r, lr = sp.symbols(f"r0:{t}"), sp.symbols(f"l0:{t}")
    v = [*sp.symbols(f"V0:{t}"), 0]  # V*(s_T) = 0
    q = [r[i] + beta * lr[i] + v[i + 1] for i in range(t)]  # eq. (7)
    log_pi = [(q[i] - v[i]) / beta for i in range(t)]  # eq. (5)
    left = _terms(sum(r) - v[0] - sum(beta * (log_pi[i] - lr[i]) for i in range(t)))
    worst = left
    for k in range(t):
        twelve = sum(r[i] + beta * lr[i] for i in range(k + 1)) + v[k + 1]
        thirteen = v[0] + sum(beta * log_pi[i] for i in range(k + 1))
        worst = max(worst, _terms(twelve - thirteen))
    return float(worst)
