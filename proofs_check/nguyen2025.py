"""Claims of Nguyen 2025, *LLM Alignment Fine-tuning via Human Preference: DPO vs IPO*.

Notation as in the text: h = β log π/π_ref(y₁) − β log π/π_ref(y₂) (β inside), v = P(y₁ ≻ y₂),
s†(y) = E_{y'∼μ}[v(y, y')] (eq. (7)).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from scipy import optimize, special

import toybandit as tb

from . import registry
from .registry import Miss, Outcome, maxabs, miss
from .worlds import World, bt_world, gibbs, kl, log_z, random_policy, world

SRC = "Nguyen 2025"
ERRATUM, NEEDS = Outcome.ERRATUM, Outcome.NEEDS_ASSUMPTION
claim = partial(registry.claim, tags=("bandit",))
SUMS = "explicit double (or triple) sums over pairs written here"

SQUARES = (
    "μ⊗μ-weighted sums of squares of h, |h| up to ~1.5·10² (terms up to ~2·10⁴): rounding "
    "~2·10⁴ · 2⁻⁵³ ≈ 2e-12 per operation"
)
SCIPY = "scipy's optimiser stops at gradient 1e-10, leaving ~1e-6 in the maximiser"
NEWTON = (
    "damped Newton, full steps once Armijo cannot resolve the decrease, stops when no logit moves "
    "by 1e-12: the fitted π is at rounding (~1e-15)"
)
TRIPLE = "triple sums of ≤ 216 terms q·v with |q| up to ~10²: rounding ≤ 216 · 10² · 2⁻⁵³ ≈ 2.4e-12"
GAP = "a failure must exceed rounding (1e-12) by orders of magnitude to count"


def _objective1(policy, w: World):
    """E_π[s] − β KL(π ‖ π_ref), eq. (1) for one prompt, written here."""
    return (policy * w.reward).sum() - w.beta * kl(policy, w.ref)


def _h(policy, ref, beta):
    q = beta * (policy.log() - ref.log())
    return q[:, None] - q[None, :]


def _expect2(a, b, values):
    """Σ_ij a_i b_j values_ij."""
    return (a[:, None] * b[None, :] * values).sum()


# -- eq. (1) and the Gibbs form of sec. 2.2 --------------------------------------------------------


def _scipy_argmax1(w: World) -> np.ndarray:
    r, p, beta = w.reward.numpy(), w.ref.numpy(), w.beta

    def negative(z):
        pi = special.softmax(z)
        return -(pi @ r - beta * np.sum(special.rel_entr(pi, p)))

    res = optimize.minimize(negative, np.log(p), method="BFGS", options={"gtol": 1e-10})
    return special.softmax(res.x)


@claim(
    "nguyen2025.eq1.optimum",
    SRC,
    ("eq. (1)",),
    "π* = π_ref e^{s/β}/Z attains β log Z in (1), and neither scipy nor random perturbations beat it",
    draw=bt_world,
    tolerance=1e-10,
    reference="scipy BFGS on (1); β log Σ π_ref e^{s/β} written here (worlds.log_z)",
    why="values of size ≤ 10² in float64 (rounding ~1e-14); an optimiser's 1e-6 error in the "
    "maximiser costs only ~1e-12 in value, so the comparison is made on values",
)
def _(w: World) -> float:
    star = tb.optimal_policy(w.reward, w.ref, w.beta)
    best = _objective1(star, w)
    gap = max(
        maxabs("value of π*", best, log_z(w.reward, w.ref, w.beta)),
        maxabs(
            "log_partition",
            tb.log_partition(w.reward, w.ref, w.beta),
            log_z(w.reward, w.ref, w.beta),
        ),
    )
    others = [torch.as_tensor(_scipy_argmax1(w))]
    for scale in (1e-3, 1e-1, 1.0):
        noise = scale * torch.randn(len(star), generator=w.g, dtype=torch.float64)
        others.append(torch.softmax(star.log() + noise, -1))
    beaten = max(0.0, max((_objective1(p, w) - best).item() for p in others))
    return max(gap, beaten)


@claim(
    "nguyen2025.sec22.gibbs-printed",
    SRC,
    ("unnumbered: sec. 2.2, objective = E[KL(π‖π*)] + const",),
    "as printed: E_π[s] − βKL(π‖π_ref) − KL(π‖π*) is the same for every π; between two policies "
    "it differs by exactly −(1 + β)(KL(π_a‖π*) − KL(π_b‖π*))",
    draw=bt_world,
    tolerance=1e-9,
    why=GAP,
    expected=ERRATUM,
    corrected="nguyen2025.sec22.gibbs",
)
def _(w: World) -> Miss:
    star = tb.optimal_policy(w.reward, w.ref, w.beta)
    a, b = random_policy(w.g, len(w.ref)), random_policy(w.g, len(w.ref))
    const = [_objective1(p, w) - tb.kl_divergence(p, star) for p in (a, b)]
    truth_star = gibbs(w.reward, w.ref, w.beta)
    predicted = -(1 + w.beta) * (kl(a, truth_star) - kl(b, truth_star))
    corrected = max(_gibbs_gap(w, p) for p in (a, b))
    return miss(const[0] - const[1], 0.0, predicted, corrected)


def _gibbs_gap(w: World, policy) -> float:
    """|(1) − (−β KL(π‖π*) + β log Z)| with π* and Z from toybandit, (1), KL and Z written here."""
    star = tb.optimal_policy(w.reward, w.ref, w.beta)
    rhs = -w.beta * tb.kl_divergence(policy, star) + tb.log_partition(w.reward, w.ref, w.beta)
    reference = -w.beta * kl(policy, gibbs(w.reward, w.ref, w.beta)) + log_z(
        w.reward, w.ref, w.beta
    )
    return max(
        maxabs("(1)", _objective1(policy, w), rhs), maxabs("(1) written here", rhs, reference)
    )


@claim(
    "nguyen2025.sec22.gibbs",
    SRC,
    ("unnumbered: sec. 2.2, objective = E[KL(π‖π*)] + const",),
    "corrected: E_π[s] − βKL(π‖π_ref) = −β KL(π‖π*) + β log Z (the factor −β is missing)",
    draw=bt_world,
    tolerance=1e-12,
    why="(1), β KL and β log Z over ≤ 6 responses, rewards and β log-ratios ≤ 10²: rounding "
    "~10² · 2⁻⁵³ ≈ 1e-14 per operation",
    reference="(1), KL(π‖π*) and β log Z written here (worlds.kl, worlds.gibbs, worlds.log_z)",
)
def _(w: World) -> float:
    return _gibbs_gap(w, random_policy(w.g, len(w.ref)))


# -- sec. 2.1: the Bradley–Terry specification (2) and the logistic MLE (3) -------------------------


@claim(
    "nguyen2025.eq2.bradley-terry",
    SRC,
    ("eq. (2)", "unnumbered: sec. 2.1, Bradley–Terry model"),
    "e^{s₁}/(e^{s₁} + e^{s₂}) = σ(s₁ − s₂), and P determines s up to a constant: logit P_i0 = s_i − s_0",
    draw=bt_world,
    tolerance=1e-9,
    why="logit(σ(x)) for |x| ≤ 10 amplifies each ulp of σ by up to e^{10}: ~e^{10} · 2⁻⁵³ ≈ "
    "2.4e-12 per ulp",
    reference="the printed ratio of exponentials written here; logit of P against s_i − s_0",
)
def _(w: World) -> float:
    s = w.reward
    ratio = s.exp()[:, None] / (s.exp()[:, None] + s.exp()[None, :])
    recovered = torch.logit(w.pref[:, 0])
    return max(maxabs("P", w.pref, ratio), maxabs("logit P", recovered, s - s[0]))


def _logistic_fit(w: World, mu) -> torch.Tensor:
    """Minimise eq. (3)'s population objective over free scores with scipy, started at 0."""

    def f(z):
        score = torch.as_tensor(z, dtype=torch.float64).requires_grad_(True)
        value = tb.logistic_objective(score, w.pref, mu)
        value.backward()
        assert score.grad is not None  # set by backward
        return value.item(), score.grad.numpy()

    res = optimize.minimize(f, np.zeros(len(mu)), jac=True, method="BFGS", options={"gtol": 1e-11})
    return torch.as_tensor(res.x)


