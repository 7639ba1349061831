"""The training example (python/examples/train_sqa_decoder.py), tiny preset:
the loss falls; with --attention both the SQA run's losses match the SDPA
run's at the same seed; two DDP processes (torchrun, gloo) produce the
single-process gradients and parameters after two steps.

  python3 train_check.py SQA_AOT CACHE_DIR EXAMPLES_DIR sdpa|sqa|both OUTDIR
"""

import os
import subprocess
import sys

os.environ["SQA_AOT"] = sys.argv[1]
os.environ["SQA_MLIR_CACHE"] = sys.argv[2]
examples, attention, outdir = sys.argv[3], sys.argv[4], sys.argv[5]
sys.path.insert(0, examples)

import torch  # noqa: E402

import train_sqa_decoder as ex  # noqa: E402

script = os.path.join(examples, "train_sqa_decoder.py")
tiny = ["--preset", "tiny", "--batch", "4", "--seq-len", "64", "--log-every", "1000"]


class Args:
    preset, steps, batch, seq_len, lr, seed, log_every = "tiny", 40, 4, 64, 3e-3, 0, 1000


losses = {}
for name in (("sdpa", "sqa") if attention == "both" else (attention,)):
    cls = ex.SDPALayer if name == "sdpa" else ex.SQALayer
    _, losses[name] = ex.train(name, cls, Args)
    first, last = losses[name][0], sum(losses[name][-5:]) / 5
    print(f"{name} loss falls: {last < 0.8 * first} ({first:.3f} -> {last:.3f})")
if attention == "both":
    rel = max(abs(a - b) / a for a, b in zip(losses["sdpa"], losses["sqa"]))
    print(f"sqa losses match sdpa over {Args.steps} steps: {rel < 1e-3} "
          f"(max relative difference {rel:.1e})")

name = "sqa" if attention == "both" else attention
single, ddp = os.path.join(outdir, "single.pt"), os.path.join(outdir, "ddp.pt")
common = [script, "--attention", name, "--steps", "2", *tiny]
subprocess.run([sys.executable, *common, "--dump", single], check=True,
               stdout=subprocess.DEVNULL)
subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2", *common, "--dump", ddp], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
a, b = torch.load(single), torch.load(ddp)
grad = max((a[n][1] - b[n][1]).abs().max().item() for n in a)
param = max((a[n][0] - b[n][0]).abs().max().item() for n in a)
scale = max(a[n][1].abs().max().item() for n in a)
print(f"{name} ddp x2 equals one process: {a.keys() == b.keys() and grad <= 1e-5 * scale}"
      f" (max gradient difference {grad:.1e} of {scale:.1e}, parameters {param:.1e})")
