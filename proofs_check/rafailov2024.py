"""Claims of Rafailov, Hejna, Park, Finn (2024), *From r to Q\\*: Your Language Model is Secretly a
Q-Function*, on exact token trees (tokenmdp) checked against enumeration over complete sequences."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import torch
from scipy import optimize, special

import tokenmdp as tm
import toybandit as tb

from . import registry
from .reference import children_logsumexp, enumerated_policy, sequence_sums, soft_values
from .registry import Miss, Outcome, maxabs, miss
from .worlds import TreeWorld, bt_world, deep_tree_world, gibbs, kl, log_z, tree_world

SRC = "Rafailov et al. 2024"
ERRATUM, NEEDS, IDENTITY = Outcome.ERRATUM, Outcome.NEEDS_ASSUMPTION, Outcome.IDENTITY
claim = partial(registry.claim, tags=("tree",))

ENUM = (
    "Q*, V*, π* enumerated over complete sequences (reference.soft_values: no recursion, no "
    "tokenmdp kernel)"
)

PATH = (
    "sums of ≤ 4 edges of size ≤ 10², logsumexp over ≤ 256 sequences: rounding ≤ 1e-12; 1e-9 "
    "leaves 3 orders of margin"
)
GAP = "a failure must exceed rounding (1e-12) by orders of magnitude to count"
NEWTON = (
    "damped Newton over sequences stops when no logit moves by 1e-12; a sequence met only in "
    "pairs of weight ~1e-12 is pinned to ~1e-9 in its log-ratio (a scale, not a measurement); "
    "1e-7 covers it"
)


def _impossible_world(g, device):
    return tree_world(g, device, impossible=True)


def _maxabs(a, b, mask=None, name: str = "value") -> float:
    return maxabs(name, a, b, mask)


def _solve(w: TreeWorld):
    """soft_solve, and how far it is from enumeration (the anchor of every tree identity)."""
    sol = tm.soft_solve(w.tree, w.reward, w.beta)
    q, v, log_pi = enumerated_policy(w.tree, w.reward, w.beta)
    gap = max(
        maxabs("Q*", sol.q[1:], q[1:]),
        maxabs("V*", sol.v, v),
        maxabs("log π*", sol.log_policy[1:], log_pi[1:]),
    )
    return sol, gap


def _measured(name: str, observed: float, predicted: float, tol: float) -> float:
    """``observed`` when it equals ``predicted`` to ``tol``; raises otherwise (a needs-assumption
    claim whose failure is not the predicted one is not ok)."""
    if not math.isfinite(observed) or abs(observed - predicted) > tol:
        raise ValueError(f"{name}: observed {observed:.6g}, predicted {predicted:.6g}")
    return observed


def _cpu(w: TreeWorld) -> TreeWorld:
    return w._replace(tree=w.tree.to("cpu"), reward=w.reward.cpu())


def _leaf_reach(w: TreeWorld):
    return torch.isfinite(sequence_sums(w.tree, w.tree.log_ref))


# -- sec. 3: eqs. (1)–(4) ---------------------------------------------------------------------------


@claim(
    "rafailov2024.eq1.token-bradley-terry",
    SRC,
    ("eq. (1)",),
    "p*(τ_w ≻ τ_l) = e^{Σr(τ_w)}/(e^{Σr(τ_w)} + e^{Σr(τ_l)}) is Bradley–Terry on summed rewards",
    draw=tree_world,
    tolerance=1e-12,
    why="two exponentials of sums ≤ 12 in float64",
    reference="the printed ratio of exponentials of path sums gathered here (reference.sequence_sums)",
)
def _(w: TreeWorld) -> float:
    total = sequence_sums(w.tree, w.reward)
    e = total.exp()
    printed = e[:, None] / (e[:, None] + e[None, :])
    return _maxabs(tm.trajectory_preference(w.tree, w.reward), printed, name="p*")


def _objective2(w: TreeWorld, leaf_law: torch.Tensor) -> torch.Tensor:
    """Eq. (2) for a sequence law p: E_p[Σ_t (r + β log π_ref)] + β H(p), by enumeration."""
    score = sequence_sums(w.tree, w.reward + w.beta * w.tree.log_ref)
    seen = leaf_law > 0
    return (leaf_law[seen] * (score[seen] - w.beta * leaf_law[seen].log())).sum()


@claim(
    "rafailov2024.eq2.objective",
    SRC,
    ("eq. (2)", "eq. (5)", "eq. (6)"),
    "the soft optimum π* maximises (2), E[Σ(r + β log π_ref)] + βH(π), with value V*(s₀); "
    "scipy over sequence laws does not beat it",
    draw=tree_world,
    tolerance=1e-9,
    why="values ≤ 10² in float64; an optimiser's error in the law costs only its square in value",
    reference="scipy BFGS over sequence laws (its gradient written in the claim), objective (2) by "
    "enumeration over complete sequences",
    instances=10,
)
def _(w: TreeWorld) -> float:
    w = _cpu(w)  # scipy below
    sol = tm.soft_solve(w.tree, w.reward, w.beta)
    law = tm.path_sum(w.tree, sol.log_policy).exp()
    maxabs("log π*", sol.log_policy, sol.log_policy)  # NaN/+inf in the policy fails here
    best = _objective2(w, law)
    gap = maxabs("V*(s₀) vs (2)", sol.v[0], best)
    reach = _leaf_reach(w)
    score = sequence_sums(w.tree, w.reward + w.beta * w.tree.log_ref)[reach].numpy()

    def negative(z):
        """−(E_p[score] + βH(p)) at p = softmax(z), and its gradient −p ⊙ (g − E_p[g]) with
        g = score − β(log p + 1) (written here, not taken from the code under test)."""
        log_p = special.log_softmax(z)
        p = np.exp(log_p)
        g = score - w.beta * (log_p + 1)
        return -(p @ score + w.beta * special.entr(p).sum()), -p * (g - p @ g)

    res = optimize.minimize(
        negative, np.zeros(len(score)), jac=True, method="BFGS", options={"gtol": 1e-10}
    )
    found = torch.zeros_like(law)
    found[reach] = torch.as_tensor(special.softmax(res.x))
    return max(gap, max(0.0, (_objective2(w, found) - best).item()))


@claim(
    "rafailov2024.eq3.ppo-reward",
    SRC,
    ("eq. (3)",),
    "max-ent RL (entropy bonus β, no KL) on the per-token reward of (3) — β log π_ref at every "
    "token plus r(x, y) at EOS — has the KL-regularised optimum of r(x, y), which soft_solve's "
    "sequence law is",
    draw=tree_world,
    tolerance=1e-12,
    why="two softmaxes over ≤ 256 sequences of path sums ≤ 10²: rounding ~1e-14",
    reference="two closed forms over enumerated complete sequences: softmax(Σ_t r_t/β) for max-ent "
    "RL, π_ref(y) e^{r(x,y)/β}/Z for the KL-regularised bandit",
)
def _(w: TreeWorld) -> float:
    terminal_reward = sequence_sums(w.tree, w.reward)  # r(x, y), paid once at the last token
    log_ref_seq = sequence_sums(w.tree, w.tree.log_ref)
    per_token = terminal_reward + w.beta * log_ref_seq  # Σ_t r_t of (3)
    reach = torch.isfinite(log_ref_seq)
    maxent = torch.softmax(per_token[reach] / w.beta, 0)  # entropy bonus only: uniform measure
    bandit = gibbs(terminal_reward[reach], log_ref_seq[reach].exp(), w.beta)
    law = tm.path_sum(w.tree, tm.soft_solve(w.tree, w.reward, w.beta).log_policy).exp()[reach]
    return max(_maxabs(maxent, bandit, name="max-ent law"), _maxabs(law, bandit, name="π*(y)"))


def _sec33(w, printed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(π_ref e^{r/β}/Z or, printed, π_ref e^{r}/Z; the reward from π* by the corrected or the
    printed inverse), from π* = tb.optimal_policy."""
    star = tb.optimal_policy(w.reward, w.ref, w.beta)
    exponent = w.reward if printed else w.reward / w.beta
    gibbs_ = w.ref * exponent.exp()
    lz = log_z(w.reward, w.ref, w.beta) / w.beta  # log Z
    back = w.beta * (star.log() - w.ref.log())
    reward = back - lz.exp() if printed else back + w.beta * lz
    return gibbs_ / gibbs_.sum(), reward


