#!/usr/bin/env python3
"""Mutation fuzzer for sqa-opt over the lit suite's own .mlir inputs.

Each trial takes one split-input-file chunk of a seed (test/**/*.mlir and the
crash corpus), applies a few mutations aimed at what our verifiers and passes
read (shape dims, integer attributes, element types, mask/head/rope
parameters, pass options), and runs `sqa-opt` on it with one pass or
pipeline. A trial fails if sqa-opt dies by a signal, prints LLVM's crash or
fatal-error banner, or runs past the per-input timeout; any exit status with
a diagnostic is fine. Failing inputs are written to the corpus directory as
`<kind>-<hash>.mlir` with the arguments in a `// FUZZ-ARGS:` line, so that
`--replay` reruns them.

  fuzz.py --sqa-opt build/bin/sqa-opt --seed 1 --max-time 600 -j 2  # long run
  fuzz.py --sqa-opt build/bin/sqa-opt --replay test/Fuzz/corpus     # regressions

Exit status: 0 if nothing failed, 1 otherwise. The trial sequence depends
only on --seed (trial i uses random.Random(seed * 1000003 + i)), so a
failure reported as trial N reproduces with --seed S --first N --max-inputs 1.
"""

import argparse
import concurrent.futures
import glob
import hashlib
import os
import random
import re
import resource
import shlex
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TEST_ROOT = os.path.dirname(HERE)

# Values at the edges of what our code handles: zero, one, the 2^16 bounds,
# int32 and int64 limits, and what overflows when multiplied.
INTERESTING = [0, 1, 2, 3, 7, 16, 64, 65535, 65536, 65537, 2**31 - 1, 2**31,
               2**32, 2**40, 2**40 + 1, 2**56, 2**61, 2**62, 2**63 - 1,
               4611686018427387904, -1, -2, -(2**63)]
ELEMENT_TYPES = ["f32", "f16", "bf16", "f64", "i8", "i32", "index", "f8E4M3FN"]
KEYWORDS = [("top_left", "bottom_right"), ("true", "false"),
            ("rotary", "linear"), ("linear", "dynamic_ntk"),
            ("sqa", "xsmqa"), ("mha", "rsqa"), ("gqa", "mqa"),
            ("ins(", "outs("), ("tensor<", "memref<")]

# Passes and pipelines with option values to mutate. format=isa needs no
# CUDA toolkit.
PASSES = [
    [],
    ["--canonicalize"],
    ["--sqa-tile-attention"],
    ["--sqa-tile-attention=query-tile={n} head-tile={n}"],
    ["--sqa-lower-attention-reference"],
    ["--sqa-decompose-attention-layer"],
    ["--sqa-lower-projections=vector-width={n} mr={n} nr={n} kc={n} nc={n}"],
    ["--sqa-lower-projections"],
    ["--sqa-lower-flash-attention"],
    ["--sqa-lower-flash-attention=vector-width={n} kv-block={n} mr={n} nr={n}"],
    ["--sqa-lower-attention-to-gpu"],
    ["--sqa-lower-attention-to-gpu=kv-block={n} heads-per-block={n} "
     "rows-per-warp={n}"],
    ["--sqa-cpu-pipeline"],
    ["--sqa-cpu-pipeline=attention-kernel=reference"],
    ["--sqa-cpu-pipeline=vector-width={n} query-tile={n} kv-block={n} mr={n} "
     "nr={n} buffer-alignment={n}"],
    ["--sqa-cuda-pipeline=format=isa"],
    ["--sqa-cuda-pipeline=format=isa kv-block={n} heads-per-block={n} "
     "rows-per-warp={n} chip={chip} features={features}"],
    ["--sqa-decompose-attention-layer", "--sqa-tile-attention",
     "--one-shot-bufferize=bufferize-function-boundaries",
     "--sqa-lower-projections", "--sqa-lower-flash-attention"],
    ["--sqa-emulate-gpu-kernels"],
]
OPTION_VALUES = [0, 1, 2, 3, 4, 6, 8, 16, 32, 64, 65536, 65537, -1, -16,
                 2**31, 2**62, 2**63 - 1]
