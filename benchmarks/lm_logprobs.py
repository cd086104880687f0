"""Per-token implicit rewards of a real LM pair: tokenmdp.lm against two baselines, in one process.

β (log π − log π_ref) on every token of a batch, for a policy and a reference model (Llama
architecture from a config, random weights, vocabulary 32 000 by default), computed by
  - tokenmdp.lm.implicit_token_rewards: transformer body once, output head on chunks of positions,
    chosen logit − logsumexp per position (no vocabulary-sized log-softmax);
  - naive: model(...).logits → float32 log_softmax → gather;
  - TRL: model(...).logits → trl.trainer.utils.selective_log_softmax (TRL's own log-prob path).
Reports tokens/s and peak memory per method; ratios are against tokenmdp.lm in the same run. Peak
memory: torch.cuda.max_memory_allocated on CUDA; on CPU the resident-set high-water mark, reset
through /proc/self/clear_refs before each method (Linux).

Usage: python benchmarks/lm_logprobs.py [--vocab 32000] [--batch 8] [--length 256] [--cuda]
"""

from __future__ import annotations

import argparse
import math
import re
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tokenmdp import lm


def _rss(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{key}:\s+(\d+) kB", f.read()).group(1)) * 1024


def measure(fn, device: torch.device, repeat: int = 3) -> tuple[float, float]:
    """(best seconds, peak bytes above the starting point) of ``fn()``."""
    fn()  # warm up
    best, peak = math.inf, 0.0
    for _ in range(repeat):
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab", type=int, default=32_000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--cuda", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    from trl.trainer.utils import selective_log_softmax

    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max(512, args.length),
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval().to(device)
    ref = LlamaForCausalLM(config).eval().to(device)
    ids = torch.randint(0, args.vocab, (args.batch, args.length), device=device)
    mask = torch.ones_like(ids)
    beta = 0.1

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

    def trl():
        lp = [selective_log_softmax(full_logits(m), ids[:, 1:]) for m in (model, ref)]
        return beta * (lp[0] - lp[1])

    a, b, c = ours(), naive(), trl()
    err = max((a - b).abs().max().item(), (a - c).abs().max().item())
    tokens = 2 * args.batch * (args.length - 1)  # two models
    rows = [("tokenmdp.lm", *measure(ours, device)), ("naive", *measure(naive, device))]
    rows.append(("TRL selective_log_softmax", *measure(trl, device)))
    t0, m0 = rows[0][1], rows[0][2]
    where = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(
        f"{where}; Llama, vocabulary {args.vocab}, batch {args.batch} × {args.length} tokens, "
        f"policy + reference; max |difference| between methods {err:.1e}"
    )
    print(f"{'method':>26} {'ms':>9} {'tokens/s':>10} {'peak MB':>9} {'time ×':>7} {'memory ×':>9}")
    for name, seconds, peak in rows:
        print(
            f"{name:>26} {seconds * 1e3:>9.1f} {tokens / seconds:>10.3g} {peak / 2**20:>9.1f} "
            f"{seconds / t0:>7.2f} {peak / max(m0, 1):>9.2f}"
        )


if __name__ == "__main__":
    main()
