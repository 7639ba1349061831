"""PyTorch ops over sqa-aot libraries: a drop-in for
``scaled_dot_product_attention`` with any query/key-value head counts.

  import torch
  from sqa_mlir.torch import attention
  out = attention(q, k, v, causal="top_left")   # q [B, 8, S, 64], k/v [B, 4, T, 64]

Heads follow SDPA's ``enable_gqa=True``: with Hq >= Hkv (Hq a multiple of
Hkv) query head h uses key/value head h // (Hq // Hkv); with Hkv > Hq
(reverse SQA, which SDPA lacks) the output has Hkv heads and head h uses
query head h // (Hkv // Hq). ``causal`` is None, "top_left" (SDPA's
``is_causal``) or "bottom_right"; ``window`` (left, right) keeps keys within
that many positions of the query's diagonal (-1: unbounded); ``scale``
defaults to 1/sqrt(head_dim); ``layout`` "bhsd" ([B, H, S, D], SDPA's) or
"bshd" ([B, S, H, D]).

Each configuration (heads, dims, dtype, mask, scale, layout, device) is
compiled once by ``sqa-aot`` through :func:`sqa_mlir.compile`'s on-disk
cache. CPU tensors go through NAME_forward_strided, so views (BSHD/BHSD
transposes, q/k/v sliced from a fused projection) reach the kernel without
copies. Gradients use the library's NAME_forward_lse/NAME_backward when it
exports them (contiguous operands; views are copied for that path). CUDA
tensors go through ``--target cuda`` libraries on the current stream,
gradients too (their NAME_forward_lse/NAME_backward take the stream;
compiles, unmeasured on a GPU).

CPU calls run the library's OpenMP (libomp) team on torch.get_num_threads()
threads whose workers sleep right after the call (KMP_BLOCKTIME 0 unless
set), so they do not spin against PyTorch's own OpenMP pool (libgomp).

The op is ``torch.ops.sqa_mlir.attention_forward`` (a
``torch.library.custom_op`` with a fake kernel, so ``torch.compile`` traces
it without graph breaks) and ``torch.ops.sqa_mlir.attention_backward``.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
from typing import List, Optional, Tuple

import torch

from . import aot, compiler

__all__ = ["BackwardUnavailable", "SQALayer", "attention", "backward_available",
           "layer_forward", "library_for",
           "sdpa_reference"]

_DTYPES = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
_CAUSAL = (None, "top_left", "bottom_right")
_LAYOUTS = ("bhsd", "bshd")


class BackwardUnavailable(NotImplementedError):
    """The configuration's library has no NAME_forward_lse/NAME_backward."""


class _Kernels:
    """One loaded library with the entry points this module calls."""

    def __init__(self, library, strided: bool):
        self.library = library
        self.name = library.name
        lib = library.lib
        self.forward_strided = library._forward_strided if strided else None
        self.forward = library._forward
        # CUDA libraries' training entries take the stream last.
        self.cuda = isinstance(library, aot.CUDAAttentionLibrary)
        stream = [ctypes.c_void_p] if self.cuda else []
        self.forward_lse = self._optional(
            lib, "forward_lse",
            [ctypes.c_void_p] * 5 + [ctypes.c_int64] * 3 + stream)
        self.backward = self._optional(
            lib, "backward", [ctypes.c_void_p] * 9 + [ctypes.c_int64] * 3 + stream)

    def stream(self, t) -> tuple:
        """The trailing stream argument of a CUDA entry (the current stream
        of ``t``'s device), or nothing for a CPU library."""
        if not self.cuda:
            return ()
        return (torch.cuda.current_stream(t.device).cuda_stream,)

    def _optional(self, lib, suffix, argtypes):
        fn = getattr(lib, f"{self.name}_{suffix}", None)
        if fn is not None:
            fn.restype = ctypes.c_int
            fn.argtypes = argtypes
        return fn

    def check(self, what: str, status: int) -> None:
        if status != aot.SQA_OK:
            detail = self.library.error_string(status)
            if hasattr(self.library, "last_error"):
                detail += f" ({self.library.last_error()})"
            raise RuntimeError(f"{self.name}_{what}: status {status}: {detail}")