@claim(
    "rafailov2024.sec33.gibbs-printed",
    SRC,
    ("unnumbered: sec. 3.3, π* = π_ref e^{r}/Z",),
    "as printed: π*(y|x) = π_ref(y|x) e^{r(x,y)}/Z(x): it is the optimum at β = 1, off by "
    "exactly π*_{β=1} − π*_β (the 1/β in the exponent is missing)",
    draw=bt_world,
    tags=("bandit",),
    tolerance=1e-9,
    why=GAP,
    expected=ERRATUM,
    corrected="rafailov2024.sec33.corrected",
)
def _(w) -> Miss:
    printed, _ = _sec33(w, printed=True)
    truth = gibbs(w.reward, w.ref, w.beta)
    corrected = _maxabs(tb.optimal_policy(w.reward, w.ref, w.beta), truth, name="π*")
    return miss(printed, truth, gibbs(w.reward, w.ref, 1.0) - truth, corrected)


@claim(
    "rafailov2024.sec33.reward-printed",
    SRC,
    ("unnumbered: sec. 3.3, r = β log π*/π_ref − Z(x)",),
    "as printed: r(x, y) = β log π*/π_ref − Z(x): off by exactly −(Z + β log Z) for every y "
    "(should be + β log Z(x))",
    draw=bt_world,
    tags=("bandit",),
    tolerance=1e-9,
    why=GAP,
    expected=ERRATUM,
    corrected="rafailov2024.sec33.corrected",
)
def _(w) -> Miss:
    _, printed = _sec33(w, printed=True)
    _, corrected = _sec33(w, printed=False)
    lz = log_z(w.reward, w.ref, w.beta) / w.beta
    predicted = -(lz.exp() + w.beta * lz) * torch.ones_like(w.reward)
    return miss(printed, w.reward, predicted, _maxabs(corrected, w.reward, name="r"))


@claim(
    "rafailov2024.sec33.corrected",
    SRC,
    ("unnumbered: sec. 3.3, π* = π_ref e^{r}/Z", "unnumbered: sec. 3.3, r = β log π*/π_ref − Z(x)"),
    "corrected: π* = π_ref e^{r/β}/Z and r = β log π*/π_ref + β log Z(x), so Z cancels in (4)",
    draw=bt_world,
    tags=("bandit",),
    tolerance=1e-9,
    why="log of probabilities down to e^{-100}: relative rounding 1e-16 on values ≤ 10³",
    reference="π_ref e^{r/β}/Σ and β log Σ π_ref e^{r/β} written here (worlds.gibbs, worlds.log_z)",
)
def _(w) -> float:
    _, reward = _sec33(w, printed=False)
    star = tb.optimal_policy(w.reward, w.ref, w.beta)
    return max(
        _maxabs(star, gibbs(w.reward, w.ref, w.beta), name="π*"),
        _maxabs(reward, w.reward, name="r from π*"),
    )


