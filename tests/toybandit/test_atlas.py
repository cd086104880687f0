"""The loss atlas: its worlds against independent constructions, its verdicts against closed forms
written here, its files, and the copy of its tables in the docs."""

import csv
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import expit, logsumexp

import tokenmdp as tm
import toybandit as tb
from tests.helpers import F64
from toybandit import atlas as A
from toybandit import losses

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def entries():
    return A.atlas(0.5)


@pytest.fixture(scope="module")
def by(entries):
    return {(e.loss, e.world): e for e in entries}


def world(name: str) -> A.World:
    return next(w for w in A.worlds() if w.name == name)


# -- the worlds ------------------------------------------------------------------------------------


def test_every_world_is_a_valid_preference_world():
    for w in A.worlds():
        tb.check_preference(w.pref)
        assert abs(w.ref.sum().item() - 1) < 1e-15 and abs(w.mu.sum().item() - 1) < 1e-15
        assert (w.ref > 0).all() and (w.mu > 0).all() and (w.lengths >= 1).all()
        if w.reward is not None:  # the noisy world's labels are flipped σ's, the others σ's
            bt = expit(w.reward.numpy()[:, None] - w.reward.numpy()[None, :])
            want = (1 - A.NOISE) * bt + A.NOISE * bt.T if w.name == "noisy" else bt
            np.testing.assert_allclose(w.pref.numpy(), want, rtol=0, atol=1e-15)


def _token_tree():
    """The atlas's tree world rebuilt as a tokenmdp.TokenTree ("." = EOS = 0, a = 1, b = 2)."""
    w = world("token_tree")
    codes = {".": 0, "a": 1, "b": 2}
    seqs = [[codes[c] for c in s] for s in w.responses]
    tree = tm.TokenTree.from_sequences(seqs, weights=w.ref, vocab_size=3, eos=0)
    leaf = {tuple(tree.path_nodes(torch.tensor([n]))[0].tolist()): n for n in tree.leaves.tolist()}
    order = []  # tree leaf position of each atlas response
    for s in seqs:
        node, nodes = 0, []
        for t in s:
            kids = ((tree.parent == node) & (tree.token == t)).nonzero().flatten()
            node = int(kids[0])
            nodes.append(node)
        order.append(tree.leaves.tolist().index(node))
    assert len(leaf) == len(seqs)
    return w, tree, order


def test_the_tree_world_is_the_token_tree():
    """Edge probabilities, leaf law and lengths as tokenmdp sees them; π* over leaves (the bandit
    Gibbs law) equals the leaf law of tokenmdp.soft_solve's token policy (Rafailov et al. 2024,
    eqs. (5)–(7) against sec. 4.1's bandit)."""
    w, tree, order = _token_tree()
    edges = {
        "".join(".ab"[t] for t in [int(tree.token[m]) for m in p if m >= 0]): tree.log_ref[n].exp()
        for n in range(1, tree.parent.numel())
        for p in [tree.path_nodes(torch.tensor([n]))[0].tolist()]
    }
    for prefix, p in A.TREE_EDGES.items():
        assert abs(edges[prefix].item() - p) < 1e-15, prefix
    assert tree.depth[tree.leaves][order].double().tolist() == w.lengths.tolist()
    reward = torch.zeros(tree.parent.numel(), dtype=F64)
    reward[tree.leaves[order]] = w.reward
    sol = tm.soft_solve(tree, reward, 0.5)
    leaf_law = tm.path_sum(tree, sol.log_policy).exp()[order]
    torch.testing.assert_close(
        leaf_law, tb.optimal_policy(w.reward, w.ref, 0.5), rtol=0, atol=1e-14
    )


def test_the_tree_row_equals_the_tree_minimiser(by):
    """TRL's token-averaged losses on the token tree: the atlas's bandit over leaves (with lengths)
    and tokenmdp.minimise_tree_loss on the TokenTree (lengths = leaf depths) agree."""
    w, tree, order = _token_tree()
    reward = torch.zeros(tree.parent.numel(), dtype=F64)
    reward[tree.leaves[order]] = w.reward
    pairs = tm.population_trajectory_pairs(tree, reward, behaviour=None)
    for name, fn in (
        ("sigmoid_norm", lambda c, r, nc, nr: losses.sigmoid_norm(c, r, nc, nr, 0.5)),
        ("ipo", lambda c, r, nc, nr: losses.ipo(c / nc, r / nr, 0.5)),
    ):
        got = tm.minimise_tree_loss(tree, fn, pairs, length_normalised=True)
        torch.testing.assert_close(
            got.leaves.policy[order], by[name, "token_tree"].policy, rtol=0, atol=1e-10
        )


