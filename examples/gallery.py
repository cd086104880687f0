"""Regenerate the gallery of the docs: every example in its full setting, figures into docs/gallery
(or ``--out DIR``). With ``--table``: instead run every example with ``--quick`` and rewrite the
table of examples in docs/gallery.md from the numbers they print.

python examples/gallery.py [--quick] [--out DIR] | --table
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = sorted(
    p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_") and p.stem != "gallery"
)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    out = HERE.parent / "docs" / "gallery"
    sys.path.insert(0, str(HERE))
    if "--table" in argv or "--readme" in argv:  # --readme: the table's former home
        import _readme

        with tempfile.TemporaryDirectory() as tmp:
            summaries = {
                name: importlib.import_module(name).main([_readme.SETTING, "--out", tmp])
                for name in SCRIPTS
            }
        _readme.write(summaries)
        print(f"rewrote the table of examples in {_readme.PAGE}")
        return
    for name in SCRIPTS:
        print(f"== {name}")
        importlib.import_module(name).main(["--out", str(out), *argv])  # a given --out wins


if __name__ == "__main__":
    main()
