"""The exercises of the course: exact instances, the exact answer, and the known wrong answers.

Each exact answer is computed by the library itself (``toybandit``, ``tokenmdp``) or, where the
library has no function of that exact shape, by a second route: through the library (eq. (13) of
Rafailov et al. 2024 for the value-guided search score of eq. (12); the exact minimiser of the
population loss, ``toybandit.minimise_loss``, for the closed-form optimum of ``sigmoid_norm``) or
from the defining equation (rDPO's 2×2 system; P(y_j ≻ y_i) = 1 − P(y_i ≻ y_j) for the noisy
preference); never by the learner's formula.
A :class:`Pitfall` is a wrong formula that a learner plausibly writes, with the hint that names
the mistake. Every pitfall differs from the exact answer on some instance (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F

import tokenmdp as tm
import toybandit as tb

Tensor = torch.Tensor
F64 = torch.float64


@dataclass(frozen=True)
class Pitfall:
    """A known wrong answer: ``fn`` takes the exercise's arguments; ``hint`` names the mistake."""

    name: str
    fn: Callable[..., Tensor]
    hint: str


@dataclass(frozen=True)
class Exercise:
    """One exercise: what to write, where to check it, and what goes wrong.

    Attributes:
        id: ``"<notebook>.<name>"``.
        name: the name of the function the learner writes.
        signature: the call and the return shape, as shown in reports.
        equation: the equation it implements, with its source.
        instances: returns the keyword-argument dicts to run on (seeded: the same every call).
        reference: the exact answer for one instance.
        pitfalls: the known wrong answers, most specific first.
        tol: relative tolerance, tol·max(1, |exact|): 1e-9 leaves float64 rounding (≤ 1e-14
            observed for the reference solutions) six orders of room and rejects float32 (1e-7).
    """

    id: str
    name: str
    signature: str
    equation: str
    instances: Callable[[], list[dict]]
    reference: Callable[..., Tensor]
    pitfalls: tuple[Pitfall, ...]
    tol: float = 1e-9


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _simplex(n: int, g: torch.Generator, scale: float = 1.0) -> Tensor:
    return torch.softmax(scale * torch.randn(n, generator=g, dtype=F64), -1)


BETAS = (0.5, 2.0, 0.25, 1.5)


# -- 1. the KL-regularised bandit ------------------------------------------------------------


@cache  # instances are built once; check() hands the learner copies
def _bandits(policy: bool = False) -> list[dict]:
    out = []
    for k, beta in enumerate(BETAS):
        g = _gen(100 + k)
        n = 4 + k % 2
        d = {"reward": 1.5 * torch.randn(n, generator=g, dtype=F64), "ref": _simplex(n, g)}
        if policy:
            d = {"policy": _simplex(n, g, 1.5), **d}
        out.append({**d, "beta": beta})
    return out


def _softmax_logits(logits: Tensor) -> Tensor:
    return torch.softmax(logits, -1)


GIBBS = Exercise(
    id="kl_bandit.gibbs",
    name="gibbs_policy",
    signature="gibbs_policy(reward, ref, beta) -> π*, shape [Y]",
    equation="π*(y) = π_ref(y) exp(r(y)/β) / Z, the maximiser of Nguyen 2025, eq. (1)",
    instances=_bandits,
    reference=lambda reward, ref, beta: tb.optimal_policy(reward, ref, beta),
    pitfalls=(
        Pitfall(
            "beta_multiplied",
            lambda reward, ref, beta: _softmax_logits(beta * reward + ref.log()),
            "β multiplied instead of divided: the exponent is r(y)/β — a large β (strong KL "
            "penalty) must keep π* close to π_ref.",
        ),
        Pitfall(
            "no_ref",
            lambda reward, ref, beta: _softmax_logits(reward / beta),
            "forgot π_ref: the optimum tilts the reference, π* ∝ π_ref·exp(r/β); softmax(r/β) "
            "is the optimum of an entropy bonus, not of a KL penalty.",
        ),
        Pitfall(
            "unnormalised",
            lambda reward, ref, beta: ref * (reward / beta).exp(),
            "not normalised: divide by Z = Σ_y π_ref(y) exp(r(y)/β) so that π* sums to 1.",
        ),
    ),
)

VALUE = Exercise(
    id="kl_bandit.value",
    name="regularized_value",
    signature="regularized_value(policy, reward, ref, beta) -> J(π), a scalar",
    equation="J(π) = E_{y∼π}[r(y)] − β KL(π‖π_ref), Nguyen 2025, eq. (1)",
    instances=lambda: _bandits(policy=True),
    reference=lambda policy, reward, ref, beta: tb.regularized_value(policy, reward, ref, beta),
    pitfalls=(
        Pitfall(
            "kl_sign",
            lambda policy, reward, ref, beta: (
                (policy * reward).sum() + beta * tb.kl_divergence(policy, ref)
            ),
            "a missing −β: the KL is a penalty, J = E_π[r] − β KL(π‖π_ref).",
        ),
        Pitfall(
            "kl_reversed",
            lambda policy, reward, ref, beta: (
                (policy * reward).sum() - beta * tb.kl_divergence(ref, policy)
            ),
            "KL(π_ref‖π) is the reverse divergence: eq. (1) penalises KL(π‖π_ref), an "
            "expectation under π of log π/π_ref.",
        ),
        Pitfall(
            "beta_divided",
            lambda policy, reward, ref, beta: (
                (policy * reward).sum() - tb.kl_divergence(policy, ref) / beta
            ),
            "β divided instead of multiplied: the KL term is β·KL(π‖π_ref).",
        ),
    ),
)


