#!/usr/bin/env python3
"""Check a library built by ``sqa-aot`` against the numpy reference.

  python3 test/lib/python/check_aot.py --sqa-aot build/bin/sqa-aot \\
      --variant sqa --heads 16 --head-dim 32 --layout bshd \\
      --causal bottom-right --shapes 2x5x9,1x9x5

Builds one library (into --outdir, default a temporary directory) and calls
it through ctypes (sqa_mlir.aot) for every shape, printing one line per
shape, as check.py does:

  PASS <config> B=.. S=.. T=.. max_abs_err=<e> tol=<t>
  FAIL <config> B=.. S=.. T=.. max_abs_err=<e> tol=<t> (reason)

Tolerances are check.py's. With --error-paths it instead checks the
library's argument validation (null pointers, non-positive sizes, size
overflow, misaligned pointers, out aliasing an input), its error strings and
its config string, printing one 'PASS error-paths <case> ...' or
'FAIL error-paths <case> ...' line per case. Exit status 1 if anything failed.

Options with negative numbers need '=': --window=-1,8 .
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
from sqa_mlir.cli import parse_shapes, parse_window  # noqa: E402
from sqa_mlir.reference import TOLERANCES  # noqa: E402
from sqa_mlir.reference import from_storage, nan_storage, to_storage  # noqa: E402

# Both spellings are accepted: sqa-aot's top-left and reference.py's top_left.
ALIGNMENT_CHOICES = ("top-left", "bottom-right", "top_left", "bottom_right")


def _alignment(value):
    return None if value is None else value.replace("-", "_")


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sqa-aot", required=True, help="the sqa-aot binary")
    g = p.add_argument_group("configuration (passed to sqa-aot)")
    g.add_argument("--variant", choices=reference.VARIANTS)
    g.add_argument("--heads", type=int)
    g.add_argument("--groups", type=int)
    g.add_argument("--q-heads", type=int)
    g.add_argument("--kv-heads", type=int)
    g.add_argument("--head-dim", type=int, required=True)
    g.add_argument("--value-head-dim", "--value-dim", dest="value_head_dim", type=int)
    g.add_argument("--dtype", choices=reference.DTYPES, default="f32")
    g.add_argument("--causal", choices=ALIGNMENT_CHOICES)
    g.add_argument("--window", type=parse_window, default=(-1, -1),
                   help="sliding window L,R (-1: unbounded); write --window=L,R")
    g.add_argument("--alignment", choices=ALIGNMENT_CHOICES,
                   help="window alignment without --causal")
    g.add_argument("--scale", type=float)
    g.add_argument("--layout", choices=aot.LAYOUTS, default="bhsd")
    g.add_argument("--name", default="sqa_check", help="symbol prefix")
    p.add_argument("--shapes", type=parse_shapes, help="comma-separated BxSxT list")
    p.add_argument("--error-paths", action="store_true",
                   help="check argument validation instead of numerics")
    p.add_argument("--cpu", help="sqa-aot --cpu (default: every ISA level)")
    p.add_argument("--expect-cpu-level",
                   help="NAME_config must report this cpu_level (the level "
                        "CPUID or SQA_CPU_LEVEL chose)")
    p.add_argument("--expect-unsupported-cpu", action="store_true",
                   help="every call must return SQA_ERROR_UNSUPPORTED_CPU "
                        "and leave out unwritten (SQA_CPU_LEVEL names a level "
                        "this CPU or library lacks)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--outdir", help="build the library here (kept)")
    return p


class Setup:
    """The configuration as the test understands it, independent of the tool."""

    def __init__(self, args, parser):
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
        self.h = max(self.hq, self.hkv)
        self.d = args.head_dim
        self.dv = args.value_head_dim or args.head_dim
        self.dtype = args.dtype
        self.layout = args.layout
        self.causal = args.causal is not None
        causal_al, al = _alignment(args.causal), _alignment(args.alignment)
        if causal_al and al and causal_al != al:
            parser.error("--causal and --alignment disagree")
        self.alignment = causal_al or al or "top_left"
        self.window = tuple(args.window)
        self.scale = args.scale if args.scale is not None else 1.0 / math.sqrt(self.d)
        self.desc = (f"{args.variant or 'heads'} hq={self.hq} hkv={self.hkv} "
                     f"d={self.d} dv={self.dv} {self.dtype} {self.layout}"
                     + (f" causal={self.alignment}" if self.causal else "")
                     + (f" window={self.window[0]},{self.window[1]}"
                        if self.window != (-1, -1) else "")
                     + (f" alignment={self.alignment}"
                        if not self.causal and args.alignment else "")
                     + (f" scale={args.scale:g}" if args.scale is not None else ""))

    def to_layout(self, x):
        """BHSD -> the library layout (C-contiguous)."""
        if self.layout == "bshd":
            x = np.transpose(x, (0, 2, 1, 3))
        return np.ascontiguousarray(x)

    def from_layout(self, x):
        """The library layout -> BHSD."""
        if self.layout == "bshd":
            x = np.transpose(x, (0, 2, 1, 3))
        return x

    def inputs(self, B, S, T, rng):
        """(q, k, v) in storage and library layout."""
        q = rng.standard_normal((B, self.hq, S, self.d), dtype=np.float32)
        k = rng.standard_normal((B, self.hkv, T, self.d), dtype=np.float32)
        v = rng.standard_normal((B, self.hkv, T, self.dv), dtype=np.float32)
        return tuple(self.to_layout(to_storage(x, self.dtype)) for x in (q, k, v))

    def out_shape(self, B, S):
        if self.layout == "bshd":
            return (B, S, self.h, self.dv)
        return (B, self.h, S, self.dv)


def check_shape(lib, st: Setup, B, S, T, rng):
    """Returns (ok, max_abs_err, tol, reason)."""
    q, k, v = st.inputs(B, S, T, rng)
    q_in, k_in, v_in = q.copy(), k.copy(), v.copy()
    # NaN sentinel: every output element must be written.
    out = nan_storage(st.out_shape(B, S), st.dtype)
    status = lib.forward(q, k, v, out)
    atol, rtol = TOLERANCES[st.dtype]
    if status != aot.SQA_OK:
        return False, float("nan"), atol, (
            f"status {status}: {lib.error_string(status)}")

    def bhsd(a):
        return st.from_layout(from_storage(a, st.dtype))

    ref = reference.attention(bhsd(q), bhsd(k), bhsd(v), scale=st.scale,
                              causal=st.causal, alignment=st.alignment,
                              window=st.window)
    max_err, tol, reasons = reference.compare(bhsd(out), ref, atol, rtol)
    for name, before, after in (("q", q_in, q), ("k", k_in, k), ("v", v_in, v)):
        if not np.array_equal(before.view(np.uint8), after.view(np.uint8)):
            reasons.append(f"{name} input was modified")
    return not reasons, max_err, tol, "; ".join(reasons)


def check_error_paths(lib, st: Setup, rng) -> bool:
    """Argument validation from Python; prints one line per case."""
    B, S, T = 2, 3, 5
    q, k, v = st.inputs(B, S, T, rng)
    out = nan_storage(st.out_shape(B, S), st.dtype)
    sentinel = out.copy()
    failed = False

    def report(case, ok, detail):
        nonlocal failed
        failed |= not ok
        print(f"{'PASS' if ok else 'FAIL'} error-paths {case} {detail}", flush=True)

    def expect(case, want, q_, k_, v_, out_, b=B, s=S, t=T, out_untouched=True):
        out[...] = sentinel
        status = lib.forward_raw(q_, k_, v_, out_, b, s, t)
        msg = lib.error_string(status)
        ok = status == want and bool(msg)
        detail = f"status={status} want={want} ({aot.STATUS_NAMES.get(want)})"
        if out_untouched and not np.array_equal(out.view(np.uint8),
                                                sentinel.view(np.uint8)):
            ok = False
            detail += " out was written on error"
        detail += f" message: {msg}"
        report(case, ok, detail)

    # A valid call first, so the failures below are the arguments' fault.
    expect("valid-call", aot.SQA_OK, q, k, v, out, out_untouched=False)

    E = aot
    expect("null-q", E.SQA_ERROR_NULL_POINTER, None, k, v, out)
    expect("null-k", E.SQA_ERROR_NULL_POINTER, q, None, v, out)
    expect("null-v", E.SQA_ERROR_NULL_POINTER, q, k, None, out)
    expect("null-out", E.SQA_ERROR_NULL_POINTER, q, k, v, None)
    for dim in ("batch", "q_len", "kv_len"):
        for bad in (0, -1):
            sizes = {"b": B, "s": S, "t": T}
            sizes[{"batch": "b", "q_len": "s", "kv_len": "t"}[dim]] = bad
            expect(f"{dim}={bad}", E.SQA_ERROR_INVALID_SIZE, q, k, v, out, **sizes)
    expect("batch=min-int64", E.SQA_ERROR_INVALID_SIZE, q, k, v, out,
           b=-(2**63))
    # Sizes whose byte counts overflow int64 (the pointers are never read).
    expect("batch=2^62", E.SQA_ERROR_SIZE_OVERFLOW, q, k, v, out, b=2**62)
    expect("kv_len=2^62", E.SQA_ERROR_SIZE_OVERFLOW, q, k, v, out, t=2**62)
    expect("all=2^40", E.SQA_ERROR_SIZE_OVERFLOW, q, k, v, out,
           b=2**40, s=2**40, t=2**40)

    # Misaligned: the same bytes, one byte past an aligned address.
    def misaligned(a):
        raw = np.zeros(a.nbytes + 64, dtype=np.uint8)
        start = (-raw.ctypes.data) % 64 + 1
        view = raw[start:start + a.nbytes]
        view[...] = a.reshape(-1).view(np.uint8)
        assert view.ctypes.data % a.itemsize != 0
        return view.ctypes.data, raw  # keep raw alive with the address

    for which in ("q", "k", "v", "out"):
        args = {"q": q, "k": k, "v": v, "out": out}
        addr, keep = misaligned(args[which])
        args[which] = addr
        expect(f"misaligned-{which}", E.SQA_ERROR_MISALIGNED,
               args["q"], args["k"], args["v"], args["out"],
               out_untouched=which != "out")
        del keep

    # Aliasing: out placed in the same buffer as an input.
    for which, src in (("q", q), ("k", k), ("v", v)):
        n = max(src.size, out.size)
        buf = np.zeros(2 * n + out.size, dtype=src.dtype)
        buf[:src.size] = src.reshape(-1)
        args = {"q": q, "k": k, "v": v}
        args[which] = buf[:src.size]
        # Exactly the same start address.
        expect(f"alias-out=={which}", E.SQA_ERROR_ALIASING,
               args["q"], args["k"], args["v"], buf[:out.size], out_untouched=False)
        # Partial overlap: out starts inside the input, or ends inside it.
        expect(f"alias-out-inside-{which}", E.SQA_ERROR_ALIASING,
               args["q"], args["k"], args["v"],
               buf[src.size - 1:src.size - 1 + out.size], out_untouched=False)
        if out.size > 1:
            lo = n + out.size - 1  # input placed at [lo, lo + src.size)
            buf2 = np.zeros(lo + src.size, dtype=src.dtype)
            buf2[lo:] = src.reshape(-1)
            args[which] = buf2[lo:]
            expect(f"alias-out-ends-in-{which}", E.SQA_ERROR_ALIASING,
                   args["q"], args["k"], args["v"],
                   buf2[lo - out.size + 1:lo + 1], out_untouched=False)
        # Adjacent but not overlapping: must be accepted.
        args[which] = buf[:src.size]
        adjacent = buf[src.size:src.size + out.size]
        adjacent[...] = sentinel.reshape(-1)
        status = lib.forward_raw(args["q"], args["k"], args["v"], adjacent, B, S, T)
        report(f"adjacent-out-after-{which}", status == E.SQA_OK,
               f"status={status} want=0 ({aot.STATUS_NAMES[E.SQA_OK]})")

    # Every status has a non-empty message; unknown codes too.
    for code in sorted(aot.STATUS_NAMES) + [6, -1]:
        msg = lib.error_string(code)
        report(f"error-string-{code}", bool(msg), f"message: {msg}")

    # The config string names the heads.
    cfg = lib.config() or ""
    s = lib.settings
    ok = (s.get("q_heads") == str(st.hq) and s.get("kv_heads") == str(st.hkv)
          and s.get("head_dim") == str(st.d) and s.get("value_head_dim") == str(st.dv)
          and s.get("dtype") == st.dtype and s.get("layout") == st.layout)
    report("config", ok, f"config: {cfg}")
    return not failed


def check_unsupported_cpu(lib, st: Setup, rng) -> bool:
    """A level the CPU cannot run: a clear status, no SIGILL, out untouched."""
    q, k, v = st.inputs(2, 3, 5, rng)
    out = nan_storage(st.out_shape(2, 3), st.dtype)
    sentinel = out.copy()
    status = lib.forward(q, k, v, out)
    msg = lib.error_string(status)
    untouched = np.array_equal(out.view(np.uint8), sentinel.view(np.uint8))
    ok = (status == aot.SQA_ERROR_UNSUPPORTED_CPU and untouched
          and "SQA_CPU_LEVEL" in msg and lib.settings.get("cpu_level") == "none")
    print(f"{'PASS' if ok else 'FAIL'} unsupported-cpu status={status} "
          f"out_untouched={untouched} message: {msg} config: {lib.config()}",
          flush=True)
    return ok


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    st = Setup(args, parser)
    if not (args.error_paths or args.expect_unsupported_cpu) and args.shapes is None:
        parser.error("--shapes is required (or --error-paths, --expect-unsupported-cpu)")

    outdir = args.outdir or tempfile.mkdtemp(prefix="sqa-check-aot-")
    try:
        try:
            path = aot.build_library(
                args.sqa_aot, outdir, variant=args.variant, heads=args.heads,
                groups=args.groups, q_heads=args.q_heads, kv_heads=args.kv_heads,
                head_dim=args.head_dim, value_head_dim=args.value_head_dim,
                dtype=args.dtype, causal=args.causal, alignment=args.alignment,
                window=None if st.window == (-1, -1) else st.window,
                scale=args.scale, layout=args.layout, name=args.name,
                cpu=args.cpu)
        except (aot.AOTError, OSError) as e:
            print(f"FAIL {st.desc} sqa-aot error (see stderr)", flush=True)
            print(str(e), file=sys.stderr)
            return 1
        lib = aot.AttentionLibrary(path, args.name, args.dtype)

        failed = False
        if args.expect_cpu_level is not None:
            level = lib.settings.get("cpu_level")
            ok = level == args.expect_cpu_level
            print(f"{'PASS' if ok else 'FAIL'} cpu-level {level} "
                  f"want={args.expect_cpu_level} config: {lib.config()}", flush=True)
            failed |= not ok
        if args.expect_unsupported_cpu:
            rng = np.random.default_rng(args.seed)
            return 0 if check_unsupported_cpu(lib, st, rng) and not failed else 1

        if args.error_paths:
            rng = np.random.default_rng(args.seed)
            return 0 if check_error_paths(lib, st, rng) else 1

        for idx, (B, S, T) in enumerate(args.shapes):
            rng = np.random.default_rng([args.seed, idx, B, S, T])
            ok, err, tol, reason = check_shape(lib, st, B, S, T, rng)
            line = (f"{'PASS' if ok else 'FAIL'} {st.desc} B={B} S={S} T={T} "
                    f"max_abs_err={err:.3e} tol={tol:.3e}")
            if reason:
                line += f" ({reason})"
            print(line, flush=True)
            failed |= not ok
        return 1 if failed else 0
    finally:
        if args.outdir is None:
            shutil.rmtree(outdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
