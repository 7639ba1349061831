"""Generate, compile and call one ``sqa.attention`` configuration on the CPU.

Flow (one shared library per configuration; B, S and T are dynamic):

  generate_mlir(cfg)                                   -> attention.mlir
  sqa-opt attention.mlir --sqa-cpu-pipeline            -> attention.llvm.mlir
  mlir-translate --mlir-to-llvmir attention.llvm.mlir  -> attention.ll
  clang -O2 -shared -fPIC attention.ll -lm             -> libattn.so
  ctypes: _mlir_ciface_attention(desc* q, desc* k, desc* v, desc* o)

``desc`` is the rank-4 MLIR memref descriptor
``{void* allocated; void* aligned; int64 offset; int64 sizes[4];
int64 strides[4]}`` (strides in elements).
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import os
import shutil
import subprocess
import tempfile
from typing import Optional, Sequence, Tuple

import numpy as np

from .reference import ALIGNMENTS, DTYPES, STORAGE_DTYPES, variant_heads

LLVM_BIN = "/usr/lib/llvm-22/bin"
LLVM_LIB = "/usr/lib/llvm-22/lib"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FUNC_NAME = "attention"
C_SYMBOL = "_mlir_ciface_" + FUNC_NAME


# ---------------------------------------------------------------------------
# Configuration and MLIR generation
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class AttentionConfig:
    q_heads: int
    kv_heads: int
    head_dim: int
    value_dim: Optional[int] = None  # defaults to head_dim
    dtype: str = "f32"
    causal: bool = False
    alignment: str = "top_left"
    window: Tuple[int, int] = (-1, -1)
    scale: Optional[float] = None  # None: the op's default 1/sqrt(D)
    # Named preset (informational; also used for the optional heads attr).
    variant: Optional[str] = None
    total_heads: Optional[int] = None
    groups: Optional[int] = None

    def __post_init__(self):
        if self.value_dim is None:
            object.__setattr__(self, "value_dim", self.head_dim)
        object.__setattr__(self, "window", tuple(int(w) for w in self.window))
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}")
        for name in ("q_heads", "kv_heads", "head_dim", "value_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")
        hq, hkv = self.q_heads, self.kv_heads
        if max(hq, hkv) % min(hq, hkv):
            raise ValueError(f"the larger of Hq ({hq}) and Hkv ({hkv}) must be a "
                             "multiple of the smaller")
        if len(self.window) != 2:
            raise ValueError("window must be (left, right)")
        if self.variant is not None:
            if self.total_heads is None:
                raise ValueError("variant needs total_heads")
            if variant_heads(self.variant, self.total_heads, self.groups) != (hq, hkv):
                raise ValueError("q_heads/kv_heads disagree with the variant preset")

    @property
    def out_heads(self) -> int:
        return max(self.q_heads, self.kv_heads)

    @property
    def effective_scale(self) -> float:
        """The scale the kernel uses, as a Python float (f32-rounded when
        given explicitly, since the attribute is an f32)."""
        if self.scale is None:
            return 1.0 / math.sqrt(self.head_dim)
        return float(np.float32(self.scale))

    def describe(self) -> str:
        """The config as printed in PASS/FAIL lines (matched by FileCheck)."""
        parts = []
        if self.variant is not None:
            v = f"variant={self.variant} heads={self.total_heads}"
            if self.groups is not None:
                v += f" groups={self.groups}"
            parts.append(v)
        parts.append(f"hq={self.q_heads} hkv={self.kv_heads} d={self.head_dim} "
                     f"dv={self.value_dim} dtype={self.dtype}")
        if self.causal:
            parts.append(f"causal={self.alignment} window={self.window[0]},{self.window[1]}")
        else:
            parts.append(f"causal=none window={self.window[0]},{self.window[1]} "
                         f"align={self.alignment}")
        if self.scale is not None:
            parts.append(f"scale={self.effective_scale:.9g}")
        return " ".join(parts)


def _mlir_scale(x: float) -> str:
    # %.9e round-trips any f32 value exactly.
    return f"{float(np.float32(x)):.9e}"


def mask_attr(cfg: AttentionConfig, explicit: bool = False) -> Optional[str]:
    """``#sqa.mask<...>`` text, or None if the mask is all defaults (and not
    ``explicit``). Only non-default parameters are written unless
    ``explicit``, which exercises the attribute's defaults."""
    params = []
    if explicit or cfg.causal:
        params.append(f"causal = {'true' if cfg.causal else 'false'}")
    if explicit or cfg.alignment != "top_left":
        params.append(f"alignment = {cfg.alignment}")
    if explicit or cfg.window[0] != -1:
        params.append(f"window_left = {cfg.window[0]}")
    if explicit or cfg.window[1] != -1:
        params.append(f"window_right = {cfg.window[1]}")
    if not params:
        return None
    return "#sqa.mask<" + ", ".join(params) + ">"


