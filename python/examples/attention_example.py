#!/usr/bin/env python3
"""Call an sqa-aot library from Python with numpy; no PyTorch.

  sqa-aot --variant ssqa --heads 16 --head-dim 64 --causal bottom-right \\
          --name ssqa -o /tmp/sqa/libssqa.so
  python3 python/examples/attention_example.py /tmp/sqa/libssqa.so ssqa

The library's `<name>_config()` says which configuration it was built for;
this script reads the head counts from it, runs one f32 forward pass in BHSD
layout through the package's ctypes wrapper (sqa_mlir.aot.AttentionLibrary)
and compares with a few lines of numpy. (sqa_mlir.compile(...) does the
sqa-aot step too, with a cache.)
"""

import os
import sys
import time

import numpy as np

# The package from this source tree when it is not installed.
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from sqa_mlir.aot import AttentionLibrary  # noqa: E402


def numpy_attention(q, k, v, scale, causal):
    """softmax(q k^T * scale) v with kv head h // (Hq / Hkv), bottom-right causal."""
    hq, hkv = q.shape[1], k.shape[1]
    k = np.repeat(k, hq // hkv, axis=1)
    v = np.repeat(v, hq // hkv, axis=1)
    s = np.einsum("bhsd,bhtd->bhst", q.astype(np.float64), k) * scale
    if causal:
        S, T = q.shape[2], k.shape[2]
        hidden = np.arange(T)[None, :] > np.arange(S)[:, None] + (T - S)
        s = np.where(hidden, -np.inf, s)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    return np.einsum("bhst,bhtd->bhsd", p / p.sum(axis=-1, keepdims=True), v)


def main():
    path, name = sys.argv[1], sys.argv[2]
    lib = AttentionLibrary(path, name, "f32")
    config = lib.settings
    print("library:", lib.config())
    if config["dtype"] != "f32" or config["layout"] != "bhsd":
        sys.exit("this example expects an f32 BHSD library")
    hq, hkv = int(config["q_heads"]), int(config["kv_heads"])
    d, dv = int(config["head_dim"]), int(config["value_head_dim"])
    if hkv > hq:
        sys.exit("this example covers Hq >= Hkv")
    causal = config["causal"] != "none"

    B, S, T = 2, 512, 512
    rng = np.random.default_rng(0)
    q = rng.standard_normal((B, hq, S, d), dtype=np.float32)
    k = rng.standard_normal((B, hkv, T, d), dtype=np.float32)
    v = rng.standard_normal((B, hkv, T, dv), dtype=np.float32)
    out = np.empty((B, hq, S, dv), dtype=np.float32)

    start = time.perf_counter()
    status = lib.forward(q, k, v, out)
    elapsed = time.perf_counter() - start
    if status != 0:
        sys.exit("forward failed: " + lib.error_string(status))

    expected = numpy_attention(q, k, v, float(config["scale"]), causal)
    error = float(np.max(np.abs(out - expected)))
    print(f"B={B} S={S} T={T}: {elapsed * 1e3:.1f} ms, "
          f"max |out - numpy| = {error:.2e}")
    # An error in the library is reported, never a crash: try a null pointer.
    status = lib.forward_raw(None, k, v, out, B, S, T)
    print(f"null query -> status {status}: {lib.error_string(status)}")
    if error > 1e-4:
        sys.exit("MISMATCH against numpy")
    print("OK: matches numpy")


if __name__ == "__main__":
    main()
