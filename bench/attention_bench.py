#!/usr/bin/env python3
"""CPU benchmark of sqa-aot attention libraries.

  python3 bench/attention_bench.py                  # the default suite (see bench/README.md)
  python3 bench/attention_bench.py --quick          # smoke test: tiny shapes, checked
  python3 bench/attention_bench.py --dry-run        # print the plan and a time estimate
  python3 bench/attention_bench.py --configs mha:h16:d64 sqa:h16:d64 --shapes 1x2048x2048

For every configuration (head variant, head dim, dtype, mask) one library is
built with ``sqa-aot`` (``--kernel flash|reference`` when the tool has that
option) and called through ``sqa_mlir.aot.AttentionLibrary`` on random
inputs: warm-up calls, then timed calls (time.perf_counter), reporting the
median, min and max. The machine's fp32 FMA peak is measured in the same run
with ``bench/fma_peak.c`` on the same number of OpenMP threads.

FLOP convention: 2*B*H*S*T*(D+Dv) with H = max(Hq, Hkv) (the two matmuls
Q.K^T and P.V; = 4*B*Hq*S*T*D when D = Dv and Hq >= Hkv), halved for a causal
mask. The softmax (exp, max, sum, division) is not counted.

A configuration is written as colon-separated tokens, optionally followed by
@BxSxT:

  VARIANT[:hN][:gN][:dN][:dvN][:f32|f16|bf16][:causal][@BxSxT]

  VARIANT  mha gqa mqa sqa ssqa xsqa xsmqa rsqa (sqa-aot --variant)
  hN       baseline heads (sqa-aot --heads; default 16)
  gN       kv heads of gqa (sqa-aot --groups)
  dN, dvN  head dim D (default 64) and value head dim Dv (default D)
  causal   bottom-right causal mask (FlashAttention's; = top-left when S = T)

e.g. ``gqa:h16:g4:d64:f32@1x8192x8192`` or ``mha:d128:causal``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(REPO, "python"))

import numpy as np  # noqa: E402

from sqa_mlir import aot, reference  # noqa: E402
from sqa_mlir.reference import TOLERANCES  # noqa: E402
from sqa_mlir.cli import parse_shapes  # noqa: E402

sys.path.insert(0, BENCH_DIR)
import harness  # noqa: E402  (bench/harness.py: machine, FMA peak, timing, reports)
from harness import (  # noqa: E402,F401  (re-exported for older callers)
    Peaks, aot_supports_kernel, cpu_info, find_cc, fmt_ms, git_state, machine_lines,
    machine_record, mem_available, planned_call_seconds, shape_str, start_peaks,
    stats, table, time_calls, unique_path, write_results)

# The targets (f32 and bf16, B = 1).
DEFAULT_CASES = (
    "mha:h16:d64:f32@1x4096x4096",
    "mha:h16:d64:f32:causal@1x4096x4096",
    "mha:h16:d128:f32@1x4096x4096",
    "mha:h16:d128:f32:causal@1x4096x4096",
    "mha:h16:d64:f32@1x8192x8192",
    "gqa:h16:g4:d64:f32@1x8192x8192",
    "mqa:h16:d64:f32@1x8192x8192",
    "sqa:h16:d64:f32@1x8192x8192",
    "ssqa:h16:d64:f32@1x8192x8192",
    "xsqa:h16:d64:f32@1x8192x8192",
    "mha:h16:d64:bf16@1x4096x4096",
)
DEFAULT_SHAPE = (1, 4096, 4096)     # a configuration given without @shape
SCALED_LENGTH = 512                 # S, T cap for the reference kernel
QUICK_SHAPE = (1, 128, 128)
CHECK_SHAPE = (1, 256, 256)          # --check on large shapes runs this one
CHECK_MAX_ELEMENTS = 1 << 24         # B*H*S*T up to which the timed shape is checked
ASSUMED_GFLOPS = {"flash": 30.0, "reference": 2.0}   # for the time estimate only
FLOP_CONVENTION = ("FLOPs = 2*B*H*S*T*(D+Dv), H = max(Hq, Hkv) (Q.K^T and P.V; "
                   "= 4*B*Hq*S*T*D for D = Dv, Hq >= Hkv), halved for a causal "
                   "mask; softmax not counted")

PRETTY = harness.PRETTY


# ---------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    variant: str
    heads: int = 16
    groups: Optional[int] = None
    head_dim: int = 64
    value_head_dim: Optional[int] = None
    dtype: str = "f32"
    causal: bool = False

    @property
    def dv(self) -> int:
        return self.value_head_dim or self.head_dim

    @property
    def q_kv(self) -> Tuple[int, int]:
        return reference.variant_heads(self.variant, self.heads, self.groups)

    @property
    def out_heads(self) -> int:
        return max(self.q_kv)

    @property
    def label(self) -> str:
        hq, hkv = self.q_kv
        return f"{PRETTY.get(self.variant, self.variant)} {hq}/{hkv}"

    @property
    def spec(self) -> str:
        parts = [self.variant, f"h{self.heads}"]
        if self.groups is not None:
            parts.append(f"g{self.groups}")
        parts.append(f"d{self.head_dim}")
        if self.value_head_dim and self.value_head_dim != self.head_dim:
            parts.append(f"dv{self.value_head_dim}")
        parts.append(self.dtype)
        if self.causal:
            parts.append("causal")
        return ":".join(parts)

    def libname(self, kernel: str) -> str:
        return re.sub(r"[^A-Za-z0-9_]", "_", f"bench_{self.spec}_{kernel}")

    def baseline_key(self):
        """Configurations with this key are compared with the MHA one."""
        return (self.heads, self.head_dim, self.dv, self.dtype, self.causal)

    def aot_config(self) -> dict:
        return dict(variant=self.variant, heads=self.heads, groups=self.groups,
                    head_dim=self.head_dim, value_head_dim=self.value_head_dim,
                    dtype=self.dtype,
                    causal="bottom-right" if self.causal else None)


def parse_case(text: str):
    """'VARIANT[:tokens][@BxSxT]' -> (Config, shape or None)."""
    text = text.strip()
    shape = None
    if "@" in text:
        text, shape_text = text.split("@", 1)
        shape = parse_shapes(shape_text)[0]
    tokens = [t for t in text.lower().split(":") if t]
    if not tokens:
        raise argparse.ArgumentTypeError("empty configuration")
    kw = {"variant": tokens[0]}
    if kw["variant"] not in reference.VARIANTS:
        raise argparse.ArgumentTypeError(
            f"unknown variant {tokens[0]!r} in {text!r}; expected one of {reference.VARIANTS}")
    for tok in tokens[1:]:
        m = re.fullmatch(r"(h|g|dv|d)(\d+)", tok)
        if m:
            key = {"h": "heads", "g": "groups", "d": "head_dim", "dv": "value_head_dim"}[m[1]]
            kw[key] = int(m[2])
        elif tok in reference.DTYPES:
            kw["dtype"] = tok
        elif tok == "causal":
            kw["causal"] = True
        else:
            raise argparse.ArgumentTypeError(f"bad token {tok!r} in configuration {text!r}")
    cfg = Config(**kw)
    try:
        cfg.q_kv
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}")
    return cfg, shape


def flops(cfg: Config, shape) -> float:
    B, S, T = shape
    f = 2.0 * B * cfg.out_heads * S * T * (cfg.head_dim + cfg.dv)
    return f / 2 if cfg.causal else f


# ---------------------------------------------------------------------------
# Machine information and the FMA peak
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Building and timing
# ---------------------------------------------------------------------------


class Builder:
    def __init__(self, sqa_aot: str, build_dir: str, kernel_flag: bool, reuse: bool):
        self.sqa_aot = sqa_aot
        self.build_dir = build_dir
        self.kernel_flag = kernel_flag
        self.reuse = reuse
        self.libs: Dict[Tuple[Config, str], aot.AttentionLibrary] = {}
        self.build_seconds = 0.0

    def library(self, cfg: Config, kernel: str) -> aot.AttentionLibrary:
        key = (cfg, kernel)
        if key in self.libs:
            return self.libs[key]
        name = cfg.libname(kernel)
        path = os.path.join(self.build_dir, f"lib{name}.so")
        fresh = (self.reuse and os.path.exists(path) and
                 os.path.getmtime(path) > os.path.getmtime(self.sqa_aot))
        if not fresh:
            t0 = time.perf_counter()
            config = dict(cfg.aot_config(), name=name)
            if self.kernel_flag:
                self._build_with_kernel(config, kernel, path)
            else:
                aot.build_library(self.sqa_aot, self.build_dir, **config)
            self.build_seconds += time.perf_counter() - t0
        lib = aot.AttentionLibrary(path, name, cfg.dtype)
        harness.record_isa_level(lib)
        self.libs[key] = lib
        return lib

    def _build_with_kernel(self, config: dict, kernel: str, path: str) -> None:
        try:
            # Once sqa_mlir.aot knows the option, let it build.
            aot.build_library(self.sqa_aot, self.build_dir, kernel=kernel, **config)
            return
        except TypeError:
            pass
        # Otherwise: aot's own argument spelling plus --kernel.
        cmd = [self.sqa_aot, *aot.aot_arguments(**config), f"--kernel={kernel}", "-o", path]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0 or not os.path.exists(path):
            raise aot.AOTError(f"command failed (exit {p.returncode}): {' '.join(cmd)}\n{p.stdout}")


def make_inputs(cfg: Config, shape, seed: int):
    B, S, T = shape
    hq, hkv = cfg.q_kv
    rng = np.random.default_rng(seed)

    def rnd(*dims):
        return reference.to_storage(rng.standard_normal(dims, dtype=np.float32), cfg.dtype)

    q = rnd(B, hq, S, cfg.head_dim)
    k = rnd(B, hkv, T, cfg.head_dim)
    v = rnd(B, hkv, T, cfg.dv)
    out = np.empty((B, cfg.out_heads, S, cfg.dv), dtype=reference.STORAGE_DTYPES[cfg.dtype])
    out.fill(0)   # touch the pages now rather than in the first call
    return q, k, v, out


class ForwardError(RuntimeError):
    pass


def call(lib, q, k, v, out, q_len=None, kv_len=None) -> float:
    t0 = time.perf_counter()
    status = lib.forward(q, k, v, out, q_len=q_len, kv_len=kv_len)
    dt = time.perf_counter() - t0
    if status != aot.SQA_OK:
        raise ForwardError(f"status {status} ({aot.STATUS_NAMES.get(status, '?')}): "
                           f"{lib.error_string(status)}")
    return dt


def warmup_lengths(shape, warmup_length: int):
    B, S, T = shape
    if warmup_length <= 0:
        return S, T
    return min(S, warmup_length), min(T, warmup_length)


def time_forward(lib, arrays, warmup: int, repeats: int, min_repeats: int,
                 max_case_seconds: float, warmup_length: int = 0) -> List[float]:
    """Warm-up calls, then up to `repeats` timed calls; stops early (after at
    least `min_repeats`) once the timed calls add up to max_case_seconds.

    Warm-up calls use the leading min(S, warmup_length) x min(T, warmup_length)
    part of the inputs (all of them if warmup_length <= 0): the same code,
    thread pool and buffers, without a full-size call's cost."""
    q = arrays[0]
    shape = (q.shape[0], q.shape[2], arrays[1].shape[2])
    s_len, t_len = warmup_lengths(shape, warmup_length)
    return time_calls(lambda: call(lib, *arrays),
                      lambda: call(lib, *arrays, q_len=s_len, kv_len=t_len),
                      warmup, repeats, min_repeats, max_case_seconds)


