"""soft_solve (Rafailov et al. 2024, eqs. (5)–(7)) and its inverse reward_from_q (Lemma 1)."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import toybandit as tb
from proofs_check import reference
from tests.helpers import F64, close
from tokenmdp import (
    TokenTree,
    as_bandit,
    path_sum,
    reachable,
    recover_potential,
    reward_from_q,
    soft_solve,
)
from tokenmdp import strategies as tst

from . import reference as ref


@given(tst.tree_worlds(impossible=True))
def test_soft_solve_matches_enumeration(world):
    tree, reward, beta = world
    sol = soft_solve(tree, reward, beta)
    assert not any(torch.isnan(t).any() for t in sol)
    q, v, log_pi = reference.enumerated_policy(tree, reward, beta)  # from sequences, no recursion
    close(sol.q[1:], q[1:])
    close(sol.v, v)
    close(sol.log_policy[1:], log_pi[1:])


def test_reference_value_two_levels():
    # root →(a) s →(b | c) with π_ref ½ each at s, β = 1, r(b) = log 3, r(c) = 0, r(a) = 1:
    # V*(s) = log(½·3 + ½·1) = log 2; Q*(a) = 1 + 0 + log 2; V*(root) = Q*(a); π*(b|s) = 3/4.
    tree = TokenTree([-1, 0, 1, 1], [-1, 0, 0, 1], [0.0, 0.0, math.log(0.5), math.log(0.5)])
    sol = soft_solve(tree, torch.tensor([0.0, 1.0, math.log(3.0), 0.0], dtype=F64), 1.0)
    assert sol.v.tolist() == pytest.approx([1 + math.log(2), math.log(2), 0.0, 0.0])
    assert sol.log_policy.exp().tolist() == pytest.approx([1.0, 1.0, 0.75, 0.25])


@given(tst.tree_worlds(impossible=True))
def test_sequence_law_is_the_bandit_optimum(world):
    """π*(y) = Π_t π*(a_t|s_t) equals the bandit optimum over complete sequences, V*(s₀) = β log Z."""
    tree, reward, beta = world
    sol = soft_solve(tree, reward, beta)
    leaf_reward, leaf_ref = as_bandit(tree, reward)
    close(path_sum(tree, sol.log_policy).exp(), tb.optimal_policy(leaf_reward, leaf_ref, beta))
    close(sol.v[0], tb.log_partition(leaf_reward, leaf_ref, beta))


@given(tst.trees(), st.data())
def test_batched_rewards_and_per_item_beta(tree, data):
    reward = data.draw(tst.rewards(tree, batch_shape=(2, 3)))
    beta = torch.tensor([0.3, 1.0, 4.0], dtype=F64)
    sol = soft_solve(tree, reward, beta)
    for i in range(2):
        for j in range(3):
            one = soft_solve(tree, reward[i, j], float(beta[j]))
            for a, b in zip(sol, one, strict=True):
                close(a[i, j], b, tol=1e-12)
    q_back = reward_from_q(tree, sol.q, beta)
    close(q_back[..., 1:], reward[..., 1:])


def test_extreme_rewards_stay_finite():
    tree = TokenTree.full(3, 4, eos=0)
    g = torch.Generator().manual_seed(0)
    reward = 1e4 * torch.randn(tree.n_nodes, generator=g, dtype=F64)
    sol = soft_solve(tree, reward, 1e-2)
    assert all(torch.isfinite(t).all() for t in sol)
    # At β → 0 the soft value is the hard max-sum (|difference| ≤ β log #leaves).
    best = max(ref.path_totals(tree, (reward + 1e-2 * tree.log_ref).tolist()))
    assert abs(sol.v[0].item() - best) <= 1e-2 * math.log(tree.leaves.numel()) + 1e-9


def test_float32_rewards_are_accepted():
    tree = TokenTree.full(2, 3, None)
    sol = soft_solve(tree, torch.zeros(tree.n_nodes, dtype=torch.float32), 1.0)
    assert sol.v.dtype == F64  # promoted to the tree's dtype
    assert sol.v[0].item() == pytest.approx(0.0, abs=1e-12)


# -- Lemma 1: r ↔ Q* ------------------------------------------------------------------------------


@given(tst.tree_worlds(impossible=True))
def test_reward_from_q_inverts_soft_solve(world):
    tree, reward, beta = world
    back = reward_from_q(tree, soft_solve(tree, reward, beta).q, beta)
    possible = torch.isfinite(tree.log_ref)
    close(back[1:][possible[1:]], reward[1:][possible[1:]])
    assert (back[~possible] == 0).all()


@given(tst.trees(), st.data())
def test_any_logits_are_an_optimal_q_function(tree, data):
    """Every LM is a Q-function: logits → reward → soft_solve gives back the logits and softmax."""
    logits = data.draw(tst.rewards(tree, scale=8.0))
    beta = data.draw(tst.betas())
    sol = soft_solve(tree, reward_from_q(tree, logits, beta), beta)
    close(sol.q[1:], logits[1:])
    kids = ref.children(tree)
    for cs in kids.values():  # log π = log softmax(logits/β) over each state's children
        if cs:
            close(sol.log_policy[cs], torch.log_softmax(logits[cs] / beta, 0))


@given(tst.trees(), st.data())
def test_logit_shift_is_potential_shaping(tree, data):
    """Adding c(s) to the logits of s's children keeps π and shapes r with Φ = −c (Definition 1)."""
    logits = data.draw(tst.rewards(tree))
    shift = data.draw(tst.potentials(tree))  # c(s), 0 at terminal states (they have no children)
    beta = data.draw(tst.betas())
    shifted = logits + shift[tree.parent.clamp(min=0)]
    r, r_shifted = reward_from_q(tree, logits, beta), reward_from_q(tree, shifted, beta)
    close(soft_solve(tree, r, beta).log_policy, soft_solve(tree, r_shifted, beta).log_policy)
    close(r_shifted[1:], (r + (-shift) - (-shift)[tree.parent.clamp(min=0)])[1:])
    phi, residual = recover_potential(tree, r, r_shifted)
    assert residual.abs().max() < 1e-9
    close(phi[~tree.terminal], -shift[~tree.terminal])


