"""toybandit: the one-step (contextual bandit) alignment world, solved exactly.

Responses live on the last tensor dim, prompts on any leading dims; float64 by default. See
``docs/conventions.md`` for the notation (β, τ, μ, P, q) shared by the whole project. The input
checks every public function uses (toybandit's and tokenmdp's) are :mod:`toybandit.validation`.
"""

from . import atlas, losses
from .data import PreferencePairs, population_pairs, sample_preferences
from .fit import fit_policy
from .minimise import LossMinimum, minimise_loss
from .objectives import (
    NGUYEN_2025,
    dpo_objective,
    expected_pair_loss,
    ipo_label_objective,
    ipo_objective,
    ipo_preference_objective,
    ipo_target_objective,
    logistic_objective,
    logratios,
    pair_weights,
)
from .optimal import (
    kl_divergence,
    log_optimal_policy,
    log_partition,
    optimal_policy,
    regularized_value,
)
from .preferences import (
    PREFERENCE_KINDS,
    PSI,
    bradley_terry,
    check_preference,
    from_upper_triangle,
    maximal_lottery,
    psi_optimal_policy,
    psi_scores,
    random_preference,
)

__all__ = [
    "NGUYEN_2025",
    "PREFERENCE_KINDS",
    "PSI",
    "LossMinimum",
    "PreferencePairs",
    "atlas",
    "bradley_terry",
    "check_preference",
    "dpo_objective",
    "expected_pair_loss",
    "fit_policy",
    "from_upper_triangle",
    "ipo_label_objective",
    "ipo_objective",
    "ipo_preference_objective",
    "ipo_target_objective",
    "kl_divergence",
    "log_optimal_policy",
    "log_partition",
    "logistic_objective",
    "logratios",
    "losses",
    "maximal_lottery",
    "minimise_loss",
    "optimal_policy",
    "pair_weights",
    "population_pairs",
    "psi_optimal_policy",
    "psi_scores",
    "random_preference",
    "regularized_value",
    "sample_preferences",
]
