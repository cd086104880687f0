"""The teaching notebooks run end to end in a real Jupyter kernel and are committed executed."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _build():
    import importlib.util

    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NAMES = sorted(_build().NOTEBOOKS)


def test_the_three_notebooks():
    assert NAMES == [
        "ipo_from_first_principles",
        "language_model_is_a_q_function",
        "why_dpo_overfits",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_current_and_executed(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    sources = [src for _, src in _build().NOTEBOOKS[name]]
    assert [c.source for c in nb.cells] == sources, f"{name}.ipynb is stale: run notebooks/build.py"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert (
        all(c.execution_count for c in code)
        and sum(bool(c.outputs) for c in code) >= len(code) // 2
    )
    assert not any(o.output_type == "error" for c in code for o in c.outputs)
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs)  # a figure


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_in_a_kernel(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
