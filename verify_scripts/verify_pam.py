#!/usr/bin/env python3
"""Prove the exported PAM artifact scores files as PAM's own code does.

    python verify_scripts/verify_pam.py --source CLAP_weights_2023.pth --vocab vocab.json --merges merges.txt \
        --models-dir models/ --audio clips/ --original-python SIDE/bin/python

The original is msclap 1.3.4's ``CLAP`` built as PAM builds it (PAM is not on the package index; its model code is
msclap's), fed and scored by PAM's own steps transcribed in ``pam_original.py`` (``dataset.py``'s reading and 7-s
chunks, ``PAM.evaluate``), which runs in a virtualenv with torchaudio (``transforms.Resample``) as a subprocess that
saves arrays. Checked against ``audiofidelity eval CLIPS --metrics pam --per-file`` (no reference): every file scored
by both, each file's PAM and the mean within ``--tolerance`` relative (default 1e-4).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import audio_files, verdict
import original_runs


def original_scores(python: Path, source: Path, vocab: Path, merges: Path, files: list[Path]) -> dict[str, float]:
    """``pam_original.py`` in ``python``: each file's PAM, by file name."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.npz"
        done = original_runs.run_original(python, Path(__file__).with_name("pam_original.py"),
                                          [source, vocab, merges, out, *files], out)
        if done.returncode:
            raise SystemExit(f"pam_original.py failed in {python}:\n{done.stderr[-3000:]}")
        with np.load(out) as saved:
            return {path.name: float(saved[f"clip{i}"]) for i, path in enumerate(files)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="msclap's CLAP_weights_2023.pth")
    parser.add_argument("--vocab", type=Path, required=True, help="GPT-2's vocab.json (the one the export read)")
    parser.add_argument("--merges", type=Path, required=True, help="GPT-2's merges.txt")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--audio", type=Path, required=True, help="a folder of audio files")
    parser.add_argument("--original-python", type=Path, required=True,
                        help="a Python with torch, torchaudio, transformers, torchlibrosa, soundfile and msclap "
                             "(--no-deps)")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args(argv)
    files = audio_files([args.audio])
    if not files:
        parser.error(f"no audio files in {args.audio}")
    from audiofidelity.evaluate import evaluate

    report = evaluate(args.audio, metrics=["pam"], per_file=True, models_dir=args.models_dir, progress=False,
                      cache=False).report
    ours = {name: row["pam"] for name, row in report.get("per_file", {}).items() if "pam" in row}
    for problem in report["problems"]:
        print(f"  ours skipped {problem['file']}: {problem['reason']}")
    theirs = original_scores(args.original_python, args.source, args.vocab, args.merges,
                             [p for p in files if p.name in ours])
    failed = []
    if set(ours) != set(theirs):
        failed.append(f"files differ: ours {sorted(ours)}, PAM's {sorted(theirs)}")
    worst = 0.0
    for name in sorted(set(ours) & set(theirs)):
        error = abs(ours[name] - theirs[name]) / max(abs(theirs[name]), 1e-12)
        worst = max(worst, error)
        print(f"  {name:<28} ours {ours[name]:.7f} PAM {theirs[name]:.7f} rel {error:.3g}")
    mean_error = abs(report["metrics"]["pam"] - float(np.mean(list(theirs.values())))) / abs(np.mean(
        list(theirs.values())))
    print(f"PAM: worst file {worst:.3g}, mean {mean_error:.3g} relative (ours {report['metrics']['pam']:.7f})")
    if max(worst, mean_error) > args.tolerance:
        failed.append(f"PAM differs by {max(worst, mean_error):.3g} relative (tolerance {args.tolerance:g})")
    return verdict(failed, f"{len(ours)} files' PAM within {args.tolerance:g} of PAM's own code")


if __name__ == "__main__":
    sys.exit(main())