# -- 2. Bradley–Terry and reward modelling ---------------------------------------------------


@cache  # instances are built once; check() hands the learner copies
def _rewards() -> list[dict]:
    return [
        {"reward": 2 * torch.randn(4 + k % 3, generator=_gen(200 + k), dtype=F64)} for k in range(4)
    ]


BT = Exercise(
    id="bradley_terry.matrix",
    name="bt_matrix",
    signature="bt_matrix(reward) -> P with P[i, j] = P(y_i ≻ y_j), shape [Y, Y]",
    equation="P(y_i ≻ y_j) = σ(r(y_i) − r(y_j)), the Bradley–Terry model (Nguyen 2025, sec. 2.1)",
    instances=_rewards,
    reference=lambda reward: tb.bradley_terry(reward),
    pitfalls=(
        Pitfall(
            "transposed",
            lambda reward: torch.sigmoid(reward[None, :] - reward[:, None]),
            "transposed: P[i, j] is the probability that y_i beats y_j, σ(r_i − r_j); a "
            "higher reward must win more often.",
        ),
        Pitfall(
            "no_sigmoid",
            lambda reward: reward[:, None] - reward[None, :],
            "a probability: apply σ to the reward difference (yours is the difference itself).",
        ),
        Pitfall(
            "ratio",
            lambda reward: (reward[:, None] - reward[None, :]).exp(),
            "exp(r_i)/exp(r_j) is the odds, not the probability: P = e^{r_i}/(e^{r_i} + e^{r_j}).",
        ),
    ),
)


@cache  # instances are built once; check() hands the learner copies
def _reward_data() -> list[dict]:
    out = []
    for k in range(4):
        g = _gen(300 + k)
        n = 4 + k % 2
        truth = torch.randn(n, generator=g, dtype=F64)
        data = tb.sample_preferences(tb.bradley_terry(truth), _simplex(n, g), 12, g)
        out.append(
            {
                "reward": torch.randn(n, generator=g, dtype=F64),
                "chosen": data.chosen,
                "rejected": data.rejected,
            }
        )
    return out


NLL = Exercise(
    id="bradley_terry.nll",
    name="reward_model_loss",
    signature="reward_model_loss(reward, chosen, rejected) -> mean loss over the pairs, a scalar",
    equation="−E_{(y_w, y_l)}[log σ(r(y_w) − r(y_l))], the logistic loss (3) of Nguyen 2025",
    instances=_reward_data,
    reference=lambda reward, chosen, rejected: tb.losses.dpo(
        reward[chosen], reward[rejected], 1.0
    ).mean(),
    pitfalls=(
        Pitfall(
            "sign",
            lambda reward, chosen, rejected: F.logsigmoid(reward[chosen] - reward[rejected]).mean(),
            "a missing minus sign: that is the log-likelihood; the loss to minimise is its "
            "negative, −log σ(r_w − r_l).",
        ),
        Pitfall(
            "swapped",
            lambda reward, chosen, rejected: (
                -F.logsigmoid(reward[rejected] - reward[chosen]).mean()
            ),
            "chosen and rejected swapped: the model should give the chosen response the higher "
            "reward, σ(r(y_w) − r(y_l)).",
        ),
        Pitfall(
            "sum",
            lambda reward, chosen, rejected: -F.logsigmoid(reward[chosen] - reward[rejected]).sum(),
            "a sum over pairs: average instead (the loss is an expectation over the data).",
        ),
    ),
)


# -- 3. deriving DPO -------------------------------------------------------------------------


def _logratio(policy, ref):
    return policy.log() - ref.log()


IMPLIED = Exercise(
    id="dpo.implied_reward",
    name="implied_reward",
    signature="implied_reward(policy, ref, beta) -> r̂, shape [Y]",
    equation="r̂(y) = β log π(y)/π_ref(y), eq. (5) of Nguyen 2025 with β log Z dropped (it cancels in (4))",
    instances=lambda: [
        {"policy": d["policy"], "ref": d["ref"], "beta": d["beta"]} for d in _bandits(policy=True)
    ],
    reference=lambda policy, ref, beta: beta * tb.logratios(policy, ref),
    pitfalls=(
        Pitfall(
            "no_ref",
            lambda policy, ref, beta: beta * policy.log(),
            "forgot log π_ref: the implicit reward is β log(π/π_ref) — a response the reference "
            "already likes gets no credit for it.",
        ),
        Pitfall(
            "beta_divided",
            lambda policy, ref, beta: _logratio(policy, ref) / beta,
            "β divided instead of multiplied: invert π ∝ π_ref e^{r/β} to r = β log(π/π_ref) + β log Z.",
        ),
        Pitfall(
            "no_beta",
            lambda policy, ref, beta: _logratio(policy, ref),
            "missing β: the reward is β log(π/π_ref) (the natural-log ratio q times β).",
        ),
        Pitfall(
            "sign",
            lambda policy, ref, beta: -beta * _logratio(policy, ref),
            "a wrong sign: responses the policy makes more likely than π_ref have positive reward.",
        ),
    ),
)