def test_shifting_one_logit_is_not_shaping():
    """Negative twin: a shift that is not per-state changes π and leaves a residual."""
    tree = TokenTree.full(3, 2, eos=0)
    logits = torch.randn(tree.n_nodes, generator=torch.Generator().manual_seed(1), dtype=F64)
    bumped = logits.clone()
    bumped[5] += 1.0  # one child of state 2 only
    r, r_bumped = reward_from_q(tree, logits, 1.0), reward_from_q(tree, bumped, 1.0)
    assert not torch.allclose(
        soft_solve(tree, r, 1.0).log_policy, soft_solve(tree, r_bumped, 1.0).log_policy
    )
    assert recover_potential(tree, r, r_bumped)[1].abs().max() > 0.1


def test_reachable_marks_states_behind_impossible_edges():
    tree = TokenTree.full(
        2, 2, None, log_ref=torch.tensor([0.0, 0.0, -math.inf] + [math.log(0.5)] * 4)
    )
    assert reachable(tree).tolist() == [True, True, False, True, True, False, False]


# -- invalid input ----------------------------------------------------------------------------------


def test_bad_input_raises():
    tree = TokenTree.full(2, 2, None)
    n = tree.n_nodes
    with pytest.raises(ValueError, match="one entry per node"):
        soft_solve(tree, torch.zeros(n + 1), 1.0)
    with pytest.raises(ValueError, match="beta must be positive"):
        soft_solve(tree, torch.zeros(n), 0.0)
    with pytest.raises(ValueError, match="beta must be positive"):
        soft_solve(tree, torch.zeros(n), -1.0)
    with pytest.raises(ValueError, match="reward must be finite"):
        soft_solve(tree, torch.tensor([0.0, math.nan] + [0.0] * (n - 2)), 1.0)
    with pytest.raises(ValueError, match="tree must be a TokenTree"):
        soft_solve(tree.parent, torch.zeros(n), 1.0)
    with pytest.raises(ValueError, match="broadcast"):
        soft_solve(tree, torch.zeros(3, n), torch.ones(2))
    with pytest.raises(ValueError, match="NaN"):
        reward_from_q(tree, torch.full((n,), math.nan), 1.0)


