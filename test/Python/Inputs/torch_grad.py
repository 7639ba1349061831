"""Gradients of sqa_mlir.torch.attention (the libraries' NAME_forward_lse and
NAME_backward) against SDPA's autograd on the same inputs; opcheck and
torch.compile with the backward; without those entry points, the clear
error.

  python3 torch_grad.py SQA_AOT CACHE_DIR [--expect-unavailable]
"""

import os
import sys

os.environ["SQA_AOT"] = sys.argv[1]
os.environ["SQA_MLIR_CACHE"] = sys.argv[2]

import torch  # noqa: E402

from sqa_mlir import torch as st  # noqa: E402

torch.manual_seed(0)
TOL = {torch.float32: 5e-5, torch.float16: 8e-3, torch.bfloat16: 6e-2}


def leaves(*shapes, dtype=torch.float32):
    return [torch.randn(*s, dtype=dtype, requires_grad=True) for s in shapes]


if "--expect-unavailable" in sys.argv:
    q, k, v = leaves((1, 4, 8, 16), (1, 2, 8, 16), (1, 2, 8, 16))
    print("backward available:", st.backward_available(q, k, v))
    try:
        st.attention(q, k, v).sum().backward()
        print("no error")
    except st.BackwardUnavailable as e:
        print("BackwardUnavailable:", e)
    with torch.no_grad():
        print("no_grad forward:", tuple(st.attention(q, k, v).shape))
    sys.exit(0)


def gradients(what, shapes, dtype=torch.float32, **config):
    q, k, v = leaves(*shapes, dtype=dtype)
    out = st.attention(q, k, v, **config)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), g)
    ref = st.sdpa_reference(q, k, v, **config)
    want = torch.autograd.grad(ref, (q, k, v), g)
    errs = [(a.float() - b.float()).abs().max().item() for a, b in zip(got, want)]
    ok = all(e <= TOL[dtype] for e in errs)
    print(f"{'PASS' if ok else 'FAIL'} grad {what}: "
          + " ".join(f"d{n}={e:.1e}" for n, e in zip("qkv", errs)))


B = 2
gradients("gqa 8/2 top_left", [(B, 8, 33, 16), (B, 2, 33, 16), (B, 2, 33, 16)],
          causal="top_left")
gradients("mqa 4/1 bottom_right", [(B, 4, 7, 16), (B, 1, 40, 16), (B, 1, 40, 16)],
          causal="bottom_right")
gradients("mha window", [(1, 2, 30, 8)] * 3, window=(5, 2), scale=0.2)
gradients("reverse sqa 2/4", [(B, 2, 17, 16), (B, 4, 19, 16), (B, 4, 19, 16)])
gradients("bshd", [(B, 21, 4, 16), (B, 21, 2, 16), (B, 21, 2, 16)], layout="bshd",
          causal="top_left")
gradients("bf16", [(B, 4, 21, 32), (B, 2, 21, 32), (B, 2, 21, 32)],
          dtype=torch.bfloat16, causal="top_left")

q, k, v = leaves((B, 4, 9, 16), (B, 2, 11, 16), (B, 2, 11, 16))
result = torch.library.opcheck(torch.ops.sqa_mlir.attention_forward.default,
                               (q, k, v, "bottom_right", None, None, "bhsd", True))
print("opcheck with grad:", result)

# A module trained through torch.compile: the same gradients as eager.
lin = torch.nn.Linear(32, 8 * 16)


def step(x):
    B, S, _ = x.shape
    qkv = lin(x).view(B, S, 8, 16)
    out = st.attention(qkv[:, :, :4], qkv[:, :, 4:6], qkv[:, :, 6:],
                       causal="top_left", layout="bshd")
    return out.square().mean()


x = torch.randn(B, 13, 32)
eager = torch.autograd.grad(step(x), lin.weight)[0]
compiled_step = torch.compile(step, fullgraph=True, backend="aot_eager")
compiled = torch.autograd.grad(compiled_step(x), lin.weight)[0]
print("compiled grad equals eager:", torch.allclose(eager, compiled, atol=1e-6))