def heads_attr(cfg: AttentionConfig) -> Optional[str]:
    if cfg.variant is None:
        return None
    s = f"#sqa.heads<{cfg.variant}, total = {cfg.total_heads}"
    if cfg.groups is not None:
        s += f", groups = {cfg.groups}"
    return s + ">"


def generate_mlir(cfg: AttentionConfig, *, explicit_attrs: bool = False,
                  with_heads_attr: bool = False) -> str:
    """MLIR module with ``func.func @attention(q, k, v, o)`` on dynamic-B/S/T
    memrefs, wrapping one ``sqa.attention`` on tensors."""
    et = cfg.dtype
    q_t = f"?x{cfg.q_heads}x?x{cfg.head_dim}x{et}"
    k_t = f"?x{cfg.kv_heads}x?x{cfg.head_dim}x{et}"
    v_t = f"?x{cfg.kv_heads}x?x{cfg.value_dim}x{et}"
    o_t = f"?x{cfg.out_heads}x?x{cfg.value_dim}x{et}"

    attrs = []
    m = mask_attr(cfg, explicit=explicit_attrs)
    if m is not None:
        attrs.append(f"mask = {m}")
    if cfg.scale is not None or explicit_attrs:
        attrs.append(f"scale = {_mlir_scale(cfg.effective_scale)} : f32")
    if with_heads_attr:
        h = heads_attr(cfg)
        if h is not None:
            attrs.append(f"heads = {h}")
    attr_dict = (" {" + ", ".join(attrs) + "}") if attrs else ""

    return f"""\
// Generated by sqa_mlir.runner: {cfg.describe()}
func.func @{FUNC_NAME}(%q: memref<{q_t}>, %k: memref<{k_t}>, %v: memref<{v_t}>, %o: memref<{o_t}>) attributes {{llvm.emit_c_interface}} {{
  %qt = bufferization.to_tensor %q restrict : memref<{q_t}> to tensor<{q_t}>
  %kt = bufferization.to_tensor %k restrict : memref<{k_t}> to tensor<{k_t}>
  %vt = bufferization.to_tensor %v restrict : memref<{v_t}> to tensor<{v_t}>
  %ot = bufferization.to_tensor %o restrict writable : memref<{o_t}> to tensor<{o_t}>
  %r = sqa.attention ins(%qt, %kt, %vt : tensor<{q_t}>, tensor<{k_t}>, tensor<{v_t}>) outs(%ot : tensor<{o_t}>){attr_dict} -> tensor<{o_t}>
  bufferization.materialize_in_destination %r in restrict writable %o : (tensor<{o_t}>, memref<{o_t}>) -> ()
  return
}}
"""


# ---------------------------------------------------------------------------
# Toolchain and compilation
# ---------------------------------------------------------------------------

def _find_tool(names: Sequence[str], extra_paths: Sequence[str] = ()) -> Optional[str]:
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    for p in extra_paths:
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def default_sqa_opt() -> Optional[str]:
    return _find_tool(["sqa-opt"], [os.path.join(REPO_ROOT, "build", "bin", "sqa-opt")])


