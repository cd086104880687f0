"""The public surface: every exported name exists, is documented, and the API contract of
docs/conventions.md is there."""

import importlib
import inspect

import pytest

PACKAGES = [
    "toybandit",
    "toybandit.losses",
    "toybandit.strategies",
    "toybandit.validation",
    "tokenmdp",
    "tokenmdp.segments",
    "tokenmdp.strategies",
    "tokenmdp.validation",
    "proofs_check",
    "proofs_check.reference",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_has_a_docstring(name):
    module = importlib.import_module(name)
    assert module.__doc__
    for attr in module.__all__:
        obj = getattr(module, attr)
        if callable(obj) or inspect.ismodule(obj):
            assert inspect.getdoc(obj), f"{name}.{attr} has no docstring"


def test_design_api_signatures():
    import toybandit as tb

    expected = {
        "optimal_policy": ["reward", "ref", "beta"],
        "log_partition": ["reward", "ref", "beta"],
        "bradley_terry": ["reward"],
        "psi_optimal_policy": ["pref", "mu", "ref", "tau", "psi"],
        "fit_policy": ["chosen", "rejected", "ref", "loss"],
        "sample_preferences": ["pref", "mu", "n", "generator", "rho"],
        "regularized_value": ["policy", "reward", "ref", "beta"],
        "psi_scores": ["pref", "mu", "psi"],
    }
    for name, params in expected.items():
        got = list(inspect.signature(getattr(tb, name)).parameters)
        assert got[: len(params)] == params, name
    fit = inspect.signature(tb.fit_policy).parameters
    assert all(
        fit[k].kind is inspect.Parameter.KEYWORD_ONLY for k in ("beta", "tau", "steps", "prompts")
    )
    assert list(inspect.signature(tb.losses.dpo).parameters) == [
        "chosen_logratios",
        "rejected_logratios",
        "beta",
        "label_smoothing",
    ]
    assert list(inspect.signature(tb.losses.ipo).parameters) == [
        "chosen_logratios",
        "rejected_logratios",
        "tau",
    ]


def test_tokenmdp_design_api_signatures():
    import tokenmdp as tm

    expected = {
        "soft_solve": ["tree", "reward", "beta"],
        "reward_from_q": ["tree", "q", "beta"],
        "path_sum": ["tree", "values"],
        "random_tree": ["vocab_size", "depth", "eos", "generator"],
        "shape_reward": ["tree", "reward", "potential"],
        "implicit_rewards": ["tree", "log_policy", "beta"],
        "beam_search": ["tree", "scores", "width"],
    }
    for name, params in expected.items():
        got = list(inspect.signature(getattr(tm, name)).parameters)
        assert got[: len(params)] == params, name
    assert list(inspect.signature(tm.TokenTree.full).parameters) == [
        "vocab_size",
        "depth",
        "eos",
        "log_ref",
    ]
    tree = tm.TokenTree.full(2, 2, eos=0)
    for attr in ("parent", "token", "depth", "log_ref", "terminal"):
        assert getattr(tree, attr).shape == (tree.n_nodes,)
    assert tm.soft_solve(tree, [0.0] * tree.n_nodes, 1.0)._fields == ("q", "v", "log_policy")


def test_tokenmdp_lm_surface():
    """tokenmdp.lm: a flat documented __all__, no name shared with tokenmdp unless it is the same
    object, and ``import tokenmdp`` does not pull in transformers."""
    import subprocess
    import sys

    pytest.importorskip("transformers")
    import tokenmdp as tm
    from tokenmdp import lm

    assert lm.__doc__ and len(lm.__all__) == len(set(lm.__all__))
    for attr in lm.__all__:
        obj = getattr(lm, attr)
        assert not inspect.ismodule(obj), attr  # flat: functions and classes, not submodules
        if callable(obj):
            assert inspect.getdoc(obj), f"tokenmdp.lm.{attr} has no docstring"
        if hasattr(tm, attr):
            assert getattr(tm, attr) is obj, f"tokenmdp.lm.{attr} means something else in tokenmdp"
    code = (
        "import sys, tokenmdp; "
        "sys.exit(any(m.split('.')[0] in {'transformers', 'trl', 'peft'} for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