CHIPS = ["sm_80", "sm_90", "sm_90a", "sm_100", "sm_120", "sm_75", "sm_85",
         "sm_999999999999", "volta", "sm_"]
FEATURES = ["+ptx80", "+ptx70", "+ptx86", "+ptx99", "-ptx80", "+foo", ""]

# Failures already known and owned elsewhere: reported and kept in
# corpus/known/ (one input per signature), but not counted as new. Each entry
# is (name, kinds, regex over the arguments, regex over sqa-opt's stderr).
KNOWN = [
    # Upstream MLIR 22: e.g. linalg.batch_matmul with an `index` element type
    # crashes its custom parser (mlir-opt too), before any pass of ours runs.
    ("upstream-parser", ("crash",), None,
     r"MLIR Parser: custom op parser '(?!sqa\.)[\w.]+'(?![\s\S]*Pass)"),
]


def known_failure(kind, args, detail):
    joined = " ".join(args)
    for name, kinds, args_re, err_re in KNOWN:
        if kind in kinds and (not args_re or re.search(args_re, joined)) and \
                (not err_re or re.search(err_re, detail)):
            return name
    return None


CRASH_MARKERS = ("PLEASE submit a bug report", "LLVM ERROR:",
                 "UNREACHABLE executed", "Assertion `", "Stack dump:",
                 "AddressSanitizer", "runtime error:")


def split_chunks(text):
    return [c for c in re.split(r"^// -----\s*$", text, flags=re.M) if c.strip()]


def load_seeds(extra_dirs):
    seeds = []
    files = set(glob.glob(os.path.join(TEST_ROOT, "**", "*.mlir"),
                          recursive=True))
    for d in extra_dirs:
        files |= set(glob.glob(os.path.join(os.path.abspath(d), "*.mlir")))
    # Known failures are not seeds: they would only find themselves again.
    files = sorted(f for f in files
                   if os.sep + "known" + os.sep not in f)
    for path in files:
        with open(path, errors="replace") as f:
            text = f.read()
        if path.startswith(HERE):  # corpus entries: drop the FUZZ-ARGS line
            text = re.sub(r"^// FUZZ-ARGS:.*\n", "", text, flags=re.M)
        # The file's own sqa-opt RUN arguments fit its inputs best.
        runs = []
        for m in re.finditer(r"RUN:.*?sqa-opt %s(.*?)(?:\||$)", text, re.M):
            try:
                args = shlex.split(m.group(1))
            except ValueError:
                continue
            args = [a for a in args if a.startswith("-") and a not in
                    ("-split-input-file", "--split-input-file",
                     "-verify-diagnostics", "--verify-diagnostics")
                    and not a.startswith("-o")]
            runs.append(args)
        for chunk in split_chunks(text):
            seeds.append((chunk, runs))
    return seeds


def mutate_number(rng, text):
    matches = list(re.finditer(r"(?<![\w.#%@])-?\d+(?![\w.])", text))
    if not matches:
        return text
    m = rng.choice(matches)
    value = rng.choice(INTERESTING + [rng.randrange(-5, 300)])
    return text[:m.start()] + str(value) + text[m.end():]


def mutate_dim(rng, text):
    # One dim of a tensor<AxBx...> / memref<...> type, everywhere it occurs
    # (so that the function signature and the op agree and reach the
    # verifier), or a single occurrence.
    types = list(re.finditer(r"(?:tensor|memref)<((?:[\d?]+x)+)", text))
    if not types:
        return text
    m = rng.choice(types)
    dims = m.group(1).rstrip("x").split("x")
    i = rng.randrange(len(dims))
    dims[i] = str(rng.choice(INTERESTING[:20] + ["?"]))
    dims[i] = dims[i] if not dims[i].startswith("-") else "?"
    new = m.group(0)[:m.start(1) - m.start()] + "x".join(dims) + "x"
    if rng.random() < 0.9:
        return text.replace(m.group(0), new)
    return text[:m.start()] + new + text[m.end():]


