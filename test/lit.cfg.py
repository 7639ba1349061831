# -*- Python -*-

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

# Longer names first: lit substitutes in order.
config.substitutions.append(
    ("%sqa-check-layer",
     "%s %s --sqa-aot %s" % (
         python,
         os.path.join(config.sqa_src_root, "python", "sqa_mlir", "check_layer.py"),
         os.path.join(config.sqa_tools_dir, "sqa-aot"))))
config.substitutions.append(
    ("%sqa-check-aot",
     "%s %s --sqa-aot %s" % (
         python,
         os.path.join(config.sqa_src_root, "python", "sqa_mlir", "check_aot.py"),
         os.path.join(config.sqa_tools_dir, "sqa-aot"))))
config.substitutions.append(
    ("%sqa-check",
     "%s %s --sqa-opt %s --mlir-translate %s --clang %s" % (
         python,
         os.path.join(config.sqa_src_root, "python", "sqa_mlir", "check.py"),
         os.path.join(config.sqa_tools_dir, "sqa-opt"),
         os.path.join(config.llvm_tools_dir, "mlir-translate"),
         clang or "clang")))

config.substitutions.append(("%host-cc", clang or "clang"))
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
