"""The repository passes ``ruff check`` (the rules of pyproject.toml's ``[tool.ruff]``), the code
cells of the committed notebooks included, so a lint error fails the suite like any other."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    ruff = pytest.importorskip("ruff.__main__")  # in the test extra
    return subprocess.run(
        [ruff.find_ruff_bin(), "check", "--no-cache", *args, "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_ruff_check_is_clean():
    result = _ruff("--output-format", "concise")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_lints_the_notebooks():
    """The notebooks' code (written by notebooks/build.py) is linted, not excluded."""
    listed = _ruff("--show-files").stdout
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    assert all(str(path) in listed for path in notebooks), listed
