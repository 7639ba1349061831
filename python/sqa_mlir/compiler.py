"""``sqa_mlir.compile``: a loaded attention library for one configuration.

  import numpy as np, sqa_mlir
  attn = sqa_mlir.compile(variant="sqa", heads=16, head_dim=64, causal="top_left")
  out = attn.forward(q, k, v)        # q [B, 8, S, 64], k/v [B, 4, T, 64] float32

The library is built by the product's compiler driver, ``sqa-aot`` (the
``SQA_AOT`` environment variable, else ``sqa-aot`` on PATH, else the source
tree's ``build/bin/sqa-aot``), and kept in an on-disk cache keyed by the
options and the compiler's own bytes, so that a rebuilt compiler never serves
a stale library. The cache lives in ``$SQA_MLIR_CACHE`` (default
``$XDG_CACHE_HOME/sqa_mlir`` or ``~/.cache/sqa_mlir``). Processes that
compile the same key at once are safe: each builds into its own temporary
folder and renames it into place atomically; the first rename wins and the
others use its library.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import tempfile
from typing import Optional

import numpy as np

from . import aot

# Bump when the cache's layout or the wrapper's expectations change.
_CACHE_FORMAT = 1
_DEFAULT_NAME = "sqa_attention"


class CompileError(RuntimeError):
    """sqa-aot could not be found or rejected the configuration."""


def find_sqa_aot() -> str:
    """The sqa-aot to run: $SQA_AOT, PATH, or <repo>/build/bin/sqa-aot."""
    env = os.environ.get("SQA_AOT")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise CompileError(f"SQA_AOT={env!r} is not an executable file")
        return env
    found = shutil.which("sqa-aot")
    if found:
        return found
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidate = os.path.join(repo, "build", "bin", "sqa-aot")
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    raise CompileError("cannot find sqa-aot: set SQA_AOT, put it on PATH, or build "
                       "the repository (build/bin/sqa-aot)")


def cache_dir() -> str:
    """The cache folder ($SQA_MLIR_CACHE overrides)."""
    env = os.environ.get("SQA_MLIR_CACHE")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".cache")
    return os.path.join(base, "sqa_mlir")


@functools.lru_cache(maxsize=None)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the memo key only: a rebuilt binary is rehashed.
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def compiler_version(sqa_aot: str) -> str:
    """A digest of the sqa-aot binary: any rebuild is a new version."""
    real = os.path.realpath(sqa_aot)
    st = os.stat(real)
    return _file_digest(real, st.st_size, st.st_mtime_ns)


def _normalize(options: dict) -> dict:
    """The options as sqa-aot will see them (so that equal configurations
    written differently share a cache entry), None values dropped."""
    args = aot.aot_arguments(**{k: v for k, v in options.items() if v is not None})
    return {"args": sorted(args)}


def cache_key(options: dict, sqa_aot: str) -> str:
    blob = json.dumps({"format": _CACHE_FORMAT, "options": _normalize(options),
                       "compiler": compiler_version(sqa_aot),
                       # Libraries hold every x86-64 ISA level (--cpu all by default)
                       # and pick one at run time; the architecture still matters.
                       "machine": platform.machine()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:40]


def build_cached(options: dict, sqa_aot: Optional[str] = None,
                 cache: Optional[str] = None):
    """Returns (library path, hit) for ``options`` (build_library keywords),
    building it with sqa-aot on a cache miss."""
    sqa_aot = sqa_aot or find_sqa_aot()
    cache = cache or cache_dir()
    name = options["name"]
    entry = os.path.join(cache, cache_key(options, sqa_aot))
    path = os.path.join(entry, f"lib{name}.so")
    if os.path.isfile(path):
        return path, True
    os.makedirs(cache, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".build-", dir=cache)
    try:
        try:
            aot.build_library(sqa_aot, tmp, **options)
        except aot.AOTError as e:
            raise CompileError(str(e)) from None
        try:
            os.rename(tmp, entry)  # atomic: readers see all of it or nothing
        except OSError:
            if not os.path.isfile(path):  # not another process's finished entry
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path, False


class Attention:
    """A loaded CPU attention library with numpy calls.

    ``forward(q, k, v)`` takes arrays in the library's layout (BHSD:
    q [B, Hq, S, D], k [B, Hkv, T, D], v [B, Hkv, T, Dv]; BSHD swaps the head
    and position axes) and storage dtype (float32, float16, or uint16 bit
    patterns for bf16; see :func:`sqa_mlir.reference.to_storage`), and
    returns out [B, H, S, Dv] (or [B, S, H, Dv]) with H = max(Hq, Hkv).
    Non-contiguous inputs are copied to contiguous ones first.
    """

    def __init__(self, path: str, name: str, options: dict, cached: bool):
        self.path = path
        self.options = dict(options)
        self.from_cache = cached
        probe = aot.AttentionLibrary(path, name, "f32")
        dtype = probe.settings.get("dtype", "f32")
        self.library = probe if dtype == "f32" else aot.AttentionLibrary(path, name, dtype)
        s = self.library.settings
        self.dtype = dtype
        self.storage = self.library.storage
        self.layout = self.library.layout
        self.q_heads, self.kv_heads = int(s["q_heads"]), int(s["kv_heads"])
        self.out_heads = int(s["out_heads"])
        self.head_dim, self.value_head_dim = int(s["head_dim"]), int(s["value_head_dim"])

    def config(self) -> str:
        return self.library.config()

    def _dims(self, what, a, heads, dim):
        """(batch, length) of a rank-4 operand, after checking heads/dim."""
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{what} must be a numpy array, not {type(a).__name__}")
        if a.dtype != self.storage:
            raise TypeError(f"{what} has dtype {a.dtype}; this {self.dtype} library "
                            f"takes {self.storage}")
        if a.ndim != 4:
            raise ValueError(f"{what} must have rank 4, got shape {a.shape}")
        b, x, y, d = a.shape
        h, length = (y, x) if self.layout == "bshd" else (x, y)
        if h != heads or d != dim:
            want = ("[B, len, %d, %d]" if self.layout == "bshd" else "[B, %d, len, %d]")
            raise ValueError(f"{what} has shape {a.shape}; this library takes "
                             f"{want % (heads, dim)}")
        if b < 1 or length < 1:
            raise ValueError(f"{what} has an empty batch or sequence: {a.shape}")
        return b, length

    def forward(self, q, k, v, out: Optional[np.ndarray] = None) -> np.ndarray:
        B, S = self._dims("q", q, self.q_heads, self.head_dim)
        Bk, T = self._dims("k", k, self.kv_heads, self.head_dim)
        Bv, Tv = self._dims("v", v, self.kv_heads, self.value_head_dim)
        if not B == Bk == Bv:
            raise ValueError(f"q, k, v batch sizes differ: {B}, {Bk}, {Bv}")
        if T != Tv:
            raise ValueError(f"k and v sequence lengths differ: {T}, {Tv}")
        shape = ((B, S, self.out_heads, self.value_head_dim) if self.layout == "bshd"
                 else (B, self.out_heads, S, self.value_head_dim))
        if out is None:
            out = np.empty(shape, dtype=self.storage)
        elif (not isinstance(out, np.ndarray) or out.shape != shape
              or out.dtype != self.storage or not out.flags.c_contiguous):
            raise ValueError(f"out must be a C-contiguous {self.storage} array of "
                             f"shape {shape}")
        q, k, v = (np.ascontiguousarray(a) for a in (q, k, v))
        status = self.library.forward(q, k, v, out)
        if status != aot.SQA_OK:
            raise RuntimeError(f"{self.library.name}_forward: status {status} "
                               f"({self.library.error_string(status)})")
        return out

    __call__ = forward


def compile(*, sqa_aot: Optional[str] = None, cache: Optional[str] = None,
            **options) -> Attention:
    """Build (or load from the cache) the CPU attention library for
    ``options``, sqa-aot's options as keywords (see
    :func:`sqa_mlir.aot.build_library`): variant/heads/groups or
    q_heads/kv_heads, head_dim, value_head_dim, dtype, causal ("top_left" or
    "bottom_right"), alignment, window ((L, R)), scale, layout, kernel, cpu,
    cpu_query_tile, cpu_kv_block, cpu_mr, cpu_nr, name."""
    for unsupported in ("target", "layer"):
        if options.get(unsupported):
            raise NotImplementedError(
                f"sqa_mlir.compile builds CPU attention libraries; for {unsupported}="
                f"{options[unsupported]!r} use sqa_mlir.aot.build_library")
    options = {k: v for k, v in options.items() if v is not None}
    options.setdefault("name", _DEFAULT_NAME)
    try:
        aot.aot_arguments(**options)
    except TypeError as e:
        raise TypeError(f"sqa_mlir.compile: {e}") from None
    path, hit = build_cached(options, sqa_aot, cache)
    return Attention(path, options["name"], options, hit)
