"""sqa_mlir.torch sizes the libraries' OpenMP team (libomp) to
torch.get_num_threads() and lets its workers sleep right after each call
(KMP_BLOCKTIME 0) unless the user set KMP_BLOCKTIME, so the two thread
pools do not spin against each other.

  python3 torch_openmp.py SQA_AOT CACHE_DIR
"""

import ctypes
import os
import sys

os.environ["SQA_AOT"] = sys.argv[1]
os.environ["SQA_MLIR_CACHE"] = sys.argv[2]

import torch  # noqa: E402

from sqa_mlir import torch as st  # noqa: E402

torch.manual_seed(0)
q, k, v = (torch.randn(1, 2, 9, 8) for _ in range(3))
st.attention(q, k, v, causal="top_left")
omp = st._openmp.lib
print("libomp found:", omp is not None)
omp.kmp_get_blocktime.restype = ctypes.c_int
print("KMP_BLOCKTIME env:", os.environ.get("KMP_BLOCKTIME"),
      "blocktime:", omp.kmp_get_blocktime())
for threads in (1, 2):
    torch.set_num_threads(threads)
    q.requires_grad_()
    st.attention(q, k, v, causal="top_left").sum().backward()
    print(f"torch threads {threads}: library threads {omp.omp_get_max_threads()}")
