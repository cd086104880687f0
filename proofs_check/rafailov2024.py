"""Claims of Rafailov, Hejna, Park, Finn (2024), *From r to Q\\*: Your Language Model is Secretly a
Q-Function*, on exact token trees (tokenmdp) checked against enumeration over complete sequences."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import optimize, special

import tokenmdp as tm
import toybandit as tb

from .registry import Outcome, claim
from .worlds import TreeWorld, bt_world, deep_tree_world, sequence_sums, soft_values, tree_world

SRC = "Rafailov et al. 2024"
ERRATUM, NEEDS = Outcome.ERRATUM, Outcome.NEEDS_ASSUMPTION

PATH = (
    "sums of ≤ 4 edges of size ≤ 10², logsumexp over ≤ 256 sequences: rounding ≤ 1e-12; 1e-9 "
    "leaves 3 orders of margin"
)
GAP = "a failure must exceed rounding (1e-12) by orders of magnitude to count"
NEWTON = (
    "damped Newton over sequences stops when no logit moves by 1e-12; sequences with pair "
    "weight ~1e-12 carry ~1e-9 into the log-ratios (measured); 1e-7 keeps margin"
)


def _impossible_world(g, device):
    return tree_world(g, device, impossible=True)


def _maxabs(a, b, mask=None) -> float:
    """max |a − b| where finite (and in ``mask``); inf when the −inf patterns differ."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if mask is not None:
        a, b = a[mask], b[mask]
    if not torch.equal(a == -math.inf, b == -math.inf):
        return math.inf
    fin = torch.isfinite(a)
    return (a[fin] - b[fin]).abs().max().item() if fin.any() else 0.0


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
)
def _(w: TreeWorld) -> float:
    total = sequence_sums(w.tree, w.reward)
    e = total.exp()
    printed = e[:, None] / (e[:, None] + e[None, :])
    return _maxabs(printed, tm.trajectory_preference(w.tree, w.reward))


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
    instances=10,
)
def _(w: TreeWorld) -> float:
    w = _cpu(w)  # scipy below
    sol = tm.soft_solve(w.tree, w.reward, w.beta)
    law = tm.path_sum(w.tree, sol.log_policy).exp()
    best = _objective2(w, law)
    gap = abs(best - sol.v[0]).item()
    reach = _leaf_reach(w)
    score = sequence_sums(w.tree, w.reward + w.beta * w.tree.log_ref)[reach].numpy()

    def negative(z):
        p = special.softmax(z)
        return -(p @ score + w.beta * special.entr(p).sum())

    res = optimize.minimize(negative, np.zeros(len(score)), method="BFGS", options={"gtol": 1e-10})
    found = torch.zeros_like(law)
    found[reach] = torch.as_tensor(special.softmax(res.x))
    return max(gap, max(0.0, (_objective2(w, found) - best).item()))


@claim(
    "rafailov2024.eq3.ppo-reward",
    SRC,
    ("eq. (3)",),
    "max-ent RL (entropy bonus β, no KL) on the per-token reward of (3) — β log π_ref at every "
    "token plus r(x, y) at EOS — has the KL-regularised bandit optimum of r(x, y)",
    draw=tree_world,
    tolerance=1e-12,
    why=PATH,
)
def _(w: TreeWorld) -> float:
    terminal_reward = sequence_sums(w.tree, w.reward)  # r(x, y), paid once at the last token
    per_token = terminal_reward + w.beta * sequence_sums(w.tree, w.tree.log_ref)  # Σ_t r_t of (3)
    reach = _leaf_reach(w)
    flat = torch.full((int(reach.sum()),), 1.0 / int(reach.sum()), dtype=torch.float64)
    flat = flat.to(per_token.device)
    maxent = tb.optimal_policy(per_token[reach], flat, w.beta)  # counting measure = uniform ref
    leaf_ref = sequence_sums(w.tree, w.tree.log_ref).exp()
    bandit = tb.optimal_policy(terminal_reward, leaf_ref, w.beta)[reach]
    return _maxabs(maxent, bandit)


def _sec33(w, printed: bool) -> tuple[float, float]:
    """(π* vs the Gibbs form, r vs the reward identity) of sec. 3.3, printed or corrected."""
    star = tb.optimal_policy(w.reward, w.ref, w.beta)
    log_z = tb.log_partition(w.reward, w.ref, w.beta) / w.beta
    exponent = w.reward if printed else w.reward / w.beta
    gibbs = w.ref * exponent.exp()
    partition = log_z.exp() if printed else w.beta * log_z
    sign = -1.0 if printed else 1.0
    reward = w.beta * (star.log() - w.ref.log()) + sign * partition
    return (star - gibbs / gibbs.sum()).abs().max().item(), (reward - w.reward).abs().max().item()


