"""The catalogue as a pytest suite: ``pytest --pyargs proofs_check`` in any project's CI.

Every registered claim must have its expected outcome. Under ``CI=true`` (or
``PROOFS_CHECK_QUICK=1``) each claim runs on at most 5 instances, otherwise on its full count.
"""

from __future__ import annotations

import os

import pytest
import torch

from proofs_check import REGISTRY, run_claim

QUICK = os.environ.get("CI", "").lower() == "true" or bool(os.environ.get("PROOFS_CHECK_QUICK"))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread, as ``proofs-check`` runs: the claims are many small ops."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("claim", list(REGISTRY.values()), ids=lambda c: c.id)
def test_claim_has_its_expected_outcome(claim):
    result = run_claim(claim, instances=min(claim.instances, 5) if QUICK else None)
    assert result.ok, (
        f"{claim.id} ({claim.source}, {', '.join(claim.refs)}): expected {claim.expected.value}, "
        f"observed {result.observed}; max residual {result.max_residual:.3g} vs tolerance "
        f"{claim.tolerance:g} (first failing instance: {result.failing_instance}); "
        f"{result.error or result.message or ''}"
    )
