"""Shared plumbing of the example scripts: ``--quick`` / ``--out DIR`` and where figures go."""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")


def parse(description: str, argv=None, **extra) -> argparse.Namespace:
    """``--quick`` (the CI setting) and ``--out DIR`` (default ``figures``), plus ``extra`` options
    given as name → (type, default, help)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small setting, seconds")
    parser.add_argument("--out", default="figures", help="directory for the PNG")
    for name, (kind, default, text) in extra.items():
        parser.add_argument(f"--{name}", type=kind, default=default, help=text)
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    return args


def save(fig, args: argparse.Namespace, name: str) -> Path:
    path = Path(args.out) / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")
    return path