_libraries = {}
_lock = threading.Lock()


class _OpenMP:
    """The LLVM OpenMP runtime (libomp) the CPU libraries run their threads
    on, told how to share the cores with PyTorch's own runtime.

    PyTorch's CPU ops run on GNU libgomp; the libraries on libomp: two thread
    pools on the same cores. libomp's workers spin for 200 ms after each
    parallel region (KMP_BLOCKTIME), so every torch op in that window shares
    a core with a spinning thread; with a few cores a training step loses
    more time that way than the attention kernels take. Before each kernel
    call the calling thread's team is sized to torch.get_num_threads() (so
    torch.set_num_threads covers both pools) and its workers sleep right
    after the region (KMP_BLOCKTIME=0), unless the user set KMP_BLOCKTIME.
    """

    def __init__(self):
        self.lib = None
        for name in ("libomp.so.5", "libomp.so"):
            try:
                # Only the copy the libraries already loaded, never a new one.
                self.lib = ctypes.CDLL(name, mode=os.RTLD_NOLOAD | os.RTLD_GLOBAL)
                break
            except OSError:
                continue
        if self.lib is not None:
            self.lib.omp_set_num_threads.argtypes = [ctypes.c_int]
            self.lib.kmp_set_blocktime.argtypes = [ctypes.c_int]
        self.blocktime = None if "KMP_BLOCKTIME" in os.environ else 0

    def prepare(self) -> None:
        if self.lib is None:
            return
        self.lib.omp_set_num_threads(torch.get_num_threads())
        if self.blocktime is not None:
            self.lib.kmp_set_blocktime(self.blocktime)


_openmp: Optional[_OpenMP] = None


def _prepare_openmp() -> None:
    """_OpenMP.prepare for CPU calls (the runtime found once a library is
    loaded)."""
    global _openmp
    if _openmp is None:
        _openmp = _OpenMP()
    _openmp.prepare()


def _cuda_chip(device: torch.device) -> str:
    major, minor = torch.cuda.get_device_capability(device)
    return f"sm_{major}{minor}"


def _options(device: torch.device, dtype: torch.dtype, q_heads: int, kv_heads: int,
             head_dim: int, value_head_dim: int, causal: Optional[str],
             window: Optional[Tuple[int, int]], scale: Optional[float],
             layout: str) -> dict:
    opts = dict(q_heads=q_heads, kv_heads=kv_heads, head_dim=head_dim,
                value_head_dim=value_head_dim, dtype=_DTYPES[dtype],
                causal=causal, window=window, scale=scale, layout=layout)
    if device.type == "cuda":
        opts.update(target="cuda", chip=_cuda_chip(device))
    opts["name"] = aot.library_name("sqa_torch", **opts)
    return {k: v for k, v in opts.items() if v is not None}


def _load(options: dict) -> _Kernels:
    key = tuple(sorted(options.items()))
    with _lock:
        kernels = _libraries.get(key)
        if kernels is None:
            path, _ = compiler.build_cached(options)
            if options.get("target") == "cuda":
                library = aot.CUDAAttentionLibrary(path, options["name"],
                                                   options["dtype"])
                kernels = _Kernels(library, strided=False)
            else:
                library = aot.AttentionLibrary(path, options["name"], options["dtype"])
                kernels = _Kernels(library, strided=library.has_strided)
            _libraries[key] = kernels
    return kernels


def _bhsd(t: torch.Tensor, layout: str) -> torch.Tensor:
    """[B, H, S, D] view of a tensor in ``layout`` (no copy)."""
    return t if layout == "bhsd" else t.transpose(1, 2)


