"""Independent numpy reference for ``sqa.attention_layer`` (a whole layer).

Like :mod:`sqa_mlir.reference`, written for clarity and in float64, sharing
nothing with the compiler. The attention step itself is
:func:`sqa_mlir.reference.attention`.

Head configuration: H total heads, Hq query heads, Hkv kv heads, head dim dh,
d_model = H * dh, Hout = max(Hq, Hkv). Weights are row-major in the
``x @ W`` convention:

  W_q [d_model, Hq*dh]   W_k [d_model, Hkv*dh]   W_v [d_model, Hkv*dh]
  W_o [Hout*dh, d_model]
  b_q [Hq*dh]  b_k [Hkv*dh]  b_v [Hkv*dh]  b_o [d_model]   (each optional)

Inputs x [B, S, d_model]; memory [B, T, d_model] for cross-attention (keys
and values come from memory), otherwise keys and values come from x (T = S).

  1. q = x @ W_q + b_q -> [B, S, Hq, dh] -> [B, Hq, S, dh]; k, v likewise
     from memory-or-x with Hkv heads (column h*dh + j is head h, element j).
  2. RoPE (optional) on q and on k (k skipped with ``queries_only``), see
     :func:`rope`.
  3. a = reference.attention(q, k, v, ...) -> [B, Hout, S, dh].
  4. a -> [B, S, Hout*dh] (head-major), y = a @ W_o + b_o -> [B, S, d_model].

Precision (``dtype``): inputs and weights hold values of the element type
(pass them already rounded, e.g. through ``from_storage``). The library
accumulates in f32 and rounds q, k, v (after projection and RoPE) and the
attention output to the element type, then the final output. This reference
rounds q, k, v and the attention output at the same points (from float64
values) and returns the final output unrounded in float64; the remaining
differences, including the final rounding, are covered by
:func:`layer_tolerance`.
"""

from __future__ import annotations

import math

import numpy as np

from . import reference as R

ROPE_KINDS = ("rotary", "linear", "dynamic_ntk")


# ---------------------------------------------------------------------------
# Rounding to the element type (float64 -> nearest dtype value -> float64)
# ---------------------------------------------------------------------------

def round_to(x, dtype: str | None) -> np.ndarray:
    """Values of ``x`` rounded to ``dtype`` (f32: to float32; None: not
    rounded), as float64.

    float64 -> float32 -> bf16/f16 double-rounds; the float32 step is exact
    to 2^-24 relative, far below the tolerances used with it.
    """
    x = np.asarray(x, dtype=np.float64)
    if dtype is None:  # float64 throughout (finite-difference checks)
        return x
    if dtype == "f32":
        return x.astype(np.float32).astype(np.float64)
    return R.from_storage(R.to_storage(x, dtype), dtype)


# ---------------------------------------------------------------------------
# RoPE
# ---------------------------------------------------------------------------

def normalize_rope(rope):
    """A complete RoPE dict (kind, base, factor, original_max, offset,
    queries_only) from a partial one, or None. ``dynamic-ntk`` is accepted
    for ``dynamic_ntk``."""
    if rope is None:
        return None
    if isinstance(rope, str):
        rope = {"kind": rope}
    r = dict(rope)
    kind = str(r.get("kind", "rotary")).replace("-", "_")
    if kind not in ROPE_KINDS:
        raise ValueError(f"unknown RoPE kind {kind!r}; expected one of {ROPE_KINDS}")
    out = {
        "kind": kind,
        "base": float(r.get("base", 10000.0)),
        "factor": float(r.get("factor", 1.0)),
        "original_max": int(r.get("original_max", 2048)),
        "offset": int(r.get("offset", 0)),
        "queries_only": bool(r.get("queries_only", False)),
    }
    unknown = set(r) - set(out)
    if unknown:
        raise ValueError(f"unknown RoPE settings {sorted(unknown)}")
    if out["base"] <= 0:
        raise ValueError("RoPE base must be > 0")
    if kind in ("linear", "dynamic_ntk") and out["factor"] <= 0:
        raise ValueError("RoPE factor must be > 0")
    if kind == "dynamic_ntk" and out["original_max"] < 1:
        raise ValueError("RoPE original_max must be >= 1")
    return out


