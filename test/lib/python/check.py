#!/usr/bin/env python3
"""Check one ``sqa.attention`` configuration, compiled by ``sqa-aot``,
against the numpy reference, for several (B, S, T) shapes.

  python3 test/lib/python/check.py --sqa-aot build/bin/sqa-aot \\
      --q-heads 8 --kv-heads 4 --head-dim 64 --dtype f32 \\
      --causal bottom_right --shapes 2x37x53,3x53x37

One library is built per invocation (B, S, T are dynamic) by the product's
compiler driver (sqa-aot, as users run it) and called through
``sqa_mlir.aot.AttentionLibrary`` for every shape. For each shape exactly one
line is printed:

  PASS <config> B=.. S=.. T=.. max_abs_err=<e> tol=<t>
  FAIL <config> B=.. S=.. T=.. max_abs_err=<e> tol=<t> [reason]

and the exit status is 1 if any shape failed (a NaN or an unwritten output
element, which is pre-filled with NaN, counts as a failure).

Options with negative numbers need '=': --window=-1,8 .
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import time

import testpaths  # noqa: E402,F401  (makes sqa_mlir importable)

import numpy as np  # noqa: E402

from sqa_mlir import aot, reference  # noqa: E402
from sqa_mlir.cli import parse_shapes, parse_window  # noqa: E402
from sqa_mlir.reference import TOLERANCES, from_storage, nan_storage, to_storage  # noqa: E402

NAME = "sqa_check"


class Config:
    """The configuration as the test states it, independent of the tool."""

    def __init__(self, args, parser):
        self.variant, self.total, self.groups = args.variant, args.heads, args.groups
        hq, hkv = args.q_heads, args.kv_heads
        if args.variant is not None:
            if args.heads is None:
                parser.error("--variant needs --heads")
            try:
                vq, vkv = reference.variant_heads(args.variant, args.heads, args.groups)
            except ValueError as e:
                parser.error(str(e))
            if (hq is not None and hq != vq) or (hkv is not None and hkv != vkv):
                parser.error(f"--variant {args.variant} --heads {args.heads} gives "
                             f"{vq}/{vkv}, which disagrees with --q-heads/--kv-heads")
            hq, hkv = vq, vkv
        elif args.heads is not None or args.groups is not None:
            parser.error("--heads/--groups only go with --variant")
        if hq is None or hkv is None:
            parser.error("give --q-heads and --kv-heads, or --variant and --heads")
        if hq < 1 or hkv < 1 or max(hq, hkv) % min(hq, hkv):
            parser.error(f"the larger of Hq ({hq}) and Hkv ({hkv}) must be a "
                         "multiple of the smaller")
        self.hq, self.hkv = hq, hkv
        self.d = args.head_dim
        self.dv = args.value_dim or args.head_dim
        self.dtype = args.dtype
        self.causal = args.causal is not None
        self.alignment = args.alignment or "top_left"
        if self.causal:
            if args.alignment is not None and args.alignment != args.causal:
                parser.error("--causal and --alignment disagree")
            self.alignment = args.causal
        self.window = tuple(args.window)
        self.scale = args.scale
        # --explicit-attrs: the op's default scale, written out; the library
        # must not differ (the config line stays that of the default).
        self.aot_scale = self.scale
        if args.explicit_attrs and self.scale is None:
            self.aot_scale = 1.0 / math.sqrt(self.d)

    @property
    def out_heads(self) -> int:
        return max(self.hq, self.hkv)

    @property
    def effective_scale(self) -> float:
        """The kernel's scale (an f32 attribute when given)."""
        if self.aot_scale is None:
            return 1.0 / math.sqrt(self.d)
        return float(np.float32(self.aot_scale))

    def aot_options(self, args) -> dict:
        """sqa_mlir.aot.build_library keywords. Presets go to sqa-aot as
        presets, so that its head resolution is tested too."""
        if self.variant is not None:
            heads = dict(variant=self.variant, heads=self.total, groups=self.groups)
        else:
            heads = dict(q_heads=self.hq, kv_heads=self.hkv)
        mask = {}
        if self.causal:
            mask["causal"] = self.alignment
        elif self.alignment != "top_left":
            mask["alignment"] = self.alignment
        if self.window != (-1, -1):
            mask["window"] = self.window
        tuned = any(x is not None for x in (args.cpu_query_tile, args.cpu_kv_block,
                                            args.cpu_mr, args.cpu_nr))
        return dict(**heads, **mask, head_dim=self.d, value_head_dim=args.value_dim,
                    dtype=self.dtype, scale=self.aot_scale, name=NAME,
                    kernel=args.kernel, cpu_query_tile=args.cpu_query_tile,
                    cpu_kv_block=args.cpu_kv_block, cpu_mr=args.cpu_mr,
                    cpu_nr=args.cpu_nr,
                    # Tile sizes are stated for 8-lane vectors; without this
                    # an AVX-512 host would pick 16 lanes and refuse them.
                    cpu_vector_width=8 if tuned else None)

    def describe(self) -> str:
        """The config as printed in PASS/FAIL lines (matched by FileCheck)."""
        parts = []
        if self.variant is not None:
            v = f"variant={self.variant} heads={self.total}"
            if self.groups is not None:
                v += f" groups={self.groups}"
            parts.append(v)
        parts.append(f"hq={self.hq} hkv={self.hkv} d={self.d} "
                     f"dv={self.dv} dtype={self.dtype}")
        w = f"window={self.window[0]},{self.window[1]}"
        if self.causal:
            parts.append(f"causal={self.alignment} {w}")
        else:
            parts.append(f"causal=none {w} align={self.alignment}")
        if self.scale is not None:
            parts.append(f"scale={self.effective_scale:.9g}")
        return " ".join(parts)


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("heads (either --q-heads/--kv-heads or --variant/--heads)")
    g.add_argument("--q-heads", type=int, help="query heads Hq")
    g.add_argument("--kv-heads", type=int, help="key/value heads Hkv")
    g.add_argument("--variant", choices=reference.VARIANTS,
                   help="named head preset (needs --heads, and --groups for gqa)")
    g.add_argument("--heads", type=int, help="baseline head count H of --variant")
    g.add_argument("--groups", type=int, help="kv heads of --variant gqa")
    p.add_argument("--head-dim", type=int, help="D (query/key); required")
    p.add_argument("--value-dim", type=int, help="Dv (default: D)")
    p.add_argument("--dtype", choices=reference.DTYPES, default="f32")
    p.add_argument("--causal", choices=reference.ALIGNMENTS,
                   help="causal mask with this alignment")
    p.add_argument("--window", type=parse_window, default=(-1, -1),
                   help="sliding window L,R (-1: unbounded); write --window=L,R")
    p.add_argument("--alignment", choices=reference.ALIGNMENTS,
                   help="mask alignment (default top_left; implied by --causal)")
    p.add_argument("--scale", type=float, help="softmax scale (default 1/sqrt(D))")
    p.add_argument("--explicit-attrs", action="store_true",
                   help="pass the default scale explicitly (sqa-aot always writes "
                        "every #sqa.mask parameter)")
    p.add_argument("--shapes", type=parse_shapes,
                   help="comma-separated BxSxT list; required")
    p.add_argument("--seed", type=int, default=0)
    k = p.add_argument_group("kernel (sqa-aot options)")
    k.add_argument("--kernel", choices=("flash", "reference"))
    k.add_argument("--cpu-query-tile", type=int)
    k.add_argument("--cpu-kv-block", type=int)
    k.add_argument("--cpu-mr", type=int)
    k.add_argument("--cpu-nr", type=int)
    p.add_argument("--sqa-aot", default=shutil.which("sqa-aot"),
                   help="the sqa-aot binary (default: PATH)")
    p.add_argument("--outdir", help="build the library here and keep it")
    p.add_argument("--emit-mlir", action="store_true",
                   help="print sqa-aot's input module (--emit mlir) and exit")
    p.add_argument("--selftest", action="store_true",
                   help="only run the numpy oracle's self-test (selftest.py) and exit")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="report timings on stderr")
    return p


