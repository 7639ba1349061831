#!/usr/bin/env python3
"""Call an sqa-aot library from Python with ctypes and numpy; no PyTorch.

  sqa-aot --variant ssqa --heads 16 --head-dim 64 --causal bottom-right \\
          --name ssqa -o /tmp/sqa/libssqa.so
  python3 python/examples/attention_example.py /tmp/sqa/libssqa.so ssqa

The library's `<name>_config()` says which configuration it was built for;
this script reads the head counts from it, runs one f32 forward pass in BHSD
layout and compares with a few lines of numpy.
"""

import ctypes
import sys
import time

import numpy as np


def load(path, name):
    lib = ctypes.CDLL(path)
    forward = getattr(lib, name + "_forward")
    forward.restype = ctypes.c_int
    forward.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 3
    getattr(lib, name + "_error_string").restype = ctypes.c_char_p
    getattr(lib, name + "_config").restype = ctypes.c_char_p
    config = dict(item.split("=", 1) for item in
                  getattr(lib, name + "_config")().decode().split())
    return lib, forward, config


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
    lib, forward, config = load(path, name)
    print("library:", getattr(lib, name + "_config")().decode())
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
    status = forward(q.ctypes.data, k.ctypes.data, v.ctypes.data,
                     out.ctypes.data, B, S, T)
    elapsed = time.perf_counter() - start
    if status != 0:
        sys.exit("forward failed: " +
                 getattr(lib, name + "_error_string")(status).decode())

    expected = numpy_attention(q, k, v, float(config["scale"]), causal)
    error = float(np.max(np.abs(out - expected)))
    print(f"B={B} S={S} T={T}: {elapsed * 1e3:.1f} ms, "
          f"max |out - numpy| = {error:.2e}")
    # An error in the library is reported, never a crash: try a null pointer.
    status = forward(None, k.ctypes.data, v.ctypes.data, out.ctypes.data, B, S, T)
    print(f"null query -> status {status}: "
          f"{getattr(lib, name + '_error_string')(status).decode()}")
    if error > 1e-4:
        sys.exit("MISMATCH against numpy")
    print("OK: matches numpy")


if __name__ == "__main__":
    main()
