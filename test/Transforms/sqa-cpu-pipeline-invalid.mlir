// RUN: not sqa-opt %s --sqa-cpu-pipeline="buffer-alignment=abc" 2>&1 | FileCheck %s --check-prefix=BADOPT
// RUN: not sqa-opt %s --pass-pipeline='builtin.module(sqa-cpu-pipeline{no-such-option=1})' 2>&1 | FileCheck %s --check-prefix=UNKNOWN

// Bad pipeline options are reported, with a non-zero exit.
// BADOPT: --buffer-alignment option: 'abc' value invalid
// UNKNOWN: no-such-option

func.func @f() {
  return
}

// RUN: not sqa-opt %s --sqa-cpu-pipeline="attention-kernel=fast" 2>&1 | FileCheck %s --check-prefix=KERNEL
// KERNEL: attention-kernel must be 'flash' or 'reference', got 'fast'
