"""Input checks shared by every public function: fail loudly, never renormalise or clip."""

from __future__ import annotations

import functools

import torch

Tensor = torch.Tensor

# A distribution normalised in a given dtype sums to 1 within about Y·eps; these bounds leave room for
# 10^6 responses in float64 and 10^2 in float32 while still catching a forgotten normalisation.
_SUM_TOL = {torch.float64: 1e-9, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 1e-2}
# (8c) is checked to the rounding error of computing 1 − p, a few ulps of 1.
_PREF_TOL = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 1e-2}


def as_tensor(x, name: str) -> Tensor:
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
    return _SUM_TOL.get(dtype, 1e-9)


def pref_tol(dtype: torch.dtype) -> float:
    return _PREF_TOL.get(dtype, 1e-12)


def probabilities(p, name: str, *, min_dim: int = 1) -> Tensor:
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


def finite(x, name: str) -> Tensor:
    x = as_tensor(x, name)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite, got {x[~torch.isfinite(x)][:3].tolist()}")
    return x


def positive(value, name: str):
    """Check a strength such as β or τ: a positive finite number or tensor of them."""
    if isinstance(value, torch.Tensor):
        bad = ~(torch.isfinite(value) & (value > 0))
        if bad.any():
            raise ValueError(f"{name} must be positive and finite, got {value[bad][:3].tolist()}")
        return value
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a positive number, got {value!r}") from err
    if not (v > 0 and v < float("inf")):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return v


def in_range(value, name: str, low: float, high: float, *, high_open: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a number, got {value!r}") from err
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
