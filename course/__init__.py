"""course: self-checking exercises for the teaching notebooks.

:func:`check` runs a learner's function on exact instances drawn from the library's worlds
(``toybandit`` bandits and preferences, ``tokenmdp`` token trees), compares it with the exact answer
the library computes, and reports pass or fail with both numbers. A wrong answer that matches a known
pitfall — the errata of the source texts and the usual slips (a missing minus sign, β multiplied
instead of divided, a forgotten log π_ref, the printed target ``c − 1`` of Nguyen 2025, eq. (11)) —
gets a specific hint. A function that raises, returns the wrong shape or NaN gets a one-paragraph
message, never a traceback.

The exercises are listed in :data:`EXERCISES`; reference solutions live apart, in
``course.solutions``.

>>> import torch
>>> def gibbs_policy(reward, ref, beta):
...     return torch.softmax(reward / beta + ref.log(), -1)
>>> check(gibbs_policy, "kl_bandit.gibbs").passed
True
>>> def gibbs_policy(reward, ref, beta):      # β multiplied instead of divided
...     return torch.softmax(reward * beta + ref.log(), -1)
>>> result = check(gibbs_policy, "kl_bandit.gibbs")
>>> result.passed, result.pitfall
(False, 'beta_multiplied')
"""

from .checker import Result, check
from .exercises import EXERCISES, Exercise, Pitfall

__all__ = ["EXERCISES", "Exercise", "Pitfall", "Result", "check"]