@cache  # instances are built once; check() hands the learner copies
def _dpo_data() -> list[dict]:
    out = []
    for d in _reward_data():
        k = len(out)
        g = _gen(400 + k)
        n = d["reward"].numel()
        out.append(
            {
                "policy": _simplex(n, g, 1.5),
                "ref": _simplex(n, g),
                "beta": BETAS[k],
                "chosen": d["chosen"],
                "rejected": d["rejected"],
            }
        )
    return out


def _dpo(q_of, sign=1.0, reduce="mean", swap=False):
    def fn(policy, ref, beta, chosen, rejected):
        q = q_of(policy, ref, beta)
        win, lose = (rejected, chosen) if swap else (chosen, rejected)
        loss = sign * -F.logsigmoid(q[win] - q[lose])
        return getattr(loss, reduce)()

    return fn


DPO_LOSS = Exercise(
    id="dpo.loss",
    name="dpo_loss",
    signature="dpo_loss(policy, ref, beta, chosen, rejected) -> mean loss over the pairs, a scalar",
    equation="−E[log σ(β log π(y_w)/π_ref(y_w) − β log π(y_l)/π_ref(y_l))], Rafailov et al. 2024, eq. (4)",
    instances=_dpo_data,
    reference=lambda policy, ref, beta, chosen, rejected: tb.losses.dpo(
        tb.logratios(policy, ref)[chosen], tb.logratios(policy, ref)[rejected], beta
    ).mean(),
    pitfalls=(
        Pitfall(
            "no_ref",
            _dpo(lambda p, r, b: b * p.log()),
            "forgot log π_ref: DPO compares log-ratios log π/π_ref, not log-probabilities.",
        ),
        Pitfall(
            "beta_divided",
            _dpo(lambda p, r, b: _logratio(p, r) / b),
            "β divided instead of multiplied: the margin is β(q_w − q_l).",
        ),
        Pitfall(
            "sign",
            _dpo(lambda p, r, b: b * _logratio(p, r), sign=-1.0),
            "a missing minus sign: minimise −log σ(margin), the negative log-likelihood.",
        ),
        Pitfall(
            "swapped",
            _dpo(lambda p, r, b: b * _logratio(p, r), swap=True),
            "chosen and rejected swapped: the margin is (winner) − (loser).",
        ),
    ),
)


# -- 4. Ψ-preferences and IPO ----------------------------------------------------------------


@cache  # instances are built once; check() hands the learner copies
def _preferences(with_policy: bool = False) -> list[dict]:
    out = []
    for k, kind in enumerate(("general", "cyclic", "bradley_terry", "general")):
        g = _gen(500 + k)
        n = 4 + k % 2
        d = {"pref": tb.random_preference(n, generator=g, kind=kind), "mu": _simplex(n, g)}
        if with_policy:
            d.update(ref=_simplex(n, g), beta=BETAS[k])
        out.append(d)
    return out


SCORES = Exercise(
    id="ipo.scores",
    name="psi_scores",
    signature="psi_scores(pref, mu) -> s†, shape [Y]",
    equation="s†(y) = E_{y'∼μ}[P(y ≻ y')], Nguyen 2025, eq. (7)",
    instances=_preferences,
    reference=lambda pref, mu: tb.psi_scores(pref, mu),
    pitfalls=(
        Pitfall(
            "transposed",
            lambda pref, mu: pref.mT @ mu,
            "transposed: s†(y) is how often y *wins*, the row P[y, :] averaged under μ; the "
            "column gives how often y loses (1 − s†).",
        ),
        Pitfall(
            "uniform",
            lambda pref, mu: pref.mean(-1),
            "the opponent y' is drawn from μ, not uniformly: weight P[y, y'] by μ(y').",
        ),
    ),
)


@cache  # instances are built once; check() hands the learner copies
def _labels() -> list[dict]:
    out = []
    for k in range(4):
        g = _gen(600 + k)
        out.append(
            {
                "h": torch.randn(10, generator=g, dtype=F64),
                "c": torch.randint(1, 3, (10,), generator=g),
            }
        )
    return out


