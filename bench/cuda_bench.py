#!/usr/bin/env python3
"""GPU benchmark of ``sqa-aot --target cuda`` attention libraries next to
PyTorch's ``scaled_dot_product_attention``.

  python3 bench/cuda_bench.py --dry-run                 # the plan; needs neither torch nor a GPU
  python3 bench/cuda_bench.py --prepare build/cuda-libs # build every library (machine with sqa-aot)
  python3 bench/cuda_bench.py --lib-dir build/cuda-libs # run with prebuilt libraries (GPU machine)
  python3 bench/cuda_bench.py                           # build with --sqa-aot and run (both on one machine)
  python3 bench/cuda_bench.py --quick                   # a small subset
  python3 bench/cuda_bench.py --f16                     # f16 as well as bf16

The shapes of the issue: B * S = 16384 tokens, H * D = 2048 (D = 64 -> H = 32,
D = 128 -> H = 16), S = 512 ... 16k (B = 32 ... 1), with and without a causal
mask, bf16 (f16 with --f16), BHSD. Head configurations per D, from the
baseline H: MHA H/H, GQA H/(H/4), MQA H/1, SQA (H/2)/(H/4), sSQA (H/2)/(H/2),
xSQA (H/4)/(H/4) -- for D = 128: 16/16, 16/4, 16/1, 8/4, 8/8, 4/4; for
D = 64: 32/32, 32/8, 32/1, 16/8, 16/16, 8/8.

Per case both implementations run on the same torch tensors on the current
torch stream: ours through ctypes (``NAME_forward(q.data_ptr(), ...,
stream)``), PyTorch as ``F.scaled_dot_product_attention(q, k, v,
is_causal=causal, enable_gqa=Hq != Hkv)``. Causal libraries are built with
``--causal top-left`` (PyTorch's is_causal; the same as bottom-right here,
S = T). Timing: CUDA events around a batch of back-to-back calls (so the
ctypes call overhead overlaps the GPU work), batch size chosen to last at
least --min-sample-ms, --warmup untimed calls first, the median of --repeats
samples. FLOPs: FlashAttention-2's count, 4 * B * Hq * S * T * D, halved for
causal. Where Hq != Hkv, PyTorch is also timed with K/V expanded to Hq heads
beforehand (``repeat_interleave`` outside the timed region), in case
enable_gqa sends it to a slower kernel. Each case's output is compared with
PyTorch's (|ours - torch| <= 2 * (atol + rtol * max|torch|), reference.TOLERANCES'
tolerances for the dtype).

Results: bench/results/cuda-<date>.md (headline, then every case) and .json.
Headline targets: SQA speed-up = time(MHA, H query heads) / time(H/2 query
heads) >= 1.9; bf16, D = 128, S = 16k, non-causal: ours >= 60% of PyTorch's
TFLOP/s.

Status: written against the C ABI of the CUDA target before it existed;
--dry-run and --prepare run on the development machine (no GPU), the timing
path has not been run on a GPU yet (compiles, unmeasured).
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(REPO, "python"))

sys.path.insert(0, BENCH_DIR)
import harness  # noqa: E402  (the shared harness: git state, tables, result files)
from sqa_mlir import aot, reference  # noqa: E402
from sqa_mlir.reference import TOLERANCES  # noqa: E402

TOKENS = 16384
MODEL_WIDTH = 2048                       # H * D
LENGTHS = (512, 1024, 2048, 4096, 8192, 16384)
HEAD_DIMS = (64, 128)
VARIANTS = ("mha", "gqa", "mqa", "sqa", "ssqa", "xsqa")
QUICK = {"head_dims": (128,), "variants": ("mha", "gqa", "sqa", "ssqa"),
         "lengths": (1024, 4096)}
LIB_PREFIX = "sqabench"
DEFAULT_CHIP = "sm_90"
# For --dry-run's estimate only.
ASSUMED_TFLOPS = 300.0
SQA_TARGET = 1.9
TORCH_PERCENT_TARGET = 60.0
PRETTY = harness.PRETTY
TORCH_DTYPES = {"bf16": "bfloat16", "f16": "float16"}
FLOP_CONVENTION = ("FLOPs = 4*B*Hq*S*T*D (FlashAttention-2's count: Q.K^T and P.V), "
                   "halved for a causal mask; softmax not counted")


# ---------------------------------------------------------------------------
# Plan
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    dtype: str
    head_dim: int
    variant: str
    causal: bool
    seq_len: int
    tokens: int = TOKENS
    width: int = MODEL_WIDTH

    @property
    def heads(self) -> int:
        return self.width // self.head_dim

    @property
    def groups(self) -> Optional[int]:
        return self.heads // 4 if self.variant == "gqa" else None

    @property
    def q_kv(self):
        return reference.variant_heads(self.variant, self.heads, self.groups)

    @property
    def batch(self) -> int:
        return max(1, self.tokens // self.seq_len)

    @property
    def label(self) -> str:
        hq, hkv = self.q_kv
        return f"{PRETTY[self.variant]} {hq}/{hkv}"

    @property
    def mask(self) -> str:
        return "causal" if self.causal else "none"

    @property
    def flops(self) -> float:
        hq, _ = self.q_kv
        f = 4.0 * self.batch * hq * self.seq_len * self.seq_len * self.head_dim
        return f / 2 if self.causal else f

    def lib_config(self, chip: str) -> dict:
        return dict(variant=self.variant, heads=self.heads, groups=self.groups,
                    head_dim=self.head_dim, dtype=self.dtype,
                    causal="top-left" if self.causal else None, layout="bhsd",
                    target="cuda", chip=chip)

    def lib_name(self, chip: str) -> str:
        return aot.library_name(LIB_PREFIX, **self.lib_config(chip))

    def group_key(self):
        """Cases compared with the same MHA case."""
        return (self.dtype, self.head_dim, self.causal, self.seq_len)

    def describe(self) -> str:
        return (f"{self.dtype} D={self.head_dim} {self.label:10s} {self.mask:6s} "
                f"B={self.batch} S={self.seq_len}")


def parse_lengths(text: str):
    out = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        mult = 1024 if item.endswith("k") else 1
        out.append(int(item.rstrip("k")) * mult)
    if not out:
        raise argparse.ArgumentTypeError("no lengths")
    return tuple(out)


def parse_list(choices):
    def parse(text: str):
        items = tuple(t.strip().lower() for t in text.split(",") if t.strip())
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {choices}")
        return items
    return parse


def make_plan(args) -> List[Case]:
    dtypes = list(args.dtypes)
    if args.f16 and "f16" not in dtypes:
        dtypes.append("f16")
    head_dims = args.head_dims or (QUICK["head_dims"] if args.quick else HEAD_DIMS)
    variants = args.variants or (QUICK["variants"] if args.quick else VARIANTS)
    lengths = args.lengths or (QUICK["lengths"] if args.quick else LENGTHS)
    if "mha" not in variants:
        variants = ("mha",) + tuple(variants)   # the baseline of every speed-up
    masks = [m == "causal" for m in args.masks]
    cases = []
    for dtype in dtypes:
        for d in head_dims:
            if args.width % d:
                raise SystemExit(f"error: head dim {d} does not divide the width {args.width}")
            for causal in masks:
                for s in lengths:
                    for v in variants:
                        cases.append(Case(dtype, d, v, causal, s, args.tokens, args.width))
    return cases


def estimate_seconds(cases: List[Case], args) -> float:
    total = 0.0
    for c in cases:
        t = c.flops / (ASSUMED_TFLOPS * 1e12)
        sample = max(t, args.min_sample_ms / 1e3)
        per_impl = (args.warmup + 1) * t + args.repeats * sample
        impls = 1 if args.no_torch else (3 if c.q_kv[0] != c.q_kv[1] else 2)
        total += per_impl * impls + 0.05      # allocation, check
    return total


# ---------------------------------------------------------------------------
# Libraries
# ---------------------------------------------------------------------------

def library_path(directory: str, name: str) -> str:
    return os.path.join(directory, f"lib{name}.so")


def prepare(cases: List[Case], args) -> int:
    """Build every library of the plan into args.prepare."""
    os.makedirs(args.prepare, exist_ok=True)
    seen = {}
    for c in cases:
        seen.setdefault(c.lib_name(args.chip), c)
    failures = 0
    t0 = time.perf_counter()
    for i, (name, c) in enumerate(sorted(seen.items())):
        path = library_path(args.prepare, name)
        if args.reuse and os.path.exists(path) and \
                os.path.getmtime(path) > os.path.getmtime(args.sqa_aot):
            print(f"[{i + 1}/{len(seen)}] {name}: up to date", flush=True)
            continue
        try:
            aot.build_library(args.sqa_aot, args.prepare, name=name, **c.lib_config(args.chip))
            print(f"[{i + 1}/{len(seen)}] built {path}", flush=True)
        except (aot.AOTError, OSError) as e:
            failures += 1
            print(f"[{i + 1}/{len(seen)}] FAILED {name}: {e}", flush=True)
    print(f"prepared {len(seen) - failures} of {len(seen)} libraries into {args.prepare} "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)
    return 1 if failures else 0


class Libraries:
    """Loaded libraries by name: prebuilt (--lib-dir) or built on demand."""

    def __init__(self, args, build_dir: Optional[str]):
        self.args = args
        self.dir = args.lib_dir or build_dir
        self.build = args.lib_dir is None
        self.libs: Dict[str, aot.CUDAAttentionLibrary] = {}

    def get(self, c: Case) -> aot.CUDAAttentionLibrary:
        name = c.lib_name(self.args.chip)
        if name in self.libs:
            return self.libs[name]
        path = library_path(self.dir, name)
        if self.build and not os.path.exists(path):
            aot.build_library(self.args.sqa_aot, self.dir, name=name,
                              **c.lib_config(self.args.chip))
        if not os.path.exists(path):
            raise FileNotFoundError(f"no prebuilt library {path} (run --prepare {self.dir} "
                                    "on a machine with sqa-aot)")
        lib = aot.CUDAAttentionLibrary(path, name, c.dtype)
        self.libs[name] = lib
        return lib


# ---------------------------------------------------------------------------
# Timing (torch)
# ---------------------------------------------------------------------------

class CallError(RuntimeError):
    pass


def time_gpu(torch, fn, warmup: int, repeats: int, min_sample_ms: float) -> dict:
    """Median per-call milliseconds of fn() measured with CUDA events on the
    current stream, over `repeats` samples of `inner` back-to-back calls."""
    for _ in range(max(1, warmup)):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    single = max(start.elapsed_time(end), 1e-4)
    inner = max(1, min(1000, math.ceil(min_sample_ms / single)))
    times = []
    for _ in range(repeats):
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / inner)
    return {"median_ms": statistics.median(times), "min_ms": min(times),
            "max_ms": max(times), "inner": inner, "samples_ms": times,
            "single_ms": single}


def run_case(torch, F, c: Case, lib, args, gqa_kw: bool) -> dict:
    hq, hkv = c.q_kv
    B, S, D = c.batch, c.seq_len, c.head_dim
    dt = getattr(torch, TORCH_DTYPES[c.dtype])
    dev = torch.device("cuda", args.device)
    gen = torch.Generator(device=dev)
    gen.manual_seed(args.seed)
    q = torch.randn(B, hq, S, D, device=dev, dtype=dt, generator=gen)
    k = torch.randn(B, hkv, S, D, device=dev, dtype=dt, generator=gen)
    v = torch.randn(B, hkv, S, D, device=dev, dtype=dt, generator=gen)
    out = torch.full((B, max(hq, hkv), S, D), float("nan"), device=dev, dtype=dt)
    result = {}
    stream = torch.cuda.current_stream(dev).cuda_stream

    def ours():
        status = lib.forward_raw(q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(),
                                 B, S, S, stream)
        if status != 0:
            raise CallError(f"status {status} ({aot.CUDA_STATUS_NAMES.get(status, '?')}): "
                            f"{lib.error_string(status)}; last_error: {lib.last_error()}")

    result["ours"] = time_gpu(torch, ours, args.warmup, args.repeats, args.min_sample_ms)
    torch.cuda.synchronize()
    if args.no_torch:
        return result

    gqa = hq != hkv
    kw = {"is_causal": c.causal}
    if gqa and gqa_kw:
        kw["enable_gqa"] = True

    k_t, v_t = k, v
    if gqa and not gqa_kw:
        # Old PyTorch without enable_gqa: expand outside the timed region.
        k_t = k.repeat_interleave(hq // hkv, dim=1)
        v_t = v.repeat_interleave(hq // hkv, dim=1)
        result["torch_note"] = "no enable_gqa in this PyTorch: K/V expanded before timing"

    def theirs():
        return F.scaled_dot_product_attention(q, k_t, v_t, **kw)

    result["torch"] = time_gpu(torch, theirs, args.warmup, args.repeats, args.min_sample_ms)
    if gqa and gqa_kw and args.torch_expanded:
        k_e = k.repeat_interleave(hq // hkv, dim=1)
        v_e = v.repeat_interleave(hq // hkv, dim=1)

        def expanded():
            return F.scaled_dot_product_attention(q, k_e, v_e, is_causal=c.causal)

        result["torch_expanded"] = time_gpu(torch, expanded, args.warmup, args.repeats,
                                            args.min_sample_ms)
        del k_e, v_e

    if not args.no_check:
        # The last of our timed calls left its result in out.
        ref = theirs().float()
        got = out.float()
        atol, rtol = TOLERANCES[c.dtype]
        tol = 2 * (atol + rtol * float(ref.abs().max()))
        finite = bool(torch.isfinite(got).all())
        err = float((got - ref).abs().max()) if finite else float("nan")
        result["check"] = {"ok": finite and err <= tol, "max_abs_err": err, "tol": tol,
                           "against": "torch"}
    return result


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def tflops(c: Case, ms: Optional[float]) -> Optional[float]:
    return None if not ms else c.flops / (ms * 1e-3) / 1e12


def f2(x, fmt="{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def fmt_ms(ms: Optional[float]) -> str:
    if ms is None:
        return "-"
    return f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}" if ms >= 1 else f"{ms:.3f}"


def md_table(headers, rows, left: int = 5) -> str:
    return harness.table(headers, rows, left)


def derive(cases: List[Case], results: Dict[Case, dict]) -> None:
    """TFLOP/s, ours/torch and speed-ups against the MHA case of each group."""
    mha = {c.group_key(): c for c in cases if c.variant == "mha"}
    for c in cases:
        r = results.get(c)
        if not r or "error" in r:
            continue
        ours = r["ours"]["median_ms"]
        r["ours_tflops"] = tflops(c, ours)
        torch_ms = r.get("torch", {}).get("median_ms")
        if torch_ms:
            r["torch_tflops"] = tflops(c, torch_ms)
            r["percent_of_torch"] = 100.0 * torch_ms / ours
        exp_ms = r.get("torch_expanded", {}).get("median_ms")
        if exp_ms:
            r["torch_expanded_tflops"] = tflops(c, exp_ms)
        base = mha.get(c.group_key())
        b = results.get(base) if base else None
        if b and "error" not in b:
            r["speedup_vs_mha"] = b["ours"]["median_ms"] / ours
            r["ideal_speedup_vs_mha"] = base.flops / c.flops
            if torch_ms and b.get("torch"):
                r["torch_speedup_vs_mha"] = b["torch"]["median_ms"] / torch_ms


def headline(cases: List[Case], results: Dict[Case, dict]) -> List[str]:
    md = []
    # SQA speed-up: time(MHA) / time(half the query heads).
    rows = []
    met = total = 0
    for c in cases:
        if c.variant not in ("sqa", "ssqa", "xsqa"):
            continue
        r = results.get(c, {})
        if "speedup_vs_mha" not in r:
            continue
        s = r["speedup_vs_mha"]
        mark = ""
        if c.variant in ("sqa", "ssqa"):
            total += 1
            met += s >= SQA_TARGET
            mark = " ✓" if s >= SQA_TARGET else " ✗"
        rows.append([c.dtype, c.head_dim, c.label, c.mask, f"{c.batch}x{c.seq_len}",
                     f"{s:.2f}{mark}", f"{r['ideal_speedup_vs_mha']:.0f}",
                     f2(r.get("torch_speedup_vs_mha"))])
    if rows:
        md += [f"### SQA speed-up: time(MHA) / time(variant), target >= {SQA_TARGET} "
               f"for SQA and sSQA (H/2 query heads): met in {met} of {total}", "",
               md_table(["dtype", "D", "config", "mask", "BxS", "ours", "ideal",
                         "torch (same ratio)"], rows), ""]
    # % of PyTorch at bf16, D = 128, S = 16k, non-causal.
    rows = []
    for c in cases:
        if (c.dtype, c.head_dim, c.seq_len, c.causal) != ("bf16", 128, 16384, False):
            continue
        r = results.get(c, {})
        if "percent_of_torch" not in r:
            continue
        p = r["percent_of_torch"]
        rows.append([c.label, f"{r['ours_tflops']:.1f}", f"{r['torch_tflops']:.1f}",
                     f"{p:.0f}%" + (" ✓" if p >= TORCH_PERCENT_TARGET else " ✗"),
                     f2(r.get("torch_expanded_tflops"), "{:.1f}")])
    if rows:
        md += [f"### bf16, D = 128, S = 16k, non-causal: ours as % of PyTorch's TFLOP/s "
               f"(target >= {TORCH_PERCENT_TARGET:.0f}%)", "",
               md_table(["config", "ours TFLOP/s", "torch TFLOP/s", "ours/torch",
                         "torch K/V expanded TFLOP/s"], rows, left=1), ""]
    return md


def all_cases_table(cases: List[Case], results: Dict[Case, dict]) -> str:
    headers = ["dtype", "D", "config", "mask", "BxS", "ours ms", "ours TFLOP/s",
               "torch ms", "torch TFLOP/s", "ours/torch", "vs MHA", "ideal",
               "torch vs MHA", "torch exp. ms", "check"]
    rows = []
    for c in cases:
        r = results.get(c, {})
        common = [c.dtype, c.head_dim, c.label, c.mask, f"{c.batch}x{c.seq_len}"]
        if "error" in r or "ours" not in r:
            rows.append(common + ["-"] * 9 + [f"ERROR: {r.get('error', 'not run')}"])
            continue
        chk = r.get("check")
        rows.append(common + [
            fmt_ms(r["ours"]["median_ms"]), f2(r.get("ours_tflops"), "{:.1f}"),
            fmt_ms(r.get("torch", {}).get("median_ms")), f2(r.get("torch_tflops"), "{:.1f}"),
            f2(r.get("percent_of_torch"), "{:.0f}%"),
            f2(r.get("speedup_vs_mha")), f2(r.get("ideal_speedup_vs_mha"), "{:.0f}"),
            f2(r.get("torch_speedup_vs_mha")),
            fmt_ms(r.get("torch_expanded", {}).get("median_ms")),
            "-" if chk is None else (("ok" if chk["ok"] else "FAIL")
                                     + f" {chk['max_abs_err']:.1e}")])
    return md_table(headers, rows)


def git_commit():
    return harness.git_state()


write_results = harness.write_results


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def build_parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sqa-aot", default=os.path.join(REPO, "build", "bin", "sqa-aot"))
    p.add_argument("--chip", default=DEFAULT_CHIP, help=f"GPU architecture (default {DEFAULT_CHIP})")
    p.add_argument("--prepare", metavar="DIR",
                   help="only build every library of the plan into DIR (no GPU needed)")
    p.add_argument("--reuse", action="store_true",
                   help="with --prepare: keep libraries newer than sqa-aot")
    p.add_argument("--lib-dir", metavar="DIR", help="use prebuilt libraries from DIR")
    p.add_argument("--build-dir", help="without --lib-dir: build libraries here (kept)")
    p.add_argument("--dtypes", type=parse_list(("bf16", "f16")), default=("bf16",),
                   help="comma-separated (default bf16)")
    p.add_argument("--f16", action="store_true", help="add f16 to --dtypes")
    p.add_argument("--head-dims", type=lambda t: tuple(int(x) for x in t.split(",")),
                   help="comma-separated (default 64,128)")
    p.add_argument("--variants", type=parse_list(VARIANTS + ("xsmqa",)),
                   help=f"comma-separated (default {','.join(VARIANTS)}; mha always added)")
    p.add_argument("--lengths", type=parse_lengths,
                   help="comma-separated S, e.g. 512,1k,16k (default 512 ... 16k)")
    p.add_argument("--masks", type=parse_list(("none", "causal")), default=("none", "causal"))
    p.add_argument("--tokens", type=int, default=TOKENS, help=f"B * S (default {TOKENS})")
    p.add_argument("--width", type=int, default=MODEL_WIDTH, help=f"H * D (default {MODEL_WIDTH})")
    p.add_argument("--quick", action="store_true",
                   help="D = 128, MHA/GQA/SQA/sSQA, S = 1k, 4k")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls first (default 5)")
    p.add_argument("--repeats", type=int, default=15, help="timed samples (default 15)")
    p.add_argument("--min-sample-ms", type=float, default=2.0,
                   help="back-to-back calls per sample until it lasts this long (default 2)")
    p.add_argument("--no-torch", action="store_true", help="time ours only (still needs torch "
                   "for memory, streams and events)")
    p.add_argument("--no-torch-expanded", dest="torch_expanded", action="store_false",
                   help="do not also time PyTorch with pre-expanded K/V")
    p.add_argument("--no-check", action="store_true", help="skip the comparison with PyTorch")
    p.add_argument("--device", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default=os.path.join(BENCH_DIR, "results"))
    p.add_argument("--no-write", action="store_true", help="print only, write no files")
    p.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    return p


def print_plan(cases: List[Case], args) -> None:
    libs = sorted({c.lib_name(args.chip) for c in cases})
    print(f"plan: {len(cases)} cases, {len(libs)} libraries (chip {args.chip}); "
          f"B*S = {args.tokens}, H*D = {args.width}")
    for c in cases:
        print(f"  {c.describe():48s} {c.flops / 1e12:8.3f} TFLOP  lib {c.lib_name(args.chip)}")
    est = estimate_seconds(cases, args)
    print(f"estimated GPU time: ~{est:.0f} s at an assumed {ASSUMED_TFLOPS:g} TFLOP/s "
          f"(plus library loading), {args.warmup} warm-up calls, {args.repeats} samples "
          f"of >= {args.min_sample_ms:g} ms per implementation")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.prepare and args.lib_dir:
        parser.error("--prepare and --lib-dir exclude each other")
    cases = make_plan(args)
    if args.dry_run:
        print_plan(cases, args)
        return 0
    if args.prepare:
        if not os.access(args.sqa_aot, os.X_OK):
            print(f"error: {args.sqa_aot} is not an executable", file=sys.stderr)
            return 2
        return prepare(cases, args)

    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(f"error: the benchmark needs PyTorch with CUDA ({e})", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("no GPU: torch.cuda.is_available() is False", flush=True)
        return 77
    if not args.lib_dir and not os.access(args.sqa_aot, os.X_OK):
        print(f"error: {args.sqa_aot} is not an executable; give --lib-dir with "
              "prebuilt libraries", file=sys.stderr)
        return 2
    torch.cuda.set_device(args.device)
    torch.empty(1, device="cuda")      # create the primary context, make it current

    # enable_gqa appeared in PyTorch 2.5.
    try:
        t = torch.zeros(1, 2, 4, 8, device="cuda", dtype=torch.bfloat16)
        F.scaled_dot_product_attention(t, t[:, :1], t[:, :1], enable_gqa=True)
        gqa_kw = True
    except TypeError:
        gqa_kw = False
    except RuntimeError:
        gqa_kw = True     # it knows the keyword; the tiny call itself failed

    build_dir = None
    if not args.lib_dir:
        build_dir = args.build_dir or tempfile.mkdtemp(prefix="sqa-cuda-bench-")
        os.makedirs(build_dir, exist_ok=True)
    libs = Libraries(args, build_dir)

    from sqa_mlir import cuda_driver
    gpu = cuda_driver.device_info(args.device)
    date = datetime.datetime.now()
    started = time.perf_counter()
    print(f"{len(cases)} cases, {len({c.lib_name(args.chip) for c in cases})} libraries; "
          f"GPU: {gpu.get('reason')}", flush=True)
    results: Dict[Case, dict] = {}
    failures = 0
    for i, c in enumerate(cases):
        tag = f"[{i + 1}/{len(cases)}] {c.describe()}"
        try:
            lib = libs.get(c)
            results[c] = run_case(torch, F, c, lib, args, gqa_kw)
        except (CallError, aot.AOTError, OSError, RuntimeError) as e:
            results[c] = {"error": str(e).splitlines()[0][:300]}
            failures += 1
            print(f"{tag}: ERROR {e}", flush=True)
            if "CUDA error" in str(e) or "illegal" in str(e).lower():
                print("stopping: the CUDA context is probably unusable after this error",
                      flush=True)
                break
            continue
        finally:
            try:
                torch.cuda.empty_cache()
            except RuntimeError:
                pass
        r = results[c]
        ours = r["ours"]["median_ms"]
        line = f"{tag}: ours {fmt_ms(ours)} ms ({tflops(c, ours):.1f} TFLOP/s)"
        if "torch" in r:
            tm = r["torch"]["median_ms"]
            line += f", torch {fmt_ms(tm)} ms ({tflops(c, tm):.1f}), ours/torch {100 * tm / ours:.0f}%"
        if "check" in r:
            line += f", check {'ok' if r['check']['ok'] else 'FAIL'} {r['check']['max_abs_err']:.1e}"
            failures += not r["check"]["ok"]
        print(line, flush=True)

    derive(cases, results)
    elapsed = time.perf_counter() - started
    commit, dirty = git_commit()
    title = f"sqa-aot CUDA attention benchmark, {date:%Y-%m-%d %H:%M}" + (
        " (--quick subset)" if args.quick else "")
    md = [f"# {title}", "",
          f"* GPU: {gpu.get('name', '?')} ({gpu.get('chip', '?')}), "
          f"{gpu.get('multiprocessors', '?')} SMs, {gpu.get('memory_gib', '?')} GiB, "
          f"driver CUDA {gpu.get('driver_version', '?')}",
          f"* libraries: sqa-aot --target cuda --chip {args.chip}, BHSD, causal = top-left"
          + (f" (prebuilt in {args.lib_dir})" if args.lib_dir else ""),
          f"* PyTorch {torch.__version__} (CUDA {torch.version.cuda}), "
          "F.scaled_dot_product_attention"
          + (", enable_gqa=True where Hq != Hkv" if gqa_kw
             else "; no enable_gqa: K/V expanded before timing"),
          f"* commit: {commit or '?'}" + (" (with uncommitted changes)" if dirty else ""),
          f"* shapes: B * S = {args.tokens} tokens, H * D = {args.width}",
          f"* {FLOP_CONVENTION}; TFLOP/s from the median time.",
          f"* timing: CUDA events around back-to-back calls on the current torch stream, "
          f"samples of >= {args.min_sample_ms:g} ms, {args.warmup} warm-up calls, median of "
          f"{args.repeats} samples; total run {elapsed / 60:.1f} min.",
          "* ours/torch: PyTorch's median time / ours (= our TFLOP/s as % of PyTorch's); "
          "vs MHA: the MHA case's median time / this one's (same dtype, D, mask, S); "
          "ideal: the FLOP ratio; torch exp.: PyTorch with K/V expanded to Hq heads "
          "before timing; check: max |ours - torch|.",
          ""]
    md += headline(cases, results)
    md += ["### All cases", "", all_cases_table(cases, results), ""]
    md_text = "\n".join(md)
    print()
    print(md_text)
    doc = {
        "schema": 1,
        "date": date.isoformat(timespec="seconds"),
        "quick": bool(args.quick),
        "gpu": gpu,
        "torch": {"version": torch.__version__, "cuda": torch.version.cuda,
                  "enable_gqa": gqa_kw},
        "python": platform.python_version(),
        "git_commit": commit, "git_dirty": dirty,
        "flop_convention": FLOP_CONVENTION,
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()},
        "targets": {"sqa_speedup": SQA_TARGET, "percent_of_torch_bf16_d128_16k": TORCH_PERCENT_TARGET},
        "results": [dict(dtype=c.dtype, head_dim=c.head_dim, variant=c.variant,
                         heads=c.heads, q_heads=c.q_kv[0], kv_heads=c.q_kv[1],
                         causal=c.causal, batch=c.batch, seq_len=c.seq_len,
                         flops=c.flops, library=c.lib_name(args.chip),
                         **results.get(c, {"error": "not run"})) for c in cases],
        "elapsed_s": elapsed,
    }
    if not args.no_write:
        write_results(args.out_dir, f"cuda-{date:%Y-%m-%d}" + ("-quick" if args.quick else ""),
                      md_text, doc)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