def test_reward_from_q_needs_positive_reference():
    log_ref = torch.tensor([0.0, 0.0, -math.inf] + [math.log(0.5)] * 4, dtype=F64)
    tree = TokenTree.full(2, 2, None, log_ref=log_ref)
    q = torch.zeros(tree.n_nodes, dtype=F64)
    with pytest.raises(ValueError, match="node 2"):  # finite logit where π_ref = 0
        reward_from_q(tree, q, 1.0)
    q[2] = -math.inf
    assert torch.isfinite(reward_from_q(tree, q, 1.0)).all()
    q[3] = -math.inf  # −inf where π_ref > 0: no finite reward
    with pytest.raises(ValueError, match="node 3"):
        reward_from_q(tree, q, 1.0)


@pytest.mark.gpu
def test_soft_solve_on_cuda_matches_cpu():
    tree = TokenTree.full(4, 5, eos=0)
    reward = torch.randn(tree.n_nodes, generator=torch.Generator().manual_seed(0), dtype=F64)
    cpu = soft_solve(tree, reward, 0.7)
    gpu = soft_solve(tree.to("cuda"), reward.cuda(), 0.7)
    for a, b in zip(cpu, gpu, strict=True):
        assert torch.allclose(a, b.cpu(), atol=1e-12)
    back = reward_from_q(tree.to("cuda"), gpu.q, 0.7)
    assert torch.allclose(back.cpu()[1:], reward[1:], atol=1e-12)


def test_appendix_a_inverse_drops_the_reference_term():
    """Rafailov et al. 2024, Appendix A writes r = Q* − V*(s_{t+1}): that inverts the soft solve only
    when log π_ref ≡ 0 (entropy regularisation); eq. (7)'s KL version needs −β log π_ref too."""
    tree = TokenTree.full(3, 2, eos=0)
    reward = torch.randn(tree.n_nodes, generator=torch.Generator().manual_seed(3), dtype=F64)
    beta = 0.7
    sol = soft_solve(tree, reward, beta)
    appendix = sol.q - sol.v
    close(reward_from_q(tree, sol.q, beta)[1:], reward[1:])
    assert (appendix - reward)[1:].abs().min() > 0.5  # off by β log π_ref = −β log 3 on every edge
    close((appendix - reward)[1:], beta * tree.log_ref[1:])


def test_small_solves_run_on_one_thread_and_restore_the_setting(monkeypatch):
    """The solver's thread choice: one intra-op thread below the threshold, the caller's setting
    restored afterwards (also when the solve raises), untouched above the threshold."""
    import tokenmdp.solve as solve_module

    calls = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n)))
    before = torch.get_num_threads()
    real(2)
    try:
        tree = TokenTree.full(3, 3, eos=0)
        reward = torch.zeros(tree.n_nodes, dtype=F64)
        soft_solve(tree, reward, 1.0)
        assert calls == [1, 2] and torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="beta"):
            soft_solve(tree, reward, -1.0)
        assert calls[2:] == [1, 2] and torch.get_num_threads() == 2
        reward_from_q(tree, soft_solve(tree, reward, 1.0).q, 1.0)
        assert calls[4:] == [1, 2, 1, 2]
        monkeypatch.setattr(solve_module, "SINGLE_THREAD_BELOW", tree.n_nodes)
        calls.clear()
        soft_solve(tree, reward, 1.0)
        assert calls == []  # at the threshold: the caller's threads
    finally:
        real(before)