def planned_seconds(t: float, shape, args, repeats: int) -> float:
    """Estimated time of time_forward for calls of t seconds."""
    B, S, T = shape
    s_len, t_len = warmup_lengths(shape, args.warmup_length)
    return planned_call_seconds(t, t * (s_len * t_len) / (S * T), args.warmup, repeats,
                                args.min_repeats, args.max_case_seconds)


def check_library(lib, cfg: Config, shape, arrays=None, seed: int = 1) -> dict:
    """Compare one forward call with sqa_mlir.reference (float64)."""
    if arrays is None:
        arrays = make_inputs(cfg, shape, seed)
        call(lib, *arrays)
    q, k, v, out = arrays
    ref = reference.attention(reference.from_storage(q, cfg.dtype),
                              reference.from_storage(k, cfg.dtype),
                              reference.from_storage(v, cfg.dtype),
                              causal=cfg.causal, alignment="bottom_right")
    got = reference.from_storage(out, cfg.dtype)
    atol, rtol = TOLERANCES[cfg.dtype]
    tol = atol + rtol * float(np.max(np.abs(ref)))
    err = float(np.max(np.abs(got - ref))) if np.isfinite(got).all() else float("inf")
    return {"shape": shape_str(shape), "max_abs_err": err, "tol": tol, "ok": bool(err <= tol)}


