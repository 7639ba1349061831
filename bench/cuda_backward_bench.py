#!/usr/bin/env python3
"""GPU check and timing of NAME_backward of ``sqa-aot --target cuda`` libraries:
tensor-core (mma.sync) against SIMT backward kernels, in one run.

  python3 bench/cuda_backward_bench.py --prepare build/cuda-libs/backward-tc  # machine with sqa-aot
  python3 bench/cuda_backward_bench.py --lib-dir build/cuda-libs/backward-tc  # GPU machine (numpy only)

Per configuration (head counts x D x mask, bf16 or f16, BHSD) two libraries
are built, ``--gpu-backward tensor-core`` and ``--gpu-backward simt``. On the
GPU, each library is first checked against the float64 numpy reference
(check_backward.py's tolerances, through its CUDATraining: S != T with rows
that see no key under causal bottom-right, odd lengths, several blocks) and
for determinism (two backward calls give bitwise-identical gradients); then
NAME_backward is timed on device buffers at B x S x T (default 1 x 4096 x
4096): CUDA events around back-to-back calls on one stream, the minimum over
--repeats samples. Reported: ms per call, TFLOP/s with FlashAttention's
convention (backward = 2.5 x the forward's 4 * B * H * S * T * D FLOPs, half
of them under a causal mask) and the tensor-core / SIMT speed-up measured in
the same run.

Status: written without a GPU; --prepare runs on the development machine,
the GPU path has not run yet (compiles, unmeasured).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, os.path.join(REPO, "test", "lib", "python"))

from sqa_mlir import aot  # noqa: E402

# (label, q heads, kv heads)
CONFIGS = [("mha", 16, 16), ("gqa", 16, 4), ("mqa", 16, 1), ("sqa", 8, 4),
           ("rsqa", 4, 8)]
MASKS = {"none": {}, "causal-bottom-right": {"causal": "bottom-right"}}
KINDS = ("tensor-core", "simt")


def lib_name(label, d, mask, dtype, kind):
    return f"bwd_{label}_d{d}_{mask.split('-')[0]}_{dtype}_{'tc' if kind == 'tensor-core' else 'simt'}"


def cases(args):
    for label, hq, hkv in CONFIGS:
        for d in args.head_dims:
            for mask in MASKS:
                yield label, hq, hkv, d, mask


def prepare(args):
    os.makedirs(args.prepare, exist_ok=True)
    for label, hq, hkv, d, mask in cases(args):
        for kind in KINDS:
            name = lib_name(label, d, mask, args.dtype, kind)
            aot.build_library(args.sqa_aot, args.prepare, q_heads=hq, kv_heads=hkv,
                              head_dim=d, dtype=args.dtype, name=name, target="cuda",
                              chip=args.chip, gpu_backward=kind, **MASKS[mask])
            print(f"built {name}", flush=True)
    return 0


def run(args):
    import numpy as np
    from sqa_mlir import cuda_driver
    from sqa_mlir.reference import to_storage
    from check_backward import CUDA_OUT_TOLERANCES, CUDATraining, check_one

    ok, why = cuda_driver.gpu_available()
    if not ok:
        print(f"no GPU: {why}")
        return 77
    rng = np.random.default_rng(0)
    failed = False
    rows = []
    B, S, T = args.shape
    for label, hq, hkv, d, mask in cases(args):
        H = max(hq, hkv)
        times = {}
        for kind in KINDS:
            name = lib_name(label, d, mask, args.dtype, kind)
            training = CUDATraining(os.path.join(args.lib_dir, f"lib{name}.so"), name,
                                    args.dtype)
            drv, stream = training.driver, training.stream
            # Correctness and determinism on small shapes.
            for b, s, t in ((1, 130, 67), (2, 67, 200)):
                try:
                    reasons, errs = check_one(training, args.dtype, mask, hq, hkv, d, d,
                                              b, s, t, rng, CUDA_OUT_TOLERANCES)
                    q, k, v, d_out = (to_storage(rng.standard_normal(shape), args.dtype)
                                      for shape in ((b, hq, s, d), (b, hkv, t, d),
                                                    (b, hkv, t, d), (b, H, s, d)))
                    out, lse = training.forward_lse(q, k, v)
                    first = training.backward(q, k, v, out, d_out, lse)
                    second = training.backward(q, k, v, out, d_out, lse)
                    if not all(np.array_equal(x.view(np.uint8), y.view(np.uint8))
                               for x, y in zip(first, second)):
                        reasons.append("two backward calls differ (not deterministic)")
                except Exception as e:  # a status or driver error is a failure
                    reasons, errs = [repr(e)], ""
                failed |= bool(reasons)
                print(f"{'FAIL' if reasons else 'PASS'} {name} B={b} S={s} T={t} {errs}"
                      + (f" ({'; '.join(reasons)})" if reasons else ""), flush=True)

            # Timing on device buffers.
            lib = training.lib
            host = {n: to_storage(rng.uniform(-1, 1, shape), args.dtype) for n, shape in
                    (("q", (B, hq, S, d)), ("k", (B, hkv, T, d)), ("v", (B, hkv, T, d)),
                     ("d_out", (B, H, S, d)))}
            dev = {n: cuda_driver.DeviceArray.from_numpy(drv, a) for n, a in host.items()}
            try:
                for n, shape in (("out", (B, H, S, d)), ("dq", (B, hq, S, d)),
                                 ("dk", (B, hkv, T, d)), ("dv", (B, hkv, T, d))):
                    dev[n] = cuda_driver.DeviceArray.empty(drv, shape, host["q"].dtype)
                dev["lse"] = cuda_driver.DeviceArray.empty(drv, (B, H, S), np.float32)
                p = {n: a.ptr for n, a in dev.items()}
                status = lib.forward_lse(p["q"], p["k"], p["v"], p["out"], p["lse"],
                                         B, S, T, stream=stream)
                if status != aot.SQA_OK:
                    raise RuntimeError(f"forward_lse: status {status}: {lib.last_error()}")

                def call():
                    status = lib.backward(p["q"], p["k"], p["v"], p["out"], p["d_out"],
                                          p["lse"], p["dq"], p["dk"], p["dv"], B, S, T,
                                          stream=stream)
                    if status != aot.SQA_OK:
                        raise RuntimeError(f"backward: status {status}: {lib.last_error()}")

                call()
                drv.stream_synchronize(stream)
                start, end = drv.event_create(), drv.event_create()
                best = float("inf")
                for _ in range(args.repeats):
                    drv.event_record(start, stream)
                    for _ in range(args.calls):
                        call()
                    drv.event_record(end, stream)
                    drv.event_synchronize(end)
                    best = min(best, drv.event_elapsed_ms(start, end) / args.calls)
                times[kind] = best
            finally:
                for a in dev.values():
                    a.free()
        flops = 2.5 * 4 * B * H * S * T * d * (0.5 if mask != "none" else 1.0)
        row = dict(config=label, hq=hq, hkv=hkv, head_dim=d, mask=mask, dtype=args.dtype,
                   B=B, S=S, T=T, tc_ms=times["tensor-core"], simt_ms=times["simt"],
                   tc_tflops=flops / times["tensor-core"] / 1e9,
                   simt_tflops=flops / times["simt"] / 1e9,
                   speedup=times["simt"] / times["tensor-core"])
        rows.append(row)
        print(f"{label:4s} Hq={hq:2d} Hkv={hkv:2d} D={d:3d} {mask:19s} "
              f"tensor-core {row['tc_ms']:8.3f} ms {row['tc_tflops']:6.1f} TFLOP/s  "
              f"simt {row['simt_ms']:8.3f} ms {row['simt_tflops']:6.2f} TFLOP/s  "
              f"speed-up {row['speedup']:.1f}x", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=cuda_driver.load().describe(), rows=rows), f, indent=1)
        print(f"wrote {args.json}")
    return 1 if failed else 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prepare", metavar="DIR", help="build the libraries into DIR")
    p.add_argument("--lib-dir", metavar="DIR", help="check and time the libraries in DIR")
    p.add_argument("--sqa-aot", default=os.path.join(REPO, "build", "bin", "sqa-aot"))
    p.add_argument("--chip", default="sm_90")
    p.add_argument("--dtype", default="bf16", choices=("bf16", "f16"))
    p.add_argument("--head-dims", default="64,128",
                   type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--shape", default="1x4096x4096",
                   type=lambda s: tuple(int(x) for x in s.split("x")), help="BxSxT timed")
    p.add_argument("--calls", type=int, default=5, help="calls per timed sample")
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
