#!/usr/bin/env python3
"""CPU benchmark of the training entry points of sqa-aot libraries.

  python3 bench/backward_bench.py --quick          # smoke run: tiny shapes, checked
  python3 bench/backward_bench.py                  # the issue-13 table (long; the lead runs it)
  python3 bench/backward_bench.py --configs mha:h16:d64:causal sqa:h16:d64 --shapes 1x4096x4096

For each configuration (written as in bench/attention_bench.py:
VARIANT[:hN][:gN][:dN][:dvN][:f32|f16|bf16][:causal]) one library is built
with sqa-aot and, per shape, timed through sqa_mlir.aot.AttentionLibrary:

  fwd     NAME_forward_lse (the forward that also writes lse)
  bwd     NAME_backward
  fwd+bwd their sum (medians)

GFLOP/s use FlashAttention's convention: forward 2*B*H*S*T*(D+Dv) (halved
for causal), backward 2.5x the forward. "% peak" is against bench/fma_peak.c
measured in the same run on the same thread count. Where torch is
importable, PyTorch's CPU scaled_dot_product_attention backward
(enable_gqa=True, same shapes, f32) is timed side by side; each variant's
fwd+bwd speed-up over the MHA row of the same head dim, mask and shape is
printed (the paper's training claim). "bwd extra MiB": how far the first
backward call raised the process's peak resident set above its size before
the call (dq, dk, dv included; Linux), e.g. with --shapes 1x32768x32768 to
show no S x T buffer exists. --quick also checks the gradients of
every row against the float64 reference.

Output: a markdown table on stdout and, with --json, one JSON record per row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(BENCH_DIR), "python"))
sys.path.insert(0, BENCH_DIR)

import numpy as np  # noqa: E402

import attention_bench as AB  # noqa: E402  (config parsing, FLOPs)
import harness  # noqa: E402  (compiler, FMA peak, shapes)
from sqa_mlir import aot, reference  # noqa: E402

DEFAULT_CONFIGS = [f"{v}:h16{g}:d{d}{c}" for d in (64, 128) for c in ("", ":causal")
                   for v, g in (("mha", ""), ("gqa", ":g4"), ("mqa", ""), ("sqa", ""),
                                ("ssqa", ""), ("xsqa", ""))]
DEFAULT_SHAPES = [(1, 4096, 4096)]
QUICK_CONFIGS = ["mha:h4:d16", "gqa:h4:g2:d16:causal", "sqa:h4:d16", "xsqa:h4:d16:causal",
                 "rsqa:h4:d16"]
QUICK_SHAPES = [(1, 70, 53)]


def torch_backward(cfg, shape):
    """PyTorch's CPU SDPA with enable_gqa on the shape: (forward, forward +
    backward) callables, or None."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    B, S, T = shape
    hq, hkv = cfg.q_kv
    if hkv > hq:  # reverse SQA has no SDPA equivalent
        return None
    q = torch.randn(B, hq, S, cfg.head_dim, requires_grad=True)
    k = torch.randn(B, hkv, T, cfg.head_dim, requires_grad=True)
    v = torch.randn(B, hkv, T, cfg.dv, requires_grad=True)
    kw = dict(is_causal=cfg.causal, enable_gqa=hq != hkv)
    holder = {}

    def fwd():
        holder["out"] = F.scaled_dot_product_attention(q, k, v, **kw)

    def bwd():
        fwd()
        holder["out"].backward(torch.ones_like(holder["out"]))

    try:
        bwd()
    except (RuntimeError, TypeError) as e:  # e.g. an old torch without enable_gqa
        print(f"note: torch SDPA failed: {e}", file=sys.stderr)
        return None
    return fwd, bwd


