"""Regenerate the README gallery: every example in its full setting, figures into docs/gallery.
With ``--readme``: instead run every example with ``--quick`` and rewrite the README's table of
examples from the numbers they print.

python examples/gallery.py [--quick | --readme]
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
    if "--readme" in argv:
        import _readme

        with tempfile.TemporaryDirectory() as tmp:
            summaries = {
                name: importlib.import_module(name).main([_readme.SETTING, "--out", tmp])
                for name in SCRIPTS
            }
        _readme.write(summaries)
        print(f"rewrote the table of examples in {_readme.README}")
        return
    for name in SCRIPTS:
        print(f"== {name}")
        importlib.import_module(name).main([*argv, "--out", str(out)])


if __name__ == "__main__":
    main()
