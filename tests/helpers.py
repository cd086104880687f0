"""Small helpers shared by the test modules (fixtures live in ``tests/conftest.py``).

Test modules import from here, never from one another.
"""

import math

import torch

F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    """A CPU generator seeded with ``seed``: explicit randomness, no global seed."""
    return torch.Generator().manual_seed(seed)


def close(a, b, tol=1e-9):
    """Equal where finite, and −inf exactly where the other is −inf."""
    a, b = torch.as_tensor(a, dtype=F64), torch.as_tensor(b, dtype=F64)
    assert torch.equal(a == -math.inf, b == -math.inf)
    fin = torch.isfinite(a)
    assert torch.allclose(a[fin], b[fin], rtol=tol, atol=tol), (a[fin] - b[fin]).abs().max()


# The scripts of benchmarks/ that write a block of the docs (each has NAME, PAGE and COMMAND).
DOCS_SCRIPTS = (
    "toybandit_fit",
    "tree_solve",
    "lm_logprobs",
    "lm_expand",
    "lab_results",
    "timings",
    "tolerance_sweep",
)
