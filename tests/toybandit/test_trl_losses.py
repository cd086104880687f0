"""Every loss TRL ships equals TRL's own computation on the same log-probabilities.

The log-probabilities are computed here (float64, :mod:`tests.toybandit.trl_reference`) from the
same tiny models TRL's trainers run on; TRL evaluates in float32. Agreement is to 1e-6 absolute
(plus 1e-6 relative for the few losses of size ~10): float32 rounding of O(10) log-probabilities.
Each family has a negative twin, a plausible mis-implementation that TRL's value must reject.
"""

import functools
import math

import pytest
import torch

from tests.helpers import F64
from toybandit import losses

from . import trl_reference as R

pytestmark = pytest.mark.filterwarnings("ignore")
TOL = {"rel": 1e-6, "abs": 1e-6}


@pytest.fixture(scope="module")
def dpo_world(tmp_path_factory):
    pytest.importorskip("trl")
    return R.dpo_world(str(tmp_path_factory.mktemp("dpo")))


@pytest.fixture(scope="module")
def kto_world(tmp_path_factory):
    pytest.importorskip("trl")
    return R.kto_world(str(tmp_path_factory.mktemp("kto")))


def _halves(x):
    return x.chunk(2)


def ours(
    w: R.DPOWorld,
    name: str,
    beta: float,
    *,
    eps=0.0,
    f="reverse_kl",
    alpha=0.5,
    ld_alpha=None,
    discopop_tau=0.05,
) -> torch.Tensor:
    """The per-pair loss of TRL's ``loss_type=name`` from this package, on w's log-probs."""
    if ld_alpha is None:
        logp, ref = w.logps.sum(-1), w.ref_logps.sum(-1)
    else:
        (pc, pr), (rc, rr), (mc, mr) = _halves(w.logps), _halves(w.ref_logps), _halves(w.mask)
        logp = torch.cat(losses.ld_sequence_logps(pc, pr, mc, mr, ld_alpha))
        ref = torch.cat(losses.ld_sequence_logps(rc, rr, mc, mr, ld_alpha))
    q_w, q_l = _halves(logp - ref)
    n_w, n_l = _halves(w.mask.sum(-1))
    s_w, s_l = losses.f_divergence_scores(q_w, f, alpha), losses.f_divergence_scores(q_l, f, alpha)
    if name == "sigmoid":
        return losses.dpo(s_w, s_l, beta)
    if name in ("hinge", "discopop"):
        kw = {"discopop_tau": discopop_tau} if name == "discopop" else {}
        return getattr(losses, name)(s_w, s_l, beta, **kw)
    if name in ("robust", "exo_pair"):
        return getattr(losses, name)(s_w, s_l, beta, label_smoothing=eps)
    if name == "ipo":
        return losses.ipo(s_w / n_w, s_l / n_l, beta)
    if name == "sigmoid_norm":
        return losses.sigmoid_norm(s_w, s_l, n_w, n_l, beta)
    if name == "sft":
        return losses.sft(_halves(w.logps)[0], _halves(w.mask)[0])
    if name == "aot":
        p_w, p_l = _halves(logp)
        r_w, r_l = _halves(ref)
        return losses.aot(p_w, p_l, r_w, r_l, beta, label_smoothing=eps)
    if name == "aot_unpaired":
        return losses.aot_unpaired(q_w, q_l, beta, label_smoothing=eps)
    return losses.TRL_LOSS_TYPES[name](q_w, q_l, beta)


DPO_TYPES = [
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
]
F_TYPES = ["sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust", "discopop", "sft"]


def test_every_dpo_loss_type_is_covered():
    DPOConfig = pytest.importorskip("trl").DPOConfig

    listed = DPOConfig.__dataclass_fields__["loss_type"].metadata["help"]
    assert all(f"'{name}'" in listed for name in DPO_TYPES)
    assert listed.count("`'") == len(DPO_TYPES)


