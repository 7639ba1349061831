#!/usr/bin/env python3
"""S = T = 65536 through an sqa-aot flash library: spot-checks rows against
numpy and reports the process's peak memory growth, which must stay far
below the 16 GiB an S x T f32 score matrix would take.

  long_sequence.py SQA_AOT OUTDIR [--len N]
"""

import argparse
import os
import resource
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "..", "..", "python"))

import numpy as np  # noqa: E402

from sqa_mlir import aot, reference  # noqa: E402


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("sqa_aot")
    p.add_argument("outdir")
    p.add_argument("--len", type=int, default=65536)
    args = p.parse_args()
    n, d = args.len, 16
    path = aot.build_library(args.sqa_aot, args.outdir, q_heads=1, kv_heads=1,
                             head_dim=d, causal="bottom_right", name="longseq")
    lib = aot.AttentionLibrary(path, "longseq", "f32")
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 1, n, d), dtype=np.float32)
    k = rng.standard_normal((1, 1, n, d), dtype=np.float32)
    v = rng.standard_normal((1, 1, n, d), dtype=np.float32)
    out = np.full((1, 1, n, d), np.nan, dtype=np.float32)
    before = peak_rss_mib()
    status = lib.forward(q, k, v, out)
    growth = peak_rss_mib() - before
    print(f"status {status} ({lib.error_string(status)})")
    ok = status == 0 and bool(np.isfinite(out).all())
    # Causal rows i see keys [0, i]: check a few against numpy directly.
    worst = 0.0
    for i in (0, 1, 4097, n // 2, n - 1):
        ref = reference.attention(q[:, :, i:i + 1], k[:, :, :i + 1],
                                  v[:, :, :i + 1])
        worst = max(worst, float(np.max(np.abs(out[0, 0, i] - ref[0, 0, 0]))))
    ok = ok and worst < 1e-4
    # Inputs and output are 4 MiB each; allow scratch, thread stacks and
    # allocator slack, nowhere near an S x T buffer.
    ok = ok and growth < 256
    print(f"{'PASS' if ok else 'FAIL'} long-sequence S=T={n} D={d} causal "
          f"max_abs_err={worst:.3e} peak_rss_growth_mib={growth:.1f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
