"""Expanding a causal LM into a token tree: the library's level-wise batched forward against a
KV-cache prototype, in nodes/s, in one process.

``tokenmdp.lm.expand_tree`` scores every state of a level by running the model on the whole state
(prompt + path), batched per level. The prototype here runs the prompt once with ``use_cache=True``
and then, per level, only the new token of each child, with the parent's cache rows gathered
(``DynamicCache.reorder_cache``). It is a measurement, not library code: see docs/performance.md
for why the library does not take this route (the full-vocabulary head of every frontier state
dominates both, and a cached step is not bit-identical to the model's full forward, so no probe can
prove it).

Usage: python benchmarks/lm_expand.py [--threads 1] [--prompts 16 128] [--depth 4] [--top-k 8]
                                      [--markdown | --write]
(--markdown prints the table of docs/performance.md with its setting line, --write replaces it
there; both with the default settings)
"""

from __future__ import annotations

import argparse
import sys
import time

import _report
import torch

NAME, PAGE = "lm-expand", "docs/performance.md"
COMMAND = "python benchmarks/lm_expand.py --write"
HEADER = ("prompt", "nodes", "`expand_tree` nodes/s", "KV cache nodes/s", "×",
          "max \\|Δ log π_ref\\|")  # fmt: skip
ALIGN = "rrrrrr"
DEFAULTS = {"threads": 1, "prompts": [16, 128], "depth": 4, "top_k": 8, "vocab": 32_000}


def labels(prompts=(16, 128), depth: int = 4, top_k: int = 8) -> list[tuple[str, str]]:
    """The first two cells of every row of the table (prompt length, nodes of the full top-k
    tree), in order."""
    return [(str(p), str(sum(top_k**d for d in range(depth + 1)))) for p in prompts]


def markdown(rows: list[tuple[str, ...]], machine, args) -> str:
    """The docs block: the setting line and the table."""
    detail = (
        f"{args.threads} torch thread{'s' if args.threads > 1 else ''}; Llama (2 layers, width "
        f"128), vocabulary {args.vocab}, 1000 allowed tokens, depth {args.depth}, top-k "
        f"{args.top_k}; one timed run each"
    )
    return "\n".join(
        [_report.setting_line(COMMAND, machine, detail), "", *_report.table(HEADER, rows, ALIGN)]
    )


def kv_expand(model, prompt, allowed, depth: int, top_k: int):
    """log π_ref of the kept children, level by level, through the KV cache; [nodes − 1]."""
    out_logp = []
    with torch.no_grad():
        out = model(input_ids=prompt[None], use_cache=True)
        cache = out.past_key_values
        logp = torch.log_softmax(out.logits[:, -1].double(), -1)[:, allowed]
        for d in range(depth):
            keep = logp.topk(top_k, -1).indices.sort(-1).values  # children in increasing id order
            kept = logp.gather(-1, keep)
            out_logp.append((kept - kept.logsumexp(-1, keepdim=True)).reshape(-1))
            if d + 1 == depth:
                break
            cache.reorder_cache(torch.arange(logp.shape[0]).repeat_interleave(top_k))
            new = allowed[keep.reshape(-1)]
            position = torch.full((new.numel(), 1), prompt.numel() + d)
            out = model(input_ids=new[:, None], past_key_values=cache, position_ids=position,
                        use_cache=True)  # fmt: skip
            logp = torch.log_softmax(out.logits[:, -1].double(), -1)[:, allowed]
    return torch.cat(out_logp)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prompts", type=int, nargs="+", default=[16, 128])
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32_000)
    parser.add_argument("--markdown", action="store_true", help="print the docs table")
    parser.add_argument("--write", action="store_true", help="rewrite the table in " + PAGE)
    args = parser.parse_args(argv)
    docs = args.markdown or args.write
    if docs and any(getattr(args, k) != v for k, v in DEFAULTS.items()):
        parser.error("the docs carry the default settings: --markdown/--write take no other option")
    from transformers import LlamaConfig, LlamaForCausalLM

    from tokenmdp import lm

    machine = _report.this_machine("transformers")
    log = sys.stderr if args.markdown else sys.stdout  # --markdown: only the block on stdout
    torch.set_num_threads(args.threads)
    config = LlamaConfig(
        vocab_size=args.vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    allowed = torch.arange(2, 1002)
    print(f"CPU, {args.threads} thread(s); Llama (2 layers, width 128), vocabulary {args.vocab}, "
          f"1000 allowed tokens, depth {args.depth}, top-k {args.top_k}", file=log)  # fmt: skip
    print(
        "| prompt | nodes | expand_tree nodes/s | KV-cache nodes/s | × | max |Δ log π_ref| |",
        file=log,
    )
    print("|---:|---:|---:|---:|---:|---:|", file=log)
    table = []
    for p in args.prompts:
        prompt = torch.randint(2, args.vocab, (p,), generator=torch.Generator().manual_seed(p))
        lm.expand_tree(model, prompt, allowed, 2, top_k=args.top_k)  # warm up
        start = time.perf_counter()
        ex = lm.expand_tree(model, prompt, allowed, args.depth, top_k=args.top_k)
        t_lib = time.perf_counter() - start
        start = time.perf_counter()
        kv = kv_expand(model, prompt, allowed, args.depth, args.top_k)
        t_kv = time.perf_counter() - start
        diff = (kv.float() - ex.tree.log_ref[1:].float()).abs().max().item()
        n = ex.tree.n_nodes
        row = (str(p), str(n), f"{n / t_lib:.3g}", f"{n / t_kv:.3g}", f"{t_lib / t_kv:.2f}",
               f"{diff:.1e}")  # fmt: skip
        print("| " + " | ".join(row) + " |", file=log, flush=True)
        table.append(row)
    if docs:
        body = markdown(table, machine, args)
        _report.emit(PAGE, NAME, body, markdown=args.markdown, write_page=args.write)


if __name__ == "__main__":
    main()
