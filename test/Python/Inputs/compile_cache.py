"""sqa_mlir.compile end to end: build, cache, call, validate.

  python3 compile_cache.py SQA_AOT CACHE_DIR [PACKAGE_DIR]

Uses whichever sqa_mlir is importable (PYTHONPATH), and with PACKAGE_DIR
checks that it is the one imported from there (the pip-installed copy).
"""

import multiprocessing
import os
import sys

os.environ["SQA_AOT"] = sys.argv[1]
os.environ["SQA_MLIR_CACHE"] = sys.argv[2]

import numpy as np  # noqa: E402

import sqa_mlir  # noqa: E402
from sqa_mlir.reference import TOLERANCES, compare  # noqa: E402

CONFIG = dict(variant="sqa", heads=8, head_dim=16, value_head_dim=24,
              causal="bottom_right", dtype="f32")


def entries(cache):
    return sorted(e for e in os.listdir(cache))


def compile_other(_):
    # A second configuration, compiled by several processes at once.
    a = sqa_mlir.compile(q_heads=4, kv_heads=2, head_dim=8, window=(3, 1))
    return a.path


def main():
    cache = sys.argv[2]
    if len(sys.argv) > 3:
        where = os.path.realpath(os.path.dirname(sqa_mlir.__file__))
        inside = where.startswith(os.path.realpath(sys.argv[3]) + os.sep)
        print("package from target dir:", inside)

    first = sqa_mlir.compile(**CONFIG)
    print("first compile from cache:", first.from_cache)
    # The same configuration spelled as sqa-aot spells it: the same entry.
    second = sqa_mlir.compile(**dict(CONFIG, causal="bottom-right"))
    print("second compile from cache:", second.from_cache,
          "same library:", second.path == first.path)
    print("cache entries:", len(entries(cache)))

    rng = np.random.default_rng(0)
    B, S, T = 2, 13, 29
    q = rng.standard_normal((B, second.q_heads, S, 16), dtype=np.float32)
    k = rng.standard_normal((B, second.kv_heads, T, 16), dtype=np.float32)
    v = rng.standard_normal((B, second.kv_heads, T, 24), dtype=np.float32)
    out = second.forward(q, k, v)
    ref = sqa_mlir.attention(q, k, v, causal=True, alignment="bottom_right")
    err, tol, reasons = compare(out, ref, *TOLERANCES["f32"])
    print(f"{'FAIL' if reasons else 'PASS'} forward {out.shape} "
          f"max_abs_err={err:.3e} tol={tol:.3e} {reasons}")

    for what, args in (("dtype", (q.astype(np.float64), k, v)),
                       ("heads", (k, k, v)),
                       ("kv length", (q, k, v[:, :, :-1])),
                       ("rank", (q[0], k, v))):
        try:
            second.forward(*args)
            print(f"bad {what}: accepted")
        except (TypeError, ValueError) as e:
            print(f"bad {what}: {type(e).__name__}: {e}")
    try:
        sqa_mlir.compile(q_heads=3, kv_heads=2, head_dim=8)
    except sqa_mlir.CompileError as e:
        print("bad config: CompileError:", str(e).splitlines()[-1])

    with multiprocessing.get_context("spawn").Pool(3) as pool:
        paths = pool.map(compile_other, range(3))
    print("concurrent compiles agree:", len(set(paths)) == 1,
          "cache entries:", len(entries(cache)))


if __name__ == "__main__":
    main()