@claim(
    "nguyen2025.eq3.mle",
    SRC,
    ("eq. (3)",),
    "the logistic MLE over pairs from a full-support μ recovers s up to a constant",
    draw=bt_world,
    tolerance=1e-5,
    why=SCIPY,
    reference="scipy BFGS on the population objective (3); the true scores s",
)
def _(w: World) -> float:
    fitted = _logistic_fit(w, w.mu)
    return maxabs("fitted s", fitted - fitted[0], w.reward - w.reward[0])


@claim(
    "nguyen2025.eq3.no-full-support",
    SRC,
    ("eq. (3)",),
    "drop full support (μ(y) = 0 for one y): s(y) is no longer identified by (3)",
    draw=bt_world,
    tolerance=1e-5,
    why=SCIPY,
    expected=NEEDS,
)
def _(w: World) -> float:
    mu = w.mu.clone()
    mu[-1] = 0.0
    mu = mu / mu.sum()
    fitted = _logistic_fit(w, mu)
    return ((fitted - fitted[0]) - (w.reward - w.reward[0])).abs().max().item()


# -- sec. 2.2: eqs. (4)–(6) --------------------------------------------------------------------------


@claim(
    "nguyen2025.eq4.reparameterisation",
    SRC,
    ("eq. (4)", "unnumbered: sec. 2.2, s = β log π*/π_ref + β log Z (Z cancels)"),
    "s = β log π*/π_ref + β log Z, so s(y₁) − s(y₂) = h_{π*}(y₁, y₂): Z(x) cancels",
    draw=bt_world,
    tolerance=1e-9,
    why="log of probabilities down to e^{-100/β}: relative rounding 1e-16 on values ≤ 1e3 and more",
    reference="log π* = log π_ref + s/β − log Σ π_ref e^{s/β} and β log Z written here",
)
def _(w: World) -> float:
    log_star = tb.log_optimal_policy(w.reward, w.ref, w.beta)
    lz = log_z(w.reward, w.ref, w.beta)
    anchor = max(
        maxabs("log π*", log_star, w.ref.log() + (w.reward - lz) / w.beta),
        maxabs("β log Z", tb.log_partition(w.reward, w.ref, w.beta), lz),
    )
    q = w.beta * (log_star - w.ref.log())
    absolute = maxabs("s from π*", q + tb.log_partition(w.reward, w.ref, w.beta), w.reward)
    diffs = maxabs("h_π*", q[:, None] - q[None, :], w.reward[:, None] - w.reward[None, :])
    return max(anchor, absolute, diffs)