LABEL = Exercise(
    id="ipo.label_loss",
    name="label_loss",
    signature="label_loss(h, c) -> per-sample squared error, shape [n]; c = 1 when y₁ wins, 2 when y₂ wins",
    equation="(h(y₁, y₂) − t(c))² with t(c) = 2 − c = 𝟙[y₁ ≻ y₂], Nguyen 2025, eq. (11) corrected",
    instances=_labels,
    reference=lambda h, c: (h - (c == 1).to(F64)) ** 2,
    pitfalls=(
        Pitfall(
            "printed_target",
            lambda h, c: (h - (c - 1).to(F64)) ** 2,
            "this is eq. (11) as printed, target c − 1: it is 0 when y₁ wins, so the regression "
            "learns the reversed preference. The corrected target is 2 − c = 𝟙[y₁ ≻ y₂] "
            "(an erratum of Nguyen 2025 in the claim catalogue).",
        ),
        Pitfall(
            "half",
            lambda h, c: (h - 0.5) ** 2,
            "that is IPO's symmetrised loss (12), which no longer needs c; eq. (11) regresses "
            "h on the label itself.",
        ),
        Pitfall(
            "label_c",
            lambda h, c: (h - c.to(F64)) ** 2,
            "the label c is 1 or 2: turn it into the indicator 𝟙[y₁ ≻ y₂] = 2 − c first.",
        ),
    ),
)


def _gibbs(score, ref, beta):
    return torch.softmax(score / beta + ref.log(), -1)


IPO_OPT = Exercise(
    id="ipo.optimum",
    name="ipo_optimum",
    signature="ipo_optimum(pref, mu, ref, beta) -> π*_IPO, shape [Y]",
    equation="π*(y) ∝ π_ref(y) exp(s†(y)/β): eq. (1) of Nguyen 2025 with the score (7)",
    instances=lambda: _preferences(with_policy=True),
    reference=lambda pref, mu, ref, beta: tb.psi_optimal_policy(pref, mu, ref, beta),
    pitfalls=(
        Pitfall(
            "transposed",
            lambda pref, mu, ref, beta: _gibbs(pref.mT @ mu, ref, beta),
            "the score is transposed: s†(y) = Σ_y' μ(y') P(y ≻ y'), the row of y.",
        ),
        Pitfall(
            "beta_multiplied",
            lambda pref, mu, ref, beta: _gibbs(pref @ mu * beta * beta, ref, beta),
            "β multiplied instead of divided: π* ∝ π_ref·exp(s†/β).",
        ),
        Pitfall(
            "no_ref",
            lambda pref, mu, ref, beta: torch.softmax(pref @ mu / beta, -1),
            "forgot π_ref: the optimum tilts the reference, π* ∝ π_ref·exp(s†/β).",
        ),
    ),
)


# -- 5. the token MDP and the soft Bellman equations -----------------------------------------


@cache  # instances are built once; check() hands the learner copies
def _trees() -> list[tuple]:
    """(tree, reward, β, solution) for a few seeded trees: full, with EOS, π_ref random."""
    out = []
    for k, (vocab, depth) in enumerate(((3, 3), (4, 2), (3, 4))):
        g = _gen(700 + k)
        tree = tm.random_tree(vocab, depth, eos=0 if k != 1 else None, generator=g)
        reward = torch.randn(tree.n_nodes, generator=g, dtype=F64)
        beta = BETAS[k]
        out.append((tree, reward, beta, tm.soft_solve(tree, reward, beta)))
    return out


def _children(tree) -> tuple[Tensor, Tensor]:
    """(states with children [S], their children [S, vocab]); the random trees are full."""
    states = (~tree.terminal).nonzero().squeeze(-1)
    kids = (tree.parent[None, :] == states[:, None]).nonzero()[:, 1].reshape(len(states), -1)
    return states, kids


def _strip(d: dict) -> dict:
    return {k: v for k, v in d.items() if not k.startswith("_")}


def _lookup(key: str, instances: Callable[[], list[dict]], probe: str):
    def ref(**kw):
        for d in instances():
            if torch.equal(d[probe], kw[probe]) and all(
                torch.equal(d[k], v) if isinstance(v, Tensor) else d[k] == v for k, v in kw.items()
            ):
                return d[key]
        raise ValueError("the arguments must be one of the exercise's instances")

    return ref


@cache  # instances are built once; check() hands the learner copies
def _values() -> list[dict]:
    out = []
    for tree, _, beta, sol in _trees():
        states, kids = _children(tree)
        out.append({"q": sol.q[kids], "beta": beta, "_v": sol.v[states]})
    return out


SOFT_V = Exercise(
    id="soft_bellman.value",
    name="soft_value",
    signature="soft_value(q, beta) -> V*(s) per state, shape [S] (q: Q*(s, a) of every action, [S, A])",
    equation="V*(s) = β log Σ_a exp(Q*(s, a)/β), Rafailov et al. 2024, eq. (6)",
    instances=lambda: [{k: v for k, v in d.items() if k != "_v"} for d in _values()],
    reference=_lookup("_v", _values, "q"),  # the V* that soft_solve computed for these states
    pitfalls=(
        Pitfall(
            "hard_max",
            lambda q, beta: q.max(-1).values,
            "that is the hard Bellman backup (β → 0); the soft value is β log Σ_a exp(Q/β).",
        ),
        Pitfall(
            "beta_multiplied",
            lambda q, beta: torch.logsumexp(beta * q, -1) / beta,
            "β multiplied instead of divided inside: V = β log Σ_a exp(Q/β).",
        ),
        Pitfall(
            "no_beta_outside",
            lambda q, beta: torch.logsumexp(q / beta, -1),
            "missing the β in front: V = β·log Σ exp(Q/β), in the units of Q.",
        ),
        Pitfall(
            "mean",
            lambda q, beta: q.mean(-1),
            "an average of Q is not a value: V is the soft maximum β log Σ exp(Q/β).",
        ),
    ),
)


