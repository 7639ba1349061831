"""sqa_mlir.torch.attention against torch's scaled_dot_product_attention,
opcheck, torch.compile without graph breaks, views reaching the library
without copies, and clear errors.

  python3 torch_ops.py SQA_AOT CACHE_DIR
"""

import os
import sys

os.environ["SQA_AOT"] = sys.argv[1]
os.environ["SQA_MLIR_CACHE"] = sys.argv[2]

import torch  # noqa: E402

from sqa_mlir import torch as st  # noqa: E402

torch.manual_seed(0)
# Max abs error allowed vs SDPA (which computes in the input dtype on CPU).
TOL = {torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


def compare(what, q, k, v, **config):
    got = st.attention(q, k, v, **config)
    want = st.sdpa_reference(q, k, v, **config)
    err = (got.float() - want.float()).abs().max().item()
    ok = got.shape == want.shape and err <= TOL[q.dtype]
    print(f"{'PASS' if ok else 'FAIL'} {what}: {tuple(got.shape)} "
          f"max_abs_err={err:.1e}")


def bhsd(B, H, S, D, dtype=torch.float32):
    return torch.randn(B, H, S, D, dtype=dtype)


B = 2
compare("gqa 8/2 causal top_left", bhsd(B, 8, 33, 16), bhsd(B, 2, 33, 16),
        bhsd(B, 2, 33, 16), causal="top_left")
compare("mqa 4/1 bottom_right S<T", bhsd(B, 4, 7, 16), bhsd(B, 1, 40, 16),
        bhsd(B, 1, 40, 16), causal="bottom_right")
compare("mha window (5, 2) scale 0.2", bhsd(1, 2, 30, 8), bhsd(1, 2, 30, 8),
        bhsd(1, 2, 30, 8), window=(5, 2), scale=0.2)
compare("reverse sqa 2/4, dv 24", bhsd(B, 2, 17, 16), bhsd(B, 4, 19, 16),
        bhsd(B, 4, 19, 24))
for dtype in (torch.float16, torch.bfloat16):
    compare(f"gqa {dtype}", bhsd(B, 4, 21, 32, dtype), bhsd(B, 2, 21, 32, dtype),
            bhsd(B, 2, 21, 32, dtype), causal="top_left")

# q, k, v sliced out of one fused BSHD projection: views, no copies.
S, Hq, Hkv, D = 29, 8, 2, 16
x = torch.randn(B, S, (Hq + 2 * Hkv) * D)
q = x[..., :Hq * D].view(B, S, Hq, D)
k = x[..., Hq * D:(Hq + Hkv) * D].view(B, S, Hkv, D)
v = x[..., (Hq + Hkv) * D:].view(B, S, Hkv, D)
compare("fused qkv bshd", q, k, v, layout="bshd", causal="top_left")
# The same views read as BHSD by transposing: still no copies.
compare("fused qkv transposed to bhsd", q.transpose(1, 2), k.transpose(1, 2),
        v.transpose(1, 2), causal="top_left")

kernels = st.library_for(q, k, v, layout="bshd", causal="top_left")
calls = []
real = kernels.forward_strided


def recording(*args):
    calls.append(args)
    return real(*args)


kernels.forward_strided = recording
out = st.attention(q, k, v, layout="bshd", causal="top_left")
kernels.forward_strided = real
(qp, qs, kp, ks, vp, vs, op, os_, *sizes) = calls[0]
print("one strided call:", len(calls) == 1, "sizes:", sizes)
print("pointers are the views':", qp == q.data_ptr(), kp == k.data_ptr(),
      vp == v.data_ptr(), op == out.data_ptr())
print("q strides (batch, head, position):", list(qs), "view:",
      [q.stride(0), q.stride(2), q.stride(1)])

# opcheck: schema, fake tensor, autograd registration, AOT dispatch.
args = (bhsd(B, 4, 9, 16), bhsd(B, 2, 11, 16), bhsd(B, 2, 11, 16), "bottom_right",
        [3, -1], None, "bhsd", False)
result = torch.library.opcheck(torch.ops.sqa_mlir.attention_forward.default, args)
print("opcheck:", result)


# torch.compile(fullgraph=True) of a module over fused projections.
class FusedAttention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(64, (Hq + 2 * Hkv) * D)

    def forward(self, x):
        B, S, _ = x.shape
        qkv = self.qkv(x)
        q = qkv[..., :Hq * D].view(B, S, Hq, D)
        k = qkv[..., Hq * D:(Hq + Hkv) * D].view(B, S, Hkv, D)
        v = qkv[..., (Hq + Hkv) * D:].view(B, S, Hkv, D)
        return st.attention(q, k, v, causal="top_left", layout="bshd").flatten(2)


m = FusedAttention()
x = torch.randn(B, 19, 64)
with torch.no_grad():
    eager = m(x)
    explanation = torch._dynamo.explain(m)(x)
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")(x)
print("compile: graphs", explanation.graph_count, "breaks",
      explanation.graph_break_count, "equal", torch.equal(eager, compiled))


def error(what, fn):
    try:
        fn()
        print(f"{what}: no error")
    except Exception as e:  # noqa: BLE001 - printing what callers get
        print(f"{what}: {type(e).__name__}: {str(e).splitlines()[0]}")


q, k = bhsd(1, 6, 5, 8), bhsd(1, 4, 5, 8)
error("heads 6/4", lambda: st.attention(q, k, k))
error("float64", lambda: st.attention(q.double(), k.double(), k.double()))
error("mixed dtypes", lambda: st.attention(q, k.half(), k))
error("bad causal", lambda: st.attention(q, q, q, causal="yes"))
print("causal=True is top_left:", torch.equal(st.attention(q, q, q, causal=True),
                                              st.attention(q, q, q, causal="top_left")))
error("rank 3", lambda: st.attention(q[0], q[0], q[0]))
error("empty keys", lambda: st.attention(q, q[:, :, :0], q[:, :, :0]))
print("empty queries:", tuple(st.attention(q[:, :, :0], q, q).shape))
