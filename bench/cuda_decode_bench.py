#!/usr/bin/env python3
"""GPU timing of NAME_decode of ``sqa-aot --target cuda`` libraries.

  python3 bench/cuda_decode_bench.py --prepare build/cuda-libs/decode   # machine with sqa-aot
  python3 bench/cuda_decode_bench.py --lib-dir build/cuda-libs/decode   # GPU machine (numpy only)

Decode is bound by memory bandwidth: a step reads every cached key and value
of every batch row once (per group of query heads). Per case: B batch rows
with full caches of L tokens (capacity L + new_len), bf16, BHSD, one new
token appended (new_len 1, or 4 for speculative decoding), Hkv kv heads of
D = 128. Timing: CUDA events around a batch of back-to-back calls on one
stream (each call appends at the same positions: lengths are not advanced),
the minimum over --repeats samples. Reported: microseconds per call, the
K/V bytes read per call / time (GB/s), and, measured in the same run on the
same stream, a device-to-device copy of the same number of bytes (read +
write) as the bandwidth reference: ratio = decode GB/s / copy read GB/s.
No figure is claimed until this has run on a GPU.

Status: written without a GPU; --prepare runs on the development machine,
the timing path has not run yet (compiles, unmeasured).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(REPO, "python"))

from sqa_mlir import aot  # noqa: E402

# (label, q heads, kv heads): the head configurations of cuda_bench.py at
# D = 128 that differ in what decode reads.
CONFIGS = [("mha", 16, 16), ("gqa", 16, 4), ("sqa", 8, 4), ("mqa", 16, 1)]
# (batch, cached tokens, new_len)
SHAPES = [(1, 16384, 1), (8, 4096, 1), (32, 1024, 1), (8, 4096, 4)]
D = 128


def lib_name(label):
    return f"dec_{label}_d{D}_bf16"


def prepare(args):
    os.makedirs(args.prepare, exist_ok=True)
    for label, hq, hkv in CONFIGS:
        aot.build_library(args.sqa_aot, args.prepare, q_heads=hq, kv_heads=hkv,
                          head_dim=D, dtype="bf16", causal="bottom-right",
                          name=lib_name(label), target="cuda", chip=args.chip)
        print(f"built {lib_name(label)}")
    return 0


def run(args):
    import numpy as np
    from sqa_mlir import cuda_driver
    from sqa_mlir.reference import to_storage

    ok, why = cuda_driver.gpu_available()
    if not ok:
        print(f"no GPU: {why}")
        return 77
    drv = cuda_driver.load()
    drv.init()
    drv.primary_context()
    stream = drv.stream_create()
    start, end = drv.event_create(), drv.event_create()
    rng = np.random.default_rng(0)

    def timed(call, calls):
        best = float("inf")
        for _ in range(args.repeats):
            drv.event_record(start, stream)
            for _ in range(calls):
                call()
            drv.event_record(end, stream)
            drv.event_synchronize(end)
            best = min(best, drv.event_elapsed_ms(start, end) / calls)
        return best

    rows = []
    for label, hq, hkv in CONFIGS:
        path = os.path.join(args.lib_dir, f"lib{lib_name(label)}.so")
        lib = aot.CUDAAttentionLibrary(path, lib_name(label), "bf16")
        for batch, cached, new_len in SHAPES:
            cap = cached + new_len
            arrays = {
                "q": (batch, hq, new_len, D), "k_cache": (batch, hkv, cap, D),
                "v_cache": (batch, hkv, cap, D), "k_new": (batch, hkv, new_len, D),
                "v_new": (batch, hkv, new_len, D), "out": (batch, max(hq, hkv), new_len, D)}
            dev = {}
            try:
                for name, shape in arrays.items():
                    host = to_storage(rng.uniform(-1, 1, shape).astype(np.float32), "bf16")
                    dev[name] = cuda_driver.DeviceArray.from_numpy(drv, host)
                dev["lens"] = cuda_driver.DeviceArray.from_numpy(
                    drv, np.full(batch, cached, dtype=np.int64))

                def call():
                    status = lib.decode_raw(dev["q"], dev["k_cache"], dev["v_cache"],
                                            dev["k_new"], dev["v_new"], dev["lens"],
                                            dev["out"], batch, new_len, cap, stream)
                    if status != aot.SQA_OK:
                        raise RuntimeError(f"decode: status {status}: {lib.last_error()}")

                call()
                drv.stream_synchronize(stream)
                kv_bytes = batch * hkv * (cached + new_len) * 2 * D * 2
                ms = timed(call, args.calls)
                # k_cache -> v_cache: reads (and writes) half the K/V bytes.
                half = dev["k_cache"].nbytes
                copy_ms = timed(lambda: drv.memcpy_dtod_async(
                    dev["v_cache"].ptr, dev["k_cache"].ptr, half, stream), args.calls)
                decode_gbs = kv_bytes / ms / 1e6
                copy_gbs = half / copy_ms / 1e6  # bytes the copy reads
                rows.append(dict(config=label, hq=hq, hkv=hkv, batch=batch, cached=cached,
                                 new_len=new_len, us=ms * 1e3, decode_read_gbs=decode_gbs,
                                 copy_read_gbs=copy_gbs, ratio=decode_gbs / copy_gbs))
                print(f"{label:4s} Hq={hq:2d} Hkv={hkv:2d} B={batch:2d} L={cached:5d} "
                      f"N={new_len} {ms * 1e3:9.1f} us  {decode_gbs:7.1f} GB/s K/V read  "
                      f"(copy {copy_gbs:7.1f} GB/s read; ratio {decode_gbs / copy_gbs:.2f})",
                      flush=True)
            finally:
                for d in dev.values():
                    d.free()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=drv.describe(), rows=rows), f, indent=1)
        print(f"wrote {args.json}")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prepare", metavar="DIR", help="build the libraries into DIR")
    p.add_argument("--lib-dir", metavar="DIR", help="time the libraries in DIR")
    p.add_argument("--sqa-aot", default=os.path.join(REPO, "build", "bin", "sqa-aot"))
    p.add_argument("--chip", default="sm_90")
    p.add_argument("--calls", type=int, default=20, help="calls per timed sample")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args(argv)
    if args.prepare:
        return prepare(args)
    if args.lib_dir:
        return run(args)
    p.error("give --prepare DIR or --lib-dir DIR")


if __name__ == "__main__":
    sys.exit(main())