def mutate_type(rng, text):
    old = rng.choice(ELEMENT_TYPES[:3])
    return text.replace(old, rng.choice(ELEMENT_TYPES))


def mutate_keyword(rng, text):
    a, b = rng.choice(KEYWORDS)
    if rng.random() < 0.5:
        a, b = b, a
    positions = [m.start() for m in re.finditer(re.escape(a), text)]
    if not positions:
        return text
    p = rng.choice(positions)
    return text[:p] + b + text[p + len(a):]


def mutate_lines(rng, text):
    lines = text.split("\n")
    if len(lines) < 2:
        return text
    op = rng.randrange(3)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(j, lines[i])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def mutate_bytes(rng, text):
    if not text:
        return text
    p = rng.randrange(len(text))
    op = rng.randrange(3)
    if op == 0:
        return text[:p]
    if op == 1:
        return text[:p] + rng.choice("<>(){}[],:=x?%#!\"0-") + text[p:]
    return text[:p] + text[p + 1:]


MUTATORS = [(mutate_number, 3), (mutate_dim, 6), (mutate_type, 1),
            (mutate_keyword, 2), (mutate_lines, 1), (mutate_bytes, 1)]


def make_trial(seed, index, seeds):
    rng = random.Random(seed * 1000003 + index)
    text, runs = rng.choice(seeds)
    if rng.random() < 0.05:  # splice two inputs
        text = text + "\n" + rng.choice(seeds)[0]
    names, weights = zip(*MUTATORS)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        text = rng.choices(names, weights)[0](rng, text)
    if runs and rng.random() < 0.4:
        return text, list(rng.choice(runs))
    args = []
    for a in rng.choice(PASSES):
        args.append(re.sub(r"\{n\}", lambda _: str(rng.choice(OPTION_VALUES)),
                           a).replace("{chip}", rng.choice(CHIPS))
                    .replace("{features}", rng.choice(FEATURES)))
    # Options are mutated one at a time: keep the defaults for the others.
    if len(args) == 1 and "=" in args[0] and rng.random() < 0.7:
        name, opts = args[0].split("=", 1)
        keep = rng.choice(opts.split(" "))
        args = [name + "=" + keep]
    return text, args


def limit_memory():
    # A runaway allocation must not take the machine down (4 GiB). ASan
    # reserves terabytes of address space, so a sanitizer build (run with
    # ASAN_OPTIONS set, see .ci/sanitize) gets no limit.
    if "ASAN_OPTIONS" not in os.environ:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    os.setsid()


