#!/usr/bin/env python3
"""Call an `sqa-aot --target cuda` library from Python: ctypes, numpy and the
CUDA driver (no PyTorch, no CUDA toolkit at run time).

  sqa-aot --target cuda --chip sm_90 --variant sqa --heads 16 --head-dim 128 \\
          --dtype bf16 --causal top-left --name sqa_gpu -o /tmp/sqa/libsqa_gpu.so
  python3 python/examples/cuda_attention_example.py /tmp/sqa/libsqa_gpu.so sqa_gpu

The library enqueues its kernel on a CUDA stream; inputs and outputs are
device pointers. Here python/sqa_mlir/cuda_driver.py allocates and copies;
with PyTorch, pass `t.data_ptr()` of contiguous CUDA tensors and
`torch.cuda.current_stream().cuda_stream` instead. On a machine without a GPU
the call returns SQA_ERROR_NO_CUDA_DRIVER / _NO_CUDA_DEVICE, which this
script reports.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from sqa_mlir import cuda_driver, reference  # noqa: E402
from sqa_mlir.aot import CUDAAttentionLibrary  # noqa: E402


def main():
    path, name = sys.argv[1], sys.argv[2]
    config = dict(item.split("=", 1) for item in
                  CUDAAttentionLibrary(path, name).config().split())
    dtype = config["dtype"]
    lib = CUDAAttentionLibrary(path, name, dtype)
    print("library:", lib.config())
    if config["layout"] != "bhsd":
        sys.exit("this example expects a BHSD library")
    hq, hkv = int(config["q_heads"]), int(config["kv_heads"])
    d, dv = int(config["head_dim"]), int(config["value_head_dim"])
    causal = config["causal"] != "none"
    alignment = config["causal"] if causal else "top_left"

    available, reason = cuda_driver.gpu_available()
    if not available:
        # Still a valid call: the library reports the missing GPU itself.
        status = lib.forward_raw(16, 32, 48, 1 << 20, 1, 1, 1, None)
        print(f"no GPU ({reason}); the library says: status {status}, "
              f"{lib.error_string(status)!r}, detail {lib.last_error()!r}")
        return 0

    B, S, T = 2, 300, 300
    rng = np.random.default_rng(0)
    host = [reference.to_storage(rng.standard_normal(shape), dtype)
            for shape in ((B, hq, S, d), (B, hkv, T, d), (B, hkv, T, dv))]
    out_host = np.empty((B, max(hq, hkv), S, dv), dtype=host[0].dtype)

    driver = cuda_driver.load()
    driver.primary_context()
    stream = driver.stream_create()
    arrays = [cuda_driver.DeviceArray.from_numpy(driver, x) for x in host]
    out = cuda_driver.DeviceArray.empty(driver, out_host.shape, out_host.dtype)
    status = lib.forward_raw(*(a.ptr for a in arrays), out.ptr, B, S, T, stream)
    if status != 0:
        sys.exit(f"forward failed: {lib.error_string(status)} ({lib.last_error()})")
    driver.stream_synchronize(stream)
    out.copy_to(out_host)

    want = reference.attention(*(reference.from_storage(x, dtype) for x in host),
                               causal=causal, alignment=alignment)
    got = reference.from_storage(out_host, dtype)
    print(f"B={B} S={S} T={T}: max |ours - numpy float64| = "
          f"{np.max(np.abs(got - want)):.3e} (max |ref| {np.max(np.abs(want)):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
