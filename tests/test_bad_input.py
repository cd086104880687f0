"""Bad input across the public API: each row is (call, input, expected error).

Every row must raise ``ValueError`` whose message names the argument at fault, before any work.
Before this table, the rows marked ``# was silent`` returned a number (or truncated the input)
instead of refusing.
"""

from __future__ import annotations

import math

import pytest
import torch

import tokenmdp as tm
import toybandit as tb
from tests.helpers import F64, gen

REF = torch.tensor([0.2, 0.3, 0.5], dtype=F64)
MU = torch.full((3,), 1 / 3, dtype=F64)
REWARD = torch.tensor([0.0, 1.0, 2.0], dtype=F64)
PREF = tb.random_preference(3, generator=gen(1))
POLICY = torch.tensor([0.3, 0.3, 0.4], dtype=F64)
UNNORMALISED = torch.tensor([0.3, 0.3, 0.5], dtype=F64)
TREE = tm.TokenTree.full(3, 2, eos=0)  # 10 nodes, 7 leaves
N, L = TREE.n_nodes, int(TREE.terminal.sum())
TREE_REWARD = torch.linspace(-1, 1, N, dtype=F64)
LOGITS = TREE.log_ref + 0.7  # log π_ref shifted: logits, not log-probabilities
IDX = torch.tensor([0, 1])


def decreasing(p):
    return -p


def bump(p):  # non-decreasing except on a small interval: caught on the grid
    return p - 0.5 * ((p > 0.5) & (p < 0.502)).to(p.dtype)


