#!/usr/bin/env python3
"""The SQA paper's throughput benchmark (its Table 3) on the CPU, side by side
with PyTorch, with plots.

  python3 bench/paper_suite.py --dry-run    # the plan and a time estimate, runs nothing
  python3 bench/paper_suite.py              # the default suite (< 15 min on 2 cores)
  python3 bench/paper_suite.py --quick      # smoke test: S = 64, 128, checked, ~2 min
  python3 bench/paper_suite.py --long       # adds the long lengths and the paper's batching (hours)
  python3 bench/paper_suite.py --no-torch   # our libraries only

Two parts, each for two models and the variants MHA, GQA, MQA, SQA, sSQA,
xSQA, xSMQA (f32, causal, B x S tokens per call):

  attention  the attention core: our sqa-aot library (attention_bench.py's
             Builder) vs torch.nn.functional.scaled_dot_product_attention on
             q [B, Hq, S, dh], k/v [B, Hkv, S, dh], is_causal=True,
             enable_gqa=True where Hq != Hkv
  layer      one attention layer: our sqa-aot --layer library
             (layer_bench.py's Builder) vs a PyTorch layer: nn.Linear
             projections (no bias), the same rotate-half RoPE, SDPA as above,
             head merge, output nn.Linear; torch.no_grad, float32

  dense   the paper's dense model: d_model 256, H 16, d_head 16, 8 layers
  modern  d_model 4096, H 32, d_head 128 (GQA 32/8, SQA 16/8, ...)

Our speed-ups against MHA (dense layer) are set next to the paper's Table 3
(A100, whole model); the time of the paper's 8 attention layers is 8 x one
timed layer call (all 8 layers have the same shapes; we time one library call
with one set of weights). PyTorch runs in this process on the same number of
threads (torch.set_num_threads); every figure is the median of repeated timed
calls after a warm-up call, with min-max. Results: bench/results/paper-<date>.md,
.json and -time.png, -speedup.png, -vs-torch.png. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

import harness  # noqa: E402  (the shared harness; also puts <repo>/python on sys.path)
import attention_bench as ab  # noqa: E402
import layer_bench as lb  # noqa: E402
import numpy as np  # noqa: E402

from sqa_mlir import aot, layer_reference, reference  # noqa: E402

REPO = harness.REPO
VARIANTS = ("mha", "gqa", "mqa", "sqa", "ssqa", "xsqa", "xsmqa")
PARTS = ("attention", "layer")
PAPER_TOKENS = 131072            # the paper's batch x S at 1k-131k
DEFAULT_TOKENS = 16384           # default batch x S (the paper's is --tokens 131072 / --long)
QUICK_LENGTHS = (64, 128)
CHECK_LENGTH = 64
MIN_OTHERS_WINDOW_S = 0.5       # shortest case for which "others" is reported
SWITCH_PAUSE_S = 0.3             # between our calls and PyTorch's: lets the other
                                 # OpenMP runtime's spinning threads go to sleep

# Sequence lengths per part and model: the default run, and what --long adds.
LENGTHS = {
    ("attention", "dense"): ((1024, 4096, 16384), (32768,)),
    ("layer", "dense"): ((1024, 4096, 16384), (32768,)),
    ("attention", "modern"): ((1024, 4096), (16384, 32768)),
    ("layer", "modern"): ((1024,), (4096, 16384, 32768)),
}

# For the time estimate only: GFLOP/s by head dim (dense 16, modern 128) of
# attention and of the projections (with RoPE), f32, measured on the 2-core
# AMD EPYC (znver1) development VM, idle, with PyTorch 2.15.
ASSUMED = {
    "ours": {"attn": {16: 28.0, 128: 52.0}, "proj": {16: 25.0, 128: 50.0}},
    "torch": {"attn": {16: 28.0, 128: 52.0}, "proj": {16: 45.0, 128: 65.0}},
}

# The paper's Table 3 (sqa-background.md section 4): seconds per forward step
# of the dense model (8 layers + embedding + LM head), bf16, 1x A100 40GB,
# batch x S = 131072 tokens (200k: batch 1).
PAPER_LENGTHS = (1024, 4096, 32768, 131072, 200000)
PAPER_BATCH = (128, 32, 4, 1, 1)
PAPER_TABLE3 = {
    "xsqa": (0.0570, 0.0637, 0.1348, 0.3759, 0.8194),
    "sqa": (0.0642, 0.0750, 0.1991, 0.6308, 1.4116),
    "ssqa": (0.0669, 0.0793, 0.2117, 0.6630, 1.4824),
    "swa128": (0.0759, 0.0794, 0.1871, 0.7531, 1.1871),
    "mqa": (0.0760, 0.1001, 0.3612, 1.2530, 2.8555),
    "gqa": (0.0785, 0.1027, 0.3637, 1.2558, 2.8596),
    "mha": (0.0869, 0.1114, 0.3727, 1.2648, 2.8734),
}


def paper_speedup(variant: str, S: int) -> Optional[float]:
    if variant not in PAPER_TABLE3 or S not in PAPER_LENGTHS:
        return None
    i = PAPER_LENGTHS.index(S)
    return PAPER_TABLE3["mha"][i] / PAPER_TABLE3[variant][i]


def slabel(S: int) -> str:
    """1k, 4k, ..., 32k; the paper's 131,072 and 200,000 as 131k and 200k."""
    return f"{S / 1000:.0f}k" if S > 65536 else lb.length_str(S)


# ---------------------------------------------------------------------------
# Plan
# ---------------------------------------------------------------------------

@dataclass
class Case:
    part: str                 # attention | layer
    model: lb.Model
    variant: str
    batch: int
    seq_len: int
    ours: dict = field(default_factory=dict)
    torch: dict = field(default_factory=dict)

    @property
    def layer_cfg(self) -> lb.LayerConfig:
        return lb.LayerConfig(self.model, self.variant)

    @property
    def attn_cfg(self) -> ab.Config:
        m = self.model
        return ab.Config(self.variant, heads=m.heads,
                         groups=m.gqa_kv_heads if self.variant == "gqa" else None,
                         head_dim=m.head_dim, dtype="f32", causal=True)

    @property
    def cfg(self):
        return self.layer_cfg if self.part == "layer" else self.attn_cfg

    @property
    def q_kv(self) -> Tuple[int, int]:
        return self.layer_cfg.q_kv

    @property
    def label(self) -> str:
        return self.layer_cfg.label

    @property
    def shape(self) -> str:
        return f"{self.batch}x{lb.length_str(self.seq_len)}"

    def flops(self) -> Tuple[float, float]:
        """(projection, attention) FLOPs of one call."""
        if self.part == "layer":
            return lb.layer_flops(self.layer_cfg, self.batch, self.seq_len)
        return 0.0, ab.flops(self.attn_cfg, (self.batch, self.seq_len, self.seq_len))

    def key(self):
        return (self.part, self.model.name, self.batch, self.seq_len)


def assumed_rate(impl: str, what: str, head_dim: int) -> float:
    table = ASSUMED[impl][what]
    dims = sorted(table)
    return table[min(dims, key=lambda d: abs(math.log(d / head_dim)))]


def estimate_call(impl: str, part: str, model: lb.Model, variant: str, B: int, S: int) -> float:
    c = Case(part, model, variant, B, S)
    proj, attn = c.flops()
    return (proj / (assumed_rate(impl, "proj", model.head_dim) * 1e9)
            + attn / (assumed_rate(impl, "attn", model.head_dim) * 1e9) + 1e-3)


