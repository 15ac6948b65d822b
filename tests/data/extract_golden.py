#!/usr/bin/env python3
"""Copy the golden figures the tests compare against out of the shared golden runs.

    python tests/data/extract_golden.py ../shared/golden

The golden runs are outputs of the original audioldm_eval (see their README); this script only
selects and repackages them so the suite runs on a fresh clone without ``../shared``:

- ``golden/<run>/metrics.json``: the run's metrics.json, unchanged;
- ``golden/<run>/features.npz``: ``<gen|ref>/<2048|logits|files>`` stacked in the original's row
  order (reference features are stored once per sample rate, in the paired runs);
- ``golden/signal_mels.npz``: ``<rate>/<gen|target>/<file>``, the PSNR/SSIM mel spectrograms of four
  short clips per rate (one each from 16k, 32k FLAC, 44.1k and 48k sources), as the original computed them;
- ``golden/<cnn14_16k_*>/vggish.npz``: ``<gen|ref>/emb/<file>`` (per-file VGGish frames x 128, pre-ReLU),
  ``<gen|ref>/files``, and in the paired run ``ref/examples/<file>`` for four clips (the log-mel patches; clip_10 is native 16 kHz);
- ``golden/<mert_*>/metrics.json`` and ``golden/<mert_*>/mert.npz``: ``<gen|ref>/layer_time_mean/<file>``
  (13 x 768) for a few clips per run, and in ``mert_16k_paired`` for three clips the 24 kHz waveform
  (``ref/wave24k``) and normalised input (``ref/input_values``) as head/middle/tail windows plus length;
- ``golden/resampled.npz``: for one clip per (source rate, target rate) pair, the conditioned
  classifier input (first channel, mean removed, torchaudio-resampled, padded): its length and
  three 2048-sample windows (head, middle, tail), enough to pin the resampler to 1e-5 everywhere
  a kernel edge or phase can go wrong, at a few hundred KB instead of 20 MB.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

RUNS = ["cnn14_16k_paired", "cnn14_16k_unpaired", "cnn14_32k_paired", "cnn14_32k_unpaired"]
WINDOW = 2048
# one clip per source rate: {run: [(clip, source rate)]}; rates read from the fixture recipe
RESAMPLED = {
    "cnn14_16k_paired": ["clip_01.wav", "clip_02.wav", "clip_03.wav", "clip_04.wav", "clip_09.wav"],
    "cnn14_32k_paired": ["clip_00.wav", "clip_01.wav", "clip_03.wav", "clip_04.wav"],
}


VGGISH_EXAMPLE_CLIPS = ["clip_03.wav", "clip_07.flac", "clip_09.wav", "clip_10.wav"]
SIGNAL_MEL_CLIPS = ["clip_07.flac", "clip_09.wav", "clip_10.wav", "clip_13.wav"]


MERT_RUNS = {  # run -> (side, clips) whose per-file layer means are kept
    "mert_16k_paired": [("ref", ["clip_00.wav", "clip_07.flac", "clip_09.wav", "clip_13.wav"]), ("gen", ["clip_03.wav"])],
    "mert_16k_unpaired": [("gen", ["other_02.wav", "other_08.wav"])],
    "mert_32k_paired": [("ref", ["clip_00.wav", "clip_04.wav"]), ("gen", ["clip_11.wav"])],
}
MERT_WAVE_CLIPS = ["clip_00.wav", "clip_09.wav", "clip_13.wav"]


def _windows(prefix: str, wave: np.ndarray) -> dict[str, np.ndarray]:
    mid = len(wave) // 2
    return {f"{prefix}/length": np.array(len(wave)), f"{prefix}/head": wave[:WINDOW],
            f"{prefix}/middle": wave[mid - WINDOW // 2: mid + WINDOW // 2], f"{prefix}/tail": wave[-WINDOW:]}


def main(golden: Path, out: Path) -> None:
    for run in RUNS:
        (out / run).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(golden / run / "metrics.json", out / run / "metrics.json")
        z = np.load(golden / run / "classifier.npz")
        sides = ["gen", "ref"] if run.endswith("paired") and not run.endswith("unpaired") else ["gen"]
        keep = {f"{s}/{k}": z[f"{s}/{k}"] for s in sides for k in ("2048", "logits", "files")}
        np.savez_compressed(out / run / "features.npz", **keep)
    for run in ("cnn14_16k_paired", "cnn14_16k_unpaired"):
        z = np.load(golden / run / "fad_vggish.npz")
        sides = ["gen", "ref"] if run.endswith("_paired") else ["gen"]
        keep = {k: z[k] for k in z.files if k.split("/")[0] in sides and k.split("/")[1] in ("emb", "files")}
        if run.endswith("_paired"):
            keep.update({f"ref/examples/{c}": z[f"ref/examples/{c}"] for c in VGGISH_EXAMPLE_CLIPS})
        np.savez_compressed(out / run / "vggish.npz", **keep)
    for run, keep in MERT_RUNS.items():
        (out / run).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(golden / run / "metrics.json", out / run / "metrics.json")
        z = np.load(golden / run / "mert.npz")
        arrays = {f"{side}/layer_time_mean/{c}": z[f"{side}/layer_time_mean/{c}"] for side, clips in keep for c in clips}
        if run == "mert_16k_paired":
            waves = np.load(golden / run / "mert_wave24k.npz")
            for c in MERT_WAVE_CLIPS:
                arrays.update(_windows(f"ref/wave24k/{c}", waves[f"ref/wave24k/{c}"]))
                arrays.update(_windows(f"ref/input_values/{c}", z[f"ref/input_values/{c}"][0]))
        np.savez_compressed(out / run / "mert.npz", **arrays)
    windows = {}
    for run, clips in RESAMPLED.items():
        z = np.load(golden / run / "classifier.npz")
        sr = json.loads((golden / run / "metrics.json").read_text())["meta"]["sr"]
        for clip in clips:
            windows.update(_windows(f"{sr}/{clip}", z[f"ref/wave/{clip}"][0]))
    np.savez_compressed(out / "resampled.npz", **windows)
    mels = {}
    for run in ("cnn14_16k_paired", "cnn14_32k_paired"):
        z = np.load(golden / run / "psnr_ssim.npz")
        sr = json.loads((golden / run / "metrics.json").read_text())["meta"]["sr"]
        for clip in SIGNAL_MEL_CLIPS:
            mels[f"{sr}/gen/{clip}"] = z[f"mel_gen/{clip}"]
            mels[f"{sr}/target/{clip}"] = z[f"mel_target/{clip}"]
    np.savez_compressed(out / "signal_mels.npz", **mels)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parent / "golden")
