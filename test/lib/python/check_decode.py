#!/usr/bin/env python3
"""Check NAME_decode of a library built by ``sqa-aot`` against the float64
numpy reference.

  python3 test/lib/python/check_decode.py --sqa-aot build/bin/sqa-aot \\
      --q-heads 8 --kv-heads 2 --head-dim 32 --causal bottom-right \\
      --cases '1:0/5/700:800,3:17/1/0:40,2:30/9:40:memory'

Configuration options are check_aot.py's. Each case is
``N:LEN/LEN/...:CAPACITY[:memory]``: new_len N, one cache length per batch
row, the capacity; with ``:memory`` nothing is appended (k_new = v_new =
NULL). Caches are filled with random tokens up to each length and NaN past
it (a kernel that reads past the valid prefix fails). Per case it checks:
the output against reference.attention on each row's valid prefix
(bottom-right: row i of batch row b sees keys per the mask from diagonal
L_b - N + i), the appended tokens bit for bit, and that nothing else in the
caches changed. One line per case:

  PASS <config> case=<case> max_abs_err=<e> tol=<t>

--loop STEPS runs a decode loop (one token per step, appended) and checks
that the outputs equal the library's own forward over the whole sequence
(causal prefill, S = T) and the reference. --dump FILE writes the outputs of
every case (raw bytes) for a determinism check across OMP_NUM_THREADS.
--error-paths checks every argument check of NAME_decode.

--target cuda builds a CUDA library (sqa-lower-decode-to-gpu) and runs the
cases through NAME_decode(..., stream) with device copies of the arrays
(cache_lens too), copied back after a stream synchronize: on a GPU, or on
test/lib/cuda/fake_libcuda.c (the kernels emulated on the CPU).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import testpaths  # noqa: E402,F401  (makes sqa_mlir importable)

import numpy as np  # noqa: E402

from check_aot import Setup, build_parser as aot_parser  # noqa: E402
from sqa_mlir import aot, reference  # noqa: E402
from sqa_mlir.reference import TOLERANCES  # noqa: E402
from sqa_mlir.reference import from_storage, nan_storage, to_storage  # noqa: E402


def parse_cases(text: str):
    cases = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "memory"):
            raise argparse.ArgumentTypeError(f"bad case {item!r}; expected N:LENS:CAP[:memory]")
        cases.append((int(parts[0]), [int(x) for x in parts[1].split("/")],
                      int(parts[2]), len(parts) == 4))
    return cases


def build_parser():
    p = aot_parser()
    p.description = __doc__
    p.add_argument("--cases", type=parse_cases, help="N:LENS:CAP[:memory],...")
    p.add_argument("--loop", type=int, default=0, help="decode-loop steps")
    p.add_argument("--loop-batch", type=int, default=2)
    p.add_argument("--dump", help="write every case's output bytes here")
    p.add_argument("--kernel", choices=("flash", "reference"))
    p.add_argument("--target", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--lib", help="use this prebuilt library (built with the same "
                                 "configuration and --name) instead of running sqa-aot")
    return p


class CUDADecode:
    """NAME_decode of a CUDA library called on host arrays, as the CPU
    wrapper's decode: device copies in, the call on a stream, out and the
    caches copied back in place."""

    def __init__(self, path, name, dtype):
        from sqa_mlir import cuda_driver
        self.cuda_driver = cuda_driver
        self.lib = aot.CUDAAttentionLibrary(path, name, dtype)
        self.driver = cuda_driver.load()
        self.driver.init()
        self.context = self.driver.primary_context()
        self.stream = self.driver.stream_create()

    def decode(self, q, k_cache, v_cache, cache_lens, k_new, v_new, out):
        arrays = [q, k_cache, v_cache, k_new, v_new, cache_lens, out]
        device = [None if a is None else
                  self.cuda_driver.DeviceArray.from_numpy(self.driver, a)
                  for a in arrays]
        try:
            status = self.lib.decode(*device[:3], device[5], device[6],
                                     k_new=device[3], v_new=device[4],
                                     stream=self.stream)
            if status != aot.SQA_OK:
                raise aot.AOTError(f"decode returned {status}: {self.lib.last_error()}")
            self.driver.stream_synchronize(self.stream)
            for host, dev in ((k_cache, device[1]), (v_cache, device[2]), (out, device[6])):
                dev.copy_to(host)
        finally:
            for d in device:
                if d is not None:
                    d.free()


def bhsd_shape(st, B, S, H, D):
    return (B, S, H, D) if st.layout == "bshd" else (B, H, S, D)


def seq_slice(st, start, stop):
    """Index of positions [start, stop) in a library-layout array."""
    if st.layout == "bshd":
        return (slice(None), slice(start, stop))
    return (slice(None), slice(None), slice(start, stop))


def make_caches(st, lens, capacity, rng):
    """Caches in storage/library layout: random up to lens[b], NaN after."""
    B = len(lens)
    caches = []
    for dim in (st.d, st.dv):
        c = nan_storage(bhsd_shape(st, B, capacity, st.hkv, dim), st.dtype)
        for b, n in enumerate(lens):
            x = rng.standard_normal(bhsd_shape(st, 1, n, st.hkv, dim), dtype=np.float32)
            c[(slice(b, b + 1),) + seq_slice(st, 0, n)[1:]] = to_storage(x, st.dtype)
        caches.append(c)
    return caches


def expected(st, q, k_cache, v_cache, lens):
    """float64 reference of the decode on each row's first lens[b] keys."""
    qb, kb, vb = (from_storage(st.from_layout(a), st.dtype) for a in (q, k_cache, v_cache))
    B, _, N, _ = qb.shape
    out = np.zeros((B, st.h, N, st.dv))
    for b, n in enumerate(lens):
        if n == 0:
            continue  # no key: the output is 0
        out[b:b + 1] = reference.attention(
            qb[b:b + 1], kb[b:b + 1, :, :n], vb[b:b + 1, :, :n], scale=st.scale,
            causal=st.causal, alignment="bottom_right", window=st.window)
    return out


