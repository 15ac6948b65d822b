#!/usr/bin/env python3
"""bf16 against fp32 for every artifact in a models folder: the speed-up of a whole evaluation and the relative
change it makes to each metric, fp32 (the default, exact path) as the baseline in the same run (issue #34, item 3).
Run by hand; not part of the tests.

    python benchmarks/bench_precision.py --models-dir DIR [--clips 10] [--seconds 5]

Two sets of ``--clips`` noisy tones of ``--seconds`` at 44.1 kHz, stereo, written once. For each ``--fad-model``
whose artifact is in DIR: ``eval GEN REF --metrics fad,kad`` (unpaired); for each backbone: its default metrics
(paired: the same file names on both sides), each once at fp32 and once at bf16 (autocast), no feature cache,
timed end to end (decoding and frontends included, which bf16 does not speed up). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from bench_pipeline import machine

BACKBONES = (("cnn14", 16000, "cnn14-16k"), ("cnn14", 32000, "cnn14-32k"), ("mert", 16000, "mert-v1-95m"),
             ("passt", 32000, "passt-s"))


def write_sets(root: Path, clips: int, seconds: float) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    t = np.arange(int(44100 * seconds)) / 44100
    for side, shift in (("gen", 0.0), ("ref", 30.0)):
        (root / side).mkdir()
        for i in range(clips):
            tone = 0.3 * np.sin(2 * np.pi * (200 + 40 * i + shift) * t)
            clip = np.stack([tone + 0.05 * rng.standard_normal(len(t)), tone]).T.astype(np.float32)
            sf.write(root / side / f"clip_{i:02d}.wav", clip, 44100, subtype="PCM_16")
    return root / "gen", root / "ref"


def run(gen: Path, ref: Path, precision: str, **settings) -> tuple[float, dict]:
    from audiofidelity.evaluate import evaluate

    start = time.perf_counter()
    report = evaluate(gen, ref, precision=precision, cache=False, progress=False, **settings).report
    return time.perf_counter() - start, {k: v for k, v in report["metrics"].items() if isinstance(v, float)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    from audiofidelity.registry import fad_models

    have = {p.stem for p in args.models_dir.glob("*.pt2")}
    runs = [(f"--fad-model {name}", dict(fad_model=name, metrics=["fad", "kad"])) for name, model in
            fad_models().items() if model.artifact in have and (model.layer is None or model.layer == 12)]
    runs += [(f"--backbone {backbone} @ {rate // 1000} kHz", dict(backbone=backbone, sample_rate=rate))
             for backbone, rate, artifact in BACKBONES if artifact in have]
    print(f"machine: {machine()}")
    print("| run | fp32 (s) | bf16 (s) | speed-up | relative change of each metric (fp32 value) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        gen, ref = write_sets(Path(tmp), args.clips, args.seconds)
        for label, settings in runs:
            exact_time, exact = run(gen, ref, "fp32", models_dir=args.models_dir, **settings)
            low_time, low = run(gen, ref, "bf16", models_dir=args.models_dir, **settings)
            changes = {k: abs(low[k] - v) / abs(v) for k, v in exact.items()
                       if k in low and v and math.isfinite(v) and not k.endswith("_std")}  # spreads left out
            print(f"| {label} | {exact_time:.1f} | {low_time:.1f} | {exact_time / low_time:.2f}× | "
                  + ("; ".join(f"{k} {c:.2g} ({exact[k]:.3g})" for k, c in changes.items()) or "n/a") + " |")


if __name__ == "__main__":
    main()
