"""Which claims cover which numbered item of the two source texts."""

from __future__ import annotations

from collections import Counter

from .registry import REGISTRY

REQUIRED: dict[str, tuple[str, ...]] = {
    "Nguyen 2025": (
        *(f"eq. ({i})" for i in range(1, 8)),
        "eq. (8a)",
        "eq. (8b)",
        "eq. (8c)",
        *(f"eq. ({i})" for i in range(9, 16)),
        "Lemma 3.1",
    ),
    "Rafailov et al. 2024": (
        *(f"eq. ({i})" for i in range(1, 17)),
        "Lemma 1",
        "Definition 1",
        "Theorem 1",
        "Lemma 2",
    ),
}
"""Every numbered equation, lemma, definition and theorem of each source."""

LOSS_PAPERS: tuple[str, ...] = (
    "Rafailov et al. 2023",
    "Azar et al. 2023",
    "Chowdhury et al. 2024",
    "Wang et al. 2024",
    "Xu et al. 2024",
    "Zhao et al. 2023",
    "Meng et al. 2024",
    "Hong et al. 2024",
    "D'Oosterlinck et al. 2024",
)
"""The papers of TRL's loss types whose stated targets are claims (:mod:`proofs_check.loss_papers`):
each loss's own claim, checked at its exact population optimum."""


def claims_for(source: str, ref: str) -> list[str]:
    """Ids of the claims of ``source`` that list ``ref``."""
    return [c.id for c in REGISTRY.values() if c.source == source and ref in c.refs]


def uncovered() -> list[tuple[str, str]]:
    """(source, item) pairs of :data:`REQUIRED` that no claim covers."""
    return [(s, ref) for s, refs in REQUIRED.items() for ref in refs if not claims_for(s, ref)]


def coverage_markdown() -> str:
    """The coverage tables: each numbered item (then each unnumbered statement) → claims → the
    outcomes they assert; then each claim → its kind and its independent reference."""
    lines = []
    for source, refs in REQUIRED.items():
        extra = sorted(
            {r for c in REGISTRY.values() if c.source == source for r in c.refs} - set(refs)
        )
        lines += [f"**{source}**", "", "| item | claims | asserted |", "|---|---|---|"]
        for ref in (*refs, *extra):
            ids = claims_for(source, ref)
            outcomes = Counter(REGISTRY[i].expected.value for i in ids)
            asserted = ", ".join(f"{k} ×{n}" if n > 1 else k for k, n in sorted(outcomes.items()))
            cells = ", ".join(f"`{i}`" for i in ids) or "—"
            lines.append(f"| {ref} | {cells} | {asserted or 'not covered'} |")
        lines.append("")
    papers = [(src, c) for src in LOSS_PAPERS for c in REGISTRY.values() if c.source == src]
    if papers:
        lines += [
            "**The loss papers** (the loss atlas's claims)",
            "",
            "| source | item | claim | asserted |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {src} | {'; '.join(c.refs)} | `{c.id}` | {c.expected.value} |" for src, c in papers
        ]
        lines.append("")
    lines += [
        "**Each claim: its kind and what it is checked against**",
        "",
        "| claim | kind | reference |",
        "|---|---|---|",
    ]
    for c in REGISTRY.values():
        reference = c.reference or (
            f"the predicted discrepancy; corrected form `{c.corrected}`" if c.corrected else "—"
        )
        lines.append(f"| `{c.id}` | {c.expected.value} | {reference.replace('|', '/')} |")
    return "\n".join(lines).rstrip() + "\n"
