"""Fault injection: the catalogue's teeth, proven.

Each :class:`Fault` is a plausible one-line bug (a sign flip, β as a multiplier, log π_ref dropped
from the backup, logsumexp replaced by max, a broken normaliser, V ≠ 0 at terminal states, a tree
level skipped, chosen/rejected swapped, the IPO target 1/τ, a one-token shift in LM log-probs, the
attention mask ignored, …), declared as data: the module and attribute it replaces and a function
from the original object to the faulty one. :func:`injected` monkeypatches it into the library
(the defining module and every module that imported the name), one fault at a time, and restores
it after. :func:`fault_matrix` runs claims under each fault; a fault that no claim catches is a
missing claim. ``proofs-check --faults`` prints the matrix; the test suite asserts that every fault
is caught.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .reference import group_logsumexp
from .registry import Claim, run_claim, select

FAULT_INSTANCES = 3


@dataclass(frozen=True)
class Fault:
    """One injected bug.

    Attributes:
        id: short, dotted: ``<package>.<what>``.
        module: the module that defines the attribute (e.g. ``"tokenmdp.solve"``).
        attribute: the name replaced there (and wherever else it was imported by name).
        replace: ``replace(original) -> faulty``.
        description: the bug in words.
        against: ``--claim`` patterns of the claims run under it (all non-LM claims by default).
    """

    id: str
    module: str
    attribute: str
    replace: Callable[[Any], Any]
    description: str
    against: tuple[str, ...] = ("bandit", "tree", "layered")


@contextlib.contextmanager
def injected(fault: Fault) -> Iterator[None]:
    """Replace ``fault.attribute`` of ``fault.module`` by the faulty object in every loaded module
    of toybandit, tokenmdp and proofs_check that holds the original; restore on exit."""
    original = getattr(importlib.import_module(fault.module), fault.attribute)
    faulty = fault.replace(original)
    patched = []
    for name, mod in list(sys.modules.items()):
        if mod is None or not name.startswith(("toybandit", "tokenmdp", "proofs_check")):
            continue
        for key, value in list(vars(mod).items()):
            if value is original:
                setattr(mod, key, faulty)
                patched.append((mod, key))
    try:
        yield
    finally:
        for mod, key in patched:
            setattr(mod, key, original)


# -- the faulty pieces ----------------------------------------------------------------------------


def _finite_log_ref(tree):
    return torch.where(torch.isfinite(tree.log_ref), tree.log_ref, 0.0)


def _solve_copy(levels: Callable[[int], range], backup: Callable | None = None):
    """A copy of tokenmdp.soft_solve's loop (1-D rewards) with the levels or the kernel replaced."""
    from tokenmdp import solve as s
    from tokenmdp.validation import edge_values

    def soft_solve(tree, reward, beta):
        reward = edge_values(tree, reward, "reward").to(torch.float64)
        q, lp, val = torch.empty_like(reward), torch.empty_like(reward), torch.zeros_like(reward)
        scratch = s._scratch(tree, reward)
        for d in levels(tree.max_depth):
            rows = tree.level(d)
            q[rows] = reward[rows] + beta * tree.log_ref[rows] + val[rows]
            lp[rows] = q[rows] / beta
            (backup or s._soft_backup)(tree, d, lp, val, scratch, beta)
        q[0], lp[0] = 0.0, 0.0
        return s.Solution(q, val, lp)

    return soft_solve


def _backup(aggregate: str = "logsumexp", normalise: bool = True):
    """One level of eq. (6) written with scatter ops (the reference's logsumexp), with the
    aggregate or normaliser broken."""

    def backup(tree, d, lp, val, scratch, beta):
        rows = tree.level(d)
        x, parent = lp[rows].clone(), tree.parent[rows]
        if aggregate == "max":
            agg = torch.full_like(val, -math.inf)
            agg = agg.scatter_reduce(0, parent, x, "amax", include_self=True)
        else:
            agg = group_logsumexp(x, parent, val.shape[0])
        has = torch.zeros_like(val, dtype=torch.bool)
        has[parent] = True
        val[has] = beta * agg[has]
        lp[rows] = x - agg[parent] if normalise else x

    return backup


def _terminal_value(original):
    def soft_solve(tree, reward, beta):
        sol = original(tree, reward + tree.terminal.to(torch.float64), beta)
        return sol._replace(v=sol.v + tree.terminal.to(sol.v.dtype))  # V = 1 at terminal states

    return soft_solve


def _swap_pairs(original):
    def swapped(*args, **kwargs):
        pairs = original(*args, **kwargs)
        return pairs._replace(chosen=pairs.rejected, rejected=pairs.chosen)

    return swapped