ROWS = [
    # --- toybandit.optimal
    (
        "optimal_policy",
        lambda x: tb.optimal_policy(REWARD, REF, x),
        "0.5",
        "beta must be a number",
    ),  # was silent
    ("optimal_policy", lambda x: tb.optimal_policy(REWARD, REF, x), True, "beta must be a number"),
    ("optimal_policy", lambda x: tb.optimal_policy(REWARD, REF, x), 0.0, "beta must be positive"),
    (
        "optimal_policy",
        lambda x: tb.optimal_policy(REWARD, REF, x),
        math.nan,
        "beta must be positive",
    ),
    (
        "optimal_policy",
        lambda x: tb.optimal_policy(REWARD, x, 1.0),
        UNNORMALISED,
        "ref must sum to 1",
    ),
    (
        "optimal_policy",
        lambda x: tb.optimal_policy(x, REF, 1.0),
        torch.tensor([0, math.inf, 0]),
        "reward must be finite",
    ),
    ("optimal_policy", lambda x: tb.optimal_policy(x, REF, 1.0), "012", "reward must be a tensor"),
    (
        "optimal_policy",
        lambda x: tb.optimal_policy(REWARD, x, 1.0),
        torch.tensor([0.5, 0.5]),
        "must have the same response dim",
    ),
    (
        "log_partition",
        lambda x: tb.log_partition(REWARD, REF, x),
        "1",
        "beta must be a number",
    ),  # was silent
    (
        "log_optimal_policy",
        lambda x: tb.log_optimal_policy(REWARD, x, 1.0),
        torch.tensor([1.2, -0.2, 0.0]),
        "ref must be non-negative",
    ),
    ("kl_divergence", lambda x: tb.kl_divergence(x, REF), UNNORMALISED, "policy must sum to 1"),
    (
        "regularized_value",
        lambda x: tb.regularized_value(POLICY, REWARD, REF, x),
        -1.0,
        "beta must be positive",
    ),
    # --- toybandit.preferences
    (
        "from_upper_triangle",
        tb.from_upper_triangle,
        torch.tensor([[0, 1.5], [0, 0]], dtype=F64),
        "upper .* probabilities in \\[0, 1\\]",
    ),  # was silent
    (
        "from_upper_triangle",
        tb.from_upper_triangle,
        torch.tensor([[0, math.nan], [0, 0]], dtype=F64),
        "upper .* probabilities",
    ),  # was silent
    (
        "from_upper_triangle",
        tb.from_upper_triangle,
        torch.tensor([[0, -0.1], [0, 0]], dtype=F64),
        "upper .* probabilities",
    ),  # was silent
    ("from_upper_triangle", tb.from_upper_triangle, torch.zeros(2, 3), "upper must have shape"),
    ("check_preference", tb.check_preference, torch.tensor([[0.5, 0.7], [0.7, 0.5]]), "\\(8c\\)"),
    ("check_preference", tb.check_preference, torch.tensor([[0.4, 0.6], [0.4, 0.6]]), "\\(8b\\)"),
    (
        "random_preference",
        lambda x: tb.random_preference(x, generator=gen()),
        2.5,
        "num_responses must be an integer",
    ),  # was silent
    (
        "random_preference",
        lambda x: tb.random_preference(x, generator=gen()),
        "3",
        "num_responses must be an integer",
    ),
    (
        "random_preference",
        lambda x: tb.random_preference(x, generator=gen()),
        0,
        "num_responses must be an integer in \\[1",
    ),
    ("random_preference", lambda x: tb.random_preference(3, generator=x), 0, "generator must be"),
    (
        "random_preference",
        lambda x: tb.random_preference(3, generator=gen(), kind=x),
        "bt",
        "kind must be one of",
    ),
    (
        "random_preference",
        lambda x: tb.random_preference(3, generator=gen(), scale=x),
        "3",
        "scale must be a number",
    ),
    ("bradley_terry", tb.bradley_terry, torch.tensor([0.0, math.nan]), "reward must be finite"),
    (
        "psi_scores",
        lambda x: tb.psi_scores(PREF, MU, x),
        decreasing,
        "psi must be non-decreasing",
    ),  # was silent
    (
        "psi_scores",
        lambda x: tb.psi_scores(PREF, MU, x),
        bump,
        "psi must be non-decreasing",
    ),  # was silent
    (
        "psi_scores",
        lambda x: tb.psi_scores(PREF, MU, x),
        lambda p: torch.log(p - 0.5),
        "psi must not return NaN",
    ),
    ("psi_scores", lambda x: tb.psi_scores(PREF, MU, x), "probit", "psi must be one of"),
    ("maximal_lottery", tb.maximal_lottery, torch.stack([PREF, PREF]), "pref must be one matrix"),
    ("maximal_lottery", tb.maximal_lottery, PREF[:, :2], r"pref must have shape \[..., Y, Y\]"),
    (
        "maximal_lottery",
        tb.maximal_lottery,
        torch.tensor([[0.5, 0.9], [0.9, 0.5]], dtype=torch.float64),
        r"\(8c\)",
    ),
    (
        "psi_optimal_policy",
        lambda x: tb.psi_optimal_policy(PREF, MU, REF, 1.0, x),
        decreasing,
        "psi must be non-decreasing",
    ),  # was silent
    (
        "psi_optimal_policy",
        lambda x: tb.psi_optimal_policy(PREF, MU, REF, x),
        "0.1",
        "tau must be a number",
    ),  # was silent
    (
        "psi_optimal_policy",
        lambda x: tb.psi_optimal_policy(PREF, x, REF, 1.0),
        UNNORMALISED,
        "mu must sum to 1",
    ),
    # --- toybandit.objectives
    (
        "dpo_objective",
        lambda x: tb.dpo_objective(x, PREF, MU, REF, 1.0),
        torch.tensor([0.0, 0.5, 0.5], dtype=F64),
        "policy must be > 0",
    ),  # blamed score
    (
        "dpo_objective",
        lambda x: tb.dpo_objective(POLICY, x, MU, REF, 1.0),
        torch.full((3, 3), 0.7),
        "\\(8c\\)|\\(8b\\)",
    ),
    (
        "dpo_objective",
        lambda x: tb.dpo_objective(POLICY, PREF, MU, REF, x),
        "1.0",
        "beta must be a number",
    ),  # was silent
    (
        "ipo_objective",
        lambda x: tb.ipo_objective(x, PREF, MU, REF, 1.0),
        UNNORMALISED,
        "policy must sum to 1",
    ),
    (
        "ipo_target_objective",
        lambda x: tb.ipo_target_objective(POLICY, PREF, MU, REF, 1.0, pairs_from=x),
        UNNORMALISED,
        "pairs_from must sum to 1",
    ),
    (
        "logratios",
        lambda x: tb.logratios(x, torch.tensor([0.5, 0.5, 0.0], dtype=F64)),
        POLICY,
        "ref = 0",
    ),
    (
        "logistic_objective",
        lambda x: tb.logistic_objective(x, PREF, MU),
        torch.tensor([0.0, math.inf, 0.0]),
        "score must be finite",
    ),
    (
        "pair_weights",
        lambda x: tb.pair_weights(PREF, x),
        torch.tensor([0.5, 0.6, -0.1], dtype=F64),
        "mu must be non-negative",
    ),
    # --- toybandit.data
    (
        "sample_preferences",
        lambda x: tb.sample_preferences(PREF, MU, x, gen()),
        2.5,
        "n must be an integer",
    ),  # was silent
    (
        "sample_preferences",
        lambda x: tb.sample_preferences(PREF, MU, x, gen()),
        "10",
        "n must be an integer",
    ),
    (
        "sample_preferences",
        lambda x: tb.sample_preferences(PREF, MU, x, gen()),
        -1,
        "n must be an integer in \\[0",
    ),
    (
        "sample_preferences",
        lambda x: tb.sample_preferences(PREF, x, 5, gen()),
        UNNORMALISED,
        "mu must sum to 1",
    ),
    (
        "population_pairs",
        lambda x: tb.population_pairs(x, MU),
        torch.full((3, 3), 0.7),
        "pref violates",
    ),
    # --- toybandit.fit
    (
        "fit_policy",
        lambda x: tb.fit_policy(IDX, IDX.flip(0), REF, "dpo", beta=1.0, steps=x),
        2.9,
        "steps must be an integer",
    ),  # was silent
    (
        "fit_policy",
        lambda x: tb.fit_policy(IDX, IDX.flip(0), REF, "dpo", beta=x),
        "0.1",
        "beta must be a number",
    ),  # was silent
    (
        "fit_policy",
        lambda x: tb.fit_policy(x, IDX.flip(0), REF, "dpo", beta=1.0),
        torch.tensor([True, False]),
        "chosen must hold integer",
    ),
    (
        "fit_policy",
        lambda x: tb.fit_policy(x, IDX.flip(0), REF, "dpo", beta=1.0),
        torch.tensor([0.0, 1.0]),
        "chosen must hold integer",
    ),
    (
        "fit_policy",
        lambda x: tb.fit_policy(IDX, x, REF, "dpo", beta=1.0),
        torch.tensor([0, 3]),
        "rejected must lie in \\[0, 3\\)",
    ),
    (
        "fit_policy",
        lambda x: tb.fit_policy(IDX, IDX.flip(0), REF, x, beta=1.0),
        "kto",
        "loss must be",
    ),
    (
        "fit_policy",
        lambda x: tb.fit_policy(IDX, IDX.flip(0), REF, "ipo", tau=1.0, tolerance=x),
        -1.0,
        "tolerance must lie",
    ),
    (
        "fit_policy",
        lambda x: tb.fit_policy(IDX, IDX.flip(0), REF, "dpo", beta=1.0, label_smoothing=x),
        1.5,
        "label_smoothing must lie",
    ),
    # --- toybandit.losses (existing functions only)
    (
        "losses.dpo",
        lambda x: tb.losses.dpo(torch.zeros(2), torch.zeros(2), x),
        "0.1",
        "beta must be a number",
    ),  # was silent
    ("losses.ipo", lambda x: tb.losses.ipo(torch.zeros(2), x, 1.0), torch.zeros(3), "same shape"),
    # --- tokenmdp.tree
    ("TokenTree.full", lambda x: tm.TokenTree.full(3, x, eos=0), 2.9, "depth must be an integer"),
    (
        "TokenTree.full",
        lambda x: tm.TokenTree.full(x, 2, eos=None),
        2.5,
        "vocab_size must be an integer",
    ),
    (
        "TokenTree.full",
        lambda x: tm.TokenTree.full(x, 2, eos=None),
        "3",
        "vocab_size must be an integer",
    ),
    (
        "TokenTree.full",
        lambda x: tm.TokenTree.full(3, 2, eos=x),
        3,
        "eos must be an integer in \\[0, 2\\]",
    ),
    (
        "TokenTree.full",
        lambda x: tm.TokenTree.full(3, 2, eos=0, log_ref=x),
        torch.zeros(10, dtype=F64),
        "log_ref: the children of node 0",
    ),
    (
        "TokenTree.full",
        lambda x: tm.TokenTree.full(2, x, eos=None),
        40,
        "needs 2,199,023,255,551 nodes",
    ),  # allocated for minutes
    (
        "random_tree",
        lambda x: tm.random_tree(50, x, None, generator=gen()),
        6,
        "memory budget",
    ),  # allocated for minutes
    (
        "random_tree",
        lambda x: tm.random_tree(3, x, 0, generator=gen()),
        1.5,
        "depth must be an integer",
    ),
    (
        "random_tree",
        lambda x: tm.random_tree(3, 2, 0, generator=gen(), keep=x),
        0.0,
        "keep must lie in \\(0, 1\\]",
    ),
    (
        "random_tree",
        lambda x: tm.random_tree(3, 2, 0, generator=gen(), concentration=x),
        "1",
        "concentration must be a number",
    ),
    (
        "TokenTree",
        lambda x: tm.TokenTree(torch.tensor([-1, 0, 0]), torch.tensor([-1, 1, 0]), x),
        torch.tensor([0.0, -0.7, -0.7]),
        "strictly increasing",
    ),
    (
        "from_sequences",
        lambda x: tm.TokenTree.from_sequences(x, eos=0),
        [[1], [1, 0]],
        "proper prefix",
    ),
    (
        "from_sequences",
        lambda x: tm.TokenTree.from_sequences(x, eos=0),
        [[1.5, 0]],
        "integer tokens",
    ),  # was silent
    (
        "from_sequences",
        lambda x: tm.TokenTree.from_sequences([[1, 0]], eos=0, vocab_size=x),
        2.5,
        "vocab_size must be an integer",
    ),  # was silent
    (
        "check_preference",
        lambda x: tb.check_preference(PREF, atol=x),
        "1e-3",
        "atol must be a number",
    ),
    # --- tokenmdp.solve
    (
        "soft_solve",
        lambda x: tm.soft_solve(TREE, TREE_REWARD, x),
        "0.5",
        "beta must be a number",
    ),  # was silent
    (
        "soft_solve",
        lambda x: tm.soft_solve(TREE, x, 1.0),
        torch.zeros(9, dtype=F64),
        "reward must have one entry per node",
    ),
    (
        "soft_solve",
        lambda x: tm.soft_solve(x, TREE_REWARD, 1.0),
        "tree",
        "tree must be a TokenTree",
    ),
    (
        "reward_from_q",
        lambda x: tm.reward_from_q(TREE, x, 1.0),
        torch.full((N,), math.nan),
        "q must not hold NaN",
    ),
    # --- tokenmdp.sequences
    (
        "implicit_rewards",
        lambda x: tm.implicit_rewards(TREE, x, 1.0),
        LOGITS,
        "log_policy must be a normalised",
    ),  # was silent
    (
        "expected_implicit_reward",
        lambda x: tm.expected_implicit_reward(TREE, x, 1.0),
        LOGITS,
        "log_policy must be a normalised",
    ),  # was silent
    (
        "sequence_logratios",
        lambda x: tm.sequence_logratios(TREE, x),
        LOGITS,
        "log_policy must be a normalised",
    ),  # was silent
    (
        "sequence_logratios",
        lambda x: tm.sequence_logratios(TREE, x),
        torch.full((N,), math.nan),
        "log_policy must hold log-probabilities",
    ),
    (
        "implicit_rewards",
        lambda x: tm.implicit_rewards(TREE, TREE.log_ref, x),
        "2",
        "beta must be a number",
    ),  # was silent
    (
        "token_policy",
        lambda x: tm.token_policy(TREE, x),
        torch.zeros(L, dtype=F64),
        "leaf_log_prob must be a normalised",
    ),  # was silent
    (
        "token_policy",
        lambda x: tm.token_policy(TREE, x),
        torch.zeros(L + 1, dtype=F64),
        "one entry per leaf",
    ),
    (
        "path_sum",
        lambda x: tm.path_sum(TREE, x),
        torch.zeros(N + 1),
        "values must have one entry per node",
    ),
    (
        "shape_reward",
        lambda x: tm.shape_reward(TREE, TREE_REWARD, x),
        torch.ones(N, dtype=F64),
        "potential must be 0 at terminal",
    ),
    (
        "recover_potential",
        lambda x: tm.recover_potential(TREE, TREE_REWARD, TREE_REWARD, edges=x),
        torch.ones(N),
        "edges must be a bool",
    ),
    # --- tokenmdp.search
    (
        "beam_search",
        lambda x: tm.beam_search(TREE, TREE_REWARD, x),
        1.5,
        "width must be an integer",
    ),
    (
        "beam_search",
        lambda x: tm.beam_search(TREE, TREE_REWARD, x),
        "2",
        "width must be an integer",
    ),
    ("frontier", lambda x: tm.frontier(TREE, x), 3, "depth must be an integer in \\[1, 2\\]"),
    (
        "best_prefix",
        lambda x: tm.best_prefix(TREE, TREE_REWARD, x),
        1.5,
        "depth must be an integer",
    ),
    (
        "best_sequence",
        lambda x: tm.best_sequence(TREE, x),
        torch.full((N,), math.inf),
        "scores must not hold NaN or \\+inf",
    ),
    # --- tokenmdp.train
    (
        "fit_tree_policy",
        lambda x: tm.fit_tree_policy(TREE, x, IDX, "dpo", beta=1.0),
        torch.tensor([8, 9]),
        "leaf positions\\) must lie in \\[0, 7\\)",
    ),  # node ids: fitted other pairs
    (
        "fit_tree_policy",
        lambda x: tm.fit_tree_policy(TREE, x, IDX, "dpo", beta=1.0),
        torch.tensor([True, False]),
        "chosen \\(leaf positions\\) must hold integer",
    ),
    (
        "fit_tree_policy",
        lambda x: tm.fit_tree_policy(TREE, IDX, IDX.flip(0), "dpo", beta=1.0, steps=x),
        2.5,
        "steps must be an integer",
    ),  # was silent
    (
        "fit_tree_policy",
        lambda x: tm.fit_tree_policy(TREE, IDX, IDX.flip(0), "dpo", beta=x),
        "1",
        "beta must be a number",
    ),  # was silent
    (
        "fit_tree_policy",
        lambda x: tm.fit_tree_policy(TREE, IDX, IDX.flip(0), "dpo", beta=1.0, method=x),
        "adam",
        "method must be",
    ),
    (
        "sample_trajectory_pairs",
        lambda x: tm.sample_trajectory_pairs(TREE, TREE_REWARD, x, generator=gen()),
        2.5,
        "n must be an integer",
    ),  # was silent
    (
        "sample_trajectory_pairs",
        lambda x: tm.sample_trajectory_pairs(TREE, TREE_REWARD, 4, generator=gen(), behaviour=x),
        torch.ones(L, dtype=F64),
        "behaviour must sum to 1",
    ),
    (
        "trajectory_preference",
        lambda x: tm.trajectory_preference(TREE, x),
        torch.full((N,), math.nan),
        "reward must be finite",
    ),
    # --- toybandit.minimise / tokenmdp.minimise: a user's loss callable
    (
        "minimise_loss",
        lambda x: tb.minimise_loss(x, tb.population_pairs(PREF, MU), REF),
        "sigmoid",
        "loss must be callable",
    ),
    (
        "minimise_loss",
        lambda x: tb.minimise_loss(x, tb.population_pairs(PREF, MU), REF),
        lambda c, r: (c - r) * math.nan,
        "loss returned NaN",
    ),
    (
        "minimise_loss",
        lambda x: tb.minimise_loss(x, tb.population_pairs(PREF, MU), REF),
        lambda c, r: torch.stack([c, r]),
        "loss must return one value per pair",
    ),
    (
        "minimise_loss",
        lambda x: tb.minimise_loss(
            lambda c, r: tb.losses.dpo(c, r, 1.0), tb.population_pairs(PREF, MU), REF, on=x
        ),
        "logits",
        "on must be",
    ),
    (
        "minimise_tree_loss",
        lambda x: tm.minimise_tree_loss(
            x,
            lambda c, r: tb.losses.dpo(c, r, 1.0),
            tm.population_trajectory_pairs(TREE, TREE_REWARD),
        ),
        TREE.log_ref,
        "tree must be a tokenmdp.TokenTree",
    ),
    (
        "minimise_tree_loss",
        lambda x: tm.minimise_tree_loss(TREE, x, tm.population_trajectory_pairs(TREE, TREE_REWARD)),
        None,
        "loss must be callable",
    ),
]


