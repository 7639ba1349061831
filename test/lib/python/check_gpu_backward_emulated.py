"""Run the generated CUDA training kernels on the CPU and compare with the reference.

For machines without a GPU (see check_gpu_emulated.py for how kernels are
emulated). The kernels come from ``sqa-aot --target cuda --emit mlir``: the
forward with logsumexp (training stage "lse") and the backward's dK/dV and
dQ kernels (sqa-lower-attention-backward-to-gpu). They are called as
GPUKernelABI.def's training lists say, on the grids it states, through
gpu_emulator.c's sqa_emu_launch_training, in the order a training step runs
them: forward with lse, then dK/dV and dQ on the kernel's own out and lse.

out and lse are compared with reference.attention_lse (lse -inf exactly for
rows that see no key), the gradients with reference.attention_backward
(float64), with check_backward.py's tolerances; dq of a row that sees no key
must be exactly 0. Outputs start as NaN: a kernel that skips an element
fails.

  backward kernels: dkdv=<tensor-core|simt> dq=<tensor-core|simt>
  PASS <config> B=.. S=.. T=.. out=<err> lse=<err> dq=<err> dk=<err> dv=<err>
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import numpy as np

import testpaths  # noqa: E402,F401  (makes sqa_mlir importable)

from check_backward import GRAD_TOLERANCES, LSE_TOLERANCE, MASKS, mask_args  # noqa: E402
from check_gpu_emulated import TOLERANCES, KernelABI, emulated_stage_kernels  # noqa: E402
from check_gpu_emulated import stride_scalars  # noqa: E402
from sqa_mlir import reference as ref  # noqa: E402
from sqa_mlir.cli import parse_shapes  # noqa: E402


def launch(lib, abi, kernels, stage, arrays, named, grid, layout):
    (name, geometry), = [(n, g) for n, g in kernels.items()
                         if g.get("training_stage") == stage]
    named.update(stride_scalars(arrays, layout))
    return abi.launch(lib.sqa_emu_launch_training, lib, name, grid(geometry), geometry,
                      arrays, named)


def check_shape(lib, abi, kernels, args, B, S, T, rng):
    Hq, Hkv, D, Dv, dtype = args.q_heads, args.kv_heads, args.head_dim, \
        args.value_head_dim, args.dtype
    H = max(Hq, Hkv)
    bhsd = [(B, Hq, S, D), (B, Hkv, T, D), (B, Hkv, T, Dv), (B, H, S, Dv)]
    q, k, v, d_out = [ref.to_storage(rng.standard_normal(s), dtype) for s in bhsd]
    f64 = [ref.from_storage(x, dtype) for x in (q, k, v, d_out)]

    def as_layout(x):
        return np.ascontiguousarray(x.transpose(0, 2, 1, 3)) if args.layout == "bshd" else x

    def from_layout(x):
        return x.transpose(0, 2, 1, 3) if args.layout == "bshd" else x

    q, k, v, d_out = map(as_layout, (q, k, v, d_out))
    out = as_layout(ref.nan_storage(bhsd[3], dtype))
    lse = np.full((B, H, S), np.nan, np.float32)
    dq = as_layout(ref.nan_storage(bhsd[0], dtype))
    dk = as_layout(ref.nan_storage(bhsd[1], dtype))
    dv = as_layout(ref.nan_storage(bhsd[2], dtype))
    kw = mask_args(args.mask)
    named = {"q_len": S, "kv_len": T,
             "diagonal": T - S if kw["alignment"] == "bottom_right" else 0}
    empty = q[:0]
    forward = dict(q=q, k=k, v=v, out=out, d_out=empty, lse=lse, dq=empty,
                   dk=empty, dv=empty)
    label = (f"{dtype} Hq={Hq} Hkv={Hkv} D={D} Dv={Dv} {args.layout} mask={args.mask}"
             f" B={B} S={S} T={T}")
    status = launch(lib, abi, kernels, "lse", forward, dict(named),
                    lambda g: (-(-S // g["rows_per_block"]) * B,
                               g["output_heads"] // g["heads_per_block"]),
                    args.layout)
    if status:
        print(f"FAIL {label} emulator status {status} in lse")
        return False
    backward = dict(q=q, k=k, v=v, out=out, d_out=d_out, lse=lse, dq=dq, dk=dk, dv=dv)
    for stage, length in (("dkdv", T), ("dq", S)):
        status = launch(lib, abi, kernels, stage, backward, dict(named),
                        lambda g: (-(-length // g["rows_per_block"]) * B,
                                   g["output_heads"] // g["heads_per_block"]),
                        args.layout)
        if status:
            print(f"FAIL {label} emulator status {status} in {stage}")
            return False

    reasons = []
    want_out, want_lse = ref.attention_lse(*f64[:3], **kw)
    err, _, why = ref.compare(ref.from_storage(from_layout(out), dtype), want_out,
                              *TOLERANCES[dtype])
    errs = [f"out={err:.3g}"]
    reasons += [f"out: {r}" for r in why]
    no_key = np.isneginf(want_lse)
    if not np.array_equal(np.isneginf(lse), no_key):
        reasons.append("lse is -inf exactly where the row sees no key: no")
    lse_err = float(np.nanmax(np.abs(np.where(no_key, 0, lse - np.where(no_key, 0, want_lse))),
                              initial=0.0))
    if np.isnan(lse).any() or not lse_err <= LSE_TOLERANCE:
        reasons.append(f"lse error {lse_err:.3g} > {LSE_TOLERANCE} (or NaN)")
    errs.append(f"lse={lse_err:.3g}")
    want = ref.attention_backward(*f64, **kw)
    atol, rtol = GRAD_TOLERANCES[dtype]
    for what, got, w in zip(("dq", "dk", "dv"), (dq, dk, dv), want):
        err, tol, why = ref.compare(ref.from_storage(from_layout(got), dtype), w, atol, rtol)
        errs.append(f"{what}={err:.3g}/{tol:.3g}")
        reasons += [f"{what}: {r}" for r in why]
    rows = no_key.any(axis=(0, 1))
    if rows.any() and np.any(ref.from_storage(from_layout(dq), dtype)[:, :, rows, :]):
        reasons.append("dq of a row that sees no key is not 0")
    print(f"{'FAIL' if reasons else 'PASS'} {label} " + " ".join(errs)
          + (f" ({'; '.join(reasons)})" if reasons else ""))
    return not reasons


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sqa-aot", required=True)
    p.add_argument("--sqa-test-opt", required=True)
    p.add_argument("--mlir-translate", required=True)
    p.add_argument("--clang", required=True)
    p.add_argument("--q-heads", type=int, required=True)
    p.add_argument("--kv-heads", type=int, required=True)
    p.add_argument("--head-dim", type=int, default=16)
    p.add_argument("--value-head-dim", type=int)
    p.add_argument("--dtype", default="f32", choices=("f16", "bf16", "f32"))
    p.add_argument("--layout", default="bhsd", choices=("bhsd", "bshd"))
    p.add_argument("--mask", default="none", choices=list(MASKS))
    p.add_argument("--shapes", type=parse_shapes, default=parse_shapes("1x20x20"),
                   help="BxSxT list, e.g. 1x1x1,2x70x130")
    p.add_argument("--gpu-backward", choices=("tensor-core", "simt"),
                   help="sqa-aot --gpu-backward (default: its default)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.value_head_dim is None:
        args.value_head_dim = args.head_dim
    config = dict(q_heads=args.q_heads, kv_heads=args.kv_heads, head_dim=args.head_dim,
                  value_head_dim=args.value_head_dim, dtype=args.dtype,
                  layout=args.layout, name="emulated", target="cuda",
                  gpu_backward=args.gpu_backward)
    m = MASKS[args.mask]
    if "causal" in m:
        config["causal"] = m["causal"]
    elif "alignment" in m:
        config["alignment"] = m["alignment"]
    if "window" in m:
        config["window"] = f"{m['window'][0]},{m['window'][1]}"
    rng = np.random.default_rng(args.seed)
    abi = KernelABI("TRAINING")
    with tempfile.TemporaryDirectory(prefix="sqa-emu-bwd-") as workdir:
        lib, kernels, text = emulated_stage_kernels(args, config, workdir, "training_stage",
                                              "sqa_emu_launch_training")
        if sorted(g["training_stage"] for g in kernels.values()) != ["dkdv", "dq", "lse"]:
            raise RuntimeError(f"expected the lse, dkdv and dq kernels, found {sorted(kernels)}")
        # Which kernels the lowering chose: tensor cores (mma.sync) or SIMT.
        bodies = {chunk.split("(", 1)[0]: chunk for chunk in text.split("gpu.func @")[1:]}
        print("backward kernels: " + " ".join(
            f"{g['training_stage']}={'tensor-core' if 'mma.sync' in bodies[n] else 'simt'}"
            for n, g in sorted(kernels.items(), key=lambda kv: kv[1]["training_stage"])
            if g["training_stage"] != "lse"))
        results = [check_shape(lib, abi, kernels, args, B, S, T, rng)
                   for B, S, T in args.shapes]
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
