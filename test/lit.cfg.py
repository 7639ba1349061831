# -*- Python -*-

import json
import os
import shutil
import subprocess

import lit.formats
import lit.util
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "SQA"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py"]

config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.sqa_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.llvm_shlib_ext = ".so"
config.substitutions.append(("%shlibext", config.llvm_shlib_ext))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.sqa_tools_dir, append_path=True)

python = config.python_executable or shutil.which("python3")
clang = shutil.which("clang", path=config.llvm_tools_dir) or shutil.which(
    "clang-22"
)

tools = [
    "sqa-opt",
    "sqa-test-opt",
    "sqa-aot",
    ToolSubst("llvm-nm", unresolved="ignore"),
    ToolSubst("mlir-runner", unresolved="ignore"),
    ToolSubst("mlir-translate", unresolved="ignore"),
]
llvm_config.add_tool_substitutions(tools, [config.sqa_tools_dir, config.llvm_tools_dir])

# The OpenMP runtime, which the flash kernel's parallel loops call.
config.substitutions.append(
    ("%libomp", os.path.join(config.llvm_lib_dir, "libomp" + config.llvm_shlib_ext)))
# Runtime support libraries for mlir-runner (printMemref*, timers).
config.substitutions.append(
    ("%mlir_runner_utils",
     os.path.join(config.llvm_lib_dir, "libmlir_runner_utils" + config.llvm_shlib_ext)))
config.substitutions.append(
    ("%mlir_c_runner_utils",
     os.path.join(config.llvm_lib_dir, "libmlir_c_runner_utils" + config.llvm_shlib_ext)))

# The test checkers (test/lib/python) and C test doubles (test/lib/cuda).
test_python = os.path.join(config.sqa_src_root, "test", "lib", "python")
sqa_aot = os.path.join(config.sqa_tools_dir, "sqa-aot")


def checker(script, *args):
    return " ".join([python, os.path.join(test_python, script), *args])


# Longer names first: lit substitutes in order (%sqa-check-gpu-emulated,
# -cuda, -aot and -layer before %sqa-check).
config.substitutions.append(
    ("%sqa-check-gpu-backward-emulated",
     checker("check_gpu_backward_emulated.py", "--sqa-aot", sqa_aot,
             "--sqa-test-opt", os.path.join(config.sqa_tools_dir, "sqa-test-opt"),
             "--mlir-translate", os.path.join(config.llvm_tools_dir, "mlir-translate"),
             "--clang", clang or "clang")))
config.substitutions.append(
    ("%sqa-check-gpu-decode-emulated",
     checker("check_gpu_decode_emulated.py", "--sqa-aot", sqa_aot,
             "--sqa-test-opt", os.path.join(config.sqa_tools_dir, "sqa-test-opt"),
             "--mlir-translate", os.path.join(config.llvm_tools_dir, "mlir-translate"),
             "--clang", clang or "clang")))
config.substitutions.append(
    ("%sqa-check-gpu-emulated",
     checker("check_gpu_emulated.py", "--sqa-aot", sqa_aot,
             "--sqa-test-opt", os.path.join(config.sqa_tools_dir, "sqa-test-opt"),
             "--mlir-translate", os.path.join(config.llvm_tools_dir, "mlir-translate"),
             "--clang", clang or "clang")))
config.substitutions.append(
    ("%sqa-check-cuda", checker("check_cuda.py", "--sqa-aot", sqa_aot)))
config.substitutions.append(
    ("%sqa-check-layer-decode",
     checker("check_layer_decode.py", "--sqa-aot", sqa_aot)))
config.substitutions.append(
    ("%sqa-check-layer", checker("check_layer.py", "--sqa-aot", sqa_aot)))
config.substitutions.append(
    ("%sqa-check-aot", checker("check_aot.py", "--sqa-aot", sqa_aot)))
config.substitutions.append(
    ("%sqa-check-bf16-dot-emulated",
     checker("check_bf16_dot_emulated.py", "--sqa-aot", sqa_aot, "--clang", clang or "clang",
             "--llvm-lib-dir", config.llvm_lib_dir)))
config.substitutions.append(
    ("%sqa-check-decode", checker("check_decode.py", "--sqa-aot", sqa_aot)))
config.substitutions.append(
    ("%sqa-check-backward", checker("check_backward.py", "--sqa-aot", sqa_aot)))
config.substitutions.append(("%sqa-check", checker("check.py", "--sqa-aot", sqa_aot)))

config.substitutions.append(("%host-cc", clang or "clang"))
config.substitutions.append(
    ("%sqa-test-cuda-dir", os.path.join(config.sqa_src_root, "test", "lib", "cuda")))