def _under_policy(original):
    """expected_implicit_reward averaging under π instead of π_ref."""

    def expected(tree, log_policy, beta):
        parent = tree.parent.clamp(min=0)
        ratio = torch.where(torch.isfinite(log_policy), log_policy - tree.log_ref, 0.0)
        weighted = (log_policy.exp() * beta * ratio)[1:]
        return torch.zeros_like(log_policy).index_add(0, parent[1:], weighted)

    return expected


def _ipo_objective_target_one(original):
    def objective(policy, pref, mu, ref, beta):
        h = beta * (policy.log() - ref.log())
        h = h[:, None] - h[None, :]
        return (2 * mu[:, None] * mu[None, :] * pref * (h - 1.0) ** 2).sum()

    return objective


def _wrap(transform):
    """replace(original) = a function calling the original with its result transformed."""

    def replace(original):
        def faulty(*args, **kwargs):
            return transform(original, *args, **kwargs)

        return faulty

    return replace


def _lm_shift(original):
    def token_logprobs(model, input_ids, attention_mask=None):
        return torch.roll(original(model, input_ids, attention_mask), 1, -1)

    return token_logprobs


def _lm_no_mask(original):
    def forward(model, input_ids, attention_mask):
        return original(model, input_ids, torch.ones_like(attention_mask))

    return forward


def _robust_smoothing_sign(original):
    """rDPO with the ε term's sign flipped: conservative DPO's loss, rescaled by 1/(1 − 2ε)."""

    def robust(chosen, rejected, beta, label_smoothing=0.0):
        x = beta * (chosen - rejected)
        eps = label_smoothing
        return (-(1 - eps) * F.logsigmoid(x) - eps * F.logsigmoid(-x)) / (1 - 2 * eps)

    return robust


def _orpo_on_log_probs(original):
    """ORPO's odds ratio replaced by the ratio of probabilities (log1mexp dropped)."""

    def orpo(chosen, rejected, beta):
        return -beta * F.logsigmoid(chosen - rejected)

    return orpo


def _apo_zero_rejected_sign(original):
    def apo_zero(chosen, rejected, beta):
        return 1 - torch.sigmoid(beta * chosen) - torch.sigmoid(beta * rejected)

    return apo_zero


TREE = ("tree", "layered")
BANDIT = ("bandit",)
ATLAS = ("atlas",)

