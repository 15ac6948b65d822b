"""Audio input: decode a file, check it, and condition it the way audioldm_eval feeds its models.

audioldm_eval's conditioning (``WaveDataset.read_from_file``): first channel, subtract the mean,
resample to the model rate with torchaudio, zero-pad to at least 32000 samples. ``condition``
does exactly that by default; mixing channels to their mean is an option.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import InvalidAudioError
from .resample import RESAMPLERS, resample
from .validation import check_int, check_number

CHANNEL_MODES = ("first", "mean")


@dataclass(frozen=True)
class Conditioning:
    """How decoded audio is turned into a model-rate waveform; every field changes the features.

    channel : "first" (audioldm_eval) or "mean" (mixdown).
    remove_dc : subtract the clip's mean before resampling (audioldm_eval).
    resampler : "torchaudio" (audioldm_eval: its float32 torch ops, no torchaudio) or "resampy".
    min_samples : zero-pad the resampled clip to this length (audioldm_eval: 32000).
    min_duration : clips shorter than this many seconds (before padding) are rejected as too short.
    """

    channel: str = "first"
    remove_dc: bool = True
    resampler: str = "torchaudio"
    min_samples: int = 32000
    min_duration: float = 0.1

    def __post_init__(self) -> None:
        if self.channel not in CHANNEL_MODES:
            raise ValueError(f"channel must be one of {CHANNEL_MODES}, got {self.channel!r}")
        if self.resampler not in RESAMPLERS:
            raise ValueError(f"resampler must be one of {RESAMPLERS}, got {self.resampler!r}")
        check_int(self.min_samples, "min_samples", minimum=0)
        check_number(self.min_duration, "min_duration", minimum=0.0)  # NaN and inf are refused too

    def as_dict(self) -> dict:
        return asdict(self)


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a file with libsndfile (WAV, FLAC, OGG, and MP3 where libsndfile supports it).

    Returns
    -------
    audio : np.ndarray, shape (channels, n), float32
        Integer PCM scaled to [-1, 1) (divided by 2**(bits-1)), float PCM as stored.
    sample_rate : int

    Raises
    ------
    InvalidAudioError
        The file cannot be decoded (not audio, truncated, zero bytes, unsupported format).
    """
    try:
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        size = Path(path).stat().st_size if Path(path).is_file() else None
        # the reason names no path (it is cached by content; the report says which file): libsndfile's own text
        detail = getattr(exc, "error_string", None) or str(exc).replace(str(path), "the file")
        reason = "empty file (0 bytes)" if size == 0 else f"cannot be decoded as audio ({detail})"
        raise InvalidAudioError(reason) from exc
    return np.ascontiguousarray(data.T), int(sample_rate)


def validate_audio(audio: np.ndarray, sample_rate: int, *, min_duration: float = 0.0,
                   allow_silent: bool = False) -> None:
    """Check a decoded clip: non-empty, finite, not all-silent (unless ``allow_silent``), at least ``min_duration``
    seconds.

    Parameters
    ----------
    audio : np.ndarray, shape (channels, n) or (n,)
    sample_rate : int
    min_duration : float
        Shortest accepted duration in seconds.
    allow_silent : bool
        Accept an all-zero clip (the SC09 benchmark classifies one as any other sample).

    Raises
    ------
    InvalidAudioError
        With a message naming what is wrong and the value seen.
    """
    n = audio.shape[-1]
    if audio.size == 0 or n == 0:
        raise InvalidAudioError("no samples (empty audio stream)")
    if not np.all(np.isfinite(audio)):
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise InvalidAudioError(f"{bad} sample(s) are NaN or infinite")
    if not allow_silent and not np.any(audio):
        raise InvalidAudioError("all samples are zero (silent)")
    duration = n / sample_rate
    if duration < min_duration:
        raise InvalidAudioError(
            f"too short: {duration * 1000:.1f} ms at {sample_rate} Hz, shorter than the "
            f"{min_duration * 1000:.0f} ms minimum (set min_duration / --min-duration to change it)")


def select_channel(audio: np.ndarray, mode: str) -> np.ndarray:
    """Mono signal of a (channels, n) clip: the first channel, or the mean of all channels."""
    if mode == "first":
        return audio[0]
    return audio.mean(axis=0, dtype=np.float64).astype(np.float32)


def condition(audio: np.ndarray, sample_rate: int, target_rate: int, conditioning: Conditioning) -> np.ndarray:
    """Turn a decoded clip into the mono, model-rate waveform a model's frontend takes.

    Parameters
    ----------
    audio : np.ndarray, shape (channels, n), float32
    sample_rate, target_rate : int
    conditioning : Conditioning

    Returns
    -------
    np.ndarray, shape (m,), float32, m >= conditioning.min_samples
    """
    mono = select_channel(audio, conditioning.channel)
    if conditioning.remove_dc:  # in float64: the original's float32 torch mean depends on torch's thread count
        mono = mono - np.float32(mono.mean(dtype=np.float64))
    wave = resample(mono, sample_rate, target_rate, method=conditioning.resampler)
    if len(wave) < conditioning.min_samples:
        wave = np.pad(wave, (0, conditioning.min_samples - len(wave)))
    return np.ascontiguousarray(wave, dtype=np.float32)


def condition_stereo(audio: np.ndarray, sample_rate: int, target_rate: int, conditioning: Conditioning) -> np.ndarray:
    """Two conditioned channels, shape (2, m), for a stereo model: a clip's first two channels, a mono clip's
    one channel twice (as EnCodec's ``convert_audio``); each channel conditioned on its own."""
    pair = audio[:2] if len(audio) >= 2 else np.repeat(audio[:1], 2, axis=0)
    each = replace(conditioning, channel="first")
    return np.stack([condition(channel[None], sample_rate, target_rate, each) for channel in pair])


def load_validated(path: str | Path, conditioning: Conditioning) -> tuple[np.ndarray, int]:
    """Decode one file and validate the channel(s) used: (mono float32 signal, its sample rate)."""
    audio, sample_rate = load_audio(path)
    mono = select_channel(audio, conditioning.channel)
    validate_audio(mono, sample_rate, min_duration=conditioning.min_duration)
    return mono, sample_rate


def load_conditioned(path: str | Path, target_rate: int, conditioning: Conditioning) -> np.ndarray:
    """Decode one file, validate the channel(s) used, and condition it (see ``condition``)."""
    mono, sample_rate = load_validated(path, conditioning)
    return condition(mono[None], sample_rate, target_rate, conditioning)