config.substitutions.append(
    ("%sqa-examples-dir", os.path.join(config.sqa_src_root, "python", "examples")))
config.substitutions.append(
    ("%sqa-python-root", os.path.join(config.sqa_src_root, "python")))
config.substitutions.append(
    ("%sqa-include-dir", os.path.join(config.sqa_src_root, "include")))
config.substitutions.append(("%numpy_python", python))


# Integration tests check against a numpy reference.
try:
    subprocess.check_call([python, "-c", "import numpy"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config.available_features.add("numpy")
except (OSError, subprocess.CalledProcessError):
    pass
if clang:
    config.available_features.add("host-cc")
# `torch`: PyTorch imports (the sqa_mlir.torch tests; CI may not install it).
try:
    subprocess.check_call([python, "-c", "import torch"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=300)
    config.available_features.add("torch")
except (OSError, subprocess.SubprocessError):
    lit_config.note("torch does not import: the sqa_mlir.torch tests are unsupported")
# `sqa-backward`: sqa-aot writes NAME_forward_lse/NAME_backward (its embedded
# C templates name them), which the gradient tests need.
try:
    with open(sqa_aot, "rb") as f:
        if b"_forward_lse(" in f.read():
            config.available_features.add("sqa-backward")
except OSError:
    pass
# `pip install ./python` offline (--no-build-isolation) needs a setuptools
# that builds wheels: >= 70.1 alone, or an older one with `wheel`.
try:
    subprocess.check_call(
        [python, "-c", "import setuptools, sys\n"
         "v = tuple(int(x) for x in setuptools.__version__.split('.')[:2])\n"
         "if v < (70, 1): import wheel\n"
         "sys.exit(0 if v >= (61, 0) else 1)"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config.available_features.add("pip-build")
except (OSError, subprocess.CalledProcessError):
    pass


# x86 ISA levels of this CPU, as the libraries' dispatcher names them:
# `avx2` (x86-64-v3: AVX2 + FMA), `avx512` (x86-64-v4: AVX-512 F/CD/BW/DQ/VL)
# and `avx512bf16`. Tests execute the levels the CPU has (SQA_CPU_LEVEL) and
# check the others in the generated assembly.
def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


flags = cpu_flags()
isa_levels = []
if {"avx2", "fma", "bmi2"} <= flags:
    isa_levels.append("avx2")
    if {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        isa_levels.append("avx512")
        if "avx512_bf16" in flags:
            isa_levels.append("avx512bf16")
for level in isa_levels:
    config.available_features.add(level)
lit_config.note(f"CPU ISA levels: {', '.join(isa_levels) or 'none'}")

# CUDA. `ptxas`: the PTX assembler that `sqa-aot --target cuda` needs to make
# its cubin ($CUDA_HOME/bin, $CUDA_PATH/bin, /usr/local/cuda/bin or PATH);
# %ptxas is its path, and its directory is appended to PATH for sqa-aot.
ptxas = None
for cuda_dir in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
    if cuda_dir:
        ptxas = ptxas or shutil.which("ptxas", path=os.path.join(cuda_dir, "bin"))
ptxas = ptxas or shutil.which("ptxas")
# The CUDA toolkit variables reach the tests as the user set them (sqa-aot
# --target cuda may look for the toolkit, e.g. libdevice, through them).
llvm_config.with_system_environment(["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"])
if ptxas:
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", ptxas))
    llvm_config.with_environment("PATH", os.path.dirname(ptxas), append_path=True)

# `cuda-gpu`: a GPU the CUDA driver can use (sqa_mlir/cuda_driver.py, run in
# a subprocess so that a misbehaving driver cannot take lit down), plus
# `cuda-sm_XY` for its architecture. SQA_TEST_NO_CUDA_GPU=1 skips the probe
# (and with it every test that REQUIRES: cuda-gpu).
if os.environ.get("SQA_TEST_NO_CUDA_GPU", "") not in ("", "0"):
    lit_config.note("CUDA GPU probe skipped (SQA_TEST_NO_CUDA_GPU)")
else:
    probe = os.path.join(config.sqa_src_root, "python", "sqa_mlir", "cuda_driver.py")
    try:
        out = subprocess.run([python, probe, "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, timeout=120).stdout
        gpu = json.loads(out.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
        gpu = {"available": False, "reason": f"probe failed: {e}"}
    if gpu.get("available"):
        config.available_features.add("cuda-gpu")
        if gpu.get("chip"):
            config.available_features.add("cuda-" + gpu["chip"])
        lit_config.note(f"CUDA GPU: {gpu.get('reason')}")
    else:
        lit_config.note(f"no CUDA GPU ({gpu.get('reason')}): tests that REQUIRE cuda-gpu "
                        "are unsupported")
