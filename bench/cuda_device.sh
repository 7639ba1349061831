#!/usr/bin/env bash
# One command for a CUDA session:
#
#   bash bench/cuda_device.sh [--libs DIR] [--quick] [--f16] [--check-only | --bench-only]
#
# 1. If build/bin/sqa-aot exists and has --target cuda (--chip): build every
#    library the GPU checks need (the %sqa-check-cuda lines of
#    test/Integration/CUDA/*.test) into DIR/check, with DIR/check/manifest.json,
#    and every library of the benchmark into DIR/bench. No GPU needed.
# 2. If a GPU is usable (python/sqa_mlir/cuda_driver.py): run every recorded
#    check against the prebuilt libraries (check_cuda.py --lib-dir DIR/check
#    --all), then bench/cuda_bench.py --lib-dir DIR/bench, which writes
#    bench/results/cuda-<date>.md and .json.
#    Decode (NAME_decode of CUDA libraries): DIR/decode is prepared by
#    bench/cuda_decode_bench.py --prepare; on the GPU, check_decode.py
#    --target cuda checks each of its libraries against numpy, then
#    cuda_decode_bench.py times them (DIR/decode-<date>.json).
#    Training (NAME_forward_lse / NAME_backward of CUDA libraries): DIR/backward
#    is prepared by check_backward.py --target cuda --prepare; on the GPU the
#    same script checks each library against numpy (per dtype).
#    Tensor-core backward: DIR/backward-tc is prepared by
#    bench/cuda_backward_bench.py --prepare (each configuration with
#    --gpu-backward tensor-core and simt); on the GPU it checks both against
#    numpy (and for determinism), then times NAME_backward of both in one run
#    (DIR/backward-tc-<date>.json).
# 3. Print a summary. Exit status 0 only if nothing failed.
#
# The GPU machine needs only DIR, python/, test/lib/python/ and bench/ (plus
# Python 3 with numpy and, for the benchmark, PyTorch with CUDA); no LLVM, no
# build. So: run it
# here to prepare, carry DIR (default build/cuda-libs) to the GPU machine, run
# it there. When $OUT is set (the device tool's output folder), the check log
# and the benchmark results are copied into it.
#
# Options:
#   --libs DIR      prebuilt libraries (default build/cuda-libs)
#   --quick         the benchmark's --quick subset
#   --f16           the benchmark also in f16
#   --check-only    skip the benchmark
#   --bench-only    skip the checks
#   --no-prepare    do not build, even where sqa-aot exists
#   --bench-args "..."  more arguments for bench/cuda_bench.py
#
# Status: written before the CUDA target and without a GPU; the preparing
# step and the no-GPU path run on the development machine, the GPU steps have
# not been run yet.
set -uo pipefail
cd "$(dirname "$0")/.."

LIBS=build/cuda-libs
PY=${PYTHON:-python3}
SQA_AOT=${SQA_AOT:-build/bin/sqa-aot}
do_check=1
do_bench=1
do_prepare=1
bench_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --libs) LIBS=$2; shift 2 ;;
    --libs=*) LIBS=${1#--libs=}; shift ;;
    --quick) bench_args+=(--quick); shift ;;
    --f16) bench_args+=(--f16); shift ;;
    --check-only) do_bench=0; shift ;;
    --bench-only) do_check=0; shift ;;
    --no-prepare) do_prepare=0; shift ;;
    --bench-args) read -r -a extra <<<"$2"; bench_args+=("${extra[@]}"); shift 2 ;;
    -h|--help) sed -n '2,42p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

stamp=$(date +%Y-%m-%d-%H%M%S)
status=0
summary=()
note() { summary+=("$1"); }