@claim(
    "nguyen2025.eq5.condition",
    SRC,
    ("eq. (5)",),
    "the policy meeting (5) in least squares over all pairs of a full-support μ is π*",
    draw=bt_world,
    tolerance=1e-10,
    why="a well-conditioned least-squares solve in float64: rounding ~1e-14",
    reference="numpy least squares on (5) over all pairs, then softmax",
)
def _(w: World) -> float:
    n = len(w.ref)
    i, j = np.triu_indices(n, 1)
    design = np.zeros((len(i), n))
    design[np.arange(len(i)), i] = 1.0
    design[np.arange(len(i)), j] = -1.0
    weight = np.sqrt(w.mu.numpy()[i] * w.mu.numpy()[j])[:, None]
    target = (w.reward.numpy()[i] - w.reward.numpy()[j]) / w.beta
    q = np.linalg.lstsq(weight * design, weight[:, 0] * target, rcond=None)[0]
    policy = special.softmax(np.log(w.ref.numpy()) + q)
    return maxabs("π*", tb.optimal_policy(w.reward, w.ref, w.beta), torch.as_tensor(policy))


@claim(
    "nguyen2025.eq6.dpo",
    SRC,
    ("eq. (6)",),
    "the DPO population minimiser under Bradley–Terry with full-support μ is the optimum of (1)",
    draw=bt_world,
    tolerance=1e-12,
    why=NEWTON,
    reference="the closed form π_ref e^{s/β}/Z written here (worlds.gibbs)",
)
def _(w: World) -> float:
    pairs = tb.population_pairs(w.pref, w.mu)
    fitted = tb.fit_policy(pairs.chosen, pairs.rejected, w.ref, beta=w.beta, weights=pairs.weights)
    return maxabs("fitted π", fitted, gibbs(w.reward, w.ref, w.beta))