def run_one(sqa_opt, text, args, timeout, limit_mem=True):
    """Returns (kind, detail): kind is None, 'crash' or 'hang'."""
    cmd = [sqa_opt, "-"] + args + ["-o", os.devnull]
    try:
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE,
                             preexec_fn=limit_memory if limit_mem else os.setsid)
    except OSError as e:
        return "crash", f"cannot run {sqa_opt}: {e}"
    try:
        _, err = p.communicate(text.encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return "hang", f"no exit after {timeout} s"
    err = err.decode(errors="replace")
    # An allocation refused under our memory limit is a resource limit, not
    # a bug we can see here.
    if "out of memory" in err or "std::bad_alloc" in err:
        return None, "oom"
    if p.returncode < 0:
        return "crash", f"signal {-p.returncode}: " + err
    for marker in CRASH_MARKERS:
        if marker in err:
            return "crash", err
    return None, "accepted" if p.returncode == 0 else ""


def save(corpus, kind, text, args, detail, known=None):
    digest = hashlib.sha1((" ".join(args) + text).encode()).hexdigest()[:12]
    if known:
        corpus = os.path.join(corpus, "known")
        os.makedirs(corpus, exist_ok=True)
        if glob.glob(os.path.join(corpus, f"{known}-*.mlir")):
            return ""  # one example per known signature is enough
        kind = known
    path = os.path.join(corpus, f"{kind}-{digest}.mlir")
    with open(path, "w") as f:
        f.write(f"// FUZZ-ARGS: {' '.join(args)}\n")
        f.write("// Found by test/Fuzz/fuzz.py: "
                + detail.strip().splitlines()[0][:200] + "\n")
        f.write(text)
    return path


def replay(opts):
    failures = 0
    files = sorted(glob.glob(os.path.join(opts.replay, "*.mlir")))
    for path in files:
        with open(path) as f:
            text = f.read()
        m = re.search(r"^// FUZZ-ARGS:(.*)$", text, flags=re.M)
        args = m.group(1).split() if m else []
        start = time.time()
        kind, detail = run_one(opts.sqa_opt, text, args, opts.timeout,
                               not opts.no_memory_limit)
        status = kind.upper() if kind else "ok"
        print(f"{status}: {os.path.basename(path)} {' '.join(args)} "
              f"({time.time() - start:.1f} s)")
        if kind and known_failure(kind, args, detail):
            print(f"  (known: {known_failure(kind, args, detail)})")
        elif kind:
            failures += 1
            print(detail[-2000:])
    print(f"replayed {len(files)} inputs, {failures} failed")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sqa-opt", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--first", type=int, default=0, help="first trial index")
    ap.add_argument("--max-inputs", type=int, default=10**9)
    ap.add_argument("--max-time", type=float, default=60.0,
                    help="stop starting trials after this many seconds")
    ap.add_argument("--timeout", type=float, default=20.0,
                    help="per-input timeout in seconds (a hang)")
    ap.add_argument("-j", "--jobs", type=int, default=1)
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus"),
                    help="where failing inputs are written (and read as seeds)")
    ap.add_argument("--no-save", action="store_true",
                    help="report failures without writing them")
    ap.add_argument("--replay", help="rerun every input of this directory")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="also print known failures")
    ap.add_argument("--no-memory-limit", action="store_true",
                    help="no 4 GiB address-space limit (for ASan builds)")
    opts = ap.parse_args()
    if opts.replay:
        return replay(opts)

    seeds = load_seeds([opts.corpus])
    start = time.time()
    tried = failures = accepted = 0
    kinds = {}
    with concurrent.futures.ThreadPoolExecutor(opts.jobs) as pool:
        pending = {}
        index = opts.first
        end = opts.first + opts.max_inputs
        while pending or (index < end and time.time() - start < opts.max_time):
            while (len(pending) < opts.jobs and index < end
                   and time.time() - start < opts.max_time):
                text, args = make_trial(opts.seed, index, seeds)
                fut = pool.submit(run_one, opts.sqa_opt, text, args,
                                  opts.timeout, not opts.no_memory_limit)
                pending[fut] = (index, text, args)
                index += 1
            done, _ = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for fut in done:
                i, text, args = pending.pop(fut)
                kind, detail = fut.result()
                tried += 1
                if detail == "accepted":
                    accepted += 1
                if detail == "oom":
                    kinds["oom (not counted)"] = kinds.get("oom (not counted)", 0) + 1
                if not kind:
                    continue
                known = known_failure(kind, args, detail)
                label = f"known {known}" if known else kind
                kinds[label] = kinds.get(label, 0) + 1
                failures += 0 if known else 1
                where = "" if opts.no_save else save(opts.corpus, kind, text,
                                                     args, detail, known)
                if known and not opts.verbose:
                    continue
                print(f"{label.upper()} at trial {i} (seed {opts.seed}): "
                      f"sqa-opt {' '.join(args)} {where}\n{detail[-600:]}\n",
                      flush=True)
    elapsed = time.time() - start
    print(f"fuzz: seed {opts.seed}, {tried} inputs in {elapsed:.0f} s "
          f"({len(seeds)} seed chunks, {accepted} inputs accepted and "
          f"lowered), {failures} new failures; "
          f"by kind: {kinds or 'none'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