@claim(
    "rafailov2024.eq4.dpo",
    SRC,
    ("eq. (4)",),
    "the bandit DPO loss over all pairs of a full-support μ, labelled by Bradley–Terry, is "
    "minimised by π* = π_ref e^{r/β}/Z",
    draw=bt_world,
    tags=("bandit",),
    tolerance=1e-12,
    why="the bandit Newton fit of nguyen2025.eq6.dpo: the fitted π is at rounding (~1e-15)",
    reference="the closed form π_ref e^{r/β}/Z written here (worlds.gibbs)",
)
def _(w) -> float:
    pairs = tb.population_pairs(w.pref, w.mu)
    fitted = tb.fit_policy(pairs.chosen, pairs.rejected, w.ref, beta=w.beta, weights=pairs.weights)
    return _maxabs(fitted, gibbs(w.reward, w.ref, w.beta), name="fitted π")


# -- sec. 4.1: eqs. (5)–(9), Lemma 1 -----------------------------------------------------------------


@claim(
    "rafailov2024.eq5-7.bellman",
    SRC,
    ("eq. (5)", "eq. (6)", "eq. (7)", "unnumbered: V*(s_T) = 0 at terminal states"),
    "Q*, V* enumerated over complete sequences satisfy (6) and (7) with V* = 0 at terminal "
    "states, and soft_solve returns them and π* = e^{(Q* − V*)/β} (5)",
    draw=_impossible_world,
    tolerance=1e-9,
    why=PATH,
    reference=ENUM + "; eq. (6) by the reference's scatter logsumexp",
)
def _(w: TreeWorld) -> float:
    q, v = soft_values(w.tree, w.reward, w.beta)
    sol = tm.soft_solve(w.tree, w.reward, w.beta)
    parent = w.tree.parent.clamp(min=0)
    worst = max(_maxabs(sol.q[1:], q[1:], name="Q*"), _maxabs(sol.v, v, name="V*"))
    log_pi = torch.where(q == -math.inf, -math.inf, (q - v[parent]) / w.beta)
    worst = max(worst, _maxabs(sol.log_policy[1:], log_pi[1:], name="log π* (5)"))
    # (6): V*(s) = β log Σ_a exp(Q*(s, a)/β), a logsumexp over each state's children by scatter
    internal = ~w.tree.terminal
    six = w.beta * children_logsumexp(w.tree, q / w.beta)
    worst = max(worst, _maxabs(six[internal], v[internal], name="(6)"))
    return worst + _maxabs(v[w.tree.terminal], 0.0, name="V* at terminal states")


def _inverse7(tree, q, beta):
    """Eq. (7) solved for r with V from (6) by the reference's scatter logsumexp (not tokenmdp's)."""
    v = torch.where(tree.terminal, 0.0, beta * children_logsumexp(tree, q / beta))
    r = q - beta * tree.log_ref - v
    r[0] = 0.0
    return r


@claim(
    "rafailov2024.lemma1.bijection",
    SRC,
    ("Lemma 1", "eq. (7)"),
    "r ↦ Q* is a bijection on a tree: soft_solve gives the enumerated Q*, reward_from_q inverts "
    "it, and any logits are the Q* of the reward it returns (every LM is a Q-function)",
    draw=tree_world,
    tolerance=1e-9,
    why=PATH,
    reference=ENUM + "; eq. (7) inverted by the reference's scatter logsumexp",
)
def _(w: TreeWorld) -> float:
    sol, gap = _solve(w)
    back = tm.reward_from_q(w.tree, sol.q, w.beta)
    logits = 4 * torch.randn(w.tree.n_nodes, generator=w.g, dtype=torch.float64).to(w.reward.device)
    inverse = tm.reward_from_q(w.tree, logits, w.beta)
    again, _, _ = enumerated_policy(w.tree, inverse, w.beta)
    return max(
        gap,
        _maxabs(back[1:], w.reward[1:], name="reward_from_q(Q*)"),
        _maxabs(inverse[1:], _inverse7(w.tree, logits, w.beta)[1:], name="reward_from_q(logits)"),
        _maxabs(again[1:], logits[1:], name="Q* of the returned reward"),
    )


def _injectivity_gap(next_state, log_ref, q, beta, shift) -> float:
    """|c| if Q and Q + c map to the same reward under eq. (7) solved for r, else 0.

    Tables are [S, A]: ``next_state`` (−1: the action ends the episode), log π_ref and Q, with
    Q = −inf for an action a state does not have; a state without actions is terminal (V = 0)."""

    def reward(q):
        has_actions = torch.isfinite(q).any(-1)
        v = torch.where(has_actions, beta * torch.logsumexp(q / beta, -1), 0.0)
        v_next = torch.where(next_state >= 0, v[next_state.clamp(min=0)], 0.0)
        return torch.where(torch.isfinite(q), q - beta * log_ref - v_next, 0.0)

    same = (reward(q) - reward(q + shift)).abs().max().item() < 1e-12
    return abs(shift) if same else 0.0


def _cycle(g, device):
    """A 3-state MDP with 2 actions per state whose transitions form cycles (no terminal state)."""
    next_state = torch.randint(0, 3, (3, 2), generator=g)
    log_ref = torch.log_softmax(torch.randn(3, 2, generator=g, dtype=torch.float64), -1)
    q = torch.randn(3, 2, generator=g, dtype=torch.float64)
    return next_state, log_ref, q, 0.1 + torch.rand((), generator=g).item()


