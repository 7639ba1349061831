"""sqa_mlir.torch.SQALayer against the same layer written with nn.Linear,
RoPE and torch's scaled_dot_product_attention: the reference's state dict
loads into SQALayer, and both the layer library (no grad) and the composite
path agree with it.

  python3 torch_layer.py SQA_AOT CACHE_DIR
"""

import os
import sys

os.environ["SQA_AOT"] = sys.argv[1]
os.environ["SQA_MLIR_CACHE"] = sys.argv[2]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from sqa_mlir.torch import SQALayer, layer_forward  # noqa: E402

torch.manual_seed(0)


def rope(t, kind, S, T, base=10000.0, factor=1.0, original_max=2048, offset=0):
    """HF Llama rotate_half RoPE of [B, H, L, dh] (linear / dynamic NTK)."""
    dh = t.shape[-1]
    pos = offset + torch.arange(t.shape[2], dtype=torch.float64)
    if kind == "linear":
        pos = pos / factor
    elif kind == "dynamic_ntk" and offset + max(S, T) > original_max:
        L = offset + max(S, T)
        base = base * ((factor * L / original_max) - (factor - 1)) ** (dh / (dh - 2))
    inv = base ** (-torch.arange(0, dh, 2, dtype=torch.float64) / dh)
    ang = pos[:, None] * inv[None, :]
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    rot = torch.cat([-t[..., dh // 2:], t[..., :dh // 2]], -1)
    return t * cos.to(t.dtype) + rot * sin.to(t.dtype)


class Reference(torch.nn.Module):
    def __init__(self, d, hq, hkv, dh, bias, rope_cfg, causal, cross):
        super().__init__()
        self.hq, self.hkv, self.dh, self.rope, self.causal = hq, hkv, dh, rope_cfg, causal
        self.cross = cross
        self.q_proj = torch.nn.Linear(d, hq * dh, bias="q" in bias)
        self.k_proj = torch.nn.Linear(d, hkv * dh, bias="k" in bias)
        self.v_proj = torch.nn.Linear(d, hkv * dh, bias="v" in bias)
        self.out_proj = torch.nn.Linear(max(hq, hkv) * dh, d, bias="o" in bias)

    def forward(self, x, memory=None):
        B, S, _ = x.shape
        src = x if memory is None else memory
        T = src.shape[1]
        q = self.q_proj(x).view(B, S, self.hq, self.dh).transpose(1, 2)
        k = self.k_proj(src).view(B, T, self.hkv, self.dh).transpose(1, 2)
        v = self.v_proj(src).view(B, T, self.hkv, self.dh).transpose(1, 2)
        if self.rope:
            cfg = dict(self.rope)
            queries_only = cfg.pop("queries_only", False)
            q = rope(q, S=S, T=T, **cfg)
            if not queries_only:
                k = rope(k, S=S, T=T, **cfg)
        if self.hkv > self.hq:  # reverse SQA: query head h // (Hkv / Hq)
            q = q.repeat_interleave(self.hkv // self.hq, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal,
                                           enable_gqa=self.hq != self.hkv)
        return self.out_proj(a.transpose(1, 2).reshape(B, S, -1))


def check(what, heads, hq, hkv, dh, *, bias="", rope_cfg=None, causal=False,
          cross=False, S=23, T=23):
    ref = Reference(heads * dh, hq, hkv, dh, bias, rope_cfg, causal, cross)
    layer = SQALayer(heads, hq, hkv, dh, bias=bias, rope=rope_cfg, causal=causal,
                     cross_attention=cross)
    layer.load_state_dict(ref.state_dict())  # strict: the same parameter names
    x = torch.randn(2, S, heads * dh)
    memory = torch.randn(2, T, heads * dh) if cross else None
    with torch.no_grad():
        want = ref(x, memory)
        library = layer(x, memory)
        composite = layer.composite(x, memory)
    e1 = (library - want).abs().max().item()
    e2 = (composite - want).abs().max().item()
    tol = 1e-4 * max(1.0, want.abs().max().item())
    print(f"{'PASS' if max(e1, e2) <= tol else 'FAIL'} {what}: library "
          f"max_abs_err={e1:.1e} composite max_abs_err={e2:.1e}")


check("sqa 4/2 rotary, biases qkvo, causal", 8, 4, 2, 16, bias="qkvo",
      rope_cfg={"kind": "rotary"}, causal=True)
check("reverse sqa 2/4 cross-attention, linear rope on queries", 4, 2, 4, 16,
      rope_cfg={"kind": "linear", "factor": 2.0, "queries_only": True}, cross=True,
      S=11, T=29)
check("mha dynamic ntk past original_max, offset 3", 4, 4, 4, 8,
      rope_cfg={"kind": "dynamic_ntk", "factor": 2.0, "original_max": 16, "offset": 3},
      causal=True, S=30, T=30)

# torch.compile(fullgraph) over the layer library op.
layer = SQALayer(8, 4, 2, 16, rope="rotary", causal=True).eval()
x = torch.randn(1, 17, 128)
with torch.no_grad():
    eager = layer(x)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")(x)
print("compiled layer equals eager:", torch.equal(eager, compiled))
print("op:", layer_forward._qualname)
try:
    layer(torch.randn(1, 5, 64))
except ValueError as e:
    print("ValueError:", e)