# ---------------------------------------------------------------------------
# Plan
# ---------------------------------------------------------------------------

@dataclass
class Case:
    cfg: Config
    shape: Tuple[int, int, int]
    kernel: str
    result: dict = field(default_factory=dict)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sqa-aot", default=os.path.join(REPO, "build", "bin", "sqa-aot"),
                   help="sqa-aot binary (default: <repo>/build/bin/sqa-aot)")
    p.add_argument("--configs", nargs="+", metavar="CONFIG",
                   help="configurations (see above; comma- or space-separated); "
                        "default: the issue's targets")
    p.add_argument("--shapes", type=parse_shapes, metavar="BxSxT[,BxSxT...]",
                   help="run every configuration at these shapes (overrides @shape "
                        "and the reference kernel's automatic scaling)")
    harness.add_timing_arguments(p, 5, 3, 15.0, 2048)
    p.add_argument("--threads", type=int,
                   help="OMP_NUM_THREADS for the libraries and the peak (default: all cores)")
    p.add_argument("--kernel", choices=("flash", "reference"),
                   help="sqa-aot --kernel (default: flash if sqa-aot has --kernel, "
                        "else the only kernel there is, labelled reference)")
    p.add_argument("--reference-shape", type=parse_shapes, default=[(1, 1024, 1024)],
                   metavar="BxSxT", help="shape of the flash vs reference comparison "
                                         "(default 1x1024x1024)")
    p.add_argument("--reference-configs", choices=("mha", "all", "none"), default="mha",
                   help="configurations compared flash vs reference (default: the MHA "
                        "ones, all if there is none)")
    p.add_argument("--reference-repeats", type=int, default=2,
                   help="timed calls of the reference kernel in the comparison (default 2)")
    p.add_argument("--check", action="store_true",
                   help="compare one call per configuration with sqa_mlir.reference "
                        f"(the timed shape if B*H*S*T <= {CHECK_MAX_ELEMENTS}, else "
                        f"{shape_str(CHECK_SHAPE)})")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: every shape {shape_str(QUICK_SHAPE)}, 3 repeats, "
                        "--check, short peak measurement; writes cpu-<date>-quick.*")
    harness.add_run_arguments(p, "cpu")
    return p