@claim(
    "rafailov2024.lemma1.tree-injective",
    SRC,
    ("Lemma 1", "Appendix A"),
    "on a tree (V* = 0 at leaves) a constant shift c of Q changes the reward returned by "
    "reward_from_q by exactly c on the edges into terminal states and 0 elsewhere: r(Q) ≠ r(Q + c)",
    draw=tree_world,
    tolerance=1e-9,
    why=PATH,
    reference="the closed form c·𝟙[s_{t+1} terminal] (V shifts by c at every internal state)",
)
def _(w: TreeWorld) -> float:
    logits = 4 * torch.randn(w.tree.n_nodes, generator=w.g, dtype=torch.float64).to(w.reward.device)
    c = 0.5 + 2.5 * torch.rand((), generator=w.g, dtype=torch.float64).item()
    diff = tm.reward_from_q(w.tree, logits + c, w.beta) - tm.reward_from_q(w.tree, logits, w.beta)
    predicted = torch.where(w.tree.terminal, torch.tensor(c, dtype=torch.float64), 0.0)
    return _maxabs(diff[1:], predicted[1:], name="r(Q + c) − r(Q)")


@claim(
    "rafailov2024.lemma1.cyclic",
    SRC,
    ("Lemma 1", "Appendix A"),
    "drop the tree (a cyclic MDP, no discount, no terminal state): Q and Q + c give the same "
    "reward, so r ↦ Q* is not injective",
    draw=_cycle,
    tolerance=1e-12,
    why="the residual is |c| = 1 exactly when the two rewards agree to 1e-12, else 0",
    expected=NEEDS,
)
def _(inst) -> float:
    next_state, log_ref, q, beta = inst
    return _injectivity_gap(next_state, log_ref, q, beta, 1.0)


@claim(
    "rafailov2024.lemma1.impossible-edges",
    SRC,
    ("Lemma 1",),
    "drop the unstated 'mild assumption' π_ref > 0: changing r on an edge with π_ref = 0 leaves "
    "Q* (= −inf there) and every other Q* unchanged, so r ↦ Q* is not injective",
    draw=_impossible_world,
    tolerance=1e-9,
    why="the residual is the reward change (1) when the two enumerated Q* agree to 1e-12, else 0",
    expected=NEEDS,
)
def _(w: TreeWorld) -> float:
    impossible = (w.tree.log_ref == -math.inf).nonzero().squeeze(-1)
    if impossible.numel() == 0:
        return 0.0
    other = w.reward.clone()
    other[impossible[0]] += 1.0
    a, _ = soft_values(w.tree, w.reward, w.beta)
    b, _ = soft_values(w.tree, other, w.beta)
    return 1.0 if _maxabs(a, b, name="Q*") < 1e-12 else 0.0


def _appendix_a(w: TreeWorld):
    """(Q* − V*(s_{t+1}), β log π* − (Q* − V*(s_t))) from soft_solve, anchored."""
    sol, gap = _solve(w)
    parent = w.tree.parent.clamp(min=0)
    inverse = sol.q - torch.where(w.tree.terminal, 0.0, sol.v)
    advantage = w.beta * sol.log_policy - (sol.q - sol.v[parent])
    return sol, gap, inverse, advantage


@claim(
    "rafailov2024.appendixA.maxent-convention",
    SRC,
    ("Lemma 1", "Appendix A", "unnumbered: sec. 4.2, A* = Q* − V* as the DPO reward"),
    "in the max-ent convention of eq. (3) (β log π_ref folded into the reward, r' = r + β log "
    "π_ref), Appendix A's inverse r' = Q* − V*(s_{t+1}) holds, and sec. 4.2's optimal advantage "
    "A* = Q* − V*(s_t) = β log π* = r' + V*(s_{t+1}) − V*(s_t)",
    draw=tree_world,
    tolerance=1e-9,
    why=PATH,
    reference=ENUM + "; r' = r + β log π_ref formed here",
)
def _(w: TreeWorld) -> float:
    sol, gap, inverse, advantage = _appendix_a(w)
    folded = w.reward + w.beta * w.tree.log_ref
    _, v, _ = enumerated_policy(w.tree, w.reward, w.beta)
    parent = w.tree.parent.clamp(min=0)
    shaped = folded + torch.where(w.tree.terminal, 0.0, v) - v[parent]
    return max(
        gap,
        _maxabs(inverse[1:], folded[1:], name="Q* − V*(s_{t+1})"),
        _maxabs(advantage[1:], 0.0, name="β log π* − A*"),
        _maxabs(w.beta * sol.log_policy[1:], shaped[1:], name="A* vs r' shaped by V*"),
    )


@claim(
    "rafailov2024.appendixA.kl-convention",
    SRC,
    ("Lemma 1", "Appendix A", "eq. (7)", "unnumbered: sec. 4.2, A* = Q* − V* as the DPO reward"),
    "read in eq. (7)'s KL convention (β log π_ref not in r), Appendix A's r = Q* − V*(s_{t+1}) "
    "and sec. 4.2's 'DPO's reward is A*' miss by exactly β log π_ref(a|s): a convention clash",
    draw=tree_world,
    tolerance=1e-9,
    why=GAP,
    expected=NEEDS,
)
def _(w: TreeWorld) -> float:
    sol, _, inverse, _ = _appendix_a(w)
    parent = w.tree.parent.clamp(min=0)
    implicit = tm.implicit_rewards(w.tree, sol.log_policy, w.beta)
    a_star = sol.q - sol.v[parent]
    size = _maxabs(inverse[1:], w.reward[1:], name="Q* − V*(s_{t+1}) vs r")
    off = max(
        _maxabs((inverse - w.reward)[1:], (w.beta * w.tree.log_ref)[1:], name="miss − β log π_ref"),
        _maxabs((a_star - implicit)[1:], (w.beta * w.tree.log_ref)[1:], name="A* − DPO reward"),
    )
    return _measured("Appendix A's miss", size, size if off <= 1e-9 else math.inf, 1e-9)


