#!/usr/bin/env python3
"""bench/python_overhead.py: what calling the store from Python costs, against C++.

Both paths run in this one process, on the same `local` store and the same arrays, in
interleaved blocks (Python, C++, then C++, Python, ...), so that machine noise hits both alike;
each figure is the median over the blocks. The C++ path is the module's hidden benchmark hook
kvactor._kvactor._bench_pushpull_loop: `kv.pushpull(key, t).get()` in a C++ loop with the GIL
released, the arguments converted once before the clock starts, as a C++ program holds its
tensors already. The Python path is `store.pushpull(key, array).wait()` in a Python loop.

Figures (one JSON object per line, as the C++ benchmarks print; docs/PERFORMANCE.md, "How
figures are reported" and "Python"):
  pushpull_sync 4B          value: Python us per round trip, limit: C++ us; lower is better,
                            target ratio <= 1.5
  pushpull_sync 16MiB numpy value: Python B/s, limit: C++ B/s; target ratio >= 0.95
  pushpull_sync 16MiB torch the same through a PyTorch tensor (DLPack), when torch imports
  pushpull_sync 4B dist_sync the 4 B case on a dist_sync store of one server and one worker
                            (this script again, under kvactor-launch: --launch, else
                            $KVACTOR_LAUNCH, else the build tree's bin/kvactor-launch), where
                            the round trip crosses processes; target ratio <= 1.5

    PYTHONPATH=build/release/python /usr/bin/python3 bench/python_overhead.py [--quick]

--quick runs a few short blocks (a smoke test: CTest's bench_python_overhead_quick).
Diagnostics go to stderr.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import kvactor
from kvactor import _kvactor

BENCH = "python_overhead"
SMALL_BYTES = 4
LARGE_BYTES = 16 << 20


def emit(case, value, unit, limit=None, target=None, lower_is_better=False, out=sys.stdout,
         **extra):
    fig = {"bench": BENCH, "case": case, "value": value, "unit": unit}
    if limit is not None:
        fig["limit"] = limit
        fig["ratio"] = value / limit if limit else None
    if target is not None:
        fig["target"] = target
    if lower_is_better:
        fig["lower_is_better"] = True
    fig.update(extra)
    # Six significant digits, as bench_common.hpp prints them.
    print(json.dumps({k: float(f"{v:.6g}") if isinstance(v, float) else v
                      for k, v in fig.items()}), file=out, flush=True)


def python_block(store, key, array, n):
    t0 = time.perf_counter()
    for _ in range(n):
        store.pushpull(key, array).wait()
    return (time.perf_counter() - t0) / n


def cpp_block(store, key, array, n):
    return _kvactor._bench_pushpull_loop(store, key, array, n) / n


def compare(store, key, array, blocks, per_block):
    """Seconds per operation, Python and C++: medians over interleaved blocks."""
    python_block(store, key, array, per_block)  # warm both paths alike
    cpp_block(store, key, array, per_block)
    py_s, cpp_s = [], []
    for b in range(blocks):
        # Which path goes first alternates, so that neither always runs on the caches and
        # the clock the other left behind.
        if b % 2:
            cpp_s.append(cpp_block(store, key, array, per_block))
            py_s.append(python_block(store, key, array, per_block))
        else:
            py_s.append(python_block(store, key, array, per_block))
            cpp_s.append(cpp_block(store, key, array, per_block))
    return statistics.median(py_s), statistics.median(cpp_s)


def small_round_trip(store, key, blocks, per_block, out=sys.stdout):
    small = np.ones(SMALL_BYTES // 4, np.float32)
    store.init(key, small).result()
    py_s, cpp_s = compare(store, key, small, blocks, per_block)
    emit(f"pushpull_sync 4B{'' if store.type == 'local' else ' ' + store.type}", py_s * 1e6,
         "us", limit=cpp_s * 1e6, target=1.5, lower_is_better=True, out=out, store=store.type,
         blocks=blocks, ops_per_block=per_block)


def dist_worker(path, quick):
    """The dist_sync case's worker (under kvactor-launch): writes its figure to path."""
    store = kvactor.create("dist_sync")
    with open(path, "w", encoding="utf-8") as out:
        small_round_trip(store, 0, *((3, 50) if quick else (20, 500)), out=out)
    store.close()
    return 0


def launcher(given):
    if given or os.environ.get("KVACTOR_LAUNCH"):
        return given or os.environ["KVACTOR_LAUNCH"]
    # A build tree: <build>/python/kvactor/__init__.py and <build>/bin/kvactor-launch.
    path = pathlib.Path(kvactor.__file__).resolve().parents[2] / "bin" / "kvactor-launch"
    return str(path) if path.exists() else None


def dist_case(launch, quick):
    if launch is None:
        print("python_overhead: no kvactor-launch found (--launch), the dist_sync case is left "
              "out", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "figure.json")
        cmd = [launch, "-n", "1", "-s", "1", "--timeout", "120", "--", sys.executable,
               os.path.abspath(__file__), "--dist-worker", path] + (["--quick"] if quick else [])
        job = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             check=False)
        if job.returncode != 0:
            sys.stderr.write(job.stdout)
            raise SystemExit(f"python_overhead: the dist_sync job failed ({job.returncode})")
        with open(path, encoding="utf-8") as f:
            sys.stdout.write(f.read())
        sys.stdout.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a few short blocks (smoke test)")
    p.add_argument("--launch", help="kvactor-launch for the dist_sync case")
    p.add_argument("--dist-worker", metavar="FILE", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.dist_worker:
        return dist_worker(args.dist_worker, args.quick)
    small_blocks, small_n = (5, 200) if args.quick else (40, 2000)
    large_blocks, large_n = (3, 2) if args.quick else (150, 2)

    t_start = time.monotonic()
    store = kvactor.create("local")
    small_round_trip(store, 0, small_blocks, small_n)
    large = np.ones(LARGE_BYTES // 4, np.float32)
    store.init(1, large).result()

    py_s, cpp_s = compare(store, 1, large, large_blocks, large_n)
    emit("pushpull_sync 16MiB numpy", LARGE_BYTES / py_s, "B/s", limit=LARGE_BYTES / cpp_s,
         target=0.95, store="local", blocks=large_blocks, ops_per_block=large_n,
         python_ms=py_s * 1e3, cpp_ms=cpp_s * 1e3)

    try:
        import torch
    except ImportError:
        torch = None
        print("python_overhead: no torch here, the torch case is left out", file=sys.stderr)
    if torch is not None:
        tensor = torch.ones(LARGE_BYTES // 4, dtype=torch.float32)
        py_s, cpp_s = compare(store, 1, tensor, large_blocks, large_n)
        emit("pushpull_sync 16MiB torch", LARGE_BYTES / py_s, "B/s", limit=LARGE_BYTES / cpp_s,
             store="local", blocks=large_blocks, ops_per_block=large_n,
             python_ms=py_s * 1e3, cpp_ms=cpp_s * 1e3)

    store.close()
    dist_case(launcher(args.launch), args.quick)
    print(f"python_overhead: {time.monotonic() - t_start:.1f} s, load average "
          f"{os.getloadavg()[0]:.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
