"""The real-LM quantities themselves, anchored: ``tokenmdp.lm``'s log-probabilities and expanded
trees against plain ``transformers`` forward passes, one unpadded sequence at a time.

The mirrored tree claims of :mod:`proofs_check.lm_claims` take the LM's tree as given; these two
claims check that the tree and the per-token log-probs are the model's (a one-token shift, an
ignored attention mask or a wrong renormalisation fails here). Needs the ``lm`` extra.
"""

from __future__ import annotations

import torch

from tokenmdp import lm as tlm

from .lm_claims import model
from .registry import claim, maxabs

SRC = "Rafailov et al. 2024"


def _plain_logprobs(m, ids: torch.Tensor) -> torch.Tensor:
    """log p(x_{t+1} | x_{≤t}) for one unpadded sequence: model(ids).logits, log_softmax, gather."""
    with torch.no_grad():
        logits = m(input_ids=ids[None].to(m.device)).logits[0].double()
    return logits.log_softmax(-1)[:-1].gather(-1, ids[1:, None].to(logits.device)).squeeze(-1).cpu()


def _padded_batch(g: torch.Generator, device=None):
    m = model()
    n_vocab = tlm.vocab_size(m)
    rows = []
    for _ in range(3):
        length = int(torch.randint(2, 10, (), generator=g))
        rows.append(torch.randint(2, n_vocab, (length,), generator=g))
    width = max(len(r) for r in rows)
    left = bool(torch.rand((), generator=g).item() < 0.5)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        cols = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, cols], mask[i, cols] = r, 1
    return rows, ids, mask, left


@claim(
    "rafailov2024.lm.token-logprobs",
    SRC,
    ("eq. (5)", "unnumbered: sec. 4.1, π = softmax(l_θ/β) with Q* = l_θ"),
    "tokenmdp.lm.token_logprobs on a left- or right-padded batch equals each sequence's own "
    "log_softmax(logits) at the next token (the LM's π(a_t|s_t) of eq. (5))",
    draw=_padded_batch,
    tolerance=1e-9,
    why="a float64 model: two forward passes of the same weights differ by rounding (~1e-13)",
    reference="a plain transformers forward pass of each unpadded sequence alone, log_softmax, gather",
    tags=("lm",),
    instances=10,
)
def _(inst) -> float:
    rows, ids, mask, left = inst
    m = model()
    got = (
        tlm.token_logprobs(m, ids, mask).cpu().double()
    )  # a float32 checkpoint: compared in float64
    width = ids.shape[1]
    worst = 0.0
    for i, r in enumerate(rows):
        start = width - len(r) if left else 0
        want = _plain_logprobs(m, r)
        worst = max(worst, maxabs(f"row {i}", got[i, start : start + len(r) - 1], want))
    return worst


def _expansion(g: torch.Generator, device=None):
    m = model()
    n_vocab = tlm.vocab_size(m)
    eos = getattr(m.config, "eos_token_id", None)
    eos = eos if isinstance(eos, int) and 0 <= eos < n_vocab else None
    prompt = torch.randint(2, n_vocab, (int(torch.randint(1, 5, (), generator=g)),), generator=g)
    tokens = (
        torch.randperm(n_vocab - 2, generator=g)[: int(torch.randint(3, 6, (), generator=g))] + 2
    )
    use_eos = eos is not None and torch.rand((), generator=g).item() < 0.5
    if use_eos and eos is not None:
        tokens[0] = eos
    top_k = 2 if torch.rand((), generator=g).item() < 0.3 else None
    ex = tlm.expand_tree(m, prompt, tokens, 2, eos=eos if use_eos else None, top_k=top_k)
    return ex.tree, prompt


@claim(
    "rafailov2024.lm.tree-reference",
    SRC,
    ("eq. (5)",),
    "an expanded tree's π_ref(a|s) is the model's next-token probability at the state's full "
    "prefix, restricted to the kept children and renormalised",
    draw=_expansion,
    tolerance=1e-9,
    why="a float64 model: two forward passes of the same weights differ by rounding (~1e-13)",
    reference="a plain transformers forward pass per state on its whole prefix, log_softmax",
    tags=("lm",),
    instances=5,
)
def _(inst) -> float:
    tree, prompt = inst
    m = model()
    kids: dict[int, list[int]] = {}
    for n, p in enumerate(tree.parent.tolist()):
        if p >= 0:
            kids.setdefault(p, []).append(n)
    worst = 0.0
    for s, children in kids.items():
        path, n = [], s
        while n > 0:
            path.append(int(tree.token[n]))
            n = int(tree.parent[n])
        ids = torch.cat([prompt, torch.tensor(path[::-1], dtype=torch.long)])
        with torch.no_grad():
            logits = m(input_ids=ids[None].to(m.device)).logits[0, -1].double().cpu()
        logp = logits.log_softmax(-1)[tree.token[children]]
        want = logp - torch.logsumexp(logp, 0)
        worst = max(worst, maxabs(f"log π_ref at state {s}", tree.log_ref[children].double(), want))
    return worst
