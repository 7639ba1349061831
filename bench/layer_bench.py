#!/usr/bin/env python3
"""CPU benchmark of whole attention layers built by ``sqa-aot --layer``.

  python3 bench/layer_bench.py --dry-run      # the plan and a time estimate, runs nothing
  python3 bench/layer_bench.py                # the default suite (see bench/README.md)
  python3 bench/layer_bench.py --long         # adds S = 32k (dense) and 16k, 32k (modern)
  python3 bench/layer_bench.py --quick        # smoke test: S = 128, checked against numpy
  python3 bench/layer_bench.py --models dense --variants mha sqa xsqa --lengths 2k,8k

One layer forward = the Q/K/V projections of x [B, S, d_model], RoPE on q and
k, attention of Hq query and Hkv key/value heads, and the output projection
(sqa.attention_layer; see python/sqa_mlir/layer_reference.py). For every
model configuration and head variant one library is built with ``sqa-aot
--layer`` and called through ``sqa_mlir.aot.LayerLibrary`` on random inputs:
a warm-up call at reduced length, then timed calls (time.perf_counter).

Model configurations (the SQA paper's dense models, and a modern large one):

  dense   d_model 256,  H 16, d_head 16,  GQA with 4 kv heads
  modern  d_model 4096, H 32, d_head 128, GQA with 8 kv heads

Defaults: f32, B = 1, causal top-left mask (the paper's decoder), rotary
RoPE (base 10000), no biases.

FLOPs of one layer forward (Hout = max(Hq, Hkv)):

  projections  2*B*S*d_model*dh*(Hq + 2*Hkv)   (Q, K, V)
             + 2*B*S*Hout*dh*d_model            (output)
  attention    4*B*Hout*S*S*dh, halved for a causal mask

RoPE, softmax (exp, max, sum, division) and bias additions are not counted.
The FMA peak helpers, machine information and table writing come from
attention_bench.py.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

import harness  # noqa: E402  (the shared harness; also puts <repo>/python on sys.path)
import attention_bench as ab  # noqa: E402
import numpy as np  # noqa: E402

from sqa_mlir import aot, layer_reference, reference  # noqa: E402

REPO = harness.REPO


@dataclass(frozen=True)
class Model:
    name: str
    d_model: int
    heads: int
    head_dim: int
    gqa_kv_heads: int
    lengths: Tuple[int, ...]          # default S
    long_lengths: Tuple[int, ...]     # added by --long


MODELS = {
    "dense": Model("dense", 256, 16, 16, 4, (1024, 4096, 16384), (32768,)),
    "modern": Model("modern", 4096, 32, 128, 8, (1024, 4096), (16384, 32768)),
}
DEFAULT_VARIANTS = ("mha", "gqa", "mqa", "sqa", "ssqa", "xsqa", "xsmqa")
PAPER_TOKENS = 131072              # --paper-batching: B = PAPER_TOKENS / S
QUICK_LENGTH = 128
# For the time estimate only: GFLOP/s of the projections, and of attention by
# head dim (the flash kernel is slow for small head dims). Measured on the
# 2-core AVX2 development VM with other work on it; an idle one is faster.
ASSUMED_PROJ_GFLOPS = 25.0
ASSUMED_ATTN_GFLOPS = ((16, 12.0), (32, 24.0), (64, 40.0), (1 << 30, 45.0))
ASSUMED_REFERENCE_GFLOPS = 2.0     # --kernel reference (attention only)
BUILD_SECONDS = 1.5                # one sqa-aot --layer build
OTHERS_BUSY = 0.25                 # other processes' cores above which a case is "contended"
FLOP_CONVENTION = ("FLOPs per layer forward = projections 2*B*S*d_model*dh*(Hq + 2*Hkv) "
                   "+ 2*B*S*Hout*dh*d_model, plus attention 4*B*Hout*S*S*dh "
                   "(Hout = max(Hq, Hkv)), the attention half of it for a causal mask; "
                   "RoPE, softmax and biases not counted")


# ---------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerConfig:
    model: Model
    variant: str
    dtype: str = "f32"
    causal: bool = True              # top-left
    rope: Optional[str] = "rotary"
    bias: Tuple[str, ...] = ()

    @property
    def q_kv(self) -> Tuple[int, int]:
        groups = self.model.gqa_kv_heads if self.variant == "gqa" else None
        return reference.variant_heads(self.variant, self.model.heads, groups)

    @property
    def out_heads(self) -> int:
        return max(self.q_kv)

    @property
    def label(self) -> str:
        hq, hkv = self.q_kv
        return f"{harness.PRETTY.get(self.variant, self.variant)} {hq}/{hkv}"

    @property
    def spec(self) -> str:
        m = self.model
        parts = [m.name, self.variant, f"h{m.heads}", f"d{m.head_dim}", self.dtype,
                 "causal" if self.causal else "nomask", self.rope or "norope"]
        if self.bias:
            parts.append("bias" + "".join(self.bias))
        return ":".join(parts)

    def libname(self, kernel: str) -> str:
        return "".join(ch if ch.isalnum() else "_" for ch in f"layer_{self.spec}_{kernel}")

    def baseline_key(self):
        """Cases with this key (and the same shape) are compared with MHA."""
        return (self.model.name, self.dtype, self.causal, self.rope, self.bias)

    def aot_config(self, kernel: Optional[str]) -> dict:
        m = self.model
        return dict(layer=True, variant=self.variant, heads=m.heads,
                    groups=m.gqa_kv_heads if self.variant == "gqa" else None,
                    head_dim=m.head_dim, dtype=self.dtype,
                    causal="top-left" if self.causal else None,
                    rope=self.rope, bias=",".join(self.bias) or None, kernel=kernel)

    def weight_shapes(self) -> Dict[str, Tuple[int, ...]]:
        d, dh = self.model.d_model, self.model.head_dim
        hq, hkv = self.q_kv
        shapes = {"w_q": (d, hq * dh), "w_k": (d, hkv * dh), "w_v": (d, hkv * dh),
                  "w_o": (self.out_heads * dh, d)}
        sizes = {"q": hq * dh, "k": hkv * dh, "v": hkv * dh, "o": d}
        for b in self.bias:
            shapes["b_" + b] = (sizes[b],)
        return shapes


def layer_flops(cfg: LayerConfig, B: int, S: int) -> Tuple[float, float]:
    """(projection FLOPs, attention FLOPs) of one forward call."""
    d, dh = cfg.model.d_model, cfg.model.head_dim
    hq, hkv = cfg.q_kv
    hout = cfg.out_heads
    proj = 2.0 * B * S * d * dh * (hq + 2 * hkv) + 2.0 * B * S * hout * dh * d
    attn = 4.0 * B * hout * S * S * dh
    return proj, (attn / 2 if cfg.causal else attn)


def assumed_attn_gflops(head_dim: int) -> float:
    for limit, rate in ASSUMED_ATTN_GFLOPS:
        if head_dim <= limit:
            return rate
    return ASSUMED_ATTN_GFLOPS[-1][1]


def estimate_call(cfg: LayerConfig, B: int, S: int, kernel: str) -> float:
    proj, attn = layer_flops(cfg, B, S)
    if kernel == "reference":
        attn_rate = ASSUMED_REFERENCE_GFLOPS
        attn = attn * 2 if cfg.causal else attn     # computes the masked half too
    else:
        attn_rate = assumed_attn_gflops(cfg.model.head_dim)
    return proj / (ASSUMED_PROJ_GFLOPS * 1e9) + attn / (attn_rate * 1e9) + 1e-3


def memory_bytes(cfg: LayerConfig, B: int, S: int) -> int:
    """Rough peak memory of one case: x and out, the weights, and (a guess
    at) the library's scratch: q, k, v and the attention output in f32, twice
    over for layout changes."""
    elem = np.dtype(reference.STORAGE_DTYPES[cfg.dtype]).itemsize
    d, dh = cfg.model.d_model, cfg.model.head_dim
    hq, hkv = cfg.q_kv
    weights = sum(math.prod(s) for s in cfg.weight_shapes().values())
    io = 2 * B * S * d
    scratch = 2 * B * S * dh * (hq + 2 * hkv + cfg.out_heads)
    return elem * (io + weights) + 4 * scratch


def parse_lengths(text: str) -> List[int]:
    """'1k,4k,16384' -> [1024, 4096, 16384]."""
    out = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        mult = 1
        if item.endswith("k"):
            item, mult = item[:-1], 1024
        try:
            n = int(item) * mult
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad length {item!r}; expected e.g. 4096 or 4k")
        if n < 1:
            raise argparse.ArgumentTypeError("lengths must be >= 1")
        out.append(n)
    if not out:
        raise argparse.ArgumentTypeError("no lengths given")
    return out


def length_str(S: int) -> str:
    return f"{S // 1024}k" if S % 1024 == 0 else str(S)


# ---------------------------------------------------------------------------
# Plan
# ---------------------------------------------------------------------------

@dataclass
class Case:
    cfg: LayerConfig
    batch: int
    seq_len: int
    kernel: str
    estimate_s: float = 0.0
    result: dict = field(default_factory=dict)

    @property
    def shape(self) -> str:
        return f"{self.batch}x{self.seq_len}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sqa-aot", default=os.path.join(REPO, "build", "bin", "sqa-aot"),
                   help="sqa-aot binary (default: <repo>/build/bin/sqa-aot)")
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["dense", "modern"],
                   help="model configurations (default: dense modern)")
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS),
                   choices=reference.VARIANTS,
                   help="head variants (default: all but rsqa); mha is added when "
                        "missing (the speed-up baseline)")
    p.add_argument("--lengths", type=parse_lengths, metavar="S[,S...]",
                   help="sequence lengths for every model, e.g. 1k,4k (default: dense "
                        "1k,4k,16k and modern 1k,4k; --long adds dense 32k and modern "
                        "16k,32k)")
    p.add_argument("--long", action="store_true",
                   help="add the long lengths (dense 32k; modern 16k, 32k: minutes per call)")
    p.add_argument("--batch", type=int, default=1, help="batch size B (default 1)")
    p.add_argument("--paper-batching", action="store_true",
                   help=f"B = {PAPER_TOKENS} / S (the paper's fixed tokens per batch), "
                        "capped by --max-call-seconds and memory")
    p.add_argument("--max-call-seconds", type=float, default=60.0,
                   help="--paper-batching: the largest B whose MHA call is estimated "
                        "within this (default 60)")
    p.add_argument("--mask", choices=("causal", "none"), default="causal",
                   help="causal (top-left, default) or none")
    p.add_argument("--rope", choices=("rotary", "linear", "dynamic-ntk", "none"),
                   default="rotary", help="RoPE on q and k (default rotary)")
    p.add_argument("--bias", default="",
                   help="biases to compile in, any of q,k,v,o (default none)")
    p.add_argument("--dtype", choices=reference.DTYPES, default="f32")
    p.add_argument("--kernel", choices=("flash", "reference"),
                   help="sqa-aot --kernel (default: flash if sqa-aot has --kernel)")
    p.add_argument("--threads", type=int,
                   help="OMP_NUM_THREADS for the libraries and the peak (default: all cores)")
    harness.add_timing_arguments(p, 5, 1, 6.0, 512)
    p.add_argument("--wait-idle", type=float, default=5.0,
                   help="before each case wait up to this many seconds for other "
                        f"processes to use < {OTHERS_BUSY} cores (default 5; 0: don't)")
    p.add_argument("--backward", action="store_true",
                   help="also time NAME_layer_backward (forward recomputed inside) "
                        "right after each forward case; reports backward/forward")
    p.add_argument("--check", action="store_true",
                   help="compare each library once with sqa_mlir.layer_reference "
                        "(float64) at B = 1, S = --check-length")
    p.add_argument("--check-length", type=int, default=64,
                   help="sequence length of --check (default 64)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: S = {QUICK_LENGTH}, B = 1, at most 2 repeats, "
                        "--check, short peak measurement; writes layer-<date>-quick.*")
    harness.add_run_arguments(p, "layer")
    return p


def paper_batch(cfg_mha: LayerConfig, S: int, args, kernel: str, avail: Optional[int]):
    """(B, note or None) for --paper-batching."""
    want = max(1, PAPER_TOKENS // S)
    B = want
    while B > 1 and (estimate_call(cfg_mha, B, S, kernel) > args.max_call_seconds or
                     (avail and memory_bytes(cfg_mha, B, S) > 0.6 * avail)):
        B //= 2
    return B, (None if B == want else f"{cfg_mha.model.name} S={S}: B capped at {B} "
               f"(paper batching wants {want})")


def make_plan(args, kernel: str) -> Tuple[List[Case], List[str]]:
    notes: List[str] = []
    variants = list(dict.fromkeys(["mha"] + [v.lower() for v in args.variants]))
    if args.variants and "mha" not in [v.lower() for v in args.variants]:
        notes.append("mha was added: it is the speed-up baseline.")
    bias = tuple(b for b in aot.BIAS_NAMES
                 if b in {x.strip() for x in args.bias.split(",") if x.strip()})
    unknown = {x.strip() for x in args.bias.split(",") if x.strip()} - set(aot.BIAS_NAMES)
    if unknown:
        raise argparse.ArgumentTypeError(f"--bias: unknown {sorted(unknown)}; any of q,k,v,o")
    rope = None if args.rope == "none" else args.rope.replace("-", "_")
    avail = harness.mem_available()
    cases: List[Case] = []
    for mname in args.models:
        model = MODELS[mname]
        if args.quick:
            lengths = [QUICK_LENGTH]
        elif args.lengths:
            lengths = list(args.lengths)
        else:
            lengths = list(model.lengths) + (list(model.long_lengths) if args.long else [])
        cfgs = []
        for v in variants:
            cfg = LayerConfig(model, v, args.dtype, args.mask == "causal", rope, bias)
            try:
                cfg.q_kv
            except ValueError as e:
                raise argparse.ArgumentTypeError(f"{mname} {v}: {e}")
            cfgs.append(cfg)
        for S in lengths:
            B = 1 if args.quick else args.batch
            if args.paper_batching and not args.quick:
                B, note = paper_batch(cfgs[0], S, args, kernel, avail)
                if note:
                    notes.append(note)
            for cfg in cfgs:
                c = Case(cfg, B, S, kernel)
                c.estimate_s = estimate_call(cfg, B, S, kernel)
                cases.append(c)
    if args.quick:
        notes.append(f"--quick: every S is {QUICK_LENGTH} (a smoke test, not a benchmark).")
    return cases, notes


def warmup_len(S: int, warmup_length: int) -> int:
    return S if warmup_length <= 0 else min(S, warmup_length)


def estimate_case(c: Case, args) -> float:
    s_w = warmup_len(c.seq_len, args.warmup_length)
    t_w = estimate_call(c.cfg, c.batch, s_w, c.kernel)
    return harness.planned_call_seconds(c.estimate_s, t_w, args.warmup, args.repeats,
                                   args.min_repeats, args.max_case_seconds)


def estimate_seconds(cases: List[Case], args) -> float:
    total = sum(estimate_case(c, args) for c in cases)
    total += BUILD_SECONDS * len({c.cfg for c in cases})
    if args.check:
        for cfg in {c.cfg for c in cases}:
            total += estimate_call(cfg, 1, args.check_length, cases[0].kernel) + (
                # the float64 numpy reference: about 1 GFLOP/s
                sum(layer_flops(cfg, 1, args.check_length)) / 1e9)
    # fma_peak: three measurements of 5 trials plus calibration.
    return total + 3 * 7 * args.peak_seconds


# ---------------------------------------------------------------------------
# Inputs, calls, check
# ---------------------------------------------------------------------------

class Builder:
    def __init__(self, sqa_aot: str, build_dir: str, kernel: Optional[str], reuse: bool):
        self.sqa_aot, self.build_dir, self.kernel, self.reuse = sqa_aot, build_dir, kernel, reuse
        self.libs: Dict[LayerConfig, aot.LayerLibrary] = {}
        self.build_seconds = 0.0

    def library(self, cfg: LayerConfig, label: str) -> aot.LayerLibrary:
        if cfg in self.libs:
            return self.libs[cfg]
        name = cfg.libname(label)
        path = os.path.join(self.build_dir, f"lib{name}.so")
        fresh = (self.reuse and os.path.exists(path) and
                 os.path.getmtime(path) > os.path.getmtime(self.sqa_aot))
        if not fresh:
            t0 = time.perf_counter()
            aot.build_library(self.sqa_aot, self.build_dir, name=name,
                              **cfg.aot_config(self.kernel))
            self.build_seconds += time.perf_counter() - t0
        lib = aot.LayerLibrary(path, name, cfg.dtype)
        harness.record_isa_level(lib)
        self.libs[cfg] = lib
        return lib


def make_weights(cfg: LayerConfig, seed: int) -> Dict[str, np.ndarray]:
    """Random weights scaled by 1/sqrt(fan-in) (outputs stay O(1)), biases
    0.5 * N(0, 1), in storage form."""
    rng = np.random.default_rng(seed)
    w = {}
    for name, shape in cfg.weight_shapes().items():
        a = rng.standard_normal(shape, dtype=np.float32)
        a *= np.float32(1 / math.sqrt(shape[0]) if name.startswith("w_") else 0.5)
        w[name] = reference.to_storage(a, cfg.dtype)
    return w


def make_x(cfg: LayerConfig, B: int, S: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    return reference.to_storage(
        rng.standard_normal((B, S, cfg.model.d_model), dtype=np.float32), cfg.dtype)


def layer_call(lib: aot.LayerLibrary, weights, x, out, B: int, S: int) -> float:
    g = weights.get
    t0 = time.perf_counter()
    status = lib.layer_forward_raw(x, None, g("w_q"), g("w_k"), g("w_v"), g("w_o"),
                                   g("b_q"), g("b_k"), g("b_v"), g("b_o"), out, B, S, 0)
    dt = time.perf_counter() - t0
    if status != aot.SQA_OK:
        raise ab.ForwardError(f"status {status} ({aot.STATUS_NAMES.get(status, '?')}): "
                              f"{lib.error_string(status)}")
    return dt


def backward_call(lib: aot.LayerLibrary, weights, x, d_y, grads, B: int,
                  S: int) -> float:
    """One NAME_layer_backward call (self-attention) on the first S rows."""
    t0 = time.perf_counter()
    status = lib.layer_backward_raw(dict(weights, x=x), d_y, grads, B, S, 0)
    dt = time.perf_counter() - t0
    if status != aot.SQA_OK:
        raise ab.ForwardError(f"backward status {status}: {lib.error_string(status)}")
    return dt


def check_layer(lib, cfg: LayerConfig, weights, S: int, seed: int) -> dict:
    """One call at B = 1, S against sqa_mlir.layer_reference (float64)."""
    x = make_x(cfg, 1, S, seed + 7)
    out = reference.nan_storage((1, S, cfg.model.d_model), cfg.dtype)
    layer_call(lib, weights, x, out, 1, S)
    f64 = {k: reference.from_storage(v, cfg.dtype) for k, v in weights.items()}
    hq, hkv = cfg.q_kv
    y, inter = layer_reference.attention_layer(
        reference.from_storage(x, cfg.dtype), f64["w_q"], f64["w_k"], f64["w_v"], f64["w_o"],
        b_q=f64.get("b_q"), b_k=f64.get("b_k"), b_v=f64.get("b_v"), b_o=f64.get("b_o"),
        q_heads=hq, kv_heads=hkv, head_dim=cfg.model.head_dim, rope=cfg.rope,
        causal=cfg.causal, alignment="top_left", dtype=cfg.dtype, return_intermediates=True)
    tol = layer_reference.layer_tolerance(y, inter["attn"], f64["w_o"], f64.get("b_o"),
                                          dtype=cfg.dtype,
                                          max_position=S if cfg.rope else 0)
    got = reference.from_storage(out, cfg.dtype)
    if not np.isfinite(got).all():
        return {"seq_len": S, "max_abs_err": float("inf"), "ok": False,
                "worst_err_over_tol": float("inf")}
    err = np.abs(got - y)
    return {"seq_len": S, "max_abs_err": float(err.max()),
            "worst_err_over_tol": float((err / tol).max()),
            "ok": bool((err <= tol).all())}


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def results_table(cases: List[Case]) -> str:
    headers = ["model", "config", "Hq/Hkv", "BxS", "runs", "median ms", "min-max ms",
               "GFLOP", "attn %", "GFLOP/s", "% peak", "vs MHA", "ideal", "cores", "others",
               "check"]
    rows = []
    for c in cases:
        r = c.result
        hq, hkv = c.cfg.q_kv
        common = [c.cfg.model.name, harness.PRETTY.get(c.cfg.variant, c.cfg.variant),
                  f"{hq}/{hkv}", c.shape]
        if "median_s" not in r:
            err = r.get("error", "not run")
            rows.append(common + ["-"] * 11 + [err if err.startswith("skipped")
                                               else f"ERROR: {err}"])
            continue
        chk = r.get("check")
        chk_s = "-" if chk is None else (("ok" if chk["ok"] else "FAIL")
                                         + f" {chk['max_abs_err']:.1e} @S={chk['seq_len']}")
        rows.append(common + [
            len(r["times_s"]), harness.fmt_ms(r["median_s"]),
            f"{harness.fmt_ms(r['min_s'])}-{harness.fmt_ms(r['max_s'])}",
            f"{r['flops'] / 1e9:.1f}", f"{100 * r['attn_flops'] / r['flops']:.0f}",
            f"{r['gflops']:.1f}",
            "-" if r.get("peak_percent") is None else f"{r['peak_percent']:.1f}",
            "-" if r.get("speedup_vs_mha") is None else f"{r['speedup_vs_mha']:.2f}x",
            "-" if r.get("ideal_speedup_vs_mha") is None
            else f"{r['ideal_speedup_vs_mha']:.2f}x",
            "-" if r.get("cores_busy") is None else f"{r['cores_busy']:.1f}",
            "-" if r.get("others_cores") is None else f"{r['others_cores']:.1f}",
            chk_s])
    return harness.table(headers, rows)


def summary_tables(cases: List[Case]) -> List[str]:
    """Per model: variants x lengths, 'median time (speed-up vs MHA)'."""
    out = []
    for mname in dict.fromkeys(c.cfg.model.name for c in cases):
        mc = [c for c in cases if c.cfg.model.name == mname]
        model = mc[0].cfg.model
        shapes = list(dict.fromkeys((c.batch, c.seq_len) for c in mc))
        headers = ["config", "Hq/Hkv"] + [
            (f"S = {length_str(S)}" if B == 1 else f"{B}x{length_str(S)}") for B, S in shapes]
        rows = []
        for cfg in dict.fromkeys(c.cfg for c in mc):
            hq, hkv = cfg.q_kv
            row = [harness.PRETTY.get(cfg.variant, cfg.variant), f"{hq}/{hkv}"]
            for B, S in shapes:
                c = next((x for x in mc if x.cfg == cfg and (x.batch, x.seq_len) == (B, S)),
                         None)
                r = c.result if c else {}
                if "median_s" not in r:
                    row.append("-")
                    continue
                t = r["median_s"]
                cell = f"{t:.3f} s" if t < 10 else f"{t:.1f} s"
                if r.get("speedup_vs_mha") is not None and cfg.variant != "mha":
                    cell += f" ({r['speedup_vs_mha']:.2f}x)"
                row.append(cell)
            rows.append(row)
        out += [f"### {mname}: d_model {model.d_model}, H {model.heads}, "
                f"d_head {model.head_dim} — median time per layer forward "
                "(speed-up vs MHA)", "", harness.table(headers, rows), ""]
    return out


def cpu_snapshot() -> Optional[Tuple[float, float, float]]:
    """(busy CPU seconds of the whole machine from /proc/stat, this process's
    CPU seconds, wall clock), or None without /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...
    busy = v[0] + v[1] + v[2] + sum(v[5:7])
    return busy / os.sysconf("SC_CLK_TCK"), time.process_time(), time.perf_counter()