@pytest.mark.parametrize("name", DPO_TYPES)
@pytest.mark.parametrize("beta", [0.1, 2.0])
def test_dpo_loss_types_equal_trl(dpo_world, name, beta):
    eps = 0.1 if name in ("robust", "exo_pair", "aot", "aot_unpaired") else 0.0
    expected = R.trl_dpo_loss(dpo_world, name, beta=beta, label_smoothing=eps)
    assert ours(dpo_world, name, beta, eps=eps).mean().item() == pytest.approx(expected, **TOL)


@pytest.mark.parametrize(
    "f, alpha",
    [
        ("forward_kl", 0.5),
        ("js_divergence", 0.5),
        ("alpha_divergence", 0.5),
        ("alpha_divergence", 1.7),
        ("alpha_divergence", 1.0),
    ],
)
@pytest.mark.parametrize("name", F_TYPES)
def test_f_divergences_equal_trl(dpo_world, name, f, alpha):
    eps = 0.1 if name in ("robust", "exo_pair") else 0.0
    expected = R.trl_dpo_loss(
        dpo_world,
        name,
        beta=2.0,
        label_smoothing=eps,
        f_divergence_type=f,
        f_alpha_divergence_coef=alpha,
    )
    got = ours(dpo_world, name, 2.0, eps=eps, f=f, alpha=alpha).mean().item()
    assert got == pytest.approx(expected, **TOL)
    if name != "sft":  # twin: the score transform matters (sft ignores it)
        plain = ours(dpo_world, name, 2.0, eps=eps).mean().item()
        assert (alpha == 1.0 and f == "alpha_divergence") or abs(plain - expected) > 1e-5


