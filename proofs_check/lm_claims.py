"""The tree claims of Rafailov et al. 2024 again, on trees expanded from a real causal LM.

Instances: a prompt of 1–4 random ids, 3–5 allowed tokens (sometimes with EOS), depth 2–3, sometimes
top-k pruning, expanded by :func:`tokenmdp.lm.expand_tree`; random rewards and β on top. The model
is a tiny random GPT-2 (float64, built from a config: no download) unless ``proofs-check --model
PATH`` names a local checkpoint. Needs the ``lm`` extra (``transformers``); without it these claims
are not registered.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from tokenmdp import lm as tlm
from tokenmdp.lm.model import CausalLM

from .registry import REGISTRY, Outcome, claim, register
from .worlds import TreeWorld

_STATE: dict[str, object] = {"model": None, "ref": None, "source": "tiny random GPT-2"}

MIRRORED = (
    "rafailov2024.eq5-7.bellman",
    "rafailov2024.lemma1.bijection",
    "rafailov2024.sec41.telescoping",
    "rafailov2024.eq8.policy-preference",
    "rafailov2024.theorem1.shaping",
    "rafailov2024.theorem1.terminal-potential",
    "rafailov2024.eq10-11.advantage",
    "rafailov2024.eq13.printed",
    "rafailov2024.eq13.corrected",
    "rafailov2024.sec52.beam",
    "rafailov2024.eq14.expected-implicit",
)


def tiny_model(seed: int = 0, vocab_size: int = 64) -> CausalLM:
    """A 2-layer GPT-2 with a ``vocab_size``-token vocabulary and random weights, in float64
    (:func:`tokenmdp.lm.tiny_gpt2` with its defaults)."""
    return tlm.tiny_gpt2(vocab_size, seed=seed, dtype=torch.float64)


def load_checkpoint(path: str) -> CausalLM:
    """The causal LM saved at a local directory ``path``, in its stored precision.

    Raises:
        ValueError: ``path`` is not a directory holding a ``config.json`` (one line, no hub
            lookup).
    """
    import os

    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(f"--model {path}: not a local checkpoint directory (no config.json there)")
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()


def set_model(path: str | None = None, device: str = "cpu") -> str:
    """Use the causal LM at a local ``path`` (or the tiny random one) for the ``.lm`` claims;
    returns a description of it.

    The claims are exact identities with float64 tolerances, so a checkpoint is cast to float64
    (a float32 model's own rounding, 1e-7 relative, would otherwise show as a mismatch). The
    reference model of the text claim must differ from the policy (else every log-ratio is 0 and
    the claim cannot fail): a tiny random GPT-2 with the checkpoint's vocabulary.
    """
    if path is None:
        model, ref, source = tiny_model(), tiny_model(seed=1), "tiny random GPT-2 (float64)"
    else:
        model = load_checkpoint(path)
        stored = next(model.parameters()).dtype
        model = model.double()
        ref = tiny_model(seed=1, vocab_size=tlm.vocab_size(model))
        source = f"{path} (stored {stored}, checked in float64; reference: a tiny random GPT-2)"
    _STATE.update(model=model.to(device), ref=ref.to(device), source=source)
    return source


def model() -> CausalLM:
    if _STATE["model"] is None:
        set_model()
    return _STATE["model"]


def lm_tree_world(g: torch.Generator, device: torch.device | str | None = None) -> TreeWorld:
    m = model()
    n_vocab = tlm.vocab_size(m)
    eos = getattr(m.config, "eos_token_id", None)
    eos = eos if isinstance(eos, int) and 0 <= eos < n_vocab else None
    prompt = torch.randint(2, n_vocab, (int(torch.randint(1, 5, (), generator=g)),), generator=g)
    n_tokens = int(torch.randint(3, 6, (), generator=g))
    tokens = torch.randperm(n_vocab - 2, generator=g)[:n_tokens] + 2
    use_eos = eos is not None and torch.rand((), generator=g).item() < 0.5
    if use_eos and eos is not None:
        tokens[0] = eos
    top_k = 2 if torch.rand((), generator=g).item() < 0.3 else None
    depth = int(torch.randint(2, 4, (), generator=g))
    ex = tlm.expand_tree(m, prompt, tokens, depth, eos=eos if use_eos else None, top_k=top_k)
    tree = ex.tree.to(torch.device("cpu") if device is None else device)
    reward = 3 * (2 * torch.rand(tree.n_nodes, generator=g, dtype=torch.float64) - 1)
    reward[0] = 0.0
    beta = math.exp(math.log(0.1) + math.log(100) * torch.rand((), generator=g).item())
    return TreeWorld(tree, reward.to(tree.device), beta, g)


for _id in MIRRORED:
    _base = REGISTRY[_id]
    register(
        dataclasses.replace(
            _base,
            id=f"{_id}.lm",
            statement=f"{_base.statement} — on a real LM's tree",
            draw=lm_tree_world,
            tags=(*_base.tags, "lm"),
            instances=10,
        )
    )


def _text_world(g: torch.Generator, device=None):
    m = model()
    n_vocab = tlm.vocab_size(m)
    length = int(torch.randint(4, 12, (), generator=g))
    ids = torch.randint(2, n_vocab, (3, length), generator=g)
    completion = torch.zeros_like(ids)
    completion[:, int(torch.randint(1, length - 1, (), generator=g)) :] = 1
    beta = math.exp(math.log(0.1) + math.log(100) * torch.rand((), generator=g).item())
    return ids, completion, beta


@claim(
    "rafailov2024.sec41.lm-text",
    "Rafailov et al. 2024",
    ("unnumbered: sec. 4.1, Σ r = V*(s₀) + Σ β log π*/π_ref", "Lemma 1", "eq. (5)"),
    "on real text, the reward implied by reading the LM as Q* = β·logits telescopes: "
    "Σ_t r_t = V(s_first) + Σ_t β log π/π_ref, π_ref a second LM",
    draw=_text_world,
    tolerance=1e-9,
    why="float64 model; sums of ≤ 12 terms of size ≤ 10³",
    expected=Outcome.IDENTITY,
    reference="by construction (the sum telescopes for any logits); the log-probs themselves are "
    "anchored by rafailov2024.lm.token-logprobs",
    tags=("lm",),
    instances=10,
)
def _(inst) -> float:
    ids, completion, beta = inst
    policy, ref = model(), _reference()
    mask = torch.ones_like(ids)
    r = tlm.implied_rewards(policy, ref, ids, mask, completion, beta)
    implicit = tlm.implicit_token_rewards(policy, ref, ids, mask, completion, beta)
    first = int(completion[0].nonzero()[0]) - 1  # the state before the first completion token
    v = tlm.q_values(policy, ids, mask, beta).v[:, first]
    return (r.sum(-1) - v - implicit.sum(-1)).abs().max().item()


def _reference():
    model()  # makes sure a model (and its reference) is set
    return _STATE["ref"]
