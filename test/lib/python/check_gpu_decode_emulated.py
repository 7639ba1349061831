"""Run the generated CUDA decode kernels on the CPU and compare with the reference.

For machines without a GPU (see check_gpu_emulated.py for how kernels are
emulated). The kernels come from ``sqa-aot --target cuda --emit mlir``
(sqa-lower-decode-to-gpu: append, split, merge); they are called as
GPUKernelABI.def's decode lists say, on the grids it states, in the order
the lowering launches them, through gpu_emulator.c's sqa_emu_launch_decode.

Cases are check_decode.py's ``N:LEN/LEN/...:CAPACITY[:memory]``. A length
with L_b > capacity (or a negative one) is out of range: the kernels must
leave that row's caches alone and write NaN to its output. Otherwise the
output is compared with check_decode.py's float64 reference, the appended
tokens bit for bit, and the rest of the caches must be unchanged (NaN past
each prefix: a kernel that reads past its row's end fails).

  PASS <config> case=<case> max_abs_err=<e> tol=<t>
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np

import testpaths  # noqa: E402,F401  (makes sqa_mlir importable)

from check_aot import Setup  # noqa: E402
from check_decode import build_parser as decode_parser  # noqa: E402
from check_decode import bhsd_shape, expected, make_caches, seq_slice  # noqa: E402
from check_gpu_emulated import KernelABI, emulated_stage_kernels, stride_scalars  # noqa: E402
from sqa_mlir import reference  # noqa: E402
from sqa_mlir.reference import from_storage, to_storage  # noqa: E402

# P is rounded only at the output (f32 accumulation), as the CPU decode.
TOLERANCES = reference.TOLERANCES


def run_case(lib, kernels, abi, st, case, rng):
    N, lens, capacity, memory = case
    B = len(lens)
    out_of_range = [n < 0 or n + (0 if memory else N) > capacity for n in lens]
    k_cache, v_cache = make_caches(st, [max(0, min(n, capacity)) for n in lens],
                                   capacity, rng)
    before = (k_cache.copy(), v_cache.copy())
    q = to_storage(rng.standard_normal(bhsd_shape(st, B, N, st.hq, st.d),
                                       dtype=np.float32), st.dtype)
    k_new = v_new = None
    if not memory:
        k_new = to_storage(rng.standard_normal(bhsd_shape(st, B, N, st.hkv, st.d),
                                               dtype=np.float32), st.dtype)
        v_new = to_storage(rng.standard_normal(bhsd_shape(st, B, N, st.hkv, st.dv),
                                               dtype=np.float32), st.dtype)
    # A sentinel, not NaN: out-of-range rows must be written (with NaN).
    out = to_storage(np.full(bhsd_shape(st, B, N, st.h, st.dv), 7.0), st.dtype)
    lens_array = np.array(lens, dtype=np.int64)

    stage = {launch["decode_stage"]: (name, launch) for name, launch in kernels.items()
             if name.startswith(f"{st.name}_decode_{'' if memory else 'append_'}kernel")}
    _, split_launch = stage["split"]
    split_keys = split_launch["split_keys"]
    rows = split_launch["rows_per_block"]
    group = split_launch["heads_per_block"]
    splits = -(-capacity // split_keys)
    chunks = -(-(group * N) // rows)
    grid_y = st.hkv * chunks
    partials = np.full(B * grid_y * splits * rows * (st.dv + 2), np.nan, np.float32)

    element = {"q": q, "k_cache": k_cache, "v_cache": v_cache,
               "k_new": k_new if k_new is not None else q[:0],
               "v_new": v_new if v_new is not None else q[:0], "out": out}
    named = {"new_len": N, "capacity": capacity, "num_splits": splits,
             **stride_scalars(element, st.layout)}
    arrays = dict(element, cache_lens=lens_array, partials=partials)
    grids = {"append": (B, st.hkv), "split": (B * splits, grid_y), "merge": (B, grid_y)}
    for name in ("append", "split", "merge"):
        if name not in stage:
            continue
        kernel_name, launch = stage[name]
        status = abi.launch(lib.sqa_emu_launch_decode, lib, kernel_name, grids[name],
                            launch, arrays, named)
        if status:
            return False, 0.0, 0.0, f"emulator status {status} in {name}"

    reasons = []
    for name, cache, old, new in (("k", k_cache, before[0], k_new),
                                  ("v", v_cache, before[1], v_new)):
        want = old.copy()
        if new is not None:
            for b, n in enumerate(lens):
                if not out_of_range[b]:
                    idx = (slice(b, b + 1),) + seq_slice(st, n, n + N)[1:]
                    want[idx] = new[b:b + 1]
        if want.tobytes() != cache.tobytes():
            reasons.append(f"{name}_cache contents differ")
    got = from_storage(st.from_layout(out), st.dtype)
    valid = [0 if bad else n + (0 if memory else N) for n, bad in zip(lens, out_of_range)]
    want = expected(st, q, k_cache, v_cache, valid)
    bad_rows = [b for b, bad in enumerate(out_of_range) if bad]
    good_rows = [b for b, bad in enumerate(out_of_range) if not bad]
    if bad_rows and not np.isnan(got[bad_rows]).all():
        reasons.append("out-of-range rows are not NaN")
    err = tol = 0.0
    if good_rows:
        atol, rtol = TOLERANCES[st.dtype]
        err, tol, why = reference.compare(got[good_rows], want[good_rows], atol, rtol)
        reasons += why
    return not reasons, err, tol, "; ".join(reasons)


def main(argv=None) -> int:
    p = decode_parser()
    p.description = __doc__.splitlines()[0]
    p.add_argument("--sqa-test-opt", required=True)
    p.add_argument("--mlir-translate", required=True)
    p.add_argument("--clang", required=True)
    args = p.parse_args(argv)
    args.name = "emulated"
    st = Setup(args, p)
    st.name = args.name
    rng = np.random.default_rng(args.seed)
    config = dict(variant=args.variant, heads=args.heads, groups=args.groups,
                  q_heads=args.q_heads, kv_heads=args.kv_heads, head_dim=args.head_dim,
                  value_head_dim=args.value_head_dim, dtype=args.dtype,
                  causal=args.causal, alignment=args.alignment,
                  window=args.window if tuple(args.window) != (-1, -1) else None,
                  scale=args.scale, layout=args.layout, name=args.name, target="cuda")
    abi = KernelABI("DECODE")
    with tempfile.TemporaryDirectory(prefix="sqa-emu-decode-") as workdir:
        lib, kernels, _ = emulated_stage_kernels(args, config, workdir, "decode_stage",
                                                 "sqa_emu_launch_decode")
        failed = 0
        for case in args.cases:
            ok, err, tol, why = run_case(lib, kernels, abi, st, case, rng)
            text_case = f"{case[0]}:{'/'.join(map(str, case[1]))}:{case[2]}" + \
                (":memory" if case[3] else "")
            print(f"{'PASS' if ok else 'FAIL'} {st.desc} case={text_case} "
                  f"max_abs_err={err:.3e} tol={tol:.3e}" + (f" ({why})" if why else ""))
            failed += not ok
    print(f"{len(args.cases) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
