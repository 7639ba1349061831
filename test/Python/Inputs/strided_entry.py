"""NAME_forward_strided against the float64 numpy reference: q/k/v sliced
from one fused projection, BSHD views of a BHSD library (and the reverse),
padded and broadcast operands, and the status of every bad stride.

  python3 strided_entry.py SQA_AOT OUTDIR
"""

import sys

import numpy as np

from sqa_mlir import aot
from sqa_mlir.reference import (TOLERANCES, attention, compare, from_storage,
                                to_storage)

SQA_AOT, OUTDIR = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)


def build(name, **config):
    path = aot.build_library(SQA_AOT, OUTDIR, name=name, **config)
    return aot.AttentionLibrary(path, name, config.get("dtype", "f32"))


def check(what, lib, q, k, v, out, dtype="f32", **mask):
    """Runs forward_strided on [B, H, S, D] views and compares out."""
    status = lib.forward_strided(q, k, v, out)
    ref = attention(*(from_storage(a, dtype) for a in (q, k, v)), **mask)
    err, tol, reasons = compare(from_storage(out, dtype), ref, *TOLERANCES[dtype])
    ok = status == aot.SQA_OK and not reasons
    print(f"{'PASS' if ok else 'FAIL'} {what}: status {status} "
          f"max_abs_err={err:.2e} tol={tol:.2e} {reasons}")


def fused_qkv(B, S, Hq, Hkv, D, dtype="f32"):
    """q, k, v as [B, H, S, D] views of one [B, S, (Hq + 2 Hkv) D] array."""
    x = to_storage(rng.standard_normal((B, S, (Hq + 2 * Hkv) * D)), dtype)
    views = []
    for lo, h in ((0, Hq), (Hq, Hkv), (Hq + Hkv, Hkv)):
        views.append(x[:, :, lo * D:(lo + h) * D].reshape(B, S, h, D)
                     .transpose(0, 2, 1, 3))
    return views


# GQA 4/2 on a BHSD library, q/k/v from a fused BSHD projection; out BSHD.
gqa = build("gqa", q_heads=4, kv_heads=2, head_dim=16, causal="bottom_right")
B, S = 2, 13
q, k, v = fused_qkv(B, S, 4, 2, 16)
out = np.full((B, S, 4, 16), np.nan, np.float32)
check("fused qkv -> bshd out", gqa, q, k, v, out.transpose(0, 2, 1, 3),
      causal=True, alignment="bottom_right")
print("views of one buffer:", np.may_share_memory(q, k) and np.may_share_memory(q, v))

# The same BHSD library with contiguous BHSD operands: equal to NAME_forward.
qc, kc, vc = (np.ascontiguousarray(a) for a in (q, k, v))
o1 = np.empty((B, 4, S, 16), np.float32)
o2 = np.empty((B, 4, S, 16), np.float32)
s1, s2 = gqa.forward(qc, kc, vc, o1), gqa.forward_strided(qc, kc, vc, o2)
print("contiguous forward == strided:", s1, s2, np.array_equal(o1, o2))

# Reverse SQA (kv heads > q heads) on a BSHD library, given BHSD operands,
# and an out padded between positions (the padding stays untouched).
rsqa = build("rsqa", q_heads=2, kv_heads=4, head_dim=8, value_head_dim=12,
             layout="bshd")
S, T = 9, 21
q = rng.standard_normal((B, 2, S, 8)).astype(np.float32)
k = rng.standard_normal((B, 4, T, 8)).astype(np.float32)
v = rng.standard_normal((B, 4, T, 12)).astype(np.float32)
padded = np.full((B, 4, S, 16), -7.0, np.float32)
check("bhsd operands on a bshd library, padded out", rsqa, q, k, v,
      padded[..., :12])
print("padding untouched:", bool((padded[..., 12:] == -7.0).all()))

# Broadcast: k and v repeated over the batch with batch stride 0.
k1 = rng.standard_normal((1, 4, T, 8)).astype(np.float32)
v1 = rng.standard_normal((1, 4, T, 12)).astype(np.float32)
kb, vb = (np.broadcast_to(a, (B,) + a.shape[1:]) for a in (k1, v1))
check("batch-broadcast k/v", rsqa, q, kb, vb, np.empty((B, 4, S, 12), np.float32))

# f16, windowed, fused projection.
h = build("h", q_heads=2, kv_heads=2, head_dim=8, dtype="f16", window=(3, 2))
q, k, v = fused_qkv(3, 11, 2, 2, 8, "f16")
check("f16 fused qkv, window", h, q, k, v, np.empty((3, 2, 11, 8), np.float16),
      "f16", window=(3, 2))

# Bad strides and overlaps come back as status codes, before any work.
q = rng.standard_normal((2, 4, 5, 16)).astype(np.float32)
k = rng.standard_normal((2, 2, 5, 16)).astype(np.float32)
v = k.copy()
out = np.zeros((2, 4, 5, 16), np.float32)
C = lambda a: [s // 4 for s in a.strides[:3]]  # noqa: E731
P = lambda a: a.ctypes.data  # noqa: E731


def call(what, **over):
    args = dict(q=P(q), qs=C(q), k=P(k), ks=C(k), v=P(v), vs=C(v), o=P(out),
                os=C(out), B=2, S=5, T=5)
    args.update(over)
    status = gqa.forward_strided_raw(args["q"], args["qs"], args["k"], args["ks"],
                                     args["v"], args["vs"], args["o"], args["os"],
                                     args["B"], args["S"], args["T"])
    print(f"{what}: {aot.STATUS_NAMES.get(status, status)} "
          f"({gqa.error_string(status)})")


call("ok")
out[...] = 0
call("negative q stride", qs=[320, 80, -16])
call("null k strides", ks=None)
call("out batch stride 0", os=[0, 80, 16])
call("out heads interleaved with positions", os=[320, 16, 32])
call("out rows shorter than head dim", os=[320, 80, 8])
call("huge stride", vs=[2**62, 80, 16])
call("out inside q", o=P(q))
# Disjoint elements, but out's span meets q's: refused (conservative).
pairs = np.zeros((2, 4, 5, 2, 16), np.float32)
qi, oi = pairs[:, :, :, 0], pairs[:, :, :, 1]
call("out interleaved with q", q=P(qi), qs=C(qi), o=P(oi), os=C(oi))
call("misaligned out", o=P(out) + 2)
call("zero batch", B=0)
print("out still zero:", not out.any())
