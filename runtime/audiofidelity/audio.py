"""Audio input: decode a file, check it, and condition it the way audioldm_eval feeds its models.

audioldm_eval's conditioning (``WaveDataset.read_from_file``): first channel, subtract the mean,
resample to the model rate with torchaudio, zero-pad to at least 32000 samples. ``condition``
does exactly that by default; mixing channels to their mean is an option.
"""
from __future__ import annotations

import contextlib
import math
import os
import stat
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np
import soundfile as sf

from .errors import InvalidAudioError, TooLongForMemoryError, UnreadableFileError
from .memory import format_bytes
from .resample import RESAMPLERS, TORCHAUDIO_APIS, resample, resample_bytes
from .validation import check_int, check_number, check_optional

CHANNEL_MODES = ("first", "mean", "concatenate")


@dataclass(frozen=True)
class Conditioning:
    """How decoded audio is turned into a model-rate waveform; every field changes the features.

    channel : "first" (audioldm_eval), "mean" (mixdown) or "concatenate" (the channels one after the other, as
        PAM's ``audio.reshape(-1)`` of a (channels, n) tensor makes one signal of a stereo file).
    remove_dc : subtract the clip's mean before resampling (audioldm_eval).
    resampler : "torchaudio" (audioldm_eval: its float32 torch ops, no torchaudio), "resampy", or "soxr_hq"
        (``librosa.load``'s default).
    min_samples : zero-pad the resampled clip to this length (audioldm_eval: 32000).
    min_duration : clips shorter than this many seconds (before padding) are rejected as too short.
    peak_dbfs : scale the resampled clip so that its peak is this many dB below full scale (stable-audio-metrics:
        -1, pyloudnorm's ``normalize.peak``), or None to leave the level alone.
    resample_api : with ``resampler="torchaudio"``, the torchaudio entry point reproduced (``TORCHAUDIO_APIS``):
        None is ``functional.resample`` (audioldm_eval), ``"transforms"`` ``transforms.Resample`` (PAM).
    peak_before_resampling : apply ``peak_dbfs`` to the signal read before it is resampled, one gain for all the
        channels a stereo stage reads (stable-audio-metrics' OpenL3); None or False: after resampling.
    """

    channel: str = "first"
    remove_dc: bool = True
    resampler: str = "torchaudio"
    min_samples: int = 32000
    min_duration: float = 0.1
    peak_dbfs: float | None = None
    resample_api: str | None = None
    peak_before_resampling: bool | None = None

    def __post_init__(self) -> None:
        if self.channel not in CHANNEL_MODES:
            raise ValueError(f"channel must be one of {CHANNEL_MODES}, got {self.channel!r}")
        if self.resampler not in RESAMPLERS:
            raise ValueError(f"resampler must be one of {RESAMPLERS}, got {self.resampler!r}")
        check_int(self.min_samples, "min_samples", minimum=0)
        check_number(self.min_duration, "min_duration", minimum=0.0)  # NaN and inf are refused too
        check_optional(check_number, self.peak_dbfs, "peak_dbfs", minimum=-math.inf, maximum=0.0)  # dB re full scale
        if self.resample_api not in (None, *TORCHAUDIO_APIS):
            raise ValueError(f"resample_api must be one of {TORCHAUDIO_APIS} or None, got {self.resample_api!r}")

    def as_dict(self) -> dict:
        """The fields that are set (an optional one left unset adds no key: the keys runs without it have always
        had, and so their cache keys)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


SAMPLE_RATES = (1000, 768000)
"""The sample rates accepted, in Hz (inclusive): a header outside them is not audio a model can be fed (a rate
of 1 Hz or 2**31 Hz would make resampling allocate gigabytes for a few kilobytes of file)."""
FULL_SCALE_LIMIT = 100.0
"""A decoded sample beyond this magnitude (40 dB over full scale) is refused: float data stored at integer
scale (±32768), or garbage, whose features would be meaningless."""
DECODED_BYTES_PER_SAMPLE = 8
"""Decoding holds a clip twice as float32: libsndfile's (frames, channels) buffer and its transposed copy."""