@claim(
    "rafailov2024.sec33.gibbs-printed",
    SRC,
    ("unnumbered: sec. 3.3, π* = π_ref e^{r}/Z",),
    "as printed: π*(y|x) = π_ref(y|x) e^{r(x,y)}/Z(x) (the 1/β in the exponent is missing)",
    draw=bt_world,
    tolerance=1e-9,
    why=GAP,
    expected=ERRATUM,
    corrected="rafailov2024.sec33.corrected",
)
def _(w) -> float:
    return _sec33(w, printed=True)[0]


@claim(
    "rafailov2024.sec33.reward-printed",
    SRC,
    ("unnumbered: sec. 3.3, r = β log π*/π_ref − Z(x)",),
    "as printed: r(x, y) = β log π*/π_ref − Z(x) (should be + β log Z(x))",
    draw=bt_world,
    tolerance=1e-9,
    why=GAP,
    expected=ERRATUM,
    corrected="rafailov2024.sec33.corrected",
)
def _(w) -> float:
    return _sec33(w, printed=True)[1]


@claim(
    "rafailov2024.sec33.corrected",
    SRC,
    ("unnumbered: sec. 3.3, π* = π_ref e^{r}/Z", "unnumbered: sec. 3.3, r = β log π*/π_ref − Z(x)"),
    "corrected: π* = π_ref e^{r/β}/Z and r = β log π*/π_ref + β log Z(x), so Z cancels in (4)",
    draw=bt_world,
    tolerance=1e-9,
    why="log of probabilities down to e^{-100}: relative rounding 1e-16 on values ≤ 10³",
)
def _(w) -> float:
    return max(_sec33(w, printed=False))


@claim(
    "rafailov2024.eq4.dpo",
    SRC,
    ("eq. (4)",),
    "the bandit DPO loss over all pairs of a full-support μ, labelled by Bradley–Terry, is "
    "minimised by π* = π_ref e^{r/β}/Z",
    draw=bt_world,
    tolerance=1e-8,
    why=NEWTON,
)
def _(w) -> float:
    pairs = tb.population_pairs(w.pref, w.mu)
    fitted = tb.fit_policy(pairs.chosen, pairs.rejected, w.ref, beta=w.beta, weights=pairs.weights)
    return (fitted - tb.optimal_policy(w.reward, w.ref, w.beta)).abs().max().item()


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
)
def _(w: TreeWorld) -> float:
    q, v = soft_values(w.tree, w.reward, w.beta)
    sol = tm.soft_solve(w.tree, w.reward, w.beta)
    parent = w.tree.parent.clamp(min=0)
    worst = max(_maxabs(sol.q[1:], q[1:]), _maxabs(sol.v, v))
    worst = max(worst, _maxabs(sol.log_policy[1:], ((q - v[parent]) / w.beta)[1:]))  # (5)
    # (6): V*(s) = β log Σ_a exp(Q*(s, a)/β), a logsumexp over each state's children by scatter
    child, x = parent[1:], q[1:] / w.beta
    m = torch.zeros_like(v).scatter_reduce(0, child, x, "amax", include_self=False)
    total = torch.zeros_like(v).index_add(0, child, (x - m[child]).exp())
    internal = ~w.tree.terminal
    six = w.beta * (m + total.log())
    worst = max(worst, (six - v)[internal].abs().max().item())
    return worst + (v[w.tree.terminal].abs().max().item())


