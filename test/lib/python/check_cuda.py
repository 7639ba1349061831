#!/usr/bin/env python3
"""Check a ``sqa-aot --target cuda`` library against the numpy reference.

  python3 test/lib/python/check_cuda.py --sqa-aot build/bin/sqa-aot \\
      --variant ssqa --heads 16 --head-dim 64 --dtype bf16 --causal top-left

Builds one CUDA library for the configuration (``--target cuda --chip
sm_90``) and, on a machine with a GPU, runs it for a list of shapes (default
below) on random inputs, copies the result back and compares it with
``reference.py`` (float64) within check.py's tolerances. One line per case,
then a summary, as check_aot.py:

  PASS <config> B=.. S=.. T=.. stream=own max_abs_err=<e> tol=<t>
  FAIL <config> B=.. S=.. T=.. stream=own max_abs_err=<e> tol=<t> (reason)
  summary: N passed, M failed

Every case places q, k, v and out in one device allocation with 256-byte
guard gaps between them, fills the gaps with a byte pattern and out with NaN,
and checks afterwards that every out element was written, that q, k, v and
every gap are unchanged (so a write outside out is caught), and the numerics.
Besides the shapes it runs one shape on the legacy default stream (NULL),
one from a fresh thread with no current CUDA context (the library must make
device 0's primary context current), and last, one with every pointer only
minimally aligned (16 bytes for f16/bf16, 4 for f32: what the ABI accepts).

Modes:

  (default)        a GPU is needed; without one it prints "no GPU: <reason>"
                   and exits 77 (lit tests use REQUIRES: cuda-gpu instead).
  --error-paths    with a GPU: argument validation with real device pointers
                   (null, sizes, overflow, misaligned, aliasing, an adjacent
                   out that must be accepted; out untouched on errors).
  --expect-no-gpu  for machines without a GPU or driver: the argument checks
                   with fake, never dereferenced device addresses, then a
                   well-formed call must return SQA_ERROR_NO_CUDA_DRIVER (6)
                   or SQA_ERROR_NO_CUDA_DEVICE (7) with non-empty
                   error_string() and last_error(); config() must say
                   target=cuda and the chip.

Libraries built on one machine, run on another:

  --prepare DIR    only build the library into DIR (name derived from the
                   configuration, see sqa_mlir.aot.library_name) and record
                   this invocation in DIR/manifest.json; no GPU needed.
  --prepare DIR --from-lit FILE...
                   the same for every %sqa-check-cuda line of lit test files.
  --lib-dir DIR    use DIR's prebuilt library instead of running sqa-aot.
  --lib-dir DIR --all
                   run every invocation recorded in DIR/manifest.json (one
                   subprocess each) and print an overall summary.

Exit status: 0 all passed, 1 something failed, 77 no GPU (default and
--error-paths modes), 2 bad usage. Options with negative numbers need '=':
--window=-1,8 .

Status: the no-GPU mode and --prepare run on the development machine (no GPU,
no libcuda); the GPU modes are written against the ABI but have not been run
on a GPU yet.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import traceback

import testpaths  # noqa: E402,F401  (makes sqa_mlir importable)

import numpy as np  # noqa: E402

from sqa_mlir import aot, cuda_driver, reference  # noqa: E402
from sqa_mlir.cli import parse_shapes, parse_window  # noqa: E402
from sqa_mlir.reference import TOLERANCES  # noqa: E402
from check_aot import ALIGNMENT_CHOICES, Setup  # noqa: E402
from sqa_mlir.reference import from_storage, nan_storage  # noqa: E402

EXIT_NO_GPU = 77
DEFAULT_CHIP = "sm_90"
DEFAULT_SHAPES = "1x1x1,1x17x17,1x64x64,1x100x100,1x128x128,1x257x257,1x64x300,1x300x64,2x77x129,1x1x300"
NULL_STREAM_SHAPE = (1, 17, 33)
THREAD_SHAPE = (1, 64, 64)
MIN_ALIGN_SHAPE = (2, 33, 65)
GUARD = 256            # bytes between buffers in the arena
GUARD_BYTE = 0xA5
MANIFEST = "manifest.json"
LIB_PREFIX = "sqacu"
_PREPARED = set()      # libraries --prepare built in this process

# Options of an invocation that concern where things are, not the check:
# dropped when an invocation is recorded in a manifest.
_LOCATION_OPTIONS = ("--sqa-aot", "--outdir", "--lib-dir", "--prepare")


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sqa-aot", help="the sqa-aot binary (not needed with --lib-dir)")
    g = p.add_argument_group("configuration (passed to sqa-aot)")
    g.add_argument("--variant", choices=reference.VARIANTS)
    g.add_argument("--heads", type=int)
    g.add_argument("--groups", type=int)
    g.add_argument("--q-heads", type=int)
    g.add_argument("--kv-heads", type=int)
    g.add_argument("--head-dim", type=int)
    g.add_argument("--value-head-dim", "--value-dim", dest="value_head_dim", type=int)
    g.add_argument("--dtype", choices=reference.DTYPES, default="f16")
    g.add_argument("--causal", choices=ALIGNMENT_CHOICES)
    g.add_argument("--window", type=parse_window, default=(-1, -1),
                   help="sliding window L,R (-1: unbounded); write --window=L,R")
    g.add_argument("--alignment", choices=ALIGNMENT_CHOICES,
                   help="window alignment without --causal")
    g.add_argument("--scale", type=float)
    g.add_argument("--layout", choices=aot.LAYOUTS, default="bhsd")
    g.add_argument("--chip", default=DEFAULT_CHIP, help=f"GPU architecture (default {DEFAULT_CHIP})")
    g.add_argument("--name", help="symbol prefix (default: derived from the configuration)")
    p.add_argument("--shapes", type=parse_shapes,
                   help=f"comma-separated BxSxT list (default {DEFAULT_SHAPES})")
    m = p.add_argument_group("modes")
    m.add_argument("--expect-no-gpu", action="store_true",
                   help="check the argument validation and the no-driver/no-device "
                        "status on a machine without a GPU")
    m.add_argument("--error-paths", action="store_true",
                   help="with a GPU: argument validation with real device pointers")
    m.add_argument("--prepare", metavar="DIR",
                   help="only build the library into DIR and record it in DIR/manifest.json")
    m.add_argument("--lib-dir", metavar="DIR", help="use the prebuilt library in DIR")
    m.add_argument("--from-lit", nargs="+", metavar="FILE",
                   help="with --prepare: every %%sqa-check-cuda invocation of these lit tests")
    m.add_argument("--all", action="store_true",
                   help="with --lib-dir: run every invocation in DIR/manifest.json")
    p.add_argument("--device", type=int, default=0, help="CUDA device ordinal (default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--outdir", help="build the library here (kept)")
    return p


def _has_config(args) -> bool:
    return args.head_dim is not None


def aot_config(args, st: Setup) -> dict:
    """build_library keywords of the configuration."""
    return dict(variant=args.variant, heads=args.heads, groups=args.groups,
                q_heads=args.q_heads, kv_heads=args.kv_heads, head_dim=args.head_dim,
                value_head_dim=args.value_head_dim, dtype=args.dtype, causal=args.causal,
                alignment=args.alignment,
                window=None if st.window == (-1, -1) else st.window,
                scale=args.scale, layout=args.layout, target="cuda", chip=args.chip)


def library_name(args, st: Setup) -> str:
    return args.name or aot.library_name(LIB_PREFIX, **aot_config(args, st))


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------

class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def line(self, ok: bool, text: str) -> None:
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'PASS' if ok else 'FAIL'} {text}", flush=True)

    def summary(self) -> None:
        print(f"summary: {self.passed} passed, {self.failed} failed", flush=True)


def status_name(code: int) -> str:
    return aot.CUDA_STATUS_NAMES.get(code, "?")


def check_config(lib, st: Setup, chip: str, report: Report, tag: str) -> None:
    """config() names the target, the chip and the heads."""
    cfg = lib.config() or ""
    s = lib.settings
    want = {"target": "cuda", "chip": chip, "q_heads": str(st.hq), "kv_heads": str(st.hkv),
            "head_dim": str(st.d), "value_head_dim": str(st.dv), "dtype": st.dtype,
            "layout": st.layout}
    bad = [f"{k}={s.get(k)} (want {v})" for k, v in want.items() if s.get(k) != v]
    report.line(not bad, f"{tag} config: {cfg}" + (f" ({'; '.join(bad)})" if bad else ""))


# ---------------------------------------------------------------------------
# Argument checks (both modes)
# ---------------------------------------------------------------------------

def argument_cases(st: Setup, lib, ptrs: dict, nbytes: dict, sizes):
    """(case, wanted status, q, k, v, out, B, S, T) for the argument checks.

    ptrs: device addresses of q, k, v, out (aligned, non-overlapping, each
    followed by at least 16 free bytes: `adjacent` uses out placed right
    after an input is the caller's business). nbytes: their sizes."""
    B, S, T = sizes
    q, k, v, out = ptrs["q"], ptrs["k"], ptrs["v"], ptrs["out"]
    E = aot
    cases = [
        ("null-q", E.SQA_ERROR_NULL_POINTER, None, k, v, out, B, S, T),
        ("null-k", E.SQA_ERROR_NULL_POINTER, q, None, v, out, B, S, T),
        ("null-v", E.SQA_ERROR_NULL_POINTER, q, k, None, out, B, S, T),
        ("null-out", E.SQA_ERROR_NULL_POINTER, q, k, v, None, B, S, T),
    ]
    for dim in ("batch", "q_len", "kv_len"):
        for bad in (0, -1):
            b, s, t = B, S, T
            if dim == "batch":
                b = bad
            elif dim == "q_len":
                s = bad
            else:
                t = bad
            cases.append((f"{dim}={bad}", E.SQA_ERROR_INVALID_SIZE, q, k, v, out, b, s, t))
    cases += [
        ("batch=min-int64", E.SQA_ERROR_INVALID_SIZE, q, k, v, out, -(2**63), S, T),
        ("batch=2^62", E.SQA_ERROR_SIZE_OVERFLOW, q, k, v, out, 2**62, S, T),
        ("kv_len=2^62", E.SQA_ERROR_SIZE_OVERFLOW, q, k, v, out, B, S, 2**62),
        ("all=2^40", E.SQA_ERROR_SIZE_OVERFLOW, q, k, v, out, 2**40, 2**40, 2**40),
    ]
    # Misaligned: off the required alignment (16 bytes for 2-byte types,
    # the element for f32) by less than the alignment.
    offsets = (2, 8) if lib.alignment == 16 else (2,)
    for which in ("q", "k", "v", "out"):
        for off in offsets:
            a = dict(ptrs)
            a[which] = ptrs[which] + off
            cases.append((f"misaligned-{which}+{off}", E.SQA_ERROR_MISALIGNED,
                          a["q"], a["k"], a["v"], a["out"], B, S, T))
    # Aliasing: out at an input's address, starting inside it, ending inside it.
    al = lib.alignment
    for which in ("q", "k", "v"):
        a = dict(ptrs)
        a["out"] = ptrs[which]
        cases.append((f"alias-out=={which}", E.SQA_ERROR_ALIASING,
                      a["q"], a["k"], a["v"], a["out"], B, S, T))
        inside = ptrs[which] + max(al, (nbytes[which] // 2) // al * al)
        cases.append((f"alias-out-inside-{which}", E.SQA_ERROR_ALIASING,
                      a["q"], a["k"], a["v"], inside, B, S, T))
        # out ends one aligned step into the input.
        ends = ptrs[which] - nbytes["out"] + al
        ends -= ends % al
        cases.append((f"alias-out-ends-in-{which}", E.SQA_ERROR_ALIASING,
                      a["q"], a["k"], a["v"], ends, B, S, T))
    return cases


def fake_pointers(st: Setup, sizes):
    """Distinct, 256-byte aligned, never dereferenced 'device addresses'."""
    B, S, T = sizes
    isz = np.dtype(reference.STORAGE_DTYPES[st.dtype]).itemsize
    nbytes = {"q": B * st.hq * S * st.d * isz, "k": B * st.hkv * T * st.d * isz,
              "v": B * st.hkv * T * st.dv * isz, "out": B * st.h * S * st.dv * isz}
    base = 0x7F0000000000
    ptrs = {name: base + (i + 1) * (1 << 32) for i, name in enumerate(("q", "k", "v", "out"))}
    return ptrs, nbytes


def run_no_gpu(lib, st: Setup, args, report: Report) -> None:
    tag = "no-gpu"
    sizes = (2, 3, 5)
    ptrs, nbytes = fake_pointers(st, sizes)
    check_config(lib, st, args.chip, report, tag)

    for case, want, q, k, v, out, b, s, t in argument_cases(st, lib, ptrs, nbytes, sizes):
        status = lib.forward_raw(q, k, v, out, b, s, t, None)
        msg = lib.error_string(status)
        report.line(status == want and bool(msg),
                    f"{tag} {case} status={status} want={want} ({status_name(want)}) "
                    f"message: {msg}")

    ok_gpu, why = cuda_driver.gpu_available(args.device)
    if ok_gpu:
        report.line(False, f"{tag} valid-call not run: a GPU is usable here ({why}); "
                    "--expect-no-gpu is for machines without one")
    else:
        print(f"no GPU: {why}", flush=True)
        # Adjacent out (right after q) passes the checks too.
        adjacent = ptrs["q"] + -(-nbytes["q"] // 256) * 256
        for case, out in (("valid-call", ptrs["out"]), ("valid-call-again", ptrs["out"]),
                          ("adjacent-out-after-q", adjacent)):
            status = lib.forward_raw(ptrs["q"], ptrs["k"], ptrs["v"], out, *sizes, None)
            msg = lib.error_string(status)
            last = lib.last_error()
            want = (aot.SQA_ERROR_NO_CUDA_DRIVER, aot.SQA_ERROR_NO_CUDA_DEVICE)
            report.line(status in want and bool(msg) and bool(last),
                        f"{tag} {case} status={status} want=6|7 ({status_name(status)}) "
                        f"message: {msg} last_error: {last}")
        # The same with a (fake) stream handle: the stream is never touched
        # before the driver is.
        status = lib.forward_raw(ptrs["q"], ptrs["k"], ptrs["v"], ptrs["out"], *sizes,
                                 0x7E0000001000)
        report.line(status in (6, 7), f"{tag} valid-call-with-stream status={status} want=6|7")

        # last_error() is per thread: "" on a thread that has not failed.
        box = {}

        def fresh():
            try:
                box["last"] = lib.last_error()
            except Exception as e:  # noqa: BLE001
                box["error"] = repr(e)

        th = threading.Thread(target=fresh)
        th.start()
        th.join()
        report.line(box.get("last") == "",
                    f"{tag} last-error-fresh-thread last_error={box.get('last', box.get('error'))!r}"
                    " want ''")

    run_no_gpu_decode(lib, st, report, ok_gpu)

    for code in list(range(0, 10)) + [-1, 10, 1000]:
        msg = lib.error_string(code)
        report.line(bool(msg), f"{tag} error-string-{code} message: {msg}")


def run_no_gpu_decode(lib, st: Setup, report: Report, ok_gpu: bool) -> None:
    """NAME_decode's argument checks with fake device addresses (B = 2,
    new_len = 3, capacity = 40), then a valid call that must reach the
    driver (6 or 7 without one)."""
    tag = "no-gpu decode"
    names = ("q", "k_cache", "v_cache", "k_new", "v_new", "cache_lens", "out")
    base = 0x7E0000000000
    p = {name: base + (i + 1) * (1 << 32) for i, name in enumerate(names)}
    sizes = dict(batch=2, new_len=3, capacity=40)

    def call(**changes):
        args = dict(p, **sizes)
        args.update(changes)
        return lib.decode_raw(*(args[n] for n in names), args["batch"], args["new_len"],
                              args["capacity"], None)

    cases = [("null-q", aot.SQA_ERROR_NULL_POINTER, dict(q=None)),
             ("null-cache-lens", aot.SQA_ERROR_NULL_POINTER, dict(cache_lens=None)),
             ("null-out", aot.SQA_ERROR_NULL_POINTER, dict(out=None)),
             ("only-k-new", aot.SQA_ERROR_NULL_POINTER, dict(v_new=None)),
             ("batch=0", aot.SQA_ERROR_INVALID_SIZE, dict(batch=0)),
             ("new_len=0", aot.SQA_ERROR_INVALID_SIZE, dict(new_len=0)),
             ("capacity=-1", aot.SQA_ERROR_INVALID_SIZE, dict(capacity=-1)),
             ("misaligned-k-cache+8", aot.SQA_ERROR_MISALIGNED,
              dict(k_cache=p["k_cache"] + 8)),
             ("misaligned-cache-lens+4", aot.SQA_ERROR_MISALIGNED,
              dict(cache_lens=p["cache_lens"] + 4)),
             ("capacity=2^62", aot.SQA_ERROR_SIZE_OVERFLOW, dict(capacity=1 << 62)),
             ("out=q", aot.SQA_ERROR_ALIASING, dict(out=p["q"])),
             ("k-cache=v-cache", aot.SQA_ERROR_ALIASING, dict(v_cache=p["k_cache"])),
             ("out=cache-lens", aot.SQA_ERROR_ALIASING, dict(out=p["cache_lens"]))]
    for case, want, changes in cases:
        status = call(**changes)
        report.line(status == want, f"{tag} {case} status={status} want={want} "
                                    f"({status_name(want)})")
    if not ok_gpu:
        for case, changes in (("valid-call", {}), ("valid-call-memory",
                                                   dict(k_new=None, v_new=None))):
            status = call(**changes)
            report.line(status in (aot.SQA_ERROR_NO_CUDA_DRIVER, aot.SQA_ERROR_NO_CUDA_DEVICE),
                        f"{tag} {case} status={status} want=6|7")


# ---------------------------------------------------------------------------
# GPU runs
# ---------------------------------------------------------------------------

class Arena:
    """q, k, v and out in one device allocation with GUARD-byte gaps.

    `skew` (bytes) shifts each buffer off 256-byte alignment: buffer i
    starts at a multiple of 256 plus skew * (2*i + 1)."""

    NAMES = ("q", "k", "v", "out")

    def __init__(self, drv, host: dict, out_host, skew: int = 0):
        self.drv = drv
        self.offsets = {}
        off = GUARD
        self.nbytes = {}
        arrays = dict(host, out=out_host)
        for i, name in enumerate(self.NAMES):
            off = -(-off // 256) * 256 + skew * (2 * i + 1)
            self.offsets[name] = off
            self.nbytes[name] = arrays[name].nbytes
            off += arrays[name].nbytes + GUARD
        self.total = -(-off // 256) * 256
        self.image = np.full(self.total, GUARD_BYTE, dtype=np.uint8)
        for name in self.NAMES:
            o = self.offsets[name]
            self.image[o:o + self.nbytes[name]] = np.ascontiguousarray(
                arrays[name]).reshape(-1).view(np.uint8)
        self.mem = cuda_driver.DeviceArray(drv, self.total)
        try:
            self.mem.copy_from(self.image)
            # A pageable host->device copy may still be in flight when it
            # returns; the kernel may run on a non-blocking stream.
            drv.ctx_synchronize()
        except BaseException:
            self.mem.free()
            raise

    def ptr(self, name: str) -> int:
        return self.mem.ptr + self.offsets[name]

    @property
    def ptrs(self) -> dict:
        return {n: self.ptr(n) for n in self.NAMES}

    def download(self) -> np.ndarray:
        img = np.empty(self.total, dtype=np.uint8)
        self.mem.copy_to(img)
        return img

    def region(self, img, name: str) -> np.ndarray:
        o = self.offsets[name]
        return img[o:o + self.nbytes[name]]

    def changed_outside(self, img, allow=("out",)) -> list:
        """Names of the regions (buffers and gaps) that differ from the upload."""
        diff = img != self.image
        keep = np.ones(self.total, dtype=bool)
        for name in allow:
            o = self.offsets[name]
            keep[o:o + self.nbytes[name]] = False
        bad = np.flatnonzero(diff & keep)
        if not bad.size:
            return []
        where = []
        for b in (int(bad[0]), int(bad[-1])):
            label = "gap"
            for name in self.NAMES:
                o = self.offsets[name]
                if o <= b < o + self.nbytes[name]:
                    label = name
                    break
            else:
                starts = sorted((self.offsets[n], n) for n in self.NAMES)
                before = [n for o, n in starts if o <= b]
                label = f"gap after {before[-1]}" if before else "gap before q"
            where.append(f"byte {b} ({label})")
        return [f"{bad.size} bytes outside out changed, first at {where[0]}, "
                f"last at {where[1]}"]

    def free(self) -> None:
        self.mem.free()


def compare(st: Setup, host: dict, out_img, sizes):
    """Numerics: returns (ok, max_err, tol, reasons)."""
    B, S, T = sizes
    storage = np.dtype(reference.STORAGE_DTYPES[st.dtype])
    out = out_img.view(storage).reshape(st.out_shape(B, S))

    def bhsd(a):
        return st.from_layout(from_storage(a, st.dtype))

    ref = reference.attention(bhsd(host["q"]), bhsd(host["k"]), bhsd(host["v"]),
                              scale=st.scale, causal=st.causal, alignment=st.alignment,
                              window=st.window)
    atol, rtol = TOLERANCES[st.dtype]
    max_err, tol, reasons = reference.compare(bhsd(out), ref, atol, rtol)
    return not reasons, max_err, tol, reasons


def run_shape(drv, lib, st: Setup, sizes, rng, stream, skew=0, in_thread=False):
    """One forward call in a fresh arena; returns (ok, max_err, tol, reason)."""
    B, S, T = sizes
    q, k, v = st.inputs(B, S, T, rng)
    host = {"q": q, "k": k, "v": v}
    out = nan_storage(st.out_shape(B, S), st.dtype)
    arena = Arena(drv, host, out, skew)
    try:
        p = arena.ptrs
        box = {}

        def call():
            try:
                box["status"] = lib.forward_raw(p["q"], p["k"], p["v"], p["out"],
                                                B, S, T, stream)
                box["last"] = lib.last_error() if box["status"] != 0 else ""
                if in_thread and box["status"] == 0:
                    # The library made a context current; wait for the work
                    # here, where it was enqueued.
                    drv.ctx_synchronize()
            except Exception as e:  # noqa: BLE001
                box["error"] = f"{type(e).__name__}: {e}"

        if in_thread:
            th = threading.Thread(target=call)
            th.start()
            th.join()
        else:
            call()
        if "error" in box:
            return False, float("nan"), 0.0, box["error"]
        status = box["status"]
        if status != aot.SQA_OK:
            return False, float("nan"), 0.0, (
                f"status {status} ({status_name(status)}): {lib.error_string(status)}; "
                f"last_error: {box['last']}")
        if stream:
            drv.stream_synchronize(stream)
        drv.ctx_synchronize()
        img = arena.download()
    finally:
        arena.free()
    ok, max_err, tol, reasons = compare(st, host, arena.region(img, "out"), sizes)
    reasons = reasons + arena.changed_outside(img)
    return not reasons, max_err, tol, "; ".join(reasons)


def run_gpu(lib, st: Setup, args, report: Report) -> int:
    """Numerics on the device; returns the exit status."""
    try:
        drv = cuda_driver.load()
        info = drv.describe(args.device)
        ctx = drv.primary_context(args.device)
    except (cuda_driver.CUDAUnavailable, cuda_driver.CUDAError) as e:
        print(f"no GPU: {e}", flush=True)
        return EXIT_NO_GPU
    print(f"GPU: {info['name']} ({info['chip']}), {info.get('multiprocessors', '?')} SMs, "
          f"library chip {lib.chip}", flush=True)
    desc = st.desc
    check_config(lib, st, args.chip, report, desc)

    shapes = args.shapes or parse_shapes(DEFAULT_SHAPES)
    stream = drv.stream_create(cuda_driver.CU_STREAM_NON_BLOCKING)
    skew = lib.alignment  # 16 for f16/bf16, 4 for f32
    plan = [(sizes, "own", 0, False) for sizes in shapes]
    plan.append((NULL_STREAM_SHAPE, "null", 0, False))
    if args.device == 0:
        plan.append((THREAD_SHAPE, "null no-context-thread", 0, True))
    plan.append((MIN_ALIGN_SHAPE, f"own min-alignment={skew}", skew, False))
    dead = None
    try:
        for idx, (sizes, label, sk, in_thread) in enumerate(plan):
            B, S, T = sizes
            head = f"{desc} B={B} S={S} T={T} stream={label}"
            if dead:
                report.line(False, f"{head} not run after a CUDA error ({dead})")
                continue
            rng = np.random.default_rng([args.seed, idx, B, S, T])
            s = None if label.startswith("null") else stream
            try:
                ok, err, tol, reason = run_shape(drv, lib, st, sizes, rng, s, sk, in_thread)
            except cuda_driver.CUDAError as e:
                dead = e.name
                report.line(False, f"{head} CUDA error: {e}")
                continue
            line = f"{head} max_abs_err={err:.3e} tol={tol:.3e}"
            if reason:
                line += f" ({reason})"
            report.line(ok, line)
    finally:
        if not dead:
            try:
                drv.stream_destroy(stream)
                ctx.release()
            except cuda_driver.CUDAError:
                pass
    return 0


def run_gpu_error_paths(lib, st: Setup, args, report: Report) -> int:
    try:
        drv = cuda_driver.load()
        ctx = drv.primary_context(args.device)
    except (cuda_driver.CUDAUnavailable, cuda_driver.CUDAError) as e:
        print(f"no GPU: {e}", flush=True)
        return EXIT_NO_GPU
    tag = "error-paths"
    check_config(lib, st, args.chip, report, tag)
    sizes = (2, 3, 5)
    B, S, T = sizes
    rng = np.random.default_rng(args.seed)
    q, k, v = st.inputs(B, S, T, rng)
    host = {"q": q, "k": k, "v": v}
    sentinel = nan_storage(st.out_shape(B, S), st.dtype)
    arena = Arena(drv, host, sentinel)
    try:
        ptrs = arena.ptrs

        def expect(case, want, q_, k_, v_, out_, b, s, t, untouched=True):
            status = lib.forward_raw(q_, k_, v_, out_, b, s, t, None)
            drv.ctx_synchronize()
            msg = lib.error_string(status)
            ok = status == want and bool(msg)
            detail = f"status={status} want={want} ({status_name(want)})"
            if status != aot.SQA_OK:
                detail += f" last_error: {lib.last_error()}"
            if untouched:
                changed = arena.changed_outside(arena.download(), allow=())
                if changed:
                    ok = False
                    detail += " memory written on error: " + changed[0]
                    # Restore, so the next case is judged on its own.
                    arena.mem.copy_from(arena.image)
                    drv.ctx_synchronize()
            report.line(ok, f"{tag} {case} {detail} message: {msg}")

        expect("valid-call", aot.SQA_OK, ptrs["q"], ptrs["k"], ptrs["v"], ptrs["out"],
               B, S, T, untouched=False)
        # Back to the sentinel for the error cases.
        arena.mem.copy_from(arena.image)
        drv.ctx_synchronize()
        for case, want, q_, k_, v_, out_, b, s, t in argument_cases(
                st, lib, ptrs, arena.nbytes, sizes):
            expect(case, want, q_, k_, v_, out_, b, s, t)
    finally:
        arena.free()

    # out right after q (adjacent, not overlapping) must be accepted.
    isz = np.dtype(reference.STORAGE_DTYPES[st.dtype]).itemsize
    q_bytes = q.nbytes
    padded = -(-q_bytes // 16) * 16
    out_bytes = B * st.h * S * st.dv * isz
    mem = cuda_driver.DeviceArray(drv, padded + out_bytes + GUARD)
    try:
        mem.copy_from(np.ascontiguousarray(q).reshape(-1).view(np.uint8))
        kd = cuda_driver.DeviceArray.from_numpy(drv, k)
        vd = cuda_driver.DeviceArray.from_numpy(drv, v)
        try:
            drv.ctx_synchronize()
            status = lib.forward_raw(mem.ptr, kd.ptr, vd.ptr, mem.ptr + padded, B, S, T, None)
            drv.ctx_synchronize()
            report.line(status == aot.SQA_OK,
                        f"{tag} adjacent-out-after-q status={status} want=0 (SQA_OK)")
        finally:
            kd.free()
            vd.free()
    finally:
        mem.free()
    for code in list(range(0, 10)) + [-1, 10]:
        msg = lib.error_string(code)
        report.line(bool(msg), f"{tag} error-string-{code} message: {msg}")
    ctx.release()
    return 0


# ---------------------------------------------------------------------------
# Building, prebuilt libraries, manifests
# ---------------------------------------------------------------------------

def recorded_args(argv) -> list:
    """argv without the location options (and their values)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in _LOCATION_OPTIONS:
            skip = True
            continue
        if any(a.startswith(o + "=") for o in _LOCATION_OPTIONS):
            continue
        out.append(a)
    return out


def read_manifest(directory: str) -> dict:
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"schema": 1, "entries": []}


def record(directory: str, name: str, args: list, source: str = None) -> None:
    doc = read_manifest(directory)
    entries = doc.setdefault("entries", [])
    if not any(e["args"] == args for e in entries):
        entries.append({"name": name, "args": args, **({"source": source} if source else {})})
    with open(os.path.join(directory, MANIFEST) + ".tmp", "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(os.path.join(directory, MANIFEST) + ".tmp", os.path.join(directory, MANIFEST))


def lit_invocations(paths) -> list:
    """[(source, args)] for every %sqa-check-cuda command in lit test files:
    RUN lines joined over trailing backslashes, the command up to a pipe,
    --outdir/--sqa-aot dropped; invocations with --expect-no-gpu skipped."""
    found = []
    for path in paths:
        with open(path) as f:
            lines = f.read().splitlines()
        cmd, start = "", None
        for lineno, line in enumerate(lines, 1):
            if "RUN:" not in line:
                continue
            text = line.split("RUN:", 1)[1].strip()
            if start is None:
                start = lineno
            if text.endswith("\\"):
                cmd += text[:-1] + " "
                continue
            cmd += text
            for part in cmd.split("&&"):
                part = part.split("|")[0].strip()
                if part.startswith("%sqa-check-cuda"):
                    args = recorded_args(shlex.split(part)[1:])
                    if "--expect-no-gpu" in args:
                        continue
                    if any("%" in a for a in args):
                        raise ValueError(f"{path}:{start}: cannot resolve a lit substitution "
                                         f"in {part!r}")
                    found.append((f"{os.path.basename(path)}:{start}", args))
            cmd, start = "", None
    return found


def prepare_many(args, parser) -> int:
    """--prepare DIR --from-lit FILES: build every invocation's library."""
    ok = True
    invocations = lit_invocations(args.from_lit)
    if not invocations:
        print(f"no %sqa-check-cuda lines in {' '.join(args.from_lit)}", flush=True)
        return 1
    # The lit files are the whole list: start a fresh manifest.
    os.makedirs(args.prepare, exist_ok=True)
    try:
        os.remove(os.path.join(args.prepare, MANIFEST))
    except FileNotFoundError:
        pass
    for source, inv in invocations:
        argv = inv + ["--prepare", args.prepare, "--sqa-aot", args.sqa_aot]
        print(f"# {source}: {' '.join(shlex.quote(a) for a in inv)}", flush=True)
        status = main(argv, source=source)
        ok &= status == 0
    print(f"prepared {len(invocations)} invocation(s) into {args.prepare}"
          + ("" if ok else " (with failures)"), flush=True)
    return 0 if ok else 1


def run_all(args) -> int:
    """--lib-dir DIR --all: every manifest entry in its own process."""
    doc = read_manifest(args.lib_dir)
    entries = doc.get("entries", [])
    if not entries:
        print(f"FAIL no invocations recorded in {os.path.join(args.lib_dir, MANIFEST)}",
              flush=True)
        return 1
    ok_gpu, why = cuda_driver.gpu_available(args.device)
    if not ok_gpu:
        print(f"no GPU: {why}", flush=True)
        return EXIT_NO_GPU
    failed = []
    passed = fail_lines = pass_lines = 0
    for e in entries:
        argv = [sys.executable, os.path.abspath(__file__), *e["args"],
                "--lib-dir", args.lib_dir, "--device", str(args.device)]
        print(f"# {e.get('source', e['name'])}: {' '.join(shlex.quote(a) for a in e['args'])}",
              flush=True)
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sys.stdout.write(p.stdout)
        sys.stdout.flush()
        pass_lines += sum(1 for ln in p.stdout.splitlines() if ln.startswith("PASS "))
        fail_lines += sum(1 for ln in p.stdout.splitlines() if ln.startswith("FAIL "))
        if p.returncode == 0:
            passed += 1
        else:
            failed.append(f"{e.get('source', e['name'])} (exit {p.returncode})")
    print(f"all: {len(entries)} invocations, {passed} passed, {len(failed)} failed; "
          f"{pass_lines} PASS lines, {fail_lines} FAIL lines", flush=True)
    for f in failed:
        print(f"  failed: {f}", flush=True)
    return 1 if failed else 0


def get_library(args, st: Setup, outdir: str):
    """(CUDAAttentionLibrary, None) or (None, error text)."""
    name = library_name(args, st)
    if args.lib_dir:
        path = os.path.join(args.lib_dir, f"lib{name}.so")
        if not os.path.exists(path):
            return None, (f"no prebuilt library {path}; build it with --prepare "
                          f"{args.lib_dir} on a machine with sqa-aot")
    else:
        try:
            path = aot.build_library(args.sqa_aot, outdir, name=name, **aot_config(args, st))
        except (aot.AOTError, OSError) as e:
            return None, f"sqa-aot error: {e}"
    try:
        return aot.CUDAAttentionLibrary(path, name, args.dtype), None
    except (OSError, AttributeError) as e:
        return None, f"cannot load {path}: {e}"


def main(argv=None, source=None) -> int:
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)

    if args.all:
        if not args.lib_dir:
            parser.error("--all needs --lib-dir")
        return run_all(args)
    if args.from_lit:
        if not args.prepare:
            parser.error("--from-lit goes with --prepare")
        if not args.sqa_aot:
            parser.error("--prepare needs --sqa-aot")
        return prepare_many(args, parser)
    if not _has_config(args):
        parser.error("--head-dim is required")
    if args.prepare and args.lib_dir:
        parser.error("--prepare and --lib-dir exclude each other")
    if not args.lib_dir and not args.sqa_aot:
        parser.error("give --sqa-aot (or --lib-dir with prebuilt libraries)")
    if args.expect_no_gpu and args.error_paths:
        parser.error("--expect-no-gpu and --error-paths exclude each other")
    st = Setup(args, parser)

    if args.prepare:
        os.makedirs(args.prepare, exist_ok=True)
        name = library_name(args, st)
        try:
            path = os.path.join(args.prepare, f"lib{name}.so")
            if path not in _PREPARED:   # built once per process (--from-lit)
                path = aot.build_library(args.sqa_aot, args.prepare, name=name,
                                         **aot_config(args, st))
                _PREPARED.add(path)
        except (aot.AOTError, OSError) as e:
            print(f"FAIL {st.desc} sqa-aot error (see stderr)", flush=True)
            print(str(e), file=sys.stderr)
            return 1
        record(args.prepare, name, recorded_args(raw), source)
        print(f"PREPARED {st.desc} {path}", flush=True)
        return 0

    if not args.expect_no_gpu:
        # Before building: without a GPU there is nothing to run.
        ok_gpu, why = cuda_driver.gpu_available(args.device)
        if not ok_gpu:
            print(f"no GPU: {why}", flush=True)
            return EXIT_NO_GPU

    outdir = args.outdir or tempfile.mkdtemp(prefix="sqa-check-cuda-")
    report = Report()
    try:
        lib, error = get_library(args, st, outdir)
        if lib is None:
            report.line(False, f"{st.desc} {error.splitlines()[0]}")
            print(error, file=sys.stderr)
            report.summary()
            return 1
        if args.expect_no_gpu:
            run_no_gpu(lib, st, args, report)
            status = 0
        elif args.error_paths:
            status = run_gpu_error_paths(lib, st, args, report)
        else:
            status = run_gpu(lib, st, args, report)
        if status == EXIT_NO_GPU:
            return status
        report.summary()
        return 1 if report.failed else status
    except Exception:  # noqa: BLE001 - say what broke, as a FAIL line
        report.line(False, f"{st.desc} internal error (traceback on stderr)")
        traceback.print_exc()
        report.summary()
        return 1
    finally:
        if args.outdir is None:
            shutil.rmtree(outdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
