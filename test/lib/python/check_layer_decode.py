#!/usr/bin/env python3
"""Check NAME_layer_decode (and NAME_layer_memory_kv) of ``sqa-aot --layer``.

  python3 test/lib/python/check_layer_decode.py --sqa-aot build/bin/sqa-aot \\
      --variant gqa --heads 8 --groups 2 --head-dim 8 --rope rotary \\
      --causal bottom-right --new-lens 1,3 --steps 16

Takes check_layer.py's configuration options. Builds one layer library and
runs, for every new_len N, a decode loop of --steps steps on a batch of 2
rows whose caches start at different lengths (0 and --start tokens, the
second row's prefix appended by a decode call of that row alone). Every
step's output rows must equal the library's own NAME_layer_forward of the
row's sequence at the same positions: with a causal mask the forward of the
whole sequence, else the forward of the prefix the step has seen (the last
N rows). Caches start NaN-filled, so a key read past a row's valid length
shows. Cross-attention: the caches are filled by NAME_layer_memory_kv
(memory lengths differing per row), decode appends nothing, and the
reference is the forward with the row's memory. One line per N:

  PASS <config> decode N=.. steps=.. starts=.. max_abs_err=<e>

--error-paths also checks argument validation (after the loops), one line
per case.
Exit status 1 if anything failed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import testpaths  # noqa: E402,F401  (makes sqa_mlir importable)

import numpy as np  # noqa: E402

import check_layer  # noqa: E402
from sqa_mlir import aot  # noqa: E402
from sqa_mlir.reference import from_storage, nan_storage  # noqa: E402


def parse_lens(text):
    return [int(t) for t in text.split(",") if t.strip()]


class Run:
    """One library and the arrays of a decode loop."""

    def __init__(self, lib, st, args):
        self.lib, self.st, self.args = lib, st, args
        self.dm = st.d_model

    def forward(self, arrays, x, memory):
        """NAME_layer_forward of one row: x [1, S, d] (memory [1, T, d])."""
        out = nan_storage(x.shape, self.st.dtype)
        status = self.lib.forward(x, arrays["w_q"], arrays["w_k"], arrays["w_v"],
                                  arrays["w_o"], out, memory=memory,
                                  **self.st.bias_args(arrays))
        if status != aot.SQA_OK:
            raise RuntimeError(f"forward status {status}: {self.lib.error_string(status)}")
        return from_storage(out, self.st.dtype)

    def decode(self, arrays, x_new, kc, vc, lens, y):
        names = ("q", "o") + (() if self.st.cross else ("k", "v"))
        return self.lib.decode(x_new, arrays["w_q"], arrays["w_k"], arrays["w_v"],
                               arrays["w_o"], kc, vc, lens, y,
                               **self.st.bias_args(arrays, names))

    def check(self, N, rng):
        st, steps, start = self.st, self.args.steps, self.args.start
        starts = [0, start]
        B = 2
        lengths = [s + steps * N for s in starts]
        total = max(lengths)
        T = [self.args.mem_len, self.args.mem_len + 3] if st.cross else None
        arrays = st.inputs(B, total, max(T) if T else total, rng)
        x = arrays["x"]
        capacity = (max(T) if st.cross else total) + self.args.spare
        kc = nan_storage((B, st.hkv, capacity, st.d), st.dtype)
        vc = nan_storage((B, st.hkv, capacity, st.d), st.dtype)
        reasons = []

        def status_ok(what, status):
            if status != aot.SQA_OK:
                reasons.append(f"{what}: status {status} "
                               f"({self.lib.error_string(status)})")
            return status == aot.SQA_OK

        # References: each row's forward, whole sequence or per-step prefix.
        causal = st.causal
        if st.cross:
            lens = np.array(T, dtype=np.int64)
            for b in range(B):
                mem = np.ascontiguousarray(arrays["memory"][b:b + 1, :T[b]])
                status_ok("memory_kv", self.lib.memory_kv(
                    mem, arrays["w_k"], arrays["w_v"], kc[b:b + 1], vc[b:b + 1],
                    **st.bias_args(arrays, ("k", "v"))))
            cache_before = (kc.copy(), vc.copy())
        else:
            lens = np.array(starts, dtype=np.int64)
            # Row 1's prefix: a decode of that row alone (batch 1).
            if start:
                y = nan_storage((1, start, self.dm), st.dtype)
                zero = np.zeros(1, dtype=np.int64)
                status_ok("prefix", self.decode(
                    arrays, np.ascontiguousarray(x[1:2, :start]), kc[1:2], vc[1:2],
                    zero, y))
        whole = None
        if causal or st.cross:
            whole = [self.forward(arrays, np.ascontiguousarray(x[b:b + 1, :lengths[b]]),
                                  None if not st.cross else np.ascontiguousarray(
                                      arrays["memory"][b:b + 1, :T[b]]))[0]
                     for b in range(B)]
        worst = 0.0
        pos = list(starts)
        for step in range(steps):
            if reasons:
                break
            x_new = np.ascontiguousarray(np.stack([x[b, pos[b]:pos[b] + N]
                                                   for b in range(B)]))
            y = nan_storage((B, N, self.dm), st.dtype)
            lens_before = lens.copy()
            if not status_ok(f"step {step}", self.decode(arrays, x_new, kc, vc, lens, y)):
                break
            if not np.array_equal(lens, lens_before):
                reasons.append("cache_lens was modified")
            got = from_storage(y, st.dtype)
            for b in range(B):
                if whole is not None:
                    want = whole[b][pos[b]:pos[b] + N]
                else:
                    want = self.forward(arrays, np.ascontiguousarray(
                        x[b:b + 1, :pos[b] + N]), None)[0][pos[b]:]
                err = np.abs(got[b] - want)
                tol = self.args.atol + self.args.rtol * np.abs(want)
                if not np.isfinite(got[b]).all():
                    reasons.append(f"step {step} row {b}: non-finite outputs")
                elif (err > tol).any():
                    i = np.unravel_index(int(np.argmax(err / tol)), err.shape)
                    reasons.append(f"step {step} row {b}: {int((err > tol).sum())} "
                                   f"over tolerance, worst at {list(map(int, i))} got "
                                   f"{got[b][i]:.6g} want {want[i]:.6g}")
                else:
                    worst = max(worst, float(err.max()))
            for b in range(B):
                pos[b] += N
            if not st.cross:
                lens += N
        if st.cross:
            if not (np.array_equal(kc.view(np.uint8), cache_before[0].view(np.uint8))
                    and np.array_equal(vc.view(np.uint8), cache_before[1].view(np.uint8))):
                reasons.append("decode wrote to the memory caches")
        else:
            # Nothing past each row's tokens was written.
            for b in range(B):
                if not (np.isnan(from_storage(kc[b, :, lengths[b]:], st.dtype)).all()
                        and np.isnan(from_storage(vc[b, :, lengths[b]:], st.dtype)).all()):
                    reasons.append(f"row {b}: cache written past its tokens")
        return not reasons, worst, "; ".join(reasons), starts if not st.cross else T


def check_error_paths(lib, st, rng) -> bool:
    B, N, C = 2, 2, 6
    arrays = st.inputs(B, N, 4, rng)
    failed = False
    kc = np.zeros((B, st.hkv, C, st.d), dtype=arrays["x"].dtype)
    vc = np.zeros_like(kc)
    lens = np.array([1, 3], dtype=np.int64)
    y = nan_storage((B, N, st.d_model), st.dtype)
    sentinel = y.copy()

    def report(case, ok, detail):
        nonlocal failed
        failed |= not ok
        print(f"{'PASS' if ok else 'FAIL'} error-paths {case} {detail}", flush=True)

    def configured():
        p = {"x_new": arrays["x"], "w_q": arrays["w_q"], "w_k": arrays["w_k"],
             "w_v": arrays["w_v"], "w_o": arrays["w_o"], "k_cache": kc,
             "v_cache": vc, "cache_lens": lens, "y": y}
        p.update(st.bias_args(arrays))
        return p

    order = ("x_new", "w_q", "w_k", "w_v", "w_o", "b_q", "b_k", "b_v", "b_o",
             "k_cache", "v_cache", "cache_lens", "y")

    def expect(case, want, ptrs=None, **sizes):
        ptrs = ptrs or configured()
        sz = {"batch": B, "new_len": N, "capacity": C}
        sz.update(sizes)
        y[...] = sentinel
        kc_before, lens_before = kc.copy(), lens.copy()
        status = lib.decode_raw(*(ptrs[n] for n in order), sz["batch"],
                                sz["new_len"], sz["capacity"])
        msg = lib.error_string(status)
        ok = status == want and bool(msg)
        detail = f"status={status} want={want} ({aot.STATUS_NAMES.get(want)})"
        if want != aot.SQA_OK and not (
                np.array_equal(y.view(np.uint8), sentinel.view(np.uint8))
                and np.array_equal(kc, kc_before)):
            ok = False
            detail += " y or the cache was written on error"
        if not np.array_equal(lens, lens_before):
            ok = False
            detail += " cache_lens was modified"
        report(case, ok, detail + f" message: {msg}")

    expect("valid-call", aot.SQA_OK)
    required = ["x_new", "w_q", "w_o", "k_cache", "v_cache", "cache_lens", "y"]
    if not st.cross:
        required += ["w_k", "w_v"]
    required += ["b_" + b for b in st.bias if not (st.cross and b in "kv")]
    for n in required:
        p = configured()
        p[n] = None
        expect(f"null-{n.replace('_', '')}", aot.SQA_ERROR_NULL_POINTER, p)
    for dim in ("batch", "new_len", "capacity"):
        expect(f"{dim}=0", aot.SQA_ERROR_INVALID_SIZE, **{dim: 0})
    expect("batch=2^62", aot.SQA_ERROR_SIZE_OVERFLOW, batch=2**62)
    expect("capacity=2^62", aot.SQA_ERROR_SIZE_OVERFLOW, capacity=2**62)
    lens[1] = -1
    expect("cache_lens=-1", aot.SQA_ERROR_INVALID_SIZE)
    lens[1] = C - N + 1 if not st.cross else C + 1
    expect("cache_lens-overflows-capacity", aot.SQA_ERROR_INVALID_SIZE)
    lens[1] = 3
    p = configured()
    p["y"] = arrays["x"]
    expect("y-aliases-x_new", aot.SQA_ERROR_ALIASING, p)
    p = configured()
    p["y"] = kc.reshape(-1)[:y.size].reshape(y.shape) if kc.size >= y.size else kc
    expect("y-aliases-k_cache", aot.SQA_ERROR_ALIASING, p)
    if not st.cross:
        p = configured()
        p["v_cache"] = kc
        expect("v_cache-aliases-k_cache", aot.SQA_ERROR_ALIASING, p)
        p = configured()
        p["k_cache"] = arrays["w_q"]
        expect("k_cache-aliases-w_q", aot.SQA_ERROR_ALIASING, p, batch=1,
               capacity=1)
    raw = np.zeros(kc.nbytes + 64, dtype=np.uint8)
    p = configured()
    p["k_cache"] = raw.ctypes.data + 1
    expect("misaligned-k_cache", aot.SQA_ERROR_MISALIGNED, p)
    if st.cross:
        mem = arrays["memory"]

        def kv(case, want, **sizes):
            sz = {"batch": B, "mem_len": 4, "capacity": C}
            sz.update(sizes)
            bias = st.bias_args(arrays, ("k", "v"))
            status = lib.memory_kv_raw(mem, arrays["w_k"], arrays["w_v"], bias["b_k"],
                                       bias["b_v"], kc, vc, sz["batch"],
                                       sz["mem_len"], sz["capacity"])
            report(f"memory-kv-{case}", status == want,
                   f"status={status} want={want} ({aot.STATUS_NAMES.get(want)})")

        kv("valid-call", aot.SQA_OK)
        kv("mem_len>capacity", aot.SQA_ERROR_INVALID_SIZE, mem_len=C + 1)
        kv("mem_len=0", aot.SQA_ERROR_INVALID_SIZE, mem_len=0)
    return not failed


def main(argv=None) -> int:
    parser = check_layer.build_parser()
    parser.add_argument("--new-lens", type=parse_lens, default=[1, 3])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--start", type=int, default=5,
                        help="tokens in the second row's cache before the loop")
    parser.add_argument("--mem-len", type=int, default=7,
                        help="memory length of the first row (cross-attention)")
    parser.add_argument("--spare", type=int, default=2,
                        help="cache capacity beyond what the loop needs")
    parser.add_argument("--atol", type=float, default=2e-5)
    parser.add_argument("--rtol", type=float, default=2e-4)
    args = parser.parse_args(argv)
    st = check_layer.Setup(args, parser)
    outdir = args.outdir or tempfile.mkdtemp(prefix="sqa-check-layer-decode-")
    try:
        lib = check_layer.build_layer_library(args, st, outdir)
        if lib is None:
            return 1
        failed = False
        run = Run(lib, st, args)
        for N in args.new_lens:
            rng = np.random.default_rng([args.seed, N])
            ok, err, reason, starts = run.check(N, rng)
            what = "mem_lens" if st.cross else "starts"
            line = (f"{'PASS' if ok else 'FAIL'} {st.desc} decode N={N} "
                    f"steps={args.steps} {what}={','.join(map(str, starts))} "
                    f"max_abs_err={err:.3e}")
            if reason:
                line += f" ({reason})"
            print(line, flush=True)
            failed |= not ok
        if args.error_paths:
            failed |= not check_error_paths(lib, st, np.random.default_rng(args.seed))
        return 1 if failed else 0
    finally:
        if args.outdir is None:
            shutil.rmtree(outdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
