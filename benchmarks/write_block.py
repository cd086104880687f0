"""Put what a command prints into a marked block of a docs page: one command per generated table
whose generator only prints (the coverage tables, the loss atlas).

Usage: python benchmarks/write_block.py NAME PAGE -- COMMAND ...
e.g.   python benchmarks/write_block.py atlas docs/atlas.md -- python -m toybandit.atlas --markdown
       python benchmarks/write_block.py coverage docs/claims.md -- proofs-check --markdown
"""

from __future__ import annotations

import subprocess
import sys

import _report


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 4 or argv[2] != "--":
        sys.exit(__doc__)
    name, page, command = argv[0], argv[1], argv[3:]
    done = subprocess.run(command, cwd=_report.ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    path = _report.write(page, name, done.stdout.rstrip("\n"))
    print(f"rewrote the {name} block of {path.relative_to(_report.ROOT)}")


if __name__ == "__main__":
    main()