def dynamic_ntk_base(base: float, factor: float, original_max: int,
                     length: int, head_dim: int) -> float:
    """HF LlamaDynamicNTKScalingRotaryEmbedding's base for a sequence length.

    base * ((factor * L / original_max) - (factor - 1)) ** (dh / (dh - 2))
    when L > original_max, else base unchanged.
    """
    if length > original_max:
        return base * ((factor * length / original_max) - (factor - 1)) ** (
            head_dim / (head_dim - 2))
    return base


def rope(x_bhsd, positions, *, base: float = 10000.0) -> np.ndarray:
    """Rotary embedding, "rotate_half" convention (HF Llama, GPT-NeoX).

    ``x_bhsd`` [B, H, S, dh] (dh even); ``positions`` (S,) float positions
    of the rows (already divided by the linear factor, if any). For
    i < dh/2, with angle = p * base^(-2i/dh):

      out[i]        = x[i] * cos - x[i + dh/2] * sin
      out[i + dh/2] = x[i + dh/2] * cos + x[i] * sin
    """
    x = np.asarray(x_bhsd, dtype=np.float64)
    dh = x.shape[-1]
    if dh % 2:
        raise ValueError(f"RoPE needs an even head dim, got {dh}")
    half = dh // 2
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape != (x.shape[-2],):
        raise ValueError(f"positions shape {pos.shape} != ({x.shape[-2]},)")
    inv_freq = float(base) ** (-2.0 * np.arange(half, dtype=np.float64) / dh)
    angle = pos[:, None] * inv_freq[None, :]            # (S, dh/2)
    cos, sin = np.cos(angle), np.sin(angle)
    lo, hi = x[..., :half], x[..., half:]
    return np.concatenate([lo * cos - hi * sin, hi * cos + lo * sin], axis=-1)


def rope_positions_and_base(rope_cfg, rows: int, head_dim: int, S: int, T: int):
    """(positions, base) that ``rope_cfg`` gives a tensor with ``rows`` rows
    in a layer with S queries and T keys."""
    r = normalize_rope(rope_cfg)
    pos = r["offset"] + np.arange(rows, dtype=np.float64)
    base = r["base"]
    if r["kind"] == "linear":
        pos = pos / r["factor"]
    elif r["kind"] == "dynamic_ntk":
        length = r["offset"] + max(S, T)
        base = dynamic_ntk_base(base, r["factor"], r["original_max"], length,
                                head_dim)
    return pos, base


def apply_rope(x_bhsd, rope_cfg, *, S: int, T: int) -> np.ndarray:
    """:func:`rope` with the positions and base of a RoPE scheme."""
    x = np.asarray(x_bhsd, dtype=np.float64)
    pos, base = rope_positions_and_base(rope_cfg, x.shape[-2], x.shape[-1], S, T)
    return rope(x, pos, base=base)


# ---------------------------------------------------------------------------
# The layer
# ---------------------------------------------------------------------------

def parameter_counts(q_heads: int, kv_heads: int, head_dim: int, *,
                     total_heads: int | None = None, d_model: int | None = None,
                     biases=()) -> dict:
    """Parameter counts of one layer: W_q, W_k, W_v, W_o, the configured
    biases (``biases`` a subset of "qkvo"), "weights" (W_* only) and "total".

    d_model defaults to total_heads * head_dim, total_heads to
    max(q_heads, kv_heads).
    """
    if d_model is None:
        if total_heads is None:
            total_heads = max(q_heads, kv_heads)
        d_model = total_heads * head_dim
    hout = max(q_heads, kv_heads)
    counts = {
        "W_q": d_model * q_heads * head_dim,
        "W_k": d_model * kv_heads * head_dim,
        "W_v": d_model * kv_heads * head_dim,
        "W_o": hout * head_dim * d_model,
    }
    counts["weights"] = sum(counts.values())
    sizes = {"q": q_heads * head_dim, "k": kv_heads * head_dim,
             "v": kv_heads * head_dim, "o": d_model}
    for b in biases:
        counts["b_" + b] = sizes[b]
    counts["total"] = counts["weights"] + sum(sizes[b] for b in biases)
    return counts


