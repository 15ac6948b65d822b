#!/usr/bin/env python3
"""Run laion_clap's fusion model and save what it computes, for the project's side to compare (no project import).

The fusion checkpoint's input is built in laion_clap by torchaudio's ``MelSpectrogram`` and torchvision's ``Resize``;
no torchaudio wheel matches the runtime's torch, so this script runs in a virtualenv that has them (the PaSST
original's, with laion_clap and transformers added), as a subprocess, and talks through files:

    PYTHON -m pip install --no-deps laion_clap==1.1.7 torchlibrosa==0.1.0 && PYTHON -m pip install transformers
    PYTHON clap_original.py fusion CKPT IN.npz OUT.npz    # get_audio_embedding_from_data with enable_fusion

``IN.npz``: arrays ``clip<i>`` of 48-kHz waveforms (n,) float32 -> ``OUT.npz`` ``clip<i>`` (512,). The model is
laion_clap 1.1.7's own ``CLAP`` built as ``CLAP_Module(enable_fusion=True)`` builds it (HTSAT-tiny, ``aff_2d``) with a
small text tower that is never run (``CLAP_Module.__init__`` would fetch RoBERTa), the checkpoint's audio side loaded
through ``load_state_dict``. Called on NumPy input, as stable-audio-metrics calls it: the int16 round trip, then
``get_audio_features(data_truncating="fusion", data_filling="repeatpad")``. For a clip over 10 s laion_clap draws
the three local chunks with ``np.random.choice``; here that draw takes each range's middle element, the rule
audiofidelity documents, so the fusion machinery itself is compared exactly.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Unavailable, import_with_placeholders  # noqa: E402  (plain-Python helpers, no project import)

SMALL_TEXT_TOWER = dict(model_type="transformer", context_length=77, vocab_size=49408, width=512, heads=8, layers=1)
AUDIO_KEYS = ("audio_branch.", "audio_projection.", "audio_transform.", "logit_scale_a")


def _no_hub_tokenizer(cls, name: str, *args, **kwargs) -> Unavailable:
    return Unavailable(f"tokenizer {name}")


def package():
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    return import_with_placeholders("laion_clap", patch={(PreTrainedTokenizerBase, "from_pretrained"):
                                                         classmethod(_no_hub_tokenizer)},
                                    install_hint="pip install --no-deps laion_clap==1.1.7")


def constructed() -> torch.nn.Module:
    package()
    factory, model = sys.modules["clap_module.factory"], sys.modules["clap_module.model"]
    config = factory._MODEL_CONFIGS["HTSAT-tiny"]
    return model.CLAP(embed_dim=config["embed_dim"], audio_cfg=config["audio_cfg"], text_cfg=SMALL_TEXT_TOWER,
                      enable_fusion=True, fusion_type="aff_2d").eval()


def module(checkpoint: str):
    laion = package()
    model = constructed()
    state = sys.modules["clap_module.factory"].load_state_dict(checkpoint)
    result = model.load_state_dict({k: v for k, v in state.items() if k.startswith(AUDIO_KEYS)}, strict=False)
    missing = [k for k in result.missing_keys if k.startswith(AUDIO_KEYS)]
    if missing or result.unexpected_keys:
        raise SystemExit(f"{checkpoint}: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}")
    wrapper = laion.CLAP_Module.__new__(laion.CLAP_Module)
    torch.nn.Module.__init__(wrapper)
    wrapper.model, wrapper.enable_fusion = model, True
    wrapper.model_cfg = sys.modules["clap_module.factory"]._MODEL_CONFIGS["HTSAT-tiny"]
    return wrapper


def middle(choices):
    """``np.random.choice`` of one range: its middle element (audiofidelity's ``fusion_chunk_starts``)."""
    return choices[len(choices) // 2]


def main(argv: list[str]) -> int:
    if argv[0] != "fusion":
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
