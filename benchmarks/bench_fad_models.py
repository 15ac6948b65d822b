#!/usr/bin/env python3
"""Seconds per 10-s clip for every ``--fad-model``, against VGGish (audioldm_eval's FAD model) in the same run.

    python benchmarks/bench_fad_models.py --models-dir DIR [--repeats 3]

One 10-s stereo clip at 44.1 kHz, written once; for each FAD model whose artifact is in DIR: its audio
preparation (decode, condition at the model's rate, frontend) and its forward passes, timed separately,
median of ``repeats`` after a warm-up call, one clip per pass as ``eval`` runs it. Prints a Markdown table with
the ratio of each model's total to VGGish's. Run by hand; results go to ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from audiofidelity.artifacts import local_files
from audiofidelity.evaluate import Evaluator
from audiofidelity.features import compute_inputs
from audiofidelity.registry import fad_models

MODELS = ("vggish", "cnn14-8k", "cnn14-16k", "cnn14-32k", "encodec-24k", "encodec-48k", "mert-v1-95m-12",
          "clap-630k-audioset", "clap-music", "openl3-music-mono", "openl3-music-stereo")


def median_seconds(work, repeats: int) -> float:
    work()  # warm-up: the first call loads the program and allocates
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.wav"
        rate = 44100
        t = np.arange(10 * rate) / rate
        wave = 0.3 * np.sin(2 * np.pi * 440 * t)[:, None] + 0.05 * np.random.default_rng(0).standard_normal((len(t), 2))
        sf.write(clip, wave.astype(np.float32), rate, subtype="PCM_16")
        rows = []
        for name in MODELS:
            model = fad_models()[name]
            found = local_files(model.artifact, args.models_dir)
            if found is None or not all(p.is_file() for p in found):
                print(f"{name}: no artifact in {args.models_dir}, skipped")
                continue
            evaluator = Evaluator(metrics=["fad"], fad_model=name, models_dir=args.models_dir, cache=False,
                                  progress=False)
            stage = evaluator.stages[0]
            prepare = lambda: compute_inputs(clip, [stage.input], [0], evaluator.conditioning)[0][0]  # noqa: E731
            x = prepare()
            prep = median_seconds(prepare, args.repeats)
            forward = median_seconds(lambda: stage.runner.run([x]), args.repeats)
            rows.append((name, prep, forward))
    base = next((p + f for n, p, f in rows if n == "vggish"), None)
    print("| FAD model | audio preparation (s) | forward passes (s) | total per 10-s clip (s) | × VGGish |")
    print("|---|---|---|---|---|")
    for name, prep, forward in rows:
        ratio = f"{(prep + forward) / base:.2f}" if base else "-"
        print(f"| {name} | {prep:.3f} | {forward:.3f} | {prep + forward:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
