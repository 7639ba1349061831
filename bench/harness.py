#!/usr/bin/env python3
"""The shared harness of the benchmark scripts in bench/.

attention_bench.py, layer_bench.py, paper_suite.py and cuda_bench.py (and
any new script: backward_bench.py, decode_bench.py) take from here what
every benchmark needs, and keep only what differs (their cases, FLOP
counts, calls and tables). The API, in the order a script uses it:

* machine: ``cpu_info()``, ``mem_available()``, ``git_state()``;
* FMA peak in the same run: ``start_peaks(cc, build_dir, threads, seconds,
  notes)`` compiles bench/fma_peak.c and measures before the cases,
  ``Peaks.finish(notes)`` after them (``.peak`` is the larger, GFLOP/s);
* ISA level: ``record_isa_level(lib)`` for every library loaded (reads
  ``cpu_level`` from NAME_config(): the level the library's CPUID dispatch,
  or SQA_CPU_LEVEL, chose), reported by ``machine_record`` and
  ``machine_lines``;
* timing: ``time_calls(timed_call, warmup_call, warmup, repeats,
  min_repeats, max_case_seconds)`` -> (times, cores_busy), ``stats(...)``;
  ``--rounds``: ``round_settings`` and ``merge_measured`` for interleaved rounds
  -> median/min/max/IQR, ``planned_call_seconds`` for --dry-run estimates;
* reports: ``table(headers, rows, left=2)`` (markdown), ``fmt_ms(seconds)``,
  ``machine_record(machine, threads, sqa_aot, peaks)`` (the JSON
  ``machine`` object), ``machine_lines(machine, peaks)`` (the markdown
  header bullets), ``write_results(out_dir, stem, md_text, doc)`` ->
  bench/results/<stem>[-N].{md,json};
* plots: ``plot_series(path, title, xlabel, ylabel, series)`` (matplotlib if
  installed, else None);
* derived columns: ``add_derived_ratios(cases, peak, same_shape)`` (% of
  peak and the speed-up over the MHA case of the same shape);
* command line and scratch: ``add_timing_arguments(p, repeats, min_repeats,
  max_case_seconds, warmup_length)``, ``add_run_arguments(p, stem)`` (--out-dir,
  --no-write, --build-dir, --cc, --peak-seconds, --seed, --dry-run, with the
  same meaning in every script), ``in_build_dir(args, prefix, body)`` (runs
  ``body(build_dir)`` in --build-dir or a temporary folder removed after).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
if os.path.join(REPO, "python") not in sys.path:
    sys.path.insert(0, os.path.join(REPO, "python"))

import numpy as np  # noqa: E402

PRETTY = {"mha": "MHA", "gqa": "GQA", "mqa": "MQA", "sqa": "SQA", "ssqa": "sSQA",
          "xsqa": "xSQA", "xsmqa": "xSMQA", "rsqa": "rSQA"}


def shape_str(shape) -> str:
    return "x".join(str(x) for x in shape)


# ---------------------------------------------------------------------------
# Machine information and the FMA peak
# ---------------------------------------------------------------------------

def _run_text(cmd, **kw) -> Optional[str]:
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60, **kw)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 else None

def cpu_info() -> dict:
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        m = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
        info["cpu_model"] = m[1].strip() if m else None
        for key, pat in (("cpu_family", r"^cpu family\s*:\s*(\d+)"),
                         ("cpu_model_number", r"^model\s*:\s*(\d+)")):
            m = re.search(pat, text, re.M)
            info[key] = int(m[1]) if m else None
        m = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
        flags = set(m[1].split()) if m else set()
        info["isa_flags"] = sorted(flags & {"avx", "avx2", "fma", "f16c", "avx512f",
                                            "avx512bf16", "avx512_bf16", "amx_bf16"})
        info["virtualized"] = "hypervisor" in flags
    except OSError:
        info["cpu_model"] = platform.processor() or None
    try:
        with open("/proc/meminfo") as f:
            mem = dict(line.split(":", 1) for line in f if ":" in line)
        info["mem_total_gib"] = round(int(mem["MemTotal"].split()[0]) / 2**20, 1)
    except (OSError, KeyError, ValueError):
        pass
    nproc = _run_text(["nproc"])
    info["nproc"] = int(nproc) if nproc and nproc.isdigit() else os.cpu_count()
    return info

def mem_available() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None

def _status_kib(field: str) -> Optional[int]:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def extra_peak_rss(fn) -> Optional[int]:
    """Bytes by which the process's resident set peaked above its size
    before fn() ran (Linux: the peak is reset through /proc/self/clear_refs);
    None where that is unavailable. Memory the allocator kept from earlier
    calls and reuses is not counted: a lower bound on what fn allocated, an
    upper bound on what it needs beyond that."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_kib("VmRSS")
    except (OSError, ValueError):
        fn()
        return None
    fn()
    peak = _status_kib("VmHWM")
    return None if before is None or peak is None else max(peak - before, 0) * 1024


