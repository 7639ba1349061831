// Every kernel-shape option outside its valid set is an error that names the
// option and the value (include/sqa/Transforms/OptionLimits.h), never a
// crash, a hang or a silent build.

// RUN: not sqa-opt %s --sqa-tile-attention=query-tile=0 2>&1 | FileCheck %s --check-prefix=QT0
// RUN: not sqa-opt %s --sqa-tile-attention=query-tile=65537 2>&1 | FileCheck %s --check-prefix=QTBIG
// RUN: not sqa-opt %s --sqa-tile-attention=head-tile=-1 2>&1 | FileCheck %s --check-prefix=HTNEG
// RUN: not sqa-opt %s --sqa-tile-attention=head-tile=4611686018427387904 2>&1 | FileCheck %s --check-prefix=HTBIG
// QT0: error: query-tile must be in [1, 65536], got 0
// QTBIG: error: query-tile must be in [1, 65536], got 65537
// HTNEG: error: head-tile must be in [0, 65536], got -1
// HTBIG: error: head-tile must be in [0, 65536], got 4611686018427387904

// RUN: not sqa-opt %s --sqa-lower-projections=vector-width=0 2>&1 | FileCheck %s --check-prefix=PW0
// RUN: not sqa-opt %s --sqa-lower-projections=mr=1000000000 2>&1 | FileCheck %s --check-prefix=PMR
// RUN: not sqa-opt %s --sqa-lower-projections=nr=0 2>&1 | FileCheck %s --check-prefix=PNR
// RUN: not sqa-opt %s --sqa-lower-projections=kc=-1 2>&1 | FileCheck %s --check-prefix=PKC
// RUN: not sqa-opt %s --sqa-lower-projections=nc=9223372036854775807 2>&1 | FileCheck %s --check-prefix=PNC
// PW0: error: vector-width must be in [1, 64], got 0
// PMR: error: mr must be in [1, 32], got 1000000000
// PNR: error: nr must be in [1, 16], got 0
// PKC: error: kc must be in [1, 65536], got -1
// PNC: error: nc must be in [1, 65536], got 9223372036854775807

// RUN: not sqa-opt %s --sqa-cpu-pipeline=vector-width=0 2>&1 | FileCheck %s --check-prefix=CW0
// RUN: not sqa-opt %s --sqa-cpu-pipeline=query-tile=-64 2>&1 | FileCheck %s --check-prefix=CQT
// RUN: not sqa-opt %s --sqa-cpu-pipeline=backward-query-block=0 2>&1 | FileCheck %s --check-prefix=CBQB
// RUN: not sqa-opt %s --sqa-cpu-pipeline=kv-block=0 2>&1 | FileCheck %s --check-prefix=CKV0
// RUN: not sqa-opt %s --sqa-cpu-pipeline=kv-block=72 2>&1 | FileCheck %s --check-prefix=CKVMUL
// RUN: not sqa-opt %s --sqa-cpu-pipeline=mr=33 2>&1 | FileCheck %s --check-prefix=CMR
// RUN: not sqa-opt %s --sqa-cpu-pipeline=nr=4611686018427387904 2>&1 | FileCheck %s --check-prefix=CNR
// RUN: not sqa-opt %s --sqa-cpu-pipeline=buffer-alignment=3 2>&1 | FileCheck %s --check-prefix=CAL3
// RUN: not sqa-opt %s --sqa-cpu-pipeline=buffer-alignment=0 2>&1 | FileCheck %s --check-prefix=CAL0
// CW0: error: vector-width must be in [1, 64], got 0
// CQT: error: query-tile must be in [1, 65536], got -64
// CBQB: error: backward-query-block must be in [1, 65536], got 0
// CKV0: error: kv-block must be in [1, 65536], got 0
// CKVMUL: error: kv-block (72) must be a multiple of nr * vector-width (16)
// CMR: error: mr must be in [1, 32], got 33
// CNR: error: nr must be in [1, 16], got 4611686018427387904
// CAL3: error: buffer-alignment must be a power of two in [1, 2^30], got 3
// CAL0: error: buffer-alignment must be a power of two in [1, 2^30], got 0

