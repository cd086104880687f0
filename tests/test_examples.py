"""Every example script runs in its quick setting, prints its summary and draws a real figure."""

import importlib
import importlib.util
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(
    p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_") and p.stem != "gallery"
)


@pytest.fixture(scope="module", autouse=True)
def examples_on_path():
    sys.path.insert(0, str(EXAMPLES))
    yield
    sys.path.remove(str(EXAMPLES))


SUMMARIES: dict[str, dict] = {}  # quick-setting summaries, reused by the docs staleness test


def run(name, tmp_path):
    module = importlib.import_module(name)
    summary = module.main(["--quick", "--out", str(tmp_path)])
    SUMMARIES[name] = summary
    image = mpimg.imread(tmp_path / f"{name}.png")
    assert image.ndim == 3 and min(image.shape[:2]) > 150
    # a figure, not a blank canvas: many distinct colours and real contrast
    pixels = image[..., :3].reshape(-1, 3)
    assert len(np.unique((pixels * 255).astype(int), axis=0)) > 50 and pixels.std() > 0.05
    return summary


def test_every_script_is_listed():
    assert SCRIPTS == [
        "decreasing_likelihood", "dpo_vs_ipo", "ipo_equivalence", "lm_demo", "psi_preferences",
        "search_equivalence", "token_credit_assignment",
    ]  # fmt: skip


def test_ipo_equivalence(tmp_path):
    s = run("ipo_equivalence", tmp_path)
    assert s["spread of (9) − (10), pairs from μ"] < 1e-12
    assert s["max gradient gap, pairs from μ"] < 1e-12
    assert s["spread of (9) − (10), pairs from ν"] > 1e-3


def test_dpo_vs_ipo(tmp_path):
    s = run("dpo_vs_ipo", tmp_path)
    for key, value in s.items():
        if "π_DPO" in key and "β=τ=10" not in key:
            assert value > 0.999  # at the boundary
        if "π_IPO" in key:
            assert value[0] == pytest.approx(value[1], abs=5e-3) and value[1] < 0.999


def test_psi_preferences(tmp_path):
    s = run("psi_preferences", tmp_path)
    assert s["max |P − best Bradley–Terry fit|"] > 0.2  # no reward explains a cycle


def test_token_credit_assignment(tmp_path):
    s = run("token_credit_assignment", tmp_path)
    err, other = s["mean implicit reward of 'err' vs other tokens"]
    assert err < -2 and abs(other) < 1
    assert s["shaping residual (0 = exact credit assignment)"] < 1e-7


def test_search_equivalence(tmp_path):
    s = run("search_equivalence", tmp_path)
    done, total = map(int, s["V*-guided search = likelihood search (prefixes checked)"].split("/"))
    assert done == total
    without, _ = map(int, s["without V* at the frontier"].split("/"))
    assert without < total


def test_decreasing_likelihood(tmp_path):
    s = run("decreasing_likelihood", tmp_path)
    assert s["E_{π_ref^w}[β log π*/π_ref^w]"] == pytest.approx(s["−β KL(π_ref^w ‖ π*)"], abs=1e-12)
    assert s["E_{π_ref^w}[β log π*/π_ref^w]"] < 0
    assert s["chosen implicit reward at the end, SFT reference"] < 0


def test_lm_demo(tmp_path):
    pytest.importorskip("transformers")
    s = run("lm_demo", tmp_path)
    assert s["Σ implied r − V(s₀) − Σ β log π/π_ref (sec. 4.1)"] < 1e-10
    assert s["Lemma 1 on the model's tree, max |r − r(Q*(r))|"] < 1e-10
    ok, total = map(
        int, s["proofs_check claims on the model's trees with their expected outcome"].split("/")
    )
    assert ok == total > 0


def test_the_docs_quote_the_numbers_the_examples_print(tmp_path):
    """The table of examples in docs/gallery.md equals the one generated from the scripts' quick
    summaries (``python examples/gallery.py --table`` rewrites it)."""
    import _readme

    names = [n for n in SCRIPTS if n != "lm_demo" or importlib.util.find_spec("transformers")]
    for name in names:
        if name not in SUMMARIES:
            run(name, tmp_path)
    expected = _readme.table({n: SUMMARIES[n] for n in names})
    if "lm_demo" not in names:  # without transformers, compare the rows that can be regenerated
        expected = expected.rsplit("\n", 1)[0]
        assert _readme.current().startswith(expected)
    else:
        assert _readme.current() == expected, "stale: run python examples/gallery.py --table"
