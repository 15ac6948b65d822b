#!/usr/bin/env python3
"""Seconds per 1000 one-second clips through the SC09 benchmark's pipeline, against a NumPy baseline.

    python benchmarks/bench_sc09.py --models-dir DIR [--clips 1000]

Writes ``--clips`` 1-s 16 kHz noisy tones (a tenth at 22.05 kHz, resampled as the benchmark does), then times
``sc09.classify`` on them: decode, condition, 32x32 mel, classifier in batches of 128. The baseline, in the same
run, is the decode alone (soundfile). Run by hand; results go to ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from audiofidelity import sc09
from audiofidelity.artifacts import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--clips", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(args.clips):
            rate = 22050 if i % 10 == 0 else 16000
            t = np.arange(rate) / rate
            x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.05 * rng.standard_normal(rate)
            sf.write(folder / f"gen_{i:04d}.wav", x.astype(np.float32), rate, subtype="PCM_16")
        files = sc09.generated_files(folder)
        artifact = load(sc09.ARTIFACT, directory=args.models_dir)
        sc09.classify(files[:8], folder, artifact)  # warm-up: loads the program
        start = time.perf_counter()
        for path in files:
            sf.read(path, dtype="float32")
        decode = time.perf_counter() - start
        start = time.perf_counter()
        result = sc09.classify(files, folder, artifact)
        total = time.perf_counter() - start
    scale = 1000 / args.clips
    print(f"| clips | decode only (s per 1000) | sc09 pipeline (s per 1000) | × decode |\n|---|---|---|---|\n"
          f"| {len(result.files)} | {decode * scale:.2f} | {total * scale:.1f} | {total / decode:.0f} |")


if __name__ == "__main__":
    main()
