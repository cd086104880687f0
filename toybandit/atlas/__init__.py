"""The loss atlas: where every preference loss TRL ships converges, exactly.

For each loss of :data:`LOSSES` and each world of :func:`worlds`, the population objective

    L(π) = Σ_{(y_w, y_l)} W(y_w, y_l) ℓ(q(y_w), q(y_l)),   W = 2 μ(y_w) μ(y_l) P(y_w ≻ y_l)

(the limit of infinitely many pairs drawn from μ × μ and labelled by P, Nguyen 2025, eq. (6)) is
minimised exactly over tabular policies by :func:`toybandit.minimise_loss`, and the minimiser π̂
is compared with the targets the losses claim:

- π* = π_ref e^{r/β}/Z, the KL-regularised optimum (Nguyen 2025, eq. (1)), where a Bradley–Terry
  reward r exists (for the noisy world: the reward of the clean labels);
- the IPO optimum π_ref e^{p/τ}/Z, p(y) = E_{y'∼μ} P(y ≻ y') (Azar et al. 2023, eq. (7) with
  Ψ = identity; τ = β, as TRL's ``ipo`` uses ``beta`` for τ);
- the maximal lottery (the von Neumann winner of 2P − 1) where there is no reward.

Each :class:`Entry` also says whether a finite minimiser exists (and which responses vanish when it
does not), the expected chosen and rejected log-ratios E_W[q(y_w)], E_W[q(y_l)] at π̂ (the
"falling chosen likelihood" users report: −∞ when a chosen response vanishes), and the mean
response length E_π̂|y| (the token-tree world).

Every loss sees the β of the run; ``ipo`` uses it as τ, as TRL does. Losses that take
token-normalised inputs (TRL's ``ipo``, ``sigmoid_norm``, SimPO, ORPO) get the response lengths.
The NLL terms (``sft``, the NLL of CPO and ORPO) are TRL's token means over the chosen responses:
in the population, E_W[−log π(y_w)] / E_W[|y_w|] (ORPO's trainer also counts the prompt's tokens
in that mean, which only rescales the term; the atlas's prompts have none). On log-ratios, −log
π(y_w) is −q(y_w) up to the constant log π_ref(y_w): the same minimiser. Two TRL losses are not
in the atlas: ``aot``/``aot_unpaired`` sort log-ratios across a batch (no per-pair population
objective) and KTO's reference point is a batch estimate of KL(π‖π_ref) held fixed within a step
(its optimum is a fixed point, not a minimiser).

``python -m toybandit.atlas`` prints the table; ``--out DIR`` writes ``atlas.csv`` (β = 0.1, 0.5,
2) and the figures; ``--markdown`` prints the tables of ``docs/atlas.md``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch

from .. import losses as L
from ..data import PreferencePairs, population_pairs
from ..minimise import minimise_loss
from ..optimal import kl_divergence, optimal_policy
from ..preferences import bradley_terry, from_upper_triangle, maximal_lottery, psi_optimal_policy

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Tensor = torch.Tensor
F64 = torch.float64

__all__ = [
    "EXCLUDED",
    "LEGEND",
    "LOSSES",
    "NOISE",
    "Entry",
    "Loss",
    "World",
    "atlas",
    "drift_table",
    "entry",
    "figure",
    "main",
    "markdown",
    "table",
    "text",
    "worlds",
    "write_csv",
]

REWARD = (1.0, 0.3, -0.5, 0.0)
REF = (0.1, 0.2, 0.3, 0.4)
NOISE = 0.1
"""The label-flip rate of the noisy world, and the ``label_smoothing`` of ``robust`` (the value
TRL's docs recommend after Chowdhury et al. 2024)."""
OFF_POLICY_MU = (0.05, 0.15, 0.3, 0.5)

# The token tree: "." is EOS; a sequence ends at EOS (at the latest at depth 3). π_ref per edge.
TREE_EDGES = {
    ".": 0.2, "a": 0.5, "b": 0.3,
    "a.": 0.3, "aa": 0.4, "ab": 0.3, "aa.": 1.0, "ab.": 1.0,
    "b.": 0.6, "bb": 0.4, "bb.": 1.0,
}  # fmt: skip
TREE_REWARD = {".": 0.0, "a.": 0.5, "aa.": 1.0, "ab.": -0.5, "b.": 0.2, "bb.": 0.8}


class World(NamedTuple):
    """One exact world: a single prompt, its responses and how pairs are drawn and labelled.

    Attributes:
        name: short id.
        description: one line.
        responses: a label per response (token strings in the tree world).
        ref: π_ref [Y]. mu: μ [Y], the law of each response of a pair. pref: P [Y, Y].
        reward: the Bradley–Terry reward behind the clean labels [Y], or None (no reward exists).
        lengths: tokens per response [Y] (1 in the bandit worlds).
    """

    name: str
    description: str
    responses: tuple[str, ...]
    ref: Tensor
    mu: Tensor
    pref: Tensor
    reward: Tensor | None
    lengths: Tensor


def _t(x) -> Tensor:
    return torch.tensor(x, dtype=F64)


def _tree() -> tuple[tuple[str, ...], Tensor, Tensor, Tensor]:
    """The leaves of :data:`TREE_EDGES`, their π_ref (product of edge probabilities), lengths and
    rewards."""
    leaves = tuple(TREE_REWARD)
    ref = _t([math.prod(TREE_EDGES[s[: k + 1]] for k in range(len(s))) for s in leaves])
    return leaves, ref, _t([len(s) for s in leaves]), _t([TREE_REWARD[s] for s in leaves])


def worlds() -> list[World]:
    """The atlas's panel of six worlds.

    - ``bradley_terry``: P = σ(r_i − r_j), r = (1, 0.3, −0.5, 0), π_ref = (0.1, 0.2, 0.3, 0.4),
      μ uniform: every target exists; π* is the one DPO claims.
    - ``noisy``: the same labels flipped with probability ε = 0.1, P = (1 − ε)σ + ε(1 − σ); the
      target is still the clean π* (what rDPO claims to recover, Chowdhury et al. 2024).
    - ``off_policy``: the Bradley–Terry world with μ = (0.05, 0.15, 0.3, 0.5) ≠ π_ref: π* does not
      depend on μ, the IPO optimum does (Azar et al. 2023, sec. 4).
    - ``deterministic``: y₀ ≻ y₁ ≻ y₂ ≻ y₃ surely: the rewards would be infinite, π* does not
      exist (Azar et al. 2023, sec. 4.2); the IPO optimum and the maximal lottery δ_{y₀} do.
    - ``intransitive``: P(y₀ ≻ y₁) = 0.8, P(y₁ ≻ y₂) = 0.8, P(y₂ ≻ y₃) = 0.7, P(y₀ ≻ y₂) = 0.3,
      ...: no reward explains it; targets are the IPO optimum and the maximal lottery.
    - ``token_tree``: the six complete sequences of a token tree ("." is EOS) of 1 to 3 tokens,
      π_ref the product of its edge probabilities, μ = π_ref (pairs sampled from the reference
      model), Bradley–Terry labels from a sequence reward: the world where TRL's token-averaged
      losses and the papers' summed ones part.
    """
    reward, ref, mu = _t(REWARD), _t(REF), torch.full((4,), 0.25, dtype=F64)
    one = torch.ones(4, dtype=F64)
    names = ("y0", "y1", "y2", "y3")
    bt = bradley_terry(reward)
    order = from_upper_triangle(torch.ones(4, 4, dtype=F64))
    cyclic = from_upper_triangle(
        _t([[0, 0.8, 0.3, 0.6], [0, 0, 0.8, 0.4], [0, 0, 0, 0.7], [0, 0, 0, 0]])
    )
    leaves, tree_ref, tree_lengths, tree_reward = _tree()
    return [
        World("bradley_terry", "Bradley–Terry labels, μ uniform", names, ref, mu, bt, reward, one),
        World(
            "noisy",
            f"Bradley–Terry labels flipped with probability ε = {NOISE}",
            names,
            ref,
            mu,
            (1 - NOISE) * bt + NOISE * bt.mT,
            reward,
            one,
        ),
        World(
            "off_policy",
            "Bradley–Terry labels, μ ≠ π_ref",
            names,
            ref,
            _t(OFF_POLICY_MU),
            bt,
            reward,
            one,
        ),
        World(
            "deterministic", "a total order, y0 ≻ y1 ≻ y2 ≻ y3", names, ref, mu, order, None, one
        ),
        World("intransitive", "cyclic preferences, no reward", names, ref, mu, cyclic, None, one),
        World(
            "token_tree",
            "sequences of 1–3 tokens, pairs from π_ref, Bradley–Terry labels",
            leaves,
            tree_ref,
            tree_ref,
            bradley_terry(tree_reward),
            tree_reward,
            tree_lengths,
        ),
    ]


class Loss(NamedTuple):
    """One row of the atlas.

    Attributes:
        name: TRL's ``loss_type`` where there is one.
        trl: the TRL configuration the row reproduces.
        paper: where the loss comes from.
        on: ``"logratios"`` (q = log π/π_ref) or ``"logps"`` (log π; no reference model).
        build: ``build(beta, nll_scale) -> fn(chosen, rejected, chosen_len, rejected_len)``, the
            per-pair loss; ``nll_scale`` = 1/E_W|y_w| turns −log π(y_w) into TRL's token mean.
        convex: every stationary point is a global minimiser: ℓ is convex in the margin h and h
            is linear in the logits (log π_w − log π_l), or a convex function of u = q/|y|,
            whose stationary points on {Σ π_ref e^{|y|u} = 1} are its unconstrained ones since L
            is shift-invariant in u; NLL terms are convex. Otherwise the atlas shows the minimiser
            reached from π_ref by descent, as training from π_ref would.
    """

    name: str
    trl: str
    paper: str
    on: str
    build: Callable[[float, float], Callable[..., Tensor]]
    convex: bool = False


def _trl(loss_type: str, **config) -> Callable[[float, float], Callable[..., Tensor]]:
    """The per-pair loss of TRL's ``DPOConfig(loss_type=..., beta=β, **config)``
    (:func:`toybandit.losses.trl_pair_loss`), given the lengths where it normalises by them."""

    def build(beta: float, nll_scale: float) -> Callable[..., Tensor]:
        pair = L.trl_pair_loss(loss_type, beta, **config)
        return pair.fn if pair.length_normalised else lambda c, r, nc, nr: pair.fn(c, r)

    return build


LOSSES: tuple[Loss, ...] = (
    Loss("sigmoid", 'DPOConfig(loss_type="sigmoid")', "DPO, Rafailov et al. 2023", "logratios",
         _trl("sigmoid"), convex=True),
    Loss("robust", f'DPOConfig(loss_type="robust", label_smoothing={NOISE})',
         "rDPO, Chowdhury et al. 2024", "logratios", _trl("robust", label_smoothing=NOISE),
         convex=True),
    Loss("hinge", 'DPOConfig(loss_type="hinge")', "SLiC, Zhao et al. 2023", "logratios",
         _trl("hinge"), convex=True),
    Loss("ipo", 'DPOConfig(loss_type="ipo")', "IPO, Azar et al. 2023 (TRL: token-averaged)",
         "logratios", _trl("ipo"), convex=True),
    Loss("ipo (summed)", "— (the paper's IPO; TRL's ipo on one-token responses)",
         "IPO, Azar et al. 2023, eq. (17)", "logratios",
         lambda b, s: lambda c, r, nc, nr: L.ipo(c, r, b), convex=True),
    Loss("exo_pair", 'DPOConfig(loss_type="exo_pair", label_smoothing=1e-3)',
         "EXO, Ji et al. 2024", "logratios", _trl("exo_pair", label_smoothing=1e-3)),
    Loss("nca_pair", 'DPOConfig(loss_type="nca_pair")', "NCA, Chen et al. 2024", "logratios",
         _trl("nca_pair")),
    Loss("bco_pair", 'DPOConfig(loss_type="bco_pair")', "BCO, Jung et al. 2024", "logratios",
         _trl("bco_pair")),
    Loss("sppo_hard", 'DPOConfig(loss_type="sppo_hard")', "SPPO, Wu et al. 2024", "logratios",
         _trl("sppo_hard")),
    Loss("apo_zero", 'DPOConfig(loss_type="apo_zero")', "APO, D'Oosterlinck et al. 2024",
         "logratios", _trl("apo_zero")),
    Loss("apo_down", 'DPOConfig(loss_type="apo_down")', "APO, D'Oosterlinck et al. 2024",
         "logratios", _trl("apo_down")),
    Loss("discopop", 'DPOConfig(loss_type="discopop")', "DiscoPOP, Lu et al. 2024", "logratios",
         _trl("discopop")),
    Loss("sigmoid_norm", 'DPOConfig(loss_type="sigmoid_norm")', "DPO on token-averaged log-ratios",
         "logratios", _trl("sigmoid_norm"), convex=True),
    Loss("sft", 'DPOConfig(loss_type="sft")', "NLL of the chosen responses", "logratios",
         lambda b, s: lambda c, r, nc, nr: -c * s + 0 * r, convex=True),
    Loss("mpo", 'DPOConfig(loss_type=["sigmoid", "bco_pair", "sft"], loss_weights=[0.8, 0.2, 1])',
         "MPO, Wang et al. 2024 (TRL's docs example)", "logratios",
         lambda b, s: lambda c, r, nc, nr: L.mix(
             [L.dpo(c, r, b), L.bco_pair(c, r, b), -c * s], [0.8, 0.2, 1.0])),
    *(
        Loss(f"sigmoid · {kind}", f'DPOConfig(f_divergence_type="{kind}")',
             "f-DPO, Wang et al. 2024" + (" (α = 0.5)" if kind == "alpha_divergence" else ""),
             "logratios", _trl("sigmoid", f_divergence_type=kind))
        for kind in ("forward_kl", "js_divergence", "alpha_divergence")
    ),
    Loss("cpo", "CPOConfig() (sigmoid, cpo_alpha=1)", "CPO, Xu et al. 2024", "logps",
         lambda b, s: lambda c, r, nc, nr: L.cpo(c, r, b) - c * s, convex=True),
    Loss("simpo", 'CPOConfig(loss_type="simpo", cpo_alpha=0, simpo_gamma=0.5)',
         "SimPO, Meng et al. 2024", "logps",
         lambda b, s: lambda c, r, nc, nr: L.simpo(c / nc, r / nr, b, simpo_gamma=0.5), convex=True),
    Loss("orpo", "ORPOConfig() (λ = beta)", "ORPO, Hong et al. 2024", "logps",
         lambda b, s: lambda c, r, nc, nr: L.orpo(c / nc, r / nr, b) - c * s),
)  # fmt: skip
"""Every loss of the atlas, in table order."""

EXCLUDED = {
    "aot, aot_unpaired": "sort log-ratios across the batch: no per-pair population objective",
    "KTO": "its reference point is a batch estimate of KL(π‖π_ref) held fixed within a step: "
    "the optimum is a fixed point of training, not a minimiser of one objective",
}
"""TRL losses the atlas leaves out, and why."""


class Entry(NamedTuple):
    """The minimiser of one loss on one world at one β, against the targets.

    KL values, drifts and lengths are NaN where the target does not exist, where no finite
    minimiser does, or where the minimiser is not certified (``converged`` False); without a
    finite minimiser the drifts are −inf where a chosen (rejected) response with positive weight
    vanishes.
    """

    loss: str
    world: str
    beta: float
    policy: Tensor
    finite: bool
    converged: bool
    vanishing: tuple[str, ...]
    kl_to_optimum: float  # KL(π̂ ‖ π*)
    kl_to_ipo: float  # KL(π̂ ‖ π_IPO)
    kl_to_lottery: float  # KL(ML ‖ π̂), worlds without a reward
    chosen_logratio: float  # E_W[q(y_w)] at π̂
    rejected_logratio: float  # E_W[q(y_l)] at π̂
    mean_length: float  # E_π̂ |y|
    optimum_length: float  # E_π* |y| (NaN without π*)
    verdict: str
    unique: bool | None  # as in toybandit.LossMinimum (None: a kink, or no minimiser)
    local: bool  # a non-convex loss: the minimiser reached from π_ref, not proven global


def _kl(p: Tensor, q: Tensor) -> float:
    return kl_divergence(p, q).item()


class _Targets(NamedTuple):
    """What a world at one β offers every loss: its population pairs and the targets."""

    pairs: PreferencePairs
    weights: Tensor  # the pair weights, normalised
    nll_scale: float  # 1/E_W|y_w|
    star: Tensor | None  # π*
    ipo: Tensor  # the IPO optimum
    lottery: Tensor | None  # the maximal lottery (no reward)


def _targets(world: World, beta: float) -> _Targets:
    pairs = population_pairs(world.pref, world.mu)
    assert pairs.weights is not None  # population pairs always carry their weights
    w = pairs.weights / pairs.weights.sum()
    return _Targets(
        pairs,
        w,
        1.0 / (w * world.lengths[pairs.chosen]).sum().item(),
        optimal_policy(world.reward, world.ref, beta) if world.reward is not None else None,
        psi_optimal_policy(world.pref, world.mu, world.ref, beta),
        maximal_lottery(world.pref) if world.reward is None else None,
    )


def entry(loss: Loss, world: World, beta: float, *, targets: _Targets | None = None) -> Entry:
    """Minimise ``loss`` on ``world`` at ``beta`` and compare the minimiser with the targets
    (``targets``: those of ``world`` at ``beta``, computed once by :func:`atlas`)."""
    pairs, w, nll_scale, star, ipo, lottery = targets or _targets(world, beta)
    res = minimise_loss(
        loss.build(beta, nll_scale), pairs, world.ref, on=loss.on, lengths=world.lengths
    )
    pi = res.policy
    nan = math.nan
    if res.finite and res.converged:
        q = pi.log() - world.ref.log()
        drift = ((w * q[pairs.chosen]).sum().item(), (w * q[pairs.rejected]).sum().item())
        kls = (
            _kl(pi, star) if star is not None else nan,
            _kl(pi, ipo),
            _kl(lottery, pi) if lottery is not None else nan,
        )
        length = (pi * world.lengths).sum().item()
    elif not res.finite:
        gone = res.vanishing
        chosen_drift, rejected_drift = (
            -math.inf if (w * gone[idx].to(F64)).sum() > 0 else nan
            for idx in (pairs.chosen, pairs.rejected)
        )
        drift = (chosen_drift, rejected_drift)
        kls, length = (nan, nan, nan), nan
    else:  # not certified: no number to report
        drift, kls, length = (nan, nan), (nan, nan, nan), nan
    return Entry(
        loss.name,
        world.name,
        float(beta),
        pi,
        res.finite,
        res.converged,
        tuple(world.responses[i] for i in res.vanishing.nonzero().flatten().tolist()),
        *kls,
        *drift,
        length,
        (star * world.lengths).sum().item() if star is not None else nan,
        res.verdict,
        res.unique,
        not loss.convex,
    )


def atlas(
    beta: float = 0.5,
    *,
    losses: Sequence[Loss] = LOSSES,
    panel: Sequence[World] | None = None,
) -> list[Entry]:
    """Every loss on every world at ``beta``, losses outer, worlds inner (run with one torch
    thread, restored after)."""
    beta = float(beta)
    if not (math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be positive and finite, got {beta!r}")
    panel = worlds() if panel is None else list(panel)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # hundreds of tiny ops: on a busy machine threads cost 10×
    try:
        targets = [_targets(world, beta) for world in panel]
        return [
            entry(loss, world, beta, targets=t)
            for loss in losses
            for world, t in zip(panel, targets, strict=True)
        ]
    finally:
        torch.set_num_threads(threads)


# -- output ------------------------------------------------------------------------------------


def _num(x: float) -> str:
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "−∞" if x < 0 else "∞"
    if abs(x) < 1e-12:
        return "0"  # rounding of a minimiser certified to 1e-12 in π
    return f"{x:.2g}" if abs(x) < 0.01 else f"{x:.3f}"


def _cell(e: Entry, kl: float) -> str:
    """A distance with its caveats: ∅ no finite minimiser; ≈ not unique (one point of a flat
    set); † a kink (cutting planes); * a non-convex loss (reached from π_ref)."""
    if not e.converged:
        return "not certified"
    if not e.finite:
        return "∅" + ("*" if e.local else "")
    mark = "≈" if e.unique is False else ("†" if e.unique is None else "")
    return _num(kl) + mark + ("*" if e.local else "")


LEGEND = (
    "∅: no finite minimiser (the loss keeps falling as some π(y) → 0); ≈: the minimiser is not "
    "unique (the loss is flat along some direction; one point shown); †: found by cutting planes "
    "(a kink, or a flat point), a certificate where the loss is convex; *: a non-convex loss, the "
    "minimiser (or escape) reached from π_ref by descent, as training from π_ref would; "
    "not certified: the minimiser could not certify its result, so nothing is reported; 0: "
    "below 1e-12."
)
"""What each mark of a cell means, as the tables print it."""


COLUMNS = (
    ("bradley_terry", "Bradley–Terry KL(π̂‖π*)", lambda e: _cell(e, e.kl_to_optimum)),
    ("noisy", f"noisy ε = {NOISE} KL(π̂‖π*)", lambda e: _cell(e, e.kl_to_optimum)),
    ("off_policy", "μ ≠ π_ref KL(π̂‖π*)", lambda e: _cell(e, e.kl_to_optimum)),
    ("deterministic", "deterministic KL(π̂‖π_IPO)", lambda e: _cell(e, e.kl_to_ipo)),
    ("intransitive", "intransitive KL(ML‖π̂)", lambda e: _cell(e, e.kl_to_lottery)),
    ("token_tree", "token tree KL(π̂‖π*)", lambda e: _cell(e, e.kl_to_optimum)),
    (
        "token_tree",
        "E_π̂|y| (π*: {optimum})",
        lambda e: _num(e.mean_length) if e.finite and e.converged else "—",
    ),
)


def table(entries: Sequence[Entry]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The summary (header, rows): one row per loss, the distance to each world's target."""
    by = {(e.loss, e.world): e for e in entries}
    names = list(dict.fromkeys(e.loss for e in entries))
    tree = next((e for e in entries if e.world == "token_tree"), None)
    optimum = _num(tree.optimum_length) if tree is not None else "—"
    head = ("loss", *(title.format(optimum=optimum) for _, title, _ in COLUMNS))
    rows = [
        (name, *(fn(by[name, w]) if (name, w) in by else "—" for w, _, fn in COLUMNS))
        for name in names
    ]
    return head, rows


def drift_table(entries: Sequence[Entry]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """E_W[q(y_w)] and E_W[q(y_l)] at the minimiser, per loss, on the bradley_terry and
    deterministic worlds."""
    by = {(e.loss, e.world): e for e in entries}
    names = list(dict.fromkeys(e.loss for e in entries))
    head = ("loss", "BT E[q(y_w)]", "BT E[q(y_l)]", "det. E[q(y_w)]", "det. E[q(y_l)]")
    rows = []
    for name in names:
        cells = [name]
        for w in ("bradley_terry", "deterministic"):
            e = by.get((name, w))
            if e is None:
                cells += ["—", "—"]
            elif not e.converged:
                cells += ["not certified"] * 2
            else:
                cells += [_num(e.chosen_logratio), _num(e.rejected_logratio)]
        rows.append(tuple(cells))
    return head, rows


def _markdown_table(head, rows) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _text_table(head, rows) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    out = [head, tuple("-" * w for w in widths), *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in out
    )


def markdown(entries: Sequence[Entry]) -> str:
    """The summary and drift tables as markdown (the copy in ``docs/atlas.md`` and the README)."""
    beta = entries[0].beta
    return (
        f"β = {beta:g} (τ = β for IPO). {LEGEND}\n\n"
        + _markdown_table(*table(entries))
        + "\n\nChosen and rejected log-ratios at the minimiser (−∞: a chosen response vanishes):\n\n"
        + _markdown_table(*drift_table(entries))
        + "\n"
    )


def text(entries: Sequence[Entry]) -> str:
    """The terminal report of ``python -m toybandit.atlas``."""
    beta = entries[0].beta
    lines = [
        f"The loss atlas at β = {beta:g}: each loss's exact population minimiser π̂ against the",
        "target of each world (π*: KL-regularised optimum; π_IPO: IPO optimum; ML: maximal "
        "lottery).",
        LEGEND,
        "",
        _text_table(*table(entries)),
        "",
        "Chosen/rejected log-ratios E_W[q(y_w)], E_W[q(y_l)] at π̂ (−∞: a chosen response vanishes):",
        "",
        _text_table(*drift_table(entries)),
        "",
        "Not in the atlas: " + "; ".join(f"{k} ({why})" for k, why in EXCLUDED.items()) + ".",
    ]
    return "\n".join(lines)


# -- files and figures -----------------------------------------------------------------------

CSV_BETAS = (0.1, 0.5, 2.0)
SWEEP_BETAS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_FIELDS = (
    "loss", "world", "beta", "finite", "converged", "unique", "local", "vanishing",
    "kl_to_optimum", "kl_to_ipo", "kl_to_lottery", "chosen_logratio", "rejected_logratio",
    "mean_length", "optimum_length", "policy", "verdict",
)  # fmt: skip


def write_csv(entries: Sequence[Entry], path: str | os.PathLike[str]) -> None:
    """One row per entry; floats with 17 significant digits, the policy as ``p0;p1;...``."""
    import csv

    def fmt(x) -> str:
        if isinstance(x, bool) or x is None:
            return "" if x is None else str(x).lower()
        if isinstance(x, float):
            return "" if math.isnan(x) else repr(x)
        if isinstance(x, Tensor):
            return ";".join(f"{p:.17g}" for p in x.tolist())
        if isinstance(x, tuple):
            return ";".join(x)
        return str(x)

    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(_FIELDS)
        for e in entries:
            out.writerow([fmt(getattr(e, k)) for k in _FIELDS])


def _target(e: Entry) -> float:
    """The distance the heat map shows: to π* where it exists, else to the IPO optimum
    (deterministic) or from the maximal lottery (intransitive)."""
    if e.world == "deterministic":
        return e.kl_to_ipo
    if e.world == "intransitive":
        return e.kl_to_lottery
    return e.kl_to_optimum


def figure(entries: Sequence[Entry], sweep: Sequence[Entry] | None = None) -> Figure:
    """The atlas's figure: a heat map of each loss's distance to each world's target (log scale,
    ∅ for no finite minimiser), and, given ``sweep`` (the bradley_terry world over β), KL(π̂‖π*)
    against β per loss. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(dict.fromkeys(e.loss for e in entries))
    panel = list(dict.fromkeys(e.world for e in entries))
    by = {(e.loss, e.world): e for e in entries}
    grid = np.full((len(names), len(panel)), np.nan)
    for i, n in enumerate(names):
        for j, w in enumerate(panel):
            e = by[n, w]
            if e.finite and e.converged:
                grid[i, j] = math.log10(max(_target(e), 1e-12))
    ncols = 2 if sweep else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.5 * ncols, 0.32 * len(names) + 1.6))
    axes = np.atleast_1d(axes)
    ax = axes[0]
    im = ax.imshow(grid, cmap="viridis_r", vmin=-12, vmax=0.5, aspect="auto")
    for i, n in enumerate(names):
        for j, w in enumerate(panel):
            e = by[n, w]
            label = "n.c." if not e.converged else "∅" if not e.finite else _num(_target(e))
            ax.text(j, i, label, ha="center", va="center", fontsize=6,
                    color="w" if np.isnan(grid[i, j]) or grid[i, j] < -4 else "k")  # fmt: skip
    ax.set_xticks(range(len(panel)), [w.replace("_", " ") for w in panel], rotation=30,
                  ha="right", fontsize=7)  # fmt: skip
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_facecolor("0.25")
    ax.set_title(f"KL to each world's target at β = {entries[0].beta:g} (∅: no minimiser)",
                 fontsize=8)  # fmt: skip
    fig.colorbar(im, ax=ax, label="log10 KL", shrink=0.8)
    if sweep:
        ax = axes[1]
        curves: dict[str, list[tuple[float, float]]] = {}
        for e in sweep:
            if e.finite and e.converged:
                curves.setdefault(e.loss, []).append((e.beta, max(e.kl_to_optimum, 1e-12)))
        for k, (n, pts) in enumerate(curves.items()):
            b, kl = zip(*sorted(pts), strict=True)
            ax.plot(b, kl, marker="o", ms=2, lw=1, ls=("-", "--", ":")[k % 3], label=n)
        ax.set(xscale="log", yscale="log", xlabel="β", ylabel="KL(π̂ ‖ π*)  (1e-12: exact)",
               ylim=(5e-13, 1e2))  # fmt: skip
        ax.set_title("Bradley–Terry world: distance to π* as β moves", fontsize=8)
        ax.legend(fontsize=5, ncol=2)
    fig.tight_layout()
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m toybandit.atlas [--beta B] [--markdown] [--out DIR]``."""
    import argparse
    import time
    from pathlib import Path

    parser = argparse.ArgumentParser(
        prog="python -m toybandit.atlas",
        description="The loss atlas: each preference loss's exact population minimiser on a "
        "panel of exact worlds, against π*, the IPO optimum and the maximal lottery.",
    )
    parser.add_argument("--beta", type=float, default=0.5, help="β (and τ) of the table")
    parser.add_argument("--markdown", action="store_true", help="print the docs' markdown")
    parser.add_argument(
        "--out",
        type=Path,
        help="write atlas.csv (β = 0.1, 0.5, 2) and atlas.png (with a β sweep) into DIR",
    )
    args = parser.parse_args(argv)
    if not (math.isfinite(args.beta) and args.beta > 0):
        parser.error(f"--beta must be positive and finite, got {args.beta}")
    import matplotlib

    matplotlib.use("Agg")  # files only (a notebook calling figure() keeps its own backend)
    start = time.perf_counter()
    entries = atlas(args.beta)
    print(markdown(entries) if args.markdown else text(entries), end="" if args.markdown else "\n")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        rows = [e for b in CSV_BETAS for e in (entries if b == args.beta else atlas(b))]
        write_csv(rows, args.out / "atlas.csv")
        bt = [w for w in worlds() if w.name == "bradley_terry"]
        sweep = [e for b in SWEEP_BETAS for e in atlas(b, panel=bt)]
        figure(entries, sweep).savefig(args.out / "atlas.png", dpi=110)
        print(f"\nwrote {args.out / 'atlas.csv'} and {args.out / 'atlas.png'}")
    print(f"({time.perf_counter() - start:.1f} s)", file=__import__("sys").stderr)
    return 0