def _check(q, k, v, causal, window, layout):
    """Shapes as (B, Hq, Hkv, S, T, D, Dv, Hout); raises on bad input."""
    for what, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{what} must be a torch.Tensor, not {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{what} must have rank 4, got shape {tuple(t.shape)}")
    if not q.dtype == k.dtype == v.dtype or q.dtype not in _DTYPES:
        raise TypeError(f"q, k, v must share one dtype of float32, float16, "
                        f"bfloat16; got {q.dtype}, {k.dtype}, {v.dtype}")
    if not q.device == k.device == v.device:
        raise ValueError(f"q, k, v are on different devices: {q.device}, {k.device}, "
                         f"{v.device}")
    if q.device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {q.device}")
    if causal not in _CAUSAL:
        raise ValueError(f"causal must be one of {_CAUSAL}, got {causal!r}")
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
    if window is not None and len(window) != 2:
        raise ValueError(f"window must be (left, right), got {window!r}")
    qb, kb, vb = (_bhsd(t, layout) for t in (q, k, v))
    B, Hq, S, D = qb.shape
    Bk, Hkv, T, Dk = kb.shape
    Bv, Hv, Tv, Dv = vb.shape
    if not B == Bk == Bv:
        raise ValueError(f"q, k, v batch sizes differ: {B}, {Bk}, {Bv}")
    if Hv != Hkv or Tv != T:
        raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} disagree on "
                         f"heads or length ({layout})")
    if Dk != D:
        raise ValueError(f"q and k head dims differ: {D}, {Dk}")
    if Hq < 1 or Hkv < 1 or (Hq % Hkv and Hkv % Hq):
        raise ValueError(f"query heads ({Hq}) and key/value heads ({Hkv}) must "
                         f"divide one another")
    return B, Hq, Hkv, S, T, D, Dv, max(Hq, Hkv)


# (device, dtype, Hq, Hkv, D, Dv, causal, window, scale, layout) -> kernels:
# the per-call lookup, without building option dicts and names.
_by_shape = {}


def _kernels(q, Hq, Hkv, D, Dv, causal, window, scale, layout) -> _Kernels:
    window = None if window is None else (int(window[0]), int(window[1]))
    scale = None if scale is None else float(scale)
    key = (q.device, q.dtype, Hq, Hkv, D, Dv, causal, window, scale, layout)
    kernels = _by_shape.get(key)
    if kernels is None:
        kernels = _load(_options(q.device, q.dtype, Hq, Hkv, D, Dv, causal, window,
                                 scale, layout))
        _by_shape[key] = kernels
    return kernels


def library_for(q, k, v, *, causal=None, window=None, scale=None,
                layout="bhsd") -> _Kernels:
    """The loaded library :func:`attention` calls for these operands."""
    B, Hq, Hkv, S, T, D, Dv, _ = _check(q, k, v, causal, window, layout)
    return _kernels(q, Hq, Hkv, D, Dv, causal, window, scale, layout)


def _strides(t: torch.Tensor):
    s = t.stride()
    return aot._STRIDES(s[0], s[1], s[2])


def _unit_inner(t: torch.Tensor) -> torch.Tensor:
    # The kernels read the head dim contiguously (as FlashAttention does).
    return t if t.stride(-1) == 1 or t.size(-1) == 1 else t.contiguous()


def _out_shape(B, H, S, Dv, layout):
    return (B, H, S, Dv) if layout == "bhsd" else (B, S, H, Dv)


def _window_list(window) -> Optional[List[int]]:
    return None if window is None else [int(window[0]), int(window[1])]


