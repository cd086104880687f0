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
                                       [--markdown | --write]
(--markdown prints the table of docs/performance.md with its setting line and summary, --write
replaces it there; the docs carry the full grid, so neither goes with --quick)
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

import _report
import torch

GRID = [(32_000, 8, 256), (32_000, 4, 1024), (128_000, 8, 256), (128_000, 4, 1024)]
QUICK = [(32_000, 8, 256)]
METHODS = ("TRL fused head", "`tokenmdp.lm`")
CONTEXT = ("naive log-softmax + gather", "TRL `selective_log_softmax`")
NAME, PAGE = "lm-logprobs", "docs/performance.md"
COMMAND = "python benchmarks/lm_logprobs.py --write"
HEADER = ("vocabulary", "batch × length", "method", "ms", "tokens/s", "peak MB", "throughput ×",
          "memory ×")  # fmt: skip
ALIGN = "rrlrrrrr"


def labels(grid=GRID, context: bool = True) -> list[tuple[str, str, str]]:
    """The first three cells of every row of the table, in order."""
    methods = METHODS + CONTEXT if context else METHODS
    return [(str(v), f"{b} × {n}", m) for v, b, n in grid for m in methods]


def summary(rows: list[tuple[str, ...]], err: float) -> str:
    """The sentences under the table, from its cells and the largest difference between methods
    (the docs' copy is checked against it)."""
    by = {(r[0], r[1], r[2]): r for r in rows}
    ours = [r for r in rows if r[2] == METHODS[1]]
    speed = [float(r[6]) for r in ours]
    memory = [float(by[(r[0], r[1], METHODS[0])][5]) / float(r[5]) for r in ours]
    return (
        f"All methods agree with the fused head to {err:.1e}. `tokenmdp.lm` runs at "
        f"{min(speed):.2f}–{max(speed):.2f}× the fused head's throughput with "
        f"1/{min(memory):.0f}–1/{max(memory):.0f} of its peak memory in every row."
    )


def markdown(rows: list[tuple[str, ...]], err: float, machine, threads: int, minutes: float) -> str:
    """The docs block: the setting line, the table and its summary."""
    detail = (
        f"{threads} torch thread{'s' if threads > 1 else ''}; Llama (2 layers, width 128), policy + "
        f"reference, random weights; ratios against TRL's fused head in the same setting; full "
        f"grid, best of 3, {minutes:.1f} min in all"
    )
    return "\n".join(
        [_report.setting_line(COMMAND, machine, detail), "", *_report.table(HEADER, rows, ALIGN),
         "", summary(rows, err)]
    )  # fmt: skip


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
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl.trainer.utils import add_fused_lm_head, selective_log_softmax

    from tokenmdp import lm

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

    methods = [(METHODS[0], fused), (METHODS[1], ours)]
    if context:
        methods += [(CONTEXT[0], naive), (CONTEXT[1], selective)]
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
    parser.add_argument("--markdown", action="store_true", help="print the docs table")
    parser.add_argument("--write", action="store_true", help="rewrite the table in " + PAGE)
    args = parser.parse_args(argv)
    if (args.markdown or args.write) and (args.quick or args.cuda or args.no_context):
        parser.error("the docs carry the full CPU grid: --markdown/--write go without --quick, "
                     "--cuda and --no-context")  # fmt: skip
    machine = _report.this_machine("transformers", "trl")
    started = time.perf_counter()
    log = sys.stderr if args.markdown else sys.stdout  # --markdown: only the block on stdout
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
    print(lines[0], file=log, flush=True)
    worst, table = 0.0, []
    for vocab, batch, length in QUICK if args.quick else GRID:
        rows, err = setting(
            vocab, batch, length, device, 1 if args.quick else 3, not args.no_context
        )
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
            table.append(tuple(c.strip() for c in line.strip("|").split(" | ")))
            print(line, file=log, flush=True)
    lines += ["", f"max |difference| to the fused head over all settings: {worst:.1e}"]
    print(lines[-1], file=log)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    if args.markdown or args.write:
        minutes = (time.perf_counter() - started) / 60
        body = markdown(table, worst, machine, args.threads, minutes)
        _report.emit(PAGE, NAME, body, markdown=args.markdown, write_page=args.write)


if __name__ == "__main__":
    main()