@cache  # instances are built once; check() hands the learner copies
def _edges() -> list[dict]:
    out = []
    for tree, reward, beta, sol in _trees():
        e = torch.arange(1, tree.n_nodes)
        out.append(
            {
                "reward": reward[e],
                "log_ref": tree.log_ref[e],
                "v_next": sol.v[e],
                "beta": beta,
                "_q": sol.q[e],
                "_tree": tree,
            }
        )
    return out


SOFT_Q = Exercise(
    id="soft_bellman.q",
    name="soft_q",
    signature="soft_q(reward, log_ref, v_next, beta) -> Q*(s, a) per edge, shape [E]",
    equation="Q*(s, a) = r(s, a) + β log π_ref(a|s) + V*(s·a) (0 at the end), Rafailov et al. 2024, eq. (7)",
    instances=lambda: [_strip(d) for d in _edges()],
    reference=_lookup("_q", _edges, "reward"),
    pitfalls=(
        Pitfall(
            "no_ref",
            lambda reward, log_ref, v_next, beta: reward + v_next,
            "forgot β log π_ref: in the KL-regularised MDP each step earns r + β log π_ref(a|s).",
        ),
        Pitfall(
            "beta_divided",
            lambda reward, log_ref, v_next, beta: reward + log_ref / beta + v_next,
            "β divided instead of multiplied: the KL term is β log π_ref(a|s).",
        ),
        Pitfall(
            "no_future",
            lambda reward, log_ref, v_next, beta: reward + beta * log_ref,
            "forgot V*(s·a): Q* adds the soft value of the state the action leads to.",
        ),
    ),
)


@cache  # instances are built once; check() hands the learner copies
def _policy_edges() -> list[dict]:
    out = []
    for tree, _, beta, sol in _trees():
        e = torch.arange(1, tree.n_nodes)
        out.append(
            {
                "q": sol.q[e],
                "v_state": sol.v[tree.parent[e]],
                "beta": beta,
                "_lp": sol.log_policy[e],
            }
        )
    return out


SOFT_PI = Exercise(
    id="soft_bellman.policy",
    name="log_policy",
    signature="log_policy(q, v_state, beta) -> log π*(a|s) per edge, shape [E]",
    equation="π*(a|s) = exp((Q*(s, a) − V*(s))/β), Rafailov et al. 2024, eq. (5)",
    instances=lambda: [_strip(d) for d in _policy_edges()],
    reference=_lookup("_lp", _policy_edges, "q"),
    pitfalls=(
        Pitfall(
            "no_beta",
            lambda q, v_state, beta: q - v_state,
            "missing β: log π* = (Q* − V*)/β, the advantage in units of β.",
        ),
        Pitfall(
            "beta_multiplied",
            lambda q, v_state, beta: beta * (q - v_state),
            "β multiplied instead of divided: log π* = (Q* − V*)/β.",
        ),
        Pitfall(
            "no_value",
            lambda q, v_state, beta: q / beta,
            "forgot V*(s): it normalises the policy, log π* = (Q* − V*)/β.",
        ),
    ),
)


# -- 6. a language model as a Q-function -----------------------------------------------------


@cache  # instances are built once; check() hands the learner copies
def _logit_edges() -> list[dict]:
    """Arbitrary logits on each tree read as Q; the reward recovered by tokenmdp.reward_from_q."""
    out = []
    for k, (tree, _, beta, _) in enumerate(_trees()):
        q = 3 * torch.randn(tree.n_nodes, generator=_gen(800 + k), dtype=F64)
        r = tm.reward_from_q(tree, q, beta)
        v = tm.soft_solve(tree, r, beta).v
        e = torch.arange(1, tree.n_nodes)
        out.append(
            {"q": q[e], "log_ref": tree.log_ref[e], "v_next": v[e], "beta": beta, "_r": r[e]}
        )
    return out


REWARD_Q = Exercise(
    id="q_function.reward",
    name="reward_from_q",
    signature="reward_from_q(q, log_ref, v_next, beta) -> r(s, a) per edge, shape [E]",
    equation="r(s, a) = Q(s, a) − β log π_ref(a|s) − V(s·a), eq. (7) inverted (Rafailov et al. 2024, Lem. 1)",
    instances=lambda: [_strip(d) for d in _logit_edges()],
    reference=_lookup("_r", _logit_edges, "q"),
    pitfalls=(
        Pitfall(
            "no_ref",
            lambda q, log_ref, v_next, beta: q - v_next,
            "forgot −β log π_ref: Q* already contains the KL term β log π_ref(a|s), take it out.",
        ),
        Pitfall(
            "v_sign",
            lambda q, log_ref, v_next, beta: q - beta * log_ref + v_next,
            "V(s·a) has the wrong sign: Q = r + β log π_ref + V(s·a), so r = Q − β log π_ref − V(s·a).",
        ),
        Pitfall(
            "beta_divided",
            lambda q, log_ref, v_next, beta: q - log_ref / beta - v_next,
            "β divided instead of multiplied: subtract β log π_ref(a|s).",
        ),
    ),
)


