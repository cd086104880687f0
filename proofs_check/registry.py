"""The claim registry: one contract for every checked statement of the two source texts."""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from toybandit.validation import TensorLike

from .measured import RUN, WORST

Tensor = torch.Tensor


class Outcome(str, enum.Enum):
    """What a claim asserts about its residual over the drawn instances."""

    HOLDS = "holds"
    """A statement checked against an independent reference (enumeration, scipy, a separately
    written closed form): the residual stays under tolerance on every instance."""
    IDENTITY = "identity"
    """A statement that holds by construction once the library's quantities are what they are
    (e.g. a telescoping sum): checked like a holds claim, but not counted as verification."""
    ERRATUM = "erratum"
    """An equation as printed that is wrong, measured: on every instance the printed form misses
    by exactly the discrepancy the correction predicts and the corrected form holds, and the miss
    exceeds the tolerance on some instance. The claim names its corrected (holds) claim."""
    NEEDS_ASSUMPTION = "needs-assumption"
    """A true statement with one assumption the source makes dropped: some instance has a finite
    residual above tolerance, showing why the assumption is there."""


VERIFYING = (Outcome.HOLDS,)
"""The kinds the summary line counts as verified."""


class NonFinite(ArithmeticError):
    """A quantity under test is NaN or infinite where its reference is not: never a pass."""


@dataclass(frozen=True)
class Miss:
    """An erratum measured on one instance.

    Attributes:
        size: how far the printed form is from the truth (max |printed − truth|).
        off: how far that miss is from the discrepancy the correction predicts, relative to its
            size: max |(printed − truth) − predicted| / (1 + |predicted|) (a printed Z(x) can be
            e^{50}); round-off for a well-understood erratum.
        corrected: the residual of the corrected form on the same instance.
    """

    size: float
    off: float
    corrected: float


def _float64_unless_tensor(x: TensorLike) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.float64)


def miss(
    printed: TensorLike,
    truth: TensorLike,
    predicted: TensorLike,
    corrected: float,
    name: str = "printed form",
) -> Miss:
    """The :class:`Miss` of a printed form against the truth, given the predicted discrepancy
    (printed − truth, elementwise); raises ``NonFinite`` on a NaN/inf anywhere."""
    printed, truth = torch.as_tensor(printed, dtype=torch.float64), torch.as_tensor(truth)
    predicted = torch.as_tensor(predicted, dtype=torch.float64)
    for what, x in ((name, printed), ("truth", truth), ("predicted discrepancy", predicted)):
        if not torch.isfinite(x).all():
            raise NonFinite(f"{what} is not finite ({_first_bad(x)})")
    gap = printed - truth
    return Miss(
        size=gap.abs().max().item(),
        off=((gap - predicted).abs() / (1 + predicted.abs())).max().item(),
        corrected=float(corrected),
    )


def maxabs(name: str, got: TensorLike, want: TensorLike, mask: torch.Tensor | None = None) -> float:
    """max |got − want| (over ``mask``) for the quantity ``name``: −inf must sit exactly where the
    reference has it (both −inf: difference 0); a NaN or +inf in either, or −inf in one only,
    raises ``NonFinite`` naming the quantity and the first such position. Never skips a
    position, so a non-finite value under test can never pass."""
    a, b = _float64_unless_tensor(got), _float64_unless_tensor(want)
    if torch.float32 in (a.dtype, b.dtype) or torch.float16 in (a.dtype, b.dtype):
        raise TypeError(f"{name}: compare in float64, got {a.dtype} and {b.dtype}")
    if mask is not None:
        a, b = a[mask], b[mask]
    a, b = torch.broadcast_tensors(a, b)
    for what, x in (("", a), (" (reference)", b)):
        bad = torch.isnan(x) | (x == math.inf)
        if bad.any():
            k = tuple(bad.nonzero()[0].tolist())
            raise NonFinite(f"{name}{what} is {x[k].item()} at {k}")
    neg_got, neg_want = a == -math.inf, b == -math.inf
    if not torch.equal(neg_got, neg_want):
        k = tuple((neg_got != neg_want).nonzero()[0].tolist())
        raise NonFinite(f"{name} is {a[k].item()} at {k} where the reference is {b[k].item()}")
    both = neg_got & neg_want
    diff = torch.where(both, 0.0, a.double() - b.double()).abs()
    return diff.max().item() if diff.numel() else 0.0


