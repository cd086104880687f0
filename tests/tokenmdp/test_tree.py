"""TokenTree: layout invariants, constructors, and loud failure on anything that is not a tree."""

import itertools
import math

import pytest
import torch
from hypothesis import given

from tokenmdp import TokenTree, random_tree
from tokenmdp import strategies as tst

from . import reference as ref


@given(tst.trees(impossible=True))
def test_layout_invariants(tree):
    n = tree.n_nodes
    parent, token = tree.parent, tree.token
    assert parent[0] == -1 and token[0] == -1 and tree.depth[0] == 0
    assert (parent[1:] < torch.arange(1, n)).all() and (parent[1:].diff() >= 0).all()
    assert (tree.depth[1:] == tree.depth[parent[1:]] + 1).all()
    kids = ref.children(tree)
    for s, cs in kids.items():
        assert cs == list(range(cs[0], cs[0] + len(cs))) if cs else True  # contiguous
        assert token[cs].tolist() == sorted(set(token[cs].tolist()))  # increasing
        assert bool(tree.terminal[s]) == (not cs)
        if cs:
            assert abs(ref.lse(tree.log_ref[cs].tolist())) < 1e-12
    if tree.eos is not None:
        assert tree.terminal[token == tree.eos].all()
    for d in range(tree.max_depth + 1):
        assert (tree.depth[tree.level(d)] == d).all()


@pytest.mark.parametrize(
    ("vocab", "depth", "eos"), [(2, 3, None), (3, 3, 0), (4, 2, 3), (1, 4, None)]
)
def test_full_tree_holds_every_sequence(vocab, depth, eos):
    tree = TokenTree.full(vocab, depth, eos)
    got = sorted(tuple(t for t in row if t >= 0) for row in tree.paths().tolist())
    want = set()
    for length in range(1, depth + 1):
        for seq in itertools.product(range(vocab), repeat=length):
            ends = eos is not None and seq[-1] == eos
            if (eos in seq[:-1]) if eos is not None else False:
                continue
            if ends or length == depth:
                want.add(seq)
    assert got == sorted(want)
    assert torch.allclose(tree.log_ref[1:], torch.tensor(-math.log(vocab), dtype=torch.float64))


def test_full_tree_node_count():
    # Without EOS: 1 + V + … + V^D = (V^{D+1} − 1)/(V − 1); with EOS each level has V(V−1)^{d−1}.
    assert TokenTree.full(3, 4, None).n_nodes == (3**5 - 1) // 2
    assert TokenTree.full(3, 4, 0).n_nodes == 1 + sum(3 * 2 ** (d - 1) for d in range(1, 5))


def test_from_sequences_is_the_empirical_prefix_tree():
    seqs = [[2, 1, 0], [2, 0], [1, 0], [2, 1, 0], [2, 2, 0]]
    tree = TokenTree.from_sequences(seqs, eos=0)
    leaves = sorted(tuple(t for t in row if t >= 0) for row in tree.paths().tolist())
    assert leaves == sorted({tuple(s) for s in seqs})
    # π_ref(seq) = empirical frequency: the product of next-token frequencies along the path.
    prob = {}
    for row, nodes in zip(tree.paths().tolist(), tree.path_nodes().tolist(), strict=True):
        key = tuple(t for t in row if t >= 0)
        prob[key] = math.exp(sum(tree.log_ref[n].item() for n in nodes if n >= 0))
    assert prob[(2, 1, 0)] == pytest.approx(2 / 5)
    assert prob[(1, 0)] == pytest.approx(1 / 5)
    assert sum(prob.values()) == pytest.approx(1.0)


def test_from_sequences_weights_and_prefix_rejection():
    tree = TokenTree.from_sequences([[1, 0], [2, 0]], weights=[3.0, 1.0])
    assert tree.log_ref[1:3].exp().tolist() == pytest.approx([0.75, 0.25])
    with pytest.raises(ValueError, match="proper prefix"):
        TokenTree.from_sequences([[1, 2], [1, 2, 0]])
    with pytest.raises(ValueError, match="empty"):
        TokenTree.from_sequences([[1], []])
    with pytest.raises(ValueError, match="weights"):
        TokenTree.from_sequences([[1], [2]], weights=[1.0, 0.0])