# --- 1. prepare -------------------------------------------------------------
if [ "$do_prepare" = 1 ] && [ -x "$SQA_AOT" ]; then
  if "$SQA_AOT" --help 2>/dev/null | grep -q -- '--chip'; then
    mkdir -p "$LIBS"
    if [ "$do_check" = 1 ]; then
      echo "== preparing check libraries into $LIBS/check"
      if ls test/Integration/CUDA/*.test >/dev/null 2>&1 && \
         "$PY" test/lib/python/check_cuda.py --sqa-aot "$SQA_AOT" --prepare "$LIBS/check" \
           --from-lit test/Integration/CUDA/*.test; then
        note "prepare: check libraries built into $LIBS/check"
      else
        note "prepare: check libraries FAILED (see above)"; status=1
      fi
    fi
    if [ "$do_bench" = 1 ]; then
      echo "== preparing benchmark libraries into $LIBS/bench"
      if "$PY" bench/cuda_bench.py --sqa-aot "$SQA_AOT" --prepare "$LIBS/bench" \
           ${bench_args[@]+"${bench_args[@]}"}; then
        note "prepare: benchmark libraries built into $LIBS/bench"
      else
        note "prepare: benchmark libraries FAILED (see above)"; status=1
      fi
    fi
    echo "== preparing backward libraries into $LIBS/backward"
    bfail=0
    for dt in f32 bf16 f16; do
      "$PY" test/lib/python/check_backward.py --sqa-aot "$SQA_AOT" --target cuda \
        --dtype "$dt" --prepare "$LIBS/backward" || bfail=1
    done
    if [ "$bfail" = 0 ]; then
      note "prepare: backward libraries built into $LIBS/backward"
    else
      note "prepare: backward libraries FAILED (see above)"; status=1
    fi
    echo "== preparing tensor-core backward libraries into $LIBS/backward-tc"
    if "$PY" bench/cuda_backward_bench.py --sqa-aot "$SQA_AOT" --prepare "$LIBS/backward-tc"; then
      note "prepare: tensor-core backward libraries built into $LIBS/backward-tc"
    else
      note "prepare: tensor-core backward libraries FAILED (see above)"; status=1
    fi
    echo "== preparing decode libraries into $LIBS/decode"
    if "$PY" bench/cuda_decode_bench.py --sqa-aot "$SQA_AOT" --prepare "$LIBS/decode"; then
      note "prepare: decode libraries built into $LIBS/decode"
    else
      note "prepare: decode libraries FAILED (see above)"; status=1
    fi
  else
    note "prepare: skipped ($SQA_AOT has no --target cuda / --chip yet)"
  fi
else
  note "prepare: skipped (no $SQA_AOT here, or --no-prepare); using $LIBS as it is"
fi

# --- 2. GPU -----------------------------------------------------------------
gpu=$("$PY" python/sqa_mlir/cuda_driver.py 2>&1)
gpu_ok=$?
echo "== $gpu"
if [ "$gpu_ok" != 0 ]; then
  note "GPU: none ($gpu); carry $LIBS to a GPU machine and run: bash bench/cuda_device.sh --libs $LIBS"
else
  note "$gpu"
  if [ "$do_check" = 1 ]; then
    log="$LIBS/check-$stamp.log"
    mkdir -p "$LIBS"
    echo "== checks ($LIBS/check), log $log"
    if [ -f "$LIBS/check/manifest.json" ]; then
      "$PY" test/lib/python/check_cuda.py --lib-dir "$LIBS/check" --all 2>&1 | tee "$log"
      rc=${PIPESTATUS[0]}
      line=$(grep '^all: ' "$log" | tail -1)
      if [ "$rc" = 0 ]; then
        note "checks: passed: ${line:-?} (log $log)"
      else
        note "checks: FAILED (exit $rc): ${line:-no summary} (log $log)"; status=1
        grep '^FAIL ' "$log" | head -20 | sed 's/^/    /' >"$log.fails"
      fi
      [ -n "${OUT:-}" ] && cp "$log" "$OUT/" 2>/dev/null
    else
      note "checks: FAILED: no $LIBS/check/manifest.json (prepare first where sqa-aot is)"; status=1
    fi
  fi
  if [ "$do_bench" = 1 ]; then
    if [ -d "$LIBS/bench" ]; then
      echo "== benchmark ($LIBS/bench)"
      blog="$LIBS/bench-$stamp.log"
      "$PY" bench/cuda_bench.py --lib-dir "$LIBS/bench" ${bench_args[@]+"${bench_args[@]}"} 2>&1 | tee "$blog"
      rc=${PIPESTATUS[0]}
      written=$(sed -n 's/^wrote \(.*\)\.md and .*/\1/p' "$blog" | tail -1)
      if [ "$rc" = 0 ]; then
        note "benchmark: ${written:+wrote $written.md and .json}"
      else
        note "benchmark: FAILED (exit $rc)${written:+; wrote $written.md and .json}"; status=1
      fi
      if [ -n "${OUT:-}" ]; then
        cp "$blog" "$OUT/" 2>/dev/null
        [ -n "$written" ] && cp "$written.md" "$written.json" "$OUT/" 2>/dev/null
      fi
    else
      note "benchmark: FAILED: no $LIBS/bench (prepare first where sqa-aot is)"; status=1
    fi
  fi