def make_plan(args, kernel: str):
    """Returns (cases, notes)."""
    notes = []
    specs = []
    for item in (args.configs or DEFAULT_CASES):
        specs.extend(s for s in item.split(",") if s.strip())
    parsed = [parse_case(s) for s in specs]
    cases: List[Case] = []
    seen = set()

    def add(cfg, shape):
        if (cfg, shape) not in seen:
            seen.add((cfg, shape))
            cases.append(Case(cfg, shape, kernel))

    if args.quick:
        for cfg, _ in parsed:
            add(cfg, QUICK_SHAPE)
        notes.append(f"--quick: every shape is {shape_str(QUICK_SHAPE)} (a smoke test, "
                     "not a benchmark).")
    elif args.shapes:
        for cfg, _ in parsed:
            for shape in args.shapes:
                add(cfg, shape)
    else:
        scaled = False
        for cfg, shape in parsed:
            shape = shape or DEFAULT_SHAPE
            if kernel == "reference":
                B, S, T = shape
                new = (B, min(S, SCALED_LENGTH), min(T, SCALED_LENGTH))
                scaled |= new != shape
                shape = new
            add(cfg, shape)
        if scaled:
            notes.append(
                f"The reference kernel is slow (about 2 GFLOP/s) and needs B*H*S*T*8 bytes "
                f"of scratch, so S and T were scaled down to at most {SCALED_LENGTH} "
                f"(the targets are 4096 and 8192); pass --shapes to choose.")
    return cases, notes