def _first_bad(x: Tensor) -> str:
    bad = (~torch.isfinite(x)).nonzero()
    where = tuple(bad[0].tolist()) if bad.numel() else ()
    return f"{x[where].item() if where or x.dim() == 0 else 'nan'} at {where}"


def margin(tolerance: float, worst: float) -> str:
    """tolerance / worst as the tolerance sweep prints it: "> 10⁶×" from 10⁶ on (and for a worst
    of 0), a whole number from 10, two significant digits below."""
    if worst == 0 or tolerance / worst >= 1e6:
        return "> 10⁶×"
    ratio = tolerance / worst
    return f"{ratio:,.0f}×" if ratio >= 10 else f"{ratio:.2g}×"


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
        residual: ``residual(instance) -> float`` (≥ 0; compared with ``tolerance``); for an
            erratum, ``residual(instance) -> Miss``.
        tolerance: the bound on the residual, and ``why``: its justification.
        reference: the independent computation the residual compares against (enumeration over
            complete sequences, scipy optimisation, a closed form written separately); for an
            identity, why it holds by construction. Never the function under test.
        corrected: for an erratum, the id of the claim with the corrected form.
        tags: labels for ``--claim`` filters (e.g. "bandit", "tree", "layered", "symbolic", "lm";
            ``proofs-check --list`` shows them all).
        quick: part of the CI subset.
        instances: how many instances a full run draws (``--instances`` overrides).
    """

    id: str
    source: str
    refs: tuple[str, ...]
    statement: str
    expected: Outcome
    draw: Callable[[torch.Generator, torch.device], Any]
    residual: Callable[[Any], Any]
    tolerance: float
    why: str
    reference: str = ""
    corrected: str | None = None
    tags: tuple[str, ...] = ()
    quick: bool = True
    instances: int = 50

    @property
    def why_tolerance(self) -> str:
        """``why``, and for a claim expected to hold (or an identity) the worst residual the
        tolerance sweep measured (``proofs_check/measured.py``, written by
        ``benchmarks/tolerance_sweep.py --write``)."""
        worst = WORST.get(self.id)
        if worst is None:
            return self.why
        if worst == 0:
            return f"{self.why}; measured: 0 on every instance of {RUN}"
        below = margin(self.tolerance, worst)
        return f"{self.why}; measured: worst {worst:.1e} over {RUN}, {below} below it"


@dataclass
class Result:
    """The outcome of running one claim."""

    claim: Claim
    instances: int
    max_residual: float
    failing_instance: int | None  # first instance over tolerance (None: none)
    residuals: list[float] = field(repr=False, default_factory=list)
    seconds: float = 0.0
    error: str | None = None  # a raising residual or a non-finite discrepancy, with its instance
    max_off: float | None = None  # erratum: worst |miss − predicted discrepancy|
    max_corrected: float | None = None  # erratum: worst residual of the corrected form
    message: str | None = None  # holds: the first non-finite quantity, with its instance

    @property
    def observed(self) -> str:
        """ "error" when a residual raised (or an erratum/needs-assumption discrepancy was not
        finite), else "holds" when no instance exceeds the tolerance, "fails" otherwise."""
        if self.error is not None:
            return "error"
        return "holds" if self.failing_instance is None else "fails"

    @property
    def measured(self) -> bool:
        """For an erratum: the miss equals the predicted discrepancy and the corrected form holds
        on every instance (to tolerance)."""
        tol = self.claim.tolerance
        return (
            self.max_off is not None
            and self.max_corrected is not None
            and self.max_off <= tol
            and self.max_corrected <= tol
        )

    @property
    def ok(self) -> bool:
        """The claim has its expected outcome: a HOLDS or IDENTITY claim holds on every instance;
        a NEEDS_ASSUMPTION claim fails by a finite amount on some instance; an ERRATUM misses on
        some instance, by the predicted discrepancy on every instance, its corrected form
        holding. A claim that raised is never ok."""
        if self.observed == "error":
            return False
        kind = self.claim.expected
        if kind in (Outcome.HOLDS, Outcome.IDENTITY):
            return self.observed == "holds"
        if kind is Outcome.NEEDS_ASSUMPTION:
            return self.observed == "fails"
        return self.observed == "fails" and self.measured

    def record(self) -> dict[str, Any]:
        """The JSON record of this result (schema in :mod:`proofs_check.cli`)."""
        c = self.claim
        return {
            "id": c.id,
            "source": c.source,
            "refs": list(c.refs),
            "statement": c.statement,
            "expected": c.expected.value,
            "reference": c.reference,
            "observed": self.observed,
            "ok": self.ok,
            "instances": self.instances,
            "max_residual": _finite_or_none(self.max_residual),
            "tolerance": c.tolerance,
            "why_tolerance": c.why_tolerance,
            "failing_instance": self.failing_instance,
            "max_off": self.max_off,
            "max_corrected": self.max_corrected,
            "error": self.error,
            "message": self.message,
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
    if claim.expected in (Outcome.HOLDS, Outcome.IDENTITY) and not claim.reference:
        raise ValueError(
            f"claim {claim.id}: a {claim.expected.value} claim must name its reference"
        )
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
    reference: str = "",
    corrected: str | None = None,
    tags: tuple[str, ...] = (),
    quick: bool = True,
    instances: int = 50,
) -> Callable[[Callable[[Any], float | Miss]], Callable[[Any], float | Miss]]:
    """Decorator: register the decorated residual function as a claim."""

    def wrap(residual: Callable[[Any], float | Miss]) -> Callable[[Any], float | Miss]:
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
                reference=reference,
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
    order: a pattern matches an id, a dotted prefix of it (``nguyen2025.eq11``), a tag
    (``tree``, ``bandit``, ``lm``) or a kind (``erratum``, ``identity``).
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
    return (
        c.id == pattern
        or c.id.startswith(pattern + ".")
        or pattern in c.tags
        or pattern == c.expected.value
    )


def run_claim(
    c: Claim, *, seed: int = 0, instances: int | None = None, device: str | torch.device = "cpu"
) -> Result:
    """Draw the claim's instances from ``seed`` and evaluate its residual on each.

    Instance i is drawn from a ``torch.Generator`` seeded with (seed, claim id, i), so a run is
    reproducible and one claim's instances do not depend on which others run. A NaN or infinite
    residual (or a ``NonFinite`` raised by a comparison) fails a holds claim, naming the
    instance; for an erratum or a needs-assumption claim it is an error (their discrepancy must be
    finite). Any other exception is an error for this claim: it is caught and reported in the
    result, never raised.
    """
    device = torch.device(device)
    n = c.instances if instances is None else int(instances)
    if n < 1:
        raise ValueError(f"instances must be ≥ 1, got {n}")
    asserts_failure = c.expected in (Outcome.ERRATUM, Outcome.NEEDS_ASSUMPTION)
    start = time.perf_counter()
    residuals: list[float] = []
    failing = error = message = None
    offs: list[float] = []
    corrected: list[float] = []
    for i in range(n):
        g = torch.Generator().manual_seed(_instance_seed(seed, c.id, i))
        try:
            value = c.residual(c.draw(g, device))
            if c.expected is Outcome.ERRATUM:
                if not isinstance(value, Miss):
                    raise TypeError(f"an erratum's residual must return a Miss, got {value!r}")
                offs.append(value.off)
                corrected.append(value.corrected)
                parts = (value.size, value.off, value.corrected)
                if not all(math.isfinite(x) for x in parts):
                    raise NonFinite(f"size, off, corrected = {parts}")
                value = value.size
            value = float(value)
            if not math.isfinite(value):
                raise NonFinite(f"residual is {value}")
        except NonFinite as e:
            if asserts_failure:
                error = f"instance {i}: non-finite discrepancy: {e}"
                break
            message = message or f"instance {i}: {e}"
            value = math.inf
        except Exception as e:  # one raising claim must not end the run
            error = f"instance {i}: {type(e).__name__}: {e}"
            break
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
        error=error,
        max_off=max(offs) if offs else None,
        max_corrected=max(corrected) if corrected else None,
        message=message,
    )


def _instance_seed(seed: int, claim_id: str, i: int) -> int:
    h = 1469598103934665603  # FNV-1a over the id: stable across runs and platforms
    for byte in claim_id.encode():
        h = ((h ^ byte) * 1099511628211) % 2**64
    return (h + 1_000_003 * int(seed) + i) % 2**63


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