@claim(
    "rafailov2024.sec41.telescoping",
    SRC,
    ("unnumbered: sec. 4.1, Σ r = V*(s₀) + Σ β log π*/π_ref",),
    "Σ_t r(s_t, a_t) = V*(s₀) + Σ_t β log π*(a_t|s_t)/π_ref(a_t|s_t) on every complete sequence, "
    "with V*(s₀) and π* from soft_solve equal to their enumerations",
    draw=_impossible_world,
    tolerance=1e-9,
    why=PATH,
    reference=ENUM,
)
def _(w: TreeWorld) -> float:
    sol, gap = _solve(w)
    reach = _leaf_reach(w)
    implicit = tm.implicit_rewards(w.tree, sol.log_policy, w.beta)
    return max(
        gap,
        _maxabs(
            sequence_sums(w.tree, w.reward),
            sol.v[0] + sequence_sums(w.tree, implicit),
            reach,
            name="Σ r vs V*(s₀) + Σ implicit",
        ),
    )


@claim(
    "rafailov2024.eq8.policy-preference",
    SRC,
    ("eq. (8)",),
    "with both sequences from s₀, σ(Σ β log π*/π_ref(τ_w) − Σ β log π*/π_ref(τ_l)) = p* of (1), "
    "π* from soft_solve equal to its enumeration",
    draw=tree_world,
    tolerance=1e-12,
    why="σ of differences of sums ≤ 10² in float64 (rounding ~1e-14); the anchor (soft_solve "
    "against enumeration, tolerance 1e-9) enters divided by 10³, so at this claim's 1e-12",
    reference=ENUM + "; p* of (1) from path sums of r",
)
def _(w: TreeWorld) -> float:
    sol, gap = _solve(w)
    implicit = sequence_sums(w.tree, tm.implicit_rewards(w.tree, sol.log_policy, w.beta))
    total = sequence_sums(w.tree, w.reward)
    return max(
        gap / 1e3,  # the anchor's tolerance is 1e-9
        _maxabs(
            torch.sigmoid(implicit[:, None] - implicit[None, :]),
            torch.sigmoid(total[:, None] - total[None, :]),
            name="p_π* vs p*",
        ),
    )


@claim(
    "rafailov2024.eq8.different-starts",
    SRC,
    ("eq. (8)",),
    "drop 'same start state': for sequences from two different states s ≠ s', V*(s) − V*(s') "
    "does not cancel and the policy-induced preference is wrong",
    draw=deep_tree_world,
    tolerance=1e-9,
    why=GAP,
    expected=NEEDS,
)
def _(w: TreeWorld) -> float:
    tree = w.tree
    sol = tm.soft_solve(tree, w.reward, w.beta)
    implicit = tm.implicit_rewards(tree, sol.log_policy, w.beta)
    nodes = tree.path_nodes()
    starts = nodes[:, 0]  # first-token state of each sequence
    a, b = 0, int((starts != starts[0]).nonzero()[0])  # two sequences from different states
    sums = []
    for values in (w.reward, implicit):
        padded = torch.cat([values, values.new_zeros(1)])
        tail = torch.where(nodes[:, 1:] >= 0, nodes[:, 1:], tree.n_nodes)
        sums.append(padded[tail].sum(-1))  # from the first-token state onwards
    return abs(
        torch.sigmoid(sums[1][a] - sums[1][b]) - torch.sigmoid(sums[0][a] - sums[0][b])
    ).item()


@claim(
    "rafailov2024.eq9.token-dpo",
    SRC,
    ("eq. (9)", "eq. (8)"),
    "eq. (9) is −log p_π of (8) for any π, and its population minimiser over all pairs of "
    "sequences (π_ref behaviour, Bradley–Terry on Σr) is π*",
    draw=_impossible_world,
    tolerance=1e-7,
    why=NEWTON,
    reference=ENUM + "; −log σ of implicit-reward differences written here",
    instances=10,
)
def _(w: TreeWorld) -> float:
    tree = w.tree.to("cpu")
    reward = w.reward.cpu()
    pairs = tm.population_trajectory_pairs(tree, reward)
    fitted = tm.fit_tree_policy(
        tree, pairs.chosen, pairs.rejected, "dpo", beta=w.beta, weights=pairs.weights
    )
    _, _, log_pi = enumerated_policy(tree, reward, w.beta)
    seen = tm.reachable(tree)
    worst = _maxabs(fitted.exp(), log_pi.exp(), seen, name="fitted π")
    logratio = tm.sequence_logratios(tree, fitted)
    loss = tb.losses.dpo(logratio[pairs.chosen], logratio[pairs.rejected], w.beta)
    implicit = sequence_sums(tree, w.beta * torch.where(seen, fitted - tree.log_ref, 0.0))
    p = torch.sigmoid(implicit[pairs.chosen] - implicit[pairs.rejected])
    return max(worst, _maxabs(loss, -p.log(), name="loss (9)"))


# -- sec. 4.2: Definition 1, eq. (10), Theorem 1, eq. (11) ------------------------------------------