def find_cc(requested: Optional[str]) -> Optional[str]:
    if requested:
        return requested
    for c in ("/usr/lib/llvm-22/bin/clang", "clang-22", "clang", "gcc", "cc"):
        path = shutil.which(c)
        if path:
            return path
    return None

def native_cpu(cc: Optional[str]) -> Optional[str]:
    """The CPU clang -march=native resolves to (e.g. znver1), if cc is clang."""
    if not cc:
        return None
    p = subprocess.run([cc, "-march=native", "-###", "-x", "c", "-c", os.devnull],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    m = re.search(r'"-target-cpu" "([^"]+)"', p.stdout)
    return m[1] if m else None

def compile_probe(cc: str, workdir: str, name: str) -> Tuple[Optional[str], str]:
    """Compiles bench/<name>.c (a machine probe: fma_peak, stream_read) for
    this CPU into workdir; (executable or None, command or its error)."""
    exe = os.path.join(workdir, name)
    cmd = [cc, "-O3", "-march=native", "-fopenmp",
           os.path.join(BENCH_DIR, f"{name}.c"), "-o", exe]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        return None, f"{' '.join(cmd)} failed:\n{p.stdout}"
    return exe, " ".join(cmd)


def compile_fma_peak(cc: str, workdir: str) -> Tuple[Optional[str], str]:
    return compile_probe(cc, workdir, "fma_peak")

def measure_peak(exe: str, threads: int, seconds: float) -> Optional[dict]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = _run_text([exe, str(seconds)], env=env)
    if not out:
        return None
    try:
        return json.loads(out.splitlines()[-1])
    except ValueError:
        return None

@dataclass
class Peaks:
    """The FMA peak measurements of one benchmark run."""
    cc: Optional[str]
    exe: Optional[str]
    command: str                       # the compile command, or why there is none
    threads: int
    seconds: float
    measured: dict = field(default_factory=dict)   # before, one_thread, after
    peak: Optional[float] = None       # max(before, after), set by finish()

    def finish(self, notes: List[str]) -> Optional[float]:
        """Measure the 'after' peak, set .peak and add notes on shared or
        varying FMA throughput."""
        peaks, threads = self.measured, self.threads
        if self.exe:
            peaks["after"] = measure_peak(self.exe, threads, self.seconds)
        measured = [p["gflops"] for k, p in peaks.items() if k in ("before", "after") and p]
        peak = max(measured) if measured else None
        if len(measured) == 2 and min(measured) < 0.8 * max(measured):
            notes.append(f"The FMA peak changed during the run ({measured[0]:.1f} before, "
                         f"{measured[1]:.1f} GFLOP/s after): the machine is shared or "
                         "its clock varies; % of peak uses the larger value.")
        one = peaks.get("one_thread")
        if one and peak and threads > 1 and peak < 1.3 * one["gflops"]:
            notes.append(f"The {threads}-thread FMA peak ({peak:.1f} GFLOP/s) is not much "
                         f"above the 1-thread one ({one['gflops']:.1f}): the threads share FMA "
                         "units (SMT siblings or an oversubscribed virtual machine).")
        self.peak = peak
        return peak

    def line(self) -> str:
        """The FMA peak line of the markdown header."""
        peaks, peak, one = self.measured, self.peak, self.measured.get("one_thread")
        if not peak:
            return "not measured"
        return (f"{peak:.1f} GFLOP/s fp32 FMA on {self.threads} threads "
                f"({peaks['before']['isa']}, bench/fma_peak.c"
                + (f"; before {peaks['before']['gflops']:.1f}, after "
                   f"{peaks['after']['gflops']:.1f}" if peaks.get("after") else "")
                + (f"; 1 thread {one['gflops']:.1f}" if one else "") + ")")

def start_peaks(cc_request: Optional[str], build_dir: str, threads: int, seconds: float,
                notes: List[str]) -> Peaks:
    """Compile fma_peak.c and measure the peak before the benchmark (and on 1
    thread); prints the result."""
    cc = find_cc(cc_request)
    exe, cmd = (None, "no C compiler found")
    if cc:
        exe, cmd = compile_fma_peak(cc, build_dir)
    p = Peaks(cc, exe, cmd, threads, seconds)
    if exe:
        p.measured["before"] = measure_peak(exe, threads, seconds)
        if threads > 1:
            p.measured["one_thread"] = measure_peak(exe, 1, seconds)
    else:
        notes.append(f"fma_peak.c did not compile, no peak: {cmd}")
    if p.measured.get("before"):
        b = p.measured["before"]
        print(f"FMA peak: {b['gflops']:.1f} GFLOP/s on {b['threads']} threads ({b['isa']})"
              + (f"; 1 thread: {p.measured['one_thread']['gflops']:.1f}"
                 if p.measured.get("one_thread") else ""))
    return p

def git_state() -> Tuple[Optional[str], bool]:
    """(HEAD commit, whether tracked files have uncommitted changes)."""
    commit = _run_text(["git", "rev-parse", "HEAD"], cwd=REPO)
    dirty = _run_text(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO)
    return commit, bool(dirty)


# ---------------------------------------------------------------------------
# ISA level of the libraries (CPU libraries dispatch by CPUID at the first call)
# ---------------------------------------------------------------------------

ISA_LEVELS_SEEN: Dict[str, str] = {}   # cpu_level -> the library's cpu_levels


def record_isa_level(lib) -> Optional[str]:
    """The ISA level `lib` runs (NAME_config's cpu_level; None for libraries
    without one, e.g. CUDA's); remembered for the report."""
    settings = getattr(lib, "settings", {}) or {}
    level = settings.get("cpu_level")
    if level:
        ISA_LEVELS_SEEN[level] = settings.get("cpu_levels", level)
    return level


def isa_level_line() -> str:
    if not ISA_LEVELS_SEEN:
        return "not reported"
    return "; ".join(f"{level} (library levels: {levels})"
                     for level, levels in sorted(ISA_LEVELS_SEEN.items())) + (
        f"; forced with SQA_CPU_LEVEL={os.environ['SQA_CPU_LEVEL']}"
        if os.environ.get("SQA_CPU_LEVEL") else "")


def machine_record(machine: dict, threads: int, sqa_aot: str, peaks: Peaks) -> dict:
    """Adds threads, OpenMP environment, commit, peaks, compilers and versions
    to machine (from cpu_info()); returns it."""
    commit, dirty = git_state()
    cc = peaks.cc
    cc_version = (_run_text([cc, "--version"]) or "").splitlines()[:1] if cc else []
    aot_version = _run_text([sqa_aot, "--version"]) or ""
    m = re.search(r"LLVM version\s+(\S+)", aot_version)
    machine.update({
        "threads": threads,
        "omp_env": {k: v for k, v in os.environ.items() if k.startswith(("OMP_", "KMP_", "GOMP_"))},
        "git_commit": commit,
        "git_dirty": dirty,
        "peak_gflops": peaks.peak,
        "peak": peaks.measured,
        "isa_levels": dict(ISA_LEVELS_SEEN),
        "sqa_cpu_level_env": os.environ.get("SQA_CPU_LEVEL"),
        "compilers": {"fma_peak": (cc_version[0] if cc_version else None),
                      "fma_peak_command": peaks.command,
                      "sqa_aot_llvm": m[1] if m else aot_version.splitlines()[:1]},
        "native_cpu": native_cpu(cc),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "os": platform.platform(),
    })
    return machine


def machine_lines(machine: dict, peaks: Peaks) -> List[str]:
    """The machine, threads, commit, FMA peak and compiler lines of a markdown
    report, in that order, as '* ...' bullets (kernel line not included)."""
    commit = machine.get("git_commit")
    return [
        f"* machine: {machine.get('cpu_model')}"
        + (f" ({machine['native_cpu']})" if machine.get("native_cpu") else "")
        + f", nproc {machine['nproc']}, "
        f"{machine.get('mem_total_gib', '?')} GiB"
        + (", virtual machine" if machine.get("virtualized") else ""),
        f"* threads (OMP_NUM_THREADS): {machine['threads']}",
        f"* commit: {commit or '?'}" + (" (with uncommitted changes)"
                                       if machine.get("git_dirty") else ""),
        f"* FMA peak: {peaks.line()}",
        f"* ISA level of the kernels: {isa_level_line()}",
        f"* compilers: fma_peak {machine['compilers']['fma_peak']}; sqa-aot LLVM "
        f"{machine['compilers']['sqa_aot_llvm']}",
    ]


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

def aot_supports_kernel(sqa_aot: str) -> bool:
    text = _run_text([sqa_aot, "--help"]) or ""
    return "--kernel" in text

def time_calls(timed_call, warmup_call, warmup: int, repeats: int, min_repeats: int,
               max_case_seconds: float):
    """`warmup` calls of warmup_call(), then up to `repeats` calls of
    timed_call() (each returns its own seconds); stops early (after at least
    `min_repeats`) once the timed calls add up to max_case_seconds.
    Returns (times, cores_busy)."""
    for _ in range(warmup):
        warmup_call()
    times: List[float] = []
    cpu0 = time.process_time()
    while len(times) < repeats:
        times.append(timed_call())
        if len(times) >= min_repeats and sum(times) >= max_case_seconds:
            break
    # Process CPU time over wall time of the timed calls: the cores kept busy.
    cores_busy = (time.process_time() - cpu0) / sum(times) if sum(times) > 0 else None
    return times, cores_busy

def time_interleaved(fns, warmup, repeats, settle=0.0, rewarm=0.0):
    """Median and min seconds per function; the calls alternate, so load on
    the machine affects every function alike. Each timed call waits `settle`
    seconds first: our libraries' libomp workers spin up to 200 ms after a
    call (KMP_BLOCKTIME) and PyTorch's libgomp workers spin after every op,
    so without the pause each call pays for its predecessor's spinning (a
    step timed right after SDPA ran up to 2x slower here). After the pause,
    the same function runs untimed for `rewarm` seconds (at least once) to
    wake its own runtime again, as a loop calling it step after step keeps
    it: straight after a 0.25 s pause a decode step took 2-4x its
    back-to-back time, falling over ~3 ms of calls (sleeping OpenMP workers,
    this VM's idle vCPUs and clocks)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            if settle > 0:
                time.sleep(settle)
            if rewarm > 0:
                until = time.perf_counter() + rewarm
                fn()
                while time.perf_counter() < until:
                    fn()
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    out = []
    for ts in times:
        ts.sort()
        out.append({"median_s": ts[len(ts) // 2], "min_s": ts[0]})
    return out


def merge_measured(first, second):
    """Pools two time_calls results of one case (interleaved rounds): the
    times, and the cores kept busy weighted by each part's wall time."""
    if first is None:
        return second
    times = first[0] + second[0]
    busy = [(b, sum(t)) for t, b in (first, second) if b is not None]
    weight = sum(w for _, w in busy)
    return times, (sum(b * w for b, w in busy) / weight if weight > 0 else None)

def round_settings(args, rounds: int):
    """(repeats, min_repeats, max_case_seconds) of one of `rounds` interleaved
    rounds: the run's timing budget split evenly, at least one call each."""
    share = lambda n: max(1, -(-n // rounds))  # noqa: E731 (ceil division)
    return share(args.repeats), share(args.min_repeats), args.max_case_seconds / rounds

def planned_call_seconds(t: float, t_warmup: float, warmup: int, repeats: int,
                         min_repeats: int, max_case_seconds: float) -> float:
    """Estimated time of time_calls for timed calls of t seconds and warm-up
    calls of t_warmup seconds."""
    n, total = 0, 0.0
    while n < repeats:
        n += 1
        total += t
        if n >= min(min_repeats, repeats) and total >= max_case_seconds:
            break
    return total + warmup * t_warmup

def stats(measured) -> dict:
    times, cores_busy = measured
    a = np.asarray(times)
    q1, q3 = np.percentile(a, [25, 75])
    return {"median_s": float(np.median(a)), "min_s": float(a.min()), "max_s": float(a.max()),
            "iqr_s": float(q3 - q1), "times_s": [float(t) for t in times],
            "cores_busy": cores_busy}


# ---------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------

def fmt_ms(s: Optional[float]) -> str:
    if s is None:
        return "-"
    ms = s * 1e3
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}"

def table(headers, rows, left: int = 2) -> str:
    """A markdown table; the first `left` columns left-aligned, the rest right."""
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i < left else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)

def unique_path(out_dir: str, stem: str) -> str:
    n = 1
    base = os.path.join(out_dir, stem)
    while os.path.exists(base + ".md") or os.path.exists(base + ".json"):
        n += 1
        base = os.path.join(out_dir, f"{stem}-{n}")
    return base

def write_results(out_dir: str, stem: str, md_text: str, doc: dict) -> str:
    """Writes out_dir/<stem>[-N].md and .json (the first free N); returns the
    path without extension."""
    os.makedirs(out_dir, exist_ok=True)
    base = unique_path(out_dir, stem)
    with open(base + ".md", "w") as f:
        f.write(md_text)
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {base}.md and {base}.json")
    return base


def plot_series(path: str, title: str, xlabel: str, ylabel: str,
                series: Dict[str, Sequence[Tuple[float, float]]],
                logx: bool = False) -> Optional[str]:
    """One line per series (name -> [(x, y)]) into `path` (PNG); returns the
    path, or None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in series.items():
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", label=name)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def add_run_arguments(p, stem: str) -> None:
    """The options every CPU benchmark script shares; `stem` names its result
    files (bench/results/<stem>-<date>.md/.json)."""
    p.add_argument("--out-dir", default=os.path.join(BENCH_DIR, "results"),
                   help=f"where {stem}-<date>.md/.json go (default bench/results)")
    p.add_argument("--no-write", action="store_true", help="print only, write no files")
    p.add_argument("--build-dir",
                   help="keep libraries here and reuse those newer than sqa-aot "
                        "(default: a temporary directory, removed at the end)")
    p.add_argument("--cc", help="C compiler for fma_peak.c (default: llvm-22 clang)")
    p.add_argument("--peak-seconds", type=float, default=0.3,
                   help="length of one fma_peak trial (default 0.3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan and the time estimate, run nothing")


def in_build_dir(args, prefix: str, body: Callable[[str], int]) -> int:
    """Runs body(build_dir) in --build-dir (kept) or in a fresh temporary
    folder that is removed afterwards, whatever body does."""
    build_dir = args.build_dir or tempfile.mkdtemp(prefix=prefix)
    os.makedirs(build_dir, exist_ok=True)
    try:
        return body(build_dir)
    finally:
        if not args.build_dir:
            shutil.rmtree(build_dir, ignore_errors=True)


def add_derived_ratios(cases, peak: Optional[float], same_shape) -> None:
    """Adds peak_percent and, where an MHA case with the same baseline heads
    and `same_shape(case)` was measured, speedup_vs_mha (time ratio) and
    ideal_speedup_vs_mha (FLOP ratio) to every measured case's result."""
    mha = {(c.cfg.baseline_key(), same_shape(c)): c for c in cases
           if c.cfg.variant == "mha" and "median_s" in c.result}
    for c in cases:
        r = c.result
        if "median_s" not in r:
            continue
        r["peak_percent"] = 100.0 * r["gflops"] / peak if peak else None
        base = mha.get((c.cfg.baseline_key(), same_shape(c)))
        if base is not None:
            r["speedup_vs_mha"] = base.result["median_s"] / r["median_s"]
            r["ideal_speedup_vs_mha"] = base.result["flops"] / r["flops"]


def add_timing_arguments(p, repeats: int, min_repeats: int, max_case_seconds: float,
                         warmup_length: int) -> None:
    """The timing options of time_calls, with each script's defaults."""
    p.add_argument("--repeats", type=int, default=repeats,
                   help=f"timed calls per case at most (default {repeats})")
    p.add_argument("--min-repeats", type=int, default=min_repeats,
                   help=f"timed calls never go below this (default {min_repeats})")
    p.add_argument("--max-case-seconds", type=float, default=max_case_seconds,
                   help="stop timing a case after --min-repeats once its timed calls "
                        f"add up to this (default {max_case_seconds:g})")
    p.add_argument("--rounds", type=int, default=1,
                   help="time the cases in this many interleaved rounds (each case gets "
                        "its share of the calls in every round), so a machine whose "
                        "speed drifts over minutes slows every case alike and the "
                        "ratios between cases hold (default 1: case after case)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls first (default 1)")
    p.add_argument("--warmup-length", type=int, default=warmup_length,
                   help="warm-up calls use at most this S and T of the inputs "
                        f"(default {warmup_length}; 0: the full shape)")