def _heads(a, n_heads, head_dim):
    """[B, L, n*dh] -> [B, n, L, dh]."""
    B, L, _ = a.shape
    return a.reshape(B, L, n_heads, head_dim).transpose(0, 2, 1, 3)


def _check_shape(what, a, shape):
    if a is not None and tuple(a.shape) != tuple(shape):
        raise ValueError(f"{what} has shape {tuple(a.shape)}, expected {tuple(shape)}")


def attention_layer(x, w_q, w_k, w_v, w_o, *, memory=None, b_q=None, b_k=None,
                    b_v=None, b_o=None, q_heads: int, kv_heads: int,
                    head_dim: int, rope=None, causal: bool = False,
                    alignment: str = "top_left", window=(-1, -1), scale=None,
                    dtype: str = "f32", return_intermediates: bool = False):
    """float64 reference of ``sqa.attention_layer``; returns y [B, S, d_model].

    Pass values the library sees (already rounded to ``dtype``). With
    ``return_intermediates`` returns (y, dict(q, k, v, attn)) where q/k/v are
    BHSD after RoPE and rounding and attn is [B, S, Hout*dh] after rounding.
    """
    if dtype is not None and dtype not in R.DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}")
    f64 = lambda a: None if a is None else np.asarray(a, dtype=np.float64)  # noqa: E731
    x, memory = f64(x), f64(memory)
    w_q, w_k, w_v, w_o = f64(w_q), f64(w_k), f64(w_v), f64(w_o)
    b_q, b_k, b_v, b_o = f64(b_q), f64(b_k), f64(b_v), f64(b_o)
    Hq, Hkv, dh = int(q_heads), int(kv_heads), int(head_dim)
    Hout = max(Hq, Hkv)
    if x.ndim != 3:
        raise ValueError("x must be [B, S, d_model]")
    B, S, d_model = x.shape
    src = x if memory is None else memory
    if memory is not None and (memory.ndim != 3 or memory.shape[0] != B
                               or memory.shape[2] != d_model):
        raise ValueError(f"memory shape {memory.shape} does not match x {x.shape}")
    T = src.shape[1]
    _check_shape("w_q", w_q, (d_model, Hq * dh))
    _check_shape("w_k", w_k, (d_model, Hkv * dh))
    _check_shape("w_v", w_v, (d_model, Hkv * dh))
    _check_shape("w_o", w_o, (Hout * dh, d_model))
    _check_shape("b_q", b_q, (Hq * dh,))
    _check_shape("b_k", b_k, (Hkv * dh,))
    _check_shape("b_v", b_v, (Hkv * dh,))
    _check_shape("b_o", b_o, (d_model,))

    def project(inp, w, b):
        y = inp @ w
        return y if b is None else y + b

    q = _heads(project(x, w_q, b_q), Hq, dh)       # [B, Hq, S, dh]
    k = _heads(project(src, w_k, b_k), Hkv, dh)    # [B, Hkv, T, dh]
    v = _heads(project(src, w_v, b_v), Hkv, dh)
    r = normalize_rope(rope)
    if r is not None:
        q = apply_rope(q, r, S=S, T=T)
        if not r["queries_only"]:
            k = apply_rope(k, r, S=S, T=T)
    q, k, v = (round_to(a, dtype) for a in (q, k, v))
    a = R.attention(q, k, v, scale=scale, causal=causal, alignment=alignment,
                    window=window)                 # [B, Hout, S, dh]
    a = round_to(a.transpose(0, 2, 1, 3).reshape(B, S, Hout * dh), dtype)
    y = project(a, w_o, b_o)
    if return_intermediates:
        return y, {"q": q, "k": k, "v": v, "attn": a}
    return y