@cache  # instances are built once; check() hands the learner copies
def _shaping() -> list[dict]:
    out = []
    for k, (tree, reward, _, _) in enumerate(_trees()):
        phi = torch.randn(tree.n_nodes, generator=_gen(900 + k), dtype=F64).masked_fill(
            tree.terminal, 0.0
        )
        shaped = tm.shape_reward(tree, reward, phi)
        e = torch.arange(1, tree.n_nodes)
        out.append(
            {
                "reward": reward[e],
                "phi_state": phi[tree.parent[e]],
                "phi_next": phi[e],
                "_shaped": shaped[e],
            }
        )
    return out


SHAPING = Exercise(
    id="q_function.shaping",
    name="shape",
    signature="shape(reward, phi_state, phi_next) -> r'(s, a) per edge, shape [E]",
    equation="r'(s_t, a_t) = r(s_t, a_t) + Φ(s_{t+1}) − Φ(s_t), Rafailov et al. 2024, Definition 1",
    instances=lambda: [_strip(d) for d in _shaping()],
    reference=_lookup("_shaped", _shaping, "reward"),
    pitfalls=(
        Pitfall(
            "reversed",
            lambda reward, phi_state, phi_next: reward + phi_state - phi_next,
            "the difference is reversed: r' = r + Φ(s_{t+1}) − Φ(s_t) (either order telescopes, "
            "but Definition 1 and tokenmdp.shape_reward use this one).",
        ),
        Pitfall(
            "next_only",
            lambda reward, phi_state, phi_next: reward + phi_next,
            "only Φ(s_{t+1}): without − Φ(s_t) the sum over a sequence does not telescope and "
            "the optimal policy changes.",
        ),
    ),
)


# -- 7. credit assignment and search ---------------------------------------------------------


@cache  # instances are built once; check() hands the learner copies
def _credit() -> list[dict]:
    out = []
    for tree, _, beta, sol in _trees():
        e = torch.arange(1, tree.n_nodes)
        lp = sol.log_policy
        out.append(
            {
                "log_policy": lp[e],
                "log_ref": tree.log_ref[e],
                "beta": beta,
                "_r": tm.implicit_rewards(tree, lp, beta)[e],
            }
        )
    return out


CREDIT = Exercise(
    id="credit.token_rewards",
    name="token_rewards",
    signature="token_rewards(log_policy, log_ref, beta) -> implicit reward per token, shape [E]",
    equation="β log π(a_t|s_t)/π_ref(a_t|s_t), Rafailov et al. 2024, eq. (11)",
    instances=lambda: [_strip(d) for d in _credit()],
    reference=_lookup("_r", _credit, "log_policy"),
    pitfalls=(
        Pitfall(
            "no_ref",
            lambda log_policy, log_ref, beta: beta * log_policy,
            "forgot log π_ref: the credit of a token is how much more likely the tuned model "
            "makes it than the reference, β log π/π_ref.",
        ),
        Pitfall(
            "beta_divided",
            lambda log_policy, log_ref, beta: (log_policy - log_ref) / beta,
            "β divided instead of multiplied: β log π/π_ref.",
        ),
        Pitfall(
            "sign",
            lambda log_policy, log_ref, beta: beta * (log_ref - log_policy),
            "a wrong sign: β log π/π_ref is positive where the tuned model prefers the token.",
        ),
    ),
)


@cache  # instances are built once; check() hands the learner copies
def _search() -> list[dict]:
    out = []
    for tree, reward, beta, sol in _trees():
        depth = max(1, tree.max_depth - 1)
        nodes = tm.frontier(tree, depth)
        # eq. (13): the same objective written with π* only — a route that shares no sum with (12)
        exact = beta * tm.prefix_sum(tree, sol.log_policy)[nodes] + sol.v[0]
        out.append(
            {
                "prefix_return": tm.prefix_sum(tree, reward)[nodes],
                "prefix_log_ref": tm.prefix_sum(tree, tree.log_ref)[nodes],
                "v_frontier": sol.v[nodes],
                "beta": beta,
                "_score": exact,
            }
        )
    return out