def check_case(lib, st, case, rng, dump):
    N, lens, capacity, memory = case
    B = len(lens)
    k_cache, v_cache = make_caches(st, lens, capacity, rng)
    before = (k_cache.copy(), v_cache.copy())
    q = to_storage(rng.standard_normal(bhsd_shape(st, B, N, st.hq, st.d), dtype=np.float32),
                   st.dtype)
    k_new = v_new = None
    if not memory:
        k_new = to_storage(rng.standard_normal(bhsd_shape(st, B, N, st.hkv, st.d),
                                               dtype=np.float32), st.dtype)
        v_new = to_storage(rng.standard_normal(bhsd_shape(st, B, N, st.hkv, st.dv),
                                               dtype=np.float32), st.dtype)
    out = nan_storage(bhsd_shape(st, B, N, st.h, st.dv), st.dtype)
    try:
        lib.decode(q, k_cache, v_cache, np.array(lens, dtype=np.int64), k_new, v_new, out)
    except aot.AOTError as e:
        return False, 0.0, 0.0, str(e)
    if dump is not None:
        dump.write(out.tobytes())
    reasons = []
    # The caches: new tokens at [lens[b], lens[b] + N) bit for bit, the rest
    # unchanged (NaN past the prefix included: compare bit patterns).
    valid = list(lens)
    for name, cache, old, new in (("k", k_cache, before[0], k_new),
                                  ("v", v_cache, before[1], v_new)):
        want = old.copy()
        if new is not None:
            for b, n in enumerate(lens):
                idx = (slice(b, b + 1),) + seq_slice(st, n, n + N)[1:]
                want[idx] = new[b:b + 1]
        if want.tobytes() != cache.tobytes():
            reasons.append(f"{name}_cache contents differ")
    if not memory:
        valid = [n + N for n in lens]
    want = expected(st, q, k_cache, v_cache, valid)
    atol, rtol = TOLERANCES[st.dtype]
    err, tol, why = reference.compare(from_storage(st.from_layout(out), st.dtype), want,
                                      atol, rtol)
    reasons += why
    return not reasons, err, tol, "; ".join(reasons)