@claim(
    "rafailov2024.lemma1.bijection",
    SRC,
    ("Lemma 1", "eq. (7)"),
    "r ↦ Q* is a bijection on a tree: reward_from_q inverts soft_solve, and any logits are the "
    "Q* of the reward it returns (every LM is a Q-function)",
    draw=tree_world,
    tolerance=1e-9,
    why=PATH,
)
def _(w: TreeWorld) -> float:
    sol = tm.soft_solve(w.tree, w.reward, w.beta)
    back = tm.reward_from_q(w.tree, sol.q, w.beta)
    logits = 4 * torch.randn(w.tree.n_nodes, generator=w.g, dtype=torch.float64).to(w.reward.device)
    again = tm.soft_solve(w.tree, tm.reward_from_q(w.tree, logits, w.beta), w.beta).q
    return max(_maxabs(back[1:], w.reward[1:]), _maxabs(again[1:], logits[1:]))


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
    "on a tree (V* = 0 at leaves) a constant shift of Q changes the reward: r(Q) ≠ r(Q + c)",
    draw=tree_world,
    tolerance=1e-12,
    why="the residual is |c| = 1 exactly when the two rewards agree to 1e-12, else 0",
)
def _(w: TreeWorld) -> float:
    tree = w.tree.to("cpu")
    sol = tm.soft_solve(tree, w.reward.cpu(), w.beta)
    state, action, node = tree.parent[1:], tree.token[1:], torch.arange(1, tree.n_nodes)
    shape = (tree.n_nodes, int(tree.token.max()) + 1)
    next_state = torch.full(shape, -1, dtype=torch.long)
    next_state[state, action] = torch.where(tree.terminal[1:], -1, node)
    log_ref = torch.full(shape, -math.inf, dtype=torch.float64)
    log_ref[state, action] = tree.log_ref[1:]
    q = torch.full(shape, -math.inf, dtype=torch.float64)
    q[state, action] = sol.q[1:]
    return _injectivity_gap(next_state, log_ref, q, w.beta, 1.0)


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
    "rafailov2024.appendixA.printed",
    SRC,
    ("Lemma 1", "Appendix A"),
    "as printed in the proof of Lemma 1: r(s_t, a_t) = Q*(s_t, a_t) − V*(s_{t+1})",
    draw=tree_world,
    tolerance=1e-9,
    why=GAP,
    expected=ERRATUM,
    corrected="rafailov2024.lemma1.bijection",
)
def _(w: TreeWorld) -> float:
    sol = tm.soft_solve(w.tree, w.reward, w.beta)
    return _maxabs((sol.q - sol.v)[1:], w.reward[1:])


@claim(
    "rafailov2024.sec41.telescoping",
    SRC,
    ("unnumbered: sec. 4.1, Σ r = V*(s₀) + Σ β log π*/π_ref",),
    "Σ_t r(s_t, a_t) = V*(s₀) + Σ_t β log π*(a_t|s_t)/π_ref(a_t|s_t) on every complete sequence",
    draw=_impossible_world,
    tolerance=1e-9,
    why=PATH,
)
def _(w: TreeWorld) -> float:
    sol = tm.soft_solve(w.tree, w.reward, w.beta)
    reach = _leaf_reach(w)
    implicit = tm.implicit_rewards(w.tree, sol.log_policy, w.beta)
    return _maxabs(
        sequence_sums(w.tree, w.reward), sol.v[0] + sequence_sums(w.tree, implicit), reach
    )


@claim(
    "rafailov2024.eq8.policy-preference",
    SRC,
    ("eq. (8)",),
    "with both sequences from s₀, σ(Σ β log π*/π_ref(τ_w) − Σ β log π*/π_ref(τ_l)) = p* of (1)",
    draw=tree_world,
    tolerance=1e-12,
    why="σ of differences of sums ≤ 10² in float64",
)
def _(w: TreeWorld) -> float:
    sol = tm.soft_solve(w.tree, w.reward, w.beta)
    implicit = sequence_sums(w.tree, tm.implicit_rewards(w.tree, sol.log_policy, w.beta))
    total = sequence_sums(w.tree, w.reward)
    return _maxabs(
        torch.sigmoid(implicit[:, None] - implicit[None, :]),
        torch.sigmoid(total[:, None] - total[None, :]),
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
    instances=10,
)
def _(w: TreeWorld) -> float:
    tree = w.tree.to("cpu")
    reward = w.reward.cpu()
    pairs = tm.population_trajectory_pairs(tree, reward)
    fitted = tm.fit_tree_policy(
        tree, pairs.chosen, pairs.rejected, "dpo", beta=w.beta, weights=pairs.weights
    )
    sol = tm.soft_solve(tree, reward, w.beta)
    seen = tm.reachable(tree)
    worst = _maxabs(fitted.exp(), sol.log_policy.exp(), seen)
    logratio = tm.sequence_logratios(tree, fitted)
    loss = tb.losses.dpo(logratio[pairs.chosen], logratio[pairs.rejected], w.beta)
    implicit = sequence_sums(tree, tm.implicit_rewards(tree, fitted, w.beta))
    p = torch.sigmoid(implicit[pairs.chosen] - implicit[pairs.rejected])
    return max(worst, (loss + p.log()).abs().max().item())


