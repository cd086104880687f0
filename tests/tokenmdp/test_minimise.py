"""minimise_tree_loss: exact minimisers of sequence-level losses on token trees.

The independent certificate is first-order optimality in the tree's own parametrisation: the
gradient of the loss with respect to every edge logit (dense sibling softmax, path gathers: a
different code path from the leaf-law minimiser and the tree kernels) vanishes at the result;
scipy minimises the same edge-logit objective from scratch.
"""

import functools

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

import tokenmdp as tm
import tokenmdp.minimise as TM
import toybandit as tb
from tests.helpers import F64
from toybandit import losses

pytestmark = pytest.mark.usefixtures("one_thread")


def tree_world(seed):
    """Sequences of 1, 2 and 3 tokens (EOS ends one early), π_ref and rewards at random."""
    g = torch.Generator().manual_seed(seed)
    tree = tm.random_tree(2, 3, eos=0, generator=g)
    reward = torch.randn(tree.n_nodes, generator=g, dtype=F64)
    return tree, reward


def edge_objective(tree, loss, pairs, length_normalised=False):
    """Σ w ℓ over pairs as a function of free edge logits θ (one per edge, softmax among siblings)."""
    w = pairs.weights / pairs.weights.sum()
    lengths = tree.depth[tree.leaves].to(F64)
    parent = tree.parent.clamp(min=0)
    edge = torch.arange(tree.n_nodes) > 0  # the root is nobody's sibling
    sibling = (parent.unsqueeze(0) == parent.unsqueeze(1)) & edge.unsqueeze(0) & edge.unsqueeze(1)
    paths = tree.path_nodes()
    paths = torch.where(paths >= 0, paths, tree.n_nodes)  # padding reads a trailing 0
    log_ref = tree.log_ref.to(F64)

    def f(theta):
        # log-softmax among siblings, written densely (an independent route from the tree kernels)
        masked = torch.where(sibling, theta.unsqueeze(0).expand(len(theta), -1), -torch.inf)
        log_pi = theta - torch.logsumexp(masked, -1)
        log_pi = torch.where(torch.arange(len(theta)) > 0, log_pi, 0.0)
        q = torch.cat([log_pi - log_ref, log_pi.new_zeros(1)])[paths].sum(-1)
        c, r = q[pairs.chosen], q[pairs.rejected]
        extra = (lengths[pairs.chosen], lengths[pairs.rejected]) if length_normalised else ()
        return (w * loss(c, r, *extra)).sum()

    return f


def assert_stationary(tree, loss, pairs, log_policy, length_normalised=False):
    f = edge_objective(tree, loss, pairs, length_normalised)
    theta = log_policy.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(theta), theta)
    assert grad.abs().max() < 1e-10, grad.abs().max()


@pytest.mark.parametrize("seed", range(3))
def test_dpo_ipo_equal_fit_tree_policy_and_are_stationary_per_edge(seed):
    tree, reward = tree_world(seed)
    pairs = tm.population_trajectory_pairs(tree, reward)
    for name, kw, loss in (("dpo", {"beta": 0.5}, losses.dpo), ("ipo", {"tau": 0.5}, losses.ipo)):
        fn = functools.partial(loss, **kw)
        got = tm.minimise_tree_loss(tree, fn, pairs)
        want = tm.fit_tree_policy(
            tree, pairs.chosen, pairs.rejected, name, weights=pairs.weights, **kw
        )
        assert got.leaves.finite and got.leaves.converged
        assert (got.log_policy.exp() - want.exp()).abs().max() < 1e-10
        assert_stationary(tree, fn, pairs, got.log_policy)
    # Bradley–Terry on summed rewards: DPO lands on the soft-optimal token policy
    got = tm.minimise_tree_loss(tree, functools.partial(losses.dpo, beta=0.5), pairs)
    assert (
        got.log_policy.exp() - tm.soft_solve(tree, reward, 0.5).log_policy.exp()
    ).abs().max() < 1e-10


