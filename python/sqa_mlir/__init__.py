"""Python helpers for testing sqa-mlir kernels.

* ``sqa_mlir.reference``: an independent float64 numpy reference of
  ``sqa.attention`` (explicit per-head loops and an explicit boolean mask),
  bf16/f16 rounding helpers and the named head presets.
* ``sqa_mlir.runner``: generates the MLIR for one attention configuration,
  compiles it with ``sqa-opt --sqa-cpu-pipeline`` / ``mlir-translate`` /
  ``clang`` into a shared library and calls it through ctypes.
* ``sqa_mlir/check.py``: command-line checker used by the lit integration
  tests in ``test/Integration/CPU``.
* ``sqa_mlir.cuda_driver``: a ctypes wrapper over the CUDA driver
  (libcuda.so.1) for device memory, streams and contexts;
  ``sqa_mlir/check_cuda.py`` checks ``sqa-aot --target cuda`` libraries with
  it (``test/Integration/CUDA``, ``test/AOT/cuda-no-gpu.test``).
"""

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
    "DTYPES",
    "VARIANTS",
    "attention",
    "bf16_to_f32",
    "f32_to_bf16",
    "from_storage",
    "head_mapping",
    "to_storage",
    "variant_heads",
    "visible_mask",
]
