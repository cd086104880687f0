"""``proofs-check --loss module:function``: where does a new preference loss converge?

Runs a user's per-pair loss through a fixed panel of exact one-prompt worlds and minimises its
population objective exactly (:func:`toybandit.minimise_loss`), then reports the minimiser
against the targets a loss may claim:

- ``bradley_terry``: P = σ(r_i − r_j); target π* ∝ π_ref e^{r/β} (Nguyen 2025, eq. (1); the DPO
  optimum, Rafailov et al. 2023).
- ``noisy``: the same labels flipped with probability ε = 0.1; target the clean π* (what a
  noise-robust loss such as rDPO claims, Chowdhury et al. 2024).
- ``deterministic``: P ∈ {0, 1}, a total order; π* does not exist (the rewards are infinite): DPO
  has no finite minimiser (Azar et al. 2023, sec. 4.2); the IPO optimum is finite.
- ``intransitive``: cyclic preferences, no reward; references are the IPO (ΨPO, Ψ = identity)
  optimum (Azar et al. 2023, eq. (7)) and the maximal lottery (the von Neumann winner of the
  game 2P − 1), which ignores π_ref and β.

The loss is ``loss(chosen_logratios, rejected_logratios) -> per-pair losses`` on q = log π/π_ref
(torch operations, so autograd can differentiate it twice); if it has a ``beta`` parameter, the
panel's β is passed. Every world has 4 responses, μ uniform, π_ref = (0.1, 0.2, 0.3, 0.4).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch

import toybandit as tb

Tensor = torch.Tensor
F64 = torch.float64

REWARD = torch.tensor(tb.atlas.REWARD, dtype=F64)
REF = torch.tensor(tb.atlas.REF, dtype=F64)
MU = torch.full((4,), 0.25, dtype=F64)
NOISE = tb.atlas.NOISE


def load_loss(spec: str) -> Callable[..., Tensor]:
    """The callable named by ``module:function`` or ``path/to/file.py:function``.

    A module name is imported with the current directory first on ``sys.path`` (as ``python -m``
    does), so a ``myloss.py`` next to the user works without installing it.

    Raises:
        ValueError: naming the spec and what is wrong (format, import, attribute, not callable).
    """
    if not isinstance(spec, str) or spec.count(":") < 1:
        raise ValueError(f"--loss must be MODULE:FUNCTION or FILE.py:FUNCTION, got {spec!r}")
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise ValueError(f"--loss must be MODULE:FUNCTION or FILE.py:FUNCTION, got {spec!r}")
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise ValueError(f"--loss file {where!r} does not exist")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            assert module_spec is not None and module_spec.loader is not None  # a .py path has both
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(where)
    except ValueError:
        raise
    except Exception as err:  # a user's module may raise anything on import
        raise ValueError(
            f"--loss module {where!r} does not import: {type(err).__name__}: {err}"
        ) from err
    if not hasattr(module, name):
        raise ValueError(f"--loss: module {where!r} has no attribute {name!r}")
    loss: Callable[..., Tensor] = getattr(module, name)
    if not callable(loss):
        raise ValueError(f"--loss: {spec!r} is not callable (it is a {type(loss).__name__})")
    return loss


def _with_beta(loss: Callable[..., Tensor], beta: float) -> Callable[..., Tensor]:
    try:
        params = inspect.signature(loss).parameters
    except (TypeError, ValueError):  # some builtins have no signature: call as given
        return loss
    if "beta" in params:
        return lambda chosen, rejected: loss(chosen, rejected, beta=beta)
    return loss


maximal_lottery = tb.maximal_lottery  # the target of the intransitive world


class Row(NamedTuple):
    """One world of the panel: the loss's population minimiser and its distance to the targets."""

    world: str
    finite: bool
    converged: bool
    policy: Tensor
    kl_to_optimum: float  # KL(π̂ ‖ π*), NaN where π* does not exist
    kl_to_ipo: float  # KL(π̂ ‖ IPO optimum)
    kl_to_lottery: float  # KL(maximal lottery ‖ π̂), intransitive world only (else NaN)
    verdict: str