SEARCH = Exercise(
    id="credit.search_score",
    name="search_score",
    signature="search_score(prefix_return, prefix_log_ref, v_frontier, beta) -> score per prefix, shape [K]",
    equation="Σ_t [r(s_t, a_t) + β log π_ref(a_t|s_t)] + V*(s_{K+1}), Rafailov et al. 2024, eq. (12)",
    instances=lambda: [_strip(d) for d in _search()],
    reference=_lookup("_score", _search, "prefix_return"),
    pitfalls=(
        Pitfall(
            "myopic",
            lambda prefix_return, prefix_log_ref, v_frontier, beta: (
                prefix_return + beta * prefix_log_ref
            ),
            "no value at the frontier: this search is myopic; eq. (12) adds V*(s_{K+1}), what "
            "the best continuation is still worth.",
        ),
        Pitfall(
            "no_ref",
            lambda prefix_return, prefix_log_ref, v_frontier, beta: prefix_return + v_frontier,
            "forgot β log π_ref: every step of eq. (12) earns r + β log π_ref(a|s).",
        ),
        Pitfall(
            "beta_divided",
            lambda prefix_return, prefix_log_ref, v_frontier, beta: (
                prefix_return + prefix_log_ref / beta + v_frontier
            ),
            "β divided instead of multiplied: the KL term is β log π_ref.",
        ),
    ),
)


# -- 8. which loss_type ----------------------------------------------------------------------

EPS = (0.1, 0.25, 0.05, 0.4)


@cache  # instances are built once; check() hands the learner copies
def _noisy() -> list[dict]:
    kinds = ("bradley_terry", "general", "cyclic", "deterministic")
    return [
        {"pref": tb.random_preference(4 + k % 2, generator=_gen(1000 + k), kind=kind), "eps": eps}
        for k, (kind, eps) in enumerate(zip(kinds, EPS, strict=True))
    ]


NOISY = Exercise(
    id="which_loss.noisy_preference",
    name="noisy_preference",
    signature="noisy_preference(pref, eps) -> P_ε, shape [Y, Y]",
    equation="P_ε = (1 − ε)P + εPᵀ: labels from P flipped with probability ε (Chowdhury et al. 2024)",
    instances=_noisy,
    # a route through (8a) instead of the transpose: P(y_j ≻ y_i) = 1 − P(y_i ≻ y_j)
    reference=lambda pref, eps: (1 - eps) * pref + eps * (1 - pref),
    pitfalls=(
        Pitfall(
            "swapped",
            lambda pref, eps: eps * pref + (1 - eps) * pref.mT,
            "ε and 1 − ε swapped: a label is kept with probability 1 − ε, so P_ε = (1 − ε)P + εPᵀ.",
        ),
        Pitfall(
            "coin",
            lambda pref, eps: (1 - eps) * pref + eps / 2,
            "that replaces a label by a fair coin with probability ε (a flip rate of ε/2): a "
            "flipped label reports the other order, y_j ≻ y_i, so mix in εPᵀ.",
        ),
        Pitfall(
            "dropped",
            lambda pref, eps: (1 - eps) * pref,
            "a flipped label is not lost, it says y_j ≻ y_i: add εPᵀ (P_ε must still satisfy "
            "P_ε + P_εᵀ = 1).",
        ),
    ),
)


@cache  # instances are built once; check() hands the learner copies
def _robust_pairs() -> list[dict]:
    out = []
    for k, (beta, eps) in enumerate(zip(BETAS, EPS, strict=True)):
        g = _gen(1100 + k)
        out.append(
            {
                "chosen_logratios": 2 * torch.randn(10, generator=g, dtype=F64),
                "rejected_logratios": 2 * torch.randn(10, generator=g, dtype=F64),
                "beta": beta,
                "eps": eps,
            }
        )
    return out


def _clean(chosen_logratios, rejected_logratios, beta) -> tuple[Tensor, Tensor]:
    """ℓ(h) and ℓ(−h), ℓ(h) = −log σ(βh): DPO's loss on the pair as labelled and flipped."""
    h = beta * (chosen_logratios - rejected_logratios)
    return F.softplus(-h), F.softplus(h)


def _unbiased(chosen_logratios, rejected_logratios, beta, eps) -> Tensor:
    """ℓ̃(h) from its definition: the 2×2 system (1 − ε)ℓ̃(±h) + εℓ̃(∓h) = ℓ(±h), solved."""
    flip = torch.tensor([[1 - eps, eps], [eps, 1 - eps]], dtype=F64)
    clean = torch.stack(_clean(chosen_logratios, rejected_logratios, beta))  # [2, n]
    return torch.linalg.solve(flip, clean)[0]


def _mixed(sign: float, scale: bool):
    def fn(chosen_logratios, rejected_logratios, beta, eps):
        kept, flipped = _clean(chosen_logratios, rejected_logratios, beta)
        loss = (1 - eps) * kept + sign * eps * flipped
        return loss / (1 - 2 * eps) if scale else loss

    return fn