def estimate_seconds(cases: List[Case], args, compare: List[Config], ref_shape) -> float:
    total = 0.0
    for c in cases:
        rate = ASSUMED_GFLOPS[c.kernel] * 1e9
        # The reference kernel computes masked scores too: no causal saving.
        f = flops(c.cfg, c.shape) * (2 if c.cfg.causal and c.kernel == "reference" else 1)
        total += planned_seconds(f / rate, c.shape, args, args.repeats)
        total += 1.0                                       # build
    for cfg in compare:
        for kernel, repeats in (("flash", args.repeats), ("reference", args.reference_repeats)):
            f = flops(cfg, ref_shape) * (2 if cfg.causal and kernel == "reference" else 1)
            t = f / (ASSUMED_GFLOPS[kernel] * 1e9)
            total += planned_seconds(t, ref_shape, args, repeats)
        total += 1.0
    return total + 4 * args.peak_seconds * 7


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def results_table(cases: List[Case]) -> str:
    headers = ["config", "Hq/Hkv", "D", "dtype", "mask", "BxSxT", "runs", "median ms",
               "min-max ms", "GFLOP/s", "% peak", "vs MHA", "ideal", "cores", "check"]
    rows = []
    for c in cases:
        r = c.result
        hq, hkv = c.cfg.q_kv
        d = str(c.cfg.head_dim) if c.cfg.dv == c.cfg.head_dim else f"{c.cfg.head_dim}/{c.cfg.dv}"
        common = [PRETTY.get(c.cfg.variant, c.cfg.variant), f"{hq}/{hkv}", d, c.cfg.dtype,
                  "causal" if c.cfg.causal else "none", shape_str(c.shape)]
        if "error" in r:
            err = r["error"]
            rows.append(common + ["-"] * 8 + [err if err.startswith("skipped")
                                              else f"ERROR: {err}"])
            continue
        chk = r.get("check")
        chk_s = "-" if chk is None else (
            ("ok" if chk["ok"] else "FAIL") + f" {chk['max_abs_err']:.1e}"
            + ("" if chk["shape"] == shape_str(c.shape) else f" @{chk['shape']}"))
        rows.append(common + [
            len(r["times_s"]), fmt_ms(r["median_s"]),
            f"{fmt_ms(r['min_s'])}-{fmt_ms(r['max_s'])}",
            f"{r['gflops']:.1f}",
            "-" if r.get("peak_percent") is None else f"{r['peak_percent']:.1f}",
            "-" if r.get("speedup_vs_mha") is None else f"{r['speedup_vs_mha']:.2f}x",
            "-" if r.get("ideal_speedup_vs_mha") is None else f"{r['ideal_speedup_vs_mha']:.2f}x",
            "-" if r.get("cores_busy") is None else f"{r['cores_busy']:.1f}",
            chk_s])
    return table(headers, rows)