def default_mlir_translate() -> Optional[str]:
    return _find_tool(["mlir-translate", "mlir-translate-22"],
                      [os.path.join(LLVM_BIN, "mlir-translate")])


def default_clang(mlir_translate: Optional[str] = None) -> Optional[str]:
    """The clang that reads mlir-translate's LLVM IR: IR from LLVM 22 does not
    load into an older clang (Debian's /usr/bin/clang is clang 14 here), so
    prefer the clang next to mlir-translate, then clang-22, then PATH."""
    near = []
    if mlir_translate:
        near.append(os.path.join(os.path.dirname(os.path.realpath(mlir_translate)), "clang"))
    for p in near:
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return _find_tool(["clang-22"], [os.path.join(LLVM_BIN, "clang")]) or \
        _find_tool(["clang"])


def default_runtime_libs() -> Tuple[str, ...]:
    """Link the MLIR C runner utils when available (lowered memref.copy of
    non-contiguous memrefs calls ``memrefCopy`` from it) and the OpenMP
    runtime, which the flash kernel's parallel loops call."""
    libs = [os.path.join(LLVM_LIB, name)
            for name in ("libmlir_c_runner_utils.so", "libomp.so")]
    return tuple(p for p in libs if os.path.isfile(p))


@dataclasses.dataclass
class Toolchain:
    sqa_opt: Optional[str] = None
    mlir_translate: Optional[str] = None
    clang: Optional[str] = None
    opt_args: Tuple[str, ...] = ("--sqa-cpu-pipeline",)
    cflags: Tuple[str, ...] = ("-O2",)
    runtime_libs: Optional[Tuple[str, ...]] = None  # None: default_runtime_libs()

    def resolved(self) -> "Toolchain":
        t = dataclasses.replace(self)
        t.sqa_opt = t.sqa_opt or default_sqa_opt()
        t.mlir_translate = t.mlir_translate or default_mlir_translate()
        t.clang = t.clang or default_clang(t.mlir_translate)
        if t.runtime_libs is None:
            t.runtime_libs = default_runtime_libs()
        for name in ("sqa_opt", "mlir_translate", "clang"):
            if not getattr(t, name):
                raise ToolError(f"cannot find {name.replace('_', '-')}; pass "
                                f"--{name.replace('_', '-')} PATH")
        return t


class ToolError(RuntimeError):
    pass


def _run(cmd: Sequence[str]) -> None:
    proc = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    if proc.returncode != 0:
        raise ToolError("command failed (exit %d): %s\n%s%s" % (
            proc.returncode, " ".join(cmd), proc.stdout, proc.stderr))


def compile_module(mlir_text: str, toolchain: Toolchain, workdir: str,
                   name: str = "attention") -> str:
    """Compile an MLIR module through the pipeline; returns the .so path."""
    tc = toolchain.resolved()
    os.makedirs(workdir, exist_ok=True)
    src = os.path.join(workdir, name + ".mlir")
    llvm_mlir = os.path.join(workdir, name + ".llvm.mlir")
    ll = os.path.join(workdir, name + ".ll")
    so = os.path.join(workdir, "lib" + name + ".so")
    with open(src, "w") as f:
        f.write(mlir_text)
    _run([tc.sqa_opt, src, *tc.opt_args, "-o", llvm_mlir])
    _run([tc.mlir_translate, "--mlir-to-llvmir", llvm_mlir, "-o", ll])
    link = []
    for lib in tc.runtime_libs:
        link += [lib, "-Wl,-rpath," + os.path.dirname(lib)]
    _run([tc.clang, *tc.cflags, "-shared", "-fPIC", ll, "-o", so, *link, "-lm"])
    return so


# ---------------------------------------------------------------------------
# ctypes
# ---------------------------------------------------------------------------

