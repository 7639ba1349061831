"""Run a generated CUDA kernel on the CPU and compare it with the reference.

For machines without a GPU. The kernel comes from
``sqa-aot --target cuda --emit mlir`` (the GPU IR before NVVM);
``sqa-test-opt --sqa-emulate-gpu-kernels`` (a test pass) turns it into a
host function whose warp-collective operations (ldmatrix, mma.sync,
shuffles, barriers) call test/lib/cuda/gpu_emulator.c, which implements them from the PTX ISA with one pthread per
GPU thread. Everything else -- index math, cp.async tiles and zero fill,
masking, online softmax, P.V on register fragments, the store -- runs as
generated. What this cannot show: timing, races that the GPU's weaker
memory model would expose, and the NVVM/ptxas back end (the lit tests
check the PTX and ptxas output separately).

The kernel is called as GPUKernelABI.def says (its buffer and scalar lists,
read here) on the grid its #sqa.gpu_launch attribute says.

Prints one PASS/FAIL line per shape, like check.py, and exits 1 on failure.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

import testpaths  # noqa: E402,F401  (makes sqa_mlir importable)

from sqa_mlir import reference as ref  # noqa: E402
from sqa_mlir.aot import aot_arguments  # noqa: E402
from sqa_mlir.cli import parse_shapes, parse_window  # noqa: E402

INCLUDE_DIR = os.path.join(testpaths.REPO_ROOT, "include")
ABI_DEF = os.path.join(INCLUDE_DIR, "sqa", "Transforms", "GPUKernelABI.def")

# The kernel rounds P to the element type before P.V (as FlashAttention
# does), on top of the rounding of the output: allow 4 ulps of the element
# type relative to max |ref| (check.py allows 2 for the CPU kernels, which
# keep P in f32).
TOLERANCES = {"f32": (1e-4, 1e-4), "f16": (2.0**-13, 4 * 2.0**-10),
              "bf16": (2.0**-10, 4 * 2.0**-7)}


def run(cmd):
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


class KernelABI:
    """GPUKernelABI.def's lists: buffer and scalar names in parameter order;
    `kind` "DECODE" or "TRAINING" reads those kernels' lists."""

    def __init__(self, kind="", path=ABI_DEF):
        text = open(path).read()
        prefix = f"SQA_GPU_{kind}_" if kind else "SQA_GPU_"

        def entries(macro):
            return re.findall(rf"^{macro}\((\w+),\s*([^)]*?)\)\s*$", text, re.M)

        self.buffers = [c_name for _, c_name in entries(prefix + "BUFFER")]
        self.scalars = [c_name for _, c_name in entries(prefix + "SCALAR")]
        if not self.buffers or not self.scalars:
            raise RuntimeError(f"{path}: no {prefix}BUFFER/{prefix}SCALAR entries")

    def launch(self, launcher, lib, kernel, grid, geometry, arrays, named):
        """Runs `kernel` on `grid` through the emulator's `launcher`
        (sqa_emu_launch_decode or _training), its buffers from `arrays` and
        its scalars from `named` in ABI order; returns the launcher's status."""
        missing = [n for n in self.buffers if n not in arrays] + \
            [n for n in self.scalars if n not in named]
        if missing:
            raise RuntimeError(f"GPUKernelABI.def lists {missing}; this checker does not know them")
        buffers = [arrays[n] for n in self.buffers]
        pointers = (ctypes.c_void_p * len(buffers))(*[x.ctypes.data if x.size else None
                                                      for x in buffers])
        sizes = (ctypes.c_int64 * len(buffers))(*[x.size for x in buffers])
        scalars = (ctypes.c_int64 * len(self.scalars))(*[named[n] for n in self.scalars])
        entry = ctypes.cast(getattr(lib, f"_mlir_ciface_{kernel}"), ctypes.c_void_p)
        return launcher(entry, *grid, geometry["threads"], geometry["shared_memory_bytes"],
                        pointers, sizes, scalars)

    def scalar_values(self, values):
        """The scalars in ABI order from a name -> value dict."""
        missing = [n for n in self.scalars if n not in values]
        if missing:
            raise RuntimeError(f"GPUKernelABI.def has scalars this checker does not "
                               f"know how to set: {missing}")
        return [values[n] for n in self.scalars]


