#!/usr/bin/env python3
"""The training example's attention and step, sqa-mlir against PyTorch's
scaled_dot_product_attention, in one process (issue 15's training target).

  python3 bench/train_bench.py                      # both parts, this process's threads
  OMP_NUM_THREADS=1 python3 bench/train_bench.py --clock process
  python3 bench/train_bench.py --part attention --reps 15

attention: sqa_mlir.torch.attention and F.scaled_dot_product_attention at
the sSQAT-m card's shape (B 2, 8 query / 8 kv heads, S = T 1024, D 16,
causal, f32), forward and backward through autograd, interleaved, best of
--reps; also the library's NAME_forward_lse/NAME_backward called directly
(the glue's cost is the difference).

step: one training step (fwd + bwd + AdamW) of the example's model
(python/examples/train_sqa_decoder.py, --preset card) with each attention,
interleaved, best of --reps; "sqa blocktime 200" is the sqa model with the
library's OpenMP workers left spinning 200 ms after each call (libomp's
default, what sqa_mlir.torch did before it set KMP_BLOCKTIME 0).

--clock process (time.process_time) counts CPU time of all threads: use it
with OMP_NUM_THREADS=1 on a busy machine; wall (default) is what training
sees.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "python", "examples"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import train_sqa_decoder as example  # noqa: E402
from sqa_mlir import torch as st  # noqa: E402


def attention_part(args, clock):
    B, H, S, D = 2, 8, args.seq_len, 16
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, H, S, D, requires_grad=True) for _ in range(3))
    d_out = torch.randn(B, H, S, D)
    runs = {"sqa": lambda: st.attention(q, k, v, causal="top_left"),
            "sdpa": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)}
    kern = st.library_for(q, k, v, causal="top_left")
    qc, kc, vc = (t.detach().contiguous() for t in (q, k, v))
    out, lse = torch.empty_like(qc), torch.empty(B, H, S)
    dq, dk, dv = (torch.empty_like(qc) for _ in range(3))
    times = {}
    for rep in range(args.reps + 1):
        for name, fn in runs.items():
            for t in (q, k, v):
                t.grad = None
            t0 = clock()
            o = fn()
            t1 = clock()
            o.backward(d_out)
            t2 = clock()
            times.setdefault(f"{name} fwd", []).append(t1 - t0)
            times.setdefault(f"{name} bwd", []).append(t2 - t1)
        st._prepare_openmp()
        t0 = clock()
        kern.forward_lse(qc.data_ptr(), kc.data_ptr(), vc.data_ptr(), out.data_ptr(),
                         lse.data_ptr(), B, S, S)
        t1 = clock()
        kern.backward(qc.data_ptr(), kc.data_ptr(), vc.data_ptr(), out.data_ptr(),
                      d_out.data_ptr(), lse.data_ptr(), dq.data_ptr(), dk.data_ptr(),
                      dv.data_ptr(), B, S, S)
        t2 = clock()
        times.setdefault("library fwd_lse", []).append(t1 - t0)
        times.setdefault("library bwd", []).append(t2 - t1)
    best = {n: min(t[1:]) * 1e3 for n, t in times.items()}  # rep 0 warms up
    print(f"attention B{B} H{H}/{H} S=T={S} D{D} causal f32, best of {args.reps} (ms):")
    for n, ms in best.items():
        print(f"  {n:16s} {ms:8.2f}")
    f, b = best["sdpa fwd"] / best["sqa fwd"], best["sdpa bwd"] / best["sqa bwd"]
    fb = (best["sdpa fwd"] + best["sdpa bwd"]) / (best["sqa fwd"] + best["sqa bwd"])
    print(f"  sdpa/sqa: fwd {f:.2f}x bwd {b:.2f}x fwd+bwd {fb:.2f}x")


def step_part(args, clock):
    p = example.PRESETS["card"]
    models = {}
    for name, cls in (("sdpa", example.SDPALayer), ("sqa", example.SQALayer),
                      ("sqa blocktime 200", example.SQALayer)):
        torch.manual_seed(0)
        model = example.Decoder(cls, p)
        models[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    batches = list(example.batches(example.corpus(), args.reps + 1, 2, args.seq_len, 0))
    times = {n: [] for n in models}
    for rep, (x, y) in enumerate(batches):
        for name, (model, opt) in models.items():
            if st._openmp is not None:
                st._openmp.blocktime = 200 if "200" in name else 0
            t0 = clock()
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if rep:  # the first step compiles libraries
                times[name].append(clock() - t0)
    tokens = 2 * args.seq_len
    print(f"training step (card, B 2, S {args.seq_len}), best of {args.reps}:")
    for name, t in times.items():
        print(f"  {name:18s} {min(t) * 1e3:8.0f} ms  {tokens / min(t):6.0f} tok/s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("attention", "step", "both"), default="both")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--clock", choices=("wall", "process"), default="wall")
    args = ap.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), clock "
          f"{args.clock}; load average {os.getloadavg()[0]:.1f}")
    if args.part in ("attention", "both"):
        attention_part(args, clock)
    if args.part in ("step", "both"):
        step_part(args, clock)


if __name__ == "__main__":
    main()
