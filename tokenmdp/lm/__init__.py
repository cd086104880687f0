"""A Hugging Face causal LM as a token MDP (Rafailov et al. 2024, secs. 4–5). Needs the ``lm`` extra.

Any ``transformers`` causal LM (PEFT-wrapped ones included) is scored exactly as its own
``model(...).logits`` say: the fast body + head path is used only where a probe has shown it to be
that computation (:func:`fast_path`). One job per module:

- :mod:`~tokenmdp.lm.model`: model facts, input checks, the probe (``vocab_size``, ``fast_path``),
  and ``tiny_gpt2``, the small random GPT-2 that tests, claims and the lab build from a config;
- :mod:`~tokenmdp.lm.scoring`: per-token log-probabilities, the Q/V view, implicit and implied
  per-token rewards (``token_logprobs``, ``q_values``, ``implicit_token_rewards``,
  ``implied_rewards``);
- :mod:`~tokenmdp.lm.preferences`: TRL-format preference batches and DPO/IPO losses;
- :mod:`~tokenmdp.lm.expand`: the model as an exact token tree, and beam search on the model;
- :mod:`~tokenmdp.lm.plot`: the credit-assignment figure (Fig. 1);
- :mod:`~tokenmdp.lm.lab`: a transformer trained with TRL on a tree's preferences, scored against the
  exact optimum (``python -m tokenmdp.lm.lab``; not imported here).

Names that would clash with the tabular :mod:`tokenmdp` functions of another signature carry the
object they act on: ``implicit_token_rewards`` (tabular ``implicit_rewards``),
``completion_logratios`` (``sequence_logratios``), ``model_beam_search`` (``beam_search``).
"""

from .expand import Expansion, expand_tree, model_beam_search, tree_policy
from .model import context_length, fast_path, tiny_gpt2, vocab_size
from .plot import plot_credit
from .preferences import PREFERENCE_LOSSES, completion_logratios, preference_batch, preference_loss
from .scoring import QView, implicit_token_rewards, implied_rewards, q_values, token_logprobs

__all__ = [
    "PREFERENCE_LOSSES",
    "Expansion",
    "QView",
    "completion_logratios",
    "context_length",
    "expand_tree",
    "fast_path",
    "implicit_token_rewards",
    "implied_rewards",
    "model_beam_search",
    "plot_credit",
    "preference_batch",
    "preference_loss",
    "q_values",
    "tiny_gpt2",
    "token_logprobs",
    "tree_policy",
    "vocab_size",
]
