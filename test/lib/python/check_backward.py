#!/usr/bin/env python3
"""Check the training entry points of sqa-aot libraries (NAME_forward_lse,
NAME_backward) against the float64 numpy reference.

  python3 test/lib/python/check_backward.py --sqa-aot build/bin/sqa-aot \\
      --dtype f32 --matrix

--matrix builds two libraries per head variant (all eight, H = 8), each with
one of the five masks (none, causal top-left, causal bottom-right, window,
causal + window; the assignment rotates with the dtype so that the three
dtype runs give every variant all five masks), and checks every shape of
SHAPES (the second library: the S != T ones): S != T both ways, S > T with rows that see no key under a
bottom-right causal mask (their dq must be 0 and they add nothing to dk/dv),
odd lengths and a single query. One line per library and shape:

  PASS <config> B=.. S=.. T=.. lse=<err> dq=<err> dk=<err> dv=<err>
  FAIL <config> ... (reason)

--error-paths checks the argument validation of both entry points (nulls,
sizes, misalignment, aliasing) and that nothing is written on error.
--tiles checks head dims that are whole vectors (rows read in place) on
lengths that cross several kernel tiles unevenly (TILE_CASES).
--determinism runs the backward in child processes with OMP_NUM_THREADS=1
and 2 and compares the gradients bit for bit (head dims 12 and 16). Exit status 1 if anything
failed.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile

import testpaths  # noqa: E402,F401  (makes sqa_mlir importable)

import numpy as np  # noqa: E402

from sqa_mlir import aot, reference  # noqa: E402
from sqa_mlir.reference import EPSILON, from_storage, nan_storage, to_storage  # noqa: E402

MASKS = {
    "none": {},
    "causal-top-left": {"causal": "top_left"},
    "causal-bottom-right": {"causal": "bottom_right"},
    "window": {"window": (5, 3), "alignment": "bottom_right"},
    "causal-window": {"causal": "top_left", "window": (6, -1)},
}
MASK_ORDER = list(MASKS)
DTYPE_ROTATION = {"f32": 0, "f16": 2, "bf16": 4}
SHAPES = [(2, 37, 53), (1, 45, 19), (1, 1, 7), (2, 19, 19)]

# Gradient tolerances: |got - want| <= atol + rtol * max|want|, per array.
# f32: f32 arithmetic over <= 53 keys and <= 8 heads per reduction, errors
#   ~1e-6 relative; 1e-4 leaves a wide margin and still catches any wrong
#   head, mask or scale (errors O(0.1)).
# f16/bf16: the kernel sees out rounded to the element type (Delta =
#   rowsum(d_out * out) gains a relative error ~eps/2 per term) and rounds
#   each gradient once (0.5 ulp); the reference uses the exact out. 4 ulps
#   of the largest gradient cover both; a bug is orders of magnitude larger.
GRAD_TOLERANCES = {
    "f32": (1e-4, 1e-4),
    "f16": (EPSILON["f16"] / 8, 4 * EPSILON["f16"]),
    "bf16": (EPSILON["bf16"] / 8, 4 * EPSILON["bf16"]),
}
# lse is f32 from f32 scores in every dtype.
LSE_TOLERANCE = 1e-4


def variants(total=8):
    for name in reference.VARIANTS:
        hq, hkv = reference.variant_heads(name, total, 2 if name == "gqa" else None)
        yield name, hq, hkv


def build(sqa_aot, outdir, name, variant, dtype, mask, head_dim=12, value_dim=None):
    config = dict(variant=variant, heads=8, head_dim=head_dim, dtype=dtype,
                  name=name, **MASKS[mask])
    if variant == "gqa":
        config["groups"] = 2
    if value_dim:
        config["value_head_dim"] = value_dim
    path = aot.build_library(sqa_aot, outdir, **config)
    return aot.AttentionLibrary(path, name, dtype)


def mask_args(mask):
    m = MASKS[mask]
    alignment = m.get("causal") or m.get("alignment") or "top_left"
    return dict(causal="causal" in m, alignment=alignment,
                window=m.get("window", (-1, -1)))


def random_inputs(rng, dtype, B, S, T, hq, hkv, d, dv):
    h = max(hq, hkv)
    shapes = [(B, hq, S, d), (B, hkv, T, d), (B, hkv, T, dv), (B, h, S, dv)]
    return [to_storage(rng.standard_normal(s, dtype=np.float32), dtype) for s in shapes]


# The CUDA tensor-core forward rounds P to the element type before P.V:
# 4 ulps of the output (check_gpu_emulated.py's tolerances).
CUDA_OUT_TOLERANCES = {"f32": (1e-4, 1e-4), "f16": (2.0**-13, 4 * 2.0**-10),
                       "bf16": (2.0**-10, 4 * 2.0**-7)}


def check_one(lib, dtype, mask, hq, hkv, d, dv, B, S, T, rng, out_tolerances=None):
    q, k, v, d_out = random_inputs(rng, dtype, B, S, T, hq, hkv, d, dv)
    f64 = [from_storage(a, dtype) for a in (q, k, v, d_out)]
    kw = mask_args(mask)
    reasons = []
    out, lse = lib.forward_lse(q, k, v)
    want_out, want_lse = reference.attention_lse(*f64[:3], **kw)
    empty = np.isneginf(want_lse)
    if not np.array_equal(np.isneginf(lse), empty):
        reasons.append("lse is -inf exactly where the row sees no key: no")
    lse_err = float(np.max(np.abs(np.where(empty, 0, lse - np.where(empty, 0, want_lse)))))
    if not lse_err <= LSE_TOLERANCE:
        reasons.append(f"lse error {lse_err:.3g} > {LSE_TOLERANCE}")
    # The forward of forward_lse is the forward.
    err, tol, why = reference.compare(from_storage(out, dtype), want_out,
                                      *(out_tolerances or reference.TOLERANCES)[dtype])
    reasons += [f"out: {r}" for r in why]

    dq, dk, dv_ = lib.backward(q, k, v, out, d_out, lse)
    want = reference.attention_backward(*f64[:3], f64[3], **kw)
    errs = []
    atol, rtol = GRAD_TOLERANCES[dtype]
    for what, got, ref in zip(("dq", "dk", "dv"), (dq, dk, dv_), want):
        err, tol, why = reference.compare(from_storage(got, dtype), ref, atol, rtol)
        errs.append(f"{what}={err:.3g}/{tol:.3g}")
        reasons += [f"{what}: {r}" for r in why]
    # Rows that see no key: dq exactly 0 (for every query head of them).
    rows = empty.any(axis=(0, 1))
    if rows.any() and np.any(from_storage(dq, dtype)[:, :, rows, :]):
        reasons.append("dq of a row that sees no key is not 0")
    return reasons, f"lse={lse_err:.3g} " + " ".join(errs)


def run_matrix(args, outdir):
    rng = np.random.default_rng(args.seed)
    failed = False
    shift = DTYPE_ROTATION[args.dtype]
    for i, (name, hq, hkv) in enumerate(variants()):
        dv = 20 if name == "rsqa" else 12
        # Two masks per variant and dtype: over the three dtypes every
        # variant meets all five masks; the second mask on the S != T shapes.
        for extra, shapes in enumerate((SHAPES, SHAPES[:2])):
            mask = MASK_ORDER[(i + shift + extra) % len(MASK_ORDER)]
            lib = build(args.sqa_aot, outdir, f"bwd_{name}_{args.dtype}_{extra}", name,
                        args.dtype, mask, value_dim=dv)
            for B, S, T in shapes:
                desc = (f"{name} hq={hq} hkv={hkv} d=12 dv={dv} {args.dtype} "
                        f"mask={mask} B={B} S={S} T={T}")
                try:
                    reasons, errs = check_one(lib, args.dtype, mask, hq, hkv, 12, dv,
                                              B, S, T, rng)
                except Exception as e:  # a status or shape error is a failure
                    reasons, errs = [repr(e)], ""
                failed |= bool(reasons)
                print(f"{'FAIL' if reasons else 'PASS'} {desc} {errs}"
                      + (f" ({'; '.join(reasons)})" if reasons else ""), flush=True)
    return failed


# Kernel tiles (query-block 64 rows, kv-block 64 keys): head dims that are
# whole vectors (rows read in place, no padding copy) on lengths that cross
# several tiles unevenly, with S > T rows that see no key, windows and
# grouped, reverse and single-kv heads. (variant, dtype, mask, d, dv, shapes)
TILE_CASES = [
    ("gqa", "f32", "causal-bottom-right", 16, 24, [(1, 150, 70), (1, 131, 197)]),
    ("rsqa", "f32", "window", 16, 8, [(1, 130, 129)]),
    ("mqa", "bf16", "causal-window", 16, 16, [(2, 67, 65)]),
    ("ssqa", "f16", "none", 8, 16, [(1, 65, 140)]),
]


def run_tiles(args, outdir):
    rng = np.random.default_rng(args.seed)
    failed = False
    heads = {name: (hq, hkv) for name, hq, hkv in variants()}
    for name, dtype, mask, d, dv, shapes in TILE_CASES:
        hq, hkv = heads[name]
        lib = build(args.sqa_aot, outdir, f"bwd_tiles_{name}_{dtype}", name, dtype,
                    mask, head_dim=d, value_dim=dv)
        for B, S, T in shapes:
            desc = (f"tiles {name} hq={hq} hkv={hkv} d={d} dv={dv} {dtype} "
                    f"mask={mask} B={B} S={S} T={T}")
            try:
                reasons, errs = check_one(lib, dtype, mask, hq, hkv, d, dv, B, S, T, rng)
            except Exception as e:  # a status or shape error is a failure
                reasons, errs = [repr(e)], ""
            failed |= bool(reasons)
            print(f"{'PASS' if not reasons else 'FAIL'} {desc} {errs}"
                  + (f" ({'; '.join(reasons)})" if reasons else ""), flush=True)
    return failed


def run_error_paths(args, outdir):
    lib = build(args.sqa_aot, outdir, "bwd_errors", "sqa", "f32", "causal-bottom-right")
    rng = np.random.default_rng(1)
    B, S, T = 2, 3, 5
    q, k, v, d_out = random_inputs(rng, "f32", B, S, T, 4, 2, 12, 12)
    out = np.empty_like(d_out)
    lse = np.empty((B, 4, S), dtype=np.float32)
    failed = False

    def report(case, status, want, written):
        nonlocal failed
        ok = status == want and bool(lib.error_string(status)) and not written
        failed |= not ok
        print(f"{'PASS' if ok else 'FAIL'} error-paths {case} status={status} "
              f"want={want} ({aot.STATUS_NAMES.get(want)})"
              + (" output written on error" if written else ""), flush=True)

    def fwd(case, want, *a, sizes=(B, S, T)):
        out_s = out.copy()
        out[...] = np.nan
        lse[...] = np.nan
        status = lib.forward_lse_raw(*a, *sizes)
        written = want != aot.SQA_OK and not (np.isnan(out).all() and np.isnan(lse).all())
        report("forward_lse-" + case, status, want, written)
        if want != aot.SQA_OK:
            out[...] = out_s

    E = aot
    fwd("valid", E.SQA_OK, q, k, v, out, lse)
    fwd("null-lse", E.SQA_ERROR_NULL_POINTER, q, k, v, out, None)
    fwd("null-q", E.SQA_ERROR_NULL_POINTER, None, k, v, out, lse)
    fwd("zero-q_len", E.SQA_ERROR_INVALID_SIZE, q, k, v, out, lse, sizes=(B, 0, T))
    fwd("overflow", E.SQA_ERROR_SIZE_OVERFLOW, q, k, v, out, lse,
        sizes=(B, 1 << 62, T))
    fwd("misaligned-lse", E.SQA_ERROR_MISALIGNED, q, k, v, out, lse.ctypes.data + 2)
    fwd("lse-aliases-q", E.SQA_ERROR_ALIASING, q, k, v, out, q.ctypes.data)
    fwd("lse-aliases-out", E.SQA_ERROR_ALIASING, q, k, v, out,
        out.ctypes.data + 4)
    fwd("out-aliases-v", E.SQA_ERROR_ALIASING, q, k, v, v.ctypes.data, lse)
    assert lib.forward_lse_raw(q, k, v, out, lse, B, S, T) == E.SQA_OK

    grads = [np.empty_like(a) for a in (q, k, v)]

    def bwd(case, want, *a, sizes=(B, S, T)):
        for g in grads:
            g[...] = np.nan
        status = lib.backward_raw(*a, *sizes)
        written = want != aot.SQA_OK and not all(np.isnan(g).all() for g in grads)
        report("backward-" + case, status, want, written)

    dq, dk, dv = grads
    base = [q, k, v, out, d_out, lse, dq, dk, dv]
    bwd("valid", E.SQA_OK, *base)
    names = ["q", "k", "v", "out", "d_out", "lse", "dq", "dk", "dv"]
    for i, name in enumerate(names):
        a = list(base)
        a[i] = None
        bwd("null-" + name, E.SQA_ERROR_NULL_POINTER, *a)
    for j, dim in enumerate(("batch", "q_len", "kv_len")):
        sizes = [B, S, T]
        sizes[j] = -1
        bwd(f"negative-{dim}", E.SQA_ERROR_INVALID_SIZE, *base, sizes=tuple(sizes))
    bwd("overflow", E.SQA_ERROR_SIZE_OVERFLOW, *base, sizes=(1 << 62, S, T))
    a = list(base)
    a[5] = lse.ctypes.data + 1
    bwd("misaligned-lse", E.SQA_ERROR_MISALIGNED, *a)
    a = list(base)
    a[7] = dk.ctypes.data + 2
    bwd("misaligned-dk", E.SQA_ERROR_MISALIGNED, *a)
    for gi, ii in ((6, 0), (7, 5), (8, 3), (6, 4)):
        a = list(base)
        a[gi] = base[ii].ctypes.data
        bwd(f"{names[gi]}-aliases-{names[ii]}", E.SQA_ERROR_ALIASING, *a)
    a = list(base)
    a[8] = dk.ctypes.data
    bwd("dv-aliases-dk", E.SQA_ERROR_ALIASING, *a)
    # The numpy wrapper raises on a failed status, and exists only where the
    # symbol does.
    try:
        lib.backward(q, k, v, out, d_out, lse[:, :, :1].copy())
        failed = True
        print("FAIL error-paths python-lse-shape accepted a short lse")
    except ValueError as e:
        print(f"PASS error-paths python-lse-shape {e}")
    try:
        lib.forward_lse(q[:, :, :0], k, v)
        failed = True
        print("FAIL error-paths python-status accepted q_len 0")
    except aot.AOTError as e:
        print(f"PASS error-paths python-status-raises {e}")
    print(f"{'PASS' if hasattr(lib, 'backward') and hasattr(lib, 'forward_lse') else 'FAIL'} "
          "error-paths python-methods-present")
    return failed


def run_determinism(args, outdir):
    failed = False
    # d = 12: rows copied with padding; d = 16: rows read in place.
    for d in (12, 16):
        lib_name = "bwd_det"
        path = build(args.sqa_aot, outdir, lib_name, "gqa", "f32", "causal-bottom-right",
                     head_dim=d, value_dim=d).path
        files = []
        for threads in (1, 2):
            out = os.path.join(outdir, f"grads{threads}.npz")
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            subprocess.run([sys.executable, __file__, "--sqa-aot", args.sqa_aot,
                            "--dump", path, out, str(d)], env=env, check=True)
            files.append(np.load(out))
        ok = all(np.array_equal(files[0][n].view(np.uint8), files[1][n].view(np.uint8))
                 for n in ("dq", "dk", "dv", "lse", "out"))
        print(f"{'PASS' if ok else 'FAIL'} determinism d={d} OMP_NUM_THREADS=1 vs 2 bitwise",
              flush=True)
        failed |= not ok
    return failed


class CUDATraining:
    """NAME_forward_lse / NAME_backward of a CUDA library called on host
    arrays, as AttentionLibrary's: device copies in, the calls on a stream,
    the results copied back."""

    def __init__(self, path, name, dtype):
        from sqa_mlir import cuda_driver
        self.cuda_driver = cuda_driver
        self.lib = aot.CUDAAttentionLibrary(path, name, dtype)
        self.layout = self.lib.layout
        self.driver = cuda_driver.load()
        self.driver.init()
        self.context = self.driver.primary_context()
        self.stream = self.driver.stream_create()

    def _call(self, fn, what, inputs, outputs):
        to_device = self.cuda_driver.DeviceArray.from_numpy
        device = [to_device(self.driver, a) for a in inputs + outputs]
        try:
            status = fn(*device, stream=self.stream)
            if status != aot.SQA_OK:
                raise aot.AOTError(f"{what} returned {status}: {self.lib.last_error()}")
            self.driver.stream_synchronize(self.stream)
            for host, dev in zip(outputs, device[len(inputs):]):
                dev.copy_to(host)
        finally:
            for d in device:
                d.free()
        return outputs

    def forward_lse(self, q, k, v):
        B = q.shape[0]
        S = q.shape[1] if self.layout == "bshd" else q.shape[2]
        h_axis = 2 if self.layout == "bshd" else 1
        H = max(q.shape[h_axis], k.shape[h_axis])
        dv = v.shape[3]
        out_shape = (B, S, H, dv) if self.layout == "bshd" else (B, H, S, dv)
        out = nan_storage(out_shape, self.lib.dtype)
        lse = np.full((B, H, S), np.nan, np.float32)
        return tuple(self._call(self.lib.forward_lse, "forward_lse", [q, k, v],
                                [out, lse]))

    def backward(self, q, k, v, out, d_out, lse):
        grads = [nan_storage(a.shape, self.lib.dtype) for a in (q, k, v)]
        return tuple(self._call(self.lib.backward, "backward",
                                [q, k, v, out, d_out, lse], grads))


def run_cuda(args, outdir):
    """--target cuda: one small library per variant (f32 SIMT forward, or
    tensor cores for f16/bf16) through the CUDA launcher and its driver
    (test/lib/cuda/fake_libcuda.c on machines without a GPU). With
    --prepare DIR only the libraries are built (no driver needed); with
    --lib-dir DIR they are taken from there (a GPU machine without
    sqa-aot: bench/cuda_device.sh)."""
    rng = np.random.default_rng(args.seed)
    failed = False
    heads = {name: (hq, hkv) for name, hq, hkv in variants(4)}
    for name, mask in (("gqa", "causal-bottom-right"), ("rsqa", "window")):
        if name not in args.cuda_variants.split(","):
            continue
        hq, hkv = heads[name]
        config = dict(variant=name, heads=4, head_dim=16, dtype=args.dtype,
                      target="cuda", **MASKS[mask])
        if name == "gqa":
            config["groups"] = 2
        config["name"] = f"cbwd_{name}_{args.dtype}"
        if args.lib_dir:
            path = os.path.join(args.lib_dir, f"lib{config['name']}.so")
        else:
            path = aot.build_library(args.sqa_aot, args.prepare or outdir, **config)
        if args.prepare:
            print(f"built {path}", flush=True)
            continue
        lib = CUDATraining(path, config["name"], args.dtype)
        for B, S, T in ((1, 21, 13), (2, 9, 17)):
            desc = (f"cuda {name} hq={hq} hkv={hkv} d=16 dv=16 {args.dtype} "
                    f"mask={mask} B={B} S={S} T={T}")
            try:
                reasons, errs = check_one(lib, args.dtype, mask, hq, hkv, 16, 16,
                                          B, S, T, rng, CUDA_OUT_TOLERANCES)
            except Exception as e:  # a status or shape error is a failure
                reasons, errs = [repr(e)], ""
            failed |= bool(reasons)
            print(f"{'FAIL' if reasons else 'PASS'} {desc} {errs}"
                  + (f" ({'; '.join(reasons)})" if reasons else ""), flush=True)
    return failed


def dump(path, out_file, d):
    d = int(d)
    lib = aot.AttentionLibrary(path, "bwd_det", "f32")
    rng = np.random.default_rng(7)
    q, k, v, d_out = random_inputs(rng, "f32", 2, 150, 131, 8, 2, d, d)
    out, lse = lib.forward_lse(q, k, v)
    dq, dk, dv = lib.backward(q, k, v, out, d_out, lse)
    np.savez(out_file, dq=dq, dk=dk, dv=dv, lse=lse, out=out)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sqa-aot", required=True)
    p.add_argument("--dtype", choices=reference.DTYPES, default="f32")
    p.add_argument("--matrix", action="store_true")
    p.add_argument("--error-paths", action="store_true")
    p.add_argument("--determinism", action="store_true")
    p.add_argument("--tiles", action="store_true")
    p.add_argument("--target", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: run_cuda's cases through a CUDA library")
    p.add_argument("--cuda-variants", default="gqa,rsqa",
                   help="with --target cuda: which of run_cuda's libraries")
    p.add_argument("--prepare", metavar="DIR",
                   help="with --target cuda: only build the libraries into DIR")
    p.add_argument("--lib-dir", metavar="DIR",
                   help="with --target cuda: prebuilt libraries (from --prepare)")
    p.add_argument("--dump", nargs=3, metavar=("LIBRARY", "NPZ", "HEAD_DIM"),
                   help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.dump:
        dump(*args.dump)
        return 0
    failed = False
    with tempfile.TemporaryDirectory(prefix="sqa-bwd-") as outdir:
        if args.target == "cuda":
            failed |= run_cuda(args, outdir)
        if args.matrix:
            failed |= run_matrix(args, outdir)
        if args.tiles:
            failed |= run_tiles(args, outdir)
        if args.error_paths:
            failed |= run_error_paths(args, outdir)
        if args.determinism:
            failed |= run_determinism(args, outdir)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
