"""Input checks shared by every public function of toybandit and tokenmdp.

Each check returns its argument in a usable form (a floating tensor, a float, an int) or raises
``ValueError`` naming the argument and the condition it breaks (``docs/conventions.md``). Nothing
is renormalised, clipped or silently cast to another meaning: an unnormalised distribution, a
negative weight or a float index is refused, never repaired.

Tolerances follow the dtype: a distribution normalised in a dtype sums to 1 within about Y·eps
(:func:`sum_tol`), and a preference matrix satisfies P_ij + P_ji = 1 within a few ulps
(:func:`pref_tol`).

:data:`TensorLike` is the type of every array input of the public functions of toybandit,
tokenmdp and proofs_check: what :func:`as_tensor` accepts. It is defined here, once, and imported
by the other packages (``from toybandit.validation import TensorLike``).
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Sequence
from typing import TypeAlias

import numpy as np
import torch

Tensor = torch.Tensor

TensorLike: TypeAlias = (
    Tensor
    | np.ndarray
    | np.number
    | float
    | Sequence[float]
    | Sequence[Sequence[float]]
    | Sequence[Sequence[Sequence[float]]]
)
"""An array input: a tensor, a NumPy array or scalar, a Python number (``int`` and ``bool``
included, as ``float`` includes them in type hints), or lists and tuples of numbers nested up to
three deep ([X, Y, Y] for per-prompt preference matrices; pass an array for more), as
:func:`as_tensor` (``torch.as_tensor``) reads them. Non-tensors and integer tensors become float64;
a tensor keeps its floating dtype and device."""

__all__ = [
    "TensorLike",
    "as_tensor",
    "broadcast",
    "finite",
    "gibbs_inputs",
    "in_range",
    "indices",
    "integer",
    "log_normalised",
    "logratio_pair",
    "non_decreasing",
    "number",
    "positive",
    "pref_tol",
    "preference_entries",
    "probabilities",
    "prompt_param",
    "sum_tol",
    "weights",
]

# A distribution normalised in a given dtype sums to 1 within about Y·eps; these bounds leave room for
# 10^6 responses in float64 and 10^2 in float32 while still catching a forgotten normalisation.
_SUM_TOL = {torch.float64: 1e-9, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 1e-2}
# (8c) is checked to the rounding error of computing 1 − p, a few ulps of 1.
_PREF_TOL = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 1e-2}


def as_tensor(x: TensorLike, name: str) -> Tensor:
    """Return ``x`` as a floating tensor; non-tensors and integer tensors become float64."""
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"{name} must be a tensor or array-like of numbers, got {type(x)}"
            ) from err
    elif not x.is_floating_point():
        x = x.to(torch.float64)
    return x


def sum_tol(dtype: torch.dtype) -> float:
    """How far from 1 a distribution normalised in ``dtype`` may sum: 1e-9 in float64, 1e-5 in
    float32, 1e-2 in half precision."""
    return _SUM_TOL.get(dtype, 1e-9)


def pref_tol(dtype: torch.dtype) -> float:
    """How far P_ij + P_ji may be from 1 (Nguyen 2025, (8c)) in ``dtype``: 1e-12 in float64,
    1e-6 in float32."""
    return _PREF_TOL.get(dtype, 1e-12)


def probabilities(p: TensorLike, name: str, *, min_dim: int = 1) -> Tensor:
    """Check a tensor of distributions over the last dim: finite, ≥ 0, each row summing to 1."""
    p = as_tensor(p, name)
    if p.dim() < min_dim or p.shape[-1] == 0:
        raise ValueError(
            f"{name} must have a non-empty last (response) dim, got shape {tuple(p.shape)}"
        )
    if not torch.isfinite(p).all():
        raise ValueError(f"{name} must be finite, got {p[~torch.isfinite(p)][:3].tolist()}")
    if (p < 0).any():
        raise ValueError(f"{name} must be non-negative, got minimum {p.min().item():.3g}")
    err = (p.sum(-1) - 1).abs().max().item()
    if err > sum_tol(p.dtype):
        raise ValueError(
            f"{name} must sum to 1 over its last dim (tolerance {sum_tol(p.dtype):g} for {p.dtype}), "
            f"got a row off by {err:.3g}"
        )
    return p


def number(value: float | Tensor, name: str) -> float:
    """A real number as a float: ints, floats, NumPy scalars and one-element tensors; never a
    string (``"0.5"``), a bool or None, which ``float()`` would accept or mistake."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex():
            raise ValueError(f"{name} must be a number, got a tensor of shape {tuple(value.shape)}")
        return float(value.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def integer(
    value: float | Tensor, name: str, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """An integer count, depth or size: ints, NumPy integers and integral floats (2.0); never
    2.5 (which ``int()`` truncates), a string or a bool. Bounds are inclusive."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex() or value.dtype == torch.bool:
            raise ValueError(
                f"{name} must be an integer, got a tensor {value.dtype} {tuple(value.shape)}"
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if isinstance(value, numbers.Integral):
        k = int(value)
    else:
        f = float(value)
        if not math.isfinite(f) or f != math.floor(f):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        k = int(f)
    if (minimum is not None and k < minimum) or (maximum is not None and k > maximum):
        low = "-inf" if minimum is None else minimum
        high = "inf" if maximum is None else maximum
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return k


def indices(x: TensorLike, name: str, size: int, n: int | None = None) -> Tensor:
    """A 1-D int64 tensor of positions in [0, size) (of length n if given): no floats, no bools
    (a mask is not a list of positions), nothing out of range."""
    x = torch.as_tensor(x)
    if x.dtype == torch.bool or x.is_floating_point() or x.is_complex():
        raise ValueError(f"{name} must hold integer indices, got dtype {x.dtype}")
    x = x.long()
    if x.dim() != 1 or (n is not None and x.shape[0] != n):
        length = "" if n is None else f" of length {n}"
        raise ValueError(f"{name} must be a 1-D index tensor{length}, got shape {tuple(x.shape)}")
    if x.numel() and (x.min() < 0 or x.max() >= size):
        raise ValueError(f"{name} must lie in [0, {size}), got range [{x.min()}, {x.max()}]")
    return x


def log_normalised(lse: Tensor, name: str, what: str = "row") -> None:
    """Raise unless every entry of ``lse`` (the logsumexp of each distribution in ``name``) is 0
    within the tolerance :func:`sum_tol` uses for probabilities: a log-policy that is not
    normalised (logits, or scores) is refused, never renormalised."""
    tol = sum_tol(lse.dtype)
    err = torch.nan_to_num((lse).abs(), nan=math.inf)
    if err.numel() and not (err <= tol).all():
        k = int(err.reshape(-1).argmax())
        raise ValueError(
            f"{name} must be a normalised log-probability: a {what} logsumexps to "
            f"{lse.reshape(-1)[k].item():.3g}, not 0 (tolerance {tol:g} for {lse.dtype})"
        )


def preference_entries(p: TensorLike, name: str) -> Tensor:
    """Probabilities P(y_i ≻ y_j) entry by entry: in [0, 1], no NaN."""
    p = as_tensor(p, name)
    bad = ~((p >= 0) & (p <= 1))
    if bad.any():
        raise ValueError(f"{name} must hold probabilities in [0, 1], got {p[bad][:3].tolist()}")
    return p


def non_decreasing(fn: Callable[[Tensor], Tensor], name: str, *, points: int = 1001) -> None:
    """Check a map Ψ: [0, 1] → [−inf, inf] on a grid of ``points`` equally spaced values (plus the
    endpoints): it must return a tensor of the grid's shape, no NaN, and never decrease."""
    grid = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
    values = fn(grid)
    if not isinstance(values, Tensor) or values.shape != grid.shape:
        raise ValueError(f"{name} must map a tensor elementwise to a tensor of its shape")
    if values.isnan().any():
        p = grid[values.isnan()][0].item()
        raise ValueError(f"{name} must not return NaN on [0, 1], got NaN at p = {p:g}")
    drop = (values[1:] < values[:-1]).nonzero()
    if drop.numel():
        i = int(drop[0].item())
        raise ValueError(
            f"{name} must be non-decreasing on [0, 1]: {name}({grid[i].item():g}) = "
            f"{values[i].item():.4g} > {name}({grid[i + 1].item():g}) = {values[i + 1].item():.4g}"
        )


def finite(x: TensorLike, name: str) -> Tensor:
    """``x`` as a floating tensor (see :func:`as_tensor`) with no NaN or ±inf entry."""
    x = as_tensor(x, name)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite, got {x[~torch.isfinite(x)][:3].tolist()}")
    return x


def positive(value: float | Tensor, name: str) -> float | Tensor:
    """Check a strength such as β or τ: a positive finite number or tensor of them."""
    if isinstance(value, torch.Tensor):
        bad = ~(torch.isfinite(value) & (value > 0))
        if bad.any():
            raise ValueError(f"{name} must be positive and finite, got {value[bad][:3].tolist()}")
        return value
    v = number(value, name)
    if not (v > 0 and v < float("inf")):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return v


def in_range(
    value: float | Tensor, name: str, low: float, high: float, *, high_open: bool = False
) -> float:
    """A number in [low, high] (or [low, high) with ``high_open``), as a float."""
    v = number(value, name)
    ok = low <= v < high if high_open else low <= v <= high
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}{bracket}, got {value!r}")
    return v


def broadcast(named: dict[str, Tensor], *, last_dims: int = 1) -> tuple[Tensor, ...]:
    """Broadcast tensors over leading (prompt) dims; the trailing ``last_dims`` must agree exactly."""
    items = list(named.items())
    ref_name, ref = items[0]
    for name, t in items[1:]:
        if tuple(t.shape[-last_dims:]) != tuple(ref.shape[-last_dims:]):
            raise ValueError(
                f"{name} and {ref_name} must have the same response dim(s): "
                f"shapes {tuple(t.shape)} and {tuple(ref.shape)}"
            )
    try:
        shape = torch.broadcast_shapes(*(t.shape for _, t in items))
    except RuntimeError as err:
        shapes = ", ".join(f"{n} {tuple(t.shape)}" for n, t in items)
        raise ValueError(f"prompt dims do not broadcast: {shapes}") from err
    dtype = functools.reduce(torch.promote_types, (t.dtype for _, t in items))
    return tuple(t.to(dtype).expand(shape) for _, t in items)


def prompt_param(param: Tensor, name: str, like: Tensor) -> Tensor:
    """A per-prompt strength (β or τ as a tensor over the prompt dims [...]) made to broadcast
    against responses ``like`` [..., Y]: returned as [..., 1] in ``like``'s dtype."""
    try:
        torch.broadcast_shapes(param.shape, like.shape[:-1])
    except RuntimeError as err:
        raise ValueError(
            f"{name} of shape {tuple(param.shape)} must broadcast over the prompt dims "
            f"{tuple(like.shape[:-1])}"
        ) from err
    return param.to(like.dtype).unsqueeze(-1)


def gibbs_inputs(
    reward: TensorLike,
    ref: TensorLike,
    beta: float | Tensor,
    *,
    beta_name: str = "beta",
    reward_name: str = "reward",
) -> tuple[Tensor, Tensor, float | Tensor]:
    """The inputs of a Gibbs policy π_ref e^{r/β}/Z: a finite ``reward`` [..., Y], probabilities
    ``ref`` broadcast against it, and β > 0 (a number, or a tensor over the prompt dims returned
    by :func:`prompt_param` as [..., 1]). Returns (reward, ref, beta)."""
    reward = finite(reward, reward_name)
    ref = probabilities(ref, "ref")
    beta = positive(beta, beta_name)
    reward, ref = broadcast({reward_name: reward, "ref": ref})
    if isinstance(beta, Tensor):
        beta = prompt_param(beta, beta_name, reward)
    return reward, ref, beta


def logratio_pair(
    chosen_logratios: TensorLike, rejected_logratios: TensorLike
) -> tuple[Tensor, Tensor]:
    """q(y_w) and q(y_l) (or log-probabilities) as floating tensors of one shape, one entry per
    pair."""
    chosen = as_tensor(chosen_logratios, "chosen_logratios")
    rejected = as_tensor(rejected_logratios, "rejected_logratios")
    if chosen.shape != rejected.shape:
        raise ValueError(
            "chosen_logratios and rejected_logratios must have the same shape (one entry per pair), "
            f"got {tuple(chosen.shape)} and {tuple(rejected.shape)}"
        )
    return chosen, rejected


def weights(
    w: TensorLike | None,
    n: int,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """One weight per pair: finite, non-negative, not all 0, shape [n], in ``dtype``; all 1 (on
    ``device``) when ``w`` is None. Not normalised."""
    if w is None:
        return torch.ones(n, dtype=dtype, device=device)
    w = as_tensor(w, "weights").to(dtype)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), got {tuple(w.shape)}")
    if not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    return w
