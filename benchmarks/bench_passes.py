#!/usr/bin/env python3
"""The model stage with full passes across clips (the default for items of a frontend's nominal shape) against one
clip per pass (the runner's behaviour before; ``nominal_shape=None``), in the same run, for every ``--fad-model``
whose frontend has a nominal shape.

    python benchmarks/bench_passes.py --models-dir DIR [--repeats 3] [--batch-size 8]

Three sets, each clip's model input computed once beforehand (decoding and frontends are not timed): 16 clips of
10 s (a typical set), 16 clips of 1-20 s (mixed lengths: windowed frontends still give mostly full windows), and one
10-s clip (an ``Embedder.embed`` call: its one window runs in a pass of ``batch_size``). Median of ``repeats`` after
a warm-up; prints a Markdown table (seconds, and the ratio old / new: above 1, full passes are faster). Run by hand;
results go to ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from audiofidelity.artifacts import local_files
from audiofidelity.evaluate import Evaluator
from audiofidelity.registry import fad_models
from audiofidelity.runner import EmbeddingRunner

MODELS = ("cnn14-16k", "vggish", "clap-630k-audioset", "openl3-music-mono", "mert-v1-95m-12", "passt-s")


def median_seconds(work, repeats: int) -> float:
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def clips(lengths: list[float], rate: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for seconds in lengths:
        t = np.arange(int(seconds * rate)) / rate
        out.append((0.2 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t)
                    + 0.05 * rng.standard_normal(len(t))).astype(np.float32)[None])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    rate = 44100
    sets = {"16 x 10 s": clips([10.0] * 16, rate, 0),
            "16 x 1-20 s": clips(list(np.random.default_rng(1).uniform(1.0, 20.0, 16)), rate, 1),
            "1 x 10 s": clips([10.0], rate, 2)}
    print("| FAD model | set | items | one clip per pass (s) | full passes (s) | old / new |")
    print("|---|---|---|---|---|---|")
    for name in MODELS:
        model = fad_models()[name]
        found = local_files(model.artifact, args.models_dir)
        if found is None or not all(p.is_file() for p in found):
            print(f"{name}: no artifact in {args.models_dir}, skipped")
            continue
        evaluator = Evaluator(metrics=["fad"], fad_model=name, models_dir=args.models_dir, cache=False,
                              progress=False, batch_size=args.batch_size)
        stage = evaluator.stages[0]
        nominal = stage.runner.nominal_shape
        old = EmbeddingRunner(stage.runner.artifact, batch_size=args.batch_size)
        for label, audio in sets.items():
            inputs = [stage.input.model_input(a, rate, evaluator.conditioning, {}) for a in audio]
            items = sum(len(x) for x in inputs)
            before = median_seconds(lambda r=old, x=inputs, o=stage.outputs: r.run(x, o), args.repeats)
            after = median_seconds(lambda r=stage.runner, x=inputs, o=stage.outputs: r.run(x, o), args.repeats)
            print(f"| {name} {nominal} | {label} | {items} | {before:.3f} | {after:.3f} | {before / after:.2f} |")


if __name__ == "__main__":
    main()