@pytest.mark.parametrize("seed", range(3))
def test_length_normalised_losses_differ_from_summed_ones_exactly(seed):
    tree, reward = tree_world(seed)
    pairs = tm.population_trajectory_pairs(tree, reward)
    lengths = tree.depth[tree.leaves]
    assert len(set(lengths.tolist())) > 1
    norm = functools.partial(losses.sigmoid_norm, beta=0.5)
    got = tm.minimise_tree_loss(tree, norm, pairs, length_normalised=True)
    assert got.leaves.finite and got.leaves.converged
    assert_stationary(tree, norm, pairs, got.log_policy, length_normalised=True)
    summed = tm.minimise_tree_loss(tree, functools.partial(losses.dpo, beta=0.5), pairs)
    assert (got.log_policy.exp() - summed.log_policy.exp()).abs().max() > 1e-3
    # TRL's ipo (averaged) against the paper's (summed)
    trl_ipo = lambda c, r, nc, nr: losses.ipo(c / nc, r / nr, 0.5)  # noqa: E731
    got_ipo = tm.minimise_tree_loss(tree, trl_ipo, pairs, length_normalised=True)
    assert_stationary(tree, trl_ipo, pairs, got_ipo.log_policy, length_normalised=True)
    paper = tm.minimise_tree_loss(tree, functools.partial(losses.ipo, tau=0.5), pairs)
    assert (got_ipo.log_policy.exp() - paper.log_policy.exp()).abs().max() > 1e-3


def test_length_normalised_minimiser_equals_scipy_on_edge_logits():
    tree, reward = tree_world(11)
    pairs = tm.population_trajectory_pairs(tree, reward)
    norm = functools.partial(losses.sigmoid_norm, beta=0.5)
    got = tm.minimise_tree_loss(tree, norm, pairs, length_normalised=True)
    f = edge_objective(tree, norm, pairs, length_normalised=True)

    def fun(x):
        theta = torch.as_tensor(x, dtype=F64).requires_grad_(True)
        value = f(theta)
        (grad,) = torch.autograd.grad(value, theta)
        return value.item(), grad.numpy()

    x0 = tree.log_ref.to(F64).numpy().copy()
    res = minimize(fun, x0, jac=True, method="BFGS", options={"gtol": 1e-13, "maxiter": 5000})
    theta = torch.as_tensor(res.x)
    parent = tree.parent.clamp(min=0)
    edge = torch.arange(tree.n_nodes) > 0
    sibling = (parent.unsqueeze(0) == parent.unsqueeze(1)) & edge.unsqueeze(0) & edge.unsqueeze(1)
    dense = torch.where(sibling, theta.unsqueeze(0).expand(len(theta), -1), -torch.inf)
    want = torch.where(edge, theta - torch.logsumexp(dense, -1), 0.0).exp()
    assert np.abs((got.log_policy.exp() - want).numpy()).max() < 1e-8


def test_deterministic_trajectory_preferences_have_no_dpo_minimiser():
    tree, reward = tree_world(2)
    pairs = tm.population_trajectory_pairs(tree, 1e3 * reward)
    # σ(1e3 ΔR) rounds to 1, but σ(−1e3 ΔR) ≈ e^{−250} is a float: with those pairs P is not 0/1
    # and DPO has a (far) finite minimiser; dropping them makes the labels exactly deterministic
    keep = pairs.weights > 1e-50 * pairs.weights.max()
    assert (~keep).any()
    pairs = tb.PreferencePairs(*(x[keep] for x in (pairs.chosen, pairs.rejected)), None,
                               pairs.weights[keep])  # fmt: skip
    got = tm.minimise_tree_loss(tree, functools.partial(losses.dpo, beta=0.5), pairs)
    assert not got.leaves.finite and got.leaves.vanishing.sum() == len(tree.leaves) - 1
    # twin: IPO on the same data has one
    assert tm.minimise_tree_loss(tree, functools.partial(losses.ipo, tau=0.5), pairs).leaves.finite


