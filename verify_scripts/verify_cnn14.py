#!/usr/bin/env python3
"""Prove an exported CNN14 artifact computes what the original PANNs implementation computes.

    python verify_scripts/verify_cnn14.py cnn14-16k --source Cnn14_16k_mAP=0.438.pth --models-dir models/ \
        --audio some/folder [--audio more.wav ...] [--tolerance 1e-4]

The original is PANNs' ``Cnn14`` as published on PyPI (``panns-inference``, torchlibrosa frontend),
loaded with the same checkpoint; the export is run through audiofidelity's own NumPy frontend and
runner. Both get the same conditioned waveform (audioldm_eval's: first channel, mean removed,
torchaudio-equal resampling, padding to 32000 samples). Prints, per clip and overall, the max
absolute and relative difference of the log-mel, the 2048-d embedding and the 527 logits, and
exits 1 if an embedding or logits differ by more than ``tolerance`` x that tensor's max |value|.
Needs the ``verify`` extra: ``pip install audiofidelity[verify]``.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch

from audiofidelity import artifacts, registry
from audiofidelity.audio import Conditioning, load_conditioned
from audiofidelity.models import apply_frontend
from audiofidelity.runner import EmbeddingRunner
from common import audio_files, relative_error, verdict


def original_cnn14_class():
    """PANNs' Cnn14 class from panns-inference, imported without the package's ``__init__``.

    ``panns_inference/__init__.py`` imports its ``config.py``, which downloads AudioSet's label CSV
    with wget at import time; registering the package path alone lets ``models.py`` import offline.
    """
    if "panns_inference" not in sys.modules:
        spec = importlib.util.find_spec("panns_inference")
        if spec is None:
            raise SystemExit("panns-inference is not installed: pip install 'audiofidelity[verify]'")
        package = types.ModuleType("panns_inference")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["panns_inference"] = package
    os.environ.setdefault("MPLBACKEND", "Agg")  # models.py imports matplotlib.pyplot
    return importlib.import_module("panns_inference.models").Cnn14


def load_original(source: Path, frontend: dict) -> torch.nn.Module:
    cnn14 = original_cnn14_class()
    model = cnn14(sample_rate=frontend["sample_rate"], window_size=frontend["n_fft"], hop_size=frontend["hop_length"],
                  mel_bins=frontend["n_mels"], fmin=frontend["fmin"], fmax=frontend["fmax"], classes_num=527)
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(checkpoint["model"], strict=True)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise SystemExit(f"{source} does not load into the original {frontend['sample_rate']} Hz Cnn14: "
                         f"{str(exc).splitlines()[-1].strip()}") from None
    return model.eval()


def original_outputs(model: torch.nn.Module, wave: np.ndarray) -> dict[str, np.ndarray]:
    """Log-mel, embedding and logits of the original model (logits = fc_audioset(embedding), pre-sigmoid)."""
    with torch.inference_mode():
        x = torch.from_numpy(wave)[None]
        log_mel = model.logmel_extractor(model.spectrogram_extractor(x))
        embedding = model(x)["embedding"]
        logits = model.fc_audioset(embedding)
    return {"log_mel": log_mel[0].numpy(), "2048": embedding[0].numpy(), "logits": logits[0].numpy()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=[n for n in registry.names() if registry.registry_entry(n).architecture == "cnn14"])
    parser.add_argument("--source", type=Path, required=True, help="the original PANNs checkpoint")
    parser.add_argument("--models-dir", type=Path, default=None, help="directory holding the exported artifact")
    parser.add_argument("--audio", type=Path, action="append", required=True, help="audio file or folder (repeatable)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="max abs error allowed, relative to the tensor's max |value| (default %(default)s)")
    args = parser.parse_args(argv)

    artifact = artifacts.load(args.model, directory=args.models_dir)
    frontend = artifact.manifest.frontend
    original = load_original(args.source, frontend)
    runner = EmbeddingRunner(artifact, batch_size=1)
    worst = {"log_mel": 0.0, "2048": 0.0, "logits": 0.0}
    files = audio_files(args.audio)
    if not files:
        parser.error("no audio files found under --audio")
    print(f"{'file':<28} {'log-mel max abs (dB)':>21} {'2048 rel':>10} {'logits rel':>10}")
    for path in files:
        wave = load_conditioned(path, frontend["sample_rate"], Conditioning())
        ours_mel = apply_frontend(wave, frontend)
        ours = runner.run([ours_mel])
        theirs = original_outputs(original, wave)
        row = {"log_mel": float(np.max(np.abs(ours_mel - theirs["log_mel"])))}
        for key in ("2048", "logits"):
            row[key] = relative_error(ours[key][0], theirs[key])
        for key, value in row.items():
            worst[key] = max(worst[key], value)
        print(f"{path.name:<28} {row['log_mel']:>21.3g} {row['2048']:>10.3g} {row['logits']:>10.3g}")
    print(f"{'max over ' + str(len(files)) + ' clips':<28} {worst['log_mel']:>21.3g} {worst['2048']:>10.3g} "
          f"{worst['logits']:>10.3g}")
    failed = [f"{k} above tolerance {args.tolerance:g}" for k in ("2048", "logits") if worst[k] > args.tolerance]
    return verdict(failed, f"embedding and logits within {args.tolerance:g} x max |value| of the original")


if __name__ == "__main__":
    sys.exit(main())