def _potential(w: TreeWorld, terminal: str):
    """Φ per state: random inside; on terminal states 0, one constant (2.5 or random), or random."""
    phi = 3 * torch.randn(w.tree.n_nodes, generator=w.g, dtype=torch.float64).to(w.reward.device)
    if terminal == "random":
        return phi
    constant = 0.0 if terminal == "zero" else 2.5 * (1 + torch.rand((), generator=w.g).item())
    return phi.masked_fill(w.tree.terminal, constant)


def _shaping_gap(w: TreeWorld, terminal: str) -> float:
    """How far shaping by Φ moves π* and the preferences of (1): soft_solve on r against
    enumeration on the shaped reward (built here and by shape_reward)."""
    phi = _potential(w, terminal)
    parent = w.tree.parent.clamp(min=0)
    shaped = w.reward + phi - phi[parent]
    shaped[0] = 0.0
    worst = _maxabs(tm.shape_reward(w.tree, w.reward, phi, strict=False), shaped, name="r'")
    sol = tm.soft_solve(w.tree, w.reward, w.beta)
    _, _, log_pi = enumerated_policy(w.tree, shaped, w.beta)
    total = sequence_sums(w.tree, shaped)
    p_shaped = torch.sigmoid(total[:, None] - total[None, :])
    return max(
        worst,
        _maxabs(sol.log_policy, log_pi, name="π* of r vs π* of r'"),
        _maxabs(tm.trajectory_preference(w.tree, w.reward), p_shaped, name="p* of r vs of r'"),
    )


@claim(
    "rafailov2024.theorem1.shaping",
    SRC,
    ("Definition 1", "Theorem 1"),
    "shaping r + Φ(s_{t+1}) − Φ(s_t) with Φ constant on terminal states (0 or not) keeps π* and "
    "every preference of (1) between complete sequences from s₀",
    draw=tree_world,
    tolerance=1e-9,
    why=PATH,
    reference="π* of the shaped reward enumerated over complete sequences (reference.soft_values); "
    "its preferences from path sums",
)
def _(w: TreeWorld) -> float:
    return max(_shaping_gap(w, "zero"), _shaping_gap(w, "constant"))


@claim(
    "rafailov2024.theorem1.terminal-potential",
    SRC,
    ("Definition 1", "Theorem 1"),
    "drop 'Φ constant on terminal states' (Definition 1 does not ask it; Theorem 1 asks V* = 0 "
    "there): a Φ that differs between leaves changes π* and the preferences",
    draw=tree_world,
    tolerance=1e-9,
    why=GAP,
    expected=NEEDS,
)
def _(w: TreeWorld) -> float:
    return _shaping_gap(w, "random")


@claim(
    "rafailov2024.theorem1.plackett-luce",
    SRC,
    ("Theorem 1",),
    "Theorem 1 for Plackett–Luce: the probability of a ranking of 3 complete sequences from s₀ "
    "is the same under Σ r and under Σ β log π*/π_ref (π* from soft_solve)",
    draw=tree_world,
    tolerance=1e-12,
    why="products of 3 softmax factors of sums ≤ 10² (rounding ~1e-14); the anchor (soft_solve "
    "against enumeration, tolerance 1e-9) enters divided by 10³, so at this claim's 1e-12",
    reference="Plackett–Luce probabilities written here from path sums of r; " + ENUM,
)
def _(w: TreeWorld) -> float:
    sol, gap = _solve(w)
    implicit = sequence_sums(w.tree, tm.implicit_rewards(w.tree, sol.log_policy, w.beta))
    total = sequence_sums(w.tree, w.reward)
    n = total.numel()
    order = torch.randperm(n, generator=w.g)[: min(n, 3)].to(total.device)

    def plackett_luce(x):
        x = x[order]
        return torch.stack([x[k] - torch.logsumexp(x[k:], 0) for k in range(len(x))]).sum().exp()

    return max(gap / 1e3, _maxabs(plackett_luce(implicit), plackett_luce(total), name="PL"))


@claim(
    "rafailov2024.theorem1.partial-sequences",
    SRC,
    ("Theorem 1", "eq. (8)"),
    "drop 'preference queries end at a terminal state' (sec. 4.2): between partial sequences "
    "from s₀, Σ β log π*/π_ref differs from Σ r by V*(s_K) − V*(s₀), which no longer cancels",
    draw=deep_tree_world,
    tolerance=1e-9,
    why=GAP,
    expected=NEEDS,
)
def _(w: TreeWorld) -> float:
    sol = tm.soft_solve(w.tree, w.reward, w.beta)
    first = (w.tree.depth == 1).nonzero().squeeze(-1)  # one-token prefixes: never terminal here
    implicit = tm.implicit_rewards(w.tree, sol.log_policy, w.beta)[first]
    reward = w.reward[first]
    gap = torch.sigmoid(implicit[:, None] - implicit[None, :]) - torch.sigmoid(
        reward[:, None] - reward[None, :]
    )
    return gap.abs().max().item()


@claim(
    "rafailov2024.eq10-11.advantage",
    SRC,
    ("eq. (10)", "eq. (11)", "Theorem 1"),
    "β log π*/π_ref = r + V*(s_{t+1}) − V*(s_t): the implicit reward (11) is r shaped by V*, "
    "equivalent to r in the sense of Definition 1",
    draw=_impossible_world,
    tolerance=1e-9,
    why=PATH,
    reference="V* enumerated over complete sequences (reference.soft_values)",
)
def _(w: TreeWorld) -> float:
    sol = tm.soft_solve(w.tree, w.reward, w.beta)
    implicit = tm.implicit_rewards(w.tree, sol.log_policy, w.beta)
    reach = tm.reachable(w.tree)
    _, v = soft_values(w.tree, w.reward, w.beta)
    rhs = w.reward + v - v[w.tree.parent.clamp(min=0)]
    _, residual = tm.recover_potential(
        w.tree, torch.where(torch.isfinite(w.tree.log_ref), w.reward, 0.0), implicit
    )
    return max(
        _maxabs(implicit[1:], rhs[1:], reach[1:], name="implicit reward (10)"),
        _maxabs(residual, 0.0, name="recover_potential residual"),
    )


