#!/usr/bin/env python3
"""Time the paired signal metrics (PSNR, SSIM, LSD) on N pairs of 10-second clips at mixed rates.

    python benchmarks/bench_signal.py [--pairs 200] [--sr 16000]

Writes N reference clips (16/22.05/32/44.1/48 kHz, 10 s, tones + noise) and a degraded copy of
each into a temp dir, then times ``evaluate(..., metrics=psnr,ssim,lsd)``. The baseline, measured in
the same run, is decoding + resampling every file once (work any evaluator must do); the ratio says
what the metrics add on top. Run by hand; not part of the test suite.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from audiofidelity import evaluate
from audiofidelity.audio import Conditioning, load_conditioned

RATES = [16000, 22050, 32000, 44100, 48000]


def write_pairs(root: Path, pairs: int, seconds: float = 10.0, rate: int | None = None) -> tuple[Path, Path]:
    """``pairs`` paired clips of ``seconds``, at ``rate`` (default: cycling through ``RATES``)."""
    gen, ref = root / "generated", root / "reference"
    gen.mkdir(), ref.mkdir()
    rs = np.random.RandomState(0)
    for i in range(pairs):
        sr = rate or RATES[i % len(RATES)]
        t = np.arange(int(sr * seconds)) / sr
        x = sum(np.sin(2 * np.pi * rs.uniform(80, 4000) * t + rs.uniform(0, 6)) / k for k in range(1, 5))
        x = 0.5 * x / np.max(np.abs(x)) + 0.01 * rs.standard_normal(len(t))
        y = np.convolve(x + 0.03 * rs.standard_normal(len(t)), np.ones(3) / 3, mode="same")
        sf.write(ref / f"clip_{i:04d}.wav", x.astype(np.float32), sr)
        sf.write(gen / f"clip_{i:04d}.wav", y.astype(np.float32), sr)
    return gen, ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--sr", type=int, default=16000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        gen, ref = write_pairs(Path(tmp), args.pairs)
        cond = Conditioning(min_samples=0)
        start = time.perf_counter()
        for folder in (gen, ref):
            for path in sorted(folder.iterdir()):
                load_conditioned(path, args.sr, cond)
        baseline = time.perf_counter() - start
        start = time.perf_counter()
        report = evaluate(gen, ref, sample_rate=args.sr, metrics=["psnr", "ssim", "lsd"], progress=False).report
        elapsed = time.perf_counter() - start
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"{args.pairs} pairs of 10 s clips at {args.sr} Hz: psnr {report['metrics']['psnr']:.3f}, "
          f"ssim {report['metrics']['ssim']:.4f}, lsd {report['metrics']['lsd']:.4f}")
    print(f"decode + resample only (baseline): {baseline:.2f} s")
    print(f"psnr + ssim + lsd evaluation:      {elapsed:.2f} s  ({elapsed / args.pairs * 1000:.1f} ms per pair, "
          f"{elapsed / baseline:.2f}x the baseline)")


if __name__ == "__main__":
    main()