// RUN: not sqa-opt %s --sqa-cuda-pipeline="format=isa chip=sm_85" 2>&1 | FileCheck %s --check-prefix=GCHIP
// RUN: not sqa-opt %s --sqa-cuda-pipeline="format=isa chip=sm_90abc" 2>&1 | FileCheck %s --check-prefix=GCHIPSUFFIX
// RUN: not sqa-opt %s --sqa-cuda-pipeline="format=isa chip=sm_100" 2>&1 | FileCheck %s --check-prefix=GPTX
// RUN: not sqa-opt %s --sqa-cuda-pipeline="format=isa features=+foo" 2>&1 | FileCheck %s --check-prefix=GFEAT
// RUN: not sqa-opt %s --sqa-cuda-pipeline="format=isa opt-level=4" 2>&1 | FileCheck %s --check-prefix=GOPT
// RUN: not sqa-opt %s --sqa-cuda-pipeline="format=isa kv-block=4611686018427387904" 2>&1 | FileCheck %s --check-prefix=GKV
// RUN: not sqa-opt %s --sqa-cuda-pipeline="format=isa kv-block=24" 2>&1 | FileCheck %s --check-prefix=GKV24
// RUN: not sqa-opt %s --sqa-cuda-pipeline="format=isa heads-per-block=-1" 2>&1 | FileCheck %s --check-prefix=GHPB
// RUN: not sqa-opt %s --sqa-cuda-pipeline="format=isa heads-per-block=3" 2>&1 | FileCheck %s --check-prefix=GHPB3
// RUN: not sqa-opt %s --sqa-cuda-pipeline="format=isa rows-per-warp=-16" 2>&1 | FileCheck %s --check-prefix=GRPW
// RUN: not sqa-opt %s --sqa-cuda-pipeline="format=isa rows-per-warp=0" 2>&1 | FileCheck %s --check-prefix=GRPW0
// GCHIP: error: chip 'sm_85' is not an architecture LLVM's NVPTX back end knows
// GCHIPSUFFIX: error: chip 'sm_90abc' is not an architecture LLVM's NVPTX back end knows
// GPTX: error: chip sm_100 needs +ptx86 or later in features, got '+ptx80'
// GFEAT: error: features must be a comma-separated list of +ptxNN (32 <= NN <= 90), got '+foo'
// GOPT: error: opt-level must be in [0, 3], got 4
// GKV: error: kv-block must be in [1, 65536], got 4611686018427387904
// GKV24: error: 'sqa.attention' op kv-block must be a positive multiple of 16, got 24
// GHPB: error: heads-per-block must be 0 (automatic), 1, 2 or 4, got -1
// GHPB3: error: heads-per-block must be 0 (automatic), 1, 2 or 4, got 3
// GRPW: error: rows-per-warp must be 16 or 32, got -16
// GRPW0: error: rows-per-warp must be 16 or 32, got 0

// With valid options the same input lowers.
// RUN: sqa-opt %s --sqa-tile-attention=query-tile=65536 | FileCheck %s --check-prefix=OK
// OK: scf.forall

func.func @f(%q: tensor<1x4x8x16xf16>, %k: tensor<1x2x8x16xf16>, %v: tensor<1x2x8x16xf16>, %o: tensor<1x4x8x16xf16>) -> tensor<1x4x8x16xf16> {
  %r = sqa.attention ins(%q, %k, %v : tensor<1x4x8x16xf16>, tensor<1x2x8x16xf16>, tensor<1x2x8x16xf16>) outs(%o : tensor<1x4x8x16xf16>) -> tensor<1x4x8x16xf16>
  return %r : tensor<1x4x8x16xf16>
}
