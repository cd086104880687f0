"""Search: exact max-sum, beam search, and Rafailov et al. 2024 eqs. (12)–(13)."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import F64
from tokenmdp import (
    TokenTree,
    beam_search,
    best_prefix,
    best_sequence,
    frontier,
    prefix_sum,
    soft_solve,
)
from tokenmdp import strategies as tst

from . import reference as ref


def brute_best(tree, scores):
    totals = ref.path_totals(tree, scores.tolist())
    k = max(range(len(totals)), key=totals.__getitem__)
    return tree.leaves[k].item(), totals[k]


@given(tst.trees(impossible=True), st.data())
def test_best_sequence_is_the_enumerated_argmax(tree, data):
    scores = data.draw(tst.rewards(tree))
    scores = torch.where(torch.isfinite(tree.log_ref), scores, -math.inf)  # forbidden edges
    node, total = best_sequence(tree, scores)
    want_node, want_total = brute_best(tree, scores)
    assert total == pytest.approx(want_total, abs=1e-12)
    assert node == want_node or ref.path_totals(tree, scores.tolist())[
        tree.leaves.tolist().index(node)
    ] == pytest.approx(want_total, abs=1e-12)


@given(tst.trees(), st.data())
def test_beam_search_width_extremes(tree, data):
    scores = data.draw(tst.rewards(tree))
    widest = max(frontier(tree, d).numel() for d in range(1, tree.max_depth + 1))
    beam, best = beam_search(tree, scores, widest), best_sequence(tree, scores)
    assert beam.node == best.node and beam.score == pytest.approx(best.score, abs=1e-12)
    # width 1 is greedy decoding, computed here by walking the children dicts
    kids, node, total = ref.children(tree), 0, 0.0
    while kids[node]:
        node = max(kids[node], key=lambda c: (scores[c].item(), -c))
        total += scores[node].item()
    greedy = beam_search(tree, scores, 1)
    assert greedy.node == node and greedy.score == pytest.approx(total, abs=1e-12)


def test_beam_search_can_beat_greedy():
    # token 0 looks best now (0.5 vs 0.4) but token 1 leads to 1.0
    tree = TokenTree.full(2, 2, None)
    scores = torch.tensor([0.0, 0.5, 0.4, 0.0, 0.1, 1.0, 0.0], dtype=F64)
    assert beam_search(tree, scores, 1).node == 4
    assert beam_search(tree, scores, 2) == best_sequence(tree, scores) == (5, pytest.approx(1.4))


@given(tst.tree_worlds(), st.data())
def test_value_guided_search_is_likelihood_search(world, data):
    """Eqs. (12)–(13): Σ (r + β log π_ref) + V*(s_{K+1}) = V*(s₀) + Σ β log π* on every frontier
    state, so both searches pick the same partial sequence at every depth K."""
    tree, reward, beta = world
    sol = soft_solve(tree, reward, beta)
    depth = data.draw(st.integers(1, tree.max_depth))
    nodes = frontier(tree, depth)
    guided = prefix_sum(tree, reward + beta * tree.log_ref)[nodes] + sol.v[nodes]
    likelihood = prefix_sum(tree, beta * sol.log_policy)[nodes]
    assert torch.allclose(guided, sol.v[0] + likelihood, atol=1e-9)
    a = best_prefix(tree, reward + beta * tree.log_ref, depth, value=sol.v)
    b = best_prefix(tree, beta * sol.log_policy, depth)
    assert a.score == pytest.approx(b.score + sol.v[0].item(), abs=1e-9)
    assert guided[nodes.tolist().index(b.node)] == pytest.approx(a.score, abs=1e-9)


def test_eq_13_as_printed_has_the_wrong_sign_of_v_star():
    """The printed eq. (13) reads −V*(s₀) + Σ β log π*; the identity needs +V*(s₀)."""
    tree = TokenTree.full(3, 2, eos=0)
    reward = 1 + torch.randn(tree.n_nodes, generator=torch.Generator().manual_seed(2), dtype=F64)
    beta = 0.5
    sol = soft_solve(tree, reward, beta)
    nodes = frontier(tree, 2)
    guided = prefix_sum(tree, reward + beta * tree.log_ref)[nodes] + sol.v[nodes]
    printed = -sol.v[0] + prefix_sum(tree, beta * sol.log_policy)[nodes]
    assert abs(sol.v[0].item()) > 0.1
    assert (guided - printed).abs().min() > 0.1


def test_search_without_the_value_frontier_picks_another_sequence():
    """Negative twin of eq. (12): drop V*(s_{K+1}) and a one-token look-ahead is fooled."""
    tree = TokenTree.full(2, 2, None)
    # token 0 pays 1 now and −3 afterwards; token 1 pays 0 now and +2 afterwards
    reward = torch.tensor([0.0, 1.0, 0.0, -3.0, -3.0, 2.0, 2.0], dtype=F64)
    beta = 1.0
    sol = soft_solve(tree, reward, beta)
    scores = reward + beta * tree.log_ref
    assert best_prefix(tree, scores, 1).node == 1
    assert best_prefix(tree, scores, 1, value=sol.v).node == 2
    assert best_prefix(tree, beta * sol.log_policy, 1).node == 2


def test_frontier_includes_sequences_that_ended_early():
    tree = TokenTree.full(2, 3, eos=0)
    assert frontier(tree, 2).tolist() == [1, 3, 4]
    with pytest.raises(ValueError, match="depth"):
        frontier(tree, 4)


def test_search_rejects_bad_input():
    tree = TokenTree.full(2, 2, None)
    with pytest.raises(ValueError, match="width"):
        beam_search(tree, torch.zeros(tree.n_nodes), 0)
    with pytest.raises(ValueError, match="NaN"):
        best_sequence(tree, torch.full((tree.n_nodes,), math.nan))
    with pytest.raises(ValueError, match="one value per node"):
        best_sequence(tree, torch.zeros(2, tree.n_nodes))
