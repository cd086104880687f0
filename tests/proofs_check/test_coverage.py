"""The coverage of the source texts and what docs/claims.md says about the catalogue: every
numbered item is covered, the page's coverage table is current, and so are its counts."""

import re
from pathlib import Path

import pytest

import proofs_check as pc
from proofs_check.coverage import coverage_markdown, uncovered

CLAIMS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "claims.md"


def test_every_numbered_item_is_covered():
    assert uncovered() == []


def test_docs_coverage_table_is_current():
    text = CLAIMS_PAGE.read_text(encoding="utf-8")
    found = re.search(r"<!-- coverage:start -->\n(.*?)<!-- coverage:end -->", text, re.S)
    assert found, "docs/claims.md lacks the coverage markers"
    assert found.group(1) == coverage_markdown(), (
        "docs/claims.md's coverage table is stale: python benchmarks/write_block.py coverage "
        "docs/claims.md -- proofs-check --markdown"
    )


def test_docs_counts_are_current():
    """The claims page's counts of claims (a default run: every claim but the sympy proofs) and of
    injected faults are the registry's."""
    pytest.importorskip("transformers")  # the lm claims register with the `lm` extra
    from proofs_check.faults import FAULTS

    text = " ".join(CLAIMS_PAGE.read_text(encoding="utf-8").split())  # lines joined
    claims = sum("symbolic" not in c.tags for c in pc.REGISTRY.values())
    assert f"checks {claims} claims" in text, f"docs/claims.md: the catalogue has {claims} claims"
    assert f"monkeypatches {len(FAULTS)} plausible" in text, f"docs/claims.md: {len(FAULTS)} faults"
