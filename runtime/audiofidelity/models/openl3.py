"""OpenL3 (Cramer et al. 2019; openl3 0.4.2, mel256, 512-d): the embedding Stable Audio's papers report FD on, fed as
stable-audio-metrics' ``src/openl3_fd.py`` feeds it (issue #33).

Frontend ``openl3_mel``: openl3's ``_preprocess_audio_batch`` framing (1-s windows at 48 kHz, the first centred on
the clip's start, the end zero-padded so every sample is in a window) and the kapre frontend openl3 builds into its
Keras model (``get_melspectrogram_layer`` + openl3's ``kapre_v0_1_4_magnitude_to_decibel``), in NumPy. Export:
``export_scripts/openl3.py`` (the CNN from the decibel mel on); stand-ins ``tests/fixtures/openl3.py``; parity
against openl3 and stable-audio-metrics' code, in TensorFlow: ``tests/test_openl3.py`` and
``verify_scripts/verify_openl3.py``.

The FAD models read the file as ``openl3_fd`` does: the samples as stored, peak-normalised to -1 dBFS (pyloudnorm's
``normalize.peak``) before ``soxr.resample`` to the evaluation rate (``--openl3-rate``, 44.1 kHz as its examples),
then openl3's own resampling to 48 kHz (resampy 0.2's ``kaiser_best``, which openl3 pins: ``resampy_0.2``, bit for
bit), windows every 0.5 s:

- ``openl3-<content>-mono``: the channels' mean, 512-d (both of its paths, up to float rounding; its batched path
  takes a stereo file's peak before the mix: the same up to the gain, which the decibel mel's max normalisation
  cancels);
- ``openl3-<content>-stereo``: its batched path (``batching=4`` or 16, as its examples and its shipped reference
  statistics): the left and right channels each embedded (one gain from the two channels' peak), joined per window
  to 1024-d; a mono clip's one channel twice;
- ``openl3-<content>-stereo-unbatched``: its unbatched path (``batching=False``, the function's default), which reads
  the file with ``librosa.load``'s default ``mono=True``: the channels' mean embedded, each row twice (1024-d).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from ..frontends import mel_filterbank, mel_frequencies, periodic_hann
from ..validation import check_int
from .family import Adjustment, ArtifactEntry, FadModel, Frontend, ModelFamily, ModelOption

SOURCE_URL = "https://github.com/marl/openl3/raw/models/"
"""Where openl3's ``setup.py`` downloads its weights: ``<file>-v0_4_0.h5.gz``, gzipped."""
CONTENT_TYPES = ("music", "env")

FRONTEND = dict(kind="openl3_mel", sample_rate=48000, window_samples=48000, hop_seconds=0.1, center=True,
                n_fft=2048, hop_length=242, n_mels=256, amin=1e-10, dynamic_range=80.0)
"""openl3's ``get_audio_embedding`` defaults (1-s windows every 0.1 s, centred) and the kapre layer of its
``_construct_mel256_audio_network``: ``n_fft`` 2048, ``hop_length`` 242, 256 Slaney mel bands over 0-24 kHz,
``pad_end=True``; the decibel Lambda's ``amin`` 1e-10 and 80-dB range."""