def comparison_table(comparisons: List[dict]) -> str:
    headers = ["config", "Hq/Hkv", "D", "dtype", "mask", "BxSxT", "flash ms",
               "reference ms", "flash speed-up"]
    rows = []
    for c in comparisons:
        if "error" in c:
            rows.append([c["label"].split()[0], c["label"].split()[1], c["head_dim"], c["dtype"],
                         c["mask"], c["shape"], "-", "-",
                         c["error"] if c["error"].startswith("skipped")
                         else f"ERROR: {c['error']}"])
            continue
        rows.append([c["label"].split()[0], c["label"].split()[1], c["head_dim"], c["dtype"],
                     c["mask"], c["shape"], fmt_ms(c["flash"]["median_s"]),
                     fmt_ms(c["reference"]["median_s"]), f"{c['speedup']:.1f}x"])
    return table(headers, rows)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = min(args.repeats, 3)
        args.reference_repeats = min(args.reference_repeats, 2)
        args.check = True
        args.reference_shape = [QUICK_SHAPE]
        args.peak_seconds = min(args.peak_seconds, 0.1)
    args.min_repeats = max(1, min(args.min_repeats, args.repeats))
    ref_shape = args.reference_shape[0]

    machine = cpu_info()
    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                               else machine["nproc"])
    # Before any library is loaded: libomp reads it when it starts.
    os.environ["OMP_NUM_THREADS"] = str(threads)

    sqa_aot = os.path.abspath(args.sqa_aot)
    if not os.access(sqa_aot, os.X_OK):
        print(f"error: {sqa_aot} is not an executable; build the project first "
              f"or pass --sqa-aot", file=sys.stderr)
        return 2
    kernel_flag = aot_supports_kernel(sqa_aot)
    if args.kernel == "flash" and not kernel_flag:
        print("error: --kernel flash: this sqa-aot has no --kernel option "
              "(only the reference lowering)", file=sys.stderr)
        return 2
    kernel = args.kernel or ("flash" if kernel_flag else "reference")

    try:
        cases, notes = make_plan(args, kernel)
    except argparse.ArgumentTypeError as e:
        parser.error(str(e))
    if not kernel_flag:
        notes.append("sqa-aot has no --kernel option: libraries were built without it; "
                     "their kernel is the reference lowering.")

    # Flash vs reference comparison.
    compare: List[Config] = []
    if kernel == "flash" and kernel_flag and args.reference_configs != "none":
        cfgs = list(dict.fromkeys(c.cfg for c in cases))
        mha = [c for c in cfgs if c.variant == "mha"]
        compare = mha if (args.reference_configs == "mha" and mha) else cfgs

    est = estimate_seconds(cases, args, compare, ref_shape)
    print(f"sqa-aot: {sqa_aot} (--kernel option: {'yes' if kernel_flag else 'no'})")
    print(f"kernel: {kernel}; threads: {threads}; cases: {len(cases)}; "
          f"flash vs reference comparisons: {len(compare)}")
    for n in notes:
        print("note:", n)
    for c in cases:
        print(f"  {c.cfg.label:12s} {c.cfg.spec:28s} {shape_str(c.shape):>15s} "
              f"{flops(c.cfg, c.shape) / 1e9:9.2f} GFLOP")
    print(f"estimated time: ~{est / 60:.1f} min (assuming {ASSUMED_GFLOPS[kernel]:g} "
          f"GFLOP/s for the {kernel} kernel"
          + (f", {ASSUMED_GFLOPS['reference']:g} for the reference" if compare else "")
          + "); --shapes, --repeats, --max-case-seconds to change")
    if args.dry_run:
        return 0

    started = time.perf_counter()
    date = datetime.datetime.now()
    return harness.in_build_dir(
        args, "sqa-bench-",
        lambda build_dir: run(args, machine, threads, sqa_aot, kernel_flag, kernel, cases,
                              notes, compare, ref_shape, build_dir, date, started))