def launch_geometry(text):
    """{kernel name: #sqa.gpu_launch parameters} of the emitted GPU module;
    decode kernels also have their "decode_stage", training kernels their
    "training_stage"."""
    kernels = {}
    for name, line in re.findall(r"gpu\.func @(\w+)\(([^\n]*)", text):
        params = re.search(r"sqa\.gpu_launch = #sqa\.gpu_launch<([^>]*)>", line)
        if not params:
            continue
        launch = {k: int(v) for k, v in re.findall(r"(\w+) = (\d+)", params.group(1))}
        stage = re.search(r'sqa\.gpu_decode_stage = "(\w+)"', line)
        if stage:
            launch["decode_stage"] = stage.group(1)
        training = re.search(r'sqa\.gpu_training_stage = "(\w+)"', line)
        if training:
            launch["training_stage"] = training.group(1)
        split_keys = re.search(r"sqa\.gpu_decode_split_keys = (\d+)", line)
        if split_keys:
            launch["split_keys"] = int(split_keys.group(1))
        kernels[name] = launch
    return kernels


def emulated_library(args, aot_argv, workdir):
    """Builds the emulated kernels of a CUDA configuration; returns the
    library's path and the kernel-stage MLIR text."""
    kernel_mlir = os.path.join(workdir, "kernel.mlir")
    run([args.sqa_aot, *aot_argv, "--emit", "mlir", "-o", kernel_mlir])
    llvm_mlir = os.path.join(workdir, "emulated.llvm.mlir")
    run([args.sqa_test_opt, kernel_mlir, "--sqa-emulate-gpu-kernels",
         "--sqa-cpu-pipeline=emit-c-interface=false", "-o", llvm_mlir])
    llvm_ir = os.path.join(workdir, "emulated.ll")
    run([args.mlir_translate, "--mlir-to-llvmir", llvm_mlir, "-o", llvm_ir])
    lib = os.path.join(workdir, "libemulated.so")
    run([args.clang, "-O2", "-shared", "-fPIC", "-fuse-ld=lld",
         "--rtlib=compiler-rt", "-Wno-override-module", "-I", INCLUDE_DIR,
         "-o", lib, llvm_ir, os.path.join(testpaths.CUDA_TEST_LIB, "gpu_emulator.c"),
         "-lpthread", "-lm"])
    return lib, open(kernel_mlir).read()


def load_emulated(path, launcher):
    """The emulated kernel library at `path`, its `launcher` (sqa_emu_launch,
    _decode or _training: kernel, grid x/y, threads, shared bytes, buffers,
    sizes, scalars) typed."""
    lib = ctypes.CDLL(path)
    entry = getattr(lib, launcher)
    entry.restype = ctypes.c_int
    entry.argtypes = [ctypes.c_void_p] + [ctypes.c_int64] * 4 + [ctypes.c_void_p] * 3
    return lib


def emulated_stage_kernels(args, config, workdir, stage, launcher):
    """Builds and loads the emulated kernels of a CUDA configuration (an
    aot_arguments dict); returns the library, {kernel: launch} of the
    kernels that have `stage` ("decode_stage" or "training_stage") and the
    kernels' MLIR text."""
    path, text = emulated_library(args, aot_arguments(**config), workdir)
    kernels = {name: launch for name, launch in launch_geometry(text).items()
               if stage in launch}
    return load_emulated(path, launcher), kernels, text