@torch.library.custom_op("sqa_mlir::attention_forward", mutates_args=())
def attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      causal: Optional[str], window: Optional[List[int]],
                      scale: Optional[float], layout: str,
                      need_lse: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """(out, lse): out in ``layout``; lse [B, Hout, S] float32 when
    ``need_lse`` (for the backward), else an empty tensor."""
    B, Hq, Hkv, S, T, D, Dv, H = _check(q, k, v, causal, window, layout)
    out = torch.empty(_out_shape(B, H, S, Dv, layout), dtype=q.dtype, device=q.device)
    lse = torch.empty((B, H, S) if need_lse else (0,), dtype=torch.float32,
                      device=q.device)
    if B == 0 or S == 0:
        return out, lse
    if T == 0:
        raise ValueError("k and v have no positions (kv_len 0)")
    kernels = _kernels(q, Hq, Hkv, D, Dv, causal, window, scale, layout)
    if q.device.type == "cpu":
        _prepare_openmp()
    if need_lse:
        if kernels.forward_lse is None:
            raise BackwardUnavailable(
                f"{kernels.name} has no {kernels.name}_forward_lse: this sqa-aot "
                f"builds no backward libraries (issue 13)")
        q, k, v = (t.contiguous() for t in (q, k, v))
        status = kernels.forward_lse(q.data_ptr(), k.data_ptr(), v.data_ptr(),
                                     out.data_ptr(), lse.data_ptr(), B, S, T,
                                     *kernels.stream(q))
        kernels.check("forward_lse", status)
    elif kernels.forward_strided is not None:
        qb, kb, vb = (_unit_inner(_bhsd(t, layout)) for t in (q, k, v))
        ob = _bhsd(out, layout)
        status = kernels.forward_strided(qb.data_ptr(), _strides(qb), kb.data_ptr(),
                                         _strides(kb), vb.data_ptr(), _strides(vb),
                                         ob.data_ptr(), _strides(ob), B, S, T)
        kernels.check("forward_strided", status)
    elif q.device.type == "cuda":
        q, k, v = (t.contiguous() for t in (q, k, v))
        stream = torch.cuda.current_stream(q.device).cuda_stream
        status = kernels.library.forward_raw(q.data_ptr(), k.data_ptr(), v.data_ptr(),
                                             out.data_ptr(), B, S, T, stream)
        kernels.check("forward", status)
    else:
        q, k, v = (t.contiguous() for t in (q, k, v))
        status = kernels.forward(q.data_ptr(), k.data_ptr(), v.data_ptr(),
                                 out.data_ptr(), B, S, T)
        kernels.check("forward", status)
    return out, lse


@attention_forward.register_fake
def _(q, k, v, causal, window, scale, layout, need_lse):
    B, Hq, Hkv, S, T, D, Dv, H = _check(q, k, v, causal, window, layout)
    out = q.new_empty(_out_shape(B, H, S, Dv, layout))
    lse = q.new_empty((B, H, S) if need_lse else (0,), dtype=torch.float32)
    return out, lse


@torch.library.custom_op("sqa_mlir::attention_backward", mutates_args=())
def attention_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       out: torch.Tensor, d_out: torch.Tensor, lse: torch.Tensor,
                       causal: Optional[str], window: Optional[List[int]],
                       scale: Optional[float], layout: str
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv) through the library's NAME_backward."""
    B, Hq, Hkv, S, T, D, Dv, H = _check(q, k, v, causal, window, layout)
    q, k, v, out, d_out, lse = (t.contiguous() for t in (q, k, v, out, d_out, lse))
    dq, dk, dv = (torch.empty_like(t) for t in (q, k, v))
    if B == 0 or S == 0:
        return dq.zero_(), dk.zero_(), dv.zero_()
    kernels = _kernels(q, Hq, Hkv, D, Dv, causal, window, scale, layout)
    if kernels.backward is None:
        raise BackwardUnavailable(f"{kernels.name} has no {kernels.name}_backward "
                                  f"(issue 13)")
    if q.device.type == "cpu":
        _prepare_openmp()
    status = kernels.backward(q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(),
                              d_out.data_ptr(), lse.data_ptr(), dq.data_ptr(),
                              dk.data_ptr(), dv.data_ptr(), B, S, T,
                              *kernels.stream(q))
    kernels.check("backward", status)
    return dq, dk, dv


@attention_backward.register_fake
def _(q, k, v, out, d_out, lse, causal, window, scale, layout):
    return (torch.empty_like(q, memory_format=torch.contiguous_format),
            torch.empty_like(k, memory_format=torch.contiguous_format),
            torch.empty_like(v, memory_format=torch.contiguous_format))


