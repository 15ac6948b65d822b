#!/usr/bin/env python3
"""Model passes with glibc's heap as it comes and as ``heap.keep_freed_heap`` sets it (issue #34).
Run by hand; not part of the tests.

    python benchmarks/bench_heap.py --models-dir DIR [--rounds 3] [--precision fp32]

Each variant runs in a fresh process, alternating, ``--rounds`` times (glibc's defaults: ``MALLOC_MMAP_MAX_`` set to
glibc's own value, so that loading a program leaves the heap as it comes): CNN14 16 kHz (passes of 8 ten-second clips)
and VGGish (passes of 32 examples, as the runtime's) load, warm up once, then run 3 passes each; the process
reports the wall, user and system CPU seconds of those passes and its peak RSS. Prints a Markdown table of medians.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench_pipeline import machine

PASSES = """
import json, resource, sys, time
from pathlib import Path
import torch
from audiofidelity import artifacts
from audiofidelity.heap import keep_freed_heap
from audiofidelity.runner import _precision

folder, precision = Path(sys.argv[1]), sys.argv[2]
runs = [(artifacts.load(name, directory=folder).program_for(precision), torch.randn(*shape))
        for name, shape in (("cnn14-16k", (8, 1, 1001, 64)), ("vggish", (32, 1, 96, 64)))]
with torch.inference_mode(), _precision(precision, "cpu"):
    for program, x in runs:
        program(x)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(3):
        for program, x in runs:
            program(x)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"made": keep_freed_heap(), "wall": wall, "user": after.ru_utime - before.ru_utime,
                  "sys": after.ru_stime - before.ru_stime, "rss_mb": after.ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    args = parser.parse_args()
    results: dict[str, list[dict]] = {"as it comes": [], "kept": []}
    for _ in range(args.rounds):
        for variant in results:
            env = {**os.environ, **({} if variant == "kept" else {"MALLOC_MMAP_MAX_": "65536"})}
            done = subprocess.run([sys.executable, "-c", PASSES, str(args.models_dir), args.precision],
                                  capture_output=True, text=True, check=True, env=env)
            results[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"machine: {machine()}, {args.precision}, {args.rounds} rounds")
    print("| glibc heap | passes wall (s) | user CPU (s) | system CPU (s) | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    for variant, runs in results.items():
        label = "`keep_freed_heap`" if variant == "kept" else "as it comes (glibc's defaults)"
        print(f"| {label} | " + " | ".join(f"{statistics.median(r[k] for r in runs):.2f}"
                                          for k in ("wall", "user", "sys")) +
              f" | {statistics.median(r['rss_mb'] for r in runs):.0f} |")
    assert all(r["made"] for r in results["kept"]), "keep_freed_heap made no setting (not glibc, or MALLOC_* set)"
    assert not any(r["made"] for r in results["as it comes"]), "the baseline's heap was set"


if __name__ == "__main__":
    main()
