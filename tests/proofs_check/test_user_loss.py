"""proofs-check --loss: a user's loss, defined outside the package, through the panel of worlds."""

import json
import math
import textwrap

import pytest

import toybandit as tb
from proofs_check import user_loss
from proofs_check.cli import run

pytestmark = pytest.mark.usefixtures("one_thread")


MY_LOSSES = '''
import torch
import torch.nn.functional as F


def my_dpo(chosen, rejected, beta):
    """DPO written from scratch: −log σ(β(q_w − q_l))."""
    return F.softplus(-beta * (chosen - rejected))


def my_fixed(chosen, rejected):
    return (chosen - rejected - 1.0) ** 2


def nan_loss(chosen, rejected, beta):
    return torch.log(chosen - rejected)  # log of a negative margin: NaN


def scalar_loss(chosen, rejected):
    return (chosen - rejected).mean()


not_a_function = 3
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_losses.py").write_text(textwrap.dedent(MY_LOSSES))
    (tmp_path / "broken_losses.py").write_text("import this_module_does_not_exist\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_user_dpo_lands_on_the_optimum(user_module, capsys):
    _, code = run(["--loss", "my_losses:my_dpo", "--beta", "0.5", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    worlds = {w["world"]: w for w in out["worlds"]}
    assert set(worlds) == {"bradley_terry", "noisy", "deterministic", "intransitive"}
    bt = worlds["bradley_terry"]
    assert bt["finite"] and bt["converged"]
    want = tb.optimal_policy(user_loss.REWARD, user_loss.REF, 0.5)
    assert max(abs(a - b) for a, b in zip(bt["policy"], want.tolist(), strict=True)) < 1e-10
    assert abs(bt["kl_to_optimum"]) < 1e-12
    # label noise pulls DPO off π* (it is not robust), and deterministic preferences have no minimiser
    assert worlds["noisy"]["kl_to_optimum"] > 1e-3
    assert (
        not worlds["deterministic"]["finite"] and worlds["deterministic"]["kl_to_optimum"] is None
    )
    assert worlds["intransitive"]["kl_to_lottery"] is not None


def test_text_report_and_file_path_spec(user_module, capsys):
    _, code = run(["--loss", f"{user_module / 'my_losses.py'}:my_fixed"])
    assert code == 0
    text = capsys.readouterr().out
    for name in ("bradley_terry", "noisy", "deterministic", "intransitive", "KL(π‖π*)"):
        assert name in text


def test_robust_loss_is_unbiased_in_the_noisy_world():
    rows = {
        r.world: r
        for r in user_loss.check_loss(
            lambda c, r, beta: __import__("toybandit").losses.robust(c, r, beta, user_loss.NOISE),
            0.5,
        )
    }
    assert rows["noisy"].finite and rows["noisy"].kl_to_optimum < 1e-12
    # twin: plain DPO is biased there
    dpo = {r.world: r for r in user_loss.check_loss(tb.losses.dpo, 0.5)}
    assert dpo["noisy"].kl_to_optimum > 1e-3


def test_maximal_lottery_is_unbeaten():
    _, cyclic, _ = user_loss.panel(0.5)[3]
    p = user_loss.maximal_lottery(cyclic)
    assert abs(p.sum().item() - 1) < 1e-12 and (p >= 0).all()
    assert ((2 * cyclic - 1).T @ p).min() > -1e-9  # no response beats it on average
    assert (p > 1e-9).sum() >= 3  # a cycle: the lottery mixes
    assert not math.isclose(p.max().item(), 1.0)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("my_losses:nan_loss", "loss returned NaN"),
        ("my_losses:scalar_loss", "one value per pair"),
        ("my_losses:not_a_function", "is not callable"),
        ("my_losses:missing", "has no attribute 'missing'"),
        ("broken_losses:anything", "module 'broken_losses' does not import: ModuleNotFoundError"),
        ("no_such_module_anywhere:f", "module 'no_such_module_anywhere' does not import"),
        ("my_losses", "must be MODULE:FUNCTION"),
        ("nowhere.py:f", "file 'nowhere.py' does not exist"),
    ],
)
def test_bad_losses_are_named(user_module, capsys, spec, message):
    _, code = run(["--loss", spec])
    assert code == 2
    err = capsys.readouterr().err
    assert "proofs-check --loss: error:" in err and message in err
