"""The size guard: a tree too large for memory is refused at once, with its size and the budget."""

import re
import tracemalloc

import pytest
import torch

import tokenmdp as tm
from tests.helpers import F64
from tokenmdp.tree import _count_nodes


@pytest.mark.parametrize(
    ("build", "count"),
    [
        (lambda: tm.TokenTree.full(2, 40, eos=None), "2,199,023,255,551 nodes"),
        (lambda: tm.TokenTree.full(1, 10**12, eos=None), "1,000,000,000,001 nodes"),
        (lambda: tm.TokenTree.full(3, 10**9, eos=0), "more than 2^80 nodes"),
        (lambda: tm.random_tree(50, 6, None, generator=torch.Generator()), "15,943,877,551 nodes"),
    ],
)
def test_huge_trees_are_refused_before_any_allocation(build, count):
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=re.escape(count)) as err:
            build()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10**6  # bytes of Python objects: nothing tree-sized was built
    message = str(err.value)
    assert "memory budget" in message and "set_memory_budget" in message
    assert "TOKENMDP_MEMORY_BUDGET" in message


@pytest.mark.parametrize(
    ("vocab", "depth", "eos"),
    [(1, 5, None), (1, 3, 0), (3, 4, 0), (2, 6, 1), (4, 3, None), (5, 4, 2), (7, 1, 3)],
)
def test_the_count_is_the_size_of_the_built_tree(vocab, depth, eos):
    assert _count_nodes(vocab, depth, eos, vocab) == tm.TokenTree.full(vocab, depth, eos).n_nodes


def test_the_budget_is_configurable_and_guards_the_solvers(monkeypatch):
    tree = tm.TokenTree.full(3, 4, eos=0)  # 46 nodes
    reward = torch.zeros(10, tree.n_nodes, dtype=F64)
    try:
        tm.set_memory_budget(46 * 96)
        tm.TokenTree.full(3, 4, eos=0)  # exactly at the budget
        with pytest.raises(ValueError, match=r"46 nodes.*set by set_memory_budget"):
            tm.set_memory_budget(46 * 96 - 1)
            tm.TokenTree.full(3, 4, eos=0)
        tm.set_memory_budget(460 * 40 - 1)
        with pytest.raises(ValueError, match=r"soft_solve on 46 nodes × 10 reward"):
            tm.soft_solve(tree, reward, 1.0)
        with pytest.raises(ValueError, match="reward_from_q"):
            tm.reward_from_q(tree, reward, 1.0)
        tm.soft_solve(tree, reward[0], 1.0)  # one reward function fits
        with pytest.raises(ValueError, match="nbytes"):
            tm.set_memory_budget(0)
    finally:
        tm.set_memory_budget(None)
    monkeypatch.setenv("TOKENMDP_MEMORY_BUDGET", "1000")
    with pytest.raises(ValueError, match="from TOKENMDP_MEMORY_BUDGET"):
        tm.TokenTree.full(3, 4, eos=0)
    monkeypatch.setenv("TOKENMDP_MEMORY_BUDGET", "lots")
    with pytest.raises(ValueError, match="TOKENMDP_MEMORY_BUDGET must be"):
        tm.TokenTree.full(3, 4, eos=0)