def check(lib, cfg, q, k, v, d_out, out, lse, grads):
    kw = dict(causal=cfg.causal, alignment="bottom_right")
    f64 = [reference.from_storage(a, cfg.dtype) for a in (q, k, v, d_out)]
    want = reference.attention_backward(*f64[:3], f64[3], **kw)
    worst = 0.0
    for got, ref in zip(grads, want):
        err, tol, reasons = reference.compare(reference.from_storage(got, cfg.dtype), ref,
                                              1e-3, 1e-2)
        if reasons:
            raise SystemExit(f"gradient check failed for {cfg.label}: {reasons}")
        worst = max(worst, err)
    return worst


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sqa-aot", default=os.path.join(os.path.dirname(BENCH_DIR),
                                                     "build", "bin", "sqa-aot"))
    p.add_argument("--configs", nargs="*")
    p.add_argument("--shapes", nargs="*", type=lambda s: tuple(int(x) for x in s.split("x")))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--peak-seconds", type=float, default=0.3)
    p.add_argument("--settle", type=float, default=0.25,
                   help="seconds to wait before each timed call, so the previous "
                        "call's spinning OpenMP workers (ours or PyTorch's) are idle "
                        "(default 0.25; 0: back to back)")
    p.add_argument("--json")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    configs = args.configs or (QUICK_CONFIGS if args.quick else DEFAULT_CONFIGS)
    shapes = args.shapes or (QUICK_SHAPES if args.quick else DEFAULT_SHAPES)
    if args.quick:
        args.warmup, args.reps, args.settle = 0, 1, 0.0

    workdir = tempfile.mkdtemp(prefix="sqa-bwd-bench-")
    cc = harness.find_cc(None)
    exe, _ = harness.compile_fma_peak(cc, workdir) if cc else (None, "")
    peak = harness.measure_peak(exe, args.threads, args.peak_seconds) if exe else None
    peak_gflops = peak["gflops"] if peak else None
    print(f"# backward benchmark, {args.threads} threads, FMA peak "
          f"{peak_gflops:.1f} GFLOP/s" if peak_gflops else "# no FMA peak measured")
    print("| config | BxSxT | fwd ms | bwd ms | fwd+bwd ms | bwd GFLOP/s | bwd % peak "
          "| torch bwd ms | vs torch | fwd+bwd vs MHA | bwd extra MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")

    rng = np.random.default_rng(0)
    records, mha_time = [], {}
    for text in configs:
        cfg, _ = AB.parse_case(text)
        name = cfg.libname("bwd")
        path = aot.build_library(args.sqa_aot, workdir, name=name, **cfg.aot_config())
        lib = aot.AttentionLibrary(path, name, cfg.dtype)
        hq, hkv = cfg.q_kv
        for shape in shapes:
            B, S, T = shape
            h = max(hq, hkv)
            q, k, v, d_out = (reference.to_storage(rng.standard_normal(s, dtype=np.float32),
                                                   cfg.dtype)
                              for s in ((B, hq, S, cfg.head_dim), (B, hkv, T, cfg.head_dim),
                                        (B, hkv, T, cfg.dv), (B, h, S, cfg.dv)))
            state = {}

            def fwd():
                state["out"], state["lse"] = lib.forward_lse(q, k, v)

            fwd()

            def bwd():
                state["grads"] = lib.backward(q, k, v, state["out"], d_out, state["lse"])

            # The first backward call alone, for its memory beyond the inputs.
            extra = harness.extra_peak_rss(bwd)
            # Ours and PyTorch's calls alternate, each after a pause (--settle)
            # so neither pays for the other's spinning OpenMP workers.
            fns = [fwd, bwd]
            torch_fns = torch_backward(cfg, shape)
            if torch_fns:
                fns += torch_fns
            ts = [t["median_s"] for t in
                  harness.time_interleaved(fns, args.warmup, args.reps, args.settle)]
            t_fwd, t_bwd = ts[:2]
            torch_t = (ts[2], max(ts[3] - ts[2], 0.0)) if torch_fns else None
            if args.quick:
                check(lib, cfg, q, k, v, d_out, state["out"], state["lse"], state["grads"])
            fl = 2.5 * AB.flops(cfg, shape)
            gflops = fl / t_bwd / 1e9
            key = (cfg.head_dim, cfg.causal, shape)
            if cfg.variant == "mha":
                mha_time[key] = t_fwd + t_bwd
            speedup = mha_time.get(key)
            rec = dict(config=text, shape=shape, fwd_s=t_fwd, bwd_s=t_bwd,
                       bwd_gflops=gflops, bwd_extra_peak_bytes=extra,
                       bwd_peak_pct=100 * gflops / peak_gflops if peak_gflops else None,
                       torch_fwd_s=torch_t[0] if torch_t else None,
                       torch_bwd_s=torch_t[1] if torch_t else None,
                       fwdbwd_speedup_vs_mha=(speedup / (t_fwd + t_bwd)) if speedup else None)
            records.append(rec)
            print(f"| {text} | {harness.shape_str(shape)} | {t_fwd * 1e3:.2f} | {t_bwd * 1e3:.2f} "
                  f"| {(t_fwd + t_bwd) * 1e3:.2f} | {gflops:.1f} | "
                  + (f"{rec['bwd_peak_pct']:.1f}%" if peak_gflops else "-") + " | "
                  + (f"{torch_t[1] * 1e3:.2f} | {torch_t[1] / t_bwd:.2f}x" if torch_t
                     else "- | -") + " | "
                  + (f"{rec['fwdbwd_speedup_vs_mha']:.2f}x" if speedup else "-") + " | "
                  + (f"{extra / 2**20:.1f}" if extra is not None else "-") + " |",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            for rec in records:
                f.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