def _setup_context(ctx, inputs, output):
    q, k, v, causal, window, scale, layout, need_lse = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse)
    ctx.config = (causal, window, scale, layout, need_lse)


def _backward(ctx, d_out, d_lse):
    q, k, v, out, lse = ctx.saved_tensors
    causal, window, scale, layout, need_lse = ctx.config
    if not need_lse:
        raise BackwardUnavailable(
            "sqa_mlir.torch: the forward ran without lse (call attention() with "
            "grad enabled and inputs that require grad)")
    dq, dk, dv = attention_backward(q, k, v, out, d_out, lse, causal, window, scale,
                                    layout)
    return dq, dk, dv, None, None, None, None, None


attention_forward.register_autograd(_backward, setup_context=_setup_context)


def backward_available(q, k, v, **config) -> bool:
    """Whether the library for these operands has forward_lse and backward."""
    kernels = library_for(q, k, v, **config)
    return kernels.forward_lse is not None and kernels.backward is not None


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
              causal=None, window=None,
              scale: Optional[float] = None, layout: str = "bhsd") -> torch.Tensor:
    """softmax(q k^T * scale + mask) v with SDPA's head conventions (see the
    module docstring); returns [B, max(Hq, Hkv), S, Dv] (bshd: [B, S, H, Dv])."""
    # SDPA's is_causal spelling: True is top-left.
    if causal is True:
        causal = "top_left"
    elif causal is False:
        causal = None
    if causal not in _CAUSAL:
        raise ValueError(f"causal must be one of {_CAUSAL} (or a bool), got {causal!r}")
    need_lse = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad
                                            or v.requires_grad)
    out, _ = attention_forward(q, k, v, causal, _window_list(window),
                               None if scale is None else float(scale), layout,
                               need_lse)
    return out