def run(args, machine, threads, sqa_aot, kernel_flag, kernel, cases, notes, compare,
        ref_shape, build_dir, date, started) -> int:
    # --- peak, before ---
    peaks = start_peaks(args.cc, build_dir, threads, args.peak_seconds, notes)

    builder = Builder(sqa_aot, build_dir, kernel_flag, reuse=bool(args.build_dir))
    avail = mem_available()
    checked_libs = {}
    failures = 0

    rounds = max(1, args.rounds)
    repeats, min_repeats, max_case_seconds = harness.round_settings(args, rounds)
    measured = {}
    for round_index in range(rounds):
        for i, c in enumerate(cases):
            tag = f"[{i + 1}/{len(cases)}] {c.cfg.label} {c.cfg.spec} {shape_str(c.shape)}"
            if rounds > 1:
                tag += f" round {round_index + 1}/{rounds}"
            B, S, T = c.shape
            if c.result is not None and "error" in c.result:
                continue
            scratch = B * c.cfg.out_heads * S * T * 8
            if c.kernel == "reference" and avail and scratch > 0.6 * avail:
                c.result = {"error": f"skipped: the reference kernel needs ~{scratch / 2**30:.1f} "
                                     f"GiB of scratch, {avail / 2**30:.1f} GiB available"}
                print(tag, c.result["error"], flush=True)
                continue
            try:
                lib = builder.library(c.cfg, c.kernel)
                arrays = make_inputs(c.cfg, c.shape, args.seed)
                measured[i] = harness.merge_measured(
                    measured.get(i), time_forward(lib, arrays, args.warmup, repeats,
                                                  min_repeats, max_case_seconds,
                                                  args.warmup_length))
                check = c.result.get("check") if c.result else None
                c.result = stats(measured[i])
                if check is not None:
                    c.result["check"] = check
                elif args.check:
                    small = B * c.cfg.out_heads * S * T <= CHECK_MAX_ELEMENTS
                    if small:
                        c.result["check"] = check_library(lib, c.cfg, c.shape, arrays)
                    else:
                        key = (c.cfg, c.kernel)
                        if key not in checked_libs:
                            checked_libs[key] = check_library(lib, c.cfg, CHECK_SHAPE)
                        c.result["check"] = checked_libs[key]
                    if not c.result["check"]["ok"]:
                        failures += 1
            except (aot.AOTError, ForwardError, OSError) as e:
                c.result = {"error": str(e).splitlines()[0][:200]}
                failures += 1
                print(tag, "ERROR:", str(e), flush=True)
                continue
            r = c.result
            r["flops"] = flops(c.cfg, c.shape)
            r["gflops"] = r["flops"] / r["median_s"] / 1e9
            print(f"{tag}: median {fmt_ms(r['median_s'])} ms ({len(r['times_s'])} runs, "
                  f"{fmt_ms(r['min_s'])}-{fmt_ms(r['max_s'])}), {r['gflops']:.1f} GFLOP/s"
                  + (f", check {'ok' if r['check']['ok'] else 'FAIL'} "
                     f"(max abs err {r['check']['max_abs_err']:.2e}, tol {r['check']['tol']:.1e})"
                     if "check" in r else ""), flush=True)

    # --- flash vs reference ---
    comparisons = []
    for cfg in compare:
        B, S, T = ref_shape
        entry = {"config": cfg.spec, "label": cfg.label, "head_dim": cfg.head_dim,
                 "dtype": cfg.dtype, "mask": "causal" if cfg.causal else "none",
                 "shape": shape_str(ref_shape)}
        scratch = B * cfg.out_heads * S * T * 8
        if avail and scratch > 0.6 * avail:
            entry["error"] = f"skipped: reference scratch ~{scratch / 2**30:.1f} GiB"
            comparisons.append(entry)
            continue
        try:
            arrays = make_inputs(cfg, ref_shape, args.seed)
            for kern, reps in (("flash", args.repeats), ("reference", args.reference_repeats)):
                lib = builder.library(cfg, kern)
                entry[kern] = stats(time_forward(lib, arrays, args.warmup, reps,
                                                 min(args.min_repeats, reps),
                                                 args.max_case_seconds, args.warmup_length))
            entry["speedup"] = entry["reference"]["median_s"] / entry["flash"]["median_s"]
            print(f"flash vs reference {cfg.label} {cfg.spec} {shape_str(ref_shape)}: "
                  f"{fmt_ms(entry['flash']['median_s'])} vs "
                  f"{fmt_ms(entry['reference']['median_s'])} ms, {entry['speedup']:.1f}x",
                  flush=True)
        except (aot.AOTError, ForwardError, OSError) as e:
            entry["error"] = str(e).splitlines()[0][:200]
            failures += 1
            print("flash vs reference", cfg.spec, "ERROR:", e, flush=True)
        comparisons.append(entry)

    # --- peak, after ---
    peak = peaks.finish(notes)

    # --- derived columns ---
    harness.add_derived_ratios(cases, peak, lambda c: (c.shape, c.kernel))

    elapsed = time.perf_counter() - started
    machine_record(machine, threads, sqa_aot, peaks)

    title = f"sqa-aot CPU attention benchmark, {date:%Y-%m-%d %H:%M}" + (
        " (--quick smoke test, not a benchmark)" if args.quick else "")
    header = machine_lines(machine, peaks)
    header.insert(2, f"* kernel: **{kernel}**" + (
        "" if kernel_flag else " (sqa-aot has no --kernel option; reference lowering)"))
    md = [f"# {title}", "", *header,
          f"* {FLOP_CONVENTION}. GFLOP/s uses the median time.",
          "* vs MHA: median time of the MHA configuration with the same baseline heads, "
          "D, dtype, mask and shape divided by this one's; ideal: the FLOP ratio. "
          "cores: process CPU time / wall time of the timed calls.",
          f"* timing: {args.warmup} warm-up call(s) (S, T at most "
          f"{args.warmup_length or 'full'}), then up to {args.repeats} timed calls "
          f"(at least {args.min_repeats}; fewer once they add up to "
          f"{args.max_case_seconds:g} s)"
          + (f", in {args.rounds} interleaved rounds (each case's share of the calls "
             f"in every round, warm-up calls each round)" if args.rounds > 1 else "")
          + f"; total run {elapsed / 60:.1f} min.",
          ""]
    if notes:
        md += ["Notes:", ""] + [f"* {n}" for n in notes] + [""]
    md += [results_table(cases), ""]
    if comparisons:
        md += [f"## flash vs reference kernel at {shape_str(ref_shape)}", "",
               comparison_table(comparisons), ""]
    md_text = "\n".join(md)
    print()
    print(md_text)

    doc = {
        "schema": 1,
        "date": date.isoformat(timespec="seconds"),
        "quick": bool(args.quick),
        "kernel": kernel,
        "sqa_aot_has_kernel_option": kernel_flag,
        "flop_convention": FLOP_CONVENTION,
        "machine": machine,
        "settings": {k: (v if not isinstance(v, list) else [list(x) if isinstance(x, tuple)
                                                            else x for x in v])
                     for k, v in vars(args).items()},
        "notes": notes,
        "results": [dict(config=c.cfg.spec, label=c.cfg.label, variant=c.cfg.variant,
                         heads=c.cfg.heads, q_heads=c.cfg.q_kv[0], kv_heads=c.cfg.q_kv[1],
                         head_dim=c.cfg.head_dim, value_head_dim=c.cfg.dv,
                         dtype=c.cfg.dtype, causal=c.cfg.causal, kernel=c.kernel,
                         shape=list(c.shape), **c.result) for c in cases],
        "kernel_comparison": comparisons,
        "elapsed_s": elapsed,
    }
    if not args.no_write:
        write_results(args.out_dir, f"cpu-{date:%Y-%m-%d}" + ("-quick" if args.quick else ""),
                      md_text, doc)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
