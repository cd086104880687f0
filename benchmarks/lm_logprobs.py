"""Per-token log-probabilities of a policy + reference pair: tokenmdp.lm against TRL's real path.

β (log π − log π_ref) on every token of a batch, for a policy and a reference model (Llama
architecture from a config, random weights), computed by
  - TRL fused head (the anchor): what TRL 1.16's ``DPOTrainer`` runs — the model patched with
    ``trl.trainer.utils.add_fused_lm_head`` and called as ``model(..., labels=ids,
    fused_lm_head=True).log_probs`` (tiled head, no full logits);
  - tokenmdp.lm.implicit_token_rewards: transformer body once, output head on chunks of positions,
    chosen logit − logsumexp per position;
  - naive: model(...).logits → float32 log_softmax → gather (context);
  - TRL selective_log_softmax on the model's full logits (TRL's path before the fused head; context).
Every (vocabulary, batch × length) setting of the grid gets one row per method with tokens/s (both
models' tokens) and peak memory; ratios are against TRL's fused head in the same process and setting.
Peak memory: torch.cuda.max_memory_allocated on CUDA; on CPU the resident-set high-water mark, reset
through /proc/self/clear_refs before each call (Linux), with glibc told to map every block over
64 kB on its own (MALLOC_MMAP_THRESHOLD_, set by re-executing the script) so that freed tensors leave
the resident set and one method's leftovers do not hide the next one's peak.

Threads: intra-op parallelism oversubscribed by other busy processes makes CPU times swing by 10×,
so the thread count is fixed (``--threads``, default 1) and printed; every method runs with it.

Usage: python benchmarks/lm_logprobs.py [--quick] [--threads 1] [--out table.md] [--cuda]
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import re
import sys
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tokenmdp import lm

GRID = [(32_000, 8, 256), (32_000, 4, 1024), (128_000, 8, 256), (128_000, 4, 1024)]
QUICK = [(32_000, 8, 256)]


def _rss(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{key}:\s+(\d+) kB", f.read()).group(1)) * 1024


def measure(fn, device: torch.device, repeat: int) -> tuple[float, float]:
    """(best seconds, peak bytes above the starting point) of ``fn()``."""
    fn()  # warm up
    best, peak = math.inf, 0.0
    for _ in range(repeat):
        gc.collect()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            base = _rss("VmRSS")
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
        used = (
            torch.cuda.max_memory_allocated() - base
            if device.type == "cuda"
            else _rss("VmHWM") - base
        )
        peak = max(peak, float(used))
        del out
    return best, peak


def setting(vocab: int, batch: int, length: int, device: torch.device, repeat: int, context: bool):
    """Rows (method, seconds, peak bytes) and the largest difference between methods."""
    from trl.trainer.utils import add_fused_lm_head, selective_log_softmax

    config = LlamaConfig(
        vocab_size=vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max(512, length),
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval().to(device)
    ref = LlamaForCausalLM(config).eval().to(device)
    for m in (model, ref):
        add_fused_lm_head(m)  # patches forward; without fused_lm_head=True it is the original
    ids = torch.randint(0, vocab, (batch, length), device=device)
    mask = torch.ones_like(ids)
    beta = 0.1

    def fused():
        with torch.no_grad():
            lp = [m(input_ids=ids, attention_mask=mask, labels=ids, fused_lm_head=True).log_probs
                  for m in (model, ref)]  # fmt: skip
        return beta * (lp[0] - lp[1])

    def ours():
        return lm.implicit_token_rewards(model, ref, ids, mask, mask, beta)

    def full_logits(m):
        with torch.no_grad():
            return m(input_ids=ids, attention_mask=mask).logits[:, :-1]

    def naive():
        lp = [
            torch.log_softmax(full_logits(m).float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            for m in (model, ref)
        ]
        return beta * (lp[0] - lp[1])

    def selective():
        lp = [selective_log_softmax(full_logits(m), ids[:, 1:]) for m in (model, ref)]
        return beta * (lp[0] - lp[1])

    methods = [("TRL fused head", fused), ("tokenmdp.lm", ours)]
    if context:
        methods += [("naive log-softmax + gather", naive), ("TRL selective_log_softmax", selective)]
    anchor = fused()
    # entry t of ours is token t + 1; the first token is no prediction (0 in both)
    err = max((fn() - anchor).abs().max().item() for _, fn in methods[1:])
    rows = [(name, *measure(fn, device, repeat)) for name, fn in methods]
    return rows, err


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one setting (32k, 8 × 256), 1 repeat")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--no-context", action="store_true", help="only the fused head and ours")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    parser.add_argument("--cuda", action="store_true")
    args = parser.parse_args(argv)
    if argv is None and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    where = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    )
    lines = [
        f"{where}; torch {torch.__version__}; Llama (2 layers, width 128), policy + reference, "
        "random weights; ratios against TRL's fused head in the same setting",
        "",
        "| vocabulary | batch × length | method | ms | tokens/s | peak MB | throughput × | memory × |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    print(lines[0], flush=True)
    worst = 0.0
    for vocab, batch, length in QUICK if args.quick else GRID:
        rows, err = setting(vocab, batch, length, device, 1 if args.quick else 3, not args.no_context)
        worst = max(worst, err)
        tokens = 2 * batch * (length - 1)
        t0, m0 = rows[0][1], rows[0][2]
        for name, seconds, peak in rows:
            line = (
                f"| {vocab} | {batch} × {length} | {name} | {seconds * 1e3:.1f} | "
                f"{tokens / seconds:.3g} | {peak / 2**20:.1f} | {t0 / seconds:.2f} | "
                f"{peak / max(m0, 1):.3f} |"
            )
            lines.append(line)
            print(line, flush=True)
    lines += ["", f"max |difference| to the fused head over all settings: {worst:.1e}"]
    print(lines[-1])
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