FAULTS: tuple[Fault, ...] = (
    # -- tokenmdp: the soft solver and its inverse
    Fault("tokenmdp.solve.no-log-ref", "tokenmdp.solve", "soft_solve",
          _wrap(lambda f, t, r, b: f(t, r - b * _finite_log_ref(t), b)),
          "β log π_ref dropped from the backup (7)", TREE),
    Fault("tokenmdp.solve.beta-inverted", "tokenmdp.solve", "soft_solve",
          _wrap(lambda f, t, r, b: f(t, r, 1 / b)), "β as a multiplier: the solve runs at 1/β", TREE),
    Fault("tokenmdp.solve.reward-sign", "tokenmdp.solve", "soft_solve",
          _wrap(lambda f, t, r, b: f(t, -r, b)), "the reward's sign flipped", TREE),
    Fault("tokenmdp.solve.lse-is-max", "tokenmdp.solve", "_soft_backup",
          lambda f: _backup("max"), "logsumexp over children replaced by max (6)", TREE),
    Fault("tokenmdp.solve.no-normaliser", "tokenmdp.solve", "_soft_backup",
          lambda f: _backup(normalise=False), "log π = Q/β: V*(s) not subtracted (5)", TREE),
    Fault("tokenmdp.solve.terminal-value", "tokenmdp.solve", "soft_solve", _terminal_value,
          "V* = 1 instead of 0 at terminal states", TREE),
    Fault("tokenmdp.solve.level-off-by-one", "tokenmdp.solve", "soft_solve",
          lambda f: _solve_copy(lambda depth: range(depth, 1, -1)),
          "the backward pass stops one level early (level 1 never backed up)", TREE),
    Fault("tokenmdp.solve.inverse-ref-sign", "tokenmdp.solve", "reward_from_q",
          _wrap(lambda f, t, q, b: f(t, q, b) + 2 * b * _finite_log_ref(t)),
          "reward_from_q adds β log π_ref instead of subtracting it", TREE),
    Fault("tokenmdp.solve.inverse-no-value", "tokenmdp.solve", "reward_from_q",
          _wrap(lambda f, t, q, b: torch.where(
              torch.isfinite(t.log_ref) & (torch.arange(t.n_nodes) > 0),
              q - b * t.log_ref, torch.zeros_like(q))),
          "reward_from_q forgets V(s_{t+1}) (Appendix A's printed inverse)", TREE),
    # -- tokenmdp: sequence views, shaping, search, training
    Fault("tokenmdp.sequences.implicit-sign", "tokenmdp.sequences", "implicit_rewards",
          _wrap(lambda f, *a: -f(*a)), "implicit rewards with the wrong sign", TREE),
    Fault("tokenmdp.sequences.implicit-no-beta", "tokenmdp.sequences", "implicit_rewards",
          _wrap(lambda f, t, lp, b: f(t, lp, b) / b), "implicit rewards without the factor β", TREE),
    Fault("tokenmdp.sequences.prefix-off-by-one", "tokenmdp.sequences", "prefix_sum",
          _wrap(lambda f, t, x: f(t, x) - torch.as_tensor(x)),
          "prefix sums stop one edge short of the node", TREE),
    Fault("tokenmdp.sequences.shaping-sign", "tokenmdp.sequences", "shape_reward",
          _wrap(lambda f, t, r, phi, **k: f(t, r, -torch.as_tensor(phi), **k)),
          "shaping by Φ(s_t) − Φ(s_{t+1})", TREE),
    Fault("tokenmdp.sequences.expected-under-policy", "tokenmdp.sequences",
          "expected_implicit_reward", _under_policy,
          "eq. (14)'s expectation taken under π instead of π_ref", TREE),
    Fault("tokenmdp.train.preference-transposed", "tokenmdp.train", "trajectory_preference",
          _wrap(lambda f, t, r: f(t, r).T), "p*(τ_w ≻ τ_l) with winner and loser swapped", TREE),
    Fault("tokenmdp.train.pairs-swapped", "tokenmdp.train", "population_trajectory_pairs",
          _swap_pairs, "population pairs with chosen and rejected swapped", TREE),
    Fault("tokenmdp.search.beam-keeps-worst", "tokenmdp.search", "beam_search",
          _wrap(lambda f, t, s, k: f(t, -torch.as_tensor(s), k)),
          "beam search keeps the least likely prefixes", TREE),
    Fault("tokenmdp.search.prefix-argmin", "tokenmdp.search", "best_prefix",
          _wrap(lambda f, t, s, d, **k: f(t, -torch.as_tensor(s), d, **k)),
          "best_prefix returns the worst prefix", TREE),
    # -- toybandit
    Fault("toybandit.optimal.beta-multiplier", "toybandit.optimal", "log_optimal_policy",
          _wrap(lambda f, r, ref, b: f(torch.as_tensor(r) * b * b, ref, b)),
          "π* ∝ π_ref e^{rβ}: β as a multiplier", BANDIT),
    Fault("toybandit.optimal.log-partition-sign", "toybandit.optimal", "log_partition",
          _wrap(lambda f, *a: -f(*a)), "β log Z with the wrong sign", BANDIT),
    Fault("toybandit.optimal.kl-reversed", "toybandit.optimal", "kl_divergence",
          _wrap(lambda f, p, q: f(q, p)), "KL(π_ref ‖ π) for KL(π ‖ π_ref)", BANDIT),
    Fault("toybandit.preferences.bradley-terry-transposed", "toybandit.preferences",
          "bradley_terry", _wrap(lambda f, s: f(s).T), "Bradley–Terry P with rows and columns swapped",
          BANDIT),
    Fault("toybandit.data.pairs-swapped", "toybandit.data", "population_pairs", _swap_pairs,
          "population pairs with chosen and rejected swapped", BANDIT),
    Fault("toybandit.fit.newton-loose", "toybandit.fit", "fit_policy",
          _wrap(lambda f, *a, **k: f(*a, **{**k, "tolerance": 1e-3})),
          "fit_policy's Newton stopping tolerance loosened 1e9× (1e-12 → 1e-3)", BANDIT),
    Fault("toybandit.fit.ipo-target", "toybandit.fit", "_margin_loss",
          _wrap(lambda f, loss, beta, tau, eps: f(loss, beta, tau / 2 if loss == "ipo" else tau, eps)),
          "IPO regresses h on 1/τ instead of 1/(2τ)", BANDIT),
    Fault("toybandit.losses.dpo-swapped", "toybandit.losses", "dpo",
          _wrap(lambda f, w, l_, b, **k: f(l_, w, b, **k)), "the DPO loss with chosen/rejected swapped",
          TREE),
    Fault("toybandit.objectives.label-target-printed", "toybandit.objectives",
          "ipo_label_objective",
          _wrap(lambda f, *a, printed=False: f(*a, printed=not printed)),
          "eq. (11) evaluated with the printed target c − 1", BANDIT),
    Fault("toybandit.objectives.ipo-target-one", "toybandit.objectives", "ipo_objective",
          _ipo_objective_target_one, "eq. (12) regressing on 1 instead of ½", BANDIT),
    # -- the loss papers' claims (the atlas)
    Fault("toybandit.losses.robust-smoothing-sign", "toybandit.losses", "robust",
          _robust_smoothing_sign, "rDPO with the sign of its ε term flipped", ATLAS),
    Fault("toybandit.losses.f-scores-doubled", "toybandit.losses", "f_divergence_scores",
          _wrap(lambda f, q, kind="reverse_kl", alpha=0.5:
                f(q, kind, alpha) * (1 if kind == "reverse_kl" else 2)),
          "f-divergence scores doubled (β twice as large in f-DPO)", ATLAS),
    Fault("toybandit.losses.sigmoid-norm-summed", "toybandit.more_losses", "sigmoid_norm",
          _wrap(lambda f, c, r, nc, nr, beta: f(c, r, 1.0 + 0 * nc, 1.0 + 0 * nr, beta)),
          "sigmoid_norm on summed log-ratios (lengths ignored)", ATLAS),
    Fault("toybandit.losses.orpo-probability-ratio", "toybandit.more_losses", "orpo",
          _orpo_on_log_probs, "ORPO on log π_w − log π_l instead of the log odds ratio", ATLAS),
    Fault("toybandit.losses.apo-zero-rejected-sign", "toybandit.losses", "apo_zero",
          _apo_zero_rejected_sign, "APO-zero rewarding the rejected response's likelihood",
          ATLAS),
    Fault("toybandit.minimise.any-escape", "toybandit.minimise", "_confirm_escape",
          lambda f: lambda *a, **k: True,
          "minimise_loss confirms every escape it suspects, a linear piece ending at a flat set "
          "too", ATLAS),
    Fault("toybandit.minimise.underflow-is-a-minimum", "toybandit.minimise", "_confirm_falling",
          lambda f: lambda *a, **k: False,
          "minimise_loss takes a loss underflowed to its asymptote for a minimum", ATLAS),
    # -- tokenmdp.lm
    Fault("tokenmdp.lm.shifted-logprobs", "tokenmdp.lm.scoring", "token_logprobs", _lm_shift,
          "LM log-probs shifted by one token", ("lm",)),
    Fault("tokenmdp.lm.mask-ignored", "tokenmdp.lm.model", "hidden_or_logits", _lm_no_mask,
          "the attention mask ignored in the LM forward pass", ("lm",)),
)  # fmt: skip