# -- the verdicts against closed forms written here --------------------------------------------------


def _gibbs(score, ref, beta):
    x = np.log(ref) + score / beta
    return np.exp(x - logsumexp(x))


def test_each_loss_lands_where_its_paper_says(by):
    """sigmoid on π* wherever labels are Bradley–Terry (μ ≠ π_ref and the tree included), robust
    on the clean π* under its noise rate, ipo on π_ref e^{Pμ/τ}/Z where the preference is
    deterministic; DPO-type losses on a total order have no minimiser."""
    for name in ("bradley_terry", "off_policy", "token_tree"):
        w = world(name)
        star = _gibbs(w.reward.numpy(), w.ref.numpy(), 0.5)
        assert np.abs(by["sigmoid", name].policy.numpy() - star).max() < 1e-12
    w = world("noisy")
    star = _gibbs(w.reward.numpy(), w.ref.numpy(), 0.5)
    assert np.abs(by["robust", "noisy"].policy.numpy() - star).max() < 1e-12
    assert np.abs(by["sigmoid", "noisy"].policy.numpy() - star).max() > 1e-2
    w = world("deterministic")
    ipo = _gibbs(w.pref.numpy() @ w.mu.numpy(), w.ref.numpy(), 0.5)
    assert np.abs(by["ipo", "deterministic"].policy.numpy() - ipo).max() < 1e-12
    for loss in ("sigmoid", "robust", "sigmoid_norm", "simpo", "sigmoid · forward_kl"):
        e = by[loss, "deterministic"]
        assert not e.finite and e.converged and e.vanishing == ("y1", "y2", "y3"), loss
        assert e.chosen_logratio == -math.inf
    assert by["hinge", "deterministic"].unique is False  # every margin ≥ 1/β: a flat set


def test_the_maximal_lottery_is_unbeaten():
    """No response beats the maximal lottery on average (Σ_i p_i (2P_ij − 1) ≥ 0 for every j), and
    on a Bradley–Terry world it is the point mass on the best response."""
    cyclic = world("intransitive").pref
    p = tb.maximal_lottery(cyclic)
    assert ((p @ (2 * cyclic - 1)) >= -1e-12).all() and abs(p.sum().item() - 1) < 1e-12
    assert (p > 1e-6).sum() >= 3  # a cycle has no Condorcet winner
    best = tb.maximal_lottery(world("bradley_terry").pref)
    assert best.tolist() == pytest.approx([1, 0, 0, 0], abs=1e-12)
    with pytest.raises(ValueError, match="pref must be one matrix"):
        tb.maximal_lottery(torch.stack([cyclic, cyclic]))
    with pytest.raises(ValueError, match=r"\(8c\)"):
        tb.maximal_lottery(torch.tensor([[0.5, 0.9], [0.9, 0.5]], dtype=F64))


def test_drift_is_the_weighted_log_ratio(by):
    w = world("bradley_terry")
    e = by["sigmoid", "bradley_terry"]
    weights = 2 * w.mu.numpy()[:, None] * w.mu.numpy()[None, :] * w.pref.numpy()
    q = np.log(e.policy.numpy() / w.ref.numpy())
    assert abs(e.chosen_logratio - (weights.sum(1) * q).sum()) < 1e-14
    assert abs(e.rejected_logratio - (weights.sum(0) * q).sum()) < 1e-14


# -- output ------------------------------------------------------------------------------------------


def test_cells_state_their_caveats(by):
    head, rows = A.table(list(by.values()))
    cells = {r[0]: r[1:] for r in rows}
    assert cells["sigmoid"][0] == "0" and cells["sigmoid"][3] == "∅"
    assert cells["hinge"][3].endswith("≈") and cells["hinge"][0].endswith("†")
    assert all(c.endswith("*") or c.startswith("∅") for c in cells["nca_pair"][:6])
    assert len(rows) == len(A.LOSSES) and len(head) == 1 + len(A.COLUMNS)


def _block(text: str, name: str) -> str:
    found = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert found, f"no {name} block"
    return found.group(1)


def test_docs_copy_is_current(entries):
    """docs/atlas.md carries the whole markdown of ``python -m toybandit.atlas --markdown`` (the
    only copy: the README links to it); regenerate it when the atlas changes."""
    want = A.markdown(entries)
    assert _block((ROOT / "docs" / "atlas.md").read_text(encoding="utf-8"), "atlas") == want, (
        "docs/atlas.md is stale: python benchmarks/write_block.py atlas docs/atlas.md -- "
        "python -m toybandit.atlas --markdown"
    )
    assert "<!-- atlas:start -->" not in (ROOT / "README.md").read_text(encoding="utf-8")


