"""PANNs CNN14 for export: the network body as a clean ``nn.Module`` plus its checkpoint loader.

The published checkpoints (Zenodo ``Cnn14_8k_mAP=0.416.pth``, ``Cnn14_16k_mAP=0.438.pth``,
``Cnn14_mAP=0.431.pth``) are
``{"model": state_dict}`` of PANNs' ``Cnn14``, which includes torchlibrosa's frozen STFT and mel
buffers. The runtime computes that frontend in NumPy, so the export takes only the body
(bn0 -> six conv blocks -> time mean/max pooling -> fc1 -> 2048-d embedding and 527 logits).
The frozen buffers are compared with the frontend the manifest will declare, which catches a
32 kHz checkpoint passed as 16 kHz, and then dropped.

References: Kong et al., "PANNs: Large-Scale Pretrained Audio Neural Networks for Audio Pattern
Recognition", IEEE/ACM TASLP 2020; github.com/qiuqiangkong/audioset_tagging_cnn ``models.py``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import load_strict

FAMILY = "cnn14"
"""The model family (``audiofidelity/models/cnn14.py``) whose artifacts this module builds; ``export.py`` finds
it by this."""

MIN_FRAMES = 32
"""Shortest time axis CNN14 takes (five 2x2 poolings leave one frame). torch.export guards on
``frames // 32 != 1`` unless sizes are size-oblivious (``export_config`` below), which keeps 32-63 frames:
frechet_audio_distance feeds unpadded clips (0.33 s at 16 kHz)."""

FRONTENDS = {
    "cnn14-8k": dict(kind="log_mel", sample_rate=8000, n_fft=256, hop_length=80, win_length=256, fmax=4000),
    "cnn14-16k": dict(kind="log_mel", sample_rate=16000, n_fft=512, hop_length=160, win_length=512, fmax=8000),
    "cnn14-32k": dict(kind="log_mel", sample_rate=32000, n_fft=1024, hop_length=320, win_length=1024, fmax=14000),
}
COMMON_FRONTEND = dict(window="hann", center=True, pad_mode="reflect", power=2.0, n_mels=64, fmin=50, htk=False,
                       mel_norm="slaney", amin=1e-10, ref=1.0, top_db=None)
FROZEN_FRONTEND_KEYS = ("spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
                        "logmel_extractor.melW")
CITATION = ("Kong, Q., Cao, Y., Iqbal, T., Wang, Y., Wang, W., Plumbley, M. D. PANNs: Large-Scale Pretrained "
            "Audio Neural Networks for Audio Pattern Recognition. IEEE/ACM TASLP 28, 2880-2894 (2020).")


class ConvBlock(nn.Module):
    """Two 3x3 conv + batch-norm + ReLU layers followed by average pooling."""

    def __init__(self, in_channels: int, out_channels: int, pool: tuple[int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=self.pool)


class Cnn14Body(nn.Module):
    """CNN14 from log-mel to (embedding, logits); inference-only (no dropout, no SpecAugment).

    Input ``log_mel``: (batch, 1, frames, 64) float32 dB. Outputs: ``2048`` = ReLU(fc1(pooled)),
    (batch, 2048); ``logits`` = fc_audioset of that, (batch, 527), before the sigmoid.
    """

    def __init__(self, classes: int = 527) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(64)
        channels = [1, 64, 128, 256, 512, 1024, 2048]
        for i in range(6):
            pool = (1, 1) if i == 5 else (2, 2)
            self.add_module(f"conv_block{i + 1}", ConvBlock(channels[i], channels[i + 1], pool))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, classes)

    def forward(self, log_mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.bn0(log_mel.transpose(1, 3)).transpose(1, 3)
        for i in range(1, 7):
            x = getattr(self, f"conv_block{i}")(x)
        x = torch.mean(x, dim=3)
        x = torch.amax(x, dim=2) + torch.mean(x, dim=2)
        embedding = F.relu(self.fc1(x))
        return embedding, self.fc_audioset(embedding)


def expected_frontend_buffers(frontend: dict) -> dict[str, np.ndarray]:
    """torchlibrosa's frozen STFT (windowed DFT) and mel buffers for a log-mel frontend."""
    import librosa

    n_fft = frontend["n_fft"]
    window = librosa.util.pad_center(librosa.filters.get_window(frontend["window"], frontend["win_length"],
                                                                fftbins=True), size=n_fft)
    n = np.arange(n_fft)
    dft = np.exp(-2j * np.pi * np.outer(n, n) / n_fft)[:, : n_fft // 2 + 1] * window[:, None]
    mel = librosa.filters.mel(sr=frontend["sample_rate"], n_fft=n_fft, n_mels=frontend["n_mels"],
                              fmin=frontend["fmin"], fmax=frontend["fmax"])
    return {FROZEN_FRONTEND_KEYS[0]: np.real(dft).T[:, None, :], FROZEN_FRONTEND_KEYS[1]: np.imag(dft).T[:, None, :],
            FROZEN_FRONTEND_KEYS[2]: mel.T}


def check_frontend_buffers(state: dict[str, torch.Tensor], frontend: dict, source: Path) -> None:
    """Refuse a checkpoint whose frozen torchlibrosa buffers disagree with ``frontend``."""
    for key, want in expected_frontend_buffers(frontend).items():
        got = state[key].numpy()
        if got.shape != want.shape:
            raise SystemExit(
                f"{source}: {key} has shape {tuple(got.shape)}, but a {frontend['sample_rate']} Hz CNN14 "
                f"(n_fft {frontend['n_fft']}) has {tuple(want.shape)}. Is this the checkpoint for another "
                f"sample rate? (8 kHz: Cnn14_8k_mAP=0.416.pth, 16 kHz: Cnn14_16k_mAP=0.438.pth, "
                f"32 kHz: Cnn14_mAP=0.431.pth)")
        err = float(np.max(np.abs(got - want)))
        if err > 1e-4 * float(np.max(np.abs(want))):
            raise SystemExit(f"{source}: {key} differs from the expected {frontend['sample_rate']} Hz frontend "
                             f"(max abs difference {err:.3g}); refusing to export a mismatched frontend")


def load_body(source: Path, name: str) -> tuple[Cnn14Body, dict]:
    """Load a PANNs checkpoint into ``Cnn14Body`` with a strict key check; return it and its frontend."""
    frontend = {**FRONTENDS[name], **COMMON_FRONTEND}
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise SystemExit(f"{source}: expected a PANNs checkpoint {{'model': state_dict}}, got {type(checkpoint).__name__}"
                         f"{' with keys ' + ', '.join(map(str, checkpoint)) if isinstance(checkpoint, dict) else ''}")
    missing_frozen = [k for k in FROZEN_FRONTEND_KEYS if k not in state]
    if missing_frozen:
        raise SystemExit(f"{source}: not a PANNs Cnn14 state dict; missing keys {missing_frozen}")
    check_frontend_buffers(state, frontend, source)
    body = load_strict(Cnn14Body(), state, source, "PANNs Cnn14 state dict", ignore=FROZEN_FRONTEND_KEYS)
    return body, frontend


MEMORY = dict(axis="frames", fixed_bytes=64_000_000, bytes_per_unit=49_152)
"""Peak activation memory of one clip's log-mel, an upper bound of what was measured on the CPU (0.73 GB at
16001 frames, 45 KB per frame): about 18 GB for an hour at 16 kHz. The runtime refuses what would not fit."""


def build(name: str, source: Path) -> dict:
    """Everything ``export.py`` needs to export one CNN14 artifact."""
    body, frontend = load_body(source, name)
    batch = torch.export.Dim("batch", min=1, max=4096)
    frames = torch.export.Dim("frames", min=MIN_FRAMES, max=1_000_000)
    example = torch.randn(2, 1, 1001, 64) * 20 - 30
    return dict(
        module=body,
        example_inputs=(example,),
        dynamic_shapes={"log_mel": {0: batch, 2: frames}},
        export_config={"backed_size_oblivious": True},
        frontend=frontend,
        inputs=[dict(name="log_mel", shape=["batch", 1, "frames", 64], dtype="float32", min={"frames": MIN_FRAMES},
                     memory=MEMORY)],
        outputs=[dict(name="2048", shape=["batch", 2048], dtype="float32", roles=["embedding"]),
                 dict(name="logits", shape=["batch", 527], dtype="float32", roles=["logits"])],
        citation=CITATION,
    )