def other_cores(a, b) -> Optional[float]:
    """CPU cores that other processes kept busy between two snapshots."""
    if a is None or b is None or b[2] <= a[2]:
        return None
    return max(0.0, ((b[0] - a[0]) - (b[1] - a[1])) / (b[2] - a[2]))


def wait_for_idle(max_seconds: float, threshold: float = OTHERS_BUSY) -> Tuple[float, float]:
    """Waits (up to max_seconds) until other processes use less than
    `threshold` cores over half a second; returns (seconds waited, last
    measured use)."""
    t0 = time.perf_counter()
    while True:
        a = cpu_snapshot()
        time.sleep(0.5)
        used = other_cores(a, cpu_snapshot())
        waited = time.perf_counter() - t0
        if used is None or used < threshold or waited >= max_seconds:
            return waited, (used or 0.0)
        time.sleep(min(1.0, max(0.0, max_seconds - waited)))


def loadavg() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = min(args.repeats, 2)
        args.check = True
        args.check_length = min(args.check_length, QUICK_LENGTH)
        args.peak_seconds = min(args.peak_seconds, 0.1)
    if args.batch < 1 or args.repeats < 1 or args.check_length < 1:
        parser.error("--batch, --repeats and --check-length must be >= 1")
    args.min_repeats = max(1, min(args.min_repeats, args.repeats))

    machine = harness.cpu_info()
    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                               else machine["nproc"])
    # Before any library is loaded: libomp reads it when it starts.
    os.environ["OMP_NUM_THREADS"] = str(threads)

    sqa_aot = os.path.abspath(args.sqa_aot)
    if not os.access(sqa_aot, os.X_OK):
        print(f"error: {sqa_aot} is not an executable; build the project first "
              f"or pass --sqa-aot", file=sys.stderr)
        return 2
    kernel_flag = harness.aot_supports_kernel(sqa_aot)
    if args.kernel == "flash" and not kernel_flag:
        print("error: --kernel flash: this sqa-aot has no --kernel option", file=sys.stderr)
        return 2
    kernel = args.kernel or ("flash" if kernel_flag else "reference")

    try:
        cases, notes = make_plan(args, kernel)
    except argparse.ArgumentTypeError as e:
        parser.error(str(e))
    if not kernel_flag:
        notes.append("sqa-aot has no --kernel option: libraries were built without it; "
                     "their attention is the reference lowering.")

    est = estimate_seconds(cases, args)
    print(f"sqa-aot: {sqa_aot} (--kernel option: {'yes' if kernel_flag else 'no'})")
    print(f"kernel: {kernel}; threads: {threads}; dtype {args.dtype}; mask "
          f"{'causal (top-left)' if args.mask == 'causal' else 'none'}; rope {args.rope}; "
          f"bias {args.bias or 'none'}; cases: {len(cases)}")
    for n in notes:
        print("note:", n)
    for c in cases:
        proj, attn = layer_flops(c.cfg, c.batch, c.seq_len)
        print(f"  {c.cfg.model.name:6s} {c.cfg.label:12s} {c.shape:>10s} "
              f"{(proj + attn) / 1e9:9.1f} GFLOP ({100 * attn / (proj + attn):3.0f}% attention)"
              f"  ~{estimate_case(c, args):6.1f} s")
    print(f"estimated time: ~{est / 60:.1f} min (assuming {ASSUMED_PROJ_GFLOPS:g} GFLOP/s for "
          "the projections and, for attention, "
          + ", ".join(f"{r:g} at d_head <= {lim}" for lim, r in ASSUMED_ATTN_GFLOPS[:-1])
          + f", {ASSUMED_ATTN_GFLOPS[-1][1]:g} above; each case: {args.warmup} warm-up call at "
          f"S <= {args.warmup_length or 'full'}, {args.min_repeats}-{args.repeats} timed calls, "
          f"more only while they add up to < {args.max_case_seconds:g} s)"
          + (f"; plus up to {args.wait_idle * len(cases) / 60:.1f} min waiting for other "
             f"processes to go idle (--wait-idle {args.wait_idle:g} s per case)"
             if args.wait_idle > 0 else ""))
    if args.dry_run:
        return 0

    started = time.perf_counter()
    date = datetime.datetime.now()
    return harness.in_build_dir(
        args, "sqa-layer-bench-",
        lambda build_dir: run(args, machine, threads, sqa_aot, kernel_flag, kernel, cases,
                              notes, build_dir, date, started, est))


