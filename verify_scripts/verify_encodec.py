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
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from audiofidelity import artifacts
from audiofidelity.audio import Conditioning, condition, condition_stereo, load_audio
from audiofidelity.frontends import apply_frontend
from audiofidelity.registry import fad_model
from audiofidelity.runner import EmbeddingRunner
from common import add_two_set_options, audio_files, fad_difference, import_with_placeholders, relative_error, verdict

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
    conditioning = dataclasses.replace(Conditioning(), **dict(fad_model(args.model).conditioning))
    make = condition if manifest.inputs[0].get("channels", 1) == 1 else condition_stereo
    sets: dict[str, dict[str, list[np.ndarray]]] = {}
    worst = 0.0
    print(f"{'file':<28} {'seconds':>8} {'frames':>7} {'frames rel':>10}")
    for label, paths in (("audio", args.audio), ("reference", args.reference)):
        files = audio_files(paths)
        if not files:
            parser.error(f"no audio files found under --{label}")
        sets[label] = {"ours": [], "original": []}
        for path in files:
            audio, rate = load_audio(path)
            wave = make(audio, rate, manifest.sample_rate, conditioning)
            ours = runner.run([apply_frontend(wave, manifest.frontend)])["frames"][0]
            theirs = original_frames(original, wave)
            if ours.shape != theirs.shape:
                parser.exit(1, f"FAIL: {path.name}: {ours.shape} frames, the original gives {theirs.shape}\n")
            error = relative_error(ours, theirs)
            worst = max(worst, error)
            sets[label]["ours"].append(ours)
            sets[label]["original"].append(theirs)
            print(f"{path.name:<28} {wave.shape[-1] / manifest.sample_rate:>8.3f} {len(ours):>7} {error:>10.3g}")
    fad_error = fad_difference({label: {side: np.concatenate(v) for side, v in s.items()} for label, s in sets.items()})
    failed = [f"{what} above tolerance {args.tolerance:g}" for what, bad in
              (("frames", worst > args.tolerance), ("FAD", fad_error > args.tolerance)) if bad]
    return verdict(failed, f"frames and FAD within {args.tolerance:g} of encodec's encoder")


if __name__ == "__main__":
    sys.exit(main())
