#!/usr/bin/env python3
"""Run laion_clap's fusion model and save what it computes, for the project's side to compare (no project import).

The fusion checkpoint's input is built in laion_clap by torchaudio's ``MelSpectrogram`` and torchvision's ``Resize``;
no torchaudio wheel matches the runtime's torch, so this script runs in a virtualenv that has them (the PaSST
original's, with laion_clap and transformers added), as a subprocess, and talks through files:

    PYTHON -m pip install --no-deps laion_clap==1.1.7 torchlibrosa==0.1.0 && PYTHON -m pip install transformers
    PYTHON clap_original.py fusion CKPT IN.npz OUT.npz    # get_audio_embedding_from_data with enable_fusion
    PYTHON clap_original.py audioldm_eval CKPT AMODEL FILE... OUT.npz    # audioldm_eval's CLAP score's audio side

``fusion``: ``IN.npz``'s arrays ``clip<i>`` of 48-kHz waveforms (n,) float32 -> ``OUT.npz`` ``clip<i>`` (512,). The
model is laion_clap 1.1.7's own ``CLAP`` built as ``CLAP_Module(enable_fusion=True)`` builds it (HTSAT-tiny,
``aff_2d``) with a small text tower that is never run (``CLAP_Module.__init__`` would fetch RoBERTa), the
checkpoint's audio side loaded through ``load_state_dict``. Called on NumPy input, as stable-audio-metrics calls it:
the int16 round trip, then
``get_audio_features(data_truncating="fusion", data_filling="repeatpad")``. For a clip over 10 s laion_clap draws
the three local chunks with ``np.random.choice``; here that draw takes each range's middle element, the rule
audiofidelity documents, so the fusion machinery itself is compared exactly.

``audioldm_eval``: each FILE's audio embedding (``OUT.npz`` ``clip<i>``, in the order given) as the
``passt_replace_panns`` branch of audioldm_eval computes it for its CLAP score (``audioldm_eval_embedding``), by
laion_clap's non-fusion ``CLAP`` for AMODEL (the branch vendors the same ``HTSAT_Swin_Transformer`` and ``CLAP``
code). torchaudio 2.11's ``load`` needs torchcodec; the files are PCM WAV, which soundfile decodes to the same float32
values (sample / 32768).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (SMALL_TEXT_TOWER, clap_module, laion_clap_model, laion_clap_package,  # noqa: E402
                    load_audio_side)  # plain-Python helpers, no project import

AMODEL = "HTSAT-tiny"


def module(checkpoint: str):
    """laion_clap's fusion ``CLAP_Module`` with ``checkpoint``'s audio side."""
    laion = laion_clap_package("pip install --no-deps laion_clap==1.1.7 torchlibrosa==0.1.0")
    model = laion_clap_model(AMODEL, True, SMALL_TEXT_TOWER)
    load_audio_side(model, checkpoint)
    return clap_module(laion, model, AMODEL, True)


def audioldm_eval_embedding(model, path: str) -> np.ndarray:
    """The branch's ``WaveDataset(sr=32000).read_from_file`` (first channel, mean removed,
    ``torchaudio.functional.resample`` to 32 kHz, ``pad_short_audio`` to 32000 samples), then
    ``CLAPAudioEmbeddingClassifierFreev2.forward`` in ``embed_mode="audio"`` (``functional.resample`` 32 -> 48 kHz,
    the vendored ``get_audio_features`` keeping the first 480000 samples, ``get_audio_embedding``: the audio branch's
    ``embedding``, the projection, L2 normalisation)."""
    import soundfile
    import torch.nn.functional as F
    import torchaudio

    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    audio = torch.from_numpy(data.T.copy())[0:1]
    audio = audio - audio.mean()
    if rate != 32000:
        audio = torchaudio.functional.resample(audio, orig_freq=rate, new_freq=32000)
    if audio.size(-1) < 32000:
        audio = F.pad(audio, (0, 32000 - audio.size(-1)), mode="constant", value=0.0)
    batch = torchaudio.functional.resample(audio, orig_freq=32000, new_freq=48000)  # [1, n]: the loader's squeeze(1)
    waveform = batch.squeeze(1)[..., :480000]
    embedding = model.encode_audio({"waveform": waveform, "longer": torch.tensor([True])}, device="cpu")["embedding"]
    return F.normalize(model.audio_projection(embedding), dim=-1)[0].numpy()


def audioldm_eval(checkpoint: str, amodel: str, files: list[str]) -> dict[str, np.ndarray]:
    laion_clap_package("pip install --no-deps laion_clap==1.1.7 torchlibrosa==0.1.0")
    model = laion_clap_model(amodel, False, SMALL_TEXT_TOWER)
    load_audio_side(model, checkpoint)
    with torch.inference_mode():
        return {f"clip{i}": audioldm_eval_embedding(model, path) for i, path in enumerate(files)}


def middle(choices):
    """``np.random.choice`` of one range: its middle element (audiofidelity's ``fusion_chunk_starts``)."""
    return choices[len(choices) // 2]


def main(argv: list[str]) -> int:
    if argv[:1] == ["audioldm_eval"] and len(argv) >= 5:
        np.savez(argv[-1], **audioldm_eval(argv[1], argv[2], argv[3:-1]))
        return 0
    if argv[:1] != ["fusion"] or len(argv) != 4:
        raise SystemExit(__doc__)
    wrapper = module(argv[1])
    out = {}
    random_choice, np.random.choice = np.random.choice, middle
    try:
        with np.load(argv[2]) as clips, torch.inference_mode():
            for name in clips.files:
                out[name] = wrapper.get_audio_embedding_from_data(clips[name][None], use_tensor=False)[0]
    finally:
        np.random.choice = random_choice
    np.savez(argv[3], **out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
