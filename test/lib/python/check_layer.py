#!/usr/bin/env python3
"""Check a whole-layer library built by ``sqa-aot --layer`` against numpy.

  python3 test/lib/python/check_layer.py --sqa-aot build/bin/sqa-aot \\
      --variant sqa --heads 16 --head-dim 16 --cross-attention \\
      --rope rotary --rope-queries-only --bias q,k,v,o --causal top-left \\
      --shapes 2x12x20,1x5x3

Builds one layer library (into --outdir, default a temporary directory),
fills x (and memory) with N(0, 1) values and every weight with N(0, 1) /
sqrt(fan_in) (biases N(0, 1) / 2), so activations stay O(1), calls
NAME_layer_forward through ctypes (sqa_mlir.aot.LayerLibrary) for every
shape BxSxT (T, the memory length, only matters with --cross-attention; BxS
is accepted for self-attention) and compares with
sqa_mlir.layer_reference.attention_layer, one line per shape:

  PASS <config> B=.. S=.. T=.. max_abs_err=<e> tol=<t>
  FAIL <config> B=.. S=.. T=.. max_abs_err=<e> tol=<t> (reason)

The tolerance is element-wise (layer_reference.layer_tolerance); tol= is the
one at the element with the largest error.

--error-paths checks argument validation instead (null pointers, missing
configured biases, ignored unconfigured biases and memory, bad and
overflowing sizes, misaligned pointers, out aliasing an input, error
strings, config string): one 'PASS error-paths <case> ...' or
'FAIL error-paths <case> ...' line per case.

--backward checks NAME_layer_backward instead: every gradient against
sqa_mlir.layer_reference.attention_layer_backward ('PASS backward <config>
B=.. S=.. T=.. ...' per shape); --backward-error-paths its argument checks.

--selftest checks the numpy reference itself (no library is built; --sqa-aot
is not needed): one 'PASS selftest <case>' or 'FAIL selftest <case>' line per
check. --parameter-counts prints the configuration's parameter counts as
the reference computes them, in sqa-aot --print-config's words.

Exit status 1 if anything failed. Options with negative numbers need '=':
--window=-1,8 .
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile

import testpaths  # noqa: E402,F401  (makes sqa_mlir importable)

import numpy as np  # noqa: E402

from sqa_mlir import aot, reference  # noqa: E402
from sqa_mlir import layer_reference as L  # noqa: E402
from sqa_mlir.cli import parse_window  # noqa: E402
from sqa_mlir.reference import from_storage, nan_storage, to_storage  # noqa: E402

ALIGNMENT_CHOICES = ("top-left", "bottom-right", "top_left", "bottom_right")
ROPE_CHOICES = ("rotary", "linear", "dynamic-ntk", "dynamic_ntk")


def _alignment(value):
    return None if value is None else value.replace("-", "_")


def parse_layer_shapes(text: str):
    """'2x12x20,1x5' -> [(2, 12, 20), (1, 5, None)]."""
    shapes = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.lower().split("x")
        if len(parts) not in (2, 3):
            raise argparse.ArgumentTypeError(f"bad shape {item!r}; expected BxSxT or BxS")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad shape {item!r}; expected BxSxT or BxS")
        if min(nums) < 1:
            raise argparse.ArgumentTypeError(f"bad shape {item!r}: sizes must be >= 1")
        shapes.append((nums[0], nums[1], nums[2] if len(nums) == 3 else None))
    if not shapes:
        raise argparse.ArgumentTypeError("no shapes given")
    return shapes


def parse_bias(text: str):
    names = [b.strip().lower() for b in text.split(",") if b.strip()]
    if text.strip().lower() in ("all",):
        names = list(aot.BIAS_NAMES)
    bad = [b for b in names if b not in aot.BIAS_NAMES]
    if bad:
        raise argparse.ArgumentTypeError(f"bad bias names {bad}; expected a subset of q,k,v,o")
    return tuple(b for b in aot.BIAS_NAMES if b in names)


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sqa-aot", help="the sqa-aot binary (not needed for --selftest)")
    g = p.add_argument_group("configuration (passed to sqa-aot --layer)")
    g.add_argument("--variant", choices=reference.VARIANTS)
    g.add_argument("--heads", type=int, help="total heads H (d_model = H * head_dim)")
    g.add_argument("--groups", type=int)
    g.add_argument("--q-heads", type=int)
    g.add_argument("--kv-heads", type=int)
    g.add_argument("--head-dim", type=int)
    g.add_argument("--dtype", choices=reference.DTYPES, default="f32")
    g.add_argument("--cross-attention", action="store_true",
                   help="keys and values from a memory [B, T, d_model]")
    g.add_argument("--rope", choices=ROPE_CHOICES)
    g.add_argument("--rope-base", type=float)
    g.add_argument("--rope-factor", type=float)
    g.add_argument("--rope-original-max", type=int)
    g.add_argument("--rope-offset", type=int)
    g.add_argument("--rope-queries-only", action="store_true")
    g.add_argument("--bias", type=parse_bias, default=(),
                   help="configured biases, a subset of q,k,v,o")
    g.add_argument("--causal", choices=ALIGNMENT_CHOICES)
    g.add_argument("--window", type=parse_window, default=(-1, -1),
                   help="sliding window L,R (-1: unbounded); write --window=L,R")
    g.add_argument("--alignment", choices=ALIGNMENT_CHOICES,
                   help="window alignment without --causal")
    g.add_argument("--scale", type=float)
    g.add_argument("--kernel", help="passed to sqa-aot --kernel")
    g.add_argument("--name", default="sqa_layer", help="symbol prefix")
    p.add_argument("--shapes", type=parse_layer_shapes,
                   help="comma-separated BxSxT (or BxS) list")
    p.add_argument("--error-paths", action="store_true",
                   help="check argument validation instead of numerics")
    p.add_argument("--backward", action="store_true",
                   help="check NAME_layer_backward's gradients instead of the forward")
    p.add_argument("--backward-error-paths", action="store_true",
                   help="check NAME_layer_backward's argument validation")
    p.add_argument("--selftest", action="store_true",
                   help="check the numpy reference itself, build nothing")
    p.add_argument("--parameter-counts", action="store_true",
                   help="print the reference's parameter counts of the "
                        "configuration (as sqa-aot --print-config), build nothing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--outdir", help="build the library here (kept)")
    return p


def _g(x: float) -> str:
    return f"{x:g}"


class Setup:
    """The configuration as the test understands it, independent of the tool."""

    def __init__(self, args, parser):
        if args.head_dim is None:
            parser.error("--head-dim is required")
        if args.variant is not None:
            if args.heads is None:
                parser.error("--variant needs --heads")
            try:
                self.hq, self.hkv = reference.variant_heads(
                    args.variant, args.heads, args.groups)
            except ValueError as e:
                parser.error(str(e))
        else:
            if args.q_heads is None or args.kv_heads is None:
                parser.error("give --q-heads and --kv-heads, or --variant and --heads")
            self.hq, self.hkv = args.q_heads, args.kv_heads
        self.hout = max(self.hq, self.hkv)
        self.total = args.heads if args.heads is not None else self.hout
        self.d = args.head_dim
        self.d_model = self.total * self.d
        self.dtype = args.dtype
        self.cross = args.cross_attention
        self.bias = tuple(args.bias)
        self.causal = args.causal is not None
        causal_al, al = _alignment(args.causal), _alignment(args.alignment)
        if causal_al and al and causal_al != al:
            parser.error("--causal and --alignment disagree")
        self.alignment = causal_al or al or "top_left"
        self.window = tuple(args.window)
        self.scale = args.scale  # None: 1/sqrt(dh)
        rope_opts = (args.rope_base, args.rope_factor, args.rope_original_max,
                     args.rope_offset)
        if args.rope is None:
            if any(o is not None for o in rope_opts) or args.rope_queries_only:
                parser.error("--rope-* options need --rope")
            self.rope = None
        else:
            r = {"kind": args.rope}
            for key, value in zip(("base", "factor", "original_max", "offset"),
                                  rope_opts):
                if value is not None:
                    r[key] = value
            r["queries_only"] = args.rope_queries_only
            try:
                self.rope = L.normalize_rope(r)
            except ValueError as e:
                parser.error(str(e))
            if self.d % 2:
                parser.error("RoPE needs an even --head-dim")
        desc = (f"{args.variant or 'heads'} H={self.total} hq={self.hq} hkv={self.hkv} "
                f"d={self.d} dmodel={self.d_model} {self.dtype} "
                f"{'cross' if self.cross else 'self'}")
        if self.rope is not None:
            r = self.rope
            desc += f" rope={r['kind']}(base={_g(r['base'])}"
            if r["kind"] in ("linear", "dynamic_ntk"):
                desc += f",factor={_g(r['factor'])}"
            if r["kind"] == "dynamic_ntk":
                desc += f",original_max={r['original_max']}"
            desc += f",offset={r['offset']}"
            if r["queries_only"]:
                desc += ",queries_only"
            desc += ")"
        if self.bias:
            desc += " bias=" + ",".join(self.bias)
        if self.causal:
            desc += f" causal={self.alignment}"
        if self.window != (-1, -1):
            desc += f" window={self.window[0]},{self.window[1]}"
        if not self.causal and args.alignment:
            desc += f" alignment={self.alignment}"
        if args.scale is not None:
            desc += f" scale={args.scale:g}"
        self.desc = desc

    def shapes(self):
        d, dm = self.d, self.d_model
        return {
            "w_q": (dm, self.hq * d), "w_k": (dm, self.hkv * d),
            "w_v": (dm, self.hkv * d), "w_o": (self.hout * d, dm),
            "b_q": (self.hq * d,), "b_k": (self.hkv * d,), "b_v": (self.hkv * d,),
            "b_o": (dm,),
        }

    def inputs(self, B, S, T, rng):
        """Storage arrays: x, memory (or None), weights, all four biases
        (configured or not, so unconfigured ones can be passed in error-path
        checks)."""
        st = {}
        st["x"] = rng.standard_normal((B, S, self.d_model), dtype=np.float32)
        st["memory"] = (rng.standard_normal((B, T, self.d_model), dtype=np.float32)
                        if self.cross else None)
        for name, shape in self.shapes().items():
            a = rng.standard_normal(shape, dtype=np.float32)
            if name.startswith("w_"):
                a = a / np.float32(math.sqrt(shape[0]))
            else:
                a = a * np.float32(0.5)
            st[name] = a
        return {k: (None if v is None else to_storage(v, self.dtype))
                for k, v in st.items()}

    def reference(self, arrays, *, intermediates=True, **override):
        """attention_layer on the storage arrays (only configured biases)."""
        val = {k: (None if v is None else from_storage(v, self.dtype))
               for k, v in arrays.items()}
        kw = dict(memory=val["memory"] if self.cross else None,
                  q_heads=self.hq, kv_heads=self.hkv, head_dim=self.d,
                  rope=self.rope, causal=self.causal, alignment=self.alignment,
                  window=self.window, scale=self.scale, dtype=self.dtype,
                  return_intermediates=intermediates)
        kw.update(self.bias_args(val))
        kw.update(override)
        return L.attention_layer(val["x"], val["w_q"], val["w_k"], val["w_v"],
                                 val["w_o"], **kw)

    def tolerance(self, arrays, y, inter, S, T):
        val_wo = from_storage(arrays["w_o"], self.dtype)
        b_o = from_storage(arrays["b_o"], self.dtype) if "o" in self.bias else None
        max_pos = (self.rope["offset"] + max(S, T)) if self.rope else 0
        return L.layer_tolerance(y, inter["attn"], val_wo, b_o, dtype=self.dtype,
                                 max_position=max_pos)

    def bias_args(self, arrays, names=aot.BIAS_NAMES):
        """{b_NAME: the array, or None where the bias is not configured} for
        `names` (a subset of aot.BIAS_NAMES)."""
        return {"b_" + b: (arrays["b_" + b] if b in self.bias else None) for b in names}

    def call(self, lib, arrays, out, **sizes):
        """NAME_layer_forward with the configured biases (others NULL)."""
        return lib.forward(arrays["x"], arrays["w_q"], arrays["w_k"], arrays["w_v"],
                           arrays["w_o"], out, memory=arrays["memory"],
                           **self.bias_args(arrays), **sizes)


def compare(got, ref, tol):
    """(ok, max_abs_err, tol at that element, reason)."""
    reasons = []
    nan = np.isnan(got)
    if nan.any():
        reasons.append(f"{int(nan.sum())} NaN/unwritten outputs")
    if np.isinf(got).any():
        reasons.append(f"{int(np.isinf(got).sum())} infinite outputs")
    finite = np.isfinite(got)
    err = np.abs(np.where(finite, got, 0.0) - ref)
    if not err.size:
        return not reasons, 0.0, 0.0, "; ".join(reasons)
    imax = np.unravel_index(int(np.argmax(err)), err.shape)
    max_err, tol_at = float(err[imax]), float(tol[imax])
    if not finite.all():
        max_err = float("nan") if nan.any() else float("inf")
    else:
        ratio = err / tol
        if ratio.max() > 1:
            idx = np.unravel_index(int(np.argmax(ratio)), err.shape)
            bad = int((ratio > 1).sum())
            reasons.append("%d elements over tolerance; worst at [b,s,i]=%s got %.6g "
                           "want %.6g err %.3e tol %.3e" % (
                               bad, [int(i) for i in idx], got[idx], ref[idx],
                               err[idx], tol[idx]))
    return not reasons, max_err, tol_at, "; ".join(reasons)


def check_shape(lib, st: Setup, B, S, T, rng):
    """Returns (ok, max_abs_err, tol, reason)."""
    arrays = st.inputs(B, S, T, rng)
    before = {k: v.copy() for k, v in arrays.items() if v is not None}
    out = nan_storage((B, S, st.d_model), st.dtype)
    status = st.call(lib, arrays, out)
    if status != aot.SQA_OK:
        return False, float("nan"), float("nan"), (
            f"status {status}: {lib.error_string(status)}")
    y, inter = st.reference(arrays)
    tol = st.tolerance(arrays, y, inter, S, T)
    ok, err, tol_at, reason = compare(from_storage(out, st.dtype), y, tol)
    reasons = [reason] if reason else []
    for name, b in before.items():
        if not np.array_equal(b.view(np.uint8), arrays[name].view(np.uint8)):
            reasons.append(f"{name} input was modified")
    return not reasons, err, tol_at, "; ".join(reasons)


# ---------------------------------------------------------------------------
# Backward (NAME_layer_backward)
# ---------------------------------------------------------------------------

# Gradient tolerances: |got - want| <= atol + rtol * max|want|, per gradient.
# f32: f32 accumulation over d_model (<= 128) and B*S (<= 40) terms and the
#   attention backward's ~1e-6 relative errors; 1e-4 leaves a wide margin
#   while a wrong head, RoPE sign or path is O(0.1) of the largest gradient.
# bf16: the library rounds q, k, v, the attention output (as the reference
#   does) and also the attention's output gradient and dq, dk, dv to bf16
#   (the reference does not), each ~eps/2 relative, compounded through two
#   GEMMs: 8 eps of the largest gradient; a bug is O(1) of it.
BACKWARD_TOLERANCES = {
    "f32": (1e-5, 1e-4),
    "f16": (reference.EPSILON["f16"] / 8, 8 * reference.EPSILON["f16"]),
    "bf16": (reference.EPSILON["bf16"] / 8, 8 * reference.EPSILON["bf16"]),
}


def backward_gradient_names(st: Setup):
    """(input name, gradient name) the library has, in ABI order."""
    pairs = [("x", "dx")]
    if st.cross:
        pairs.append(("memory", "d_memory"))
    pairs += [(w, "d" + w) for w in ("w_q", "w_k", "w_v", "w_o")]
    pairs += [("b_" + b, "db_" + b) for b in aot.BIAS_NAMES if b in st.bias]
    return pairs


def backward_arrays(lib, st: Setup, B, S, T, rng):
    """(inputs, d_y, NaN-filled gradients) in storage dtype."""
    arrays = st.inputs(B, S, T, rng)
    d_y = to_storage(rng.standard_normal((B, S, st.d_model)), st.dtype)
    grads = {g: nan_storage(arrays[n].shape, st.dtype)
             for n, g in backward_gradient_names(st)}
    return arrays, d_y, grads


def backward_call(lib, st: Setup, arrays, d_y, grads, **sizes):
    return lib.backward(arrays["x"], arrays["w_q"], arrays["w_k"], arrays["w_v"],
                        arrays["w_o"], d_y, grads, memory=arrays["memory"],
                        **st.bias_args(arrays), **sizes)


def check_backward_shape(lib, st: Setup, B, S, T, rng):
    """Returns (ok, worst err/tol, detail)."""
    arrays, d_y, grads = backward_arrays(lib, st, B, S, T, rng)
    before = {k: v.copy() for k, v in arrays.items() if v is not None}
    status = backward_call(lib, st, arrays, d_y, grads)
    if status != aot.SQA_OK:
        return False, float("nan"), f"status {status}: {lib.error_string(status)}"
    val = {k: (None if v is None else from_storage(v, st.dtype))
           for k, v in arrays.items()}
    kw = st.bias_args(val)
    want = L.attention_layer_backward(
        val["x"], val["w_q"], val["w_k"], val["w_v"], val["w_o"],
        from_storage(d_y, st.dtype), memory=val["memory"] if st.cross else None,
        **kw, q_heads=st.hq, kv_heads=st.hkv, head_dim=st.d, rope=st.rope,
        causal=st.causal, alignment=st.alignment, window=st.window,
        scale=st.scale, dtype=st.dtype)
    atol, rtol = BACKWARD_TOLERANCES[st.dtype]
    reasons, details, worst = [], [], 0.0
    for name, g in backward_gradient_names(st):
        err, tol, why = reference.compare(from_storage(grads[g], st.dtype),
                                          want[name], atol, rtol)
        worst = max(worst, err / tol)
        details.append(f"{g}={err:.2e}/{tol:.2e}")
        reasons += [f"{g}: {w}" for w in why]
    for name, b in before.items():
        if not np.array_equal(b.view(np.uint8), arrays[name].view(np.uint8)):
            reasons.append(f"{name} input was modified")
    detail = " ".join(details)
    if reasons:
        detail += " (" + "; ".join(reasons) + ")"
    return not reasons, worst, detail


def check_backward_error_paths(lib, st: Setup, rng) -> bool:
    """NAME_layer_backward's argument validation; one line per case. Error
    calls must leave every gradient untouched."""
    B, S, T = 2, 3, 5 if st.cross else 3
    arrays, d_y, grads = backward_arrays(lib, st, B, S, T, rng)
    sentinels = {k: v.copy() for k, v in grads.items()}
    failed = False

    def inputs():
        a = {n: arrays.get(n) for n in aot.LAYER_INPUTS}
        if not st.cross:
            a["memory"] = None
        for b in aot.BIAS_NAMES:
            if b not in st.bias:
                a["b_" + b] = None
        return a

    def expect(case, want, ins=None, dy=None, gs=None, **size_override):
        nonlocal failed
        sizes = {"batch": B, "seq_len": S, "mem_len": T if st.cross else 0}
        sizes.update(size_override)
        for k, v in sentinels.items():
            grads[k][...] = v
        status = lib.layer_backward_raw(ins or inputs(), d_y if dy is None else dy,
                                        gs or dict(grads), **sizes)
        ok = status == want and bool(lib.error_string(status))
        detail = f"status={status} want={want}"
        if want != aot.SQA_OK and any(
                not np.array_equal(grads[k].view(np.uint8), v.view(np.uint8))
                for k, v in sentinels.items()):
            ok = False
            detail += " a gradient was written on error"
        failed |= not ok
        print(f"{'PASS' if ok else 'FAIL'} backward-error-paths {case} {detail}",
              flush=True)

    expect("valid-call", aot.SQA_OK)
    for n in ["x", "w_q", "w_o"] + (["memory"] if st.cross else []) + [
            "b_" + b for b in st.bias]:
        ins = inputs()
        ins[n] = None
        expect(f"null-{n}", aot.SQA_ERROR_NULL_POINTER, ins=ins)
    expect("null-d_y", aot.SQA_ERROR_NULL_POINTER, dy=0)
    for g in grads:
        gs = dict(grads)
        gs[g] = None
        expect(f"null-{g}", aot.SQA_ERROR_NULL_POINTER, gs=gs)
    # Gradients of absent inputs are ignored: passing one changes nothing.
    for b in aot.BIAS_NAMES:
        if b not in st.bias:
            gs = dict(grads)
            gs["db_" + b] = np.zeros(arrays["b_" + b].shape, arrays["b_" + b].dtype)
            expect(f"ignored-db_{b}", aot.SQA_OK, gs=gs)
    expect("batch=0", aot.SQA_ERROR_INVALID_SIZE, batch=0)
    expect("seq_len=-1", aot.SQA_ERROR_INVALID_SIZE, seq_len=-1)
    expect("seq_len=2^62", aot.SQA_ERROR_SIZE_OVERFLOW, seq_len=2**62)
    gs = dict(grads)
    gs["dw_o"] = grads["dw_o"].ctypes.data + 1
    expect("misaligned-dw_o", aot.SQA_ERROR_MISALIGNED, gs=gs)
    # A gradient overlapping an input, d_y or another gradient.
    for g, other in (("dx", arrays["x"]), ("dx", d_y), ("dw_q", arrays["w_q"]),
                     ("dw_v", arrays["w_k"]), ("dw_k", grads["dw_q"]),
                     ("dw_o", grads["dx"])):
        gs = dict(grads)
        gs[g] = other.ctypes.data
        name = next((k for k, v in list(arrays.items()) + [("d_y", d_y)] +
                     list(grads.items()) if v is other), "?")
        expect(f"alias-{g}=={name}", aot.SQA_ERROR_ALIASING, gs=gs)
    return not failed


# ---------------------------------------------------------------------------
# Error paths
# ---------------------------------------------------------------------------

def check_error_paths(lib, st: Setup, rng) -> bool:
    """Argument validation from Python; prints one line per case."""
    B, S, T = 2, 3, 5
    if not st.cross:
        T = S
    arrays = st.inputs(B, S, T, rng)
    out = nan_storage((B, S, st.d_model), st.dtype)
    sentinel = out.copy()
    failed = False
    E = aot
    names = aot.LAYER_INPUTS

    def report(case, ok, detail):
        nonlocal failed
        failed |= not ok
        print(f"{'PASS' if ok else 'FAIL'} error-paths {case} {detail}", flush=True)

    def configured():
        """Pointer arguments of a correct call (unconfigured biases NULL)."""
        a = {n: arrays.get(n) for n in names}
        if not st.cross:
            a["memory"] = None
        for b in aot.BIAS_NAMES:
            if b not in st.bias:
                a["b_" + b] = None
        a["out"] = out
        return a

    def sizes():
        return {"batch": B, "seq_len": S, "mem_len": T if st.cross else 0}

    def call(ptrs, sz):
        return lib.layer_forward_raw(*(ptrs[n] for n in names + ("out",)),
                                     sz["batch"], sz["seq_len"], sz["mem_len"])

    def expect(case, want, ptrs=None, out_untouched=True, **size_override):
        ptrs = ptrs or configured()
        sz = sizes()
        sz.update(size_override)
        out[...] = sentinel
        status = call(ptrs, sz)
        msg = lib.error_string(status)
        ok = status == want and bool(msg)
        detail = f"status={status} want={want} ({aot.STATUS_NAMES.get(want)})"
        if out_untouched and not np.array_equal(out.view(np.uint8),
                                                sentinel.view(np.uint8)):
            ok = False
            detail += " out was written on error"
        detail += f" message: {msg}"
        report(case, ok, detail)
        return status

    # A valid call first, so the failures below are the arguments' fault; its
    # result is the baseline for the 'ignored' cases.
    expect("valid-call", E.SQA_OK, out_untouched=False)
    baseline = out.copy()

    def expect_same(case, ptrs, **size_override):
        """A call that must succeed and give the baseline result."""
        sz = sizes()
        sz.update(size_override)
        out[...] = sentinel
        status = call(ptrs, sz)
        ok = status == E.SQA_OK and np.array_equal(out.view(np.uint8),
                                                   baseline.view(np.uint8))
        detail = f"status={status} want=0 ({aot.STATUS_NAMES[E.SQA_OK]})"
        if status == E.SQA_OK and not ok:
            detail += " but the output differs from the valid call"
        report(case, ok, detail)

    # Null pointers among the required arguments.
    required = ["x", "w_q", "w_k", "w_v", "w_o"]
    if st.cross:
        required.insert(1, "memory")
    required += ["b_" + b for b in st.bias]
    for n in required + ["out"]:
        p = configured()
        p[n] = None
        expect(f"null-{n.replace('_', '')}", E.SQA_ERROR_NULL_POINTER, p)

    # Arguments that are ignored: unconfigured biases, memory/mem_len without
    # cross-attention. Passing real arrays (or odd sizes) changes nothing.
    for b in aot.BIAS_NAMES:
        if b not in st.bias:
            p = configured()
            p["b_" + b] = arrays["b_" + b]
            expect_same(f"ignored-b{b}", p)
    if not st.cross:
        memory = to_storage(rng.standard_normal((B, T, st.d_model)), st.dtype)
        p = configured()
        p["memory"] = memory
        expect_same("ignored-memory", p, mem_len=T)
        expect_same("ignored-mem_len=-1", configured(), mem_len=-1)
        expect_same("ignored-mem_len=2^62", configured(), mem_len=2**62)

    # Non-positive and overflowing sizes.
    dims = ["batch", "seq_len"] + (["mem_len"] if st.cross else [])
    for dim in dims:
        for bad in (0, -1):
            expect(f"{dim}={bad}", E.SQA_ERROR_INVALID_SIZE, **{dim: bad})
    expect("batch=min-int64", E.SQA_ERROR_INVALID_SIZE, batch=-(2**63))
    # Sizes whose byte counts overflow int64 (the pointers are never read).
    for dim in dims:
        expect(f"{dim}=2^62", E.SQA_ERROR_SIZE_OVERFLOW, **{dim: 2**62})
    expect("all=2^40", E.SQA_ERROR_SIZE_OVERFLOW,
           **{dim: 2**40 for dim in dims})

    # Misaligned: the same bytes, one byte past an aligned address.
    keep = []

    def misaligned(a):
        raw = np.zeros(a.nbytes + 64, dtype=np.uint8)
        start = (-raw.ctypes.data) % 64 + 1
        view = raw[start:start + a.nbytes]
        view[...] = a.reshape(-1).view(np.uint8)
        assert view.ctypes.data % a.itemsize != 0
        keep.append(raw)
        return view.ctypes.data

    for n in required + ["out"]:
        p = configured()
        p[n] = misaligned(p[n])
        expect(f"misaligned-{n.replace('_', '')}", E.SQA_ERROR_MISALIGNED, p,
               out_untouched=n != "out")
    keep.clear()

    # Aliasing: out placed in the same buffer as an input.
    for n in ["x"] + (["memory"] if st.cross else []) + ["w_q", "w_o"] + (
            ["b_o"] if "o" in st.bias else []):
        src = arrays[n]
        buf = np.zeros(src.size + out.size, dtype=src.dtype)
        buf[:src.size] = src.reshape(-1)
        p = configured()
        p[n] = buf[:src.size]
        p["out"] = buf[:out.size]
        expect(f"alias-out=={n.replace('_', '')}", E.SQA_ERROR_ALIASING, p,
               out_untouched=False)
        p["out"] = buf[src.size - 1:src.size - 1 + out.size]
        expect(f"alias-out-inside-{n.replace('_', '')}", E.SQA_ERROR_ALIASING, p,
               out_untouched=False)
        # Adjacent but not overlapping: accepted, same result.
        p["out"] = buf[src.size:src.size + out.size]
        sz = sizes()
        status = call(p, sz)
        same = status == E.SQA_OK and np.array_equal(
            p["out"].view(np.uint8), baseline.reshape(-1).view(np.uint8))
        report(f"adjacent-out-after-{n.replace('_', '')}", same,
               f"status={status} want=0 ({aot.STATUS_NAMES[E.SQA_OK]})"
               + ("" if same or status != E.SQA_OK else " but the output differs"))

    # Every status has a non-empty message; unknown codes too.
    for code in sorted(aot.STATUS_NAMES) + [6, -1]:
        msg = lib.error_string(code)
        report(f"error-string-{code}", bool(msg), f"message: {msg}")

    # The config string names the heads and the element type.
    cfg = lib.config() or ""
    s = lib.settings
    want = {"q_heads": str(st.hq), "kv_heads": str(st.hkv),
            "head_dim": str(st.d), "dtype": st.dtype}
    bad = {k: s.get(k) for k, v in want.items() if s.get(k) != v}
    # Layer keys, checked where the library reports them.
    optional = {"layer": "cross" if st.cross else "self",
                "d_model": str(st.d_model), "bias": "".join(st.bias),
                "rope": st.rope["kind"] if st.rope else "none"}
    if st.rope:
        optional["rope_offset"] = str(st.rope["offset"])
        optional["rope_queries_only"] = str(int(st.rope["queries_only"]))
    bad.update({k: s[k] for k, v in optional.items() if k in s and s[k] != v})
    report("config", not bad, f"config: {cfg}" + (f" (mismatch: {bad})" if bad else ""))
    return not failed


# ---------------------------------------------------------------------------
# Self-test of the reference
# ---------------------------------------------------------------------------

def _hf_rope(x, positions, rope_cfg, S, T):
    """Transcription of HF transformers' Llama rotary embeddings (default,
    linear and dynamic NTK) with the cos/sin cache cat(freqs, freqs) and
    rotate_half, as an independent check of layer_reference.rope."""
    r = L.normalize_rope(rope_cfg)
    dim = x.shape[-1]
    base = r["base"]
    t = np.asarray(positions, dtype=np.float64)
    if r["kind"] == "linear":
        t = t / r["factor"]
    if r["kind"] == "dynamic_ntk":
        seq_len = r["offset"] + max(S, T)
        if seq_len > r["original_max"]:
            base = base * ((r["factor"] * seq_len / r["original_max"])
                           - (r["factor"] - 1)) ** (dim / (dim - 2))
    inv_freq = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    freqs = np.outer(t, inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb), np.sin(emb)

    def rotate_half(a):
        a1, a2 = a[..., :dim // 2], a[..., dim // 2:]
        return np.concatenate([-a2, a1], axis=-1)

    return x * cos + rotate_half(x) * sin


def _complex_rope(x, positions, base):
    """RoPE as complex multiplication z_i * e^{i p theta_i}, z_i = x[i] + i x[i+dh/2]."""
    half = x.shape[-1] // 2
    z = x[..., :half] + 1j * x[..., half:]
    theta = np.array([base ** (-2.0 * i / x.shape[-1]) for i in range(half)])
    rot = np.exp(1j * np.outer(np.asarray(positions, dtype=np.float64), theta))
    w = z * rot
    return np.concatenate([w.real, w.imag], axis=-1)


def _scalar_layer(x, wq, wk, wv, wo, memory, bq, bk, bv, bo, Hq, Hkv, dh, rope_cfg,
                  causal, alignment, window):
    """The layer one token, head and element at a time (float64, no rounding)."""
    B, S, dm = x.shape
    src = x if memory is None else memory
    T = src.shape[1]
    Hout = max(Hq, Hkv)
    r = L.normalize_rope(rope_cfg)

    def proj(row, w, b, col):
        acc = sum(row[i] * w[i, col] for i in range(dm))
        return acc + (b[col] if b is not None else 0.0)

    def head_vec(row, w, b, head, rows_total, pos, rotate):
        vec = [proj(row, w, b, head * dh + j) for j in range(dh)]
        if r is None or not rotate:
            return vec
        base = r["base"]
        p = r["offset"] + pos
        if r["kind"] == "linear":
            p = p / r["factor"]
        if r["kind"] == "dynamic_ntk":
            length = r["offset"] + max(S, T)
            if length > r["original_max"]:
                base = base * ((r["factor"] * length / r["original_max"])
                               - (r["factor"] - 1)) ** (dh / (dh - 2))
        out = list(vec)
        for i in range(dh // 2):
            ang = p * base ** (-2.0 * i / dh)
            c, s = math.cos(ang), math.sin(ang)
            out[i] = vec[i] * c - vec[i + dh // 2] * s
            out[i + dh // 2] = vec[i + dh // 2] * c + vec[i] * s
        return out

    y = np.zeros((B, S, dm))
    off = T - S if alignment == "bottom_right" else 0
    left, right = window
    scale = 1.0 / math.sqrt(dh)
    for b in range(B):
        cat = np.zeros((S, Hout * dh))
        for h in range(Hout):
            if Hq >= Hkv:
                qh, kh = h, h // (Hq // Hkv)
            else:
                qh, kh = h // (Hkv // Hq), h
            keys = [head_vec(src[b, t], wk, bk, kh, T, t,
                             r is not None and not r["queries_only"]) for t in range(T)]
            vals = [head_vec(src[b, t], wv, bv, kh, T, t, False) for t in range(T)]
            for i in range(S):
                qv = head_vec(x[b, i], wq, bq, qh, S, i, True)
                vis = [t for t in range(T)
                       if (not causal or t <= i + off)
                       and (left < 0 or t >= i + off - left)
                       and (right < 0 or t <= i + off + right)]
                if not vis:
                    continue
                sc = [scale * sum(qv[j] * keys[t][j] for j in range(dh)) for t in vis]
                m = max(sc)
                w = [math.exp(s - m) for s in sc]
                z = sum(w)
                for j in range(dh):
                    cat[i, h * dh + j] = sum(wn * vals[t][j] for wn, t in zip(w, vis)) / z
        for i in range(S):
            for c in range(dm):
                y[b, i, c] = sum(cat[i, j] * wo[j, c] for j in range(Hout * dh)) + (
                    bo[c] if bo is not None else 0.0)
    return y


def _emulate_library(x, wq, wk, wv, wo, memory, biases, Hq, Hkv, dh, rope_cfg,
                     causal, alignment, window, dtype, mutate=None):
    """What a correct library computes: float32 arithmetic (cos/sin and RoPE
    angles in f32, f32 accumulation), q/k/v, the attention output and the
    final output rounded to dtype from f32. ``mutate`` names a deliberate
    bug, to check that the tolerance rejects it."""
    f = np.float32
    bq, bk, bv, bo = (None if b is None else b.astype(f) for b in biases)
    x = x.astype(f)
    src = x if memory is None else memory.astype(f)
    B, S, dm = x.shape
    T = src.shape[1]
    Hout = max(Hq, Hkv)
    if mutate == "no-bias-o":
        bo = None

    def proj(a, w, b):
        y = np.matmul(a, w.astype(f), dtype=f)
        return y if b is None else (y + b).astype(f)

    def split(a, n):
        return a.reshape(B, a.shape[1], n, dh).transpose(0, 2, 1, 3)

    q = split(proj(x, wq, bq), Hq)
    k = split(proj(src, wk, bk), Hkv)
    v = split(proj(src, wv, bv), Hkv)
    r = L.normalize_rope(rope_cfg)

    def rot(a):
        rows = a.shape[2]
        base = r["base"]
        off = r["offset"]
        if mutate == "rope-offset-ignored":
            off = 0
        pos = (off + np.arange(rows)).astype(f)
        if r["kind"] == "linear":
            pos = pos / f(r["factor"]) if mutate != "linear-factor-ignored" else pos
        if r["kind"] == "dynamic_ntk":
            length = r["offset"] + max(S, T)
            if mutate == "ntk-length-without-offset":
                length = max(S, T)
            if mutate == "ntk-length-rows":
                length = r["offset"] + rows
            base = L.dynamic_ntk_base(base, r["factor"], r["original_max"], length, dh)
        half = dh // 2
        inv = (f(1.0) / np.power(f(base), np.arange(0, dh, 2, dtype=f) / f(dh))).astype(f)
        ang = (pos[:, None] * inv[None, :]).astype(f)
        c, s = np.cos(ang), np.sin(ang)
        if mutate == "rope-interleaved":
            ev, od = a[..., 0::2], a[..., 1::2]
            out = np.empty_like(a)
            out[..., 0::2] = ev * c - od * s
            out[..., 1::2] = od * c + ev * s
            return out
        lo, hi = a[..., :half], a[..., half:]
        return np.concatenate([lo * c - hi * s, hi * c + lo * s], axis=-1).astype(f)

    if r is not None:
        q = rot(q)
        if not r["queries_only"] or mutate == "rope-keys-too":
            k = rot(k)

    def rnd(a):
        return L.round_to(a, dtype).astype(f)

    q, k, v = rnd(q), rnd(k), rnd(v)
    if mutate == "head-mapping-modulo" and Hq > Hkv:
        kv_of = [h % Hkv for h in range(Hout)]
    else:
        kv_of = [reference.head_mapping(h, Hq, Hkv)[1] for h in range(Hout)]
    q_of = [reference.head_mapping(h, Hq, Hkv)[0] for h in range(Hout)]
    mask = reference.visible_mask(S, T, causal=causal, alignment=alignment, window=window)
    scale = f(1.0 / math.sqrt(dh))
    a = np.zeros((B, Hout, S, dh), dtype=f)
    for h in range(Hout):
        s = np.matmul(q[:, q_of[h]], np.swapaxes(k[:, kv_of[h]], -1, -2), dtype=f) * scale
        s = np.where(mask, s, f(-np.inf))
        m = np.max(s, axis=-1, keepdims=True)
        m = np.where(np.isfinite(m), m, f(0))
        p = np.where(mask, np.exp(s - m), f(0)).astype(f)
        z = p.sum(axis=-1, keepdims=True, dtype=f)
        z = np.where(z > 0, z, f(1))
        a[:, h] = np.matmul(p, v[:, kv_of[h]], dtype=f) / z
    cat = a.transpose(0, 2, 1, 3).reshape(B, S, Hout * dh)
    if mutate == "concat-dim-major":
        cat = a.transpose(0, 2, 3, 1).reshape(B, S, Hout * dh)
    cat = rnd(cat)
    y = proj(cat, wo, bo)
    return L.round_to(y, dtype)


def run_selftest(seed: int = 0) -> bool:
    rng = np.random.default_rng(seed)
    failed = False

    def report(case, ok, detail=""):
        nonlocal failed
        failed |= not ok
        print(f"{'PASS' if ok else 'FAIL'} selftest {case}"
              + (f" {detail}" if detail else ""), flush=True)

    def close(a, b, tol=1e-10):
        err = float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) if np.size(a) else 0.0
        return err <= tol, f"max_abs_err={err:.3e}"

    dh = 16
    x = rng.standard_normal((2, 3, 7, dh))
    schemes = [
        {"kind": "rotary", "base": 10000.0},
        {"kind": "rotary", "base": 500.0, "offset": 37},
        {"kind": "linear", "base": 10000.0, "factor": 2.0, "offset": 5},
        {"kind": "dynamic_ntk", "base": 10000.0, "factor": 2.0, "original_max": 4,
         "offset": 3},
        {"kind": "dynamic_ntk", "base": 10000.0, "factor": 4.0, "original_max": 2048},
    ]

    # 1. RoPE against HF's formulation (cos/sin cache + rotate_half) and
    #    against complex multiplication.
    for r in schemes:
        rr = L.normalize_rope(r)
        S, T = 7, 11
        pos = rr["offset"] + np.arange(7)
        got = L.apply_rope(x, r, S=S, T=T)
        ok, d = close(got, _hf_rope(x, pos, r, S, T))
        report(f"rope-vs-hf-{rr['kind']}-offset{rr['offset']}", ok, d)
    pos, base = L.rope_positions_and_base(schemes[3], 7, dh, 7, 11)
    ok, d = close(L.rope(x, pos, base=base), _complex_rope(x, pos, base))
    report("rope-vs-complex-dynamic_ntk", ok, d)

    # 2. Norm of every head vector is preserved.
    for r in schemes:
        y = L.apply_rope(x, r, S=7, T=7)
        ok, d = close(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1))
        report(f"rope-norm-{r['kind']}-offset{r.get('offset', 0)}", ok, d)

    # 3. Offset p equals positions shifted by p: rows of a longer sequence.
    p = 9
    longer = np.concatenate([rng.standard_normal((2, 3, p, dh)), x], axis=2)
    for kind in ("rotary", "linear"):
        r = {"kind": kind, "factor": 3.0, "offset": p}
        shifted = L.apply_rope(x, r, S=7, T=7)
        full = L.apply_rope(longer, {"kind": kind, "factor": 3.0}, S=7 + p, T=7 + p)
        ok, d = close(shifted, full[:, :, p:])
        report(f"rope-offset-is-shift-{kind}", ok, d)

    # 4. Relative positions: q_m . k_n depends only on m - n.
    q1 = rng.standard_normal(dh)
    k1 = rng.standard_normal(dh)
    dots = []
    for m, n in ((5, 2), (8, 5), (103, 100), (3, 0)):
        qm = L.rope(q1[None, None, None, :], [m])[0, 0, 0]
        kn = L.rope(k1[None, None, None, :], [n])[0, 0, 0]
        dots.append(float(qm @ kn))
    ok, d = close(np.array(dots), np.full(4, dots[0]), 1e-9)
    report("rope-relative-position", ok, d)
    qm = L.rope(q1[None, None, None, :], [6])[0, 0, 0]
    ok2 = abs(float(qm @ L.rope(k1[None, None, None, :], [2])[0, 0, 0]) - dots[0]) > 1e-6
    report("rope-relative-position-distinguishes", ok2)

    # 5. Scheme identities: linear with factor 1 and dynamic NTK below its
    #    threshold equal rotary; linear factor f at position f*p equals
    #    rotary at p; dynamic NTK above it changes the base as HF does.
    rot = L.apply_rope(x, {"kind": "rotary", "offset": 2}, S=7, T=7)
    ok, d = close(L.apply_rope(x, {"kind": "linear", "factor": 1.0, "offset": 2}, S=7, T=7), rot)
    report("rope-linear-factor1-is-rotary", ok, d)
    ok, d = close(L.apply_rope(x, {"kind": "dynamic_ntk", "factor": 2.0, "original_max": 9,
                                   "offset": 2}, S=7, T=7), rot)
    report("rope-ntk-below-threshold-is-rotary", ok, d)
    lin = L.apply_rope(longer, {"kind": "linear", "factor": 2.0}, S=16, T=16)[:, :, ::2]
    ok, d = close(lin[:, :, :7], L.rope(longer[:, :, ::2][:, :, :7], np.arange(7)))
    report("rope-linear-position-division", ok, d)
    b2 = L.dynamic_ntk_base(10000.0, 2.0, 4, 10, 16)
    want = 10000.0 * (2.0 * 10 / 4 - 1.0) ** (16 / 14)
    report("rope-ntk-base-formula", abs(b2 - want) < 1e-9 * want and b2 > 10000.0,
           f"base'={b2:.6g}")

    # 6. The layer against a scalar implementation, tiny sizes.
    def weights(Hq, Hkv, dm, dh_, with_bias=True):
        Hout = max(Hq, Hkv)
        w = [rng.standard_normal(s) / math.sqrt(s[0]) for s in
             ((dm, Hq * dh_), (dm, Hkv * dh_), (dm, Hkv * dh_), (Hout * dh_, dm))]
        b = [rng.standard_normal(n) * 0.5 if with_bias else None
             for n in (Hq * dh_, Hkv * dh_, Hkv * dh_, dm)]
        return w, b

    cases = [
        ("mha", 4, 4, None, False, "top_left", (-1, -1), None),
        ("gqa", 4, 2, {"kind": "rotary", "offset": 3}, True, "top_left", (-1, -1), None),
        ("mqa-cross", 4, 1, {"kind": "linear", "factor": 2.0, "queries_only": True},
         True, "bottom_right", (-1, -1), 5),
        ("rsqa-cross", 1, 2, {"kind": "dynamic_ntk", "factor": 2.0, "original_max": 2,
                              "offset": 1}, False, "top_left", (1, 1), 4),
        ("sqa", 2, 1, {"kind": "rotary", "queries_only": False}, True, "bottom_right",
         (-1, -1), None),
    ]
    for name, Hq, Hkv, r, causal, al, win, T in cases:
        dh_, H = 4, 4
        dm = H * dh_
        B, S = 2, 3
        xx = rng.standard_normal((B, S, dm))
        mem = rng.standard_normal((B, T, dm)) if T else None
        (wq, wk, wv, wo), (bq, bk, bv, bo) = weights(Hq, Hkv, dm, dh_)
        got = L.attention_layer(xx, wq, wk, wv, wo, memory=mem, b_q=bq, b_k=bk, b_v=bv,
                                b_o=bo, q_heads=Hq, kv_heads=Hkv, head_dim=dh_, rope=r,
                                causal=causal, alignment=al, window=win)
        want = _scalar_layer(xx, wq, wk, wv, wo, mem, bq, bk, bv, bo, Hq, Hkv, dh_, r,
                             causal, al, win)
        # f32 rounding of q/k/v/attn in attention_layer(dtype='f32'): 1e-6.
        ok, d = close(got, want, 1e-5)
        report(f"layer-vs-scalar-{name}", ok, d)

    # 7. GQA/MQA/SQA equal MHA with K/V weights repeated per query head;
    #    reverse SQA equals MHA with Q weights repeated.
    dh_ = 8
    for name, Hq, Hkv in (("gqa", 8, 2), ("mqa", 8, 1), ("sqa", 4, 2), ("rsqa", 2, 4)):
        H = 8
        dm = H * dh_
        xx = rng.standard_normal((2, 5, dm))
        (wq, wk, wv, wo), (bq, bk, bv, bo) = weights(Hq, Hkv, dm, dh_)
        r = {"kind": "rotary", "offset": 4}
        kw = dict(rope=r, causal=True, head_dim=dh_)
        got = L.attention_layer(xx, wq, wk, wv, wo, b_q=bq, b_k=bk, b_v=bv, b_o=bo,
                                q_heads=Hq, kv_heads=Hkv, **kw)

        def rep(w, heads, times):
            # Columns head-major: repeat each head's block `times` times.
            w = w.reshape(*w.shape[:-1], heads, dh_)
            w = np.repeat(w, times, axis=-2)
            return w.reshape(*w.shape[:-2], heads * times * dh_)

        Hout = max(Hq, Hkv)
        if Hq >= Hkv:
            g = Hq // Hkv
            want = L.attention_layer(xx, wq, rep(wk, Hkv, g), rep(wv, Hkv, g), wo,
                                     b_q=bq, b_k=rep(bk, Hkv, g), b_v=rep(bv, Hkv, g),
                                     b_o=bo, q_heads=Hout, kv_heads=Hout, **kw)
        else:
            g = Hkv // Hq
            want = L.attention_layer(xx, rep(wq, Hq, g), wk, wv, wo, b_q=rep(bq, Hq, g),
                                     b_k=bk, b_v=bv, b_o=bo, q_heads=Hout, kv_heads=Hout,
                                     **kw)
        ok, d = close(got, want, 1e-12)
        report(f"layer-{name}-is-mha-with-repeated-weights", ok, d)

    # 8. Biases are a ones column of the input: x' = [x, 1], W' = [W; b].
    Hq, Hkv, dh_, H = 4, 2, 8, 4
    dm = H * dh_
    xx = rng.standard_normal((2, 5, dm))
    mem = rng.standard_normal((2, 6, dm))
    (wq, wk, wv, wo), (bq, bk, bv, bo) = weights(Hq, Hkv, dm, dh_)
    got = L.attention_layer(xx, wq, wk, wv, wo, memory=mem, b_q=bq, b_k=bk, b_v=bv,
                            b_o=bo, q_heads=Hq, kv_heads=Hkv, head_dim=dh_,
                            rope={"kind": "rotary", "queries_only": True}, causal=True,
                            alignment="bottom_right")
    one = lambda a: np.concatenate([a, np.ones(a.shape[:-1] + (1,))], axis=-1)  # noqa: E731
    aug = lambda w, b: np.concatenate([w, b[None, :]], axis=0)  # noqa: E731
    wo_aug = np.concatenate([wo, np.zeros((wo.shape[0], 1))], axis=1)
    want = L.attention_layer(one(xx), aug(wq, bq), aug(wk, bk), aug(wv, bv), wo_aug,
                             memory=one(mem), q_heads=Hq, kv_heads=Hkv, head_dim=dh_,
                             rope={"kind": "rotary", "queries_only": True}, causal=True,
                             alignment="bottom_right")[..., :dm] + bo
    ok, d = close(got, want, 1e-12)
    report("layer-bias-is-ones-column", ok, d)

    # 9. Cross-attention with memory = x is self-attention (RoPE on k too).
    r = {"kind": "dynamic_ntk", "factor": 2.0, "original_max": 3, "offset": 2}
    a1 = L.attention_layer(xx, wq, wk, wv, wo, memory=xx, q_heads=Hq, kv_heads=Hkv,
                           head_dim=dh_, rope=r, causal=True)
    a2 = L.attention_layer(xx, wq, wk, wv, wo, q_heads=Hq, kv_heads=Hkv, head_dim=dh_,
                           rope=r, causal=True)
    ok, d = close(a1, a2, 0.0)
    report("layer-cross-with-memory-x-is-self", ok, d)

    # 9b. With q and k both rotated by the same scheme (not dynamic NTK), a
    #     position offset cancels in q.k: the offset is only observable with
    #     queries_only, or through dynamic NTK's length.
    r0 = {"kind": "rotary"}
    r9 = {"kind": "rotary", "offset": 9}
    a1 = L.attention_layer(xx, wq, wk, wv, wo, q_heads=Hq, kv_heads=Hkv, head_dim=dh_,
                           rope=r0, causal=True)
    a2 = L.attention_layer(xx, wq, wk, wv, wo, q_heads=Hq, kv_heads=Hkv, head_dim=dh_,
                           rope=r9, causal=True)
    ok, d = close(a1, a2, 1e-6)  # q/k are rounded to f32 (dtype='f32')
    report("layer-rope-offset-cancels-in-self-attention", ok, d)
    a3 = L.attention_layer(xx, wq, wk, wv, wo, q_heads=Hq, kv_heads=Hkv, head_dim=dh_,
                           rope=dict(r9, queries_only=True), causal=True)
    a4 = L.attention_layer(xx, wq, wk, wv, wo, q_heads=Hq, kv_heads=Hkv, head_dim=dh_,
                           rope=dict(r0, queries_only=True), causal=True)
    report("layer-rope-offset-visible-with-queries-only",
           float(np.max(np.abs(a3 - a4))) > 1e-3)

    # 10. MHA with identity weights is reference.attention on the heads.
    H, dh_ = 4, 8
    dm = H * dh_
    xx = rng.standard_normal((2, 6, dm))
    eye = np.eye(dm)
    got = L.attention_layer(xx, eye, eye, eye, eye, q_heads=H, kv_heads=H,
                            head_dim=dh_, causal=True, window=(2, -1))
    heads = xx.reshape(2, 6, H, dh_).transpose(0, 2, 1, 3)
    want = reference.attention(heads, heads, heads, causal=True, window=(2, -1))
    want = want.transpose(0, 2, 1, 3).reshape(2, 6, dm)
    ok, d = close(got, want, 1e-6)
    report("layer-identity-weights-is-attention", ok, d)

    # 11. Parameter counts (as sqa-aot --print-config prints them).
    c = L.parameter_counts(4, 4, 16, total_heads=16)
    c2 = L.parameter_counts(4, 8, 16, total_heads=16, biases="qkvo")
    ok = (c["weights"] == 65536 and c["W_o"] == 16384 and c2["weights"] == 114688
          and c2["W_k"] == 32768 and c2["W_o"] == 32768
          and c2["total"] == 114688 + 64 + 128 + 128 + 256)
    report("parameter-counts", ok, f"xsqa={c['weights']} rsqa={c2['weights']} "
           f"rsqa+bias={c2['total']}")

    # 12. The tolerance: a float32 emulation of a correct library passes it,
    #     deliberate bugs do not.
    configs = [
        ("gqa-self-rotary", 8, 2, 8, {"kind": "rotary", "offset": 7}, "qkvo", False),
        ("rsqa-cross-linear", 2, 4, 8, {"kind": "linear", "factor": 2.0,
                                        "queries_only": True, "offset": 5}, "qo", True),
        ("sqa-self-ntk", 4, 2, 8, {"kind": "dynamic_ntk", "factor": 2.0,
                                   "original_max": 8, "offset": 3}, "", True),
        ("mha-cross-ntk", 4, 4, 4, {"kind": "dynamic_ntk", "factor": 2.0,
                                    "original_max": 10}, "kv", False),
        ("xsmqa-self-rotary-q-only", 2, 1, 8, {"kind": "rotary", "offset": 40,
                                               "queries_only": True}, "v", True),
    ]
    worst = {}
    for name, Hq, Hkv, H, r, biases, causal in configs:
        dh_ = 16
        dm = H * dh_
        cross = "cross" in name
        for dtype in ("f32", "bf16", "f16"):
            for trial in range(3):
                B, S, T = 2, 12, (20 if cross else 12)
                raw = {
                    "x": rng.standard_normal((B, S, dm)),
                    "memory": rng.standard_normal((B, T, dm)) if cross else None,
                }
                (wq, wk, wv, wo), bs = weights(Hq, Hkv, dm, dh_)
                rd = lambda a: None if a is None else L.round_to(a, dtype)  # noqa: E731
                xx, mem = rd(raw["x"]), rd(raw["memory"])
                wq, wk, wv, wo = (rd(w) for w in (wq, wk, wv, wo))
                bs = [rd(b) if n in biases else None for n, b in zip("qkvo", bs)]
                kw = dict(memory=mem, b_q=bs[0], b_k=bs[1], b_v=bs[2], b_o=bs[3],
                          q_heads=Hq, kv_heads=Hkv, head_dim=dh_, rope=r,
                          causal=causal, alignment="bottom_right", dtype=dtype)
                y, inter = L.attention_layer(xx, wq, wk, wv, wo, return_intermediates=True,
                                             **kw)
                rr = L.normalize_rope(r)
                tol = L.layer_tolerance(y, inter["attn"], wo, bs[3], dtype=dtype,
                                        max_position=rr["offset"] + max(S, T))
                emu_args = (xx, wq, wk, wv, wo, mem, bs, Hq, Hkv, dh_, r, causal,
                            "bottom_right", (-1, -1), dtype)
                got = _emulate_library(*emu_args)
                ratio = float(np.max(np.abs(got - y) / tol))
                key = (name, dtype)
                worst[key] = max(worst.get(key, 0.0), ratio)
                if trial:
                    continue
                mutations = ["rope-interleaved", "concat-dim-major"]
                if rr["offset"] and rr["queries_only"]:
                    # With q and k both rotated a common shift of positions
                    # cancels (relative positions): only visible here.
                    mutations.append("rope-offset-ignored")
                if "o" in biases:
                    mutations.append("no-bias-o")
                if rr["kind"] == "linear":
                    mutations.append("linear-factor-ignored")
                if rr["kind"] == "dynamic_ntk":
                    if rr["offset"]:
                        mutations.append("ntk-length-without-offset")
                    if cross and not rr["queries_only"]:
                        mutations.append("ntk-length-rows")
                if rr["queries_only"]:
                    mutations.append("rope-keys-too")
                if Hq > Hkv > 1:
                    mutations.append("head-mapping-modulo")
                if dtype == "f32":
                    for mut in mutations:
                        bad = _emulate_library(*emu_args, mutate=mut)
                        bratio = float(np.max(np.abs(bad - y) / tol))
                        report(f"tolerance-rejects-{mut}-{name}-{dtype}", bratio > 1,
                               f"err/tol={bratio:.3g}")
                else:
                    # The coarser types must still see the layout/RoPE bugs.
                    for mut in ("rope-interleaved", "concat-dim-major"):
                        bad = _emulate_library(*emu_args, mutate=mut)
                        bratio = float(np.max(np.abs(bad - y) / tol))
                        report(f"tolerance-rejects-{mut}-{name}-{dtype}", bratio > 1,
                               f"err/tol={bratio:.3g}")
    for (name, dtype), ratio in worst.items():
        # Margin: a correct f32 emulation should stay well inside.
        report(f"tolerance-accepts-emulation-{name}-{dtype}", ratio <= 0.5,
               f"worst err/tol={ratio:.3g}")

    # 13. A bf16 ulp off in one attention output is within tolerance, and
    #     the rounding points are where the spec puts them.
    H, Hq, Hkv, dh_ = 4, 4, 4, 8
    dm = H * dh_
    xx = L.round_to(rng.standard_normal((1, 4, dm)), "bf16")
    (wq, wk, wv, wo), _ = weights(Hq, Hkv, dm, dh_, with_bias=False)
    wq, wk, wv, wo = (L.round_to(w, "bf16") for w in (wq, wk, wv, wo))
    y, inter = L.attention_layer(xx, wq, wk, wv, wo, q_heads=Hq, kv_heads=Hkv,
                                 head_dim=dh_, dtype="bf16", return_intermediates=True)
    rounded = all(np.array_equal(L.round_to(inter[n], "bf16"), inter[n])
                  for n in ("q", "k", "v", "attn"))
    report("bf16-rounding-points", rounded)
    a2 = inter["attn"].copy()
    a2[0, 1, 3] *= 1 + 2.0**-7  # one bf16 ulp (at most) of that element
    y2 = a2 @ wo
    tol = L.layer_tolerance(y, inter["attn"], wo, dtype="bf16")
    report("bf16-one-ulp-within-tolerance", bool(np.all(np.abs(y2 - y) <= tol)))

    # 14. The gradients (attention_layer_backward) against central finite
    #     differences of attention_layer itself, unrounded (dtype=None), at
    #     four random elements of every input: GQA with rotary RoPE, biases
    #     and causal; reverse SQA cross-attention with linear RoPE on
    #     queries only; MQA with dynamic NTK rescaled (original_max 3 < S).
    for name, Hq, Hkv, cross, rope_cfg, with_bias, causal in (
            ("gqa-rotary-bias-causal", 4, 2, False, "rotary", True, True),
            ("xsqa-cross-linear-qonly-bias", 2, 4, True,
             {"kind": "linear", "factor": 2.0, "offset": 3, "queries_only": True},
             True, False),
            ("mqa-ntk-causal", 4, 1, False,
             {"kind": "dynamic_ntk", "factor": 2.0, "original_max": 3}, False, True)):
        dh_, total = 8, 4
        dm = total * dh_
        B, S, T = 2, 5, 7 if cross else 5
        (wq, wk, wv, wo), biases = weights(Hq, Hkv, dm, dh_, with_bias=with_bias)
        params = {"x": rng.standard_normal((B, S, dm)), "w_q": wq, "w_k": wk,
                  "w_v": wv, "w_o": wo}
        if cross:
            params["memory"] = rng.standard_normal((B, T, dm))
        if with_bias:
            params.update(zip(("b_q", "b_k", "b_v", "b_o"), biases))
        d_y = rng.standard_normal((B, S, dm))
        kw = dict(q_heads=Hq, kv_heads=Hkv, head_dim=dh_, rope=rope_cfg,
                  causal=causal, dtype=None)

        def loss(p):
            y = L.attention_layer(p["x"], p["w_q"], p["w_k"], p["w_v"], p["w_o"],
                                  memory=p.get("memory"),
                                  **{b: p.get(b) for b in ("b_q", "b_k", "b_v", "b_o")},
                                  **kw)
            return float(np.sum(y * d_y))

        grads = L.attention_layer_backward(
            params["x"], params["w_q"], params["w_k"], params["w_v"], params["w_o"],
            d_y, memory=params.get("memory"),
            **{b: params.get(b) for b in ("b_q", "b_k", "b_v", "b_o")}, **kw)
        worst = 0.0
        ok = sorted(grads) == sorted(params)
        for pname, arr in params.items():
            for _ in range(4):
                i = tuple(int(rng.integers(0, n)) for n in arr.shape)
                eps = 1e-5
                plus, minus = dict(params), dict(params)
                plus[pname], minus[pname] = arr.copy(), arr.copy()
                plus[pname][i] += eps
                minus[pname][i] -= eps
                fd = (loss(plus) - loss(minus)) / (2 * eps)
                worst = max(worst, abs(fd - grads[pname][i]) / (1 + abs(fd)))
        # Central differences of a smooth function: ~eps^2 + 1e-16/eps.
        report(f"backward-vs-finite-differences-{name}", ok and worst < 1e-6,
               f"worst relative error {worst:.3g}")
    return not failed


# ---------------------------------------------------------------------------

def build_layer_library(args, st: Setup, outdir):
    """The layer library of the configuration in `outdir`, loaded; None
    (after a FAIL line) if sqa-aot fails or the library does not load."""
    try:
        r = st.rope
        path = aot.build_library(
            args.sqa_aot, outdir, layer=True, variant=args.variant,
            heads=args.heads, groups=args.groups, q_heads=args.q_heads,
            kv_heads=args.kv_heads, head_dim=args.head_dim, dtype=args.dtype,
            cross_attention=args.cross_attention, rope=args.rope,
            rope_base=args.rope_base, rope_factor=args.rope_factor,
            rope_original_max=args.rope_original_max,
            rope_offset=args.rope_offset,
            rope_queries_only=bool(r and r["queries_only"]),
            bias=st.bias or None, causal=args.causal, alignment=args.alignment,
            window=None if st.window == (-1, -1) else st.window,
            scale=args.scale, kernel=args.kernel, name=args.name)
    except (aot.AOTError, OSError) as e:
        print(f"FAIL {st.desc} sqa-aot error (see stderr)", flush=True)
        print(str(e), file=sys.stderr)
        return None
    try:
        return aot.LayerLibrary(path, args.name, args.dtype)
    except (OSError, AttributeError) as e:
        print(f"FAIL {st.desc} cannot load {path}: {e}", flush=True)
        return None


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.selftest:
        return 0 if run_selftest(args.seed) else 1
    if args.parameter_counts:
        if args.head_dim is None:
            parser.error("--head-dim is required")
        st = Setup(args, parser)
        c = L.parameter_counts(st.hq, st.hkv, st.d, total_heads=st.total,
                               biases=st.bias)
        print(f"layer parameters: {c['total']} (weights {c['weights']}, "
              f"biases {c['total'] - c['weights']})")
        print(f"weights: W_q {c['W_q']}, W_k {c['W_k']}, W_v {c['W_v']}, "
              f"W_o {c['W_o']}; d_model {st.d_model}")
        return 0
    if args.sqa_aot is None:
        parser.error("--sqa-aot is required (except with --selftest, --parameter-counts)")
    st = Setup(args, parser)
    if not (args.error_paths or args.backward_error_paths) and args.shapes is None:
        parser.error("--shapes is required (or --error-paths, --selftest)")

    outdir = args.outdir or tempfile.mkdtemp(prefix="sqa-check-layer-")
    try:
        lib = build_layer_library(args, st, outdir)
        if lib is None:
            return 1

        if args.error_paths:
            rng = np.random.default_rng(args.seed)
            return 0 if check_error_paths(lib, st, rng) else 1
        if args.backward_error_paths and not (args.backward and args.shapes):
            rng = np.random.default_rng(args.seed)
            return 0 if check_backward_error_paths(lib, st, rng) else 1
        failed = False

        for idx, (B, S, T) in enumerate(args.shapes):
            if not st.cross or T is None:
                T = S
            rng = np.random.default_rng([args.seed, idx, B, S, T])
            if args.backward:
                ok, worst, detail = check_backward_shape(lib, st, B, S, T, rng)
                print(f"{'PASS' if ok else 'FAIL'} backward {st.desc} B={B} S={S} "
                      f"T={T} worst_err/tol={worst:.3g} {detail}", flush=True)
                failed |= not ok
                continue
            ok, err, tol, reason = check_shape(lib, st, B, S, T, rng)
            line = (f"{'PASS' if ok else 'FAIL'} {st.desc} B={B} S={S} T={T} "
                    f"max_abs_err={err:.3e} tol={tol:.3e}")
            if reason:
                line += f" ({reason})"
            print(line, flush=True)
            failed |= not ok
        if args.backward_error_paths:
            # After the gradients of the same library (--backward --shapes).
            rng = np.random.default_rng(args.seed)
            failed |= not check_backward_error_paths(lib, st, rng)
        return 1 if failed else 0
    finally:
        if args.outdir is None:
            shutil.rmtree(outdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
