#!/usr/bin/env python3
"""Prove an exported LAION-CLAP audio artifact gives the embeddings laion_clap gives, down to FAD.

    python verify_scripts/verify_clap.py clap-630k-audioset --source 630k-audioset-best.pt --models-dir models/ \
        --audio generated/ --reference reference/ [--tolerance 1e-4]

The original is laion_clap 1.1.7's own ``CLAP`` model (HTSAT-tiny for ``clap-630k-audioset``, HTSAT-base for
``clap-music``, their ``model_configs``), with the checkpoint's audio tower and projection loaded through the
package's ``load_state_dict``, called through ``CLAP_Module.get_audio_embedding_from_data`` on NumPy input
(int16 round trip, repeat-padding). Its text tower is built small (one layer, random) and never run: the
published one is RoBERTa from the Hub, which the audio embedding does not touch. Both sides get the waveform
``--fad-model`` conditions for the artifact; a clip over 10 s, which laion_clap would crop at random, is given
to the original as the windows ``--fad-model`` averages, one at a time, and its embeddings averaged.

laion_clap imports modules for training and text (torchvision, h5py, webdataset, ...) that the audio path never
uses and downloads three tokenizers at import; absent modules are placeholders for the import, the tokenizers are
never fetched, and any use of either raises. Install with ``pip install --no-deps -r
verify_scripts/requirements-nodeps.txt`` (laion_clap declares numpy<2, wandb and more).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from audiofidelity import artifacts
from audiofidelity.audio import condition, load_audio
from audiofidelity.frontends import window_starts
from audiofidelity.models import apply_frontend
from audiofidelity.models.clap import CHECKPOINTS, FUSION_TOWERS
from audiofidelity.runner import EmbeddingRunner
from common import (SMALL_TEXT_TOWER, add_two_set_options, audio_files, clap_module,
                    compare_two_sets, fad_model_conditioning, laion_clap_model, load_audio_side)
from common import laion_clap_package as common_laion_clap_package
import original_runs

AUDIO_MODELS = {name: tower for name, _, tower in CHECKPOINTS}
"""Audio artifact -> laion_clap's ``amodel``."""
INSTALL_HINT = "pip install --no-deps -r verify_scripts/requirements-nodeps.txt"


def laion_clap_package():
    """laion_clap, importable offline (see the module docstring)."""
    return common_laion_clap_package(INSTALL_HINT)


def amodel(name: str) -> tuple[str, bool]:
    """laion_clap's ``amodel`` for audio artifact ``name`` and whether it is a fusion model."""
    fusion = AUDIO_MODELS[name] in FUSION_TOWERS
    return AUDIO_MODELS[name].removesuffix("-fusion"), fusion


def constructed_model(name: str) -> torch.nn.Module:
    """laion_clap's ``CLAP`` for ``name``, randomly initialised (what ``create_model`` builds, with a small text
    tower)."""
    laion_clap_package()
    return clap_model(name, SMALL_TEXT_TOWER)


def clap_model(name: str, text_cfg: dict) -> torch.nn.Module:
    """laion_clap's ``CLAP`` for audio artifact ``name`` with the text tower ``text_cfg`` (``laion_clap_model``)."""
    return laion_clap_model(*amodel(name), text_cfg)


def load_original(name: str, source: Path):
    """A ``CLAP_Module`` holding laion_clap's model with ``source``'s audio tower and projection."""
    package = laion_clap_package()
    model = constructed_model(name)
    load_audio_side(model, source)
    return clap_module(package, model, *amodel(name))


def original_embedding(original, wave: np.ndarray, window: int) -> np.ndarray:
    """``get_audio_embedding_from_data`` on the clip, or the mean over the windows ``--fad-model`` takes."""
    pieces = [wave] if len(wave) <= window else [wave[s:s + window] for s in window_starts(len(wave), window)]
    with torch.inference_mode():
        return np.mean([original.get_audio_embedding_from_data(p[None], use_tensor=False)[0] for p in pieces], axis=0)


def run_clap_original(python: Path, mode: str, *arguments: str) -> dict[str, np.ndarray]:
    """``clap_original.py MODE ... OUT.npz`` in a virtualenv with torchaudio and torchvision (``--original-python``):
    the arrays it saves, by key."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.npz"
        done = original_runs.run_original(python, Path(__file__).with_name("clap_original.py"),
                                          [mode, *arguments, out], out)
        if done.returncode:
            raise SystemExit(f"clap_original.py {mode} failed in {python}:\n{done.stderr[-3000:]}")
        with np.load(out) as saved:
            return {key: saved[key] for key in saved.files}


def fusion_originals(python: Path, source: Path, waves: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """laion_clap's fusion embedding of each 48-kHz waveform (``clap_original.py fusion``)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        names = {f"clip{i}": name for i, name in enumerate(waves)}
        np.savez(Path(tmp) / "in.npz", **{key: waves[name] for key, name in names.items()})
        out = run_clap_original(python, "fusion", str(source), str(Path(tmp) / "in.npz"))
    return {names[key]: value for key, value in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(AUDIO_MODELS))
    parser.add_argument("--source", type=Path, required=True,
                        help="the LAION-CLAP checkpoint (630k-audioset-best.pt, music_audioset_epoch_15_esc_90.14.pt, "
                             "...)")
    parser.add_argument("--original-python", type=Path, default=None,
                        help="the fusion model only: a Python with laion_clap, torchaudio and torchvision "
                             "(clap_original.py's docstring), which runs the original")
    add_two_set_options(parser)
    args = parser.parse_args(argv)

    artifact = artifacts.load(args.model, directory=args.models_dir)
    manifest = artifact.manifest
    conditioning = fad_model_conditioning(args.model)
    if AUDIO_MODELS[args.model] in FUSION_TOWERS:
        if args.original_python is None:
            parser.error(f"{args.model} is a fusion model: its original needs torchaudio; pass --original-python")
        runner = EmbeddingRunner(artifact, batch_size=4)
        waves = {str(p): condition(*load_audio(p), manifest.sample_rate, conditioning)
                 for p in audio_files(args.audio + args.reference)}
        originals = fusion_originals(args.original_python, args.source, waves)

        def embed_fusion(path: Path):
            wave = waves[str(path)]
            x = apply_frontend(wave, manifest.frontend)
            return runner.run([x])["embedding"][0], originals[str(path)], len(wave) / manifest.sample_rate, len(x)

        return compare_two_sets(parser, args, embed_fusion, unit="embeddings", count="items",
                                against="laion_clap (fusion)")
    original = load_original(args.model, args.source)
    runner = EmbeddingRunner(artifact, batch_size=4, collect="mean")

    def embed(path: Path):
        audio, rate = load_audio(path)
        wave = condition(audio, rate, manifest.sample_rate, conditioning)
        x = apply_frontend(wave, manifest.frontend)
        theirs = original_embedding(original, wave, manifest.frontend["window_samples"])
        return runner.run([x])["embedding"][0], theirs, len(wave) / manifest.sample_rate, len(x)

    return compare_two_sets(parser, args, embed, unit="embeddings", count="windows", against="laion_clap")

if __name__ == "__main__":
    sys.exit(main())