def rope_transpose(g_bhsd, positions, base: float = 10000.0) -> np.ndarray:
    """The transpose (adjoint) of :func:`rope`: each pair rotated by the
    negative angle. For a gradient g of rope's output, the gradient of its
    input:

      out[i]        = g[i] * cos + g[i + dh/2] * sin
      out[i + dh/2] = g[i + dh/2] * cos - g[i] * sin
    """
    g = np.asarray(g_bhsd, dtype=np.float64)
    dh = g.shape[-1]
    half = dh // 2
    pos = np.asarray(positions, dtype=np.float64)
    inv_freq = float(base) ** (-2.0 * np.arange(half, dtype=np.float64) / dh)
    angle = pos[:, None] * inv_freq[None, :]
    cos, sin = np.cos(angle), np.sin(angle)
    lo, hi = g[..., :half], g[..., half:]
    return np.concatenate([lo * cos + hi * sin, hi * cos - lo * sin], axis=-1)


def _merge(a_bhsd):
    """[B, n, L, dh] -> [B, L, n*dh] (inverse of _heads)."""
    B, n, L, dh = a_bhsd.shape
    return a_bhsd.transpose(0, 2, 1, 3).reshape(B, L, n * dh)


def attention_layer_backward(x, w_q, w_k, w_v, w_o, d_y, *, memory=None,
                             b_q=None, b_k=None, b_v=None, b_o=None,
                             q_heads: int, kv_heads: int, head_dim: int,
                             rope=None, causal: bool = False,
                             alignment: str = "top_left", window=(-1, -1),
                             scale=None, dtype: str | None = None) -> dict:
    """float64 gradients of ``sum(attention_layer(...) * d_y)``.

    Returns a dict with "x", "w_q", "w_k", "w_v", "w_o", "memory" (with
    memory) and "b_q" .. "b_o" (for the biases given), each shaped as its
    input. Chain rule through :func:`attention_layer`'s steps: output
    projection (dW_o = a^T d_y, db_o = sum d_y, da = d_y W_o^T), the
    attention (:func:`sqa_mlir.reference.attention_backward`), RoPE's
    transpose (:func:`rope_transpose`), and the projections (dW = X^T dP,
    db = sum dP, dX = sum over the q/k/v paths that read X of dP W^T).

    ``dtype`` (f32/f16/bf16) rounds q, k, v and the attention output as the
    forward does (the library recomputes them); None (default) rounds
    nothing: the exact derivative, which finite differences can check.
    """
    f64 = lambda a: None if a is None else np.asarray(a, dtype=np.float64)  # noqa: E731
    x, memory, d_y = f64(x), f64(memory), f64(d_y)
    w_q, w_k, w_v, w_o = f64(w_q), f64(w_k), f64(w_v), f64(w_o)
    b_q, b_k, b_v, b_o = f64(b_q), f64(b_k), f64(b_v), f64(b_o)
    Hq, Hkv, dh = int(q_heads), int(kv_heads), int(head_dim)
    Hout = max(Hq, Hkv)
    B, S, d_model = x.shape
    src = x if memory is None else memory
    T = src.shape[1]
    if d_y.shape != x.shape:
        raise ValueError(f"d_y shape {d_y.shape} must be {x.shape}")
    rnd = lambda a: round_to(a, dtype)  # noqa: E731

    def project(inp, w, b):
        y = inp @ w
        return y if b is None else y + b

    q = _heads(project(x, w_q, b_q), Hq, dh)
    k = _heads(project(src, w_k, b_k), Hkv, dh)
    v = _heads(project(src, w_v, b_v), Hkv, dh)
    r = normalize_rope(rope)
    rope_k = r is not None and not r["queries_only"]
    if r is not None:
        q = apply_rope(q, r, S=S, T=T)
        if rope_k:
            k = apply_rope(k, r, S=S, T=T)
    q, k, v = rnd(q), rnd(k), rnd(v)
    mask = dict(scale=scale, causal=causal, alignment=alignment, window=window)
    a = rnd(_merge(R.attention(q, k, v, **mask)))          # [B, S, Hout*dh]

    grads = {"w_o": np.einsum("bsi,bsj->ij", a, d_y)}
    if b_o is not None:
        grads["b_o"] = d_y.sum(axis=(0, 1))
    d_a = _heads(d_y @ w_o.T, Hout, dh)
    dq, dk, dv = R.attention_backward(q, k, v, d_a, **mask)
    if r is not None:
        dq = rope_transpose(dq, *rope_positions_and_base(r, S, dh, S, T))
        if rope_k:
            dk = rope_transpose(dk, *rope_positions_and_base(r, T, dh, S, T))
    dQ, dK, dV = _merge(dq), _merge(dk), _merge(dv)
    grads["w_q"] = np.einsum("bsi,bsj->ij", x, dQ)
    grads["w_k"] = np.einsum("bsi,bsj->ij", src, dK)
    grads["w_v"] = np.einsum("bsi,bsj->ij", src, dV)
    for name, bias, g in (("b_q", b_q, dQ), ("b_k", b_k, dK), ("b_v", b_v, dV)):
        if bias is not None:
            grads[name] = g.sum(axis=(0, 1))
    d_src = dK @ w_k.T + dV @ w_v.T
    grads["x"] = dQ @ w_q.T
    if memory is None:
        grads["x"] = grads["x"] + d_src
    else:
        grads["memory"] = d_src
    return grads


