"""The claim registry: one contract for every checked statement of the two source texts."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

Tensor = torch.Tensor


class Outcome(str, enum.Enum):
    """What a claim asserts about its residual over the drawn instances."""

    HOLDS = "holds"
    """An identity or optimality statement: the residual stays under tolerance on every instance."""
    ERRATUM = "erratum"
    """An equation as printed that is wrong: some instance has a residual above tolerance; the
    claim names the corrected form (a HOLDS claim)."""
    NEEDS_ASSUMPTION = "needs-assumption"
    """A true statement with one assumption dropped: some instance has a residual above tolerance,
    showing why the assumption is there."""


@dataclass(frozen=True)
class Claim:
    """One executable claim.

    Attributes:
        id: unique, dotted: ``<source>.<equation>.<what>`` (e.g. ``nguyen2025.eq11.printed``).
        source: "Nguyen 2025" or "Rafailov et al. 2024".
        refs: the numbered items it covers, e.g. ``("eq. (11)",)``; "unnumbered: …" for statements
            that carry the argument without a number.
        statement: one line, what is checked.
        expected: the :class:`Outcome` the catalogue asserts.
        draw: ``draw(generator, device) -> instance``, a random instance from a seeded generator.
        residual: ``residual(instance) -> float`` (≥ 0; compared with ``tolerance``).
        tolerance: the bound on the residual, and ``why``: its justification.
        corrected: for an erratum, the id of the claim with the corrected form.
        tags: free labels for ``--claim`` filters (e.g. "bandit", "tree", "symbolic").
        quick: part of the CI subset.
        instances: how many instances a full run draws (``--instances`` overrides).
    """

    id: str
    source: str
    refs: tuple[str, ...]
    statement: str
    expected: Outcome
    draw: Callable[[torch.Generator, torch.device], Any]
    residual: Callable[[Any], float]
    tolerance: float
    why: str
    corrected: str | None = None
    tags: tuple[str, ...] = ()
    quick: bool = True
    instances: int = 50


@dataclass
class Result:
    """The outcome of running one claim."""

    claim: Claim
    instances: int
    max_residual: float
    failing_instance: int | None  # first instance over tolerance (None: none)
    residuals: list[float] = field(repr=False, default_factory=list)
    seconds: float = 0.0

    @property
    def observed(self) -> str:
        """ "holds" when no instance exceeds the tolerance, "fails" otherwise."""
        return "holds" if self.failing_instance is None else "fails"

    @property
    def ok(self) -> bool:
        """The claim has its expected outcome: a HOLDS claim holds; an ERRATUM or a
        NEEDS_ASSUMPTION claim fails on some instance."""
        return (self.observed == "holds") == (self.claim.expected is Outcome.HOLDS)

    def record(self) -> dict[str, Any]:
        """The JSON record of this result (schema in :mod:`proofs_check.cli`)."""
        c = self.claim
        return {
            "id": c.id,
            "source": c.source,
            "refs": list(c.refs),
            "statement": c.statement,
            "expected": c.expected.value,
            "observed": self.observed,
            "ok": self.ok,
            "instances": self.instances,
            "max_residual": _finite_or_none(self.max_residual),
            "tolerance": c.tolerance,
            "why_tolerance": c.why,
            "failing_instance": self.failing_instance,
            "corrected": c.corrected,
            "tags": list(c.tags),
            "seconds": round(self.seconds, 4),
        }


REGISTRY: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    """Add a claim to :data:`REGISTRY` (ids are unique)."""
    if claim.id in REGISTRY:
        raise ValueError(f"claim id {claim.id!r} is registered twice")
    if not claim.tolerance > 0:
        raise ValueError(f"claim {claim.id}: tolerance must be positive")
    if claim.expected is Outcome.ERRATUM and not claim.corrected:
        raise ValueError(f"claim {claim.id}: an erratum must name its corrected claim")
    REGISTRY[claim.id] = claim
    return claim


def claim(
    id: str,
    source: str,
    refs: str | tuple[str, ...],
    statement: str,
    *,
    draw: Callable[[torch.Generator, torch.device], Any],
    tolerance: float,
    why: str,
    expected: Outcome = Outcome.HOLDS,
    corrected: str | None = None,
    tags: tuple[str, ...] = (),
    quick: bool = True,
    instances: int = 50,
) -> Callable[[Callable[[Any], float]], Callable[[Any], float]]:
    """Decorator: register the decorated residual function as a claim."""

    def wrap(residual: Callable[[Any], float]) -> Callable[[Any], float]:
        register(
            Claim(
                id=id,
                source=source,
                refs=(refs,) if isinstance(refs, str) else tuple(refs),
                statement=statement,
                expected=expected,
                draw=draw,
                residual=residual,
                tolerance=tolerance,
                why=why,
                corrected=corrected,
                tags=tags,
                quick=quick,
                instances=instances,
            )
        )
        return residual

    return wrap


def select(patterns: Iterable[str] = (), *, quick: bool = False) -> list[Claim]:
    """The claims matching one of the patterns (all claims without patterns), in registration
    order: a pattern matches an id, a dotted prefix of it (``nguyen2025.eq11``) or a tag.
    ``quick`` keeps the CI subset only."""
    patterns = list(patterns)
    chosen = []
    for c in REGISTRY.values():
        if quick and not c.quick:
            continue
        if patterns and not any(_matches(c, p) for p in patterns):
            continue
        chosen.append(c)
    return chosen


def _matches(c: Claim, pattern: str) -> bool:
    return c.id == pattern or c.id.startswith(pattern + ".") or pattern in c.tags


def run_claim(
    c: Claim, *, seed: int = 0, instances: int | None = None, device: str | torch.device = "cpu"
) -> Result:
    """Draw the claim's instances from ``seed`` and evaluate its residual on each.

    Instance i is drawn from a ``torch.Generator`` seeded with (seed, claim id, i), so a run is
    reproducible and one claim's instances do not depend on which others run.
    """
    import time

    device = torch.device(device)
    n = c.instances if instances is None else int(instances)
    start = time.perf_counter()
    residuals: list[float] = []
    failing = None
    for i in range(n):
        g = torch.Generator().manual_seed(_instance_seed(seed, c.id, i))
        value = float(c.residual(c.draw(g, device)))
        if math.isnan(value):
            value = math.inf  # a NaN residual is a failure, never a pass
        residuals.append(value)
        if failing is None and not value <= c.tolerance:
            failing = i
    return Result(
        claim=c,
        instances=n,
        max_residual=max(residuals) if residuals else 0.0,
        failing_instance=failing,
        residuals=residuals,
        seconds=time.perf_counter() - start,
    )


def _instance_seed(seed: int, claim_id: str, i: int) -> int:
    h = 1469598103934665603  # FNV-1a over the id: stable across runs and platforms
    for byte in claim_id.encode():
        h = ((h ^ byte) * 1099511628211) % 2**64
    return (h + 1_000_003 * int(seed) + i) % 2**63


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