def sdpa_reference(q, k, v, *, causal=None, window=None, scale=None, layout="bhsd"):
    """The same attention through ``torch.nn.functional.
    scaled_dot_product_attention`` (an explicit mask for windows and
    bottom-right causal; heads repeated for reverse SQA): what
    :func:`attention` is a drop-in for."""
    qb, kb, vb = (_bhsd(t, layout) for t in (q, k, v))
    Hq, Hkv, S, T = qb.shape[1], kb.shape[1], qb.shape[2], kb.shape[2]
    if Hkv > Hq:
        qb = qb.repeat_interleave(Hkv // Hq, dim=1)
    mask = None
    if causal is not None or window is not None:
        left, right = window if window is not None else (-1, -1)
        i = torch.arange(S, device=q.device)[:, None]
        j = torch.arange(T, device=q.device)[None, :]
        diag = i + (T - S if causal == "bottom_right" else 0)
        mask = torch.ones(S, T, dtype=torch.bool, device=q.device)
        if causal is not None:
            mask &= j <= diag
        if left >= 0:
            mask &= j >= diag - left
        if right >= 0:
            mask &= j <= diag + right
    out = torch.nn.functional.scaled_dot_product_attention(
        qb, kb, vb, attn_mask=mask, scale=scale, enable_gqa=Hq != Hkv)
    return _bhsd(out, layout)


# ---------------------------------------------------------------------------
# The whole attention layer
# ---------------------------------------------------------------------------

_BIASES = ("q", "k", "v", "o")


def _layer_kernels(options: dict):
    key = ("layer",) + tuple(sorted(options.items()))
    with _lock:
        library = _libraries.get(key)
        if library is None:
            path, _ = compiler.build_cached(options)
            library = aot.LayerLibrary(path, options["name"], options["dtype"])
            _libraries[key] = library
    return library


@torch.library.custom_op("sqa_mlir::layer_forward", mutates_args=())
def layer_forward(x: torch.Tensor, memory: Optional[torch.Tensor], w_q: torch.Tensor,
                  w_k: torch.Tensor, w_v: torch.Tensor, w_o: torch.Tensor,
                  b_q: Optional[torch.Tensor], b_k: Optional[torch.Tensor],
                  b_v: Optional[torch.Tensor], b_o: Optional[torch.Tensor],
                  config: str) -> torch.Tensor:
    """NAME_layer_forward: y [B, S, d_model] from x (and memory); weights in
    nn.Linear's [out, in] form; ``config`` the JSON of the sqa-aot layer
    options. Forward only (SQALayer differentiates the composite path)."""
    options = json.loads(config)
    if x.device.type != "cpu":
        raise ValueError(f"layer libraries run on the CPU; x is on {x.device}")
    x = x.contiguous()
    out = torch.empty_like(x)
    B, S, _ = x.shape
    if B == 0 or S == 0:
        return out
    memory = None if memory is None else memory.contiguous()
    # The library computes x @ W with W [in, out] row-major.
    w_q, w_k, w_v, w_o = (w.t().contiguous() for w in (w_q, w_k, w_v, w_o))
    biases = [None if b is None else b.contiguous() for b in (b_q, b_k, b_v, b_o)]
    library = _layer_kernels(options)
    _prepare_openmp()
    ptr = lambda t: None if t is None else t.data_ptr()  # noqa: E731
    status = library.layer_forward_raw(
        ptr(x), ptr(memory), ptr(w_q), ptr(w_k), ptr(w_v), ptr(w_o),
        *(ptr(b) for b in biases), ptr(out), B, S,
        0 if memory is None else memory.shape[1])
    if status != aot.SQA_OK:
        raise RuntimeError(f"{library.name}_layer_forward: status {status}: "
                           f"{library.error_string(status)}")
    return out


@layer_forward.register_fake
def _(x, memory, w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, config):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


class SQALayer(torch.nn.Module):
    """A whole attention layer: q/k/v projections (optional biases), RoPE,
    attention with any head counts, output projection; the parameters are
    ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` (``nn.Linear``), so a
    state dict of the same layer written with nn.Linear + SDPA loads as is.

    d_model = heads * head_dim (``heads`` the baseline head count), q_heads
    and kv_heads as in :func:`attention`; ``rope`` None, a kind ("rotary",
    "linear", "dynamic_ntk") or a dict as
    :func:`sqa_mlir.layer_reference.normalize_rope` takes; ``bias`` a subset
    of "qkvo"; ``cross_attention``: keys and values from ``memory``.

    Without gradients the forward is one call of the compiled layer library
    (``sqa-aot --layer``); when gradients are needed it is the same layer
    composed of the projections, RoPE and :func:`attention` (whose backward
    comes from the attention library).
    """

    def __init__(self, heads: int, q_heads: int, kv_heads: int, head_dim: int, *,
                 rope=None, bias="", cross_attention: bool = False, causal=None,
                 window=None, scale: Optional[float] = None, device=None,
                 dtype=None):
        super().__init__()
        from . import layer_reference
        if bias is True:
            bias = _BIASES
        bias = "".join(b for b in _BIASES if b in set(bias or ""))
        self.heads, self.q_heads, self.kv_heads = heads, q_heads, kv_heads
        self.head_dim, self.out_heads = head_dim, max(q_heads, kv_heads)
        self.d_model = heads * head_dim
        self.rope = layer_reference.normalize_rope(rope)
        self.bias, self.cross_attention = bias, cross_attention
        self.causal = "top_left" if causal is True else (None if causal is False
                                                          else causal)
        if self.causal not in _CAUSAL:
            raise ValueError(f"causal must be one of {_CAUSAL}, got {causal!r}")
        self.window = None if window is None else (int(window[0]), int(window[1]))
        self.scale = None if scale is None else float(scale)
        kw = dict(device=device, dtype=dtype)
        d = self.d_model
        self.q_proj = torch.nn.Linear(d, q_heads * head_dim, bias="q" in bias, **kw)
        self.k_proj = torch.nn.Linear(d, kv_heads * head_dim, bias="k" in bias, **kw)
        self.v_proj = torch.nn.Linear(d, kv_heads * head_dim, bias="v" in bias, **kw)
        self.out_proj = torch.nn.Linear(self.out_heads * head_dim, d, bias="o" in bias,
                                        **kw)
        # The layer library's options per dtype, made here rather than in
        # forward so that torch.compile traces no JSON.
        self._configs = {dt: self._options(dt) for dt in _DTYPES}

    def _options(self, dtype: torch.dtype) -> str:
        if dtype not in _DTYPES:
            raise TypeError(f"unsupported dtype {dtype}")
        opts = dict(layer=True, heads=self.heads, q_heads=self.q_heads,
                    kv_heads=self.kv_heads, head_dim=self.head_dim,
                    dtype=_DTYPES[dtype], causal=self.causal, window=self.window,
                    scale=self.scale, bias=",".join(self.bias) or None,
                    cross_attention=self.cross_attention or None)
        if self.rope is not None:
            r = self.rope
            opts.update(rope=r["kind"], rope_base=r["base"], rope_factor=r["factor"],
                        rope_original_max=r["original_max"], rope_offset=r["offset"],
                        rope_queries_only=r["queries_only"] or None)
        opts = {k: v for k, v in opts.items() if v is not None}
        if "window" in opts:
            opts["window"] = list(opts["window"])
        opts["name"] = aot.library_name("sqa_torch_layer", **opts)
        return json.dumps(opts, sort_keys=True)

    def _apply_rope(self, t: torch.Tensor, S: int, T: int) -> torch.Tensor:
        """rotate_half RoPE of a [B, H, L, dh] tensor (positions and base as
        :func:`sqa_mlir.layer_reference.rope_positions_and_base`)."""
        from . import layer_reference
        pos, base = layer_reference.rope_positions_and_base(
            self.rope, t.shape[2], self.head_dim, S, T)
        half = self.head_dim // 2
        inv = base ** (-2.0 * torch.arange(half, dtype=torch.float64) / self.head_dim)
        angle = torch.as_tensor(pos, dtype=torch.float64)[:, None] * inv[None, :]
        cos = angle.cos().to(device=t.device, dtype=t.dtype)
        sin = angle.sin().to(device=t.device, dtype=t.dtype)
        lo, hi = t[..., :half], t[..., half:]
        return torch.cat([lo * cos - hi * sin, hi * cos + lo * sin], dim=-1)

    def composite(self, x: torch.Tensor, memory: Optional[torch.Tensor] = None):
        """The layer from nn.Linear projections, RoPE and :func:`attention`."""
        B, S, _ = x.shape
        src = x if memory is None else memory
        T = src.shape[1]
        q = self.q_proj(x).view(B, S, self.q_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(src).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(src).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        if self.rope is not None:
            q = self._apply_rope(q, S, T)
            if not self.rope["queries_only"]:
                k = self._apply_rope(k, S, T)
        a = self.attend(q, k, v)
        return self.out_proj(a.transpose(1, 2).reshape(B, S, -1))

    def attend(self, q, k, v):
        """The attention step of :meth:`composite` on [B, H, L, dh] tensors
        (a subclass may swap in another implementation, e.g. SDPA)."""
        return attention(q, k, v, causal=self.causal, window=self.window,
                         scale=self.scale)

    def forward(self, x: torch.Tensor, memory: Optional[torch.Tensor] = None):
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be [B, S, {self.d_model}], got {tuple(x.shape)}")
        if (memory is not None) != self.cross_attention:
            raise ValueError("memory is required with cross_attention and only then")
        params = (self.q_proj.weight, self.k_proj.weight, self.v_proj.weight,
                  self.out_proj.weight)
        grad = torch.is_grad_enabled() and (
            x.requires_grad or (memory is not None and memory.requires_grad)
            or any(p.requires_grad for p in self.parameters()))
        if grad or x.device.type != "cpu":
            return self.composite(x, memory)
        biases = [getattr(self, f"{n}_proj").bias
                  for n in ("q", "k", "v", "out")]
        if x.dtype not in self._configs:
            raise TypeError(f"unsupported dtype {x.dtype}")
        return layer_forward(x, memory, *params, *biases, self._configs[x.dtype])