def check_loop(lib, st, steps, batch, rng):
    """Decode `steps` tokens one at a time into an empty cache; the outputs
    must equal the library's forward over the whole sequence and the
    reference."""
    B = batch
    q = to_storage(rng.standard_normal(bhsd_shape(st, B, steps, st.hq, st.d),
                                       dtype=np.float32), st.dtype)
    k = to_storage(rng.standard_normal(bhsd_shape(st, B, steps, st.hkv, st.d),
                                       dtype=np.float32), st.dtype)
    v = to_storage(rng.standard_normal(bhsd_shape(st, B, steps, st.hkv, st.dv),
                                       dtype=np.float32), st.dtype)
    k_cache = nan_storage(k.shape, st.dtype)
    v_cache = nan_storage(v.shape, st.dtype)
    lens = np.zeros(B, dtype=np.int64)
    got = nan_storage(bhsd_shape(st, B, steps, st.h, st.dv), st.dtype)
    for t in range(steps):
        sl = seq_slice(st, t, t + 1)
        out = lib.decode(np.ascontiguousarray(q[sl]), k_cache, v_cache, lens,
                         np.ascontiguousarray(k[sl]), np.ascontiguousarray(v[sl]))
        got[sl] = out
        lens += 1
    prefill = nan_storage(got.shape, st.dtype)
    status = lib.forward(q, k, v, prefill)
    reasons = []
    if status != aot.SQA_OK:
        reasons.append(f"forward status {status}")
    if k_cache.tobytes() != k.tobytes() or v_cache.tobytes() != v.tobytes():
        reasons.append("caches differ from the appended tokens")
    atol, rtol = TOLERANCES[st.dtype]
    mine = from_storage(st.from_layout(got), st.dtype)
    err, tol, why = reference.compare(
        mine, from_storage(st.from_layout(prefill), st.dtype), atol, rtol)
    reasons += [f"vs forward: {r}" for r in why]
    qb, kb, vb = (from_storage(st.from_layout(a), st.dtype) for a in (q, k, v))
    want = reference.attention(qb, kb, vb, scale=st.scale, causal=st.causal,
                               alignment=st.alignment, window=st.window)
    err2, _, why = reference.compare(mine, want, atol, rtol)
    reasons += [f"vs reference: {r}" for r in why]
    return not reasons, max(err, err2), tol, "; ".join(reasons)