@lru_cache(maxsize=4)
def slaney_mel_matrix(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """kapre's ``filterbank_mel``: ``librosa.filters.mel(htk=False, norm="slaney")`` over 0 Hz to Nyquist in librosa's
    default float32 (each triangle stored as float32, then scaled by its Slaney norm in float64 and stored again, as
    librosa's in-place ``*=`` does), transposed and held in float64 for the product; shape (n_fft // 2 + 1, n_mels),
    read-only. Bit for bit librosa's (``tests/test_openl3.py``), without importing it."""
    triangles = mel_filterbank(sample_rate, n_fft, n_mels, 0.0, None, False, None).astype(np.float32)
    edges = mel_frequencies(n_mels + 2, 0.0, sample_rate / 2.0)
    bank = (triangles.astype(np.float64) * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)
    out = np.ascontiguousarray(bank.T, dtype=np.float64)
    out.setflags(write=False)
    return out


def openl3_windows(wave: np.ndarray, *, window_samples: int, hop_samples: int, center: bool) -> np.ndarray:
    """openl3's ``_preprocess_audio_batch`` framing of audio already at 48 kHz: ``window_samples // 2`` zeros in front
    (``center``), zeros after so the windows cover every sample (``_pad_audio``), windows every ``hop_samples``.

    Returns np.ndarray, shape (windows, window_samples), a view of the padded float32 signal."""
    x = np.asarray(wave, dtype=np.float32)
    if center:
        x = np.pad(x, (window_samples // 2, 0))
    n = len(x)
    pad = window_samples - n if n < window_samples else \
        math.ceil((n - window_samples) / hop_samples) * hop_samples - (n - window_samples)
    x = np.pad(x, (0, max(pad, 0)))
    count = 1 + (len(x) - window_samples) // hop_samples
    return np.lib.stride_tricks.sliding_window_view(x, window_samples)[::hop_samples][:count]


def window_count(n: int, *, window_samples: int, hop_samples: int, center: bool) -> int:
    """How many windows ``openl3_windows`` gives a clip of ``n`` samples (openl3's ``_get_num_windows``)."""
    n += window_samples // 2 if center else 0
    return 1 if n <= window_samples else 1 + math.ceil((n - window_samples) / hop_samples)


def decibel_mel(windows: np.ndarray, *, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, amin: float,
                dynamic_range: float) -> np.ndarray:
    """The kapre frontend openl3 builds, on 1-s windows: ``tf.signal.stft`` with ``pad_end=True`` (zeros after the
    window so the frames cover it, ``ceil(len / hop_length)`` frames of ``n_fft`` samples, the periodic Hann window),
    the magnitude (not the power), ``slaney_mel_matrix``, then ``10 log10(max(mel, amin))`` less the window's maximum,
    floored at ``-dynamic_range``; in float64 where TensorFlow computes in float32 (so within its rounding), the
    result rounded to float32.

    Parameters
    ----------
    windows : np.ndarray, shape (windows, samples)

    Returns
    -------
    np.ndarray, shape (windows, 1, n_mels, frames), float32; frames = 199 for 48000 samples

    See Also: kapre 0.3.7 ``composed.get_melspectrogram_layer``; openl3 0.4.2
    ``models.kapre_v0_1_4_magnitude_to_decibel``.
    """
    count, samples = windows.shape
    frames = -(-samples // hop_length)
    padded = (frames - 1) * hop_length + n_fft
    hann = periodic_hann(n_fft)
    bank = slaney_mel_matrix(sample_rate, n_fft, n_mels)
    out = np.empty((count, 1, n_mels, frames), dtype=np.float32)
    for k, window in enumerate(windows):
        x = np.zeros(padded)
        x[:samples] = window
        stft = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop_length][:frames]
        mel = np.abs(np.fft.rfft(stft * hann, n_fft)) @ bank
        db = 10.0 * np.log10(np.maximum(mel, amin))
        out[k, 0] = np.maximum(db - db.max(), -dynamic_range).T
    return out


def openl3_mel(wave: np.ndarray, *, sample_rate: int, window_samples: int, hop_seconds: float, center: bool,
               channels: int = 1, **spectral: Any) -> np.ndarray:
    """OpenL3's input for a clip at 48 kHz: ``decibel_mel`` of each of ``openl3_windows``' windows, hop
    ``int(hop_seconds * sample_rate)`` as openl3 computes it; with ``channels`` 2 (the stereo FAD models) a (2, n)
    clip gives the first channel's windows, then the second's.

    Returns np.ndarray, shape (windows, 1, 256, 199), float32."""
    if np.ndim(wave) != (2 if channels == 2 else 1) or (channels == 2 and len(wave) != 2):
        raise ValueError(f"openl3_mel takes {'a (2, n)' if channels == 2 else 'an (n,)'} clip (channels={channels}), "
                         f"got shape {np.shape(wave)}")
    hop = int(hop_seconds * sample_rate)
    mels = [decibel_mel(openl3_windows(channel, window_samples=window_samples, hop_samples=hop, center=center),
                        sample_rate=sample_rate, **spectral)
            for channel in (wave if channels == 2 else [wave])]
    return mels[0] if len(mels) == 1 else np.concatenate(mels)


def openl3_mel_bytes(n: int, *, sample_rate: int, window_samples: int, hop_seconds: float, center: bool, n_fft: int,
                     hop_length: int, n_mels: int, channels: int = 1, **_: Any) -> float:
    """``openl3_mel``'s peak bytes for ``n`` samples a channel: per channel the padded float32 copies and every
    window's float32 mel (twice for two channels, while they are joined), and one window's float64 work (its padded
    copy, the windowed frames, the complex spectrum, FFT scratch, the magnitude and the mel)."""
    count = window_count(n, window_samples=window_samples, hop_samples=int(hop_seconds * sample_rate), center=center)
    frames = -(-window_samples // hop_length)
    bins = n_fft // 2 + 1
    one = 8.0 * (frames * hop_length + n_fft) + frames * (8.0 * n_fft * 2 + 16.0 * bins * 2 + 8.0 * bins
                                                           + 24.0 * n_mels)
    mels = count * 4.0 * n_mels * frames * (2 if channels == 2 else 1)
    return channels * (8.0 * (n + window_samples) + mels) + one


def openl3_fitting(n: int, *, window_samples: int, **_: Any) -> str | None:
    """``"padded"`` for a clip shorter than one window (openl3 warns and pads it), else None (the centring and the end
    padding are how openl3 frames every clip)."""
    return "padded" if n < window_samples else None


def join_channels(rows: np.ndarray) -> np.ndarray:
    """A stereo clip's rows, its left channel's windows then its right's, as the rows stable-audio-metrics' batched
    ``extract_embeddings`` gives: each window's left and right embeddings side by side, (windows, 2 x 512)."""
    half = len(rows) // 2
    return np.concatenate([rows[:half], rows[half:]], axis=1)


def twice(rows: np.ndarray) -> np.ndarray:
    """Each row beside itself, (windows, 2 x 512): its unbatched ``extract_embeddings_nobatching``'s "fake stereo"."""
    return np.concatenate([rows, rows], axis=1)


SAM_HOP = 0.5
"""stable-audio-metrics' ``openl3_hop_size`` in its examples and shipped reference statistics."""
SAM_RATE = 44100
"""Its examples' ``samplingrate`` (the evaluation bandwidth, "up to 48kHz")."""
SAM_READ = (("channel", "mean"), ("remove_dc", False), ("resampler", "soxr"), ("min_samples", 0),
            ("peak_dbfs", -1.0), ("peak_before_resampling", True))
"""``librosa.load(sr=None)`` (the samples as stored), pyloudnorm's peak to -1 dBFS, then ``soxr.resample``."""


def _fad_models(content: str) -> tuple[FadModel, ...]:
    artifact = f"openl3-mel256-{content}"
    common: dict[str, Any] = dict(rate=SAM_RATE, model_resampler="resampy_0.2", conditioning=SAM_READ)
    hop = (("hop_seconds", SAM_HOP),)
    return (FadModel(f"openl3-{content}-mono", artifact, "fad", "stable-audio-metrics", frontend=hop, **common),
            FadModel(f"openl3-{content}-stereo", artifact, "fad", "stable-audio-metrics",
                     frontend=(*hop, ("channels", 2)), channels=2, rows=join_channels, **common),
            FadModel(f"openl3-{content}-stereo-unbatched", artifact, "fad", "stable-audio-metrics", frontend=hop,
                     rows=twice, **common))


def evaluation_rate(rate: int) -> int:
    """``--openl3-rate``'s check: a sample rate in Hz, 1000 to 48000 (stable-audio-metrics: "up to 48kHz")."""
    rate = check_int(rate, "openl3_rate", minimum=1000)
    if rate > 48000:
        raise ValueError(f"openl3_rate must be <= 48000 (openl3 resamples to 48 kHz), got {rate}")
    return rate


FAMILY = ModelFamily(
    "openl3",
    artifacts=tuple(
        ArtifactEntry(f"openl3-mel256-{content}", "embedding", "openl3", (), "openl3_mel256",
                      f"openl3_audio_mel256_{content}.h5", f"{SOURCE_URL}openl3_audio_mel256_{content}-v0_4_0.h5.gz",
                      "MIT", origin="openl3 0.4.2's weights (github marl/openl3, branch models)", model_rate=48000,
                      dimension=512, frames="1 per 1-s window, every 0.1 s (0.5 s as stable-audio-metrics)",
                      frame_seconds=0.1,
                      description=f"OpenL3 mel256 {content}, 512-d per 1-s window (stable-audio-metrics' FD)",
                      adapter_output="frames")
        for content in CONTENT_TYPES),
    fad_models=tuple(m for content in CONTENT_TYPES for m in _fad_models(content)),
    frontends=(Frontend("openl3_mel", openl3_mel, openl3_mel_bytes, openl3_fitting,
                        nominal_samples=lambda window_samples, **_: window_samples),),
    options=(ModelOption("openl3_rate", "fad", "openl3: the rate stable-audio-metrics resamples to before openl3's own "
                         "48 kHz (its samplingrate; default 44100)", adjust=lambda rate, _: Adjustment(rate=rate),
                         parse=int, check=evaluation_rate, metavar="HZ"),),
)