def panel(beta: float) -> list[tuple[str, Tensor, Tensor | None]]:
    """(name, P, target π* or None) for the four worlds: the loss atlas's first four one-token
    worlds with μ uniform (:func:`toybandit.atlas.worlds`)."""
    worlds = {w.name: w for w in tb.atlas.worlds()}
    out = []
    for name in ("bradley_terry", "noisy", "deterministic", "intransitive"):
        w = worlds[name]
        target = tb.optimal_policy(w.reward, w.ref, beta) if w.reward is not None else None
        out.append((name, w.pref, target))
    return out


def _kl(p: Tensor, q: Tensor) -> float:
    return tb.kl_divergence(p, q).item()


def check_loss(loss: Callable[..., Tensor], beta: float = 0.5) -> list[Row]:
    """The panel's rows for a loss (see the module doc); β > 0 is the KL strength of the targets
    and, if the loss takes ``beta``, its own."""
    if not callable(loss):
        raise ValueError(f"loss must be callable, got {type(loss)}")
    beta = float(beta)
    if not (beta > 0 and math.isfinite(beta)):
        raise ValueError(f"beta must be positive and finite, got {beta!r}")
    fn = _with_beta(loss, beta)
    rows = []
    for name, pref, target in panel(beta):
        res = tb.minimise_loss(fn, tb.population_pairs(pref, MU), REF)
        ipo = tb.psi_optimal_policy(pref, MU, REF, beta)
        lottery = maximal_lottery(pref) if name == "intransitive" else None
        rows.append(
            Row(
                name,
                res.finite,
                res.converged,
                res.policy,
                _kl(res.policy, target) if target is not None else math.nan,
                _kl(res.policy, ipo),
                _kl(lottery, res.policy) if lottery is not None else math.nan,
                res.verdict,
            )
        )
    return rows


def _fmt(x: float) -> str:
    return "—" if math.isnan(x) else ("inf" if math.isinf(x) else f"{x:.3g}")


def report(spec: str, rows: list[Row], beta: float) -> str:
    lines = [
        f"loss {spec} at β = {beta:g}: population minimiser on 4 responses, μ uniform, "
        f"π_ref = {[round(x, 2) for x in REF.tolist()]}",
        "",
    ]
    head = ("world", "finite", "π (minimiser)", "KL(π‖π*)", "KL(π‖π_IPO)", "KL(ML‖π)", "verdict")
    body = [
        (
            r.world,
            "yes" if r.finite else "no",
            "[" + ", ".join(f"{p:.4f}" for p in r.policy.tolist()) + "]",
            _fmt(r.kl_to_optimum),
            _fmt(r.kl_to_ipo),
            _fmt(r.kl_to_lottery),
            r.verdict,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    for row in [head, tuple("-" * w for w in widths), *body]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    lines += [
        "",
        "π*: the KL-regularised optimum of the Bradley–Terry reward (the clean one in the noisy "
        "world); π_IPO: the IPO/ΨPO optimum; ML: the maximal lottery (intransitive world).",
    ]
    return "\n".join(lines)


def run_user_loss(spec: str, beta: float = 0.5, as_json: bool = False) -> int:
    """The ``--loss`` command: print the panel for the loss named by ``spec``; exit status 0, or 2
    with the error on stderr for a loss that cannot be loaded or evaluated."""
    try:
        rows = check_loss(load_loss(spec), beta)
    except ValueError as err:
        print(f"proofs-check --loss: error: {err}", file=sys.stderr)
        return 2
    if as_json:
        records = [
            {
                **r._asdict(),
                "policy": r.policy.tolist(),
                **{
                    k: (None if not math.isfinite(getattr(r, k)) else getattr(r, k))
                    for k in ("kl_to_optimum", "kl_to_ipo", "kl_to_lottery")
                },
            }
            for r in rows
        ]
        print(json.dumps({"loss": spec, "beta": beta, "worlds": records}, indent=1))
    else:
        print(report(spec, rows, beta))
    return 0
