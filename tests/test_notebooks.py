"""The course notebooks: committed executed and current, rendered in the docs, and run in a real
kernel with the reference solutions (every check passes) and a known wrong answer per exercise
(its hint is shown)."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def _build():
    import importlib.util

    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _build()
NAMES = list(BUILD.NOTEBOOKS)


def _texts(cell) -> str:
    return "".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.outputs
    )


def test_the_course():
    assert NAMES == [
        "01_kl_bandit",
        "02_bradley_terry",
        "03_deriving_dpo",
        "04_psi_preferences_and_ipo",
        "05_soft_bellman",
        "06_language_model_as_q_function",
        "07_credit_and_search",
        "08_which_loss",
    ]
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == NAMES  # no stale notebook left


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_current_and_executed(name):
    from course import EXERCISES

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    want = BUILD.notebook(name)
    assert [c.source for c in nb.cells] == [c.source for c in want.cells], (
        f"{name}.ipynb is stale: run notebooks/build.py {name}"
    )
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)
    assert not any(o.output_type == "error" for c in code for o in c.outputs)
    figures = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert figures >= 2
    assert nb.cells[0].cell_type == "markdown" and "Learning goals" in nb.cells[0].source
    ids = BUILD.exercises(name)
    assert 2 <= len(ids) <= 4 and all(i in EXERCISES for i in ids)
    for eid in ids:  # the committed stubs report "not yet", not an error
        cell = next(c for c in code if f"check({EXERCISES[eid].name}, {eid!r})" in c.source)
        assert _texts(cell).startswith("NOT YET"), _texts(cell)


@pytest.mark.parametrize("name", NAMES)
def test_docs_page_is_current(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    page, images = BUILD.render(name, nb)
    docs = ROOT / "docs" / "course"
    assert (docs / f"{name}.md").read_text(encoding="utf-8") == page, "run notebooks/build.py"
    assert len(images) >= 2
    for fig, data in images.items():
        assert (docs / "img" / fig).read_bytes() == data


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_with_solutions_and_a_wrong_answer(name):
    from course import EXERCISES

    nb = BUILD.execute(BUILD.notebook(name, solutions=True), timeout=300)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not any(o.output_type == "error" for c in code for o in c.outputs)
    for eid in BUILD.exercises(name):
        ex = EXERCISES[eid]
        k = next(
            i
            for i, c in enumerate(code)
            if "from course.solutions import" in c.source and f"{eid!r}" in c.source
        )
        assert _texts(code[k]).startswith("PASS"), _texts(code[k])
        wrong = _texts(code[k + 1])
        assert wrong.startswith("FAIL") and ex.pitfalls[0].hint in wrong, wrong