# -- sec. 4.2: Definition 1, eq. (10), Theorem 1, eq. (11) ------------------------------------------


def _potential(w: TreeWorld, terminal_zero: bool):
    phi = 3 * torch.randn(w.tree.n_nodes, generator=w.g, dtype=torch.float64).to(w.reward.device)
    return phi.masked_fill(w.tree.terminal, 0.0) if terminal_zero else phi


def _shaping_gap(w: TreeWorld, terminal_zero: bool) -> float:
    phi = _potential(w, terminal_zero)
    shaped = tm.shape_reward(w.tree, w.reward, phi, strict=False)
    a, b = tm.soft_solve(w.tree, w.reward, w.beta), tm.soft_solve(w.tree, shaped, w.beta)
    return max(
        _maxabs(a.log_policy, b.log_policy),
        _maxabs(
            tm.trajectory_preference(w.tree, w.reward), tm.trajectory_preference(w.tree, shaped)
        ),
    )


@claim(
    "rafailov2024.theorem1.shaping",
    SRC,
    ("Definition 1", "Theorem 1"),
    "shaping r + Φ(s_{t+1}) − Φ(s_t) with Φ = 0 at terminal states keeps π* and every "
    "preference of (1) between sequences from s₀",
    draw=tree_world,
    tolerance=1e-9,
    why=PATH,
)
def _(w: TreeWorld) -> float:
    return _shaping_gap(w, terminal_zero=True)


@claim(
    "rafailov2024.theorem1.terminal-potential",
    SRC,
    ("Definition 1", "Theorem 1"),
    "drop 'V* = 0 at terminal states' (Φ ≠ 0 at leaves): shaping changes π* and the preferences",
    draw=tree_world,
    tolerance=1e-9,
    why=GAP,
    expected=NEEDS,
)
def _(w: TreeWorld) -> float:
    return _shaping_gap(w, terminal_zero=False)