def array_strides(array, layout):
    """Element strides (batch, head, position) of a library-layout array:
    rank 4 in `layout`, or rank 3 (B, H, S) as lse."""
    s = [x // array.itemsize for x in array.strides]
    if array.ndim == 4 and layout == "bshd":
        return [s[0], s[2], s[1]]
    return s[:3]


def stride_scalars(arrays, layout):
    """The ABI's NAME_stride_{batch,head,pos} scalars of `arrays`."""
    return {f"{name}_stride_{dim}": stride for name, array in arrays.items()
            for dim, stride in zip(("batch", "head", "pos"), array_strides(array, layout))}


def build(args, workdir):
    """Builds the emulated kernel library; returns (library, name, launch)."""
    config = dict(q_heads=args.q_heads, kv_heads=args.kv_heads,
                  head_dim=args.head_dim, value_head_dim=args.value_head_dim,
                  dtype=args.dtype, layout=args.layout, name=args.name,
                  target="cuda", gpu_kv_block=args.gpu_kv_block or None,
                  gpu_heads_per_block=args.gpu_heads_per_block or None,
                  gpu_rows_per_warp=args.gpu_rows_per_warp or None)
    if args.causal:
        config["causal"] = args.alignment
    elif args.alignment != "top_left":
        config["alignment"] = args.alignment
    if args.window != (-1, -1):
        config["window"] = f"{args.window[0]},{args.window[1]}"
    lib, text = emulated_library(args, aot_arguments(**config), workdir)
    # The forward kernel (decode and training kernels have their own
    # checkers).
    kernels = {name: launch for name, launch in launch_geometry(text).items()
               if "decode_stage" not in launch and "training_stage" not in launch}
    if len(kernels) != 1:
        raise RuntimeError(f"expected one gpu.func with #sqa.gpu_launch, found "
                           f"{sorted(kernels)}")
    (name, launch), = kernels.items()
    return lib, name, launch


def strides(shape_bhsd, layout):
    """Element strides (batch, head, position) of a C-contiguous tensor."""
    B, H, S, D = shape_bhsd
    if layout == "bhsd":
        return [H * S * D, S * D, D]
    return [S * H * D, D, H * D]


def check_shape(lib, kernel, launch, abi, args, B, S, T, rng):
    Hq, Hkv, D, Dv = args.q_heads, args.kv_heads, args.head_dim, args.value_head_dim
    H = max(Hq, Hkv)
    shapes = [(B, Hq, S, D), (B, Hkv, T, D), (B, Hkv, T, Dv), (B, H, S, Dv)]
    if len(abi.buffers) != len(shapes):
        raise RuntimeError(f"GPUKernelABI.def lists buffers {abi.buffers}; this "
                           "checker knows q, k, v, out")
    values = [ref.to_storage(rng.uniform(-1, 1, s), args.dtype) for s in shapes[:3]]
    as_layout = (lambda x: np.ascontiguousarray(x.transpose(0, 2, 1, 3))
                 if args.layout == "bshd" else x)
    buffers = [as_layout(x) for x in values]
    out_shape = shapes[3] if args.layout == "bhsd" else (B, S, H, Dv)
    out = ref.nan_storage(out_shape, args.dtype)
    buffers.append(out)
    named = {"q_len": S, "kv_len": T,
             "diagonal": T - S if args.alignment == "bottom_right" else 0}
    for buffer, shape in zip(abi.buffers, shapes):
        for dim, stride in zip(("batch", "head", "pos"), strides(shape, args.layout)):
            named[f"{buffer}_stride_{dim}"] = stride
    scalars = abi.scalar_values(named)
    pointers = (ctypes.c_void_p * len(buffers))(*[x.ctypes.data for x in buffers])
    sizes = (ctypes.c_int64 * len(buffers))(*[x.size for x in buffers])
    scalars = (ctypes.c_int64 * len(scalars))(*scalars)
    if launch["output_heads"] != H:
        raise RuntimeError(f"#sqa.gpu_launch says {launch['output_heads']} output "
                           f"heads; the configuration has {H}")
    rows = launch["rows_per_block"]
    grid_x = (S + rows - 1) // rows * B
    grid_y = launch["output_heads"] // launch["heads_per_block"]
    status = lib.sqa_emu_launch(kernel, grid_x, grid_y, launch["threads"],
                                launch["shared_memory_bytes"], pointers, sizes,
                                scalars)
    label = (f"{args.dtype} Hq={Hq} Hkv={Hkv} D={D} Dv={Dv} {args.layout}"
             f" causal={int(args.causal)} align={args.alignment}"
             f" window={args.window[0]},{args.window[1]} B={B} S={S} T={T}")
    if status != 0:
        print(f"FAIL {label} emulator status {status}")
        return False
    got = ref.from_storage(out, args.dtype)
    if args.layout == "bshd":
        got = got.transpose(0, 2, 1, 3)
    want = ref.attention(*[ref.from_storage(x, args.dtype) for x in values],
                         causal=args.causal, alignment=args.alignment,
                         window=args.window)
    err, tol, reasons = ref.compare(got, want, *TOLERANCES[args.dtype])
    print(f"{'FAIL' if reasons else 'PASS'} {label} max_abs_err={err:.3e} tol={tol:.3e}"
          + "".join(f" ({r})" for r in reasons))
    return not reasons


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sqa-aot", required=True)
    p.add_argument("--sqa-test-opt", required=True,
                   help="sqa-opt built with the test passes (test/CMakeLists.txt)")
    p.add_argument("--mlir-translate", required=True)
    p.add_argument("--clang", required=True)
    p.add_argument("--q-heads", type=int, required=True)
    p.add_argument("--kv-heads", type=int, required=True)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--value-head-dim", type=int)
    p.add_argument("--dtype", default="f16", choices=("f16", "bf16", "f32"))
    p.add_argument("--layout", default="bhsd", choices=("bhsd", "bshd"))
    p.add_argument("--causal", action="store_true")
    p.add_argument("--alignment", default="top_left",
                   choices=("top_left", "bottom_right"))
    p.add_argument("--window", type=parse_window, default=(-1, -1))
    p.add_argument("--shapes", type=parse_shapes, default=parse_shapes("1x70x70"),
                   help="BxSxT list, e.g. 1x1x1,2x70x130")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gpu-kv-block", type=int, default=0,
                   help="sqa-aot --gpu-kv-block (default: sqa-aot's)")
    p.add_argument("--gpu-heads-per-block", type=int, default=0,
                   help="sqa-aot --gpu-heads-per-block (default: sqa-aot's)")
    p.add_argument("--gpu-rows-per-warp", type=int, default=0,
                   help="sqa-aot --gpu-rows-per-warp (default: sqa-aot's)")
    p.add_argument("--name", default="emulated",
                   help="symbol prefix, as sqa-aot --name (the kernel is NAME_kernel_attention)")
    p.add_argument("--library-out", metavar="PATH",
                   help="only build the emulated kernel library and copy it to PATH "
                        "(for test/lib/cuda/fake_libcuda.c's $SQA_FAKE_CUDA_KERNELS)")
    args = p.parse_args(argv)
    if args.value_head_dim is None:
        args.value_head_dim = args.head_dim
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="sqa-emu-") as workdir:
        path, name, launch = build(args, workdir)
        if args.library_out:
            shutil.copyfile(path, args.library_out)
            print(f"wrote {args.library_out} (kernel {name})")
            return 0
        abi = KernelABI()
        lib = load_emulated(path, "sqa_emu_launch")
        kernel = ctypes.cast(getattr(lib, f"_mlir_ciface_{name}"), ctypes.c_void_p)
        results = [check_shape(lib, kernel, launch, abi, args, B, S, T, rng)
                   for B, S, T in args.shapes]
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