def _without_last(w: World):
    """Pairs from μ with μ(y_last) = 0 (the pairs touching y_last weigh 0)."""
    mu = w.mu.clone()
    mu[-1] = 0.0
    pairs = tb.population_pairs(w.pref, mu / mu.sum())
    assert pairs.weights is not None  # population pairs carry weights
    return pairs, pairs.weights > 0


@claim(
    "nguyen2025.eq6.no-full-support",
    SRC,
    ("eq. (6)",),
    "drop full support (μ(y) = 0 for one y): the DPO minimiser is not the optimum of (1); y keeps "
    "its π_ref odds",
    draw=bt_world,
    tolerance=1e-6,
    why=NEWTON,
    expected=NEEDS,
)
def _(w: World) -> float:
    pairs, seen = _without_last(w)
    assert pairs.weights is not None  # population pairs carry weights
    fitted = tb.fit_policy(
        pairs.chosen[seen], pairs.rejected[seen], w.ref, beta=w.beta, weights=pairs.weights[seen]
    )
    return maxabs("fitted π", fitted, gibbs(w.reward, w.ref, w.beta))


@claim(
    "nguyen2025.eq7.no-full-support",
    SRC,
    ("eq. (7)", "eq. (9)", "eq. (10)", "eq. (11)", "eq. (12)"),
    "drop full support (μ(y) = 0 for one y): the IPO minimiser of (9)–(12) is not the optimum of "
    "(1) for s†; y keeps its π_ref odds",
    draw=world,
    tolerance=1e-6,
    why=NEWTON,
    expected=NEEDS,
)
def _(w: World) -> float:
    pairs, seen = _without_last(w)
    assert pairs.weights is not None  # population pairs carry weights
    fitted = tb.fit_policy(
        pairs.chosen[seen], pairs.rejected[seen], w.ref, "ipo", tau=w.beta,
        weights=pairs.weights[seen],
    )  # fmt: skip
    mu = w.mu.clone()
    mu[-1] = 0.0
    return maxabs("fitted π", fitted, gibbs(w.pref @ (mu / mu.sum()), w.ref, w.beta))


@claim(
    "nguyen2025.sec23.dpo-overfits",
    SRC,
    ("unnumbered: sec. 2.3, DPO drifts from π_ref regardless of β",),
    "with deterministic preferences DPO puts all mass on the winner for β = 0.1 and β = 10; "
    "IPO stays at its interior ΨPO optimum",
    draw=world,
    tolerance=1e-6,
    why="500 damped-Newton steps raise βh by ~1 each: the loser mass is e^{-hundreds}; IPO: "
    + NEWTON,
    reference="the closed forms: all mass on the winner (DPO); π_ref e^{s†/τ}/Z (IPO, worlds.gibbs)",
    instances=6,
)
def _(w: World) -> float:
    pref = tb.random_preference(len(w.ref), generator=w.g, kind="deterministic")
    winner = int(pref.sum(-1).argmax())
    pairs = tb.population_pairs(pref, w.mu)
    worst = 0.0
    for beta in (0.1, 10.0):
        dpo = tb.fit_policy(
            pairs.chosen, pairs.rejected, w.ref, beta=beta, weights=pairs.weights, steps=500
        )
        worst = max(worst, 1 - dpo[winner].item())
    ipo = tb.fit_policy(
        pairs.chosen, pairs.rejected, w.ref, "ipo", tau=w.beta, weights=pairs.weights
    )
    return max(worst, maxabs("IPO π", ipo, gibbs(pref @ w.mu, w.ref, w.beta)))