def test_random_tree_is_reproducible_and_prunes():
    a = random_tree(5, 4, 0, generator=torch.Generator().manual_seed(3), keep=0.4)
    b = random_tree(5, 4, 0, generator=torch.Generator().manual_seed(3), keep=0.4)
    assert torch.equal(a.parent, b.parent) and torch.equal(a.log_ref, b.log_ref)
    assert a.n_nodes < TokenTree.full(5, 4, 0).n_nodes
    dead = random_tree(4, 3, None, generator=torch.Generator().manual_seed(0), impossible=0.5)
    assert (dead.log_ref == -math.inf).any()


def test_paths_and_leaves():
    tree = TokenTree.full(2, 2, eos=0)
    assert tree.leaves.tolist() == [1, 3, 4]
    assert tree.path_nodes().tolist() == [[1, -1], [2, 3], [2, 4]]
    assert tree.paths([2]).tolist() == [[1, -1]]


# -- invalid input ------------------------------------------------------------------------------


def _chain():
    # root → a, b; a → c, d (a valid tree, π_ref uniform)
    h = math.log(0.5)
    return [-1, 0, 0, 1, 1], [-1, 0, 1, 0, 1], [0.0, h, h, h, h]


def test_valid_chain_builds():
    parent, token, log_ref = _chain()
    assert TokenTree(parent, token, log_ref).n_nodes == 5


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda p, t, lr: lr.__setitem__(3, -0.1), "children of node 1"),
        (lambda p, t, lr: p.__setitem__(2, 2), r"parent: node 2 has parent 2"),
        (lambda p, t, lr: p.__setitem__(3, 5), "parent: node 3"),
        (lambda p, t, lr: (p.__setitem__(2, 1), p.__setitem__(3, 0)), "breadth-first"),
        (lambda p, t, lr: t.__setitem__(2, 0), "strictly increasing"),
        (lambda p, t, lr: t.__setitem__(1, -2), "token must be ≥ 0"),
        (lambda p, t, lr: lr.__setitem__(0, 1.0), "root"),
        (lambda p, t, lr: lr.__setitem__(4, math.nan), "NaN"),
        (lambda p, t, lr: p.__setitem__(0, 0), "root"),
    ],
)
def test_bad_trees_raise(change, match):
    parent, token, log_ref = _chain()
    change(parent, token, log_ref)
    with pytest.raises(ValueError, match=match):
        TokenTree(parent, token, log_ref)


def test_bad_shapes_and_eos():
    parent, token, log_ref = _chain()
    with pytest.raises(ValueError, match="one entry per node"):
        TokenTree(parent, token[:-1], log_ref)
    with pytest.raises(ValueError, match="EOS edge with children"):
        TokenTree(parent, token, log_ref, eos=0)
    with pytest.raises(ValueError, match="vocab_size"):
        TokenTree(parent, token, log_ref, vocab_size=1)
    with pytest.raises(ValueError, match="at least one edge"):
        TokenTree([-1], [-1], [0.0])
    with pytest.raises(ValueError, match="eos"):
        TokenTree.full(3, 2, eos=3)
    with pytest.raises(ValueError, match="depth"):
        TokenTree.full(3, 0, eos=None)
    with pytest.raises(ValueError, match="log_ref must have one entry per node"):
        TokenTree.full(2, 2, eos=None, log_ref=torch.zeros(3))
    with pytest.raises(ValueError, match="keep"):
        random_tree(3, 2, None, generator=torch.Generator(), keep=0.0)
    with pytest.raises(ValueError, match="generator"):
        random_tree(3, 2, None, generator=0)


def test_unnormalised_full_tree_names_the_node():
    tree = TokenTree.full(2, 2, None)
    log_ref = tree.log_ref.clone()
    log_ref[5] = math.log(0.6)  # node 2's children now sum to 1.1
    with pytest.raises(ValueError, match=r"children of node 2 \(depth 1\) logsumexp to 0.0953"):
        TokenTree.full(2, 2, None, log_ref=log_ref)


@pytest.mark.gpu
def test_tree_moves_to_cuda():
    tree = TokenTree.full(3, 3, 0).to("cuda")
    assert tree.parent.is_cuda and tree.log_ref.is_cuda
