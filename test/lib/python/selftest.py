#!/usr/bin/env python3
"""Self-test of the numpy oracle (no compiler needed).

Checks sqa_mlir.reference against (a) a scalar triple-loop implementation
written straight from the op's definition, (b) the repeat_interleave
formulation of GQA used by PyTorch SDPA, (c) hand-computed masks, and
checks the bf16 conversion helpers and the head presets. Prints one
'selftest OK: ...' line, or raises.
"""

from __future__ import annotations

import math
import os
import sys

import testpaths  # noqa: E402,F401  (makes sqa_mlir importable)

import numpy as np  # noqa: E402

from sqa_mlir import reference as R  # noqa: E402


def scalar_attention(q, k, v, scale, causal, alignment, window):
    """Straight from the definition: one query row and one key at a time."""
    B, Hq, S, D = q.shape
    _, Hkv, T, Dv = v.shape
    H = max(Hq, Hkv)
    out = np.zeros((B, H, S, Dv))
    off = T - S if alignment == "bottom_right" else 0
    left, right = window
    for b in range(B):
        for h in range(H):
            if Hq >= Hkv:
                qh, kh = h, h // (Hq // Hkv)
            else:
                qh, kh = h // (Hkv // Hq), h
            for i in range(S):
                keys = [j for j in range(T)
                        if (not causal or j <= i + off)
                        and (left < 0 or j >= i + off - left)
                        and (right < 0 or j <= i + off + right)]
                if not keys:
                    continue  # fully masked row: 0
                s = [scale * sum(q[b, qh, i, d] * k[b, kh, j, d] for d in range(D))
                     for j in keys]
                m = max(s)
                w = [math.exp(x - m) for x in s]
                z = sum(w)
                for e in range(Dv):
                    out[b, h, i, e] = sum(wn * v[b, kh, j, e] for wn, j in zip(w, keys)) / z
    return out


def check_bf16():
    x = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-7, -(1 + 2**-8 + 2**-20),
                  -0.0, np.inf, -np.inf, 3.4e38], dtype=np.float32)
    b = R.f32_to_bf16(x)
    want = [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xBF81, 0x8000, 0x7F80, 0xFF80, 0x7F80]
    assert list(b) == want, [hex(v) for v in b]
    assert np.isnan(R.bf16_to_f32(R.f32_to_bf16(np.float32(np.nan)))).all()
    # Nearest-even on many random values: no neighbour is closer.
    x = np.random.default_rng(1).standard_normal(100000).astype(np.float32) * 7
    bb = R.f32_to_bf16(x)
    y = R.bf16_to_f32(bb).astype(np.float64)
    for nb in (bb.astype(np.int64) + 1, bb.astype(np.int64) - 1):
        z = R.bf16_to_f32(nb.astype(np.uint16)).astype(np.float64)
        assert np.all(np.abs(y - x) <= np.abs(z - x))
    # bf16 -> f32 -> bf16 is the identity on finite values.
    all_bf16 = np.arange(0, 1 << 16, dtype=np.uint32).astype(np.uint16)
    f = R.bf16_to_f32(all_bf16)
    fin = np.isfinite(f)
    assert np.array_equal(R.f32_to_bf16(f)[fin], all_bf16[fin])
    # storage round trip for every dtype
    for dt in R.DTYPES:
        s = R.to_storage(x[:10], dt)
        assert s.dtype == R.STORAGE_DTYPES[dt]
        assert np.allclose(R.from_storage(s, dt), x[:10], rtol=2 * R.EPSILON[dt])
    return 4