def test_cli_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(A, "CSV_BETAS", (0.5,))
    monkeypatch.setattr(A, "SWEEP_BETAS", (0.5, 1.0))
    assert A.main(["--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "atlas.csv").open(encoding="utf-8")))
    assert len(rows) == len(A.LOSSES) * len(A.worlds())
    first = rows[0]
    assert first["loss"] == "sigmoid" and first["world"] == "bradley_terry"
    assert float(first["kl_to_optimum"]) < 1e-12 and first["finite"] == "true"
    assert abs(sum(float(p) for p in first["policy"].split(";")) - 1) < 1e-12
    assert (tmp_path / "atlas.png").stat().st_size > 10_000
    assert "Not in the atlas" in capsys.readouterr().out


def test_bad_input():
    with pytest.raises(ValueError, match="beta must be positive and finite"):
        A.atlas(0.0)
    with pytest.raises(ValueError, match="beta must be positive and finite"):
        A.atlas(math.nan)
    with pytest.raises(SystemExit):
        A.main(["--beta", "-1"])


def test_an_uncertified_cell_reports_nothing():
    """A minimiser that could not certify its result gets no KL, drift or length, and its cell
    says so (an uncertified apo_down once showed KL 0.002 and a drift of −386)."""
    entries = A.atlas(0.1, losses=[loss for loss in A.LOSSES if loss.name == "apo_down"])
    assert any(not e.converged for e in entries)
    for e in entries:
        if not e.converged:
            numbers = (e.kl_to_optimum, e.kl_to_ipo, e.kl_to_lottery, e.mean_length)
            assert all(math.isnan(x) for x in (*numbers, e.chosen_logratio, e.rejected_logratio))
    _, rows = A.table(entries)
    cells = [c for c, e in zip(rows[0][1:6], entries[:5], strict=True) if not e.converged]
    assert cells and all(c == "not certified" for c in cells)


def test_the_figure_shows_each_worlds_target(by):
    """The heat map's distance is the table's: to π* where it exists, to the IPO optimum on the
    total order, from the maximal lottery on the cycle."""
    for (loss, world), e in by.items():
        want = {"deterministic": e.kl_to_ipo, "intransitive": e.kl_to_lottery}.get(
            world, e.kl_to_optimum
        )
        got = A._target(e)
        assert got == want or (math.isnan(got) and math.isnan(want)), (loss, world)


def _quoted(x: str) -> tuple[float, float]:
    """A number as the docs print it (U+2212 minus allowed) and half a unit of its last digit."""
    x = x.replace("−", "-")
    decimals = len(x.split(".")[1]) if "." in x else 0
    return float(x), 0.5 * 10.0**-decimals


def test_the_findings_quote_the_atlas(by):
    """The numbers in the findings of docs/atlas.md are the atlas's own, to the digits quoted
    (β = 0.5, the table's, unless the sentence names another)."""
    text = " ".join((ROOT / "docs" / "atlas.md").read_text().split())
    exact = {"sigmoid", "sigmoid_norm"}
    kl = {
        loss: e.kl_to_optimum
        for (loss, w), e in by.items()
        if w == "bradley_terry" and loss not in exact and not math.isnan(e.kl_to_optimum)
    }
    m = re.search(r"KL from (\S+) \(`(\w+)`\) to (\S+) \(`(\w+)`\)", text)
    assert m, "the KL range sentence is gone"
    (lo, lo_tol), (hi, hi_tol) = _quoted(m[1]), _quoted(m[3])
    assert (m[2], m[4]) == (min(kl, key=kl.get), max(kl, key=kl.get))
    assert abs(kl[m[2]] - lo) <= lo_tol and abs(kl[m[4]] - hi) <= hi_tol
    m = re.search(r"mean length from (\S+) \(π\\\*\) to (\S+)\.", text)
    assert m, "the mean-length sentence is gone"
    for quoted, loss in ((m[1], "sigmoid"), (m[2], "sigmoid_norm")):
        value, tol = _quoted(quoted)
        assert abs(by[(loss, "token_tree")].mean_length - value) <= tol
    m = re.search(r"\): (\S+) on the Bradley–Terry world at β = 0\.5 but (\S+) at β = 0\.1", text)
    assert m, "the chosen log-ratio sentence is gone"
    at_01 = A.entry(A.LOSSES[0], world("bradley_terry"), 0.1)
    assert A.LOSSES[0].name == "sigmoid"
    for quoted, e in ((m[1], by[("sigmoid", "bradley_terry")]), (m[2], at_01)):
        value, tol = _quoted(quoted.replace("+", ""))
        assert abs(e.chosen_logratio - value) <= tol, (quoted, e.chosen_logratio)