# -- sec. 5.2: eqs. (12)–(13), search ------------------------------------------------------------------


def _guided(w: TreeWorld, v: torch.Tensor) -> torch.Tensor:
    """Objective (12) at every node: Σ_{t≤K}(r + β log π_ref) along the path, plus V*(s_{K+1})."""
    step = w.reward + w.beta * w.tree.log_ref
    prefix = torch.zeros_like(step)
    parent = w.tree.parent.tolist()
    for n in range(1, w.tree.n_nodes):  # nodes are breadth-first: the parent comes first
        prefix[n] = prefix[parent[n]] + step[n]
    return prefix + torch.where(w.tree.terminal, 0.0, v)


def _frontier_objectives(w: TreeWorld, depth: int):
    sol = tm.soft_solve(w.tree, w.reward, w.beta)
    _, v = soft_values(w.tree, w.reward, w.beta)
    nodes = tm.frontier(w.tree, depth)
    guided = _guided(w, v)[nodes]  # eq. (12), from enumeration
    likelihood = tm.prefix_sum(w.tree, w.beta * sol.log_policy)[nodes]  # Σ β log π*
    return sol, v, nodes, guided, likelihood


@claim(
    "rafailov2024.eq13.printed",
    SRC,
    ("eq. (12)", "eq. (13)"),
    "as printed: objective (12) = −V*(s₀) + Σ_t β log π*(a_t|s_t) on every partial sequence; "
    "it misses by exactly −2V*(s₀)",
    draw=deep_tree_world,
    tolerance=1e-9,
    why=GAP,
    expected=ERRATUM,
    corrected="rafailov2024.eq13.corrected",
)
def _(w: TreeWorld) -> Miss:
    depth = 1 + int(torch.randint(w.tree.max_depth, (), generator=w.g))
    _, v, _, guided, likelihood = _frontier_objectives(w, depth)
    corrected = _maxabs(guided, v[0] + likelihood, name="(12) vs +V*(s₀) + Σ β log π*")
    return miss(-v[0] + likelihood, guided, -2 * v[0] * torch.ones_like(guided), corrected)


@claim(
    "rafailov2024.eq13.corrected",
    SRC,
    ("eq. (12)", "eq. (13)", "unnumbered: sec. 5.2, likelihood search is reward search"),
    "corrected: (12) = +V*(s₀) + Σ β log π*, so V*-guided search on r + β log π_ref and "
    "likelihood search on π* pick the same partial sequence at every depth",
    draw=deep_tree_world,
    tolerance=1e-9,
    why=PATH,
    reference="(12) from V* enumerated over complete sequences and prefix sums written here",
)
def _(w: TreeWorld) -> float:
    worst = 0.0
    for depth in range(1, w.tree.max_depth + 1):
        sol, v, nodes, guided, likelihood = _frontier_objectives(w, depth)
        worst = max(worst, _maxabs(guided, v[0] + likelihood, name="(12) vs (13) corrected"))
        picked = tm.best_prefix(w.tree, w.beta * sol.log_policy, depth).node
        worst = max(worst, guided.max().item() - guided[nodes.tolist().index(picked)].item())
    return worst


@claim(
    "rafailov2024.eq12.other-beta",
    SRC,
    ("eq. (12)", "eq. (13)"),
    "drop 'π* is the optimum at the β of (12)': likelihood search on the optimum for 2β picks "
    "partial sequences that are worse under (12)",
    draw=deep_tree_world,
    tolerance=1e-9,
    why=GAP,
    expected=NEEDS,
)
def _(w: TreeWorld) -> float:
    worst = 0.0
    other = tm.soft_solve(w.tree, w.reward, 2 * w.beta)
    for depth in range(1, w.tree.max_depth + 1):
        _, _, nodes, guided, _ = _frontier_objectives(w, depth)
        picked = tm.best_prefix(w.tree, other.log_policy, depth).node
        worst = max(worst, guided.max().item() - guided[nodes.tolist().index(picked)].item())
    return worst


def _beam_reference(tree, objective: list[float], width: int) -> int:
    """Beam search written here over the nodes: every open prefix in the beam is replaced by its
    children, the ``width`` best by ``objective`` (ties to the earlier node) are kept, finished
    sequences keep their slots; returns the best finished node."""
    kids: dict[int, list[int]] = {}
    for n, p in enumerate(tree.parent.tolist()):
        kids.setdefault(p, []).append(n)
    terminal = tree.terminal.tolist()
    beam = [0]
    while not all(terminal[n] for n in beam):
        cand = sorted(
            [n for n in beam if terminal[n]]
            + [c for n in beam if not terminal[n] for c in kids.get(n, [])]
        )
        beam = sorted(cand, key=lambda n: -objective[n])[:width]
    return max(beam, key=lambda n: (objective[n], -n))


