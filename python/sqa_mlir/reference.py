"""Independent numpy reference for ``sqa.attention``.

Written for clarity, not speed: one explicit loop over batch and output
heads, an explicit boolean (S, T) visibility mask, and all arithmetic in
float64. Nothing here shares code with the compiler, so a kernel that agrees
with it is not just agreeing with itself.

Layout is BHSD:

  query [B, Hq, S, D], key [B, Hkv, T, D], value [B, Hkv, T, Dv]
  result [B, max(Hq, Hkv), S, Dv]

Head mapping (PyTorch ``repeat_interleave`` convention):

  Hq >= Hkv: output head h uses query head h and kv head h // (Hq // Hkv)
  Hkv > Hq (reverse SQA): output head h uses kv head h and query head
             h // (Hkv // Hq)

Mask: offset = T - S for ``bottom_right`` alignment, else 0. Key j is visible
to query i iff

  (not causal or j <= i + offset) and
  (window_left < 0 or j >= i + offset - window_left) and
  (window_right < 0 or j <= i + offset + window_right)

A query row that sees no key yields zeros.
"""

from __future__ import annotations

import math

import numpy as np

ALIGNMENTS = ("top_left", "bottom_right")

# Element types of the kernel and how their values are stored in numpy.
# bf16 has no numpy dtype: it is stored as uint16 bit patterns.
DTYPES = ("f32", "f16", "bf16")
STORAGE_DTYPES = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16}
# Machine epsilon (distance from 1.0 to the next larger value) per type.
EPSILON = {"f32": 2.0**-23, "f16": 2.0**-10, "bf16": 2.0**-7}


# Tolerances of a kernel's output against this float64 reference computed from
# the dtype-rounded inputs: |out - ref| <= atol + rtol * max(|ref|).
#
# f32: the kernel computes in f32 throughout; errors are a few f32 ulps of
#   the accumulated sums (~1e-6 for our sizes), so atol 1e-4 + rtol 1e-4 has
#   a wide margin and still catches any real bug (wrong head, mask, scale).
#
# f16 / bf16: scores, softmax and accumulation are in f32 (error ~1e-6, as
#   above) but the result is rounded once to the element type: that alone
#   costs up to 0.5 ulp, i.e. <= 0.5 * eps * |ref| (eps = 2^-10 for f16,
#   2^-7 for bf16). If an implementation also rounds the probabilities P to
#   the element type before P.V (as FlashAttention/IREE do), each term gains a
#   relative error <= eps/2, which is random in sign and averages out over the
#   T keys, adding well under one ulp of the largest output. So we allow
#   2 ulps relative to max(|ref|): rtol = 2 * eps, plus a small atol
#   (eps / 8) for outputs that are all close to 0. A wrong mask, head mapping
#   or scale changes outputs by O(0.1..1), far above these bounds, and an
#   accumulation in f16/bf16 over hundreds of keys exceeds them.
TOLERANCES = {
    "f32": (1e-4, 1e-4),                          # (atol, rtol)
    "f16": (EPSILON["f16"] / 8, 2 * EPSILON["f16"]),
    "bf16": (EPSILON["bf16"] / 8, 2 * EPSILON["bf16"]),
}


# ---------------------------------------------------------------------------
# bf16 / f16 helpers
# ---------------------------------------------------------------------------

