#!/usr/bin/env python3
"""bf16 passes with 4-D weights channels-last (the runtime's bf16 layout) against the layout as exported, for every
artifact in a models folder: seconds per clip and whether the output bits change (issue #34, item 3).
Run by hand; not part of the tests.

    python benchmarks/bench_layout.py --models-dir DIR [--clips 8] [--repeats 3]

For each ``--fad-model`` (MERT at layer 12 only) and each reference-free scorer whose artifact is in DIR: the stage's
inputs of ``--clips`` 10-s stereo clips at 44.1 kHz are computed once, then ``EmbeddingRunner.run`` on them at bf16
is timed with the program as exported and with the channels-last copy (``LoadedArtifact.program_for("bf16")``),
one after the other, median of ``--repeats`` after a warm-up, with glibc's heap set as the command line sets it
(``heap.keep_freed_heap``; loading a program sets it). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench_fad_models import median_seconds
from bench_pipeline import machine
from bench_quality import write_clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", help="comma-separated run labels (the table's first column) to time")
    args = parser.parse_args()
    from audiofidelity.audio import Conditioning
    from audiofidelity.evaluate import Evaluator
    from audiofidelity.features import compute_inputs
    from audiofidelity.registry import fad_models

    have = {p.stem for p in args.models_dir.glob("*.pt2")}
    runs = [(name, dict(fad_model=name, metrics=["fad"])) for name, model in fad_models().items()
            if model.artifact in have and (model.layer is None or model.layer == 12)]
    runs += [(scorer, dict(metrics=[scorer])) for scorer, artifact in (("aesthetics", "audiobox-aesthetics"),
                                                                        ("pam", "pam")) if artifact in have]
    if args.only:
        runs = [run for run in runs if run[0] in args.only.split(",")]
    print(f"machine: {machine()}")
    print("| artifact (run) | input item | bf16, as exported (s per clip) | bf16, channels-last | speed-up | "
          "same bits |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        write_clips(Path(tmp) / "clips", args.clips)
        paths = sorted((Path(tmp) / "clips").iterdir())
        for label, settings in runs:
            evaluator = Evaluator(models_dir=args.models_dir, cache=False, progress=False, precision="bf16",
                                  **settings)
            for stage in evaluator.stages:
                xs = [compute_inputs(p, [stage.input], [0], Conditioning())[0][0] for p in paths]
                artifact = stage.runner.artifact
                outputs = {}
                timing = {}
                for layout in ("exported", "channels_last"):
                    artifact._programs.pop("channels_last", None)
                    if layout == "exported":  # the baseline: the program as exported stands in for the bf16 copy
                        artifact._programs["channels_last"] = artifact.program_for("fp32")
                    run = stage.runner.run
                    timing[layout] = median_seconds(lambda run=run, xs=xs: run(xs), args.repeats) / len(xs)
                    outputs[layout] = stage.runner.run(xs)
                same = all(a.tobytes() == b.tobytes() for name in outputs["exported"]
                           for a, b in zip(outputs["exported"][name], outputs["channels_last"][name]))
                print(f"| {artifact.manifest.name} ({label}) | {tuple(xs[0][0].shape)} | "
                      f"{timing['exported']:.3f} | {timing['channels_last']:.3f} | "
                      f"{timing['exported'] / timing['channels_last']:.2f}× | {'yes' if same else 'no'} |",
                      flush=True)
                artifact._programs.clear()  # one program in memory at a time


if __name__ == "__main__":
    main()