@pytest.mark.parametrize("ld_alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("name", ["sigmoid", "ipo", "bco_pair", "aot"])
def test_ld_alpha_equals_trl(dpo_world, name, ld_alpha):
    expected = R.trl_dpo_loss(dpo_world, name, beta=2.0, ld_alpha=ld_alpha)
    got = ours(dpo_world, name, 2.0, ld_alpha=ld_alpha).mean().item()
    assert got == pytest.approx(expected, **TOL)
    if ld_alpha < 1:  # twin: down-weighting the tails changes the loss on this batch
        assert abs(ours(dpo_world, name, 2.0).mean().item() - expected) > 1e-4


# TRL 1.16 cannot weight "sft": it scales the expanded batch loss in place and raises.
@pytest.mark.parametrize("name", ["sigmoid", "ipo", "bco_pair", "sigmoid_norm"])
def test_wpo_weighting_equals_trl(dpo_world, name):
    w = dpo_world
    expected = R.trl_dpo_loss(w, name, beta=2.0, use_weighting=True)
    (lc, lr), (sc, sr), (mc, mr) = _halves(w.logps), _halves(w.log_sum_sq), _halves(w.mask)
    weights = losses.wpo_weights(lc, sc, mc, lr, sr, mr)
    per_pair = ours(w, name, 2.0)
    assert (per_pair * weights).mean().item() == pytest.approx(expected, **TOL)
    # twins: unweighted, and weights without the log Σπ² alignment
    assert abs(per_pair.mean().item() - expected) > 1e-4
    raw = losses.wpo_weights(lc, 0 * sc, mc, lr, 0 * sr, mr)
    assert abs((per_pair * raw).mean().item() - expected) > 1e-4


def test_multi_loss_weights_equal_trl(dpo_world):
    """MPO's mix: loss_type=[sigmoid, bco_pair, sft], loss_weights=[0.8, 0.2, 1.0]."""
    names, weights = ["sigmoid", "bco_pair", "sft"], [0.8, 0.2, 1.0]
    expected = R.trl_dpo_loss(dpo_world, names, beta=2.0, loss_weights=weights)
    terms = [ours(dpo_world, n, 2.0) for n in names]
    assert losses.mix(terms, weights).mean().item() == pytest.approx(expected, **TOL)
    assert abs(losses.mix(terms).mean().item() - expected) > 1e-4  # twin: equal weights


def test_dpo_world_twins(dpo_world):
    """The comparisons above have teeth: structural mis-implementations differ from TRL."""
    w = dpo_world
    q_w, q_l = _halves((w.logps - w.ref_logps).sum(-1))
    n_w, n_l = _halves(w.mask.sum(-1))
    assert (q_w - q_l).abs().min() > 1e-3 and not torch.equal(n_w, n_l)
    # aot without sorting is sigmoid; sigmoid_norm on sums is sigmoid; sft as a mean of means
    assert abs(R.trl_dpo_loss(w, "aot", beta=2.0) - losses.dpo(q_w, q_l, 2.0).mean().item()) > 1e-4
    assert (
        abs(R.trl_dpo_loss(w, "aot_unpaired", beta=2.0) - losses.dpo(q_w, q_l, 2.0).mean().item())
        > 1e-4
    )
    assert (
        abs(R.trl_dpo_loss(w, "sigmoid_norm", beta=2.0) - losses.dpo(q_w, q_l, 2.0).mean().item())
        > 1e-4
    )
    lc, mc = _halves(w.logps)[0], _halves(w.mask)[0]
    mean_of_means = -(lc.sum(-1) / mc.sum(-1)).mean().item()
    assert abs(R.trl_dpo_loss(w, "sft") - mean_of_means) > 1e-4
    expected = R.trl_dpo_loss(w, "discopop", beta=2.0, discopop_tau=0.5)
    assert ours(w, "discopop", 2.0, discopop_tau=0.5).mean().item() == pytest.approx(
        expected, **TOL
    )
    assert abs(ours(w, "discopop", 2.0).mean().item() - expected) > 1e-4


@pytest.mark.parametrize("beta", [0.1, 2.0])
@pytest.mark.parametrize("weights", [(1.0, 1.0), (1.33, 0.5)])
def test_kto_equals_trl(kto_world, beta, weights):
    w = kto_world
    z0 = losses.kto_reference_point(w.kl_logratios)
    got = losses.kto(w.logratios[w.label], w.logratios[~w.label], z0, beta, *weights)
    expected = R.trl_kto_loss(
        w, beta=beta, desirable_weight=weights[0], undesirable_weight=weights[1]
    )
    assert got.mean().item() == pytest.approx(expected, **TOL)
    # twin: the reference point matters (z0 = 0 is APO-zero-like); with 3 + 3 completions, equal
    # weights and small β it cancels to first order in βz0, so the twin needs β = 2 or unequal weights
    assert z0 > 0.1
    plain = losses.kto(w.logratios[w.label], w.logratios[~w.label], 0.0, beta, *weights)
    assert (beta < 1 and weights == (1.0, 1.0)) or abs(plain.mean().item() - expected) > 1e-4


def test_apo_zero_unpaired_equals_trl(kto_world):
    w = kto_world
    got = losses.apo_zero_unpaired(w.logratios[w.label], w.logratios[~w.label], 2.0, 1.2, 0.7)
    expected = R.trl_kto_loss(
        w, loss_type="apo_zero_unpaired", beta=2.0, desirable_weight=1.2, undesirable_weight=0.7
    )
    assert got.mean().item() == pytest.approx(expected, **TOL)


def _random_logps(seed, n=64, low=-30.0):
    g = torch.Generator().manual_seed(seed)
    # log π̄ ∈ (low, −1e-3): per-token averages and summed log-probs alike
    x = torch.rand(2, n, generator=g, dtype=torch.float32) * (low + 1e-3) - 1e-3
    return x[0], x[1]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("alpha", [0.0, 0.25])
def test_cpo_simpo_equal_trl(seed, alpha):
    pytest.importorskip("trl")
    c, r = _random_logps(seed, low=-3.0 if alpha else -30.0)
    c64, r64 = c.double(), r.double()
    for beta in (0.1, 2.0):
        for eps in (0.0, 0.2):
            expected = R.trl_cpo_loss(
                c, r, loss_type="sigmoid", beta=beta, label_smoothing=eps, alpha=alpha
            )
            got = losses.cpo(c64, r64, beta, label_smoothing=eps, alpha=alpha)
            torch.testing.assert_close(got, expected.double(), rtol=1e-6, atol=1e-6)
            expected = R.trl_cpo_loss(
                c,
                r,
                loss_type="simpo",
                beta=beta,
                label_smoothing=eps,
                simpo_gamma=0.7,
                alpha=alpha,
            )
            got = losses.simpo(c64, r64, beta, simpo_gamma=0.7, label_smoothing=eps, alpha=alpha)
            torch.testing.assert_close(got, expected.double(), rtol=1e-6, atol=1e-6)
            twin = losses.simpo(c64, r64, beta, simpo_gamma=0.0, label_smoothing=eps, alpha=alpha)
            assert (twin - expected.double()).abs().max() > 1e-3
        # TRL's CPO hinge and ipo are this package's hinge and ipo on log π
        expected = R.trl_cpo_loss(c, r, loss_type="hinge", beta=beta, alpha=0.0)
        torch.testing.assert_close(
            losses.hinge(c64, r64, beta), expected.double(), rtol=1e-6, atol=1e-6
        )
        expected = R.trl_cpo_loss(c, r, loss_type="ipo", beta=beta, alpha=0.0)
        torch.testing.assert_close(
            losses.ipo(c64, r64, beta), expected.double(), rtol=1e-6, atol=1e-5
        )


@pytest.mark.parametrize("seed", range(3))
def test_orpo_equals_trl(seed):
    pytest.importorskip("trl")
    c, r = _random_logps(seed, low=-8.0)
    for beta in (0.1, 2.0):
        expected = -R.trl_orpo_loss(c, r, beta=beta).double()
        got = losses.orpo(c.double(), r.double(), beta)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
        # twin: the odds ratio is not the probability ratio (drop the log(1 − π) terms)
        twin = -beta * torch.nn.functional.logsigmoid(c.double() - r.double())
        assert (twin - expected).abs().max() > 1e-3


# --- properties and bad input, without TRL ------------------------------------------------------


def test_f_divergence_limits():
    q = torch.linspace(-5, 5, 11, dtype=F64)
    torch.testing.assert_close(
        losses.f_divergence_scores(q, "alpha_divergence", 1 + 1e-9), q, rtol=0, atol=1e-7
    )
    torch.testing.assert_close(
        losses.f_divergence_scores(q, "alpha_divergence", 0.0),
        losses.f_divergence_scores(q, "forward_kl"),
        rtol=1e-15,
        atol=1e-15,
    )
    assert losses.f_divergence_scores(torch.tensor([0.0]), "js_divergence").item() == pytest.approx(
        0, abs=1e-15
    )


def test_extreme_inputs_are_finite():
    big = torch.tensor([-1e4, 0.0, 1e4], dtype=F64)
    for fn in (
        functools.partial(losses.discopop, beta=1.0),
        functools.partial(losses.cpo, beta=1.0),
    ):
        assert torch.isfinite(fn(big, -big)).all()
    assert torch.isfinite(losses.kto(big, big, torch.tensor(3.0), 1.0)).all()
    assert torch.isfinite(
        losses.orpo(torch.tensor([-1e-12, -700.0]), torch.tensor([-700.0, -1e-12]), 1.0)
    ).all()


def test_bad_inputs():
    z = torch.zeros(3)
    with pytest.raises(ValueError, match="f_divergence_type"):
        losses.f_divergence_scores(z, "kl")
    with pytest.raises(ValueError, match="chosen_lengths must be ≥ 1"):
        losses.sigmoid_norm(z, z, torch.tensor([1.0, 0.0, 2.0]), torch.ones(3), 0.1)
    with pytest.raises(ValueError, match="rejected_lengths must have the shape"):
        losses.sigmoid_norm(z, z, torch.ones(3), torch.ones(2), 0.1)
    with pytest.raises(ValueError, match="completion_mask has no completion token"):
        losses.sft(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="completion_mask must hold only 0 and 1"):
        losses.sft(torch.zeros(2, 3), torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="ld_alpha"):
        losses.ld_sequence_logps(
            torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3), torch.ones(2, 3), 1.5
        )
    with pytest.raises(ValueError, match="unpaired log-ratios must be 1-d"):
        losses.kto(torch.zeros(2, 2), z, 0.0, 0.1)
    with pytest.raises(ValueError, match="kl must be finite"):
        losses.kto(z, z, float("nan"), 0.1)
    with pytest.raises(ValueError, match="orpo needs log-probabilities ≤ 0"):
        losses.orpo(torch.tensor([1e-12]), torch.tensor([-1.0]), 0.1)
    # π rounding to 1 (log π = 0): infinite odds, a finite answer, never NaN
    edge = losses.orpo(torch.tensor([0.0, -1.0, 0.0]), torch.tensor([-1.0, 0.0, 0.0]), 0.1)
    assert edge[0] == 0 and edge[1] == math.inf and edge[2] == pytest.approx(0.1 * math.log(2))
    with pytest.raises(ValueError, match="loss_weights must have one weight per loss"):
        losses.mix([z, z], [1.0])
    with pytest.raises(ValueError, match="aot_unpaired sorts over a batch"):
        losses.aot_unpaired(torch.tensor(0.0), torch.tensor(0.0), 0.1)
    with pytest.raises(ValueError, match="discopop_tau must be positive"):
        losses.discopop(z, z, 0.1, discopop_tau=0.0)