def f32_to_bf16(x) -> np.ndarray:
    """float32 -> bf16 bit patterns (uint16), round to nearest even.

    NaNs stay (quiet) NaNs; infinities and overflow to infinity behave like
    the hardware conversion.
    """
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    bits = x.view(np.uint32).astype(np.uint64)
    # Round to nearest, ties to even: add 0x7FFF plus the lowest kept bit.
    lsb = (bits >> 16) & 1
    rounded = ((bits + 0x7FFF + lsb) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        # Keep sign, force a quiet NaN (truncation could produce an infinity).
        rounded = np.where(nan, ((bits >> 16).astype(np.uint16) | 0x0040),
                           rounded).astype(np.uint16)
    return rounded


def bf16_to_f32(b) -> np.ndarray:
    """bf16 bit patterns (uint16) -> float32 (exact)."""
    b = np.ascontiguousarray(np.asarray(b, dtype=np.uint16))
    return (b.astype(np.uint32) << 16).view(np.float32)


def to_storage(x, dtype: str) -> np.ndarray:
    """Round float values to ``dtype`` and return the C-contiguous array the
    kernel reads (float32, float16, or uint16 bf16 bit patterns)."""
    x32 = np.asarray(x, dtype=np.float32)
    if dtype == "f32":
        return np.ascontiguousarray(x32)
    if dtype == "f16":
        return np.ascontiguousarray(x32.astype(np.float16))
    if dtype == "bf16":
        return f32_to_bf16(x32)
    raise ValueError(f"unsupported dtype {dtype!r}; expected one of {DTYPES}")


def from_storage(a, dtype: str) -> np.ndarray:
    """Inverse of :func:`to_storage`: kernel storage -> float64 values."""
    if dtype == "bf16":
        return bf16_to_f32(a).astype(np.float64)
    if dtype in ("f32", "f16"):
        return np.asarray(a).astype(np.float64)
    raise ValueError(f"unsupported dtype {dtype!r}; expected one of {DTYPES}")


def nan_storage(shape, dtype: str) -> np.ndarray:
    """An array of quiet NaNs in kernel storage (a sentinel for 'not written')."""
    if dtype == "bf16":
        return np.full(shape, 0x7FC0, dtype=np.uint16)
    return np.full(shape, np.nan, dtype=STORAGE_DTYPES[dtype])


# ---------------------------------------------------------------------------
# Head presets
# ---------------------------------------------------------------------------

VARIANTS = ("mha", "gqa", "mqa", "sqa", "ssqa", "xsqa", "xsmqa", "rsqa")


def variant_heads(name: str, total: int, groups: int | None = None):
    """(Hq, Hkv) of a named head configuration with ``total`` baseline heads.

    mha (H, H), gqa (H, groups), mqa (H, 1), sqa (H/2, H/4),
    ssqa (H/2, H/2), xsqa (H/4, H/4), xsmqa (H/4, 1), rsqa (H/4, H/2)
    (reverse SQA: more kv heads than query heads).
    """
    name = name.lower()
    H = int(total)
    if H < 1:
        raise ValueError(f"total heads must be >= 1, got {H}")

    def part(div):
        if H % div:
            raise ValueError(f"variant {name!r} needs total heads divisible by "
                             f"{div}, got {H}")
        return H // div

    if name == "gqa":
        if groups is None:
            raise ValueError("variant 'gqa' needs groups (number of kv heads)")
        groups = int(groups)
        if groups < 1 or H % groups:
            raise ValueError(f"gqa: groups ({groups}) must divide total ({H})")
        return H, groups
    if groups is not None:
        raise ValueError(f"groups is only meaningful for 'gqa', not {name!r}")
    table = {
        "mha": lambda: (H, H),
        "mqa": lambda: (H, 1),
        "sqa": lambda: (part(2), part(4)),
        "ssqa": lambda: (part(2), part(2)),
        "xsqa": lambda: (part(4), part(4)),
        "xsmqa": lambda: (part(4), 1),
        "rsqa": lambda: (part(4), part(2)),
    }
    if name not in table:
        raise ValueError(f"unknown variant {name!r}; expected one of {VARIANTS}")
    return table[name]()


def head_mapping(h: int, Hq: int, Hkv: int):
    """(query head, kv head) used by output head ``h``."""
    if Hq >= Hkv:
        if Hq % Hkv:
            raise ValueError(f"Hq ({Hq}) must be a multiple of Hkv ({Hkv})")
        return h, h // (Hq // Hkv)
    if Hkv % Hq:
        raise ValueError(f"Hkv ({Hkv}) must be a multiple of Hq ({Hq})")
    return h // (Hkv // Hq), h


# ---------------------------------------------------------------------------
# Mask and attention
# ---------------------------------------------------------------------------

def visible_mask(S: int, T: int, *, causal: bool = False,
                 alignment: str = "top_left", window=(-1, -1)) -> np.ndarray:
    """Boolean (S, T) array: True where key j is visible to query i."""
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    left, right = (int(w) for w in window)
    offset = (T - S) if alignment == "bottom_right" else 0
    i = np.arange(S, dtype=np.int64)[:, None]
    j = np.arange(T, dtype=np.int64)[None, :]
    diag = i + offset  # key position on query i's diagonal
    mask = np.ones((S, T), dtype=bool)
    if causal:
        mask &= j <= diag
    if left >= 0:
        mask &= j >= diag - left
    if right >= 0:
        mask &= j <= diag + right
    return mask


def attention(q, k, v, *, scale=None, causal=False, alignment="top_left",
              window=(-1, -1)) -> np.ndarray:
    """float64 reference of ``sqa.attention``; returns [B, max(Hq,Hkv), S, Dv].

    ``q``, ``k``, ``v`` are any float arrays (pass the values the kernel
    sees, i.e. already rounded to its element type).
    """
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError("query, key and value must be rank 4 (BHSD)")
    B, Hq, S, D = q.shape
    Bk, Hkv, T, Dk = k.shape
    Bv, Hv, Tv, Dv = v.shape
    if not (B == Bk == Bv):
        raise ValueError(f"batch mismatch: {B}, {Bk}, {Bv}")
    if Dk != D:
        raise ValueError(f"key head dim {Dk} != query head dim {D}")
    if Hv != Hkv or Tv != T:
        raise ValueError(f"value shape {v.shape} does not match key shape {k.shape}")
    if scale is None:
        scale = 1.0 / math.sqrt(D)
    H = max(Hq, Hkv)
    mask = visible_mask(S, T, causal=causal, alignment=alignment, window=window)
    any_visible = mask.any(axis=1)  # rows that see at least one key

    out = np.zeros((B, H, S, Dv), dtype=np.float64)
    for b in range(B):
        for h in range(H):
            qh, kh = head_mapping(h, Hq, Hkv)
            scores = (q[b, qh] @ k[b, kh].T) * scale          # (S, T)
            scores = np.where(mask, scores, -np.inf)
            row_max = np.max(scores, axis=1, keepdims=True)   # -inf if empty
            row_max = np.where(any_visible[:, None], row_max, 0.0)
            p = np.where(mask, np.exp(scores - row_max), 0.0)  # (S, T)
            denom = p.sum(axis=1, keepdims=True)
            denom = np.where(any_visible[:, None], denom, 1.0)
            out[b, h] = (p @ v[b, kh]) / denom                 # empty rows: 0
    return out


def _check_shapes(q, k, v):
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError("query, key and value must be rank 4 (BHSD)")
    B, Hq, S, D = q.shape
    Bk, Hkv, T, Dk = k.shape
    Bv, Hv, Tv, Dv = v.shape
    if not (B == Bk == Bv):
        raise ValueError(f"batch mismatch: {B}, {Bk}, {Bv}")
    if Dk != D:
        raise ValueError(f"key head dim {Dk} != query head dim {D}")
    if Hv != Hkv or Tv != T:
        raise ValueError(f"value shape {v.shape} does not match key shape {k.shape}")


def attention_lse(q, k, v, *, scale=None, causal=False, alignment="top_left",
                  window=(-1, -1)):
    """float64 reference of ``sqa.attention ... lse(...)``: returns
    ``(out, lse)`` with lse [B, max(Hq,Hkv), S] the natural logsumexp of each
    row's scaled, masked scores, -inf for a row that sees no key."""
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    _check_shapes(q, k, v)
    B, Hq, S, D = q.shape
    Hkv, T = k.shape[1], k.shape[2]
    if scale is None:
        scale = 1.0 / math.sqrt(D)
    H = max(Hq, Hkv)
    mask = visible_mask(S, T, causal=causal, alignment=alignment, window=window)
    lse = np.full((B, H, S), -np.inf)
    for b in range(B):
        for h in range(H):
            qh, kh = head_mapping(h, Hq, Hkv)
            scores = np.where(mask, (q[b, qh] @ k[b, kh].T) * scale, -np.inf)
            for i in range(S):
                row = scores[i][mask[i]]
                if row.size:
                    m = row.max()
                    lse[b, h, i] = m + math.log(np.exp(row - m).sum())
    out = attention(q, k, v, scale=scale, causal=causal, alignment=alignment,
                    window=window)
    return out, lse


def attention_backward(q, k, v, d_out, *, scale=None, causal=False,
                       alignment="top_left", window=(-1, -1)):
    """float64 gradients of ``sum(attention(q, k, v) * d_out)``:
    ``(dq, dk, dv)`` shaped as q, k, v.

    Per output head h with P its softmax (0 for hidden keys and empty rows):
    dV_kh += P^T dO, dP = dO V^T, dS = P * (dP - rowsum(P * dP)),
    dQ_qh += scale dS K, dK_kh += scale dS^T Q. The += is the head mapping's
    reduction: every output head that uses a kv head (or, for reverse SQA, a
    query head) adds to its gradient.
    """
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    d_out = np.asarray(d_out, dtype=np.float64)
    _check_shapes(q, k, v)
    B, Hq, S, D = q.shape
    Hkv, T, Dv = k.shape[1], k.shape[2], v.shape[3]
    H = max(Hq, Hkv)
    if d_out.shape != (B, H, S, Dv):
        raise ValueError(f"d_out shape {d_out.shape} must be {(B, H, S, Dv)}")
    if scale is None:
        scale = 1.0 / math.sqrt(D)
    mask = visible_mask(S, T, causal=causal, alignment=alignment, window=window)
    any_visible = mask.any(axis=1)
    dq, dk, dv = np.zeros(q.shape), np.zeros(k.shape), np.zeros(v.shape)
    for b in range(B):
        for h in range(H):
            qh, kh = head_mapping(h, Hq, Hkv)
            scores = np.where(mask, (q[b, qh] @ k[b, kh].T) * scale, -np.inf)
            row_max = np.where(any_visible, scores.max(axis=1), 0.0)[:, None]
            e = np.where(mask, np.exp(scores - row_max), 0.0)
            denom = np.where(any_visible, e.sum(axis=1), 1.0)[:, None]
            p = e / denom                                   # (S, T)
            g = d_out[b, h]                                 # (S, Dv)
            dv[b, kh] += p.T @ g
            dp = g @ v[b, kh].T                             # (S, T)
            ds = p * (dp - (p * dp).sum(axis=1, keepdims=True))
            dq[b, qh] += scale * (ds @ k[b, kh])
            dk[b, kh] += scale * (ds.T @ q[b, qh])
    return dq, dk, dv


def compare(got, want, atol: float, rtol: float):
    """Checks kernel output ``got`` against ``want`` (float arrays, same
    shape) with |got - want| <= atol + rtol * max|want|.

    Returns (max_abs_err, tol, reasons): reasons is empty when the output
    passes; NaN (e.g. a NaN sentinel never overwritten) and infinities are
    reasons of their own, and the worst element is named when the error is
    too large."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    tol = atol + rtol * float(np.max(np.abs(want))) if want.size else atol
    reasons = []
    nan = np.isnan(got)
    if nan.any():
        reasons.append(f"{int(nan.sum())} NaN/unwritten outputs")
    if np.isinf(got).any():
        reasons.append(f"{int(np.isinf(got).sum())} infinite outputs")
    finite = np.isfinite(got)
    err = np.abs(np.where(finite, got, 0.0) - want)
    max_err = float(err.max()) if err.size else 0.0
    if not finite.all():
        max_err = float("nan") if nan.any() else float("inf")
    elif max_err > tol:
        idx = np.unravel_index(int(np.argmax(err)), err.shape)
        reasons.append("worst at [b,h,s,d]=%s got %.6g want %.6g" % (
            [int(i) for i in idx], got[idx], want[idx]))
    return max_err, tol, reasons
