"""sqa_mlir: attention kernels compiled ahead of time by sqa-mlir.

* ``sqa_mlir.compile(**options)``: build (or load from the on-disk cache) the
  CPU library for one configuration with ``sqa-aot`` and call it from numpy
  (``sqa_mlir.compiler``).
* ``sqa_mlir.aot``: ctypes wrappers of every library ``sqa-aot`` writes
  (CPU, CUDA, whole attention layers) and ``build_library``.
* ``sqa_mlir.reference`` / ``sqa_mlir.layer_reference``: float64 numpy
  references of ``sqa.attention`` and ``sqa.attention_layer``, bf16/f16
  storage helpers, head presets and output tolerances.
* ``sqa_mlir.cuda_driver``: a ctypes wrapper over the CUDA driver
  (libcuda.so.1) for device memory, streams and contexts.
* ``sqa_mlir.torch`` (needs PyTorch; not imported here): ``attention``, a
  custom op with SDPA's conventions and autograd, and ``SQALayer``.

The test checkers and test doubles live in the repository's test/lib.
"""

from .compiler import Attention, CompileError, cache_dir, compile, find_sqa_aot  # noqa: F401
from .reference import (  # noqa: F401
    DTYPES,
    VARIANTS,
    attention,
    bf16_to_f32,
    f32_to_bf16,
    from_storage,
    head_mapping,
    to_storage,
    variant_heads,
    visible_mask,
)

__all__ = [
    "Attention",
    "CompileError",
    "DTYPES",
    "VARIANTS",
    "attention",
    "bf16_to_f32",
    "cache_dir",
    "compile",
    "f32_to_bf16",
    "find_sqa_aot",
    "from_storage",
    "head_mapping",
    "to_storage",
    "variant_heads",
    "visible_mask",
]