# -- sec. 3: eqs. (7)–(12) --------------------------------------------------------------------------


@claim(
    "nguyen2025.eq7.score",
    SRC,
    ("eq. (7)",),
    "IPO's population minimiser is the optimum of (1) for the score s†(y) = E_{y'∼μ}[v(y, y')]",
    draw=world,
    tolerance=1e-12,
    why=NEWTON,
    reference="the closed form π_ref e^{s†/τ}/Z with s† = Pμ written here (worlds.gibbs)",
)
def _(w: World) -> float:
    pairs = tb.population_pairs(w.pref, w.mu)
    fitted = tb.fit_policy(
        pairs.chosen, pairs.rejected, w.ref, "ipo", tau=w.beta, weights=pairs.weights
    )
    return maxabs("fitted π", fitted, gibbs(w.pref @ w.mu, w.ref, w.beta))


@claim(
    "nguyen2025.eq8.preference",
    SRC,
    ("eq. (8a)", "eq. (8b)", "eq. (8c)"),
    "random preferences of every kind satisfy (8a–c), and then E_{y,y'∼μ}[v(y, y')] = ½ (used in (15))",
    draw=world,
    tolerance=1e-12,
    why="entries of P in [0, 1] and μ-weighted sums of ≤ 36 of them (total ½): rounding "
    "~36 · 2⁻⁵³ ≈ 4e-15 at most",
    reference="(8a–c) checked entrywise here and the double sum Σ μ_i μ_j v_ij",
)
def _(w: World) -> float:
    worst = maxabs("E[v]", w.mu @ w.pref @ w.mu, 0.5)
    for kind in tb.PREFERENCE_KINDS:
        pref = tb.random_preference(len(w.mu), generator=w.g, kind=kind)
        worst = max(
            worst,
            maxabs(f"{kind}: (8a) below 0", pref.clamp(max=0.0), 0.0),
            maxabs(f"{kind}: (8a) above 1", pref.clamp(min=1.0), 1.0),
            maxabs(f"{kind}: (8b)", pref.diagonal(), 0.5),
            maxabs(f"{kind}: (8c)", pref, 1 - pref.T),
            maxabs(f"{kind}: E[v]", w.mu @ pref @ w.mu, 0.5),
        )
    return worst


@claim(
    "nguyen2025.eq8.different-laws",
    SRC,
    ("eq. (8b)", "eq. (8c)", "eq. (15)"),
    "drop i.i.d.: with y ∼ μ and y' ∼ ν ≠ μ, E[v(y, y')] is not ½",
    draw=world,
    tolerance=1e-9,
    why=GAP,
    expected=NEEDS,
)
def _(w: World) -> float:
    return abs(w.mu @ w.pref @ w.nu - 0.5).item()


def _policies(w: World):
    """Two random policies drawn from the instance's generator."""
    return random_policy(w.g, len(w.ref)), random_policy(w.g, len(w.ref))


def _lemma_gap(w: World, pairs_from) -> float:
    """[(9) − (10)](π₁) − [(9) − (10)](π₂): zero iff (9) and (10) differ by a constant."""
    gaps = []
    for policy in _policies(w):
        nine = tb.ipo_target_objective(policy, w.pref, w.mu, w.ref, w.beta, pairs_from=pairs_from)
        h = _h(policy, w.ref, w.beta)
        ten = _expect2(pairs_from, pairs_from, (h - w.pref) ** 2)
        gaps.append(nine - ten)
    return abs(gaps[0] - gaps[1]).item()


