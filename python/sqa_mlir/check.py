#!/usr/bin/env python3
"""Check one compiled ``sqa.attention`` configuration against the numpy
reference, for several (B, S, T) shapes.

  python3 python/sqa_mlir/check.py --q-heads 8 --kv-heads 4 --head-dim 64 \\
      --dtype f32 --causal bottom_right --shapes 2x37x53,3x53x37

One shared library is compiled per invocation (B, S, T are dynamic) and
called for every shape. For each shape exactly one line is printed:

  PASS <config> B=.. S=.. T=.. max_abs_err=<e> tol=<t>
  FAIL <config> B=.. S=.. T=.. max_abs_err=<e> tol=<t> [reason]

and the exit status is 1 if any shape failed (a NaN or an unwritten output
element, which is pre-filled with NaN, counts as a failure).

Options with negative numbers need '=': --window=-1,8 .
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __package__ in (None, ""):
    # Run as a script: make `import sqa_mlir` work without PYTHONPATH.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from sqa_mlir import reference  # noqa: E402
from sqa_mlir.reference import EPSILON, from_storage, nan_storage, to_storage  # noqa: E402
from sqa_mlir.runner import (  # noqa: E402
    AttentionConfig,
    CompiledAttention,
    Toolchain,
    ToolError,
    generate_mlir,
)


# Tolerances, applied to the whole output tensor against the float64
# reference computed from the dtype-rounded inputs:
#   |out - ref| <= atol + rtol * max(|ref|)
#
# f32: the kernel computes in f32 throughout; errors are a few f32 ulps of
#   the accumulated sums (~1e-6 for our sizes), so atol 1e-4 + rtol 1e-4 has
#   a wide margin and still catches any real bug (wrong head, mask, scale).
#
# f16 / bf16: scores, softmax and accumulation are in f32 (error ~1e-6, as
#   above) but the result is rounded once to the element type: that alone
#   costs up to 0.5 ulp, i.e. <= 0.5 * eps * |ref| (eps = 2^-10 for f16,
#   2^-7 for bf16). If an implementation also rounds the probabilities P to
#   the element type before P.V (as FlashAttention/IREE do), each term gains a
#   relative error <= eps/2, which is random in sign and averages out over the
#   T keys, adding well under one ulp of the largest output. So we allow
#   2 ulps relative to max(|ref|): rtol = 2 * eps, plus a small atol
#   (eps / 8) for outputs that are all close to 0. A wrong mask, head mapping
#   or scale changes outputs by O(0.1..1), far above these bounds, and an
#   accumulation in f16/bf16 over hundreds of keys exceeds them.
TOLERANCES = {
    "f32": (1e-4, 1e-4),                          # (atol, rtol)
    "f16": (EPSILON["f16"] / 8, 2 * EPSILON["f16"]),
    "bf16": (EPSILON["bf16"] / 8, 2 * EPSILON["bf16"]),
}


def parse_shapes(text: str):
    shapes = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.lower().split("x")
        if len(parts) != 3:
            raise argparse.ArgumentTypeError(f"bad shape {item!r}; expected BxSxT")
        try:
            b, s, t = (int(p) for p in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad shape {item!r}; expected BxSxT")
        if b < 1 or s < 1 or t < 1:
            raise argparse.ArgumentTypeError(f"bad shape {item!r}: sizes must be >= 1")
        shapes.append((b, s, t))
    if not shapes:
        raise argparse.ArgumentTypeError("no shapes given")
    return shapes


def parse_window(text: str):
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"bad window {text!r}; expected L,R")
    try:
        left, right = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad window {text!r}; expected L,R")
    if left < -1 or right < -1:
        raise argparse.ArgumentTypeError("window bounds must be >= -1 (-1: unbounded)")
    return left, right


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
    p.add_argument("--shapes", type=parse_shapes,
                   help="comma-separated BxSxT list; required")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--explicit-attrs", action="store_true",
                   help="write every #sqa.mask parameter and the scale, even defaults")
    p.add_argument("--heads-attr", action="store_true",
                   help="with --variant: also attach heads = #sqa.heads<variant, ...>")
    t = p.add_argument_group("tools")
    t.add_argument("--sqa-opt", help="sqa-opt binary (default: PATH, <repo>/build/bin)")
    t.add_argument("--mlir-translate", help="mlir-translate (default: PATH, /usr/lib/llvm-22/bin)")
    t.add_argument("--clang", help="clang of the same LLVM as mlir-translate (default: "
                   "next to mlir-translate, clang-22, /usr/lib/llvm-22/bin, PATH)")
    t.add_argument("--opt-arg", action="append", dest="opt_args",
                   help="replace the sqa-opt arguments (default --sqa-cpu-pipeline); repeatable")
    t.add_argument("--cflag", action="append", dest="cflags",
                   help="replace the clang flags (default -O2); repeatable")
    p.add_argument("--keep-temps", metavar="DIR",
                   help="compile into DIR and keep the intermediate files")
    p.add_argument("--emit-mlir", action="store_true",
                   help="print the generated MLIR module and exit")
    p.add_argument("--selftest", action="store_true",
                   help="only run the numpy oracle's self-test (selftest.py) and exit")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="report timings on stderr")
    return p


def make_config(args, parser) -> AttentionConfig:
    variant = total = groups = None
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
        variant, total, groups = args.variant, args.heads, args.groups
    elif args.heads is not None or args.groups is not None:
        parser.error("--heads/--groups only go with --variant")
    if hq is None or hkv is None:
        parser.error("give --q-heads and --kv-heads, or --variant and --heads")
    alignment = args.alignment or "top_left"
    if args.causal is not None:
        if args.alignment is not None and args.alignment != args.causal:
            parser.error("--causal and --alignment disagree")
        alignment = args.causal
    try:
        return AttentionConfig(
            q_heads=hq, kv_heads=hkv, head_dim=args.head_dim,
            value_dim=args.value_dim, dtype=args.dtype,
            causal=args.causal is not None, alignment=alignment,
            window=args.window, scale=args.scale,
            variant=variant, total_heads=total, groups=groups)
    except ValueError as e:
        parser.error(str(e))


def check_shape(kernel: CompiledAttention, cfg: AttentionConfig, B, S, T, rng):
    """Returns (ok, max_abs_err, tol, reason)."""
    q32 = rng.standard_normal((B, cfg.q_heads, S, cfg.head_dim), dtype=np.float32)
    k32 = rng.standard_normal((B, cfg.kv_heads, T, cfg.head_dim), dtype=np.float32)
    v32 = rng.standard_normal((B, cfg.kv_heads, T, cfg.value_dim), dtype=np.float32)
    q, k, v = (to_storage(x, cfg.dtype) for x in (q32, k32, v32))
    q_in, k_in, v_in = q.copy(), k.copy(), v.copy()

    # NaN sentinel: the op must write every output element (init is not read).
    out = nan_storage(kernel.out_shape(q), cfg.dtype)
    kernel(q, k, v, out)

    ref = reference.attention(
        from_storage(q, cfg.dtype), from_storage(k, cfg.dtype),
        from_storage(v, cfg.dtype), scale=cfg.effective_scale,
        causal=cfg.causal, alignment=cfg.alignment, window=cfg.window)
    atol, rtol = TOLERANCES[cfg.dtype]
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
        from sqa_mlir import selftest
        return selftest.main()
    if args.head_dim is None:
        parser.error("--head-dim is required")
    cfg = make_config(args, parser)
    if args.shapes is None and not args.emit_mlir:
        parser.error("--shapes is required")

    if args.emit_mlir:
        sys.stdout.write(generate_mlir(cfg, explicit_attrs=args.explicit_attrs,
                                       with_heads_attr=args.heads_attr))
        return 0

    tc = Toolchain(sqa_opt=args.sqa_opt, mlir_translate=args.mlir_translate,
                   clang=args.clang)
    if args.opt_args:
        tc.opt_args = tuple(args.opt_args)
    if args.cflags:
        tc.cflags = tuple(args.cflags)

    desc = cfg.describe()
    t0 = time.perf_counter()
    try:
        kernel = CompiledAttention(cfg, tc, workdir=args.keep_temps,
                                   keep=args.keep_temps is not None,
                                   explicit_attrs=args.explicit_attrs,
                                   with_heads_attr=args.heads_attr)
    except (ToolError, OSError, AttributeError) as e:
        print(f"FAIL {desc} compile error (see stderr)", flush=True)
        print(str(e), file=sys.stderr)
        return 1
    t_compile = time.perf_counter() - t0

    failed = False
    with kernel:
        for idx, (B, S, T) in enumerate(args.shapes):
            rng = np.random.default_rng([args.seed, idx, B, S, T])
            t1 = time.perf_counter()
            ok, err, tol, reason = check_shape(kernel, cfg, B, S, T, rng)
            status = "PASS" if ok else "FAIL"
            line = (f"{status} {desc} B={B} S={S} T={T} "
                    f"max_abs_err={err:.3e} tol={tol:.3e}")
            if reason:
                line += f" ({reason})"
            print(line, flush=True)
            failed |= not ok
            if args.verbose:
                print(f"  shape {B}x{S}x{T}: {time.perf_counter() - t1:.3f}s",
                      file=sys.stderr)
    if args.verbose:
        print(f"compile: {t_compile:.3f}s  ({kernel.so_path})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