@dataclass(frozen=True)
class FileIdentity:
    """What identifies a file's content without reading it (as git's index): a write moves the ctime even when
    the mtime is put back, a replacement changes the inode."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> "FileIdentity":
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def file_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as an audio file without opening it (a FIFO, device or socket would hang or
    have side effects when opened), or None for a regular file (through symlinks)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "a dangling symlink (its target does not exist)" if os.path.islink(path) else \
            "vanished (no longer exists)"
    except OSError as exc:
        return f"cannot be inspected ({exc.strerror or exc})"
    if stat.S_ISREG(st.st_mode):
        return None
    if stat.S_ISDIR(st.st_mode):
        return "is a folder (folders are not searched recursively)"
    return f"is {_kind(st.st_mode)}, not an audio file; not opened"


@contextlib.contextmanager
def open_regular(path: str | Path, expected: FileIdentity | None = None) -> Iterator[BinaryIO]:
    """Open a regular file for reading without ever blocking on a FIFO or device that replaced it, and check on
    closing that it did not change while it was read (and, with ``expected``, since it was identified).

    Raises
    ------
    UnreadableFileError
        Not a regular file, gone, unreadable, or changed, named.
    """
    problem = file_problem(path)
    if problem is not None:
        raise UnreadableFileError(problem)
    try:  # O_NONBLOCK: a FIFO swapped in after the check above opens at once instead of waiting for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UnreadableFileError(f"cannot be opened ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as f:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise UnreadableFileError(f"is {_kind(before.st_mode)}, not an audio file; not read")
        if expected is not None and FileIdentity.of(before) != expected:
            raise UnreadableFileError("changed after it was listed (its content no longer matches); not used")
        yield f
        if FileIdentity.of(os.fstat(fd)) != FileIdentity.of(before):
            raise UnreadableFileError("changed while it was being read; not used")


def check_sample_rate(sample_rate: int) -> None:
    """Refuse a sample rate outside ``SAMPLE_RATES`` (``InvalidAudioError``, naming it)."""
    low, high = SAMPLE_RATES
    if not low <= sample_rate <= high:
        raise InvalidAudioError(f"sample rate {sample_rate} Hz is outside the {low}-{high} Hz accepted for audio")


def check_memory(needed: float, budget: int | None, what: str) -> None:
    """Raise ``TooLongForMemoryError`` when ``needed`` bytes exceed ``budget`` (None: no guard)."""
    if budget is not None and needed > budget:
        raise TooLongForMemoryError(f"{what} would need about {format_bytes(needed)}, over the memory budget of "
                                    f"{format_bytes(budget)}; not decoded (split the file, or raise --max-memory)")


def read_header(path: str | Path) -> tuple[int, int]:
    """(frames, sample rate) from a file's header, reading no samples.

    Raises ``InvalidAudioError`` (``UnreadableFileError`` for what is not a regular file) as ``load_audio``."""
    with open_regular(path) as f:
        try:
            with sf.SoundFile(f) as sound:
                return int(sound.frames), int(sound.samplerate)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            raise InvalidAudioError(f"not readable as audio: {exc}") from exc


def load_audio(path: str | Path, *, memory_budget: int | None = None,
               cost: Callable[[int, int, int], float] | None = None,
               expected: FileIdentity | None = None) -> tuple[np.ndarray, int]:
    """Decode a file with libsndfile (WAV, FLAC, OGG, and MP3 where libsndfile supports it).

    The header is checked before any sample is read: the rate must lie in ``SAMPLE_RATES``, and decoding
    (``DECODED_BYTES_PER_SAMPLE`` per sample) plus ``cost(frames, channels, rate)`` (what the caller will
    allocate for the clip: resampling, frontends) must fit ``memory_budget`` bytes.

    Parameters
    ----------
    path : path of a regular file (FIFOs, devices and sockets are refused unopened)
    memory_budget : int, optional
        Bytes the clip may take (None: no guard).
    cost : callable, optional
        ``cost(frames, channels, sample_rate) -> bytes`` beyond decoding.
    expected : FileIdentity, optional
        The identity the file had when its content was hashed: a file changed since is refused.

    Returns
    -------
    audio : np.ndarray, shape (channels, n), float32
        Integer PCM scaled to [-1, 1) (divided by 2**(bits-1)), float PCM as stored.
    sample_rate : int

    Raises
    ------
    InvalidAudioError
        The file cannot be decoded (not audio, truncated, zero bytes, unsupported format), its rate is outside
        ``SAMPLE_RATES``, it is not a regular file or it changed; ``TooLongForMemoryError`` when it would not
        fit the budget.
    """
    with open_regular(path, expected) as f:
        try:
            with sf.SoundFile(f) as sound:
                frames, channels, sample_rate = sound.frames, sound.channels, int(sound.samplerate)
                check_sample_rate(sample_rate)
                check_memory(frames * channels * DECODED_BYTES_PER_SAMPLE
                             + (cost(frames, channels, sample_rate) if cost else 0), memory_budget,
                             f"{frames} frames x {channels} channel(s) at {sample_rate} Hz")
                data = sound.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidAudioError):
                raise
            size = os.fstat(f.fileno()).st_size
            # the reason names no path (it is cached by content; the report says which file): libsndfile's own text
            detail = getattr(exc, "error_string", None) or str(exc).replace(str(path), "the file")
            reason = "empty file (0 bytes)" if size == 0 else f"cannot be decoded as audio ({detail})"
            raise InvalidAudioError(reason) from None
    return np.ascontiguousarray(data.T), sample_rate


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
    peak = float(np.max(np.abs(audio)))
    if peak > FULL_SCALE_LIMIT:
        raise InvalidAudioError(f"samples reach {peak:.4g}, over {FULL_SCALE_LIMIT:g} x full scale (float data at "
                                f"integer scale?); scale it to [-1, 1]")
    if not allow_silent and not np.any(audio):
        raise InvalidAudioError("all samples are zero (silent)")
    duration = n / sample_rate
    if duration < min_duration:
        raise InvalidAudioError(
            f"too short: {duration * 1000:.1f} ms at {sample_rate} Hz, shorter than the "
            f"{min_duration * 1000:.0f} ms minimum (set min_duration / --min-duration to change it)")


def channels_read(audio: np.ndarray, mode: str, channels: int = 1) -> np.ndarray:
    """Exactly the signal a model reads from a (channels, n) clip, shape (channels, n): the mono signal of
    ``select_channel``, or a stereo model's first two channels (a mono clip's one channel twice). Validation runs
    on this, so a NaN in a channel the model reads is never missed, and one in a channel it ignores never rejects
    the file."""
    if channels == 1:
        return select_channel(audio, mode)[None]
    return audio[:2] if len(audio) >= 2 else np.repeat(audio[:1], 2, axis=0)


def select_channel(audio: np.ndarray, mode: str) -> np.ndarray:
    """Mono signal of a (channels, n) clip: the first channel, the mean of all channels, or all channels one after
    the other (``concatenate``: channels x n samples)."""
    if mode == "first":
        return audio[0]
    if mode == "concatenate":
        return np.ascontiguousarray(audio).reshape(-1)
    return audio.mean(axis=0, dtype=np.float64).astype(np.float32)


def mono_length(frames: int, channels: int, mode: str) -> int:
    """Samples of ``select_channel``'s signal for a clip of ``channels`` x ``frames``."""
    return frames * channels if mode == "concatenate" else frames


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
    peak, first = conditioning.peak_dbfs, bool(conditioning.peak_before_resampling)
    if peak is not None and first:
        mono = peak_normalise(mono, peak)
    wave = resample(mono, sample_rate, target_rate, method=conditioning.resampler,
                    api=conditioning.resample_api or "functional")
    if peak is not None and not first:
        wave = peak_normalise(wave, peak)
    if len(wave) < conditioning.min_samples:
        wave = np.pad(wave, (0, conditioning.min_samples - len(wave)))
    return np.ascontiguousarray(wave, dtype=np.float32)