def _claims(fault: Fault) -> list[Claim]:
    chosen = select(fault.against)
    lm = "lm" in fault.against
    return [c for c in chosen if "symbolic" not in c.tags and (lm or "lm" not in c.tags)]


def catches(
    fault: Fault, *, seed: int = 0, instances: int = FAULT_INSTANCES, first: bool = False
) -> dict[str, bool]:
    """claim id → whether the claim misses its expected outcome under the fault (caught it).
    ``first`` stops at the first claim that catches it."""
    out: dict[str, bool] = {}
    with injected(fault):
        for c in _claims(fault):
            n = min(c.instances, instances)
            out[c.id] = not run_claim(c, seed=seed, instances=n).ok
            if first and out[c.id]:
                break
    return out


def fault_matrix(
    *, quick: bool = False, seed: int = 0, progress: Callable[[int, int, str], None] | None = None
) -> dict[str, dict[str, bool]]:
    """fault id → (claim id → caught) for every fault of :data:`FAULTS`; ``quick`` runs 2
    instances per claim instead of 3."""
    matrix = {}
    for k, fault in enumerate(FAULTS, start=1):
        if progress:
            progress(k, len(FAULTS), fault.id)
        matrix[fault.id] = catches(fault, seed=seed, instances=2 if quick else FAULT_INSTANCES)
    return matrix


def matrix_table(matrix: dict[str, dict[str, bool]]) -> str:
    """The fault × claim matrix as text: one row per fault, one column per claim that catches
    some fault (x: caught, .: ran and held its outcome, blank: not run), then the catch counts."""
    claims = [c for c in dict.fromkeys(k for row in matrix.values() for k in row)
              if any(row.get(c) for row in matrix.values())]  # fmt: skip
    width = max(len(f) for f in matrix)
    lines = [
        f"{'':<{width}}  " + " ".join(f"{i % 100:>2}" for i in range(len(claims))) + "  caught by"
    ]
    for fault, row in matrix.items():
        cells = " ".join(f"{'x' if row.get(c) else ('.' if c in row else ' '):>2}" for c in claims)
        lines.append(f"{fault:<{width}}  {cells}  {sum(row.values())}/{len(row)}")
    lines.append("")
    lines += [f"{i:>3}  {c}" for i, c in enumerate(claims)]
    missed = [f for f, row in matrix.items() if not any(row.values())]
    lines.append("")
    lines.append(
        f"{len(matrix)} faults, "
        + ("every one caught by some claim" if not missed else f"NOT CAUGHT: {', '.join(missed)}")
    )
    return "\n".join(lines)