class MemRefDescriptor4(ctypes.Structure):
    """Rank-4 MLIR memref descriptor (strides in elements)."""
    _fields_ = [
        ("allocated", ctypes.c_void_p),
        ("aligned", ctypes.c_void_p),
        ("offset", ctypes.c_int64),
        ("sizes", ctypes.c_int64 * 4),
        ("strides", ctypes.c_int64 * 4),
    ]


def memref_descriptor(a: np.ndarray) -> MemRefDescriptor4:
    """Descriptor viewing a C-contiguous rank-4 numpy array (no copy). The
    caller must keep ``a`` alive while the descriptor is used."""
    if a.ndim != 4:
        raise ValueError("expected a rank-4 array")
    if not a.flags["C_CONTIGUOUS"]:
        raise ValueError("expected a C-contiguous array")
    d = MemRefDescriptor4()
    ptr = a.ctypes.data
    d.allocated = ptr
    d.aligned = ptr
    d.offset = 0
    for i in range(4):
        d.sizes[i] = a.shape[i]
        d.strides[i] = a.strides[i] // a.itemsize
    return d


class Kernel:
    """A loaded ``_mlir_ciface_<name>(q, k, v, o)`` of rank-4 memrefs."""

    def __init__(self, so_path: str, symbol: str = C_SYMBOL):
        self.so_path = so_path
        self.lib = ctypes.CDLL(so_path)
        self.fn = getattr(self.lib, symbol)
        self.fn.argtypes = [ctypes.POINTER(MemRefDescriptor4)] * 4
        self.fn.restype = None

    def __call__(self, *arrays: np.ndarray) -> None:
        descs = [memref_descriptor(a) for a in arrays]
        self.fn(*(ctypes.byref(d) for d in descs))


class CompiledAttention:
    """Compiles ``cfg`` once; call with storage arrays (see
    ``reference.to_storage``) of any B, S, T."""

    def __init__(self, cfg: AttentionConfig, toolchain: Toolchain = None,
                 workdir: Optional[str] = None, keep: bool = False,
                 explicit_attrs: bool = False, with_heads_attr: bool = False):
        self.cfg = cfg
        self.mlir = generate_mlir(cfg, explicit_attrs=explicit_attrs,
                                  with_heads_attr=with_heads_attr)
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.mkdtemp(prefix="sqa-check-")
            workdir = self._tmp
        self.workdir = workdir
        self.keep = keep
        try:
            self.so_path = compile_module(self.mlir, toolchain or Toolchain(), workdir)
            self.kernel = Kernel(self.so_path)
        except BaseException:
            self.close()  # rerun with keep/workdir (--keep-temps) to inspect
            raise

    def close(self):
        if self._tmp is not None and not self.keep:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def out_shape(self, q: np.ndarray):
        B, _, S, _ = q.shape
        return (B, self.cfg.out_heads, S, self.cfg.value_dim)

    def __call__(self, q, k, v, out: Optional[np.ndarray] = None) -> np.ndarray:
        cfg = self.cfg
        st = STORAGE_DTYPES[cfg.dtype]
        B, Hq, S, D = q.shape
        Bk, Hkv, T, Dk = k.shape
        if (Hq, D) != (cfg.q_heads, cfg.head_dim) or (Hkv, Dk) != (cfg.kv_heads, cfg.head_dim):
            raise ValueError("q/k shapes do not match the compiled config")
        if v.shape != (B, cfg.kv_heads, T, cfg.value_dim) or Bk != B:
            raise ValueError("v/k shapes do not match the compiled config")
        for a in (q, k, v):
            if a.dtype != st:
                raise ValueError(f"expected storage dtype {np.dtype(st)}, got {a.dtype}")
        if out is None:
            out = np.zeros(self.out_shape(q), dtype=st)
        if out.shape != self.out_shape(q) or out.dtype != st:
            raise ValueError("bad output array")
        q, k, v = (np.ascontiguousarray(a) for a in (q, k, v))
        self.kernel(q, k, v, out)
        return out