@claim(
    "rafailov2024.sec52.beam",
    SRC,
    ("unnumbered: sec. 5.2, beam search on π*",),
    "likelihood beam search on π* of any width k is V*-guided beam search on (12) with the same "
    "k (exact search once k ≥ the number of leaves; not in general, see sec52.greedy)",
    draw=tree_world,
    tolerance=1e-9,
    why=PATH,
    reference="a beam search written here on objective (12) from V* enumerated over complete "
    "sequences; the best complete sequence by enumeration",
    instances=20,
)
def _(w: TreeWorld) -> float:
    sol = tm.soft_solve(w.tree, w.reward, w.beta)
    _, v = soft_values(w.tree, w.reward, w.beta)
    guided = _guided(w, v)
    totals = guided[w.tree.leaves]  # Σ r + β log π_ref of each complete sequence
    n_leaves = int(w.tree.terminal.sum())
    objective = guided.tolist()
    worst = 0.0
    for k in range(1, n_leaves + 1):
        beam = tm.beam_search(w.tree, w.beta * sol.log_policy, k)
        ref = _beam_reference(w.tree, objective, k)
        worst = max(
            worst,
            _maxabs(guided[beam.node], guided[ref], name=f"width {k}: (12) of the pick"),
            _maxabs(beam.score + v[0], guided[beam.node], name=f"width {k}: beam score + V*(s₀)"),
        )
    return max(worst, _maxabs(guided[beam.node], totals.max(), name="full width vs best"))


@claim(
    "rafailov2024.sec52.greedy",
    SRC,
    ("unnumbered: sec. 5.2, beam search on π*",),
    "drop the full width: greedy (width 1) likelihood decoding on π* misses the best complete "
    "sequence under Σ r + β log π_ref on some trees (sec. 5.2's 'equivalent' needs exhaustive search)",
    draw=deep_tree_world,
    tolerance=1e-9,
    why=GAP,
    expected=NEEDS,
    instances=20,
)
def _(w: TreeWorld) -> float:
    worst = 0.0
    for _ in range(8):  # eight reward functions on the same tree
        reward = 3 * (2 * torch.rand(w.tree.n_nodes, generator=w.g, dtype=torch.float64) - 1)
        reward = reward.to(w.reward.device)
        sol = tm.soft_solve(w.tree, reward, w.beta)
        totals = sequence_sums(w.tree, reward + w.beta * w.tree.log_ref)
        greedy = tm.beam_search(w.tree, w.beta * sol.log_policy, 1)
        k = w.tree.leaves.tolist().index(greedy.node)
        worst = max(worst, totals.max().item() - totals[k].item())
    return worst


# -- sec. 5.3: eq. (14) -----------------------------------------------------------------------------------


def _random_tree_policy(w: TreeWorld):
    """log π: a log-softmax of random logits over each state's children, by the reference's
    scatter logsumexp."""
    logits = 2 * torch.randn(w.tree.n_nodes, generator=w.g, dtype=torch.float64).to(w.reward.device)
    log_pi = logits - children_logsumexp(w.tree, logits)[w.tree.parent.clamp(min=0)]
    log_pi[0] = 0.0
    return log_pi


def _state_means(w: TreeWorld, values: torch.Tensor) -> torch.Tensor:
    """Σ over each state's children of π_ref · values (0 at terminal states), by index_add."""
    parent = w.tree.parent.clamp(min=0)
    out = torch.zeros_like(values)
    return out.index_add(0, parent[1:], (w.tree.log_ref.exp() * values)[1:])


@claim(
    "rafailov2024.eq14.expected-implicit",
    SRC,
    ("eq. (14)", "unnumbered: sec. 5.3, implicit rewards decline"),
    "E_{a∼π_ref}[β log π/π_ref] = −β KL(π_ref ‖ π) ≤ 0 at every state, and over whole sequences",
    draw=tree_world,
    tolerance=1e-12,
    why="sums of ≤ 4 products of probabilities and log-ratios ≤ 10²",
    reference="KL(π_ref ‖ π) per state and over enumerated complete sequences, written here",
)
def _(w: TreeWorld) -> float:
    log_pi = _random_tree_policy(w)
    got = tm.expected_implicit_reward(w.tree, log_pi, w.beta)
    kl_state = _state_means(w, w.tree.log_ref - log_pi)
    worst = max(max(0.0, got.max().item()), _maxabs(got, -w.beta * kl_state, name="(14)"))
    ref_law = sequence_sums(w.tree, w.tree.log_ref).exp()
    law = sequence_sums(w.tree, log_pi).exp()
    sequence = (ref_law * w.beta * tm.sequence_logratios(w.tree, log_pi)).sum()
    worst = max(worst, _maxabs(sequence, -w.beta * kl(ref_law, law), name="(14) over sequences"))
    return max(worst, max(0.0, sequence.item()))


@claim(
    "rafailov2024.eq14.unnormalised",
    SRC,
    ("eq. (14)", "unnumbered: sec. 5.3, implicit rewards decline"),
    "drop 'π is a normalised policy' (log π = logits shifted by c(s) > 0 per state): "
    "E_{π_ref}[β log π/π_ref] = β c(s) − β KL can be positive, so nothing need decline",
    draw=tree_world,
    tolerance=1e-9,
    why=GAP,
    expected=NEEDS,
)
def _(w: TreeWorld) -> float:
    log_pi = _random_tree_policy(w)
    shift = 0.5 + 1.5 * torch.rand(w.tree.n_nodes, generator=w.g, dtype=torch.float64)
    shift = shift.to(log_pi.device)
    shifted = log_pi + shift[w.tree.parent.clamp(min=0)]
    mean = _state_means(w, w.beta * (shifted - w.tree.log_ref))
    predicted = w.beta * (shift - _state_means(w, w.tree.log_ref - log_pi))
    internal = ~w.tree.terminal
    off = _maxabs(mean[internal], predicted[internal], name="E[β log π/π_ref]")
    size = max(0.0, mean[internal].max().item())
    return _measured("the mean implicit reward", size, size if off <= 1e-9 else math.inf, 1e-9)