# ---------------------------------------------------------------------------
# Tolerance
# ---------------------------------------------------------------------------

# (atol, rtol) per element type; see layer_tolerance.
LAYER_TOLERANCES = {
    "f32": (1e-5, 2e-5),
    "f16": (R.EPSILON["f16"] / 64, 2 * R.EPSILON["f16"]),
    "bf16": (R.EPSILON["bf16"] / 64, 2 * R.EPSILON["bf16"]),
}


def layer_tolerance(y_ref, attn_ref, w_o, b_o=None, *, dtype: str = "f32",
                    max_position: float = 0.0) -> np.ndarray:
    """Element-wise tolerance [B, S, d_model] for a library output.

      tol = atol + rtol * (|a| @ |W_o| + |b_o| + |y|)
            (+ for f32: 2^-22 * max_position * (|a| @ |W_o|))

    Why: the library rounds q, k, v and the attention output a at the same
    points as the reference, but from f32 rather than float64 values, so a
    value close to a rounding boundary can round the other way: one ulp
    (<= eps * |a_j|) in a_j directly, and q/k/v elements that round the
    other way move a by up to about another ulp. The output projection
    turns |delta a_j| <= 2 eps |a_j| into |delta y_i| <= 2 eps (|a| @ |W_o|)_i,
    hence rtol = 2 eps for f16/bf16; the final rounding of y adds eps/2 |y|,
    covered by the rtol * |y| term. For f32 the differences are f32 accumulation
    (projections of length d_model, softmax): rtol = 2e-5, about 170 f32
    ulps, and RoPE angles p * inv_freq computed in f32 lose up to
    ~p * 2^-24 radians, hence the max_position term. atol covers outputs near 0.
    """
    atol, rtol = LAYER_TOLERANCES[dtype]
    mag = np.abs(np.asarray(attn_ref, dtype=np.float64)) @ np.abs(
        np.asarray(w_o, dtype=np.float64))
    if b_o is not None:
        bias = np.abs(np.asarray(b_o, dtype=np.float64))
    else:
        bias = 0.0
    tol = atol + rtol * (mag + bias + np.abs(y_ref))
    if dtype == "f32" and max_position:
        tol = tol + 2.0**-22 * float(max_position) * mag
    return tol
