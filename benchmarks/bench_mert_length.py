#!/usr/bin/env python3
"""MERT time and peak memory against clip length (attention is quadratic in length).

    python benchmarks/bench_mert_length.py --models-dir models/ [--seconds 10 30 60 120] [--chunk 10]

Each length runs in a fresh process: one clip of noise at 24 kHz through the exported MERT, whole
(audioldm_eval-compatible) and, with ``--chunk``, as windows of that many seconds. Prints seconds of
forward pass and the process's peak resident memory. The baseline, measured in the same run, is the
10-s clip: ratios show how cost grows with length. Run by hand; not part of the test suite.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np
from audiofidelity import artifacts
from audiofidelity.models import apply_frontend
from audiofidelity.runner import EmbeddingRunner
seconds, chunk, models = float(sys.argv[1]), sys.argv[2], sys.argv[3]
art = artifacts.load("mert-v1-95m", directory=models)
frontend = dict(art.manifest.frontend)
if chunk != "none":
    frontend["chunk_samples"] = int(float(chunk) * 24000)
x = apply_frontend(np.random.RandomState(0).standard_normal(int(seconds * 24000)).astype(np.float32) * 0.1, frontend)
runner = EmbeddingRunner(art, batch_size=1, collect=None if chunk == "none" else "mean")
start = time.perf_counter()
runner.run([x])
print(json.dumps({"seconds": time.perf_counter() - start, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(seconds: float, chunk: str, models: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(seconds), chunk, models], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10, 30, 60, 120])
    parser.add_argument("--chunk", type=float, default=10.0)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; torch threads default")
    print(f"{'clip s':>7} {'whole: s':>9} {'x10s':>6} {'peak MB':>8}   {'chunked: s':>10} {'peak MB':>8}")
    base = None
    for s in args.seconds:
        whole = measure(s, "none", args.models_dir)
        chunked = measure(s, str(args.chunk), args.models_dir)
        base = base or whole["seconds"]
        print(f"{s:>7.0f} {whole['seconds']:>9.2f} {whole['seconds'] / base:>6.1f} {whole['peak_mb']:>8.0f}   "
              f"{chunked['seconds']:>10.2f} {chunked['peak_mb']:>8.0f}")


if __name__ == "__main__":
    main()
