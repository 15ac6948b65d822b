#!/usr/bin/env python3
"""Prove the exported MERT encoder computes what transformers' HubertModel computes with the same weights.

    python verify_scripts/verify_mert.py --source MERT-v1-95M/ --models-dir models/ --audio clips/ [--tolerance 1e-4]

MERT-v1-95M with its published settings is HuBERT-base with group norm, so the reference is
``transformers.HubertModel`` built from the folder's ``config.json`` and loaded with its weights
(legacy ``weight_g``/``weight_v`` names are mapped to whichever names the installed transformers uses).
Both get the same normalised 24 kHz input (audiofidelity's conditioning at 16 kHz, then 24 kHz, as
audioldm_eval's ``mert`` backbone). Prints per hidden layer the max abs and relative difference of the
per-file time means and of the frame-level hidden states (what ``--fad-model mert-v1-95m-<layer>`` reads, as
fadtk's ``out.hidden_states[layer]``), and exits 1 above ``tolerance`` x the layer's max |value|. Needs the
``verify`` extra.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from audiofidelity import artifacts
from audiofidelity.audio import Conditioning, load_conditioned
from audiofidelity.models import apply_frontend
from audiofidelity.resample import resample
from audiofidelity.runner import EmbeddingRunner
from common import audio_files, relative_error, verdict

LEGACY_TO_PARAMETRIZED = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}


def load_reference(source: Path) -> torch.nn.Module:
    try:
        from transformers import HubertConfig, HubertModel
    except ImportError:
        raise SystemExit("transformers is not installed: pip install 'audiofidelity[verify]'") from None
    config = json.loads((source / "config.json").read_text())
    keep = {k: v for k, v in config.items() if k in HubertConfig().to_dict() and k not in ("architectures", "model_type")}
    model = HubertModel(HubertConfig(**keep)).eval()
    weights = source / "pytorch_model.bin"
    if weights.is_file():
        state = torch.load(weights, map_location="cpu", weights_only=True)
    else:
        from safetensors.torch import load_file

        state = load_file(str(source / "model.safetensors"))
    expected = set(model.state_dict())
    renamed = {}
    for key, value in state.items():
        prefix, _, last = key.rpartition(".")
        alt = f"{prefix}.{LEGACY_TO_PARAMETRIZED[last]}" if last in LEGACY_TO_PARAMETRIZED else key
        renamed[alt if key not in expected and alt in expected else key] = value
    missing = sorted(expected - set(renamed))
    if missing:
        raise SystemExit(f"{source}: weights lack {missing[:5]} for transformers' HubertModel")
    model.load_state_dict({k: v for k, v in renamed.items() if k in expected}, strict=True)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="the Hugging Face MERT folder")
    parser.add_argument("--models-dir", type=Path, default=None, help="directory holding the exported artifact")
    parser.add_argument("--audio", type=Path, action="append", required=True, help="audio file or folder (repeatable)")
    parser.add_argument("--sr", type=int, default=16000, help="evaluation rate the audio is conditioned at first")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args(argv)

    artifact = artifacts.load("mert-v1-95m", directory=args.models_dir)
    reference = load_reference(args.source)
    runner = EmbeddingRunner(artifact, batch_size=1)
    files = audio_files(args.audio)
    if not files:
        parser.error("no audio files found under --audio")
    ours_all, theirs_all, frames_err = [], [], np.zeros(13)
    for path in files:
        wave = resample(load_conditioned(path, args.sr, Conditioning()), args.sr, artifact.manifest.sample_rate,
                        api="transforms")
        x = apply_frontend(wave, artifact.manifest.frontend)
        outputs = runner.run([x])
        ours_all.append(outputs["layer_time_mean"][0])
        with torch.inference_mode():
            states = reference(torch.from_numpy(x), output_hidden_states=True).hidden_states
        theirs_all.append(torch.stack([s[0].mean(dim=0) for s in states]).numpy())
        theirs_frames = torch.stack([s[0] for s in states]).numpy()  # (layers, frames, hidden)
        frames_err = np.maximum(frames_err, [relative_error(o, t) for o, t in zip(outputs["hidden_states"][0],
                                                                                   theirs_frames)])
    ours, theirs = np.stack(ours_all), np.stack(theirs_all)  # (files, layers, hidden)
    worst = 0.0
    print(f"{len(files)} clips; per hidden layer, over all clips:")
    print(f"{'layer':>5} {'max abs':>10} {'relative':>10} {'frames rel':>10}")
    for layer in range(ours.shape[1]):
        err = float(np.max(np.abs(ours[:, layer] - theirs[:, layer])))
        rel = err / max(float(np.max(np.abs(theirs[:, layer]))), 1e-30)
        worst = max(worst, rel, float(frames_err[layer]))
        print(f"{layer:>5} {err:>10.3g} {rel:>10.3g} {frames_err[layer]:>10.3g}")
    failed = [f"a layer differs by {worst:.3g} x its max |value| (tolerance {args.tolerance:g})"] * (worst > args.tolerance)
    return verdict(failed, f"every layer within {args.tolerance:g} x max |value| of transformers' HubertModel")


if __name__ == "__main__":
    sys.exit(main())
