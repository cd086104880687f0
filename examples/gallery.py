"""Regenerate the README gallery: every example in its full setting, figures into docs/gallery.

python examples/gallery.py [--quick]
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = sorted(
    p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_") and p.stem != "gallery"
)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    out = HERE.parent / "docs" / "gallery"
    sys.path.insert(0, str(HERE))
    for name in SCRIPTS:
        print(f"== {name}")
        importlib.import_module(name).main([*argv, "--out", str(out)])


if __name__ == "__main__":
    main()