def peak_normalise(wave: np.ndarray, peak_dbfs: float) -> np.ndarray:
    """``wave`` scaled so that its largest magnitude is ``peak_dbfs`` dB re full scale, as pyloudnorm's
    ``normalize.peak``: the gain ``10 ** (peak_dbfs / 20) / max|wave|`` in float64 and the product rounded once to
    float32 (what stable-audio-metrics feeds under NumPy 2; NumPy 1 rounds the gain to float32 first: 1 ulp). A
    silent clip (refused earlier by ``validate_audio``) is returned unchanged, not divided by zero.

    See Also: pyloudnorm ``normalize.peak``; stable-audio-metrics ``src/passt_kld.py``."""
    peak = float(np.abs(wave).max(initial=0.0))
    if peak == 0.0:
        return wave
    return np.multiply(wave, 10.0 ** (peak_dbfs / 20.0) / peak, dtype=np.float64).astype(np.float32)


def condition_stereo(audio: np.ndarray, sample_rate: int, target_rate: int, conditioning: Conditioning) -> np.ndarray:
    """Two conditioned channels, shape (2, m), for a stereo model: a clip's first two channels, a mono clip's
    one channel twice (as EnCodec's ``convert_audio``); each channel conditioned on its own, but for a peak
    normalisation before resampling, whose one gain is the two channels' peak (stable-audio-metrics' OpenL3)."""
    each = replace(conditioning, channel="first")
    pair = channels_read(audio, "first", 2)
    if conditioning.peak_dbfs is not None and conditioning.peak_before_resampling:
        pair, each = peak_normalise(pair, conditioning.peak_dbfs), replace(each, peak_dbfs=None)
    return np.stack([condition(channel[None], sample_rate, target_rate, each) for channel in pair])