def test_bad_input():
    tree, reward = tree_world(0)
    pairs = tm.population_trajectory_pairs(tree, reward)
    with pytest.raises(ValueError, match=r"pairs\.prompts must be None"):
        tm.minimise_tree_loss(
            tree, losses.dpo, pairs._replace(prompts=torch.zeros_like(pairs.chosen))
        )
    with pytest.raises(ValueError, match=r"tree must be a tokenmdp\.TokenTree"):
        tm.minimise_tree_loss(None, losses.dpo, pairs)
    with pytest.raises(ValueError, match="loss must be callable"):
        tm.minimise_tree_loss(tree, None, pairs)
    with pytest.raises(ValueError, match=r"ld_alpha must lie in \[0, 1\]"):
        tm.minimise_tree_loss(tree, losses.dpo, pairs, ld_alpha=1.5)
    with pytest.raises(ValueError, match="ld_alpha needs on="):
        tm.minimise_tree_loss(tree, losses.dpo, pairs, ld_alpha=0.5, on="logps")


@pytest.mark.parametrize("alpha", [0.0, 0.4])
def test_ld_alpha_minimiser_is_stationary_per_edge(alpha):
    """LD-DPO: tokens beyond the shorter sequence count with weight α; the log-ratios depend on
    the pair. Certified in edge logits with the prefix sums written here (an independent route)."""
    tree, reward = tree_world(4)
    pairs = tm.population_trajectory_pairs(tree, reward)
    dpo = functools.partial(losses.dpo, beta=0.5)
    got = tm.minimise_tree_loss(tree, dpo, pairs, ld_alpha=alpha)
    assert got.leaves.finite and got.leaves.converged

    w = pairs.weights / pairs.weights.sum()
    parent = tree.parent.clamp(min=0)
    edge = torch.arange(tree.n_nodes) > 0
    sibling = (parent.unsqueeze(0) == parent.unsqueeze(1)) & edge.unsqueeze(0) & edge.unsqueeze(1)
    paths = tree.path_nodes()
    padded = torch.where(paths >= 0, paths, tree.n_nodes)
    depth = tree.depth[tree.leaves]
    shared = torch.minimum(depth[pairs.chosen], depth[pairs.rejected])
    t = torch.arange(paths.shape[1])

    def f(theta):
        dense = torch.where(sibling, theta.unsqueeze(0).expand(len(theta), -1), -torch.inf)
        log_pi = torch.where(edge, theta - torch.logsumexp(dense, -1), 0.0)
        e = torch.cat([log_pi - tree.log_ref.to(F64), log_pi.new_zeros(1)])
        weight = torch.where(t[None, :] < shared[:, None], 1.0, alpha)  # per pair, per token
        q_w = (weight * e[padded[pairs.chosen]]).sum(-1)
        q_l = (weight * e[padded[pairs.rejected]]).sum(-1)
        return (w * dpo(q_w, q_l)).sum()

    theta = got.log_policy.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(theta), theta)
    assert grad.abs().max() < 1e-10
    # twin: the summed minimiser is not stationary for LD (α < 1 changes the optimum)
    summed = tm.minimise_tree_loss(tree, dpo, pairs).log_policy.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(summed), summed)
    assert grad.abs().max() > 1e-6
    # α = 1 is the summed loss
    one = tm.minimise_tree_loss(tree, dpo, pairs, ld_alpha=1.0)
    assert (one.log_policy.exp() - summed.detach().exp()).abs().max() < 1e-10


# -- fault injection: lengths off by one, and the check above goes red -----------------------------


def test_tree_lengths_off_by_one_are_caught(monkeypatch):
    original = TM.minimise_loss

    def off_by_one(loss, pairs, ref, *, lengths=None, **kw):
        return original(loss, pairs, ref, lengths=None if lengths is None else lengths + 1, **kw)

    monkeypatch.setattr(TM, "minimise_loss", off_by_one)
    with pytest.raises(AssertionError):
        test_length_normalised_minimiser_equals_scipy_on_edge_logits()