def check_shape(lib, cfg: Config, B, S, T, rng):
    """Returns (ok, max_abs_err, tol, reason)."""
    q32 = rng.standard_normal((B, cfg.hq, S, cfg.d), dtype=np.float32)
    k32 = rng.standard_normal((B, cfg.hkv, T, cfg.d), dtype=np.float32)
    v32 = rng.standard_normal((B, cfg.hkv, T, cfg.dv), dtype=np.float32)
    q, k, v = (to_storage(x, cfg.dtype) for x in (q32, k32, v32))
    q_in, k_in, v_in = q.copy(), k.copy(), v.copy()

    # NaN sentinel: the library must write every output element.
    out = nan_storage((B, cfg.out_heads, S, cfg.dv), cfg.dtype)
    atol, rtol = TOLERANCES[cfg.dtype]
    status = lib.forward(q, k, v, out)
    if status != aot.SQA_OK:
        return False, float("nan"), atol, f"status {status}: {lib.error_string(status)}"

    ref = reference.attention(
        from_storage(q, cfg.dtype), from_storage(k, cfg.dtype),
        from_storage(v, cfg.dtype), scale=cfg.effective_scale,
        causal=cfg.causal, alignment=cfg.alignment, window=cfg.window)
    max_err, tol, reasons = reference.compare(from_storage(out, cfg.dtype), ref,
                                              atol, rtol)
    for name, before, after in (("query", q_in, q), ("key", k_in, k), ("value", v_in, v)):
        if not np.array_equal(before.view(np.uint8), after.view(np.uint8)):
            reasons.append(f"{name} input was modified")
    return not reasons, max_err, tol, "; ".join(reasons)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.selftest:
        import selftest
        return selftest.main()
    if args.head_dim is None:
        parser.error("--head-dim is required")
    if args.sqa_aot is None:
        parser.error("sqa-aot is not on PATH; pass --sqa-aot")
    cfg = Config(args, parser)
    options = cfg.aot_options(args)
    if args.emit_mlir:
        cmd = [args.sqa_aot, *aot.aot_arguments(**options), "--emit", "mlir", "-o", "-"]
        return subprocess.run(cmd).returncode
    if args.shapes is None:
        parser.error("--shapes is required")

    desc = cfg.describe()
    outdir = args.outdir or tempfile.mkdtemp(prefix="sqa-check-")
    try:
        t0 = time.perf_counter()
        try:
            path = aot.build_library(args.sqa_aot, outdir, **options)
            lib = aot.AttentionLibrary(path, NAME, cfg.dtype)
        except (aot.AOTError, OSError) as e:
            print(f"FAIL {desc} compile error (see stderr)", flush=True)
            print(str(e), file=sys.stderr)
            return 1
        t_compile = time.perf_counter() - t0

        failed = False
        for idx, (B, S, T) in enumerate(args.shapes):
            rng = np.random.default_rng([args.seed, idx, B, S, T])
            t1 = time.perf_counter()
            ok, err, tol, reason = check_shape(lib, cfg, B, S, T, rng)
            line = (f"{'PASS' if ok else 'FAIL'} {desc} B={B} S={S} T={T} "
                    f"max_abs_err={err:.3e} tol={tol:.3e}")
            if reason:
                line += f" ({reason})"
            print(line, flush=True)
            failed |= not ok
            if args.verbose:
                print(f"  shape {B}x{S}x{T}: {time.perf_counter() - t1:.3f}s",
                      file=sys.stderr)
        if args.verbose:
            print(f"compile: {t_compile:.3f}s  ({path})", file=sys.stderr)
        return 1 if failed else 0
    finally:
        if args.outdir is None:
            shutil.rmtree(outdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
