"""The signal processing model frontends share, in NumPy: STFT, mel filterbanks, log-mel, windows.

Each model family (``audiofidelity/models/``) builds its frontends from these and registers them under the
kind its manifests name; ``models.apply_frontend`` looks the kind up, so no code branches on a model or rate.

- ``log_mel``: PANNs CNN14's torchlibrosa ``Spectrogram`` + ``LogmelFilterBank`` (hann window, centred
  reflect-padded STFT, power spectrogram, librosa slaney mel, ``10*log10(max(x, amin))``), also HTS-AT's (CLAP).
- ``stft``, ``power_spectrogram``, ``mel_filterbank``: librosa's arithmetic, bit for bit.

``paired_mel`` is the model-free mel that PSNR and SSIM compare (audioldm_eval's ``TacotronSTFT``),
with its parameters per evaluation rate in ``PAIRED_MEL``; its STFT is torch's float32 conv1d, as in
the original, because the metric compares near-silent bins that only that op's rounding reproduces
(``float32_conv``: on one thread, so the bits do not depend on the core count).
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .float32_conv import conv1d

if TYPE_CHECKING:
    import torch

PadMode = Literal["constant", "reflect"]
"""How a centred STFT pads the signal: zeros (librosa >= 0.10) or its reflection (torchlibrosa, librosa 0.8)."""


def _hz_to_mel(hz: np.ndarray | float, htk: bool) -> np.ndarray:
    """librosa's ``hz_to_mel`` (Slaney's scale, or HTK's), same arithmetic."""
    hz = np.asanyarray(hz, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    mels = np.array(hz / f_sp)
    log_t = hz >= min_log_hz
    mels[log_t] = min_log_hz / f_sp + np.log(hz[log_t] / min_log_hz) / (np.log(6.4) / 27.0)
    return mels


def _mel_to_hz(mels: np.ndarray, htk: bool) -> np.ndarray:
    """librosa's ``mel_to_hz``, same arithmetic."""
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    freqs = f_sp * mels
    log_t = mels >= min_log_hz / f_sp
    freqs[log_t] = min_log_hz * np.exp(np.log(6.4) / 27.0 * (mels[log_t] - min_log_hz / f_sp))
    return freqs


def mel_frequencies(n: int, fmin: float, fmax: float, htk: bool = False) -> np.ndarray:
    """librosa's ``mel_frequencies``: ``n`` frequencies in Hz equally spaced on the mel scale (Slaney's or HTK's)."""
    return _mel_to_hz(np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n), htk)


@lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, htk: bool = False,
                   norm: str | None = "slaney") -> np.ndarray:
    """librosa's ``filters.mel``, shape (n_mels, n_fft // 2 + 1), float64 (cached; read-only).

    The same arithmetic as librosa 0.10-0.11 (tests compare it bit for bit), without importing librosa's
    filter module, which costs about a second of every run's start.
    """
    if norm not in ("slaney", None):
        raise ValueError(f"mel norm must be 'slaney' or None, got {norm!r}")
    fmax = float(sample_rate) / 2 if fmax is None else fmax
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_f = mel_frequencies(n_mels + 2, fmin, fmax, htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    bank = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float64)
    for i in range(n_mels):
        bank[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    if norm == "slaney":
        bank *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    bank.setflags(write=False)
    return bank


@lru_cache(maxsize=16)
def periodic_hann(length: int) -> np.ndarray:
    """``scipy.signal.get_window("hann", length, fftbins=True)``, same arithmetic (read-only)."""
    fac = np.linspace(-np.pi, np.pi, length + 1, dtype=np.float64)
    window = np.zeros(length + 1, dtype=np.float64)
    for k, a in enumerate((0.5, 0.5)):
        window += a * np.cos(k * fac)
    window = window[:-1]
    window.setflags(write=False)
    return window


def centred_hann(win_length: int, n_fft: int) -> np.ndarray:
    """The periodic Hann window zero-padded to ``n_fft``, centred (librosa's ``pad_center``), float64."""
    left = (n_fft - win_length) // 2
    return np.pad(periodic_hann(win_length), (left, n_fft - win_length - left))


def stft(wave: np.ndarray, *, n_fft: int, hop_length: int, win_length: int | None = None, window: str = "hann",
         center: bool = True, pad_mode: PadMode = "constant") -> np.ndarray:
    """``librosa.stft`` of a mono waveform (Hann window), shape (n_fft // 2 + 1, frames).

    The same arithmetic (float64 window times the frames, NumPy's ``rfft``, complex64 out for float32 input),
    so the same bits (tests compare it with librosa), without importing librosa's spectrum module (numba,
    scipy.signal: a second or more of every run's start).
    """
    if window != "hann":
        raise ValueError(f"only the hann window is implemented, got {window!r}")
    taper = centred_hann(win_length or n_fft, n_fft)
    out_dtype = np.complex64 if wave.dtype == np.float32 else np.complex128
    if center:
        wave = np.pad(wave, n_fft // 2, mode=pad_mode)
    if len(wave) < n_fft:
        raise ValueError(f"n_fft={n_fft} is longer than the (padded) signal of {len(wave)} samples")
    frames = np.lib.stride_tricks.sliding_window_view(wave, n_fft)[::hop_length].T
    return np.fft.rfft(taper[:, None] * frames, axis=0).astype(out_dtype)


def power_spectrogram(wave: np.ndarray, *, n_fft: int, hop_length: int, win_length: int, window: str,
                      center: bool, pad_mode: PadMode, power: float) -> np.ndarray:
    """|STFT|**power of a mono float waveform, shape (n_fft // 2 + 1, frames), float64.

    ``pad_mode`` is passed explicitly: librosa >= 0.10 defaults to zero padding, torchlibrosa
    reflects (the first and last frames differ by up to 12 dB otherwise).
    """
    spec = stft(wave.astype(np.float64), n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                center=center, pad_mode=pad_mode)
    return np.abs(spec) ** power


def log_mel(wave: np.ndarray, *, sample_rate: int, n_fft: int, hop_length: int, win_length: int,
            window: str = "hann", center: bool = True, pad_mode: PadMode = "reflect", power: float = 2.0,
            n_mels: int = 64, fmin: float = 0.0, fmax: float | None = None, htk: bool = False,
            mel_norm: str | None = "slaney", amin: float = 1e-10, ref: float = 1.0,
            top_db: float | None = None) -> np.ndarray:
    """PANNs log-mel spectrogram (torchlibrosa ``Spectrogram`` + ``LogmelFilterBank``).

    Parameters
    ----------
    wave : np.ndarray, shape (n,), float32, at ``sample_rate``
    Others as torchlibrosa / librosa name them.

    Returns
    -------
    np.ndarray, shape (1, 1, frames, n_mels), float32, in dB
        One item, ``frames = 1 + n // hop_length`` when ``center``.

    References: Kong et al., "PANNs", 2020; torchlibrosa ``stft.py``.
    """
    spec = power_spectrogram(wave, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                             center=center, pad_mode=pad_mode, power=power)
    mel = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, htk, mel_norm) @ spec
    db = 10.0 * np.log10(np.maximum(mel, amin)) - 10.0 * np.log10(max(amin, ref))
    if top_db is not None:
        db = np.maximum(db, db.max() - top_db)
    return db.T[None, None].astype(np.float32)


PAIRED_MEL: dict[int, dict[str, Any]] = {
    16000: dict(n_fft=512, hop_length=160, win_length=512, n_mels=64, fmin=50, fmax=8000),
    32000: dict(n_fft=1024, hop_length=320, win_length=1024, n_mels=64, fmin=50, fmax=14000),
}
"""audioldm_eval's ``TacotronSTFT`` settings per evaluation rate (``EvaluationHelper.__init__``)."""


@lru_cache(maxsize=4)
def fourier_basis(n_fft: int, win_length: int) -> "torch.Tensor":
    """``TacotronSTFT``'s forward basis: the real then imaginary DFT rows up to n_fft/2, times the periodic
    Hann window centred in ``n_fft``; float32, shape (n_fft + 2, 1, n_fft)."""
    import torch

    dft = np.fft.fft(np.eye(n_fft))[:n_fft // 2 + 1]
    window = centred_hann(win_length, n_fft).astype(np.float32)
    return torch.from_numpy(np.vstack([dft.real, dft.imag]).astype(np.float32) * window)[:, None, :]


def paired_mel(wave: np.ndarray, *, sample_rate: int, n_fft: int, hop_length: int, win_length: int, n_mels: int,
               fmin: float, fmax: float, clip_val: float = 1e-5) -> np.ndarray:
    """The normalised mel spectrogram audioldm_eval's PSNR and SSIM compare.

    ``TacotronSTFT.mel_spectrogram`` as ``MelPairedDataset`` calls it: waveform clipped to [-1, 1],
    reflect pad of n_fft/2, STFT as a float32 convolution with the windowed Fourier basis (torch's conv1d, the
    original's own op: near-silent bins are its rounding, which an FFT misses by up to 8e-5 after
    normalisation), magnitude, slaney mel, ``log10(max(x, 1e-5))``, then ``x * 20 - 20``, ``(x + 100) / 100``,
    clipped to [0, 1]; the steps after the convolution in float64.

    Returns
    -------
    np.ndarray, shape (n_mels, 1 + n // hop_length), float32, values in [0, 1]
    """
    padded = np.pad(np.clip(wave, -1.0, 1.0).astype(np.float32), n_fft // 2, mode="reflect")
    spec = conv1d(padded, fourier_basis(n_fft, win_length), stride=hop_length)
    real, imag = spec[:n_fft // 2 + 1], spec[n_fft // 2 + 1:]
    magnitude = np.sqrt(real * real + imag * imag)
    return normalised_mel(magnitude, sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                          clip_val=clip_val)


def normalised_mel(magnitude: np.ndarray, *, sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float,
                   clip_val: float = 1e-5) -> np.ndarray:
    """``paired_mel``'s steps after the STFT, in float64: slaney mel of the magnitudes (n_fft/2 + 1, frames),
    ``log10(max(x, clip_val))``, ``x * 20 - 20``, ``(x + 100) / 100``, clipped to [0, 1]; returned as float32."""
    mel = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax) @ magnitude.astype(np.float64)
    db = np.log10(np.maximum(mel, clip_val)) * 20.0 - 20.0
    return np.clip((db + 100.0) / 100.0, 0.0, 1.0).astype(np.float32)


def window_starts(length: int, size: int) -> list[int]:
    """Where the windows of a clip longer than ``size`` start: consecutive from the start, plus one ending at the
    clip's end when they leave a remainder, so every window has the same length (MERT chunks, CLAP windows)."""
    starts = list(range(0, length - size + 1, size))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def stft_bytes(n: int, n_fft: int, hop_length: int) -> float:
    """Peak bytes of ``power_spectrogram``/``log_mel`` on ``n`` samples: the windowed frames (float64), the
    complex128 spectrum and its copy, the power and mel arrays (float64)."""
    frames = 1 + (n + n_fft) // hop_length
    bins = n_fft // 2 + 1
    return frames * (8.0 * n_fft + 16.0 * bins * 2 + 8.0 * bins * 2) + 8.0 * (n + n_fft)


def log_mel_bytes(n: int, *, n_fft: int, hop_length: int, **_: Any) -> float:
    """``log_mel``'s peak bytes for ``n`` samples (``stft_bytes``)."""
    return stft_bytes(n, n_fft, hop_length)
