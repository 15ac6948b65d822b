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
from common import (Unavailable, add_two_set_options, audio_files, compare_two_sets, fad_model_conditioning,
                    import_with_placeholders)

AUDIO_MODELS = {name: tower for name, _, tower in CHECKPOINTS}
"""Audio artifact -> laion_clap's ``amodel``."""
SMALL_TEXT_TOWER = dict(model_type="transformer", context_length=77, vocab_size=49408, width=512, heads=8, layers=1)
AUDIO_KEYS = ("audio_branch.", "audio_projection.", "audio_transform.", "logit_scale_a")
"""Keys of ``CLAP`` outside its text tower (the stand-in checkpoints carry these, as the published ones do)."""


def _no_hub_tokenizer(cls, name: str, *args, **kwargs) -> Unavailable:
    """Stands in for ``from_pretrained`` of transformers' tokenizers during laion_clap's import, which loads three
    from the Hub that the audio path never uses."""
    return Unavailable(f"tokenizer {name}")


def laion_clap_package():
    """laion_clap, importable offline (see the module docstring)."""
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    return import_with_placeholders("laion_clap", patch={(PreTrainedTokenizerBase, "from_pretrained"):
                                                         classmethod(_no_hub_tokenizer)},
                                    install_hint="pip install --no-deps -r verify_scripts/requirements-nodeps.txt")


def constructed_model(name: str) -> torch.nn.Module:
    """laion_clap's ``CLAP`` for ``name``, randomly initialised (what ``create_model`` builds, with a small text
    tower)."""
    laion_clap_package()
    return clap_model(name, SMALL_TEXT_TOWER)


def clap_model(name: str, text_cfg: dict) -> torch.nn.Module:
    """laion_clap's ``CLAP`` for audio artifact ``name`` (``CLAP_Module``'s settings: a fusion tower is
    ``enable_fusion`` with ``fusion_type="aff_2d"``) with the text tower ``text_cfg``, randomly initialised, in eval
    mode."""
    factory, model = sys.modules["clap_module.factory"], sys.modules["clap_module.model"]
    fusion = AUDIO_MODELS[name] in FUSION_TOWERS
    config = factory._MODEL_CONFIGS[AUDIO_MODELS[name].removesuffix("-fusion")]
    return model.CLAP(embed_dim=config["embed_dim"], audio_cfg=config["audio_cfg"], text_cfg=text_cfg,
                      enable_fusion=fusion, **({"fusion_type": "aff_2d"} if fusion else {})).eval()


def load_original(name: str, source: Path):
    """A ``CLAP_Module`` holding laion_clap's model with ``source``'s audio tower and projection."""
    package = laion_clap_package()
    model = constructed_model(name)
    state = sys.modules["clap_module.factory"].load_state_dict(str(source))
    audio = {k: v for k, v in state.items() if k.startswith(AUDIO_KEYS)}
    result = model.load_state_dict(audio, strict=False)
    missing_audio = [k for k in result.missing_keys if k.startswith(AUDIO_KEYS)]
    if missing_audio or result.unexpected_keys:
        raise SystemExit(f"{source} does not load into laion_clap's {AUDIO_MODELS[name]} CLAP: missing "
                         f"{missing_audio[:5]}, unexpected {result.unexpected_keys[:5]}")
    module = package.CLAP_Module.__new__(package.CLAP_Module)  # its __init__ fetches RoBERTa's tokenizer
    torch.nn.Module.__init__(module)
    module.model, module.enable_fusion = model, False
    module.model_cfg = sys.modules["clap_module.factory"]._MODEL_CONFIGS[AUDIO_MODELS[name]]
    return module


def original_embedding(original, wave: np.ndarray, window: int) -> np.ndarray:
    """``get_audio_embedding_from_data`` on the clip, or the mean over the windows ``--fad-model`` takes."""
    pieces = [wave] if len(wave) <= window else [wave[s:s + window] for s in window_starts(len(wave), window)]
    with torch.inference_mode():
        return np.mean([original.get_audio_embedding_from_data(p[None], use_tensor=False)[0] for p in pieces], axis=0)


def fusion_originals(python: Path, source: Path, waves: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``clap_original.py fusion`` in a virtualenv with torchaudio and torchvision (``--original-python``): laion_clap's
    fusion embedding of each 48-kHz waveform."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        names = {f"clip{i}": name for i, name in enumerate(waves)}
        np.savez(Path(tmp) / "in.npz", **{key: waves[name] for key, name in names.items()})
        done = subprocess.run([str(python), str(Path(__file__).with_name("clap_original.py")), "fusion", str(source),
                               str(Path(tmp) / "in.npz"), str(Path(tmp) / "out.npz")], capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"clap_original.py fusion failed in {python}:\n{done.stderr[-3000:]}")
        with np.load(Path(tmp) / "out.npz") as out:
            return {names[key]: out[key] for key in out.files}


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
