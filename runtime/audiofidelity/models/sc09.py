"""The SC09 benchmark's classifier (SaShiMi's ResNeXt-29 on 32x32 mels of 1-s clips at 16 kHz): IS, mIS, AM, NDB
and FID for spoken digits (``audiofidelity sc09``).

Frontend ``sc09_mel`` (librosa 0.8's mel in dB). Export: ``export_scripts/sc09_resnext.py``; card
``model_cards/sc09-resnext.md``; stand-ins ``tests/fixtures/sc09.py``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..frontends import mel_filterbank, power_spectrogram, stft_bytes
from .family import ArtifactEntry, Frontend, ModelFamily


def sc09_mel(wave: np.ndarray, *, sample_rate: int, samples: int, n_fft: int, hop_length: int, n_mels: int,
             amin: float = 1e-10, top_db: float = 80.0) -> np.ndarray:
    """The SC09 benchmark classifier's input: ``FixAudioLength`` (cut, or zero-pad at the end, to ``samples``), then
    ``librosa.feature.melspectrogram`` with librosa 0.8's defaults (Hann, centred with **reflect** padding, power 2,
    Slaney mel from 0 Hz to Nyquist) and ``power_to_db(ref=np.max)``. Returns (1, 1, n_mels, frames) float32.

    librosa >= 0.10 pads with zeros instead (``pad_mode="constant"``), which changes the first and last frames;
    the benchmark's numbers were made with reflect padding.
    """
    x = np.asarray(wave, dtype=np.float32)[:samples]
    x = np.pad(x, (0, samples - len(x)))
    spec = power_spectrogram(x, n_fft=n_fft, hop_length=hop_length, win_length=n_fft, window="hann", center=True,
                             pad_mode="reflect", power=2.0)
    mel = mel_filterbank(sample_rate, n_fft, n_mels, 0.0, None) @ spec
    db = 10.0 * np.log10(np.maximum(mel, amin)) - 10.0 * np.log10(max(amin, float(mel.max())))
    return np.maximum(db, db.max() - top_db)[None, None].astype(np.float32)


def sc09_mel_bytes(n: int, *, samples: int, n_fft: int, hop_length: int, **_: Any) -> float:
    """``sc09_mel``'s peak bytes: the cut or padded clip's spectrogram (its length is fixed)."""
    return 4.0 * n + stft_bytes(samples, n_fft, hop_length)


FAMILY = ModelFamily(
    "sc09",
    artifacts=(
        ArtifactEntry("sc09-resnext", "benchmark", "sc09", (), "sc09", "resnext.pth",
                      "https://huggingface.co/krandiash/sashimi-release/resolve/main/sc09_classifier/resnext.pth",
                      "Apache-2.0", origin="SaShiMi release, Hugging Face repository krandiash/sashimi-release",
                      model_rate=16000, dimension=1024, frames="1 per 1-s clip",
                      description="SaShiMi's SC09 ResNeXt digit classifier (the SC09 benchmark)"),
    ),
    frontends=(Frontend("sc09_mel", sc09_mel, sc09_mel_bytes, nominal_samples=lambda samples, **_: samples),),
)