# --- trl_pair_loss: every per-pair loss type as one callable for minimise_loss ------------------

PER_PAIR = [t for t in DPO_TYPES if t not in ("aot", "aot_unpaired", "sft")]


@pytest.mark.parametrize("name", PER_PAIR)
@pytest.mark.parametrize("f", ["reverse_kl", "js_divergence"])
def test_trl_pair_loss_equals_trl(dpo_world, name, f):
    if f != "reverse_kl" and name not in F_TYPES:
        with pytest.raises(ValueError, match="f_divergence_type"):
            losses.trl_pair_loss(name, 2.0, f_divergence_type=f)
        return
    eps = 0.1 if name in ("robust", "exo_pair") else 0.0
    spec = losses.trl_pair_loss(name, 2.0, label_smoothing=eps, f_divergence_type=f)
    w = dpo_world
    q_w, q_l = _halves((w.logps - w.ref_logps).sum(-1))
    n_w, n_l = _halves(w.mask.sum(-1))
    got = spec.fn(q_w, q_l, n_w, n_l) if spec.length_normalised else spec.fn(q_w, q_l)
    assert spec.on == "logratios"
    expected = R.trl_dpo_loss(w, name, beta=2.0, label_smoothing=eps, f_divergence_type=f)
    assert got.mean().item() == pytest.approx(expected, **TOL)


def test_trl_pair_loss_sft_and_batch_types():
    logp = torch.tensor([-1.0, -2.5, -0.3], dtype=F64)
    spec = losses.trl_pair_loss("sft", 0.1)
    assert spec.on == "logps"
    one_token = losses.sft(logp[:, None], torch.ones(3, 1))
    torch.testing.assert_close(spec.fn(logp, torch.zeros(3, dtype=F64)).mean(), one_token.mean())
    for name in ("aot", "aot_unpaired"):
        with pytest.raises(ValueError, match="no per-pair form"):
            losses.trl_pair_loss(name, 0.1)
    with pytest.raises(ValueError, match="loss_type must be one of"):
        losses.trl_pair_loss("dpo", 0.1)