def conditioning_bytes(frames: int, sample_rate: int, target_rate: int, conditioning: Conditioning,
                       channels: int = 1) -> float:
    """Peak bytes ``condition`` (``channels`` 2: ``condition_stereo``) allocates for a clip of ``frames`` samples:
    the channel mix in float64, the mean removal, the resampler's kernel and output, the peak normalisation (the
    magnitudes, the float64 product, its float32 copy), the padding."""
    out = max(math.ceil(frames * target_rate / sample_rate), conditioning.min_samples)
    peak = 16 * out if conditioning.peak_dbfs is not None else 0
    return channels * (frames * 16 + out * 8 + peak + resample_bytes(frames, sample_rate, target_rate,
                                                                      method=conditioning.resampler))


def load_conditioned(path: str | Path, target_rate: int, conditioning: Conditioning, *,
                     memory_budget: int | None = None, then: Callable[[int], float] | None = None) -> np.ndarray:
    """Decode one file (within ``memory_budget``), validate the signal used, and condition it (see ``condition``).

    ``then(samples)``: bytes the caller will allocate for the conditioned clip of ``samples`` samples, part of the
    budget checked before decoding."""
    def cost(frames: int, channels: int, rate: int) -> float:
        samples = max(math.ceil(frames * target_rate / rate), conditioning.min_samples)
        return conditioning_bytes(frames, rate, target_rate, conditioning) + (then(samples) if then else 0)

    audio, sample_rate = load_audio(path, memory_budget=memory_budget, cost=cost)
    mono = channels_read(audio, conditioning.channel)
    validate_audio(mono, sample_rate, min_duration=conditioning.min_duration)
    return condition(mono, sample_rate, target_rate, conditioning)
