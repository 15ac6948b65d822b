#!/usr/bin/env python3
"""Prove the exported VGGish and the NumPy frontend compute what torchvggish computes, down to FAD.

    python verify_scripts/verify_vggish.py --source vggish-10086976.pth --models-dir models/ \
        --audio generated/ --reference reference/ [--tolerance 1e-4]

The original is torchvggish's ``VGG`` (PyPI ``torchvggish``) with the same weights and, as
audioldm_eval and frechet_audio_distance use it, without the final ReLU; its input is torchvggish's
``waveform_to_examples``. Both sides get the same conditioned 16 kHz waveforms (audioldm_eval's). Prints
per file the max abs difference of the examples and the relative difference of the embeddings, then
FAD between the two folders by each side (the original's formula: ``scipy.linalg.sqrtm``). Exits 1 if
examples differ by more than 1e-5, embeddings by more than ``tolerance`` x max |value|, or FAD by more
than ``tolerance`` relative. Needs the ``verify`` extra.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from audiofidelity import artifacts
from audiofidelity.audio import Conditioning, load_conditioned
from audiofidelity.models import apply_frontend
from audiofidelity.runner import EmbeddingRunner
from common import add_two_set_options, audio_files, fad_difference, relative_error, verdict

EXAMPLE_TOLERANCE = 1e-5


def load_original(source: Path) -> torch.nn.Module:
    try:
        from torchvggish.torchvggish import VGG, make_layers
    except ImportError:
        raise SystemExit("torchvggish is not installed: pip install 'audiofidelity[verify]'") from None
    model = VGG(make_layers(), postprocess=False)
    try:
        model.load_state_dict(torch.load(source, map_location="cpu", weights_only=True), strict=True)
    except (RuntimeError, TypeError) as exc:
        raise SystemExit(f"{source} does not load into torchvggish's VGG: {str(exc).splitlines()[0]}") from None
    model.embeddings = torch.nn.Sequential(*list(model.embeddings.children())[:-1])  # use_activation=False
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="torchvggish's vggish-10086976.pth")
    add_two_set_options(parser)
    args = parser.parse_args(argv)
    from torchvggish import vggish_input

    artifact = artifacts.load("vggish", directory=args.models_dir)
    original = load_original(args.source)
    runner = EmbeddingRunner(artifact, batch_size=64)
    worst = {"examples": 0.0, "embedding": 0.0}
    sets = {}
    print(f"{'file':<28} {'examples max abs':>17} {'embedding rel':>14}")
    for label, paths in (("audio", args.audio), ("reference", args.reference)):
        embeddings = {"ours": [], "original": []}
        files = audio_files(paths)
        if len(files) < 2:
            parser.error(f"--{label} needs at least two audio files for FAD")
        for path in files:
            wave = load_conditioned(path, 16000, Conditioning())
            ours_x = apply_frontend(wave, artifact.manifest.frontend)
            theirs_x = vggish_input.waveform_to_examples(wave, 16000).detach()
            ours = runner.run([ours_x])["vggish"][0]
            with torch.inference_mode():
                theirs = original(theirs_x).numpy()
            row = {"examples": float(np.max(np.abs(ours_x - theirs_x.numpy()))), "embedding": relative_error(ours, theirs)}
            for key, value in row.items():
                worst[key] = max(worst[key], value)
            embeddings["ours"].append(ours)
            embeddings["original"].append(theirs)
            print(f"{path.name:<28} {row['examples']:>17.3g} {row['embedding']:>14.3g}")
        sets[label] = {k: np.concatenate(v) for k, v in embeddings.items()}
    fad_error = fad_difference(sets)
    failed = [f"{name} above tolerance" for name, bad in (("examples", worst["examples"] > EXAMPLE_TOLERANCE),
                                                           ("embeddings", worst["embedding"] > args.tolerance),
                                                           ("FAD", fad_error > args.tolerance)) if bad]
    return verdict(failed, f"examples within {EXAMPLE_TOLERANCE:g}, embeddings and FAD within {args.tolerance:g}")


if __name__ == "__main__":
    sys.exit(main())