@claim(
    "nguyen2025.lemma31.equivalence",
    SRC,
    ("Lemma 3.1", "eq. (9)", "eq. (10)"),
    "(9) − (10) does not depend on π (= E_μ[g²] − E_μ[v²]), so (9) and (10) share their minimisers",
    draw=world,
    tolerance=1e-10,
    why=SQUARES,
    reference=SUMS,
)
def _(w: World) -> float:
    policy = _policies(w)[0]
    nine = tb.ipo_target_objective(policy, w.pref, w.mu, w.ref, w.beta)
    ten = tb.ipo_preference_objective(policy, w.pref, w.mu, w.ref, w.beta)
    score = w.pref @ w.mu
    g2 = _expect2(w.mu, w.mu, (score[:, None] - score[None, :]) ** 2)
    v2 = _expect2(w.mu, w.mu, w.pref**2)
    h = _h(policy, w.ref, w.beta)
    return max(
        _lemma_gap(w, w.mu),
        maxabs("(9) − (10)", nine - ten, g2 - v2),
        maxabs("(10)", ten, _expect2(w.mu, w.mu, (h - w.pref) ** 2)),
    )


@claim(
    "nguyen2025.lemma31.pairs-not-from-mu",
    SRC,
    ("Lemma 3.1", "eq. (9)", "eq. (10)"),
    "drop 'pairs drawn from the μ inside s†': with pairs from ν ≠ μ, (9) − (10) depends on π",
    draw=world,
    tolerance=1e-9,
    why=GAP,
    expected=NEEDS,
)
def _(w: World) -> float:
    return _lemma_gap(w, w.nu)


@claim(
    "nguyen2025.eq11.printed",
    SRC,
    ("eq. (11)", "unnumbered: sec. 3.2, v ≈ c − 1"),
    "as printed, target c − 1: (11) = (10) + E_μ[v(1 − v)]; it misses by exactly "
    "E_μ[(2v − 1)(2h − 1)], which depends on π",
    draw=world,
    tolerance=1e-9,
    why=GAP,
    expected=ERRATUM,
    corrected="nguyen2025.eq11.corrected",
)
def _(w: World) -> Miss:
    policies = _policies(w)
    printed = torch.stack(
        [tb.ipo_label_objective(p, w.pref, w.mu, w.ref, w.beta, printed=True) for p in policies]
    )
    truth = torch.stack([_eleven(w, p) for p in policies])
    predicted = torch.stack(
        [_expect2(w.mu, w.mu, (2 * w.pref - 1) * (2 * _h(p, w.ref, w.beta) - 1)) for p in policies]
    )
    return miss(printed, truth, predicted, _eleven_gap(w, policies[0]))


def _eleven(w: World, policy):
    """(10) + E_μ[v(1 − v)], written here: the expected (11) with target 𝟙[y₁ ≻ y₂]."""
    h = _h(policy, w.ref, w.beta)
    return _expect2(w.mu, w.mu, (h - w.pref) ** 2 + w.pref * (1 - w.pref))


def _eleven_gap(w: World, policy) -> float:
    eleven = tb.ipo_label_objective(policy, w.pref, w.mu, w.ref, w.beta)
    h = _h(policy, w.ref, w.beta)
    direct = _expect2(w.mu, w.mu, w.pref * (h - 1) ** 2 + (1 - w.pref) * h**2)
    return max(
        maxabs("(11)", eleven, _eleven(w, policy)),
        maxabs("(11) by labels", direct, _eleven(w, policy)),
    )


@claim(
    "nguyen2025.eq11.corrected",
    SRC,
    ("eq. (11)",),
    "corrected, target 2 − c = 𝟙[y₁ ≻ y₂]: (11) = (10) + E_μ[v(1 − v)]",
    draw=world,
    tolerance=1e-10,
    why=SQUARES,
    reference=SUMS + ": E over labels c of (h − 𝟙[c = 1])²",
)
def _(w: World) -> float:
    return _eleven_gap(w, _policies(w)[0])


@claim(
    "nguyen2025.eq12.symmetrised",
    SRC,
    ("eq. (12)",),
    "(11) corrected = (12) + ¼: (h − 1)² and h² of a pair and its mirror average to (h − ½)² + ¼",
    draw=world,
    tolerance=1e-10,
    why=SQUARES,
    reference=SUMS + ": (12) as E over ordered winner/loser pairs of (h − ½)²",
)
def _(w: World) -> float:
    policy = _policies(w)[0]
    twelve = tb.ipo_objective(policy, w.pref, w.mu, w.ref, w.beta)
    h = _h(policy, w.ref, w.beta)
    # (y₁, y₂) and (y₂, y₁) both give the ordered pair (winner i, loser j) with probability v_ij
    direct = 2 * _expect2(w.mu, w.mu, w.pref * (h - 0.5) ** 2)
    return max(
        maxabs("(12)", twelve, direct),
        maxabs("(11) − (12)", _eleven(w, policy) - direct, 0.25),
    )


