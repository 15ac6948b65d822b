#!/usr/bin/env python3
"""Prove an exported EnCodec encoder gives the frames the ``encodec`` package's encoder gives, down to FAD.

    python verify_scripts/verify_encodec.py encodec-24k --source encodec_24khz-d7cc33bc.th --models-dir models/ \
        --audio generated/ --reference reference/ [--tolerance 1e-4]

The original is ``EncodecModel.encodec_model_24khz(pretrained=False)`` (or ``_48khz``) from the PyPI
``encodec`` package, loaded with the same checkpoint; its ``encoder`` is called as fadtk calls it: the whole
clip (24 kHz), or consecutive 1-s segments, the last one shorter (48 kHz), frames concatenated. Both sides get
the same waveform: the one ``--fad-model`` conditions for the artifact (fadtk's: no mean removal or padding,
at the model's rate; the 48 kHz model's two channels). Prints per file the relative difference of the frames,
then FAD between the two sets by each side (the original formula), and exits 1 above ``tolerance``.

``encodec`` imports torchaudio for file I/O and resampling the encoder never uses; where torchaudio is absent
(no wheel matches torch 2.13), a placeholder module is registered for the import that fails on any use, so
nothing it would compute is replaced. Needs ``encodec`` and ``einops`` (``pip install --no-deps -r
verify_scripts/requirements-nodeps.txt``: encodec's declared torchaudio dependency would replace torch).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from audiofidelity import artifacts
from audiofidelity.audio import condition, condition_stereo, load_audio
from audiofidelity.models import apply_frontend
from audiofidelity.runner import EmbeddingRunner
from common import add_two_set_options, compare_two_sets, fad_model_conditioning, import_with_placeholders

CONSTRUCTORS = {"encodec-24k": "encodec_model_24khz", "encodec-48k": "encodec_model_48khz"}


def encodec_package():
    """The ``encodec`` package, importable without torchaudio (see the module docstring)."""
    return import_with_placeholders("encodec", install_hint="pip install --no-deps -r "
                                                            "verify_scripts/requirements-nodeps.txt")


def load_original(name: str, source: Path) -> torch.nn.Module:
    model = getattr(encodec_package().EncodecModel, CONSTRUCTORS[name])(pretrained=False)
    try:
        model.load_state_dict(torch.load(source, map_location="cpu", weights_only=True), strict=True)
    except (RuntimeError, TypeError) as exc:
        raise SystemExit(f"{source} does not load into encodec's {CONSTRUCTORS[name]}: "
                         f"{str(exc).splitlines()[0]}") from None
    return model.eval()


def original_frames(model: torch.nn.Module, wave: np.ndarray) -> np.ndarray:
    """fadtk's ``EncodecEmbModel._get_embedding``: the encoder on the whole clip, or on each of the model's own
    segments in turn (no RMS normalisation), frames (n, 128)."""
    x = torch.from_numpy(np.ascontiguousarray(wave.reshape(model.channels, -1)))[None]
    step = model.segment_length or x.shape[-1]
    with torch.inference_mode():
        return torch.cat([model.encoder(x[:, :, s:s + step])[0].T for s in range(0, x.shape[-1], step)]).numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(CONSTRUCTORS))
    parser.add_argument("--source", type=Path, required=True, help="encodec_24khz-d7cc33bc.th or encodec_48khz-*.th")
    add_two_set_options(parser)
    args = parser.parse_args(argv)

    artifact = artifacts.load(args.model, directory=args.models_dir)
    manifest = artifact.manifest
    original = load_original(args.model, args.source)
    runner = EmbeddingRunner(artifact, batch_size=1)
    conditioning = fad_model_conditioning(args.model)
    make = condition if manifest.inputs[0].get("channels", 1) == 1 else condition_stereo

    def embed(path: Path):
        audio, rate = load_audio(path)
        wave = make(audio, rate, manifest.sample_rate, conditioning)
        ours = runner.run([apply_frontend(wave, manifest.frontend)])["frames"][0]
        return ours, original_frames(original, wave), wave.shape[-1] / manifest.sample_rate, len(ours)

    return compare_two_sets(parser, args, embed, unit="frames", count="frames", against="encodec's encoder")

if __name__ == "__main__":
    sys.exit(main())