fi

# --- 2b. decode on the GPU ----------------------------------------------------
if [ "$gpu_ok" = 0 ] && [ -d "$LIBS/decode" ]; then
  dlog="$LIBS/decode-$stamp.log"
  : >"$dlog"
  if [ "$do_check" = 1 ]; then
    echo "== decode checks ($LIBS/decode), log $dlog"
    dfail=0
    # label q-heads kv-heads: bench/cuda_decode_bench.py's CONFIGS.
    for cfg in "mha 16 16" "gqa 16 4" "sqa 8 4" "mqa 16 1"; do
      set -- $cfg
      name="dec_$1_d128_bf16"
      "$PY" test/lib/python/check_decode.py --sqa-aot none --target cuda \
        --lib "$LIBS/decode/lib$name.so" --name "$name" --q-heads "$2" --kv-heads "$3" \
        --head-dim 128 --dtype bf16 --causal bottom-right \
        --cases '1:0/5/700:800,3:17/1/0:40,2:30/9:40:memory,4:1000/3000:4096' \
        2>&1 | tee -a "$dlog"
      [ "${PIPESTATUS[0]}" = 0 ] || dfail=1
    done
    if [ "$dfail" = 0 ]; then
      note "decode checks: passed (log $dlog)"
    else
      note "decode checks: FAILED (log $dlog)"; status=1
    fi
  fi
  if [ "$do_bench" = 1 ]; then
    echo "== decode timing ($LIBS/decode)"
    djson="$LIBS/decode-$stamp.json"
    if "$PY" bench/cuda_decode_bench.py --lib-dir "$LIBS/decode" --json "$djson" 2>&1 | tee -a "$dlog"; then
      note "decode timing: wrote $djson"
    else
      note "decode timing: FAILED (log $dlog)"; status=1
    fi
    [ -n "${OUT:-}" ] && cp "$djson" "$OUT/" 2>/dev/null
  fi
  [ -n "${OUT:-}" ] && cp "$dlog" "$OUT/" 2>/dev/null
fi

# --- 2c. training (forward_lse, backward) on the GPU ---------------------------
if [ "$gpu_ok" = 0 ] && [ -d "$LIBS/backward" ] && [ "$do_check" = 1 ]; then
  tlog="$LIBS/backward-$stamp.log"
  echo "== backward checks ($LIBS/backward), log $tlog"
  tfail=0
  : >"$tlog"
  for dt in f32 bf16 f16; do
    "$PY" test/lib/python/check_backward.py --sqa-aot none --target cuda --dtype "$dt" \
      --lib-dir "$LIBS/backward" 2>&1 | tee -a "$tlog"
    [ "${PIPESTATUS[0]}" = 0 ] || tfail=1
  done
  if [ "$tfail" = 0 ]; then
    note "backward checks: passed (log $tlog)"
  else
    note "backward checks: FAILED (log $tlog)"; status=1
  fi
  [ -n "${OUT:-}" ] && cp "$tlog" "$OUT/" 2>/dev/null
fi

# --- 2d. tensor-core backward on the GPU: checks, then timing against SIMT ---
if [ "$gpu_ok" = 0 ] && [ -d "$LIBS/backward-tc" ]; then
  tclog="$LIBS/backward-tc-$stamp.log"
  tcjson="$LIBS/backward-tc-$stamp.json"
  echo "== tensor-core backward ($LIBS/backward-tc), log $tclog"
  "$PY" bench/cuda_backward_bench.py --lib-dir "$LIBS/backward-tc" --json "$tcjson" 2>&1 | tee "$tclog"
  if [ "${PIPESTATUS[0]}" = 0 ]; then
    note "tensor-core backward: checks passed, timing in $tcjson (log $tclog)"
  else
    note "tensor-core backward: FAILED (log $tclog)"; status=1
  fi
  [ -n "${OUT:-}" ] && cp "$tclog" "$tcjson" "$OUT/" 2>/dev/null
fi

# --- 3. summary -------------------------------------------------------------
echo
echo "== summary"
for s in "${summary[@]}"; do echo "  $s"; done
for f in "$LIBS"/check-"$stamp".log.fails; do
  [ -f "$f" ] && { echo "  first failures:"; cat "$f"; }
done
exit "$status"