ROBUST = Exercise(
    id="which_loss.robust",
    name="robust_loss",
    signature="robust_loss(chosen_logratios, rejected_logratios, beta, eps) -> ℓ̃ per pair, shape [n]",
    equation="(1 − ε)ℓ̃(h) + εℓ̃(−h) = ℓ(h) = −log σ(βh): rDPO, Chowdhury et al. 2024 (TRL's "
    '"robust")',
    instances=_robust_pairs,
    reference=_unbiased,
    pitfalls=(
        Pitfall(
            "conservative",
            _mixed(+1.0, False),
            "that is conservative DPO (TRL's sigmoid with label_smoothing = ε): it adds the "
            "flipped term and fits the noise; rDPO removes it, ℓ̃ = [(1 − ε)ℓ(h) − εℓ(−h)]/(1 − 2ε).",
        ),
        Pitfall(
            "unscaled",
            _mixed(-1.0, False),
            "missing the 1/(1 − 2ε): solve (1 − ε)ℓ̃(h) + εℓ̃(−h) = ℓ(h) together with the same "
            "equation at −h; without it the expected loss is (1 − 2ε)·ℓ(h), not ℓ(h).",
        ),
        Pitfall(
            "plain",
            lambda chosen_logratios, rejected_logratios, beta, eps: _clean(
                chosen_logratios, rejected_logratios, beta
            )[0],
            "that is DPO's loss ℓ(h) itself: with labels flipped at rate ε its expectation is "
            "(1 − ε)ℓ(h) + εℓ(−h); find the ℓ̃ whose expectation is ℓ(h).",
        ),
    ),
)


def _tilted(ref: Tensor, score: Tensor, lengths: Tensor) -> Tensor:
    """π ∝ π_ref e^{|y|(s + c)}, c found by bisection of the normaliser (for the pitfalls)."""
    from scipy.optimize import brentq

    def excess(c: float) -> float:
        return (ref * torch.exp(lengths * (score + c))).sum().item() - 1.0

    c = brentq(excess, -score.max().item(), -score.min().item(), xtol=1e-15)
    return ref * torch.exp(lengths * (score + c))


@cache  # instances are built once; check() hands the learner copies
def _length_worlds() -> list[dict]:
    """Bradley–Terry labels, pairs from a full-support μ; the exact minimiser of TRL's
    sigmoid_norm population loss, by Newton's method on the loss (toybandit.minimise_loss)."""
    out = []
    for k, beta in enumerate(BETAS):
        g = _gen(1200 + k)
        n = 4 + k % 3
        reward = 0.4 * torch.randn(n, generator=g, dtype=F64)
        ref, mu = _simplex(n, g), _simplex(n, g)
        lengths = torch.randint(1, 5, (n,), generator=g).to(F64)
        pairs = tb.population_pairs(tb.bradley_terry(reward), mu)
        fit = tb.minimise_loss(
            lambda c, r, nc, nr, beta=beta: tb.losses.sigmoid_norm(c, r, nc, nr, beta),
            pairs,
            ref,
            lengths=lengths,
        )
        assert fit.finite and fit.converged, fit.verdict
        out.append(
            {"reward": reward, "ref": ref, "lengths": lengths, "beta": beta, "_pi": fit.policy}
        )
    return out


LENGTH = Exercise(
    id="which_loss.length_normalised",
    name="length_normalised_optimum",
    signature="length_normalised_optimum(reward, ref, lengths, beta) -> π̂, shape [Y]",
    equation="log π̂(y) = log π_ref(y) + |y|(r(y)/β + c), Σ π̂ = 1: the minimiser of TRL's "
    "sigmoid_norm on Bradley–Terry labels (Nguyen 2025, eq. (6) on q/|y|)",
    instances=lambda: [_strip(d) for d in _length_worlds()],
    reference=_lookup("_pi", _length_worlds, "reward"),
    pitfalls=(
        Pitfall(
            "no_length",
            lambda reward, ref, lengths, beta: _gibbs(reward, ref, beta),
            "that is π*, the minimiser of the summed loss (TRL's sigmoid); sigmoid_norm compares "
            "q/|y|, so it is q/|y| that equals r/β + c: log π̂ = log π_ref + |y|(r/β + c).",
        ),
        Pitfall(
            "shared_constant",
            lambda reward, ref, lengths, beta: torch.softmax(
                lengths * reward / beta + ref.log(), -1
            ),
            "normalised by one shared constant (softmax): the constant c sits inside the factor "
            "|y|, log π̂ = log π_ref + |y|(r/β + c); solve Σ π_ref e^{|y|(r/β + c)} = 1 for c "
            "(scipy.optimize.brentq).",
        ),
        Pitfall(
            "length_divided",
            lambda reward, ref, lengths, beta: _tilted(ref, reward / beta, 1 / lengths),
            "|y| divides instead of multiplies: q/|y| = r/β + c, so q = |y|(r/β + c).",
        ),
    ),
)


EXERCISES: dict[str, Exercise] = {
    ex.id: ex
    for ex in (
        GIBBS,
        VALUE,
        BT,
        NLL,
        IMPLIED,
        DPO_LOSS,
        SCORES,
        LABEL,
        IPO_OPT,
        SOFT_V,
        SOFT_Q,
        SOFT_PI,
        REWARD_Q,
        SHAPING,
        CREDIT,
        SEARCH,
        NOISY,
        ROBUST,
        LENGTH,
    )
}
"""Every exercise, by id (``"<notebook>.<name>"``), in course order."""
