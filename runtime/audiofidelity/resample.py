"""Sample-rate conversion: a NumPy port of ``torchaudio.functional.resample`` and a resampy option.

audioldm_eval resamples every file with torchaudio's defaults (Hann-windowed sinc,
``lowpass_filter_width=6``, ``rolloff=0.99``). ``resample(..., method="torchaudio")`` computes the
same polyphase filter and applies it as one strided matrix product, so results equal
torchaudio's to float32 rounding without importing torchaudio.

References: torchaudio ``functional/functional.py`` (``_get_sinc_resample_kernel``,
``_apply_sinc_resample_kernel``); resampy (Kaiser-windowed sinc, ``kaiser_best``).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

RESAMPLERS = ("torchaudio", "resampy")
"""Names accepted by ``resample(method=...)``; ``torchaudio`` is audioldm_eval's behaviour."""

LOWPASS_FILTER_WIDTH = 6
ROLLOFF = 0.99


@lru_cache(maxsize=64)
def sinc_kernel(orig_freq: int, new_freq: int, *, lowpass_filter_width: int = LOWPASS_FILTER_WIDTH,
                rolloff: float = ROLLOFF) -> tuple[np.ndarray, int]:
    """Polyphase Hann-windowed sinc filter for ``orig_freq -> new_freq`` (both already divided by their gcd).

    Computed step by step in float32, as torchaudio does for a float32 waveform: a float64
    kernel differs from it by up to ~1e-5 in the output, the whole parity budget.

    Returns
    -------
    kernel : np.ndarray, shape (new_freq, 2 * width + orig_freq), float32
        Row ``j`` produces output phase ``j`` of each block of ``orig_freq`` input samples.
    width : int
        Zero padding (in input samples) torchaudio adds before the signal.
    """
    f32 = np.float32
    base_freq = min(orig_freq, new_freq) * rolloff
    width = math.ceil(lowpass_filter_width * orig_freq / base_freq)
    idx = np.arange(-width, width + orig_freq, dtype=f32)[None, :] / f32(orig_freq)
    t = np.arange(0, -new_freq, -1, dtype=f32)[:, None] / f32(new_freq) + idx
    t = np.clip(t * f32(base_freq), f32(-lowpass_filter_width), f32(lowpass_filter_width))
    window = np.cos(t * f32(math.pi) / f32(lowpass_filter_width) / f32(2)) ** 2
    t = t * f32(math.pi)
    with np.errstate(invalid="ignore", divide="ignore"):
        sinc = np.where(t == 0, f32(1.0), np.sin(t) / t)
    kernel = sinc * (window * f32(base_freq / orig_freq))
    kernel.setflags(write=False)
    return kernel, width


def _resample_sinc(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    gcd = math.gcd(orig_sr, target_sr)
    orig, new = orig_sr // gcd, target_sr // gcd
    kernel, width = sinc_kernel(orig, new)
    padded = np.pad(x.astype(np.float64), (width, width + orig))
    frames = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1])[::orig]
    out = (frames @ kernel.T).reshape(-1)
    target_length = math.ceil(new * len(x) / orig)
    return out[:target_length].astype(np.float32)


def resample(x: np.ndarray, orig_sr: int, target_sr: int, *, method: str = "torchaudio") -> np.ndarray:
    """Resample a mono signal.

    Parameters
    ----------
    x : np.ndarray, shape (n,), float32
    orig_sr, target_sr : int
        Sample rates in Hz.
    method : {"torchaudio", "resampy"}
        ``torchaudio``: equal to ``torchaudio.functional.resample`` with its defaults (output length
        ``ceil(n * target_sr / orig_sr)``). ``resampy``: ``resampy.resample(..., filter="kaiser_best")``,
        torchvggish's choice (slower, a different filter, so features differ slightly).

    Returns
    -------
    np.ndarray, shape (m,), float32
        ``x`` itself when the rates are equal.
    """
    if method not in RESAMPLERS:
        raise ValueError(f"unknown resampler {method!r}; choose one of {', '.join(RESAMPLERS)}")
    if orig_sr == target_sr:
        return x
    if method == "resampy":
        import resampy

        return resampy.resample(x.astype(np.float64), orig_sr, target_sr, filter="kaiser_best").astype(np.float32)
    return _resample_sinc(x, int(orig_sr), int(target_sr))
