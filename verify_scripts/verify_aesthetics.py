#!/usr/bin/env python3
"""Prove the exported audiobox-aesthetics artifact scores files as the ``audiobox_aesthetics`` package does.

    python verify_scripts/verify_aesthetics.py --source checkpoint.pt --models-dir models/ --audio clips/ \
        --original-python SIDE/bin/python [--bf16 [--bf16-files N]]

The original is the package's own ``AesPredictor`` (``audiobox_aesthetics`` 0.0.4) built from ``--source`` on the CPU,
fed each file as its ``read_wav`` reads it, run by ``aesthetics_original.py`` in a virtualenv with torchaudio (its
resampler; no torchaudio wheel matches the runtime's torch), as a subprocess that saves arrays. Checked against
``audiofidelity eval CLIPS --metrics aesthetics --per-file`` (no reference): every file scored by both, each of its
four scores and the four means within ``--tolerance`` relative (default 1e-4). With ``--bf16``: ours again with
``--precision bf16`` (autocast) on the first ``--bf16-files`` files (default all; 0 none), which it must score, its
largest change from fp32 printed (the figure the README quotes); and the package with ``precision="bf16"``, which
must equal its fp32 scores: ``AesMultiOutput`` tests ``str(dtype)`` against ``{"16", "bf16"}`` after turning the
string into a torch dtype, so autocast is never enabled and the package always computes in fp32 (0.0.4).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import audio_files, verdict
import original_runs

AXES = ("ce", "cu", "pc", "pq")


def original_scores(python: Path, source: Path, files: list[Path], precision: str) -> dict[str, np.ndarray]:
    """``aesthetics_original.py`` in ``python``: the package's four scores per file, by file name."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.npz"
        done = original_runs.run_original(python, Path(__file__).with_name("aesthetics_original.py"),
                                          [source, out, *files, "--precision", precision], out)
        if done.returncode:
            raise SystemExit(f"aesthetics_original.py failed in {python}:\n{done.stderr[-3000:]}")
        with np.load(out) as saved:
            return {path.name: np.asarray(saved[f"clip{i}"], np.float64) for i, path in enumerate(files)}


def our_scores(folder: Path, models_dir: Path | None, precision: str) -> tuple[dict[str, np.ndarray], dict]:
    """``eval FOLDER --metrics aesthetics --per-file`` without a reference: each file's four scores, and the report."""
    from audiofidelity.evaluate import evaluate

    report = evaluate(folder, metrics=["aesthetics"], per_file=True, models_dir=models_dir, precision=precision,
                      progress=False, cache=False).report
    return {name: np.array([row[f"aesthetics_{axis}"] for axis in AXES])
            for name, row in report.get("per_file", {}).items() if "aesthetics_ce" in row}, report


def compare(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray], label: str) -> float:
    """Print each file's largest relative difference; return the worst (inf when the files differ)."""
    if set(ours) != set(theirs):
        print(f"{label}: files differ: ours {sorted(ours)}, the package's {sorted(theirs)}")
        return float("inf")
    worst = 0.0
    for name in sorted(ours):
        error = float(np.max(np.abs(ours[name] - theirs[name]) / np.maximum(np.abs(theirs[name]), 1e-12)))
        worst = max(worst, error)
        print(f"  {name:<28} ours {np.round(ours[name], 5)} package {np.round(theirs[name], 5)} rel {error:.3g}")
    means = np.mean(list(ours.values()), axis=0), np.mean(list(theirs.values()), axis=0)
    mean_error = float(np.max(np.abs(means[0] - means[1]) / np.abs(means[1])))
    print(f"{label}: worst file {worst:.3g}, means {mean_error:.3g} relative")
    return max(worst, mean_error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="audiobox-aesthetics' checkpoint.pt")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--audio", type=Path, required=True, help="a folder of audio files")
    parser.add_argument("--original-python", type=Path, required=True,
                        help="a Python with torch, torchaudio, soundfile and audiobox_aesthetics (--no-deps)")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--bf16", action="store_true", help="also run ours in bfloat16 and print the change")
    parser.add_argument("--bf16-files", type=int, default=None, metavar="N",
                        help="ours in bfloat16 on the first N scored files only (default: all; 0: none, the "
                             "package's check alone); on a CPU without bf16 instructions bfloat16 is emulated, about "
                             "ten times slower than fp32")
    args = parser.parse_args(argv)
    if args.bf16_files is not None and (not args.bf16 or args.bf16_files < 0):
        parser.error("--bf16-files takes a number of files of 0 or more, with --bf16")
    files = audio_files([args.audio])
    if not files:
        parser.error(f"no audio files in {args.audio}")

    ours, report = our_scores(args.audio, args.models_dir, "fp32")
    scored = [path for path in files if path.name in ours]
    for problem in report["problems"]:
        print(f"  ours skipped {problem['file']}: {problem['reason']}")
    theirs = original_scores(args.original_python, args.source, scored, "32")
    failed = []
    worst = compare(ours, theirs, "fp32")
    if worst > args.tolerance:
        failed.append(f"fp32 scores differ by {worst:.3g} relative (tolerance {args.tolerance:g})")
    if args.bf16 and args.bf16_files != 0:
        subset = scored[:args.bf16_files]
        with tempfile.TemporaryDirectory() as tmp:  # the subset as a folder of links: eval reads folders
            for path in subset:
                (Path(tmp) / path.name).symlink_to(path.resolve())
            ours_bf16, _ = our_scores(Path(tmp), args.models_dir, "bf16")
        if ours_bf16:
            change = max(float(np.max(np.abs(ours_bf16[n] - ours[n]))) for n in ours_bf16)
            relative = max(float(np.max(np.abs(ours_bf16[n] - ours[n]) / np.abs(ours[n]))) for n in ours_bf16)
            print(f"bf16 vs fp32 (ours, {len(ours_bf16)} of {len(ours)} files): largest change of a file's score "
                  f"{change:.3g} on the 1-10 scale ({relative:.3g} relative)")
        if set(ours_bf16) != {path.name for path in subset}:
            failed.append(f"ours in bf16 scored {sorted(ours_bf16)}, in fp32 {sorted(p.name for p in subset)}")
    if args.bf16:
        theirs_bf16 = original_scores(args.original_python, args.source, scored, "bf16")
        same = all(np.array_equal(theirs_bf16[n], theirs[n]) for n in theirs)
        print(f"the package with precision='bf16': {'identical to' if same else 'differs from'} its fp32 scores")
        if not same:
            failed.append("the package's precision='bf16' changed its scores: it runs bf16 now; compare ours with it")
    return verdict(failed, f"{len(ours)} files' scores within {args.tolerance:g} of audiobox_aesthetics")


if __name__ == "__main__":
    sys.exit(main())
