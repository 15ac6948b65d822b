#!/usr/bin/env python3
"""Run audiobox_aesthetics' own predictor and save what it computes, for the project's side to compare (no project
import).

``AesPredictor`` resamples with torchaudio, and no torchaudio wheel matches the runtime's torch; so this script runs
in a virtualenv that has it (the PaSST original's), as a subprocess, and talks through files:

    PYTHON -m pip install --no-deps audiobox_aesthetics==0.0.4
    PYTHON aesthetics_original.py CKPT OUT.npz FILE... [--precision 32|bf16]

``OUT.npz``: per FILE, in the order given, ``clip<i>`` = its four scores, float64 (n=4,), in the order CE, CU, PC, PQ
(``infer.AXES_NAME``), on the 1-10 scale; ``windows<i>`` = how many 10-s windows ``make_inference_batch`` cut it into.
Each file's scores and seconds are also printed, one line a file.

The predictor is the package's ``AesPredictor(checkpoint_pth=CKPT)``, built by its own ``setup_model`` (``torch.load``,
the ``model.`` prefix stripped, ``AesMultiOutput`` from the checkpoint's ``model_cfg`` and ``target_transform``,
strict ``load_state_dict``, eval mode) and then moved to the CPU (``setup_model`` picks CUDA or MPS when there is
one; ``forward`` moves its batch to ``predictor.device``). CKPT must exist: ``load_model`` downloads the release file
from the Hub for a path that does not. ``--precision`` replaces ``model_cfg["precision"]`` (the checkpoint's is
``"32"``) in the one call that reads it: while the predictor is built, ``audiobox_aesthetics.infer.AesMultiOutput``
(the name ``setup_model`` calls) is wrapped to pass that value instead; nothing else is changed. Note that in 0.0.4
``AesMultiOutput.__post_init__`` maps the string to a dtype before testing ``str(self.precision) in {"16", "bf16"}``,
so autocast is never enabled on any device and ``"bf16"`` computes the same float32 numbers as ``"32"``.

Each FILE is read as ``infer.read_wav`` reads a path (``torchaudio.load``, then ``wav.mean(0, keepdim=True)`` when it
has more than one channel: the channel mean comes before the resampling). torchaudio 2.11's ``load`` needs torchcodec,
which is not installed; the files are PCM WAV, which ``soundfile.read(dtype="float32", always_2d=True)``, transposed
to (channels, n), decodes to the same float32 values (sample / 32768 for 16-bit). The mono tensor and its rate go to
``predictor.forward([{"path": tensor, "sample_rate": sr}])``, one file a call: ``audio_resample_mono``
(``torchaudio.functional.resample`` to 16 kHz, a no-op at 16 kHz; its own channel mean, a no-op on mono), 10-s
windows every 10 s, the last zero-padded with its padding mask, each window's scores weighted by its real length /
10 s, then the target transform undone (``pred * std + mean``).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np
import torch

PRECISIONS = ("32", "bf16", "16", "64")
"""The keys of ``AesMultiOutput``'s ``precision_map``."""


@contextlib.contextmanager
def precision_override(precision: str | None):
    """While the predictor is built: ``setup_model``'s ``AesMultiOutput(**cfg)`` gets ``precision`` instead of the
    checkpoint's ``model_cfg["precision"]`` (``None``: unchanged)."""
    from audiobox_aesthetics import infer

    if precision is None:
        yield
        return
    original = infer.AesMultiOutput
    infer.AesMultiOutput = lambda **kwargs: original(**{**kwargs, "precision": precision})
    try:
        yield
    finally:
        infer.AesMultiOutput = original


def predictor(checkpoint: Path, precision: str | None):
    """The package's ``AesPredictor`` for ``checkpoint``, on the CPU."""
    from audiobox_aesthetics.infer import AesPredictor

    if not checkpoint.is_file():
        raise SystemExit(f"{checkpoint} is not a file (the package would download the release file instead)")
    with precision_override(precision):
        model = AesPredictor(checkpoint_pth=str(checkpoint))
    model.device = torch.device("cpu")
    model.model.to(model.device)
    return model


def read_wav(path: str) -> tuple[torch.Tensor, int]:
    """``infer.read_wav`` without ``start_time``: (1, n) float32 and the file's rate; soundfile for torchaudio."""
    import soundfile

    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    if wav.shape[0] > 1:
        wav = wav.mean(0, keepdim=True)
    return wav, rate


def score(model, path: str) -> tuple[np.ndarray, int]:
    """One file's four scores (CE, CU, PC, PQ) through ``AesPredictor.forward``, and its number of windows."""
    from audiobox_aesthetics.infer import AXES_NAME, make_inference_batch

    wav, rate = read_wav(path)
    item = {model.data_col: wav, "sample_rate": rate}
    with torch.inference_mode():
        resampled = model.audio_resample_mono([item])
    windows = len(make_inference_batch(resampled, 10, 10, sample_rate=model.sample_rate)[0])
    row = model.forward([item])[0]
    return np.array([row[axis] for axis in AXES_NAME], dtype=np.float64), windows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="audiobox-aesthetics' checkpoint.pt")
    parser.add_argument("out", type=Path, help="the .npz to write")
    parser.add_argument("files", nargs="+", help="PCM WAV files")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="replaces the checkpoint's model_cfg['precision'] (default: the checkpoint's)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    model = predictor(args.checkpoint, args.precision)
    print(f"predictor built in {time.perf_counter() - start:.1f} s (precision {model.model.precision})")
    out = {}
    for i, path in enumerate(args.files):
        start = time.perf_counter()
        out[f"clip{i}"], out[f"windows{i}"] = score(model, path)
        print(f"{path}: windows {out[f'windows{i}']}, CE CU PC PQ {np.round(out[f'clip{i}'], 5).tolist()}, "
              f"{time.perf_counter() - start:.1f} s")
    np.savez(args.out, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
