#!/usr/bin/env python3
"""How embedding a reference set scales with its size (issue 34, item 5). Run by hand; not part of the tests.

    python benchmarks/bench_scale.py --models-dir DIR --clips 500 2000 [--fad-model vggish]

For each N: N mono clips of 1-10 s (lengths drawn uniformly, seeded) at 16 kHz, then ``audiofidelity stats FOLDER``
(the default backbone's FD statistics and the FAD model's) in a fresh process with a fresh feature cache. Per N: wall
time and seconds per clip and per second of audio, the process's peak RSS (``os.wait4``), and the feature cache's
bytes per clip for each model (its entries told apart by the outputs they hold). Time should grow with the audio, the
cache with the clips; what the peak RSS does is the question.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

from bench_pipeline import machine

RATE = 16000


def write_clips(folder: Path, clips: int, seed: int = 0) -> float:
    """``clips`` noisy tones of 1-10 s; returns their total seconds."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    total = 0.0
    for i in range(clips):
        seconds = rng.uniform(1.0, 10.0)
        t = np.arange(int(seconds * RATE)) / RATE
        x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 3000) * t) + 0.03 * rng.standard_normal(len(t))
        sf.write(folder / f"clip_{i:06d}.wav", x.astype(np.float32), RATE, subtype="PCM_16")
        total += seconds
    return total


def cache_bytes_per_model(cache: Path) -> dict[str, tuple[int, int]]:
    """Feature-cache entries grouped by the outputs they hold: outputs -> (entries, bytes)."""
    found: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for entry in (cache / "features").rglob("*.npz"):
        with np.load(entry) as data:
            outputs = ",".join(sorted(data.files))
        found[outputs][0] += 1
        found[outputs][1] += entry.stat().st_size
    return {k: (v[0], v[1]) for k, v in found.items()}


def run(folder: Path, models_dir: Path, cache: Path, extra: list[str]) -> tuple[float, float, list]:
    """``audiofidelity stats`` in a fresh process: (wall seconds, peak RSS MB, (seconds, RSS MB) each second)."""
    env = {**os.environ, "AUDIOFIDELITY_CACHE": str(cache)}
    command = [sys.executable, "-m", "audiofidelity", "stats", str(folder), "--out", str(folder.parent / "ref.npz"),
               "--models-dir", str(models_dir), "--quiet", *extra]
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples = []  # (seconds, resident MB of the stats process) every second: does the peak settle?
    while True:  # reaped here, not by Popen.poll: wait4 gives the child's peak RSS only to the call that reaps it
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        try:
            status_text = Path(f"/proc/{child.pid}/status").read_text()
            samples.append((time.perf_counter() - start,
                            int(status_text.split("VmRSS:")[1].split()[0]) / 1024))
        except (OSError, IndexError):
            pass
        time.sleep(1.0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"stats failed ({child.returncode}): {child.stderr.read()[-2000:] if child.stderr else ''}")
    return wall, usage.ru_maxrss / 1024, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--clips", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--fad-model", help="stats' --fad-model (default: its default, VGGish)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    extra = ["--fad-model", args.fad_model] * bool(args.fad_model) + ["--precision", args.precision]
    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.2f} at the start")
    print(f"precision {args.precision}; RSS at a quarter, half and three quarters of the wall time, and the peak")
    print("| clips | audio (s) | wall (s) | s per clip | s per s of audio | RSS at 1/4, 1/2, 3/4 (MB) | "
          "peak RSS (MB) | cache bytes per clip, per model |")
    print("|---|---|---|---|---|---|---|---|")
    for clips in args.clips:
        with tempfile.TemporaryDirectory() as tmp:
            audio = write_clips(Path(tmp) / "reference", clips)
            wall, rss, samples = run(Path(tmp) / "reference", args.models_dir, Path(tmp) / "cache", extra)
            quarters = ", ".join(f"{max((m for t, m in samples if t <= wall * q), default=0):.0f}"
                                 for q in (0.25, 0.5, 0.75))
            per_model = "; ".join(f"{outputs}: {size / max(entries, 1) / 1024:.1f} KB x {entries}"
                                  for outputs, (entries, size) in cache_bytes_per_model(Path(tmp) / "cache").items())
            print(f"| {clips} | {audio:.0f} | {wall:.1f} | {wall / clips:.3f} | {wall / audio:.4f} | {quarters} | "
                  f"{rss:.0f} | {per_model} |", flush=True)


if __name__ == "__main__":
    main()