# -- the proof of Lemma 3.1: eqs. (13)–(15) ------------------------------------------------------------


def _triple(w: World, third):
    """(*), (**) of the proof by explicit triple sums over y₁, y₂ ∼ μ and y ∼ ``third``."""
    policy = _policies(w)[0]
    q = w.beta * (policy.log() - w.ref.log())
    mu, v = w.mu, w.pref
    weight = mu[:, None, None] * mu[None, :, None] * third[None, None, :]  # [y1, y2, y]
    star = (weight * (q[:, None, None] * v[:, None, :] + q[None, :, None] * v[None, :, :])).sum()
    stars = (weight * (q[:, None, None] * v[None, :, :] + q[None, :, None] * v[:, None, :])).sum()
    return q, star, stars


@claim(
    "nguyen2025.eq13.expansion",
    SRC,
    ("eq. (13)",),
    "(9) = E[h²] − 2E[h·g] + E[g²] with g = E_{y∼μ}[v(y₁, y) − v(y₂, y)]",
    draw=world,
    tolerance=1e-11,
    why="μ⊗μ-weighted means of h², h·g and g², |h| up to ~1.5·10² (terms up to ~2·10⁴), that "
    "cancel to (9): each of the four means rounds to ~2·10⁴ · 2⁻⁵³ ≈ 2e-12",
    reference=SUMS,
)
def _(w: World) -> float:
    policy = _policies(w)[0]
    h = _h(policy, w.ref, w.beta)
    score = w.pref @ w.mu
    g = score[:, None] - score[None, :]
    rhs = _expect2(w.mu, w.mu, h**2 - 2 * h * g + g**2)
    nine = _expect2(w.mu, w.mu, (h - g) ** 2)
    return max(
        maxabs("(9)", tb.ipo_target_objective(policy, w.pref, w.mu, w.ref, w.beta), nine),
        maxabs("(13)", nine, rhs),
    )


@claim(
    "nguyen2025.eq14.star",
    SRC,
    ("eq. (14)",),
    "(*) = 2 E_{y₁,y₂∼μ}[q(y₁) v(y₁, y₂)] when y₁, y₂, y are i.i.d.",
    draw=world,
    tolerance=1e-11,
    why=TRIPLE,
    reference=SUMS,
)
def _(w: World) -> float:
    q, star, _ = _triple(w, w.mu)
    return abs(star - 2 * _expect2(w.mu, w.mu, q[:, None] * w.pref)).item()


@claim(
    "nguyen2025.eq15.star-star",
    SRC,
    ("eq. (15)",),
    "(**) = E_{y₁∼μ}[q(y₁)] when y₁, y₂, y are i.i.d. (uses E[v(y₂, y)] = ½)",
    draw=world,
    tolerance=1e-11,
    why=TRIPLE,
    reference=SUMS,
)
def _(w: World) -> float:
    q, _, stars = _triple(w, w.mu)
    return abs(stars - (w.mu * q).sum()).item()


@claim(
    "nguyen2025.eq14-15.not-iid",
    SRC,
    ("eq. (14)", "eq. (15)"),
    "drop i.i.d. (y ∼ ν ≠ μ): (*) − (**) is no longer E[(q(y₁) − q(y₂)) v(y₁, y₂)]",
    draw=world,
    tolerance=1e-9,
    why=GAP,
    expected=NEEDS,
)
def _(w: World) -> float:
    q, star, stars = _triple(w, w.nu)
    return abs(star - stars - _expect2(w.mu, w.mu, (q[:, None] - q[None, :]) * w.pref)).item()
