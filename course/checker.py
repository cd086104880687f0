"""The checker: run a learner's function on exact instances and explain what went wrong."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .exercises import EXERCISES, Exercise

Tensor = torch.Tensor


@dataclass(frozen=True)
class Result:
    """The outcome of :func:`course.check`; ``bool(result)`` is ``result.passed``.

    Attributes:
        exercise: the exercise id.
        passed: the function matched the exact answer on every instance.
        message: the report shown in a notebook (its ``repr``).
        pitfall: the name of the known wrong answer the function matched, or ``None``.
        exact: the exact answer on the first failing instance (``None`` when passed or when the
            function gave nothing comparable).
        yours: the function's answer there.
    """

    exercise: str
    passed: bool
    message: str
    pitfall: str | None = None
    exact: Tensor | None = None
    yours: Tensor | None = None

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return self.message


def _fmt(x) -> str:
    if isinstance(x, Tensor):
        if x.dim() == 0:
            return f"{x.item():.6g}"
        flat = x.flatten()
        body = ", ".join(f"{v:.6g}" for v in flat[:8].tolist())
        more = f", … ({flat.numel()} values)" if flat.numel() > 8 else ""
        shape = f" shape {tuple(x.shape)}" if x.dim() > 1 else ""
        return f"[{body}{more}]{shape}"
    return repr(x)


def _args(kwargs: dict) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in kwargs.items())


def _call(fn: Callable, kwargs: dict):
    """fn on copies of the inputs (a learner's in-place edit must not change the next check)."""
    return fn(**{k: v.clone() if isinstance(v, Tensor) else v for k, v in kwargs.items()})


def _as_answer(out, exact: Tensor) -> tuple[Tensor | None, str | None]:
    """The learner's output as a float64 tensor of the exact answer's shape, or why not."""
    if out is None:
        return None, "returned None (a missing `return`?)"
    if isinstance(out, tuple | list) and any(isinstance(o, Tensor) for o in out):
        return None, f"returned a {type(out).__name__} of {len(out)} items; expected one tensor"
    try:
        # through numpy: a Python float must stay float64 (torch.as_tensor would make it float32)
        t = out.detach() if isinstance(out, Tensor) else torch.from_numpy(np.asarray(out))
        if t.dtype == torch.bool or t.is_complex():
            raise TypeError
        t = t.to(torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return None, f"returned {type(out).__name__} {out!r:.60}; expected a tensor of numbers"
    if t.shape != exact.shape:
        return None, f"returned shape {tuple(t.shape)}; expected shape {tuple(exact.shape)}"
    return t, None


def _close(yours: Tensor, exact: Tensor, tol: float) -> bool:
    """|yours − exact| ≤ tol·max(1, |exact|) everywhere; NaN never matches, ±inf only itself."""
    same_inf = torch.isinf(exact) & (yours == exact)
    err = (yours - exact).abs()
    ok = err <= tol * exact.abs().clamp(min=1.0)
    return bool((ok | same_inf).all())


def _max_error(yours: Tensor, exact: Tensor) -> float:
    finite = torch.isfinite(exact)
    if not finite.any():
        return 0.0
    return ((yours - exact).abs() / exact.abs().clamp(min=1.0))[finite].max().item()


def check(student_fn: Callable, exercise_id: str) -> Result:
    """Run ``student_fn`` on the exact instances of an exercise and report.

    Each instance is a keyword-argument dict drawn from a seeded world of the library; the exact
    answer is computed by the library (or by an independent route through it). The function
    passes when |yours − exact| ≤ tol·max(1, |exact|) on every instance (tol = 1e-9 in float64;
    a NaN never passes). On a failure the report shows the instance, the exact and your numbers,
    and — when your answers coincide on every instance with a known wrong answer — its hint.

    Args:
        student_fn: the learner's function, called with the exercise's keyword arguments
            (:attr:`Exercise.signature`).
        exercise_id: a key of :data:`course.EXERCISES`.

    Returns:
        :class:`Result`. A function that raises, returns no tensor, the wrong shape, or NaN/inf
        where the answer is finite fails with a short message; nothing is raised.

    Raises:
        ValueError: ``exercise_id`` is unknown or ``student_fn`` is not callable (mistakes in the
            call to ``check`` itself, not in the learner's function).
    """
    if exercise_id not in EXERCISES:
        raise ValueError(f"exercise_id must be one of {sorted(EXERCISES)}, got {exercise_id!r}")
    if not callable(student_fn):
        raise ValueError(f"student_fn must be a function, got {type(student_fn).__name__}")
    ex: Exercise = EXERCISES[exercise_id]
    instances = ex.instances()
    head = f"{exercise_id} — {ex.signature}"
    worst = 0.0
    for i, kwargs in enumerate(instances, 1):
        exact = ex.reference(**kwargs).to(torch.float64)
        where = f"on instance {i} of {len(instances)} ({_args(kwargs)})"
        try:
            out = _call(student_fn, kwargs)
        except NotImplementedError:
            return Result(
                exercise_id,
                False,
                f"NOT YET  {head}\n  your function is still a stub "
                "(it raises NotImplementedError): write its body and run the cell again.",
            )
        except Exception as err:  # the learner's bug, reported in one line, not a traceback
            msg = f"{type(err).__name__}: {err}".strip()
            return Result(
                exercise_id, False, f"FAIL  {head}\n  your function raised {msg}\n  {where}."
            )
        yours, why = _as_answer(out, exact)
        if why is not None:
            return Result(
                exercise_id, False, f"FAIL  {head}\n  your function {why}\n  {where}.", exact=exact
            )
        bad = ~torch.isfinite(yours) & torch.isfinite(exact)
        if bad.any():
            kind = "NaN" if yours[bad].isnan().any() else "±inf"
            return Result(
                exercise_id,
                False,
                f"FAIL  {head}\n  your function returned {kind} "
                f"where the exact answer is finite, {where}.\n"
                f"  exact: {_fmt(exact)}\n  yours: {_fmt(yours)}",
                exact=exact,
                yours=yours,
            )
        if not _close(yours, exact, ex.tol):
            pitfall = _diagnose(ex, student_fn, instances)
            lines = [
                f"FAIL  {head}",
                f"  wrong {where}:",
                f"  exact: {_fmt(exact)}",
                f"  yours: {_fmt(yours)}",
            ]
            if pitfall is not None:
                lines.append(f"  hint ({pitfall.name}): {pitfall.hint}")
            elif _close(yours, exact, 1e-5):
                lines.append(
                    "  hint: right to float32 precision only: compute in float64 "
                    "(the inputs are float64; avoid .float())."
                )
            else:
                lines.append(
                    "  no known mistake matches: compare your formula with the "
                    "equation in the cell above, term by term."
                )
            return Result(
                exercise_id,
                False,
                "\n".join(lines),
                pitfall=pitfall.name if pitfall else None,
                exact=exact,
                yours=yours,
            )
        worst = max(worst, _max_error(yours, exact))
    return Result(
        exercise_id,
        True,
        f"PASS  {head}\n  exact on all {len(instances)} instances "
        f"(largest relative error {worst:.1e}, tolerance {ex.tol:.0e}).",
    )


def _diagnose(ex: Exercise, student_fn: Callable, instances: list[dict]):
    """The first known wrong answer that the learner's function reproduces on every instance."""
    yours = []
    for kwargs in instances:
        try:
            out = _call(student_fn, kwargs)
        except Exception:
            return None
        exact = ex.reference(**kwargs).to(torch.float64)
        t, why = _as_answer(out, exact)
        if why is not None:
            return None
        yours.append(t)
    for pitfall in ex.pitfalls:
        if all(
            _close(y, pitfall.fn(**kw).to(torch.float64), ex.tol)
            for y, kw in zip(yours, instances, strict=True)
        ):
            return pitfall
    return None
