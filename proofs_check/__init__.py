"""proofs_check: every numbered equation, lemma and theorem of the two source texts as a claim.

Each :class:`Claim` has an id, its source and equation, a one-line statement, a seeded instance
generator, a residual, a tolerance with its justification, the independent reference it is checked
against and an expected :class:`Outcome`: ``holds`` (against that reference), ``identity`` (holds by
construction; not counted as verification), ``erratum`` (the printed form misses by the predicted
discrepancy; a corrected claim holds) or ``needs-assumption`` (an assumption dropped: the statement
must fail by a finite amount). ``proofs-check`` runs the catalogue; ``proofs-check --faults`` shows
that every injected fault is caught (:mod:`proofs_check.faults`).
"""

from importlib.util import find_spec

from . import diffusion, loss_papers, nguyen2025, rafailov2024, symbolic  # noqa: F401  (register claims)

if find_spec("transformers") is not None:  # the `lm` extra: the same claims on a real LM's tree
    from . import lm_claims, lm_reference  # noqa: F401
from .registry import REGISTRY, Claim, Outcome, Result, claim, register, run_claim, select

__all__ = ["REGISTRY", "Claim", "Outcome", "Result", "claim", "register", "run_claim", "select"]