def check_error_paths(lib, st, rng) -> bool:
    E = aot
    B, N, C = 2, 2, 8
    ok_all = True
    k_cache, v_cache = make_caches(st, [3, 0], C, rng)
    q = to_storage(rng.standard_normal(bhsd_shape(st, B, N, st.hq, st.d),
                                       dtype=np.float32), st.dtype)
    k_new = to_storage(rng.standard_normal(bhsd_shape(st, B, N, st.hkv, st.d),
                                           dtype=np.float32), st.dtype)
    v_new = to_storage(rng.standard_normal(bhsd_shape(st, B, N, st.hkv, st.dv),
                                           dtype=np.float32), st.dtype)
    lens = np.array([3, 0], dtype=np.int64)
    out = nan_storage(bhsd_shape(st, B, N, st.h, st.dv), st.dtype)
    good = dict(q=q, k_cache=k_cache, v_cache=v_cache, k_new=k_new, v_new=v_new,
                cache_lens=lens, out=out, batch=B, new_len=N, capacity=C)

    def expect(case, want, **changes):
        nonlocal ok_all
        args = dict(good, **changes)
        kc0, vc0, out0 = k_cache.tobytes(), v_cache.tobytes(), out.tobytes()
        status = lib.decode_raw(args["q"], args["k_cache"], args["v_cache"], args["k_new"],
                                args["v_new"], args["cache_lens"], args["out"],
                                args["batch"], args["new_len"], args["capacity"])
        msg = lib.error_string(status)
        ok = status == want and bool(msg)
        if want != E.SQA_OK:
            # A refused call touches nothing.
            ok &= (k_cache.tobytes() == kc0 and v_cache.tobytes() == vc0
                   and out.tobytes() == out0)
        print(f"{'PASS' if ok else 'FAIL'} error-paths {case} status={status} want={want} "
              f"({aot.STATUS_NAMES.get(want)})", flush=True)
        ok_all &= ok

    for name in ("q", "k_cache", "v_cache", "cache_lens", "out"):
        expect(f"null-{name}", E.SQA_ERROR_NULL_POINTER, **{name: None})
    expect("null-k_new-only", E.SQA_ERROR_NULL_POINTER, k_new=None)
    expect("null-v_new-only", E.SQA_ERROR_NULL_POINTER, v_new=None)
    for name, value in (("batch", 0), ("batch", -1), ("new_len", 0), ("new_len", -2),
                        ("capacity", 0), ("capacity", -8)):
        expect(f"{name}={value}", E.SQA_ERROR_INVALID_SIZE, **{name: value})
    expect("negative-cache-len", E.SQA_ERROR_INVALID_SIZE,
           cache_lens=np.array([3, -1], dtype=np.int64))
    expect("cache-len-over-capacity", E.SQA_ERROR_INVALID_SIZE,
           cache_lens=np.array([9, 0], dtype=np.int64))
    expect("append-overflows-capacity", E.SQA_ERROR_INVALID_SIZE,
           cache_lens=np.array([7, 0], dtype=np.int64))
    expect("huge-cache-len", E.SQA_ERROR_INVALID_SIZE,
           cache_lens=np.array([2**63 - 1, 0], dtype=np.int64))
    expect("size-overflow", E.SQA_ERROR_SIZE_OVERFLOW, capacity=2**62)
    itemsize = out.itemsize
    if itemsize > 1:
        expect("misaligned-out", E.SQA_ERROR_MISALIGNED, out=out.ctypes.data + 1)
    expect("misaligned-cache_lens", E.SQA_ERROR_MISALIGNED, cache_lens=lens.ctypes.data + 4)
    expect("out-aliases-q", E.SQA_ERROR_ALIASING, out=q.ctypes.data)
    expect("out-aliases-k_cache", E.SQA_ERROR_ALIASING, out=k_cache.ctypes.data)
    expect("k_cache-aliases-v_cache", E.SQA_ERROR_ALIASING, v_cache=k_cache.ctypes.data)
    expect("k_new-inside-k_cache", E.SQA_ERROR_ALIASING, k_new=k_cache.ctypes.data)
    expect("cache-aliases-q", E.SQA_ERROR_ALIASING, q=v_cache.ctypes.data)
    # Without an append the caches are only read: sharing them is allowed.
    expect("memory-shared-k-v", E.SQA_OK, k_new=None, v_new=None,
           v_cache=k_cache.ctypes.data if st.d == st.dv else v_cache)
    expect("valid", E.SQA_OK)
    return ok_all


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.cases or args.loop or args.error_paths):
        parser.error("give --cases, --loop or --error-paths")
    st = Setup(args, parser)
    if args.loop and not (st.causal or st.window[1] == 0):
        # Decode never sees a later token; a prefill without a right bound
        # of 0 does.
        parser.error("--loop needs a causal mask or a window with right bound 0")
    outdir = args.outdir or tempfile.mkdtemp(prefix="sqa-decode-")
    try:
        try:
            path = args.lib or aot.build_library(
                args.sqa_aot, outdir, variant=args.variant, heads=args.heads,
                groups=args.groups, q_heads=args.q_heads, kv_heads=args.kv_heads,
                head_dim=args.head_dim, value_head_dim=args.value_head_dim,
                dtype=args.dtype, causal=args.causal, alignment=args.alignment,
                window=None if st.window == (-1, -1) else st.window,
                scale=args.scale, layout=args.layout, name=args.name, kernel=args.kernel,
                target=args.target if args.target == "cuda" else None)
        except (aot.AOTError, OSError) as e:
            print(f"FAIL {st.desc} sqa-aot error (see stderr)", flush=True)
            print(str(e), file=sys.stderr)
            return 1
        if args.target == "cuda":
            lib = CUDADecode(path, args.name, args.dtype)
        else:
            lib = aot.AttentionLibrary(path, args.name, args.dtype)
        if not hasattr(lib, "decode"):
            print(f"FAIL {st.desc} the library exports no {args.name}_decode")
            return 1
        failed = False
        if args.error_paths:
            failed |= not check_error_paths(lib, st, np.random.default_rng(args.seed))
        dump = open(args.dump, "wb") if args.dump else None
        for idx, case in enumerate(args.cases or []):
            rng = np.random.default_rng([args.seed, idx])
            ok, err, tol, reason = check_case(lib, st, case, rng, dump)
            text = f"{case[0]}:{'/'.join(map(str, case[1]))}:{case[2]}" + (
                ":memory" if case[3] else "")
            line = (f"{'PASS' if ok else 'FAIL'} {st.desc} case={text} "
                    f"max_abs_err={err:.3e} tol={tol:.3e}")
            print(line + (f" ({reason})" if reason else ""), flush=True)
            failed |= not ok
        if dump:
            dump.close()
        if args.loop:
            ok, err, tol, reason = check_loop(lib, st, args.loop, args.loop_batch,
                                              np.random.default_rng(args.seed))
            line = (f"{'PASS' if ok else 'FAIL'} {st.desc} loop={args.loop} "
                    f"max_abs_err={err:.3e} tol={tol:.3e}")
            print(line + (f" ({reason})" if reason else ""), flush=True)
            failed |= not ok
        return 1 if failed else 0
    finally:
        if args.outdir is None:
            shutil.rmtree(outdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
