#!/usr/bin/env python3
"""CPU benchmark of NAME_decode (one decode step against a KV cache).

  python3 bench/decode_bench.py                 # the issue's shapes (see below)
  python3 bench/decode_bench.py --smoke         # tiny shapes, seconds
  python3 bench/decode_bench.py --shapes 32/8/128 --caches 16384 --batches 1

Decode is bound by memory bandwidth: the figure of merit is the K/V bytes a
step reads per second against the machine's read bandwidth, measured in the
same run with bench/stream_read.c on the same number of OpenMP threads.
K/V bytes of a step = sum over batch rows of L_b * Hkv * (D + Dv) * element
size, with L_b the keys the row attends to (cache + new tokens).

For each head shape Hq/Hkv/D one library is built with sqa-aot (causal,
bottom-right); for each batch, cache length and new_len the caches hold
cache - new_len tokens per row and the step appends new_len tokens (the
same positions every repeat). Timed: warm-up calls, then --repeats calls,
each after a --settle pause and --rewarm seconds of untimed calls of the
same function (time.perf_counter around the ctypes call); median and min
are reported.
When torch is importable, torch.nn.functional.scaled_dot_product_attention
runs on the same cached tensors (q of length new_len against each row's
valid prefix, enable_gqa, bottom-right causal mask for new_len > 1), its
calls interleaved with ours, and its median is reported next to ours.
Rows of very different lengths: one call with rows of 100 and --long-row
keys against the two rows alone.

Issue targets (ratios in one run): B = 1, new_len = 1, cache >= 16k: K/V read
at >= 80% of the measured bandwidth; GQA 32/8 step <= 0.3x MHA 32/32; >= 2x
SDPA; mixed rows cost about the sum of their own work.

Bandwidth on a shared machine: stream_read runs before the first shape and
after every shape (same OpenMP threads, --stream-mib of memory, far past
the caches); fractions are computed at the end against the best of all
those runs, for the median step ("of bandwidth") and the fastest step
("best"), so a busy phase cannot inflate them. --baseline-sqa-aot builds
each library a second time with another compiler (e.g. the previous
commit's) and times both in the same process, calls interleaved, for an
A/B ratio that the machine's load affects alike.

Output: one JSON object per measurement on stdout (--json FILE also writes
them), then a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, BENCH_DIR)

import numpy as np  # noqa: E402

import harness  # noqa: E402
from harness import cpu_info, find_cc  # noqa: E402
from sqa_mlir import aot  # noqa: E402
from sqa_mlir.reference import to_storage  # noqa: E402

# (Hq, Hkv, D) from serving practice (issue 14).
ISSUE_SHAPES = ["32/8/128", "14/2/64", "32/32/128", "16/8/64", "8/8/64", "8/2/128"]
ISSUE_CACHES = [1024, 4096, 16384, 65536, 131072]


def parse_shape(text):
    hq, hkv, d = (int(x) for x in text.split("/"))
    return hq, hkv, d


def measure_bandwidth(cc, workdir, threads, mib):
    exe, cmd = harness.compile_probe(cc, workdir, "stream_read")
    if exe is None:
        return None, cmd
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([exe, str(mib)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        return json.loads(out.stdout), cmd
    except ValueError:
        return None, f"stream_read printed {out.stdout!r}"


def time_calls(fn, warmup, repeats):
    return harness.time_interleaved([fn], warmup, repeats)[0]


class Step:
    """Arrays of one decode step (BHSD)."""

    def __init__(self, hq, hkv, d, dtype, lens, new_len, capacity, rng):
        B = len(lens)
        self.elem = np.dtype(aot.STORAGE_DTYPES[dtype]).itemsize
        rnd = lambda *s: to_storage(rng.standard_normal(s, dtype=np.float32), dtype)  # noqa
        self.k_cache, self.v_cache = rnd(B, hkv, capacity, d), rnd(B, hkv, capacity, d)
        self.q = rnd(B, hq, new_len, d)
        self.k_new, self.v_new = rnd(B, hkv, new_len, d), rnd(B, hkv, new_len, d)
        self.lens = np.array([n - new_len for n in lens], dtype=np.int64)
        self.out = np.zeros((B, max(hq, hkv), new_len, d), self.k_cache.dtype)
        self.kv_bytes = sum(lens) * hkv * 2 * d * self.elem
        self.valid = lens

    def run(self, lib):
        status = lib.decode_raw(self.q, self.k_cache, self.v_cache, self.k_new, self.v_new,
                                self.lens, self.out, len(self.valid), self.q.shape[2],
                                self.k_cache.shape[2])
        if status:
            raise RuntimeError(lib.error_string(status))


def sdpa_runner(torch, step, dtype):
    """SDPA on the same cache (views of the numpy arrays), or None."""
    if dtype != "f32":
        return None  # bf16 storage is uint16 bit patterns; f32 only here
    F = torch.nn.functional
    q = torch.from_numpy(step.q)
    kc, vc = torch.from_numpy(step.k_cache), torch.from_numpy(step.v_cache)
    n = step.q.shape[2]

    def run():
        for b, L in enumerate(step.valid):
            k, v = kc[b:b + 1, :, :L], vc[b:b + 1, :, :L]
            mask = None
            if n > 1:  # bottom-right causal: row i sees keys <= L - n + i
                mask = (torch.arange(L)[None, :]
                        <= (L - n + torch.arange(n))[:, None])
            F.scaled_dot_product_attention(q[b:b + 1], k, v, attn_mask=mask,
                                           enable_gqa=q.shape[1] != k.shape[1])
    return run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sqa-aot", default=os.path.join(REPO, "build", "bin", "sqa-aot"))
    p.add_argument("--baseline-sqa-aot",
                   help="A/B: also build with this sqa-aot, timed in the same loop")
    p.add_argument("--shapes", nargs="+", default=ISSUE_SHAPES, help="Hq/Hkv/D")
    p.add_argument("--caches", nargs="+", type=int, default=ISSUE_CACHES)
    p.add_argument("--batches", nargs="+", type=int, default=[1, 4, 16])
    p.add_argument("--new-lens", nargs="+", type=int, default=[1, 4])
    p.add_argument("--dtype", choices=aot.STORAGE_DTYPES, default="f32")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--settle", type=float, default=0.25,
                   help="seconds to wait before each timed call, so the previous "
                        "call's spinning OpenMP workers (ours or PyTorch's) are idle "
                        "(default 0.25; 0: back to back)")
    p.add_argument("--rewarm", type=float, default=0.01,
                   help="seconds of untimed calls of the same function (at least one) "
                        "between the pause and each timed call, so it finds its "
                        "runtime awake as in a decode loop (default 0.01)")
    p.add_argument("--max-gib", type=float, default=8.0,
                   help="skip steps whose caches exceed this many GiB")
    p.add_argument("--long-row", type=int, default=100000,
                   help="mixed-length check: rows of 100 and this many keys (0: skip)")
    p.add_argument("--stream-mib", type=int, default=1024)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--smoke", action="store_true", help="tiny shapes, 2 repeats")
    p.add_argument("--json")
    p.add_argument("--workdir")
    args = p.parse_args(argv)
    if args.smoke:
        args.shapes, args.caches, args.batches = ["8/2/64", "8/8/64"], [1024, 4096], [1, 4]
        args.new_lens, args.repeats, args.warmup, args.settle = [1, 4], 2, 1, 0.0
        args.long_row, args.stream_mib = 4096, 64
    threads = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
    workdir = args.workdir or tempfile.mkdtemp(prefix="sqa-decode-bench-")
    os.makedirs(workdir, exist_ok=True)
    torch = None
    if not args.no_torch:
        try:
            import torch  # noqa: F811
            torch.set_num_threads(threads)
        except ImportError:
            torch = None
    records = []

    def emit(rec):
        records.append(rec)
        print(json.dumps(rec), flush=True)

    cc = find_cc(None)
    bandwidths = []

    def bandwidth(when):
        bw, bw_cmd = measure_bandwidth(cc, workdir, threads, args.stream_mib) if cc else (
            None, "no C compiler")
        if bw:
            bandwidths.append(bw["gbps"])
        emit({"kind": "bandwidth", "when": when, "threads": threads, "bandwidth": bw,
              "bandwidth_command": bw_cmd})

    emit({"kind": "machine", "threads": threads, "cpu": cpu_info(),
          "torch": getattr(torch, "__version__", None)})
    bandwidth("start")
    rng = np.random.default_rng(0)
    for shape in args.shapes:
        hq, hkv, d = parse_shape(shape)
        name = f"dec_{hq}_{hkv}_{d}_{args.dtype}"
        path = aot.build_library(args.sqa_aot, workdir, q_heads=hq, kv_heads=hkv, head_dim=d,
                                 dtype=args.dtype, causal="bottom_right", name=name)
        lib = aot.AttentionLibrary(path, name, args.dtype)
        base = None
        if args.baseline_sqa_aot:
            base_path = aot.build_library(
                args.baseline_sqa_aot, os.path.join(workdir, "baseline"), q_heads=hq,
                kv_heads=hkv, head_dim=d, dtype=args.dtype, causal="bottom_right", name=name)
            base = aot.AttentionLibrary(base_path, name, args.dtype)
        for B in args.batches:
            for C in args.caches:
                for n in args.new_lens:
                    gib = 2 * B * hkv * C * d * np.dtype(aot.STORAGE_DTYPES[args.dtype]).itemsize
                    if gib / 2**30 > args.max_gib:
                        emit({"kind": "skipped", "shape": shape, "batch": B, "cache": C,
                              "new_len": n, "reason": f"{gib / 2**30:.1f} GiB > --max-gib"})
                        continue
                    step = Step(hq, hkv, d, args.dtype, [C] * B, n, C, rng)
                    fns = [lambda: step.run(lib)]
                    if base:
                        fns.append(lambda: step.run(base))
                    run = sdpa_runner(torch, step, args.dtype) if torch else None
                    if run:
                        fns.append(run)
                    ts = harness.time_interleaved(fns, args.warmup, args.repeats, args.settle,
                                                 args.rewarm)
                    t = ts[0]
                    rec = {"kind": "decode", "shape": shape, "dtype": args.dtype, "batch": B,
                           "cache": C, "new_len": n, **t, "kv_bytes": step.kv_bytes,
                           "kv_gbps": step.kv_bytes / t["median_s"] / 1e9,
                           "best_kv_gbps": step.kv_bytes / t["min_s"] / 1e9}
                    if base:
                        rec["baseline_median_s"] = ts[1]["median_s"]
                        rec["baseline_min_s"] = ts[1]["min_s"]
                        rec["speedup_vs_baseline"] = ts[1]["median_s"] / t["median_s"]
                        rec["best_speedup_vs_baseline"] = ts[1]["min_s"] / t["min_s"]
                    if run:
                        rec["sdpa_median_s"] = ts[-1]["median_s"]
                        rec["speedup_vs_sdpa"] = ts[-1]["median_s"] / t["median_s"]
                    emit(rec)
                    del step
        if args.long_row:
            times = {}
            for label, lens in (("short", [100]), ("long", [args.long_row]),
                                ("mixed", [100, args.long_row])):
                step = Step(hq, hkv, d, args.dtype, lens, 1, max(lens), rng)
                times[label] = time_calls(lambda: step.run(lib), args.warmup,
                                          args.repeats)["median_s"]
            emit({"kind": "mixed_rows", "shape": shape, "rows": [100, args.long_row],
                  **{f"{k}_s": v for k, v in times.items()},
                  "mixed_over_sum": times["mixed"] / (times["short"] + times["long"])})
        bandwidth(f"after {shape}")
    gbps = max(bandwidths) if bandwidths else None
    for r in records:
        if r["kind"] == "decode" and gbps:
            r["bandwidth_fraction"] = r["kv_gbps"] / gbps
            r["best_bandwidth_fraction"] = r["best_kv_gbps"] / gbps
    if args.json:
        with open(args.json, "w") as f:
            for rec in records:
                f.write(json.dumps(rec) + "\n")
    def ratio(r, key, fmt, unit=""):
        return format(r[key], fmt) + unit if key in r else "—"

    print("\n| shape | B | cache | new | step ms (min) | K/V GB/s | of bandwidth (best) "
          "| vs SDPA | vs baseline |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in records:
        if r["kind"] == "decode":
            print(f"| {r['shape']} | {r['batch']} | {r['cache']} | {r['new_len']} | "
                  f"{r['median_s'] * 1e3:.3f} ({r['min_s'] * 1e3:.3f}) | {r['kv_gbps']:.2f} | "
                  f"{ratio(r, 'bandwidth_fraction', '.0%')} "
                  f"({ratio(r, 'best_bandwidth_fraction', '.0%')}) | "
                  f"{ratio(r, 'speedup_vs_sdpa', '.2f', 'x')} | "
                  f"{ratio(r, 'speedup_vs_baseline', '.2f', 'x')} |")
    if gbps:
        print(f"\nmeasured read bandwidth: best {gbps:.2f} GB/s of "
              f"{', '.join(f'{x:.1f}' for x in bandwidths)} on {threads} threads "
              f"(bench/stream_read.c)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