def batch_for(model: lb.Model, S: int, args) -> Tuple[int, Optional[str]]:
    """B = tokens / S, halved while our MHA layer call is estimated above
    --max-call-seconds or would not fit in memory."""
    want = max(1, args.tokens // S)
    B = want
    avail = harness.mem_available()
    mha = lb.LayerConfig(model, "mha")
    while B > 1 and (estimate_call("ours", "layer", model, "mha", B, S) > args.max_call_seconds
                     or (avail and 3 * lb.memory_bytes(mha, B, S) > 0.5 * avail)):
        B //= 2
    note = None if B == want else (f"{model.name} S={lb.length_str(S)}: B capped at {B} "
                                   f"(--tokens {args.tokens} wants {want})")
    return B, note


def make_plan(args) -> Tuple[List[Case], List[str]]:
    notes: List[str] = []
    variants = list(dict.fromkeys(["mha"] + list(args.variants)))
    cases: List[Case] = []
    batches: Dict[Tuple[str, int], int] = {}
    for part in args.parts:
        for mname in args.models:
            model = lb.MODELS[mname]
            if args.quick:
                lengths = list(QUICK_LENGTHS)
            elif args.lengths:
                lengths = list(args.lengths)
            else:
                base, extra = LENGTHS[(part, mname)]
                lengths = list(base) + (list(extra) if args.long else [])
            for S in lengths:
                if (mname, S) not in batches:
                    if args.quick:
                        B, note = 1, None
                    else:
                        B, note = batch_for(model, S, args)
                    batches[(mname, S)] = B
                    if note:
                        notes.append(note)
                for v in variants:
                    cases.append(Case(part, model, v, batches[(mname, S)], S))
    if args.quick:
        notes.append(f"--quick: S = {', '.join(map(str, QUICK_LENGTHS))}, B = 1 "
                     "(a smoke test, not a benchmark).")
    if "rsqa" in variants:
        notes.append("rSQA on PyTorch: q is repeat_interleave'd to Hkv heads (our head "
                     "mapping: output head h uses query head h // (Hkv/Hq)) inside the "
                     "timed call, then SDPA without enable_gqa.")
    return cases, notes


def estimate_case(c: Case, impl: str, args) -> float:
    t = estimate_call(impl, c.part, c.model, c.variant, c.batch, c.seq_len)
    s_w = lb.warmup_len(c.seq_len, args.warmup_length)
    t_w = estimate_call(impl, c.part, c.model, c.variant, c.batch, s_w)
    return harness.planned_call_seconds(t, t_w, args.warmup, args.repeats, args.min_repeats,
                                   args.max_case_seconds) + SWITCH_PAUSE_S


def estimate_seconds(cases: List[Case], args, with_torch: bool) -> Dict[str, float]:
    est = {"ours": sum(estimate_case(c, "ours", args) for c in cases)}
    est["torch"] = sum(estimate_case(c, "torch", args) for c in cases) if with_torch else 0.0
    est["builds"] = lb.BUILD_SECONDS * len({(c.part, c.cfg) for c in cases})
    est["checks"] = 0.5 * len({(c.part, c.model.name, c.variant) for c in cases}) * (
        2 if with_torch else 1) + (15 if "modern" in args.models else 0)
    est["other"] = 3 * 7 * args.peak_seconds + (5 if with_torch else 0)
    est["total"] = sum(est.values())
    return est


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------

class TorchSide:
    """PyTorch's SDPA and a PyTorch attention layer, timed like our libraries."""

    def __init__(self, threads: int, device: str = "cpu", dtype: str = "float32"):
        import torch
        import torch.nn.functional as F
        self.torch, self.F = torch, F
        self.device = device
        self.dtype = getattr(torch, dtype)
        if device == "cpu":
            torch.set_num_threads(threads)
        torch.set_grad_enabled(False)
        self.has_enable_gqa = "enable_gqa" in (F.scaled_dot_product_attention.__doc__ or "")

    def info(self) -> dict:
        t = self.torch
        return {"version": t.__version__, "threads": t.get_num_threads(),
                "interop_threads": t.get_num_interop_threads(),
                "mkl": t.backends.mkl.is_available(),
                "mkldnn": t.backends.mkldnn.is_available(),
                "cuda_available": t.cuda.is_available(),
                "parallel_info": t.__config__.parallel_info().strip().splitlines()}

    def tensor(self, a: np.ndarray):
        t = self.torch.from_numpy(a)
        return t.to(device=self.device, dtype=self.dtype)

    def sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def sdpa(self, q, k, v):
        """Causal SDPA of q [B, Hq, S, dh], k/v [B, Hkv, T, dh]."""
        hq, hkv = q.shape[1], k.shape[1]
        if hkv > hq:            # reverse SQA: our mapping is repeat_interleave
            q = q.repeat_interleave(hkv // hq, dim=1)
            hq = hkv
        if hq != hkv and not self.has_enable_gqa:
            k = k.repeat_interleave(hq // hkv, dim=1)
            v = v.repeat_interleave(hq // hkv, dim=1)
        kw = {"enable_gqa": True} if hq != hkv and self.has_enable_gqa else {}
        return self.F.scaled_dot_product_attention(q, k, v, is_causal=True, **kw)

    def backend(self, q, k, v) -> Optional[str]:
        """The SDPA backend PyTorch picks for these inputs (best effort)."""
        try:
            from torch.nn.attention import SDPBackend
            hq, hkv = q.shape[1], k.shape[1]
            if hkv > hq:
                q = q.repeat_interleave(hkv // hq, dim=1)
            kw = {"enable_gqa": True} if q.shape[1] != hkv else {}
            return SDPBackend(self.torch._fused_sdp_choice(q, k, v, None, 0.0, True,
                                                           **kw)).name
        except Exception:  # noqa: BLE001 - private API, informational only
            return None

    def timed(self, fn):
        """A call that returns its own seconds (synchronized on CUDA)."""
        def call():
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            return time.perf_counter() - t0
        return call

    def layer(self, cfg: lb.LayerConfig, weights: Dict[str, np.ndarray], max_len: int):
        return TorchLayer(self, cfg, weights, max_len)


class TorchLayer:
    """nn.Linear Q/K/V projections (x @ W: weight = W^T), rotate-half RoPE on
    q and k (base 10000, positions 0..S-1, tables precomputed up to max_len),
    causal SDPA, head merge, output nn.Linear. No biases (the suite's layers
    have none)."""

    def __init__(self, side: TorchSide, cfg: lb.LayerConfig, w: Dict[str, np.ndarray],
                 max_len: int):
        torch, nn = side.torch, side.torch.nn
        if cfg.bias or cfg.rope not in ("rotary", None) or not cfg.causal:
            raise ValueError("TorchLayer: only rotary or no RoPE, causal, no bias")
        self.side = side
        self.hq, self.hkv = cfg.q_kv
        self.dh = cfg.model.head_dim
        d = cfg.model.d_model

        def linear(wt):
            lin = nn.Linear(wt.shape[0], wt.shape[1], bias=False)
            lin.weight = nn.Parameter(side.tensor(np.ascontiguousarray(wt.T)),
                                      requires_grad=False)
            return lin.to(side.device)

        self.q, self.k, self.v = linear(w["w_q"]), linear(w["w_k"]), linear(w["w_v"])
        self.o = linear(w["w_o"])
        assert self.o.weight.shape == (d, max(self.hq, self.hkv) * self.dh)
        self.rope = cfg.rope is not None
        half = self.dh // 2
        inv_freq = 10000.0 ** (-2.0 * np.arange(half, dtype=np.float64) / self.dh)
        ang = np.arange(max_len, dtype=np.float64)[:, None] * inv_freq[None, :]
        ang = np.concatenate([ang, ang], axis=1)             # [max_len, dh]
        self.cos = side.tensor(np.cos(ang).astype(np.float32))
        self.sin = side.tensor(np.sin(ang).astype(np.float32))

    def _rope(self, t, S):
        half = self.dh // 2
        cos, sin = self.cos[:S], self.sin[:S]
        rot = self.side.torch.cat((-t[..., half:], t[..., :half]), dim=-1)
        return t * cos + rot * sin

    def __call__(self, x):
        B, S, _ = x.shape
        q = self.q(x).view(B, S, self.hq, self.dh).transpose(1, 2)
        k = self.k(x).view(B, S, self.hkv, self.dh).transpose(1, 2)
        v = self.v(x).view(B, S, self.hkv, self.dh).transpose(1, 2)
        if self.rope:
            q, k = self._rope(q, S), self._rope(k, S)
        a = self.side.sdpa(q, k, v)                       # [B, Hout, S, dh]
        return self.o(a.transpose(1, 2).reshape(B, S, -1))


def load_torch(args, threads: int, notes: List[str]) -> Optional[TorchSide]:
    if args.no_torch:
        notes.append("--no-torch: PyTorch was not run.")
        return None
    try:
        side = TorchSide(threads)
    except ImportError as e:
        notes.append(f"PyTorch not installed ({e}); only our libraries were timed "
                     "(pip install torch).")
        print("PyTorch not installed: only our libraries are timed", flush=True)
        return None
    if not side.has_enable_gqa:
        notes.append("This PyTorch's SDPA has no enable_gqa: k and v are "
                     "repeat_interleave'd to Hq heads inside the timed call.")
    return side


# ---------------------------------------------------------------------------
# Checks (small shapes, against the float64 numpy references)
# ---------------------------------------------------------------------------

def check_attention(lib, side: Optional[TorchSide], cfg: ab.Config, seed: int) -> dict:
    shape = (2, CHECK_LENGTH, CHECK_LENGTH)
    q, k, v, out = ab.make_inputs(cfg, shape, seed + 11)
    ab.call(lib, q, k, v, out)
    ref = reference.attention(q, k, v, causal=True, alignment="top_left")
    atol, rtol = ab.TOLERANCES["f32"]
    tol = atol + rtol * float(np.max(np.abs(ref)))
    res = {"shape": harness.shape_str(shape), "tol": tol}
    outs = {"ours": out}
    if side is not None:
        outs["torch"] = side.sdpa(side.tensor(q), side.tensor(k), side.tensor(v)).cpu().numpy()
    for impl, o in outs.items():
        err = float(np.max(np.abs(o - ref))) if np.isfinite(o).all() else float("inf")
        res[impl] = {"max_abs_err": err, "ok": bool(err <= tol)}
    return res


def check_layer(lib, side: Optional[TorchSide], cfg: lb.LayerConfig,
                w: Dict[str, np.ndarray], seed: int) -> dict:
    S = CHECK_LENGTH
    x = lb.make_x(cfg, 2, S, seed + 7)
    out = np.full_like(x, np.nan)
    lb.layer_call(lib, w, x, out, 2, S)
    hq, hkv = cfg.q_kv
    y, inter = layer_reference.attention_layer(
        x, w["w_q"], w["w_k"], w["w_v"], w["w_o"], q_heads=hq, kv_heads=hkv,
        head_dim=cfg.model.head_dim, rope=cfg.rope, causal=True, alignment="top_left",
        dtype="f32", return_intermediates=True)
    tol = layer_reference.layer_tolerance(y, inter["attn"], w["w_o"], dtype="f32",
                                          max_position=S)
    res = {"shape": f"2x{S}"}
    outs = {"ours": out}
    if side is not None:
        outs["torch"] = side.layer(cfg, w, S)(side.tensor(x)).cpu().numpy()
    for impl, o in outs.items():
        if not np.isfinite(o).all():
            res[impl] = {"max_abs_err": float("inf"), "ok": False}
            continue
        err = np.abs(o - y)
        res[impl] = {"max_abs_err": float(err.max()),
                     "worst_err_over_tol": float((err / tol).max()),
                     "ok": bool((err <= tol).all())}
    return res


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

def time_both(c: Case, ours_call, ours_warm, torch_call, torch_warm, args) -> None:
    """Ours, a pause, PyTorch's (if any), a pause; fills c.ours and c.torch."""
    waited, _ = (lb.wait_for_idle(args.wait_idle) if args.wait_idle > 0 else (0.0, None))
    for impl, call, warm in (("ours", ours_call, ours_warm),
                             ("torch", torch_call, torch_warm)):
        if call is None:
            continue
        snap = lb.cpu_snapshot()
        r = harness.stats(harness.time_calls(call, warm, args.warmup, args.repeats,
                                   args.min_repeats, args.max_case_seconds))
        after = lb.cpu_snapshot()
        # /proc/stat counts in clock ticks (10 ms): meaningless over short windows.
        r["others_cores"] = (lb.other_cores(snap, after) if snap and after
                             and after[2] - snap[2] >= MIN_OTHERS_WINDOW_S else None)
        r["waited_idle_s"] = waited if impl == "ours" else 0.0
        getattr(c, impl).update(r)
        time.sleep(SWITCH_PAUSE_S)


def run_attention_group(group: List[Case], builder: ab.Builder, kernel: str,
                        side: Optional[TorchSide], args) -> None:
    """All variants of one (model, B, S) for the attention part."""
    for c in group:
        cfg = c.attn_cfg
        B, S = c.batch, c.seq_len
        lib = builder.library(cfg, kernel)
        q, k, v, out = ab.make_inputs(cfg, (B, S, S), args.seed)
        s_w = lb.warmup_len(S, args.warmup_length)
        ours = (lambda: ab.call(lib, q, k, v, out),
                lambda: ab.call(lib, q, k, v, out, q_len=s_w, kv_len=s_w))
        tcall = twarm = None
        if side is not None:
            tq, tk, tv = side.tensor(q), side.tensor(k), side.tensor(v)
            tcall = side.timed(lambda: side.sdpa(tq, tk, tv))
            twarm = side.timed(lambda: side.sdpa(tq[:, :, :s_w], tk[:, :, :s_w],
                                                 tv[:, :, :s_w]))
            c.torch["backend"] = side.backend(tq, tk, tv)
        time_both(c, *ours, tcall, twarm, args)
        report_case(c)
        del q, k, v, out


def run_layer_group(group: List[Case], builder: lb.Builder, side: Optional[TorchSide],
                    weights: Dict, args) -> None:
    for c in group:
        cfg = c.layer_cfg
        B, S = c.batch, c.seq_len
        lib = builder.libs[cfg]
        w = weights[cfg]
        x = lb.make_x(cfg, B, S, args.seed)
        out = np.zeros_like(x)
        s_w = lb.warmup_len(S, args.warmup_length)
        ours = (lambda: lb.layer_call(lib, w, x, out, B, S),
                lambda: lb.layer_call(lib, w, x, out, B, s_w))
        tcall = twarm = None
        if side is not None:
            layer = side.layer(cfg, w, S)
            tx = side.tensor(x)
            tcall = side.timed(lambda: layer(tx))
            twarm = side.timed(lambda: layer(tx[:, :s_w]))
        time_both(c, *ours, tcall, twarm, args)
        report_case(c)
        del x, out


def report_case(c: Case) -> None:
    def one(r):
        if "median_s" not in r:
            return "-"
        return (f"{harness.fmt_ms(r['median_s'])} ms ({len(r['times_s'])} runs "
                f"{harness.fmt_ms(r['min_s'])}-{harness.fmt_ms(r['max_s'])}, cores "
                f"{r['cores_busy']:.1f})")
    ratio = ""
    if "median_s" in c.ours and "median_s" in c.torch:
        ratio = f"; torch/ours {c.torch['median_s'] / c.ours['median_s']:.2f}"
    print(f"  {c.part:9s} {c.model.name:6s} {c.label:11s} {c.shape:>7s}: ours {one(c.ours)}"
          + (f", torch {one(c.torch)}" if c.torch else "") + ratio, flush=True)


# ---------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------

def cuda_part(cases: List[Case], side: Optional[TorchSide], args, notes: List[str]) -> dict:
    """PyTorch on a GPU, when there is one. Our CUDA kernels are benchmarked by
    bench/cuda_bench.py (bash bench/cuda_device.sh), not here."""
    gpu = shutil.which("nvidia-smi") and subprocess.run(
        ["nvidia-smi", "-L"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True).returncode == 0
    if side is None:
        msg = ("no GPU" if not gpu else "GPU present but PyTorch not run") + \
            "; CUDA part skipped (our CUDA kernels: bench/cuda_bench.py)"
        notes.append("CUDA: " + msg + ".")
        return {"status": msg}
    if not side.torch.cuda.is_available() or args.no_cuda:
        msg = ("skipped (--no-cuda)" if args.no_cuda else "no GPU") + \
            "; CUDA part skipped (our CUDA kernels: bench/cuda_bench.py)"
        notes.append("CUDA: " + msg + ".")
        print("CUDA:", msg, flush=True)
        return {"status": msg}
    gside = TorchSide(0, "cuda", args.cuda_dtype)
    results = []
    for c in cases:
        entry = {"part": c.part, "model": c.model.name, "variant": c.variant,
                 "batch": c.batch, "seq_len": c.seq_len}
        try:
            if c.part == "attention":
                q, k, v, _ = ab.make_inputs(c.attn_cfg, (c.batch, c.seq_len, c.seq_len),
                                            args.seed)
                tq, tk, tv = gside.tensor(q), gside.tensor(k), gside.tensor(v)
                fn = gside.timed(lambda: gside.sdpa(tq, tk, tv))
            else:
                cfg = c.layer_cfg
                layer = gside.layer(cfg, lb.make_weights(cfg, args.seed), c.seq_len)
                tx = gside.tensor(lb.make_x(cfg, c.batch, c.seq_len, args.seed))
                fn = gside.timed(lambda: layer(tx))
            entry.update(harness.stats(harness.time_calls(fn, fn, 3, 10, 10, 1e9)))
        except Exception as e:  # noqa: BLE001 - report and go on
            entry["error"] = str(e).splitlines()[0][:200]
        results.append(entry)
        gside.torch.cuda.empty_cache()
    name = side.torch.cuda.get_device_name(0)
    notes.append(f"CUDA: PyTorch only ({args.cuda_dtype}) on {name}; sqa-aot has no CUDA "
                 "target yet.")
    return {"status": "ran", "device": name, "dtype": args.cuda_dtype, "results": results}


# ---------------------------------------------------------------------------
# Derived values and report
# ---------------------------------------------------------------------------

def derive(cases: List[Case], peak: Optional[float]) -> None:
    base = {}
    for c in cases:
        if c.variant == "mha":
            base[c.key()] = c
    for c in cases:
        proj, attn = c.flops()
        b = base.get(c.key())
        for impl in ("ours", "torch"):
            r = getattr(c, impl)
            if "median_s" not in r:
                continue
            r["flops"], r["attn_flops"] = proj + attn, attn
            r["gflops"] = r["flops"] / r["median_s"] / 1e9
            r["peak_percent"] = 100.0 * r["gflops"] / peak if peak else None
            rb = getattr(b, impl) if b else {}
            if "median_s" in rb:
                r["speedup_vs_mha"] = rb["median_s"] / r["median_s"]
                r["ideal_speedup_vs_mha"] = sum(b.flops()) / (proj + attn)
        if "median_s" in c.ours and "median_s" in c.torch:
            c.ours["torch_over_ours"] = c.torch["median_s"] / c.ours["median_s"]


def fx(v: Optional[float], digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}x"


def headline_table(cases: List[Case]) -> List[str]:
    """Dense layer speed-ups vs MHA: ours, PyTorch's, the paper's Table 3."""
    dense = [c for c in cases if c.part == "layer" and c.model.name == "dense"]
    if not dense:
        return []
    lengths = sorted({c.seq_len for c in dense})
    paper_only = [S for S in PAPER_LENGTHS if S not in lengths]
    has_torch = any("median_s" in c.torch for c in dense)
    headers = ["variant", "Hq/Hkv", "ideal"]
    for S in lengths:
        headers += [f"{lb.length_str(S)} ours"] + ([f"{lb.length_str(S)} torch"]
                                                   if has_torch else [])
        if S in PAPER_LENGTHS:
            headers.append(f"{lb.length_str(S)} paper")
    headers += [f"{slabel(S)} paper" for S in paper_only]
    rows = []
    for v in dict.fromkeys(c.variant for c in dense):
        vc = {c.seq_len: c for c in dense if c.variant == v}
        hq, hkv = next(iter(vc.values())).q_kv
        heads = lb.MODELS["dense"].heads
        row = [harness.PRETTY.get(v, v), f"{hq}/{hkv}", f"{heads / max(hq, hkv):g}x"]
        for S in lengths:
            c = vc.get(S)
            row.append(fx(c.ours.get("speedup_vs_mha")) if c else "-")
            if has_torch:
                row.append(fx(c.torch.get("speedup_vs_mha")) if c else "-")
            if S in PAPER_LENGTHS:
                row.append(fx(paper_speedup(v, S)))
        row += [fx(paper_speedup(v, S)) for S in paper_only]
        rows.append(row)
    Bs = ", ".join(f"{lb.length_str(S)}: B = {next(c.batch for c in dense if c.seq_len == S)}"
                   for S in lengths)
    return [
        "## Headline: speed-up vs MHA, dense model — ours and PyTorch (CPU, f32, attention "
        "layers) next to the paper's Table 3 (A100, bf16, whole model)", "",
        harness.table(headers, rows), "",
        f"ours/torch: MHA's median time of one layer call over this variant's, same B x S "
        f"({Bs}); ideal = H/Hq (the attention FLOP ratio, which the layer approaches as S "
        "grows); paper = MHA's seconds per step over this variant's in Table 3 (batch x S = "
        "131,072 tokens; 200k: batch 1). The paper times the whole model (embedding, 8 "
        "layers with FFN, 10k LM head), whose non-attention part does not shrink with Hq, "
        "so its speed-ups at short S are lower than a layer's (sqa-background.md section 5 "
        "derives a FLOP ceiling of SQA 1.26x / xSQA 1.38x at 1k rising to 1.97x / 3.80x at "
        "200k).", ""]


def ratio_tables(cases: List[Case]) -> List[str]:
    if not any("median_s" in c.torch for c in cases):
        return []
    out = ["## Ours vs PyTorch: PyTorch's median time / ours (> 1: ours is faster)", ""]
    for part in PARTS:
        for mname in dict.fromkeys(c.model.name for c in cases if c.part == part):
            pc = [c for c in cases if c.part == part and c.model.name == mname]
            shapes = list(dict.fromkeys((c.batch, c.seq_len) for c in pc))
            headers = ["variant", "Hq/Hkv"] + [f"{B}x{lb.length_str(S)}" for B, S in shapes]
            rows = []
            for v in dict.fromkeys(c.variant for c in pc):
                hq, hkv = next(c for c in pc if c.variant == v).q_kv
                row = [harness.PRETTY.get(v, v), f"{hq}/{hkv}"]
                for B, S in shapes:
                    c = next((x for x in pc if x.variant == v and (x.batch, x.seq_len) == (B, S)),
                             None)
                    row.append(fx(c.ours.get("torch_over_ours")) if c else "-")
                rows.append(row)
            m = lb.MODELS[mname]
            what = ("attention core (SDPA)" if part == "attention"
                    else "attention layer (projections + RoPE + SDPA + output)")
            out += [f"### {what}, {mname}: d_model {m.d_model}, H {m.heads}, "
                    f"d_head {m.head_dim}", "", harness.table(headers, rows), ""]
    return out


def eight_layer_table(cases: List[Case]) -> List[str]:
    dense = [c for c in cases if c.part == "layer" and c.model.name == "dense"]
    if not dense:
        return []
    lengths = sorted({c.seq_len for c in dense})
    has_torch = any("median_s" in c.torch for c in dense)
    headers = ["variant", "Hq/Hkv"]
    for S in lengths:
        B = next(c.batch for c in dense if c.seq_len == S)
        headers += [f"{B}x{lb.length_str(S)} ours"] + (
            [f"{B}x{lb.length_str(S)} torch"] if has_torch else [])
    rows = []
    for v in dict.fromkeys(c.variant for c in dense):
        vc = {c.seq_len: c for c in dense if c.variant == v}
        hq, hkv = next(iter(vc.values())).q_kv
        row = [harness.PRETTY.get(v, v), f"{hq}/{hkv}"]
        for S in lengths:
            c = vc.get(S)
            for impl in ("ours", "torch") if has_torch else ("ours",):
                r = getattr(c, impl) if c else {}
                row.append(f"{8 * r['median_s']:.3f} s" if "median_s" in r else "-")
        rows.append(row)
    return ["## Dense model: seconds per forward of its 8 attention layers (8 x the median "
            "of one layer call)", "", harness.table(headers, rows), ""]


def detail_table(cases: List[Case], part: str) -> str:
    headers = ["model", "config", "Hq/Hkv", "BxS", "ours ms", "min-max", "GFLOP/s",
               "% peak", "vs MHA", "ideal", "torch ms", "min-max", "torch GFLOP/s",
               "torch vs MHA", "torch/ours", "cores ours/torch", "others", "check"]
    rows = []
    for c in (c for c in cases if c.part == part):
        o, t = c.ours, c.torch
        hq, hkv = c.q_kv

        def ms(r, k="median_s"):
            return harness.fmt_ms(r[k]) if k in r else "-"
        chk = o.get("check", {})
        chk_s = " ".join(f"{impl} {'ok' if chk[impl]['ok'] else 'FAIL'}"
                         for impl in ("ours", "torch") if impl in chk) or "-"
        others = max([r.get("others_cores") or 0 for r in (o, t) if r] or [0])
        rows.append([
            c.model.name, harness.PRETTY.get(c.variant, c.variant), f"{hq}/{hkv}", c.shape,
            ms(o) if "error" not in o else f"ERROR: {o['error']}",
            f"{ms(o, 'min_s')}-{ms(o, 'max_s')}" if "median_s" in o else "-",
            f"{o['gflops']:.1f}" if "gflops" in o else "-",
            f"{o['peak_percent']:.0f}" if o.get("peak_percent") is not None else "-",
            fx(o.get("speedup_vs_mha")), fx(o.get("ideal_speedup_vs_mha")),
            ms(t) if "error" not in t else f"ERROR: {t['error']}",
            f"{ms(t, 'min_s')}-{ms(t, 'max_s')}" if "median_s" in t else "-",
            f"{t['gflops']:.1f}" if "gflops" in t else "-",
            fx(t.get("speedup_vs_mha")), fx(o.get("torch_over_ours")),
            "/".join(f"{r['cores_busy']:.1f}" for r in (o, t) if r.get("cores_busy") is not None)
            or "-",
            f"{others:.1f}", chk_s])
    return harness.table(headers, rows)


def paper_reference_table() -> List[str]:
    headers = ["seq (batch)"] + [harness.PRETTY.get(v, "SWA(128)") for v in PAPER_TABLE3]
    rows = [[f"{S:,} ({B})"] + [f"{PAPER_TABLE3[v][i]:.4f}" for v in PAPER_TABLE3]
            for i, (S, B) in enumerate(zip(PAPER_LENGTHS, PAPER_BATCH))]
    return ["## The paper's Table 3 (seconds per forward step, dense model, A100)", "",
            harness.table(headers, rows), ""]


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------

def plot_all(cases: List[Case], base: str, title: str) -> Tuple[List[str], Optional[str]]:
    """Writes base-time.png, base-speedup.png and (with PyTorch) base-vs-torch.png;
    returns (paths, error)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, NullLocator
    except ImportError as e:
        return [], f"matplotlib not installed ({e}); no plots (pip install matplotlib)"

    variants = list(dict.fromkeys(c.variant for c in cases))
    colors = {v: plt.get_cmap("tab10")(i % 10) for i, v in enumerate(variants)}
    panels = [(p, m) for p in PARTS for m in ("dense", "modern")
              if any(c.part == p and c.model.name == m for c in cases)]
    has_torch = any("median_s" in c.torch for c in cases)
    paths = []

    def fig_axes():
        n = len(panels)
        cols = 2 if n > 1 else 1
        rows = (n + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 4.6 * rows), squeeze=False)
        for ax in axes.flat[n:]:
            ax.set_visible(False)
        return fig, list(axes.flat[:n])

    def xaxis(ax, lengths):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(lengths))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([slabel(S) for S in lengths])
        ax.set_xlabel("sequence length S")
        ax.grid(True, which="major", alpha=0.3)

    def panel_title(part, m, cs):
        model = lb.MODELS[m]
        bs = ", ".join(f"{lb.length_str(S)}:B={B}" for B, S in
                       dict.fromkeys((c.batch, c.seq_len) for c in cs))
        what = "attention core" if part == "attention" else "attention layer"
        return (f"{what}, {m} (H {model.heads}, d_head {model.head_dim})\n{bs}")

    # 1. time per token against S
    fig, axes = fig_axes()
    for ax, (part, m) in zip(axes, panels):
        cs = [c for c in cases if c.part == part and c.model.name == m]
        lengths = sorted({c.seq_len for c in cs})
        for v in variants:
            for impl, style in (("ours", "-"), ("torch", "--")):
                pts = sorted((c.seq_len, getattr(c, impl), c.batch * c.seq_len)
                             for c in cs if c.variant == v and "median_s" in getattr(c, impl))
                if not pts:
                    continue
                xs = [p[0] for p in pts]
                ys = [p[1]["median_s"] / p[2] * 1e6 for p in pts]
                lo = [y - p[1]["min_s"] / p[2] * 1e6 for y, p in zip(ys, pts)]
                hi = [p[1]["max_s"] / p[2] * 1e6 - y for y, p in zip(ys, pts)]
                hq, hkv = lb.LayerConfig(cs[0].model, v).q_kv
                ax.errorbar(xs, ys, yerr=[lo, hi], color=colors[v], linestyle=style,
                            marker="o" if impl == "ours" else "s", markersize=4,
                            mfc=colors[v] if impl == "ours" else "none", capsize=2,
                            linewidth=1.6 if impl == "ours" else 1.0,
                            label=(f"{harness.PRETTY.get(v, v)} {hq}/{hkv}" if impl == "ours"
                                   else None))
        ax.set_yscale("log")
        xaxis(ax, lengths)
        ax.set_ylabel("µs per token (median time / (B·S))")
        ax.set_title(panel_title(part, m, cs), fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    if has_torch:
        from matplotlib.lines import Line2D
        handles += [Line2D([], [], color="k", linestyle="-", marker="o", markersize=4),
                    Line2D([], [], color="k", linestyle="--", marker="s", mfc="none",
                           markersize=4)]
        labels += ["ours (sqa-aot)", "PyTorch"]
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 9), fontsize=8,
               frameon=False)
    fig.suptitle(f"{title}: time per token (log-log), bars = min-max", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    paths.append(base + "-time.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    # 2. speed-up against MHA, ideal H/Hq lines, the paper's Table 3
    fig, axes = fig_axes()
    for ax, (part, m) in zip(axes, panels):
        cs = [c for c in cases if c.part == part and c.model.name == m]
        lengths = sorted({c.seq_len for c in cs})
        heads = lb.MODELS[m].heads
        ideals = set()
        for v in variants:
            hq, hkv = lb.LayerConfig(lb.MODELS[m], v).q_kv
            ideals.add(heads / max(hq, hkv))
            for impl, style in (("ours", "-"), ("torch", "--")):
                pts = sorted((c.seq_len, getattr(c, impl)["speedup_vs_mha"]) for c in cs
                             if c.variant == v and getattr(c, impl).get("speedup_vs_mha"))
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colors[v],
                            linestyle=style, marker="o" if impl == "ours" else "s",
                            markersize=4, mfc=colors[v] if impl == "ours" else "none",
                            linewidth=1.6 if impl == "ours" else 1.0,
                            label=f"{harness.PRETTY.get(v, v)} {hq}/{hkv}" if impl == "ours"
                            else None)
            if part == "layer" and m == "dense" and v in PAPER_TABLE3:
                ax.plot(PAPER_LENGTHS, [paper_speedup(v, S) for S in PAPER_LENGTHS],
                        color=colors[v], linestyle=":", marker="x", markersize=6,
                        linewidth=1.0)
        for ideal in sorted(ideals):
            ax.axhline(ideal, color="grey", linestyle=(0, (1, 3)), linewidth=1.0)
            ax.annotate(f"ideal H/Hq = {ideal:g}", (1.0, ideal), xycoords=("axes fraction",
                        "data"), xytext=(-4, 2), textcoords="offset points", ha="right",
                        va="bottom", fontsize=7, color="grey")
        if part == "layer" and m == "dense":
            lengths = sorted(set(lengths) | set(PAPER_LENGTHS))
        xaxis(ax, lengths)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("speed-up vs MHA (MHA time / variant time)")
        ax.set_title(panel_title(part, m, cs), fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    from matplotlib.lines import Line2D
    handles += [Line2D([], [], color="k", linestyle="-", marker="o", markersize=4)]
    labels += ["ours (sqa-aot)"]
    if has_torch:
        handles += [Line2D([], [], color="k", linestyle="--", marker="s", mfc="none",
                           markersize=4)]
        labels += ["PyTorch (vs PyTorch MHA)"]
    if any(p == ("layer", "dense") for p in panels):
        handles += [Line2D([], [], color="k", linestyle=":", marker="x")]
        labels += ["paper Table 3 (A100, whole model)"]
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8,
               frameon=False)
    fig.suptitle(f"{title}: speed-up against MHA", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    paths.append(base + "-speedup.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    # 3. PyTorch's time over ours
    if has_torch:
        fig, axes = fig_axes()
        for ax, (part, m) in zip(axes, panels):
            cs = [c for c in cases if c.part == part and c.model.name == m]
            lengths = sorted({c.seq_len for c in cs})
            for v in variants:
                pts = sorted((c.seq_len, c.ours["torch_over_ours"]) for c in cs
                             if c.variant == v and c.ours.get("torch_over_ours"))
                if pts:
                    hq, hkv = lb.LayerConfig(lb.MODELS[m], v).q_kv
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colors[v],
                            marker="o", markersize=4, label=f"{harness.PRETTY.get(v, v)} {hq}/{hkv}")
            ax.axhline(1.0, color="grey", linestyle="--", linewidth=1.0)
            lo, hi = ax.get_ylim()
            ax.set_ylim(min(lo, 0.9), max(hi, 1.1))
            ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda y, _: f"{y:.2f}x"))
            xaxis(ax, lengths)
            ax.set_ylabel("PyTorch time / our time (> 1: ours faster)")
            ax.set_title(panel_title(part, m, cs), fontsize=9)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7),
                   fontsize=8, frameon=False)
        fig.suptitle(f"{title}: ours vs PyTorch (same threads, f32)", fontsize=11)
        fig.tight_layout(rect=(0, 0.05, 1, 0.96))
        paths.append(base + "-vs-torch.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths, None


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sqa-aot", default=os.path.join(REPO, "build", "bin", "sqa-aot"),
                   help="sqa-aot binary (default: <repo>/build/bin/sqa-aot)")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                   help="attention (the core, vs SDPA) and/or layer (default both)")
    p.add_argument("--models", nargs="+", choices=sorted(lb.MODELS), default=["dense", "modern"])
    p.add_argument("--variants", nargs="+", choices=reference.VARIANTS, default=list(VARIANTS),
                   help="head variants (default: all but rsqa); mha is always added")
    p.add_argument("--lengths", type=lb.parse_lengths, metavar="S[,S...]",
                   help="sequence lengths for every part and model (default: dense 1k,4k,16k; "
                        "modern attention 1k,4k, layer 1k; --long adds dense 32k, modern "
                        "attention 16k,32k and layer 4k,16k,32k)")
    p.add_argument("--long", action="store_true",
                   help=f"add the long lengths and use the paper's batching (--tokens "
                        f"{PAPER_TOKENS}, --max-call-seconds 60): hours")
    p.add_argument("--tokens", type=int,
                   help=f"batch x S per call: B = tokens / S (default {DEFAULT_TOKENS}; "
                        f"--long {PAPER_TOKENS}, the paper's), halved while our MHA layer "
                        "call is estimated above --max-call-seconds; at least 1")
    p.add_argument("--max-call-seconds", type=float,
                   help="cap on the estimated MHA layer call when choosing B (default 3; "
                        "--long 60)")
    p.add_argument("--no-torch", action="store_true", help="time our libraries only")
    p.add_argument("--no-cuda", action="store_true", help="skip the CUDA part")
    p.add_argument("--cuda-dtype", choices=("bfloat16", "float16", "float32"),
                   default="bfloat16", help="dtype of the PyTorch GPU timings (default bfloat16)")
    p.add_argument("--threads", type=int,
                   help="threads for our libraries (OMP_NUM_THREADS), PyTorch "
                        "(torch.set_num_threads) and the FMA peak (default: all cores)")
    harness.add_timing_arguments(p, 7, 3, 1.5, 512)
    p.add_argument("--wait-idle", type=float, default=5.0,
                   help="before each case wait up to this many seconds for other "
                        "processes to go idle (default 5; 0: don't)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: S = {QUICK_LENGTHS}, B = 1, 2 repeats; writes "
                        "paper-<date>-quick.*")
    harness.add_run_arguments(p, "paper")
    p.add_argument("--replot", metavar="JSON",
                   help="only redraw the PNGs of a saved run (paper-<date>.json) next to it")
    return p


def replot(path: str) -> int:
    import json
    with open(path) as f:
        doc = json.load(f)
    cases = []
    for r in doc["results"]:
        c = Case(r["part"], lb.MODELS[r["model"]], r["variant"], r["batch"], r["seq_len"])
        c.ours.update(r.get("ours") or {})
        c.torch.update(r.get("torch") or {})
        cases.append(c)
    base = path[:-5] if path.endswith(".json") else path
    title = "SQA paper suite" + (" (--quick smoke test, not a benchmark)"
                                 if doc.get("quick") else "")
    paths, err = plot_all(cases, base, f"{title}, {doc['date'][:10]}")
    for p in paths:
        print("wrote", p)
    if err:
        print(err, file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.replot:
        return replot(args.replot)
    if args.tokens is None:
        args.tokens = PAPER_TOKENS if args.long else DEFAULT_TOKENS
    if args.max_call_seconds is None:
        args.max_call_seconds = 60.0 if args.long else 3.0
    if args.quick:
        args.repeats = min(args.repeats, 2)
        args.min_repeats = min(args.min_repeats, 2)
        args.peak_seconds = min(args.peak_seconds, 0.1)
        args.wait_idle = min(args.wait_idle, 1.0)
    if args.tokens < 1 or args.repeats < 1:
        parser.error("--tokens and --repeats must be >= 1")
    args.min_repeats = max(1, min(args.min_repeats, args.repeats))

    machine = harness.cpu_info()
    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                               else machine["nproc"])
    os.environ["OMP_NUM_THREADS"] = str(threads)   # before any library is loaded

    sqa_aot = os.path.abspath(args.sqa_aot)
    if not os.access(sqa_aot, os.X_OK):
        print(f"error: {sqa_aot} is not an executable; build the project first "
              f"or pass --sqa-aot", file=sys.stderr)
        return 2
    kernel_flag = harness.aot_supports_kernel(sqa_aot)
    kernel = "flash" if kernel_flag else "reference"

    cases, notes = make_plan(args)
    torch_found = (not args.no_torch) and importlib.util.find_spec("torch") is not None
    est = estimate_seconds(cases, args, torch_found)
    print(f"sqa-aot: {sqa_aot} (kernel {kernel}); threads {threads}; cases {len(cases)}; "
          f"PyTorch: {'yes' if torch_found else 'no (--no-torch)' if args.no_torch else 'not installed'}")
    for n in notes:
        print("note:", n)
    for key in dict.fromkeys(c.key() for c in cases):
        cs = [c for c in cases if c.key() == key]
        t_o = sum(estimate_case(c, "ours", args) for c in cs)
        t_t = sum(estimate_case(c, "torch", args) for c in cs) if torch_found else 0.0
        proj, attn = cs[0].flops()
        print(f"  {key[0]:9s} {key[1]:6s} B={key[2]:<4d} S={lb.length_str(key[3]):>4s}: "
              f"{len(cs)} variants, MHA {(proj + attn) / 1e9:8.1f} GFLOP, ~{t_o:6.1f} s ours"
              + (f" + ~{t_t:6.1f} s PyTorch" if torch_found else ""))
    print(f"estimated time: ~{est['total'] / 60:.1f} min (ours {est['ours'] / 60:.1f}, PyTorch "
          f"{est['torch'] / 60:.1f}, builds/checks/peak {(est['builds'] + est['checks'] + est['other']) / 60:.1f};"
          " assumed GFLOP/s: "
          + "; ".join(f"{impl} attention " + ", ".join(f"{r:g} at d_head {d}"
                                                       for d, r in ASSUMED[impl]['attn'].items())
                      + ", projections " + ", ".join(f"{r:g} at d_head {d}"
                                                     for d, r in ASSUMED[impl]['proj'].items())
                      for impl in ASSUMED)
          + f"; {args.warmup} warm-up + {args.min_repeats}-{args.repeats} timed calls per "
          f"case and implementation, more than {args.min_repeats} only while they add up "
          f"to < {args.max_case_seconds:g} s)")
    if args.dry_run:
        return 0

    started = time.perf_counter()
    date = datetime.datetime.now()
    return harness.in_build_dir(
        args, "sqa-paper-suite-",
        lambda build_dir: run(args, machine, threads, sqa_aot, kernel_flag, kernel, cases,
                              notes, build_dir, date, started, est))


def run(args, machine, threads, sqa_aot, kernel_flag, kernel, cases, notes, build_dir,
        date, started, est) -> int:
    load_start = lb.loadavg()
    side = load_torch(args, threads, notes)
    peaks = harness.start_peaks(args.cc, build_dir, threads, args.peak_seconds, notes)
    failures = 0

    # Every library first.
    abuilder = ab.Builder(sqa_aot, build_dir, kernel_flag, reuse=bool(args.build_dir))
    lbuilder = lb.Builder(sqa_aot, build_dir, kernel if kernel_flag else None,
                          reuse=bool(args.build_dir))
    build_errors = {}
    for c in cases:
        key = (c.part, c.cfg)
        if key in build_errors:
            continue
        try:
            if c.part == "attention":
                abuilder.library(c.attn_cfg, kernel)
            else:
                lbuilder.library(c.layer_cfg, kernel)
        except (aot.AOTError, OSError) as e:
            build_errors[key] = str(e).splitlines()[0][:200]
            failures += 1
            print(f"build {c.part} {c.cfg.spec} ERROR: {e}", flush=True)
    print(f"built {len(abuilder.libs) + len(lbuilder.libs)} libraries in "
          f"{abuilder.build_seconds + lbuilder.build_seconds:.1f} s", flush=True)

    # Checks at S = 64 against the numpy references, ours and PyTorch's.
    weights = {}
    checks = {}
    for c in cases:
        key = (c.part, c.cfg)
        if key in build_errors or key in checks:
            continue
        try:
            if c.part == "attention":
                checks[key] = check_attention(abuilder.library(c.attn_cfg, kernel), side,
                                              c.attn_cfg, args.seed)
            else:
                if c.layer_cfg not in weights:
                    weights[c.layer_cfg] = lb.make_weights(c.layer_cfg, args.seed)
                checks[key] = check_layer(lbuilder.libs[c.layer_cfg], side, c.layer_cfg,
                                          weights[c.layer_cfg], args.seed)
        except (aot.AOTError, ab.ForwardError, OSError, ValueError) as e:
            checks[key] = {"ours": {"ok": False, "error": str(e)[:200]}}
        bad = [impl for impl in ("ours", "torch") if impl in checks[key]
               and not checks[key][impl]["ok"]]
        if bad:
            failures += 1
            print(f"check {c.part} {c.model.name} {c.label}: FAIL {bad} {checks[key]}",
                  flush=True)
    print(f"checked {len(checks)} configurations at S = {CHECK_LENGTH} against numpy: "
          f"{sum(all(v.get('ok') for k, v in r.items() if k in ('ours', 'torch')) for r in checks.values())} ok",
          flush=True)

    # Timing, grouped by (part, model, B, S).
    for key in dict.fromkeys(c.key() for c in cases):
        group = [c for c in cases if c.key() == key and (c.part, c.cfg) not in build_errors]
        for c in cases:
            if c.key() == key and (c.part, c.cfg) in build_errors:
                c.ours["error"] = build_errors[(c.part, c.cfg)]
        print(f"[{key[0]} {key[1]} B={key[2]} S={lb.length_str(key[3])}]", flush=True)
        try:
            if key[0] == "attention":
                run_attention_group(group, abuilder, kernel, side, args)
            else:
                for c in group:
                    if c.layer_cfg not in weights:
                        weights[c.layer_cfg] = lb.make_weights(c.layer_cfg, args.seed)
                run_layer_group(group, lbuilder, side, weights, args)
        except (aot.AOTError, ab.ForwardError, OSError, MemoryError, RuntimeError) as e:
            failures += 1
            print("ERROR:", e, flush=True)
            for c in group:
                if "median_s" not in c.ours:
                    c.ours["error"] = str(e).splitlines()[0][:200]
        for c in group:
            c.ours["check"] = checks.get((c.part, c.cfg))
    weights.clear()

    peak = peaks.finish(notes)
    load_end = lb.loadavg()
    cuda = cuda_part(cases, side, args, notes)
    derive(cases, peak)

    contended = [c for c in cases if max((r.get("others_cores") or 0)
                                         for r in (c.ours, c.torch)) >= lb.OTHERS_BUSY]
    if contended:
        notes.append(f"Other processes kept >= {lb.OTHERS_BUSY} cores busy during "
                     f"{len(contended)} of {len(cases)} cases (column others): "
                     + ", ".join(f"{c.part} {c.model.name} {c.label} {c.shape}"
                                 for c in contended)
                     + ". Those times are longer than on an idle machine.")

    elapsed = time.perf_counter() - started
    harness.machine_record(machine, threads, sqa_aot, peaks)
    machine["loadavg_start"], machine["loadavg_end"] = load_start, load_end
    tinfo = side.info() if side else None
    if tinfo:
        machine["torch"] = tinfo

    title = "SQA paper suite" + (" (--quick smoke test, not a benchmark)" if args.quick else "")
    stem = f"paper-{date:%Y-%m-%d}" + ("-quick" if args.quick else "")
    base = harness.unique_path(args.out_dir, stem)
    plots, plot_error = ([], None)
    if not args.no_write:
        os.makedirs(args.out_dir, exist_ok=True)
        plots, plot_error = plot_all(cases, base, f"{title}, {date:%Y-%m-%d}")
        if plot_error:
            notes.append(plot_error)

    header = harness.machine_lines(machine, peaks)
    header.insert(2, f"* our kernel: **{kernel}** (sqa-aot libraries via ctypes)")
    header.insert(3, "* PyTorch: " + (
        f"{tinfo['version']}, torch.set_num_threads({tinfo['threads']}), MKL "
        f"{'yes' if tinfo['mkl'] else 'no'}, oneDNN {'yes' if tinfo['mkldnn'] else 'no'}; "
        "SDPA backend "
        + ", ".join(sorted({str(c.torch.get('backend')) for c in cases
                            if c.part == 'attention' and c.torch}) or ["-"])
        if tinfo else "not run"))
    md = [f"# {title}, {date:%Y-%m-%d %H:%M}", "", *header,
          "* shapes: f32, causal (top-left = bottom-right, S = T), self-attention; layers "
          "with rotary RoPE (base 10000, rotate-half), no biases; B x S = "
          f"{args.tokens} tokens per call, B halved while our MHA layer call is estimated "
          f"above {args.max_call_seconds:g} s",
          "* models: " + "; ".join(f"{m.name}: d_model {m.d_model}, H {m.heads}, d_head "
                                   f"{m.head_dim}, GQA {m.heads}/{m.gqa_kv_heads}"
                                   for m in (lb.MODELS[n] for n in args.models)),
          f"* FLOPs: attention core {ab.FLOP_CONVENTION}; layer {lb.FLOP_CONVENTION}.",
          f"* timing: per case and implementation {args.warmup} warm-up call at S <= "
          f"{args.warmup_length or 'full'}, then {args.min_repeats}-{args.repeats} timed calls "
          f"(time.perf_counter; more than {args.min_repeats} only while they add up to < "
          f"{args.max_case_seconds:g} s); ours first, then PyTorch, {SWITCH_PAUSE_S:g} s "
          f"apart; estimated {est['total'] / 60:.1f} min, total run {elapsed / 60:.1f} min; "
          f"load average (1 min) {load_start[0] if load_start else '?'} at start, "
          f"{load_end[0] if load_end else '?'} at end.",
          "* checks: every library and its PyTorch counterpart once at B = 2, S = "
          f"{CHECK_LENGTH} against the float64 numpy references (sqa_mlir.reference, "
          "layer_reference).", ""]
    if notes:
        md += ["Notes:", ""] + [f"* {n}" for n in notes] + [""]
    if plots:
        md += ["Plots: " + ", ".join(f"[{os.path.basename(p)}]({os.path.basename(p)})"
                                     for p in plots), ""]
    md += headline_table(cases)
    md += ratio_tables(cases)
    md += eight_layer_table(cases)
    for part in args.parts:
        md += [f"## All cases: {'attention core' if part == 'attention' else 'attention layer'}",
               "", detail_table(cases, part), ""]
    if cuda.get("results"):
        md += [f"## CUDA: PyTorch on {cuda['device']} ({cuda['dtype']})", "",
               harness.table(["part", "model", "variant", "BxS", "median ms", "min-max"],
                        [[r["part"], r["model"], harness.PRETTY.get(r["variant"], r["variant"]),
                          f"{r['batch']}x{lb.length_str(r['seq_len'])}",
                          harness.fmt_ms(r.get("median_s")),
                          f"{harness.fmt_ms(r.get('min_s'))}-{harness.fmt_ms(r.get('max_s'))}"
                          if "median_s" in r else r.get("error", "-")]
                         for r in cuda["results"]]), ""]
    md += paper_reference_table()
    md_text = "\n".join(md)
    print()
    print(md_text)

    doc = {
        "schema": 1,
        "benchmark": "paper-suite",
        "date": date.isoformat(timespec="seconds"),
        "quick": bool(args.quick),
        "kernel": kernel,
        "machine": machine,
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()},
        "estimated_s": est,
        "notes": notes,
        "flop_convention": {"attention": ab.FLOP_CONVENTION, "layer": lb.FLOP_CONVENTION},
        "models": {n: vars(lb.MODELS[n]) for n in args.models},
        "paper_table3": {"lengths": PAPER_LENGTHS, "batch": PAPER_BATCH,
                         "seconds": PAPER_TABLE3},
        "results": [dict(part=c.part, model=c.model.name, variant=c.variant, label=c.label,
                         q_heads=c.q_kv[0], kv_heads=c.q_kv[1], batch=c.batch,
                         seq_len=c.seq_len, ours=c.ours, torch=c.torch or None)
                    for c in cases],
        "cuda": cuda,
        "plots": [os.path.basename(p) for p in plots],
        "elapsed_s": elapsed,
    }
    if not args.no_write:
        written = harness.write_results(args.out_dir, stem, md_text, doc)
        if written != base:
            print(f"warning: wrote {written}.* but the plots are {base}-*.png")
        for p in plots:
            print("wrote", p)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
