#!/usr/bin/env python3
"""Prove ``eval --fad-model openl3-*`` gives stable-audio-metrics' OpenL3 FD: openl3 0.4.2 (kapre, TensorFlow) fed by
stable-audio-metrics' own ``extract_embeddings`` (batched) and ``extract_embeddings_nobatching``, against
audiofidelity's exported artifact with the same weights, on the same two folders of WAV files.

    python verify_scripts/verify_openl3.py --source openl3_audio_mel256_music.h5 --content-type music \
        --models-dir models/ --generated GEN/ --reference REF/ --original-python /tmp/openl3-venv/bin/python

openl3 needs TensorFlow and kapre: the original runs in its own virtualenv (``--original-python``;
``openl3_original.py``'s docstring says how to make one) as a subprocess (``openl3_original.py fd``), which saves each
file's embeddings and each path's FD. Here each comparison is ``audiofidelity eval --metrics fad --fad-model M``
(``RUNS``), in-process, with ``--save-features``: the FD and every file's rows (windows x 512 or 1024) are compared
(``BOUNDS``). Prints one line per figure, writes ``DIR/verify.json``, and exits 1 when any figure is over its bound.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from common import verdict
import original_runs

ORIGINAL_SCRIPT = Path(__file__).resolve().parent / "openl3_original.py"
RUNS = (("mono", "unbatched", 1), ("mono", "batched", 1), ("stereo", "batched", 2),
        ("stereo-unbatched", "unbatched", 2))
"""(FAD model suffix, stable-audio-metrics' path, its ``channels``) of each comparison: ``openl3-<content>-mono`` is
both paths' ``channels=1`` (the batched one up to a stereo file's gain, which the mel's max normalisation cancels)."""
BOUNDS = {"fd": 2e-3, "rows": 2e-2}
"""Relative bounds (``rows``: each file's max |difference| / max |value|). openl3's decibel mel is 10 log10 of the
magnitude over an 80-dB range, and its floor (1e-8 of a window's largest mel value) is below float32 precision: mel
bands with no content (above 22.05 kHz once 44.1-kHz audio is resampled to 48 kHz; a tone's empty bands) are
TensorFlow's FFT rounding there, different per TensorFlow build and CPU, and float64 here. Measured on the stand-ins
(``tests/test_openl3.py``'s clips at 44.1 kHz): rows 9e-3 to 1.1e-2, FD 6e-5 to 4.7e-4; the original itself moves by
1.0e-2 (rows) and 5e-4 (FD) between its batched and unbatched paths on the same mono signal, which differ only in
a gain the decibel mel cancels. Every other step is checked exactly elsewhere: the resampling and framing bit for bit,
the network on the same mel within 1e-5, the mel above -40 dB within 2e-3 dB (``tests/test_openl3.py``)."""


def run_original(python: Path, source: Path, content_type: str, rate: int, generated: Path, reference: Path,
                 out: Path) -> dict[str, np.ndarray]:
    """``openl3_original.py fd`` in the original's virtualenv; its arrays."""
    done = original_runs.run_original(python, ORIGINAL_SCRIPT,
                                      ["fd", source, content_type, rate, generated, reference, out], out, timeout=3600)
    if done.returncode:
        raise SystemExit(f"openl3_original.py fd failed in {python}:\n{done.stderr[-3000:]}")
    with np.load(out) as saved:
        return dict(saved)


def run_ours(generated: Path, reference: Path, models_dir: Path, out: Path, model: str,
             rate: int) -> tuple[dict, dict[str, np.ndarray]]:
    """``audiofidelity eval --fad-model model``, in-process; its report and features."""
    from audiofidelity import cli

    out.mkdir(parents=True, exist_ok=True)
    status = cli.main(["eval", str(generated), str(reference), "--models-dir", str(models_dir), "--metrics", "fad",
                       "--fad-model", model, "--openl3-rate", str(rate), "--no-cache", "--workers", "0", "--quiet",
                       "--json", str(out / "report.json"), "--save-features", str(out / "features.npz")])
    if status:
        raise SystemExit(f"audiofidelity eval --fad-model {model} exited {status}")
    return json.loads((out / "report.json").read_text()), dict(np.load(out / "features.npz"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="openl3_audio_mel256_<content>.h5")
    parser.add_argument("--content-type", choices=("music", "env"), required=True)
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--generated", type=Path, required=True, help="a folder of .wav files")
    parser.add_argument("--reference", type=Path, required=True, help="a folder of .wav files")
    parser.add_argument("--rate", type=int, default=44100, help="stable-audio-metrics' samplingrate")
    parser.add_argument("--original-python", type=Path, required=True,
                        help="a Python with openl3 0.4.2, kapre 0.3.7, TensorFlow, soxr, pyloudnorm and librosa")
    parser.add_argument("--out", type=Path, default=Path("verify-openl3"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    theirs = run_original(args.original_python, args.source, args.content_type, args.rate, args.generated,
                          args.reference, args.out / "original.npz")
    names = {side: [str(n) for n in theirs[f"files_{side}"]] for side in ("gen", "ref")}
    measured: dict[str, float] = {}
    failed: list[str] = []
    for suffix, path, channels in RUNS:
        model = f"openl3-{args.content_type}-{suffix}"
        report, features = run_ours(args.generated, args.reference, args.models_dir, args.out / f"{suffix}-{path}",
                                    model, args.rate)
        label = f"{model} vs {path} channels={channels}"
        if report["problems"]:
            failed.append(f"{label}: audiofidelity left out {[p['file'] for p in report['problems']]}")
            continue
        fd_theirs = float(theirs[f"fd_{path}_ch{channels}"])
        fd_ours = report["metrics"]["frechet_audio_distance"]
        measured[f"{label}: fd"] = abs(fd_ours - fd_theirs) / abs(fd_theirs)
        print(f"  {label}: FD ours {fd_ours:.8g}, theirs {fd_theirs:.8g}")
        for side, prefix in (("gen", "gen"), ("ref", "ref")):
            for i, name in enumerate(names[side]):
                want = theirs[f"{path}_ch{channels}_{side}_{i}"]
                got = features[f"{prefix}/{model}/{name}"]
                if got.shape != want.shape:
                    failed.append(f"{label} {side}/{name}: rows {got.shape}, theirs {want.shape}")
                    continue
                key = f"{label}: rows"
                measured[key] = max(measured.get(key, 0.0), float(np.abs(got - want).max() / np.abs(want).max()))
    for what, value in measured.items():
        bound = BOUNDS[what.rsplit(": ", 1)[1]]
        print(f"  {what:<70} {value:.3g} (bound {bound:g})")
        if value > bound:
            failed.append(f"{what}: {value:.3g} over {bound:g}")
    (args.out / "verify.json").write_text(json.dumps({"measured": measured, "failed": failed}, indent=1))
    return verdict(failed, f"OpenL3 FD and every file's rows within {BOUNDS} of stable-audio-metrics' own code")


if __name__ == "__main__":
    sys.exit(main())
