"""Sequence-level identities of Rafailov et al. 2024: sec. 4.1, eqs. (8)–(11), (14), Theorem 1."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import toybandit as tb
from tests.helpers import F64, close
from tokenmdp import (
    TokenTree,
    expected_implicit_reward,
    implicit_rewards,
    path_sum,
    prefix_sum,
    reachable,
    recover_potential,
    sequence_logratios,
    shape_reward,
    soft_solve,
    token_policy,
    trajectory_preference,
)
from tokenmdp import strategies as tst

from . import reference as ref


@given(tst.trees(impossible=True), st.data())
def test_path_sum_and_prefix_sum_match_enumeration(tree, data):
    values = data.draw(tst.rewards(tree))
    close(path_sum(tree, values), ref.path_totals(tree, values.tolist()))
    prefix = prefix_sum(tree, values)
    for n in range(tree.n_nodes):
        total, s = 0.0, n
        while s > 0:
            total, s = total + values[s].item(), tree.parent[s].item()
        assert prefix[n].item() == pytest.approx(total, abs=1e-12)


@given(tst.trees(impossible=True), st.data())
def test_token_policy_realises_a_sequence_law(tree, data):
    """Chain rule: the token policy built from a law over leaves has that law as its sequence law."""
    leaf_logits = data.draw(tst.rewards(tree))[: tree.leaves.numel()]
    mass_zero = data.draw(st.booleans())
    if mass_zero and leaf_logits.numel() > 1:
        leaf_logits[0] = -math.inf  # a sequence of probability 0
    law = torch.log_softmax(leaf_logits, 0)
    log_pi = token_policy(tree, law)
    assert not torch.isnan(log_pi).any()
    close(path_sum(tree, log_pi), law)


@given(tst.tree_worlds(impossible=True))
def test_token_policy_of_the_bandit_optimum_is_the_soft_optimum(world):
    tree, reward, beta = world
    sol = soft_solve(tree, reward, beta)
    log_pi = token_policy(tree, path_sum(tree, sol.log_policy))
    seen = reachable(tree)  # below an edge with π_ref = 0 the sequence law says nothing
    close(log_pi[seen], sol.log_policy[seen])


# -- eq. (10), sec. 4.1 telescoping, eq. (8), eq. (9) ----------------------------------------------


@given(tst.tree_worlds(impossible=True))
def test_implicit_reward_is_the_reward_shaped_by_v_star(world):
    """Eq. (10): β log π*/π_ref = r + V*(s_{t+1}) − V*(s_t), i.e. r shaped by Φ = V*."""
    tree, reward, beta = world
    sol = soft_solve(tree, reward, beta)
    implicit = implicit_rewards(tree, sol.log_policy, beta)
    seen = reachable(tree)
    close(implicit[seen][1:], shape_reward(tree, reward, sol.v)[seen][1:])
    phi, residual = recover_potential(tree, reward, implicit)
    assert residual.abs().max() < 1e-8
    close(phi[seen & ~tree.terminal], sol.v[seen & ~tree.terminal])


@given(tst.tree_worlds(impossible=True))
def test_return_telescopes_to_v_star_plus_logratios(world):
    """Sec. 4.1: Σ_t r(s_t, a_t) = V*(s₀) + Σ_t β log π*(a_t|s_t)/π_ref(a_t|s_t) for every sequence."""
    tree, reward, beta = world
    sol = soft_solve(tree, reward, beta)
    seen = reachable(tree)[tree.leaves]
    lhs = path_sum(tree, reward)[seen]
    rhs = sol.v[0] + beta * sequence_logratios(tree, sol.log_policy)[seen]
    close(lhs, rhs)


@given(tst.tree_worlds())
def test_policy_induced_preference_equals_the_reward_preference(world):
    """Eq. (8): with pairs from the same root V*(s₀) cancels, p_π* = p* of eq. (1)."""
    tree, reward, beta = world
    sol = soft_solve(tree, reward, beta)
    close(
        trajectory_preference(tree, implicit_rewards(tree, sol.log_policy, beta)),
        trajectory_preference(tree, reward),
    )


def test_pairs_from_different_states_do_not_cancel_v_star():
    """Negative twin of eq. (8): sequences from two different states s ≠ s' keep V*(s) − V*(s')."""
    tree = TokenTree.full(2, 3, None)
    reward = torch.randn(tree.n_nodes, generator=torch.Generator().manual_seed(4), dtype=F64)
    beta = 1.0
    sol = soft_solve(tree, reward, beta)
    implicit = implicit_rewards(tree, sol.log_policy, beta)
    # Returns from state 1 (token 0) and from state 2 (token 1) to their first leaves.
    starts = (1, 2)
    returns, implicit_sums = [], []
    for s in starts:
        path = ref.sequences(tree, s)[0]
        returns.append(sum(reward[n].item() for n in path))
        implicit_sums.append(sum(implicit[n].item() for n in path))
    p_true = 1 / (1 + math.exp(-(returns[0] - returns[1])))
    p_implicit = 1 / (1 + math.exp(-(implicit_sums[0] - implicit_sums[1])))
    gap = sol.v[1].item() - sol.v[2].item()
    assert abs(gap) > 0.1  # the instance has distinct state values …
    assert abs(p_true - p_implicit) > 0.01  # … so the preference model is wrong
    assert implicit_sums[0] - implicit_sums[1] == pytest.approx(returns[0] - returns[1] - gap)


@given(tst.tree_worlds(), st.data())
def test_token_dpo_loss_is_the_negative_log_policy_preference(world, data):
    """Eq. (9) = −log p_π(τ_w ≻ τ_l) of eq. (8), for any policy π (here: a random one)."""
    tree, _, beta = world
    logits = data.draw(tst.rewards(tree))
    log_pi = _sibling_log_softmax(tree, logits)
    n_leaves = tree.leaves.numel()
    w = data.draw(st.integers(0, n_leaves - 1))
    lose = data.draw(st.integers(0, n_leaves - 1))
    logratio = sequence_logratios(tree, log_pi)
    loss = tb.losses.dpo(logratio[w], logratio[lose], beta)
    pref = trajectory_preference(tree, implicit_rewards(tree, log_pi, beta))
    assert loss.item() == pytest.approx(-math.log(pref[w, lose].item()), rel=1e-9, abs=1e-12)


def _sibling_log_softmax(tree, logits):
    out = torch.zeros_like(logits)
    for cs in ref.children(tree).values():
        if cs:
            out[cs] = torch.log_softmax(logits[cs], 0)
    return out


# -- Theorem 1 / Definition 1: shaping ------------------------------------------------------------


@given(tst.tree_worlds(), st.data())
def test_shaping_with_terminal_zero_keeps_policy_and_preferences(world, data):
    tree, reward, beta = world
    phi = data.draw(tst.potentials(tree))
    shaped = shape_reward(tree, reward, phi)
    sol, sol_shaped = soft_solve(tree, reward, beta), soft_solve(tree, shaped, beta)
    close(sol_shaped.log_policy, sol.log_policy)
    close(sol_shaped.v, sol.v - phi)  # V* moves by −Φ(s) …
    close(sol_shaped.q[1:], (sol.q - phi[tree.parent.clamp(min=0)])[1:])  # … Q*(s, a) by −Φ(s)
    close(trajectory_preference(tree, shaped), trajectory_preference(tree, reward))
    recovered, residual = recover_potential(tree, reward, shaped)
    assert residual.abs().max() < 1e-9
    close(recovered[~tree.terminal][1:], phi[~tree.terminal][1:])


def test_terminal_potential_breaks_preferences_and_policy():
    """Negative twin of Theorem 1: Φ ≠ 0 at terminal states is a terminal reward."""
    tree = TokenTree.full(3, 2, eos=0)
    reward = torch.zeros(tree.n_nodes, dtype=F64)
    phi = torch.zeros(tree.n_nodes, dtype=F64)
    phi[tree.leaves[0]] = 2.0
    with pytest.raises(ValueError, match="potential must be 0 at terminal states"):
        shape_reward(tree, reward, phi)
    shaped = shape_reward(tree, reward, phi, strict=False)
    assert (
        trajectory_preference(tree, shaped) - trajectory_preference(tree, reward)
    ).abs().max() > 0.3
    assert not torch.allclose(
        soft_solve(tree, shaped, 1.0).log_policy, soft_solve(tree, reward, 1.0).log_policy
    )
    assert recover_potential(tree, reward, shaped)[1].abs().max() > 0.1


def test_recover_potential_checks_its_edge_mask():
    tree = TokenTree.full(2, 2, None)
    zero = torch.zeros(tree.n_nodes, dtype=F64)
    edges = torch.ones(tree.n_nodes, dtype=torch.bool)
    edges[1] = False  # node 1's children stay in: orphans
    with pytest.raises(ValueError, match="parent edge"):
        recover_potential(tree, zero, zero, edges=edges)
    edges[3:5] = False
    with pytest.raises(ValueError, match="keeps no child"):
        recover_potential(
            tree, zero, zero, edges=torch.tensor([True, True, True, False, False, True, True])
        )
    phi, residual = recover_potential(tree, zero, zero, edges=edges)
    assert (residual == 0).all() and (phi == 0).all()


# -- eq. (14) --------------------------------------------------------------------------------------


@given(tst.trees(), st.data())
def test_expected_implicit_reward_is_minus_beta_kl(tree, data):
    """Eq. (14): E_{π_ref}[β log π/π_ref] = −β KL(π_ref ‖ π) ≤ 0 at every state."""
    logits = data.draw(tst.rewards(tree))
    beta = data.draw(tst.betas())
    log_pi = _sibling_log_softmax(tree, logits)
    got = expected_implicit_reward(tree, log_pi, beta)
    for s, cs in ref.children(tree).items():
        if not cs:
            assert got[s] == 0
            continue
        kl = tb.kl_divergence(tree.log_ref[cs].exp(), log_pi[cs].exp()).item()
        assert got[s].item() == pytest.approx(-beta * kl, rel=1e-9, abs=1e-12)
        assert got[s].item() <= 1e-15


def test_expectation_under_the_policy_has_the_opposite_sign():
    """Negative twin of eq. (14): under π itself the mean implicit reward is +β KL(π ‖ π_ref) ≥ 0."""
    tree = TokenTree.full(3, 1, None)
    log_pi = torch.tensor([0.0, math.log(0.7), math.log(0.2), math.log(0.1)], dtype=F64)
    implicit = implicit_rewards(tree, log_pi, 1.0)
    under_pi = (log_pi.exp()[1:] * implicit[1:]).sum().item()
    assert under_pi > 0
    assert expected_implicit_reward(tree, log_pi, 1.0)[0].item() < 0


def test_implicit_reward_conventions_on_impossible_edges():
    log_ref = torch.tensor([0.0, 0.0, -math.inf], dtype=F64)
    tree = TokenTree([-1, 0, 0], [-1, 0, 1], log_ref)
    log_pi = torch.tensor([0.0, 0.0, -math.inf], dtype=F64)
    assert implicit_rewards(tree, log_pi, 2.0).tolist() == [0.0, 0.0, 0.0]
    assert expected_implicit_reward(tree, log_pi, 2.0).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="log_policy"):
        implicit_rewards(tree, torch.tensor([0.0, math.nan, 0.0]), 1.0)
