#!/usr/bin/env python3
"""Train a small SQA decoder on CPU with sqa-mlir's attention, next to the
same model on PyTorch's scaled_dot_product_attention.

  python3 python/examples/train_sqa_decoder.py --attention both --steps 300
  torchrun --nproc_per_node 2 python/examples/train_sqa_decoder.py --steps 300

The model follows the sSQAT-m card: d_model 256, 16 baseline heads of 16
dims with 8 query and 8 key/value heads (symmetric SQA: half the attention
FLOPs of MHA), 8 layers, SwiGLU 768, RMSNorm, RoPE, tied embeddings
(``--preset tiny`` is a smaller one for tests). The text is this
repository's README and docs, as bytes. Each attention layer is
``sqa_mlir.torch.SQALayer``; the SDPA model is the same class with its
attention step swapped for ``scaled_dot_product_attention``, so at one seed
both start from the same weights and see the same batches. Prints the loss
of both and tokens per second.

Under ``torchrun`` (WORLD_SIZE > 1) it trains with DistributedDataParallel
(gloo): each rank takes its slice of every global batch, so the run is the
single-process one with gradients averaged across ranks. ``--dump PATH``
saves the final parameters and last gradients (rank 0) for comparison.
"""

import argparse
import glob
import os
import sys
import time

import torch
import torch.nn.functional as F

# The package from this source tree when it is not installed.
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from sqa_mlir.torch import SQALayer, sdpa_reference  # noqa: E402

PRESETS = {
    # d_model = heads * head_dim
    "card": dict(heads=16, q_heads=8, kv_heads=8, head_dim=16, layers=8, ffn=768),
    "tiny": dict(heads=4, q_heads=2, kv_heads=2, head_dim=16, layers=2, ffn=96),
}


class SDPALayer(SQALayer):
    """SQALayer with PyTorch's SDPA as its attention step."""

    def attend(self, q, k, v):
        return sdpa_reference(q, k, v, causal=self.causal, window=self.window,
                              scale=self.scale)


class RMSNorm(torch.nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Block(torch.nn.Module):
    def __init__(self, layer_cls, p):
        super().__init__()
        d = p["heads"] * p["head_dim"]
        self.attn_norm = RMSNorm(d)
        self.attn = layer_cls(p["heads"], p["q_heads"], p["kv_heads"], p["head_dim"],
                              rope="rotary", causal="top_left")
        self.ffn_norm = RMSNorm(d)
        self.gate = torch.nn.Linear(d, p["ffn"], bias=False)
        self.up = torch.nn.Linear(d, p["ffn"], bias=False)
        self.down = torch.nn.Linear(p["ffn"], d, bias=False)

    def forward(self, x):
        x = x + self.attn(self.attn_norm(x))
        h = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Decoder(torch.nn.Module):
    def __init__(self, layer_cls, p, vocab=256):
        super().__init__()
        d = p["heads"] * p["head_dim"]
        self.embed = torch.nn.Embedding(vocab, d)
        # Tied input/output embeddings: small, so the first logits are too.
        torch.nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = torch.nn.ModuleList(Block(layer_cls, p) for _ in range(p["layers"]))
        self.norm = RMSNorm(d)

    def forward(self, tokens):
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.norm(x) @ self.embed.weight.t()


def corpus() -> torch.Tensor:
    """This repository's README and docs as a byte tensor."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    paths = [os.path.join(root, "README.md")] + sorted(
        glob.glob(os.path.join(root, "docs", "*.md")))
    data = b"".join(open(p, "rb").read() for p in paths if os.path.isfile(p))
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long()


def batches(data, steps, batch, seq_len, seed):
    """The global batches of every step (the same in every process)."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        starts = torch.randint(0, len(data) - seq_len - 1, (batch,), generator=g)
        window = torch.stack([data[s:s + seq_len + 1] for s in starts])
        yield window[:, :-1], window[:, 1:]


def train(name, layer_cls, args, rank=0, world=1):
    p = PRESETS[args.preset]
    torch.manual_seed(args.seed)
    model = Decoder(layer_cls, p)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    data = corpus()
    losses, tokens, elapsed = [], 0, 0.0
    share = args.batch // world
    for step, (x, y) in enumerate(batches(data, args.steps, args.batch, args.seq_len,
                                          args.seed)):
        x, y = x[rank * share:(rank + 1) * share], y[rank * share:(rank + 1) * share]
        t0 = time.perf_counter()
        logits = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step:  # the first step compiles libraries
            elapsed += time.perf_counter() - t0
            tokens += x.numel() * world
        loss = loss.detach()
        if world > 1:  # report the global batch's loss, not this rank's slice
            torch.distributed.all_reduce(loss)
            loss /= world
        losses.append(loss.item())
        if rank == 0 and (step % args.log_every == 0 or step == args.steps - 1):
            print(f"{name} step {step:4d} loss {loss.item():.4f}", flush=True)
    if rank == 0 and elapsed:
        print(f"{name} tokens/s {tokens / elapsed:.0f} (steps 1..{args.steps - 1}, "
              f"{world} process(es))", flush=True)
    return model, losses


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--attention", choices=("sqa", "sdpa", "both"), default="both")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="card")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8, help="global batch (sequences)")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--dump", help="save final parameters and gradients here (rank 0)")
    args = ap.parse_args()

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        torch.distributed.init_process_group("gloo")
        if args.batch % world:
            sys.exit(f"--batch {args.batch} must divide among {world} processes")
    runs = {"sqa": [("sqa", SQALayer)], "sdpa": [("sdpa", SDPALayer)],
            "both": [("sdpa", SDPALayer), ("sqa", SQALayer)]}[args.attention]
    results = {}
    for name, cls in runs:
        results[name] = train(name, cls, args, rank, world)
    if rank == 0 and len(results) == 2:
        a, b = results["sdpa"][1], results["sqa"][1]
        rel = max(abs(x - y) / abs(x) for x, y in zip(a, b))
        print(f"loss first {a[0]:.4f} -> last sdpa {a[-1]:.4f} sqa {b[-1]:.4f}; "
              f"max relative difference over steps {rel:.2e}")
    if rank == 0 and args.dump:
        model = results[runs[-1][0]][0]
        model = getattr(model, "module", model)
        torch.save({n: (q.detach().clone(), q.grad.clone())
                    for n, q in model.named_parameters()}, args.dump)
    if world > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