@claim(
    "rafailov2024.eq10-11.advantage",
    SRC,
    ("eq. (10)", "eq. (11)", "Theorem 1"),
    "β log π*/π_ref = r + V*(s_{t+1}) − V*(s_t): the implicit reward (11) is r shaped by V*, "
    "equivalent to r in the sense of Definition 1",
    draw=_impossible_world,
    tolerance=1e-9,
    why=PATH,
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
    return max(_maxabs(implicit[1:], rhs[1:], reach[1:]), residual.abs().max().item())


# -- sec. 5.2: eqs. (12)–(13), search ------------------------------------------------------------------


def _frontier_objectives(w: TreeWorld, depth: int):
    sol = tm.soft_solve(w.tree, w.reward, w.beta)
    nodes = tm.frontier(w.tree, depth)
    guided = (
        tm.prefix_sum(w.tree, w.reward + w.beta * w.tree.log_ref)[nodes] + sol.v[nodes]
    )  # eq. (12)
    likelihood = tm.prefix_sum(w.tree, w.beta * sol.log_policy)[nodes]  # Σ β log π*
    return sol, nodes, guided, likelihood


@claim(
    "rafailov2024.eq13.printed",
    SRC,
    ("eq. (12)", "eq. (13)"),
    "as printed: objective (12) = −V*(s₀) + Σ_t β log π*(a_t|s_t) on every partial sequence",
    draw=deep_tree_world,
    tolerance=1e-9,
    why=GAP,
    expected=ERRATUM,
    corrected="rafailov2024.eq13.corrected",
)
def _(w: TreeWorld) -> float:
    depth = 1 + int(torch.randint(w.tree.max_depth, (), generator=w.g))
    sol, _, guided, likelihood = _frontier_objectives(w, depth)
    return _maxabs(guided, -sol.v[0] + likelihood)


@claim(
    "rafailov2024.eq13.corrected",
    SRC,
    ("eq. (12)", "eq. (13)", "unnumbered: sec. 5.2, likelihood search is reward search"),
    "corrected: (12) = +V*(s₀) + Σ β log π*, so V*-guided search on r + β log π_ref and "
    "likelihood search on π* pick the same partial sequence at every depth",
    draw=deep_tree_world,
    tolerance=1e-9,
    why=PATH,
)
def _(w: TreeWorld) -> float:
    worst = 0.0
    for depth in range(1, w.tree.max_depth + 1):
        sol, nodes, guided, likelihood = _frontier_objectives(w, depth)
        worst = max(worst, _maxabs(guided, sol.v[0] + likelihood))
        picked = tm.best_prefix(w.tree, w.beta * sol.log_policy, depth).node
        worst = max(worst, guided.max().item() - guided[nodes.tolist().index(picked)].item())
    return worst


@claim(
    "rafailov2024.eq12.no-value",
    SRC,
    ("eq. (12)",),
    "drop the V*(s_{K+1}) frontier term: search on Σ(r + β log π_ref) alone picks a partial "
    "sequence that is worse under (12)",
    draw=deep_tree_world,
    tolerance=1e-9,
    why=GAP,
    expected=NEEDS,
)
def _(w: TreeWorld) -> float:
    worst = 0.0
    for depth in range(1, w.tree.max_depth):
        _, nodes, guided, _ = _frontier_objectives(w, depth)
        myopic = tm.best_prefix(w.tree, w.reward + w.beta * w.tree.log_ref, depth).node
        worst = max(worst, guided.max().item() - guided[nodes.tolist().index(myopic)].item())
    return worst


@claim(
    "rafailov2024.sec52.beam",
    SRC,
    ("unnumbered: sec. 5.2, beam search on π*",),
    "likelihood beam search on π* with a beam as wide as the largest frontier is exact search "
    "for the best complete sequence under Σ r + β log π_ref",
    draw=tree_world,
    tolerance=1e-9,
    why=PATH,
)
def _(w: TreeWorld) -> float:
    sol = tm.soft_solve(w.tree, w.reward, w.beta)
    width = max(tm.frontier(w.tree, d).numel() for d in range(1, w.tree.max_depth + 1))
    beam = tm.beam_search(w.tree, w.beta * sol.log_policy, width)
    totals = sequence_sums(w.tree, w.reward + w.beta * w.tree.log_ref)
    k = w.tree.leaves.tolist().index(beam.node)
    return totals.max().item() - totals[k].item()


# -- sec. 5.3: eq. (14) -----------------------------------------------------------------------------------


def _random_tree_policy(w: TreeWorld):
    logits = 2 * torch.randn(w.tree.n_nodes, generator=w.g, dtype=torch.float64).to(w.reward.device)
    return tm.soft_solve(w.tree, tm.reward_from_q(w.tree, logits, 1.0), 1.0).log_policy


@claim(
    "rafailov2024.eq14.expected-implicit",
    SRC,
    ("eq. (14)", "unnumbered: sec. 5.3, implicit rewards decline"),
    "E_{a∼π_ref}[β log π/π_ref] = −β KL(π_ref ‖ π) ≤ 0 at every state, and over whole sequences",
    draw=tree_world,
    tolerance=1e-12,
    why="sums of ≤ 4 products of probabilities and log-ratios ≤ 10²",
)
def _(w: TreeWorld) -> float:
    log_pi = _random_tree_policy(w)
    got = tm.expected_implicit_reward(w.tree, log_pi, w.beta)
    worst = max(0.0, got.max().item())
    for s in (~w.tree.terminal).nonzero().squeeze(-1).tolist():
        kids = (w.tree.parent == s).nonzero().squeeze(-1)
        kl = tb.kl_divergence(w.tree.log_ref[kids].exp(), log_pi[kids].exp()).item()
        worst = max(worst, abs(got[s].item() + w.beta * kl))
    ref_law = sequence_sums(w.tree, w.tree.log_ref).exp()
    law = sequence_sums(w.tree, log_pi).exp()
    sequence = (ref_law * w.beta * tm.sequence_logratios(w.tree, log_pi)).sum()
    worst = max(worst, abs(sequence + w.beta * tb.kl_divergence(ref_law, law)).item())
    return max(worst, max(0.0, sequence.item()))


@claim(
    "rafailov2024.eq14.under-policy",
    SRC,
    ("eq. (14)",),
    "drop 'expectation under π_ref': under π itself the mean implicit reward is +β KL(π ‖ π_ref) "
    "≥ 0, so it need not decline",
    draw=tree_world,
    tolerance=1e-9,
    why=GAP,
    expected=NEEDS,
)
def _(w: TreeWorld) -> float:
    log_pi = _random_tree_policy(w)
    law = sequence_sums(w.tree, log_pi).exp()
    return max(0.0, (law * w.beta * tm.sequence_logratios(w.tree, log_pi)).sum().item())
