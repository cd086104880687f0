"""proofs_check: every numbered equation, lemma and theorem of the two source texts as a claim.

Each :class:`Claim` has an id, its source and equation, a one-line statement, a seeded instance
generator, a residual, a tolerance with its justification and an expected :class:`Outcome`:
``holds``, ``erratum`` (the printed form fails; a corrected claim holds) or ``needs-assumption``
(an assumption dropped: the statement must fail). ``proofs-check`` runs the catalogue.
"""

from . import diffusion, nguyen2025, rafailov2024, symbolic  # noqa: F401  (register claims)
from .registry import REGISTRY, Claim, Outcome, Result, claim, register, run_claim, select

__all__ = ["REGISTRY", "Claim", "Outcome", "Result", "claim", "register", "run_claim", "select"]