def run(args, machine, threads, sqa_aot, kernel_flag, kernel, cases, notes, build_dir,
        date, started, est) -> int:
    load_start = loadavg()
    peaks = harness.start_peaks(args.cc, build_dir, threads, args.peak_seconds, notes)

    # Every library first: a rebuild of sqa-aot during the run cannot mix
    # versions, and compiling does not overlap the timed calls.
    builder = Builder(sqa_aot, build_dir, kernel if kernel_flag else None,
                      reuse=bool(args.build_dir))
    failures = 0
    build_errors: Dict[LayerConfig, str] = {}
    for cfg in dict.fromkeys(c.cfg for c in cases):
        try:
            builder.library(cfg, kernel)
        except (aot.AOTError, OSError) as e:
            build_errors[cfg] = str(e).splitlines()[0][:200]
            failures += 1
            print(f"build {cfg.spec} ERROR: {e}", flush=True)
    print(f"built {len(builder.libs)} libraries in {builder.build_seconds:.1f} s", flush=True)

    avail = harness.mem_available()
    weights_cache: Dict[LayerConfig, Dict[str, np.ndarray]] = {}
    checks: Dict[LayerConfig, dict] = {}
    for i, c in enumerate(cases):
        tag = f"[{i + 1}/{len(cases)}] {c.cfg.model.name} {c.cfg.label} {c.shape}"
        if c.cfg in build_errors:
            c.result = {"error": build_errors[c.cfg]}
            continue
        need = memory_bytes(c.cfg, c.batch, c.seq_len)
        if avail and need > 0.7 * avail:
            c.result = {"error": f"skipped: needs ~{need / 2**30:.1f} GiB, "
                                 f"{avail / 2**30:.1f} GiB available"}
            print(tag, c.result["error"], flush=True)
            continue
        # Weights of the current model only.
        for k in [k for k in weights_cache if k.model != c.cfg.model]:
            del weights_cache[k]
        try:
            lib = builder.libs[c.cfg]
            if c.cfg not in weights_cache:
                weights_cache[c.cfg] = make_weights(c.cfg, args.seed)
            w = weights_cache[c.cfg]
            x = make_x(c.cfg, c.batch, c.seq_len, args.seed)
            out = np.zeros_like(x)   # touch the pages now rather than in the first call
            B, S = c.batch, c.seq_len
            s_w = warmup_len(S, args.warmup_length)
            waited, others_before = (wait_for_idle(args.wait_idle) if args.wait_idle > 0
                                     else (0.0, None))
            load = loadavg()
            snap = cpu_snapshot()
            c.result = harness.stats(harness.time_calls(
                lambda: layer_call(lib, w, x, out, B, S),
                lambda: layer_call(lib, w, x, out, B, s_w),
                args.warmup, args.repeats, args.min_repeats, args.max_case_seconds))
            c.result.update(loadavg_before=load, waited_idle_s=waited,
                            others_before=others_before,
                            others_cores=other_cores(snap, cpu_snapshot()))
            if args.backward:
                d_y = make_x(c.cfg, B, S, args.seed + 3)
                grads = {"dx": np.zeros_like(x)}
                grads.update({"d" + k: np.zeros_like(v) for k, v in w.items()})
                bwd = harness.stats(harness.time_calls(
                    lambda: backward_call(lib, w, x, d_y, grads, B, S),
                    lambda: backward_call(lib, w, x, d_y, grads, B, s_w),
                    args.warmup, args.repeats, args.min_repeats, args.max_case_seconds))
                c.result.update(backward_median_s=bwd["median_s"],
                                backward_min_s=bwd["min_s"],
                                backward_over_forward=bwd["min_s"] / c.result["min_s"])
                del d_y, grads
            del x, out
            if args.check:
                if c.cfg not in checks:
                    checks[c.cfg] = check_layer(lib, c.cfg, w, min(args.check_length, S),
                                                args.seed)
                    if not checks[c.cfg]["ok"]:
                        failures += 1
                c.result["check"] = checks[c.cfg]
        except (aot.AOTError, ab.ForwardError, OSError, MemoryError) as e:
            c.result = {"error": str(e).splitlines()[0][:200]}
            failures += 1
            print(tag, "ERROR:", e, flush=True)
            continue
        r = c.result
        proj, attn = layer_flops(c.cfg, c.batch, c.seq_len)
        r.update(flops=proj + attn, proj_flops=proj, attn_flops=attn)
        r["gflops"] = r["flops"] / r["median_s"] / 1e9
        print(f"{tag}: median {harness.fmt_ms(r['median_s'])} ms ({len(r['times_s'])} runs, "
              f"{harness.fmt_ms(r['min_s'])}-{harness.fmt_ms(r['max_s'])}), {r['gflops']:.1f} GFLOP/s, "
              f"cores {r['cores_busy']:.1f}"
              + (f", others {r['others_cores']:.1f}" if r["others_cores"] is not None else "")
              + (f" (waited {waited:.0f} s for idle)" if waited >= 1 else "")
              + (f", backward min {harness.fmt_ms(r['backward_min_s'])} ms "
                 f"({r['backward_over_forward']:.2f}x forward min)"
                 if "backward_min_s" in r else "")
              + (f", check {'ok' if r['check']['ok'] else 'FAIL'} "
                 f"(max abs err {r['check']['max_abs_err']:.2e})" if "check" in r else ""),
              flush=True)
    weights_cache.clear()

    peak = peaks.finish(notes)
    load_end = loadavg()

    # --- derived columns ---
    harness.add_derived_ratios(cases, peak, lambda c: (c.batch, c.seq_len))

    contended = [c for c in cases if (c.result.get("others_cores") or 0) >= OTHERS_BUSY]
    if contended:
        names = ", ".join(f"{c.cfg.model.name} {harness.PRETTY.get(c.cfg.variant, c.cfg.variant)} "
                          f"{c.shape} ({c.result['others_cores']:.1f})" for c in contended)
        notes.append(
            f"Other processes kept >= {OTHERS_BUSY} cores busy during {len(contended)} of "
            f"{len(cases)} cases (column others; the machine is shared): {names}. Those "
            "times are longer than on an idle machine, and vs MHA is unreliable wherever "
            "either side is contended.")
    waits = sum(c.result.get("waited_idle_s") or 0 for c in cases)
    if waits >= 1:
        notes.append(f"Waited {waits:.0f} s in all for other processes to go idle "
                     f"(--wait-idle {args.wait_idle:g} s per case).")

    elapsed = time.perf_counter() - started
    harness.machine_record(machine, threads, sqa_aot, peaks)
    machine["loadavg_start"], machine["loadavg_end"] = load_start, load_end

    title = f"sqa-aot CPU attention-layer benchmark, {date:%Y-%m-%d %H:%M}" + (
        " (--quick smoke test, not a benchmark)" if args.quick else "")
    header = harness.machine_lines(machine, peaks)
    header.insert(2, f"* kernel: **{kernel}**" + (
        "" if kernel_flag else " (sqa-aot has no --kernel option; reference lowering)"))
    layer_line = (f"* layer: {args.dtype}, "
                  + ("causal mask (top-left)" if args.mask == "causal" else "no mask")
                  + f", RoPE {args.rope}, biases {args.bias or 'none'}, self-attention; "
                  + ("batch B = " + str(PAPER_TOKENS) + " / S (--paper-batching)"
                     if args.paper_batching else f"batch B = {args.batch}"))
    models = "; ".join(
        f"{m.name}: d_model {m.d_model}, H {m.heads}, d_head {m.head_dim}, "
        f"GQA {m.heads}/{m.gqa_kv_heads}" for m in (MODELS[n] for n in args.models))
    md = [f"# {title}", "", *header,
          layer_line,
          f"* models: {models}",
          f"* {FLOP_CONVENTION}. GFLOP/s uses the median time; attn %: the attention "
          "share of the FLOPs.",
          "* vs MHA: median time of the MHA layer of the same model and BxS divided by this "
          "one's; ideal: the FLOP ratio. cores: process CPU time / wall time of the timed "
          f"calls ({threads} when the library keeps every thread busy); others: CPU cores "
          "other processes used meanwhile (/proc/stat).",
          f"* timing: {args.warmup} warm-up call(s) at S <= "
          f"{args.warmup_length or 'full'}, then {args.min_repeats} to {args.repeats} timed "
          f"calls (more only while they add up to < {args.max_case_seconds:g} s); "
          f"estimated {est / 60:.1f} min, total run {elapsed / 60:.1f} min; load average "
          f"(1 min) {load_start[0] if load_start else '?'} at start, "
          f"{load_end[0] if load_end else '?'} at end.",
          ""]
    if notes:
        md += ["Notes:", ""] + [f"* {n}" for n in notes] + [""]
    md += summary_tables(cases)
    md += ["### all cases", "", results_table(cases), ""]
    md_text = "\n".join(md)
    print()
    print(md_text)

    doc = {
        "schema": 1,
        "benchmark": "layer",
        "date": date.isoformat(timespec="seconds"),
        "quick": bool(args.quick),
        "kernel": kernel,
        "sqa_aot_has_kernel_option": kernel_flag,
        "flop_convention": FLOP_CONVENTION,
        "machine": machine,
        "settings": {k: v for k, v in vars(args).items()},
        "estimated_s": est,
        "notes": notes,
        "models": {n: vars(MODELS[n]) for n in args.models},
        "results": [dict(model=c.cfg.model.name, d_model=c.cfg.model.d_model,
                         heads=c.cfg.model.heads, head_dim=c.cfg.model.head_dim,
                         variant=c.cfg.variant, label=c.cfg.label, config=c.cfg.spec,
                         q_heads=c.cfg.q_kv[0], kv_heads=c.cfg.q_kv[1],
                         out_heads=c.cfg.out_heads, dtype=c.cfg.dtype, causal=c.cfg.causal,
                         alignment="top_left" if c.cfg.causal else None, rope=c.cfg.rope,
                         bias=list(c.cfg.bias), kernel=c.kernel, batch=c.batch,
                         seq_len=c.seq_len, estimated_call_s=c.estimate_s, **c.result)
                    for c in cases],
        "elapsed_s": elapsed,
    }
    if not args.no_write:
        harness.write_results(args.out_dir,
                         f"layer-{date:%Y-%m-%d}" + ("-quick" if args.quick else ""),
                         md_text, doc)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