def check_presets():
    table = {"mha": (16, 16), "mqa": (16, 1), "sqa": (8, 4), "ssqa": (8, 8),
             "xsqa": (4, 4), "xsmqa": (4, 1), "rsqa": (4, 8)}
    for name, hw in table.items():
        assert R.variant_heads(name, 16) == hw, name
    assert R.variant_heads("gqa", 16, 4) == (16, 4)
    for bad in (("gqa", 16, None), ("sqa", 6, None), ("gqa", 16, 5), ("nope", 16, None)):
        try:
            R.variant_heads(*bad)
        except ValueError:
            continue
        raise AssertionError(f"variant_heads{bad} should fail")
    # head mapping, forward and reverse
    assert [R.head_mapping(h, 8, 2) for h in range(8)] == [(h, h // 4) for h in range(8)]
    assert [R.head_mapping(h, 2, 8) for h in range(8)] == [(h // 4, h) for h in range(8)]
    return len(table) + 6


def check_masks():
    # S = 2, T = 4, bottom_right causal: offset 2.
    m = R.visible_mask(2, 4, causal=True, alignment="bottom_right")
    assert m.tolist() == [[True, True, True, False], [True, True, True, True]]
    # S = 4, T = 2, bottom_right causal: offset -2, rows 0 and 1 empty.
    m = R.visible_mask(4, 2, causal=True, alignment="bottom_right")
    assert m.tolist() == [[False, False], [False, False], [True, False], [True, True]]
    # top_left causal S = 3, T = 5
    m = R.visible_mask(3, 5, causal=True)
    assert m.tolist() == [[True, False, False, False, False],
                          [True, True, False, False, False],
                          [True, True, True, False, False]]
    # window (1, 1) top_left S = T = 4: a band
    m = R.visible_mask(4, 4, window=(1, 1))
    assert m.astype(int).tolist() == [[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]]
    # Analytic: Q = 0 -> uniform weights; V = t -> mean of visible indices.
    q = np.zeros((1, 1, 4, 3))
    k = np.random.default_rng(0).standard_normal((1, 1, 4, 3))
    v = np.broadcast_to(np.arange(4.0)[None, None, :, None], (1, 1, 4, 2))
    o = R.attention(q, k, v, causal=True)
    assert np.allclose(o[0, 0, :, 0], [0, 0.5, 1, 1.5])
    o = R.attention(q[:, :, :2], k, v, causal=True, alignment="bottom_right")
    assert np.allclose(o[0, 0, :, 0], [1, 1.5])
    o = R.attention(q, k[:, :, :2], v[:, :, :2], causal=True, alignment="bottom_right")
    assert np.array_equal(o[0, 0, :, 0], [0, 0, 0, 0.5]) and not np.isnan(o).any()
    return 7


def check_against_scalar():
    rng = np.random.default_rng(0)
    n = 0
    heads = [(4, 2), (2, 4), (3, 3), (4, 1), (1, 2)]
    masks = [(False, "top_left", (-1, -1)), (True, "top_left", (-1, -1)),
             (True, "bottom_right", (-1, -1)), (False, "bottom_right", (2, 1)),
             (True, "top_left", (1, -1)), (False, "top_left", (0, 0)),
             (True, "bottom_right", (2, 0))]
    for Hq, Hkv in heads:
        for causal, align, window in masks:
            for B, S, T in [(2, 3, 5), (1, 5, 3), (1, 1, 1)]:
                D, Dv = 3, 2
                q = rng.standard_normal((B, Hq, S, D))
                k = rng.standard_normal((B, Hkv, T, D))
                v = rng.standard_normal((B, Hkv, T, Dv))
                scale = 0.7 if n % 2 else None
                got = R.attention(q, k, v, scale=scale, causal=causal,
                                  alignment=align, window=window)
                want = scalar_attention(q, k, v, scale or 1 / math.sqrt(D),
                                        causal, align, window)
                assert np.allclose(got, want, rtol=0, atol=1e-12), \
                    (Hq, Hkv, causal, align, window, B, S, T)
                n += 1
    # PyTorch SDPA enable_gqa = repeat_interleave of K/V along heads.
    q = rng.standard_normal((2, 8, 5, 4))
    k = rng.standard_normal((2, 2, 6, 4))
    v = rng.standard_normal((2, 2, 6, 3))
    kk, vv = np.repeat(k, 4, axis=1), np.repeat(v, 4, axis=1)
    s = q @ kk.transpose(0, 1, 3, 2) / 2.0
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    assert np.allclose(p @ vv, R.attention(q, k, v))
    return n + 1


def check_lse():
    """lse against a direct log(sum(exp(scores))) per row."""
    rng = np.random.default_rng(3)
    n = 0
    for Hq, Hkv in [(4, 2), (2, 4), (1, 1)]:
        for causal, align, window in [(False, "top_left", (-1, -1)),
                                      (True, "top_left", (-1, -1)),
                                      (False, "bottom_right", (1, 0))]:
            B, S, T, D = 2, 5, 3, 4
            q = rng.standard_normal((B, Hq, S, D))
            k = rng.standard_normal((B, Hkv, T, D))
            v = rng.standard_normal((B, Hkv, T, 2))
            out, lse = R.attention_lse(q, k, v, causal=causal, alignment=align,
                                       window=window)
            assert np.array_equal(out, R.attention(q, k, v, causal=causal,
                                                   alignment=align, window=window))
            mask = R.visible_mask(S, T, causal=causal, alignment=align, window=window)
            for b in range(B):
                for h in range(max(Hq, Hkv)):
                    qh, kh = R.head_mapping(h, Hq, Hkv)
                    for i in range(S):
                        keys = [j for j in range(T) if mask[i, j]]
                        if not keys:
                            assert lse[b, h, i] == -np.inf
                            continue
                        z = sum(math.exp(float(q[b, qh, i] @ k[b, kh, j]) / 2.0)
                                for j in keys)
                        assert abs(lse[b, h, i] - math.log(z)) < 1e-12
                        n += 1
    return n


def check_backward_finite_differences():
    """attention_backward against central differences of
    L = sum(attention(q, k, v) * d_out), for every kind of head mapping and
    mask, including rows that see no key (S > T, causal bottom-right)."""
    rng = np.random.default_rng(4)
    n = 0
    heads = [(2, 2), (4, 2), (4, 1), (2, 4), (1, 2)]
    masks = [(False, "top_left", (-1, -1)), (True, "top_left", (-1, -1)),
             (True, "bottom_right", (-1, -1)), (False, "bottom_right", (1, 1)),
             (True, "top_left", (1, -1))]
    eps = 1e-6
    for Hq, Hkv in heads:
        for causal, align, window in masks:
            B, S, T, D, Dv = 2, 5, 3, 3, 2
            q = rng.standard_normal((B, Hq, S, D))
            k = rng.standard_normal((B, Hkv, T, D))
            v = rng.standard_normal((B, Hkv, T, Dv))
            g = rng.standard_normal((B, max(Hq, Hkv), S, Dv))
            kw = dict(scale=0.8, causal=causal, alignment=align, window=window)

            def loss(q_, k_, v_):
                return float((R.attention(q_, k_, v_, **kw) * g).sum())

            grads = R.attention_backward(q, k, v, g, **kw)
            for which, (x, dx) in enumerate(zip((q, k, v), grads)):
                fd = np.zeros_like(x)
                for idx in np.ndindex(*x.shape):
                    xp, xm = x.copy(), x.copy()
                    xp[idx] += eps
                    xm[idx] -= eps
                    args_p = [q, k, v]
                    args_m = [q, k, v]
                    args_p[which], args_m[which] = xp, xm
                    fd[idx] = (loss(*args_p) - loss(*args_m)) / (2 * eps)
                assert np.allclose(dx, fd, rtol=1e-6, atol=1e-7), \
                    (Hq, Hkv, causal, align, window, which,
                     float(np.abs(dx - fd).max()))
                n += 1
            if causal and align == "bottom_right":
                # S > T: rows 0 and 1 see no key, so their dq is exactly 0.
                assert not np.any(grads[0][:, :, :S - T])
    return n


def main():
    counts = {
        "bf16": check_bf16(),
        "presets": check_presets(),
        "masks": check_masks(),
        "reference-vs-scalar": check_against_scalar(),
        "lse": check_lse(),
        "backward-vs-finite-differences": check_backward_finite_differences(),
    }
    print("selftest OK: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
