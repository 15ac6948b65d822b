"""LAION-CLAP (Wu et al. 2023) audio towers: HTSAT-tiny (``630k-audioset-best.pt``) and HTSAT-base
(``music_audioset_epoch_15_esc_90.14.pt``) + projection, 512-d per clip, as FAD embeddings at 48 kHz.

Frontend ``clap_log_mel`` (the int16 round trip, repeat-padding to 10-s windows, HTS-AT's log-mel). Export:
``export_scripts/clap_htsat.py``; verify: ``verify_scripts/verify_clap.py``; cards ``model_cards/clap-*.md``;
stand-ins ``tests/fixtures/checkpoints.py``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..frontends import log_mel, stft_bytes, window_starts
from .family import ArtifactEntry, FadModel, Frontend, ModelFamily, PackageModel

RELEASE = "https://huggingface.co/lukewys/laion_clap/resolve/main/"
ORIGIN = "LAION-CLAP, Hugging Face repository lukewys/laion_clap"
SUBMODELS = {"630k-audioset": "clap-630k-audioset", "music_audioset": "clap-music"}
"""frechet_audio_distance's CLAP ``submodel_name`` -> the FAD model it is (its other checkpoints are not exported)."""


def clap_log_mel(wave: np.ndarray, *, sample_rate: int, window_samples: int, quantize: bool = True,
                 **spectrogram: Any) -> np.ndarray:
    """LAION-CLAP's input (``get_audio_embedding_from_data``, non-fusion): the log-mel of 10-s windows.

    ``quantize``: the int16 round trip laion_clap applies to NumPy input (clip to [-1, 1], x 32767, truncate
    to int16, / 32767); frechet_audio_distance passes tensors, which skip it. A clip no longer than
    ``window_samples`` is repeated whole as often as it fits and zero-padded to the window (``repeatpad``);
    a longer one, which laion_clap crops at random, becomes consecutive windows plus one ending at the clip's
    end (``window_starts``), whose embeddings the FAD model averages. ``spectrogram``: ``log_mel``'s
    parameters (torchlibrosa's, as HTS-AT sets them). Returns (windows, 1, frames, n_mels) float32.
    """
    x = np.asarray(wave, dtype=np.float32)
    if quantize:
        x = ((np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16) / 32767.0).astype(np.float32)
    if len(x) <= window_samples:
        windows = [np.pad(np.tile(x, window_samples // len(x)), (0, window_samples % len(x)))] if len(x) else []
    else:
        windows = [x[s:s + window_samples] for s in window_starts(len(x), window_samples)]
    if not windows:
        return np.zeros((0, 1, 0, spectrogram.get("n_mels", 64)), np.float32)
    return np.concatenate([log_mel(w, sample_rate=sample_rate, **spectrogram) for w in windows])


def clap_log_mel_bytes(n: int, *, window_samples: int, n_fft: int, hop_length: int, **_: Any) -> float:
    """``clap_log_mel``'s peak bytes for ``n`` samples: the quantised and tiled copies, one window's log-mel at a
    time, and every window's output."""
    windows = 1 + -(-n // window_samples)
    one = stft_bytes(window_samples, n_fft, hop_length)
    return 3.0 * 4 * max(n, window_samples) + one + 2.0 * windows * one / 8


FAMILY = ModelFamily(
    "clap",
    artifacts=tuple(
        ArtifactEntry(name, "embedding", "clap", (), "clap", source, RELEASE + source, "CC0-1.0", origin=ORIGIN,
                      model_rate=48000, dimension=512, frames="1 per clip (10-s windows averaged)",
                      description=f"LAION-CLAP {tower} audio tower + projection, 512-d per clip")
        for name, source, tower in (("clap-630k-audioset", "630k-audioset-best.pt", "HTSAT-tiny"),
                                    ("clap-music", "music_audioset_epoch_15_esc_90.14.pt", "HTSAT-base"))),
    fad_models=tuple(FadModel(name, name, "embedding", "laion_clap", collect="mean")
                     for name in ("clap-630k-audioset", "clap-music")),
    frontends=(Frontend("clap_log_mel", clap_log_mel, clap_log_mel_bytes),),
    package_models=tuple(PackageModel("frechet_audio_distance", "clap", 48000, name, submodel=submodel,
                                      frontend=(("quantize", False),)) for submodel, name in SUBMODELS.items()),
)
