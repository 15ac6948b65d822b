#!/usr/bin/env python3
"""Run the original hear21passt and save what it computes, for the project's side to compare (no project import).

hear21passt needs torchaudio (and timm, for a download helper it never calls offline), and no torchaudio wheel
matches the runtime's torch; so this script runs in the original's own virtualenv, as a subprocess, and talks
through files:

    python3 -m venv /tmp/passt-venv
    /tmp/passt-venv/bin/pip install torch==2.11.0 torchaudio==2.11.0 numpy
    /tmp/passt-venv/bin/pip install --no-deps hear21passt==0.0.26 timm

    PYTHON passt_original.py mel IN.npz OUT.npz        # AugmentMelSTFT (get_basic_model's settings), eval mode
    PYTHON passt_original.py keys OUT.json             # get_basic_model(mode="logits").net's state dict shapes
    PYTHON passt_original.py net CKPT IN.npz OUT.npz   # that net (patchout off, eval) on CKPT: logits, features
    PYTHON passt_original.py wave CKPT IN.npz OUT.npz  # the mel, then the net, as PasstBasicWrapper.forward

``IN.npz``: ``mel``: arrays ``clip<i>`` of waveforms (n,) float32 -> ``OUT.npz`` ``clip<i>`` (128, frames);
``net``: arrays ``mel<i>`` of (batch, 1, 128, frames) float32 -> ``logits<i>``, ``features<i>``. The network is
built with ``pretrained=False`` (``get_basic_model`` would download the release file) and otherwise as
``get_basic_model`` builds it (``get_model(arch="passt_s_swa_p16_128_ap476")``'s defaults: strides 10, 998 frames);
the checkpoint is the release file's format, a plain state dict of that net, loaded strictly. ``wave``: arrays
``wave<i>`` of (batch, n) float32 -> ``logits<i>``, ``features<i>`` (the wrapper's ``mode="all"`` concatenation,
split).
"""
from __future__ import annotations

import contextlib
import io
import json
import sys

import numpy as np
import torch

ARCH = "passt_s_swa_p16_128_ap476"


def quiet(fn, *args, **kwargs):
    """hear21passt prints its model and every shape on the first run; keep stdout for nothing."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def mel_module():
    from hear21passt.models.preprocess import AugmentMelSTFT

    return quiet(AugmentMelSTFT, n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024, freqm=48, timem=192,
                 htk=False, fmin=0.0, fmax=None, norm=1, fmin_aug_range=10, fmax_aug_range=2000).eval()


def net_module():
    from hear21passt.models.passt import get_model

    return quiet(get_model, arch=ARCH, pretrained=False).eval()


def main(argv: list[str]) -> int:
    command = argv[0]
    torch.set_num_threads(1)
    if command == "mel":
        data, out, mel = np.load(argv[1]), {}, mel_module()
        with torch.no_grad():
            for key in data.files:
                out[key] = quiet(mel, torch.from_numpy(data[key].astype(np.float32))[None])[0].numpy()
        np.savez(argv[2], **out)
    elif command == "keys":
        state = net_module().state_dict()
        with open(argv[1], "w") as f:
            json.dump({k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in state.items()}, f)
    elif command in ("net", "wave"):
        net = net_module()
        net.load_state_dict(torch.load(argv[1], map_location="cpu", weights_only=True), strict=True)
        mel = mel_module() if command == "wave" else None
        data, out = np.load(argv[2]), {}
        with torch.no_grad():
            for key in data.files:
                x = torch.from_numpy(data[key])
                if mel is not None:
                    x = quiet(mel, x).unsqueeze(1)  # PasstBasicWrapper.forward: specs.unsqueeze(1)
                logits, features = quiet(net, x)
                suffix = key[len(command if command == "wave" else "mel"):]
                out["logits" + suffix], out["features" + suffix] = logits.numpy(), features.numpy()
        np.savez(argv[3], **out)
    else:
        raise SystemExit(f"unknown command {command!r}: mel, keys, net or wave")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