@pytest.mark.parametrize(
    ("call", "value", "message"),
    [
        pytest.param(fn, value, msg, id=f"{i:02d}-{name}")
        for i, (name, fn, value, msg) in enumerate(ROWS)
    ],
)
def test_bad_input_is_refused_naming_the_argument(call, value, message):
    with pytest.raises(ValueError, match=message):
        call(value)


def test_the_table_covers_the_public_api():
    assert len(ROWS) >= 60
    called = {name.split(".")[-1] for name, *_ in ROWS}
    public = {
        name
        for module in (tb, tm)
        for name in module.__all__
        if callable(getattr(module, name)) and name[0].islower()
    }
    # Not in the table: constructors of results, and functions with no argument to refuse.
    exempt = {
        "set_memory_budget",
        "reachable",
        "prefix_sum",
        "as_bandit",
        "population_trajectory_pairs",
        "expected_pair_loss",
        "ipo_label_objective",
        "ipo_preference_objective",
    }
    assert public - called - exempt == set()


def test_valid_neighbours_of_the_bad_rows_pass():
    """Negative twins: the same calls with the input made valid return numbers."""
    assert torch.isfinite(tb.optimal_policy(REWARD, REF, 0.5)).all()
    assert tb.random_preference(3.0, generator=gen()).shape == (3, 3)  # an integral float is fine
    assert tb.psi_scores(PREF, MU, lambda p: p**3).shape == (3,)
    assert tm.TokenTree.full(3, 2.0, eos=0).n_nodes == N
    assert (tm.expected_implicit_reward(TREE, TREE.log_ref, 1.0) == 0).all()
    law = tm.token_policy(TREE, torch.full((L,), -math.log(L), dtype=F64))
    assert torch.isfinite(tm.implicit_rewards(TREE, law, 1.0)).all()
    chosen, rejected = torch.tensor([5, 6]), torch.tensor([0, 1])
    assert torch.isfinite(tm.fit_tree_policy(TREE, chosen, rejected, "ipo", tau=1.0)[1:]).all()
