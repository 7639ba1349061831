#!/usr/bin/env python3
"""Run the avx512bf16 level's bf16-dot flash kernel on a CPU without AVX-512.

  python3 test/lib/python/check_bf16_dot_emulated.py --sqa-aot build/bin/sqa-aot \\
      --clang clang --q-heads 8 --kv-heads 2 --head-dim 64 --causal bottom-right \\
      --shapes 1x33x70,2x5x9

The kernel module is compiled by ``sqa-aot --cpu avx512bf16 --emit llvm``
(the bf16-dot lowering, optimized), then its only AVX-512 instruction,
``llvm.x86.avx512bf16.dpbf16ps.512``, is replaced by an LLVM IR function
doing what the Intel SDM says vdpbf16ps does (per f32 lane:
acc += a[2l+1] * b[2l+1], then acc += a[2l] * b[2l]; denormals are not
flushed here), and the module is built for x86-64-v3 and called through its
C interface. Everything else of the avx512bf16 level's code (Q/V/P pair
packing, P's rounding to bf16, scaling, masks) runs as generated.

Checks, per shape, one line each:

  PASS <config> B=.. S=.. T=.. max_abs_err=<e> bound=<b>

against the float64 reference, with the bound of docs/design.md:
bf16 tolerance + 2^-9 * max|v| (P rounded to bf16). Exit status 1 if any
check failed.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile

import testpaths  # noqa: F401  (makes sqa_mlir importable)

import numpy as np  # noqa: E402

from sqa_mlir import aot, reference  # noqa: E402
from sqa_mlir.cli import parse_shapes  # noqa: E402

INTRINSIC = "@llvm.x86.avx512bf16.dpbf16ps.512"


def emulation_ir() -> str:
    """vdpbf16ps on 16 lanes in target-independent LLVM IR."""
    def mask(start):
        return ", ".join(f"i32 {2 * i + start}" for i in range(16))
    lines = ["define internal <16 x float> @sqa_test_dpbf16ps(<16 x float> %acc, "
             "<32 x bfloat> %a, <32 x bfloat> %b) {"]
    for x in ("a", "b"):
        for parity in (0, 1):
            lines.append(f"  %{x}{parity} = shufflevector <32 x bfloat> %{x}, "
                         f"<32 x bfloat> poison, <16 x i32> <{mask(parity)}>")
            lines.append(f"  %f{x}{parity} = fpext <16 x bfloat> %{x}{parity} to <16 x float>")
    lines += ["  %m1 = fmul <16 x float> %fa1, %fb1",
              "  %s1 = fadd <16 x float> %acc, %m1",
              "  %m0 = fmul <16 x float> %fa0, %fb0",
              "  %s0 = fadd <16 x float> %s1, %m0",
              "  ret <16 x float> %s0", "}", ""]
    return "\n".join(lines)


class MemRef4(ctypes.Structure):
    _fields_ = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
                ("offset", ctypes.c_int64), ("sizes", ctypes.c_int64 * 4),
                ("strides", ctypes.c_int64 * 4)]


def descriptor(a: np.ndarray) -> MemRef4:
    strides = [s // a.itemsize for s in a.strides]
    return MemRef4(a.ctypes.data, a.ctypes.data, 0, (ctypes.c_int64 * 4)(*a.shape),
                   (ctypes.c_int64 * 4)(*strides))


def build(args, workdir: str) -> str:
    ll = os.path.join(workdir, "kernel.ll")
    cmd = [args.sqa_aot, "--q-heads", str(args.q_heads), "--kv-heads", str(args.kv_heads),
           "--head-dim", str(args.head_dim), "--dtype", "bf16", "--cpu", "avx512bf16",
           "--name", "emu", "--emit", "llvm", "-o", ll]
    if args.value_head_dim:
        cmd += ["--value-head-dim", str(args.value_head_dim)]
    if args.causal:
        cmd += ["--causal", args.causal]
    if args.window:
        cmd += [f"--window={args.window}", "--alignment", args.alignment or "top-left"]
    subprocess.run(cmd, check=True)
    text = open(ll).read()
    if INTRINSIC not in text:
        raise SystemExit(f"FAIL the module has no {INTRINSIC}: bf16-dot did not apply")
    calls = text.count(INTRINSIC) - 1
    text = re.sub(r"^declare .*" + re.escape(INTRINSIC) + r".*\n", "", text, flags=re.M)
    text = text.replace(INTRINSIC, "@sqa_test_dpbf16ps")
    # Call the kernel's C interface directly (the entry layer is not built).
    text = text.replace("define hidden void @_mlir_ciface_emu_kernel",
                        "define void @_mlir_ciface_emu_kernel")
    if re.search(r"@llvm\.x86\.avx512", text):
        raise SystemExit("FAIL the module uses other AVX-512 intrinsics")
    with open(ll, "w") as f:
        f.write(text + "\n" + emulation_ir())
    so = os.path.join(workdir, "libemu.so")
    libdir = args.llvm_lib_dir
    subprocess.run([args.clang, "-O2", "-march=x86-64-v3", "-shared", "-fPIC",
                    "-Wno-override-module", "--rtlib=compiler-rt", "-fuse-ld=lld", ll,
                    "-o", so, f"-L{libdir}", f"-Wl,-rpath,{libdir}", "-lomp", "-lm"],
                   check=True)
    print(f"built {so}: {calls} vdpbf16ps call sites emulated", flush=True)
    return so


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sqa-aot", required=True)
    p.add_argument("--clang", required=True)
    p.add_argument("--llvm-lib-dir", default="/usr/lib/llvm-22/lib")
    p.add_argument("--q-heads", type=int, required=True)
    p.add_argument("--kv-heads", type=int, required=True)
    p.add_argument("--head-dim", type=int, required=True)
    p.add_argument("--value-head-dim", type=int)
    p.add_argument("--causal", choices=("top-left", "bottom-right"))
    p.add_argument("--window", help="L,R")
    p.add_argument("--alignment", choices=("top-left", "bottom-right"))
    p.add_argument("--shapes", type=parse_shapes, required=True)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="sqa-bf16-emu-")
    try:
        lib = ctypes.CDLL(build(args, workdir))
        kernel = lib._mlir_ciface_emu_kernel
        kernel.restype = None
        kernel.argtypes = [ctypes.POINTER(MemRef4)] * 4
        hq, hkv, d = args.q_heads, args.kv_heads, args.head_dim
        dv = args.value_head_dim or d
        h = max(hq, hkv)
        window = (-1, -1)
        if args.window:
            window = tuple(int(x) for x in args.window.split(","))
        alignment = (args.causal or args.alignment or "top-left").replace("-", "_")
        failed = False
        for B, S, T in args.shapes:
            rng = np.random.default_rng([args.seed, B, S, T])
            q, k, v = (reference.to_storage(rng.standard_normal(shape, dtype=np.float32),
                                            "bf16")
                       for shape in ((B, hq, S, d), (B, hkv, T, d), (B, hkv, T, dv)))
            out = reference.nan_storage((B, h, S, dv), "bf16")
            descs = [descriptor(a) for a in (q, k, v, out)]
            kernel(*[ctypes.byref(m) for m in descs])
            vals = [reference.from_storage(a, "bf16") for a in (q, k, v)]
            want = reference.attention(*vals, causal=bool(args.causal), alignment=alignment,
                                       window=window)
            got = reference.from_storage(out, "bf16").astype(np.float64)
            atol, rtol = reference.TOLERANCES["bf16"]
            # The documented bound: P rounded to bf16 moves an output by at
            # most 2^-9 * max|v| of its kv head's column.
            vmax = np.abs(vals[2]).max()
            bound = atol + rtol * np.abs(want) + 2.0 ** -9 * vmax
            err = np.abs(got - want)
            ok = bool(np.all(np.isfinite(got)) and np.all(err <= bound))
            print(f"{'PASS' if ok else 'FAIL'} hq={hq} hkv={hkv} d={d} dv={dv} bf16"
                  + (f" causal={args.causal}" if args.causal else "")
                  + (f" window={args.window}" if args.window else "")
                  + f" B={B} S={S} T={T} max_abs_err={np.nanmax(err):.3e} "
                  f"bound={float(np.max(bound)):.3e}", flush=True)
            failed |= not ok
        return 1 if failed else 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
