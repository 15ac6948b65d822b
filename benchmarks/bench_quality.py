#!/usr/bin/env python3
"""The reference-free scores' cost: seconds per 10-s clip for ``aesthetics`` (audiobox-aesthetics) and ``pam``, fp32
against bf16 in the same run, end to end through ``eval --metrics M`` without a reference, and how far bf16 moves
the scores (issue #33). Run by hand; not part of the tests.

    python benchmarks/bench_quality.py --models-dir DIR [--clips 8] [--metrics aesthetics,pam]

The clips: noisy tones of 10 s at 44.1 kHz, stereo (decoding, the channel mean and torchaudio's resampler to 16 kHz
are in the figure); no feature cache. Median of 3 after a warm-up.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from bench_fad_models import median_seconds
from bench_pipeline import machine



def write_clips(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(441000) / 44100
    folder.mkdir()
    for i in range(count):
        tone = 0.3 * np.sin(2 * np.pi * (220 + 55 * i) * t)
        clip = np.stack([tone + 0.05 * rng.standard_normal(len(t)), tone]).T.astype(np.float32)
        sf.write(folder / f"clip_{i:02d}.wav", clip, 44100, subtype="PCM_16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--metrics", default="aesthetics,pam")
    args = parser.parse_args()
    from audiofidelity.evaluate import Evaluator

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "gen"
        write_clips(folder, args.clips)
        for metric in args.metrics.split(","):
            seconds, scores = {}, {}
            for precision in ("fp32", "bf16"):
                with Evaluator(metrics=[metric], models_dir=args.models_dir, precision=precision, cache=False,
                               progress=False) as evaluator:
                    report = evaluator.evaluate(folder, per_file=True).report
                    seconds[precision] = median_seconds(lambda: evaluator.evaluate(folder), args.repeats) / args.clips
                keys = sorted(k for k in report["metrics"])
                scores[precision] = np.array([[row[k] for k in keys] for row in report["per_file"].values()])
            change = np.abs(scores["bf16"] - scores["fp32"])
            print(f"{metric}, {args.clips} clips of 10 s at 44.1 kHz stereo, end to end: fp32 {seconds['fp32']:.3f} s "
                  f"per clip, bf16 {seconds['bf16']:.3f} s per clip ({seconds['fp32'] / seconds['bf16']:.2f}x); bf16 "
                  f"moves a file's score by up to {change.max():.3g} (mean {change.mean():.3g}), "
                  f"{np.max(change / np.abs(scores['fp32'])):.3g} relative")


if __name__ == "__main__":
    sys.exit(main())
