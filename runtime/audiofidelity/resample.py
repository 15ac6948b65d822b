"""Sample-rate conversion: ``torchaudio.functional.resample`` without torchaudio, julius's ``resample_frac``
without julius, and the resampy and soxr options.

audioldm_eval resamples every file with torchaudio's defaults (Hann-windowed sinc,
``lowpass_filter_width=6``, ``rolloff=0.99``), which builds its polyphase kernel and convolves in float32
torch ops. ``resample(..., method="torchaudio")`` runs those same torch ops (torch is a runtime dependency;
torchaudio is not), so its output is the original's bit for bit (tests/test_resample.py). A NumPy float64
version of the same filter lands up to 3.6e-7 away, and that rounding noise is all an upsampled clip has
above its source's Nyquist frequency: enough to move its LSD by 1%.

References: torchaudio ``functional/functional.py`` (``_get_sinc_resample_kernel``,
``_apply_sinc_resample_kernel``); julius ``resample.py`` (``ResampleFrac``, audiocraft's ``convert_audio``);
resampy (Kaiser-windowed sinc, ``kaiser_best``).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from .float32_conv import conv1d

if TYPE_CHECKING:
    import torch

RESAMPLERS = ("torchaudio", "resampy", "soxr_hq", "julius")
"""Names accepted by ``resample(method=...)``; ``torchaudio`` is audioldm_eval's behaviour, ``soxr_hq``
``librosa.load``'s (stable-audio-metrics), ``julius`` audiocraft's."""

LOWPASS_FILTER_WIDTH = 6
ROLLOFF = 0.99
JULIUS_ZEROS, JULIUS_ROLLOFF = 24, 0.945
"""``julius.resample_frac``'s defaults, which audiocraft's ``convert_audio`` keeps."""


TORCHAUDIO_APIS = ("functional", "transforms")
"""torchaudio's two ways in: ``functional.resample`` builds the kernel in the waveform's dtype (float32 here);
``transforms.Resample`` builds it in float64 and stores it as float32 (audioldm_eval's MERT 24 kHz hop)."""


KERNEL_CACHE_BYTES = 1 << 24
"""Kernels up to this size are kept for reuse (every common rate pair's is under 1 MB); a rare coprime pair's
kernel (44101 -> 16000 Hz: 2.8 GB) is built for its clip and dropped."""


def _kernel_shape(orig_freq: int, new_freq: int, lowpass_filter_width: int = LOWPASS_FILTER_WIDTH,
                  rolloff: float = ROLLOFF) -> tuple[int, int]:
    """(rows, taps) of the polyphase kernel for ``orig_freq -> new_freq`` (already divided by their gcd), and so
    its size, known before it is built (julius's with its ``zeros`` and ``rolloff``)."""
    width = math.ceil(lowpass_filter_width * orig_freq / (min(orig_freq, new_freq) * rolloff))
    return new_freq, 2 * width + orig_freq


def resample_bytes(n: int, orig_sr: int, target_sr: int, *, method: str = "torchaudio") -> float:
    """Peak bytes ``resample`` allocates for ``n`` samples, estimated before anything is allocated (0 when the
    rates agree): the kernel and the temporaries that build it (up to six float64 arrays of its size), the
    padded input, the convolution's output and its reordered copy. Checked against measured peaks in
    tests/test_hostile_input.py."""
    if orig_sr == target_sr:
        return 0.0
    out = math.ceil(n * target_sr / orig_sr)
    if method == "resampy":
        return 8.0 * (3 * n + 3 * out)
    if method == "soxr_hq":  # soxr's float32 output, librosa's length fix and dtype copies; its filter is small
        return 4.0 * (n + 3 * out) + 4_000_000
    gcd = math.gcd(orig_sr, target_sr)
    if method == "julius":  # built row by row in float32: the kernel, the stacked copy, one row's temporaries
        rows, taps = _kernel_shape(orig_sr // gcd, target_sr // gcd, JULIUS_ZEROS, JULIUS_ROLLOFF)
        return 2 * 4.0 * rows * taps + 8 * 4.0 * taps + 4.0 * (n + 2 * taps) * 2 + 4.0 * (out + rows) * 3
    rows, taps = _kernel_shape(orig_sr // gcd, target_sr // gcd)
    return 6.0 * 8 * rows * taps + 4.0 * (n + 2 * taps) * 2 + 4.0 * (out + rows) * 3


def resampled_length(n: int, orig_sr: int, target_sr: int, *, method: str = "torchaudio") -> int:
    """How many samples ``resample`` returns for ``n`` (``n`` when the rates agree): ``floor`` for julius (its
    float32 quotient) and resampy, ``ceil`` for torchaudio and soxr_hq (librosa fixes the length to it)."""
    if orig_sr == target_sr:
        return n
    gcd = math.gcd(orig_sr, target_sr)
    old, new = orig_sr // gcd, target_sr // gcd
    if method == "julius":
        return int(np.floor(np.float32(new * n / old)))
    if method == "resampy":
        return int(n * target_sr / orig_sr)
    return math.ceil(new * n / old)


def sinc_kernel(orig_freq: int, new_freq: int, *, api: str = "functional") -> tuple["torch.Tensor", int]:
    """``_sinc_kernel``, kept for reuse when it is small (``KERNEL_CACHE_BYTES``)."""
    rows, taps = _kernel_shape(orig_freq, new_freq)
    if 4 * rows * taps <= KERNEL_CACHE_BYTES:
        return _cached_sinc_kernel(orig_freq, new_freq, api=api)
    return _sinc_kernel(orig_freq, new_freq, api=api)


def _sinc_kernel(orig_freq: int, new_freq: int, *, api: str = "functional",
                 lowpass_filter_width: int = LOWPASS_FILTER_WIDTH,
                 rolloff: float = ROLLOFF) -> tuple["torch.Tensor", int]:
    """Polyphase Hann-windowed sinc filter for ``orig_freq -> new_freq`` (both already divided by their gcd).

    Torchaudio's statements in torch, in the precision ``api`` builds them in: torch's sin and cos round
    differently from NumPy's, and a kernel one ulp off moves the output by up to ~1e-7.

    Returns
    -------
    kernel : torch.Tensor, shape (new_freq, 1, 2 * width + orig_freq), float32
        Row ``j`` produces output phase ``j`` of each block of ``orig_freq`` input samples.
    width : int
        Zero padding (in input samples) torchaudio adds before the signal.
    """
    import torch

    if api not in TORCHAUDIO_APIS:
        raise ValueError(f"api must be one of {TORCHAUDIO_APIS}, got {api!r}")
    dtype = torch.float32 if api == "functional" else torch.float64
    base_freq = min(orig_freq, new_freq) * rolloff
    width = math.ceil(lowpass_filter_width * orig_freq / base_freq)
    idx = torch.arange(-width, width + orig_freq, dtype=dtype)[None, None] / orig_freq
    t = torch.arange(0, -new_freq, -1, dtype=torch.float32)[:, None, None] / new_freq + idx
    t = (t * base_freq).clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0, dtype=dtype), t.sin() / t) * (window * (base_freq / orig_freq))
    return kernel.to(torch.float32), width


_cached_sinc_kernel = lru_cache(maxsize=64)(_sinc_kernel)


def _julius_kernel(old_sr: int, new_sr: int) -> tuple["torch.Tensor", int]:
    """julius's ``ResampleFrac._init_kernels`` (``old_sr``, ``new_sr`` already divided by their gcd): one
    Hann-windowed sinc row per output phase, ``zeros`` zero crossings, cut-off ``rolloff`` of the lower rate, each
    row normalised to sum 1; its float32 torch statements, so the rows are its bits.

    Returns
    -------
    kernel : torch.Tensor, shape (new_sr, 1, 2 * width + old_sr), float32
    width : int
        The replicate padding julius adds before the signal (and ``width + old_sr`` after).
    """
    import torch

    sr = min(new_sr, old_sr) * JULIUS_ROLLOFF
    width = math.ceil(JULIUS_ZEROS * old_sr / sr)
    idx = torch.arange(-width, width + old_sr).float()
    rows = []
    for i in range(new_sr):
        t = ((-i / new_sr + idx / old_sr) * sr).clamp_(-JULIUS_ZEROS, JULIUS_ZEROS) * math.pi
        window = torch.cos(t / JULIUS_ZEROS / 2) ** 2
        kernel = torch.where(t == 0, torch.tensor(1.0), torch.sin(t) / t) * window  # julius.core.sinc
        rows.append(kernel / kernel.sum())
    return torch.stack(rows).view(new_sr, 1, -1), width


def julius_kernel(old_sr: int, new_sr: int) -> tuple["torch.Tensor", int]:
    """``_julius_kernel``, kept for reuse when it is small (``KERNEL_CACHE_BYTES``)."""
    rows, taps = _kernel_shape(old_sr, new_sr, JULIUS_ZEROS, JULIUS_ROLLOFF)
    if 4 * rows * taps <= KERNEL_CACHE_BYTES:
        return _cached_julius_kernel(old_sr, new_sr)
    return _julius_kernel(old_sr, new_sr)


_cached_julius_kernel = lru_cache(maxsize=16)(_julius_kernel)


def _resample_julius(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """``julius.resample_frac(x, orig_sr, target_sr)`` with its defaults: the edges padded by repeating the end
    samples, the polyphase float32 convolution, and ``floor(new * n / old)`` samples, that length computed as
    julius does (``torch.as_tensor`` of the quotient: a float32, which a length near an integer can round up)."""
    gcd = math.gcd(orig_sr, target_sr)
    old, new = orig_sr // gcd, target_sr // gcd
    kernel, width = julius_kernel(old, new)
    padded = np.pad(np.asarray(x, dtype=np.float32), (width, width + old), mode="edge")
    phases = conv1d(padded, kernel, stride=old)
    return phases.T.reshape(-1)[:resampled_length(len(x), orig_sr, target_sr, method="julius")]


def _resample_sinc(x: np.ndarray, orig_sr: int, target_sr: int, api: str) -> np.ndarray:
    gcd = math.gcd(orig_sr, target_sr)
    orig, new = orig_sr // gcd, target_sr // gcd
    kernel, width = sinc_kernel(orig, new, api=api)
    phases = conv1d(np.pad(np.asarray(x, dtype=np.float32), (width, width + orig)), kernel, stride=orig)
    return phases.T.reshape(-1)[:resampled_length(len(x), orig_sr, target_sr)]


def resample(x: np.ndarray, orig_sr: int, target_sr: int, *, method: str = "torchaudio",
             api: str = "functional") -> np.ndarray:
    """Resample a mono signal.

    Parameters
    ----------
    x : np.ndarray, shape (n,), float32
    orig_sr, target_sr : int
        Sample rates in Hz.
    method : {"torchaudio", "resampy", "soxr_hq", "julius"}
        ``torchaudio``: equal to ``torchaudio.functional.resample`` with its defaults (output length
        ``ceil(n * target_sr / orig_sr)``). ``resampy``: ``resampy.resample(..., filter="kaiser_best")``,
        torchvggish's choice (slower, a different filter, so features differ slightly). ``soxr_hq``:
        ``librosa.resample(res_type="soxr_hq")``, what ``librosa.load(sr=...)`` does (librosa itself runs it).
        ``julius``: equal to ``julius.resample_frac`` with its defaults (audiocraft; output length
        ``floor(n * target_sr / orig_sr)``).
    api : {"functional", "transforms"}
        Which torchaudio entry point ``torchaudio`` reproduces bit for bit (see ``TORCHAUDIO_APIS``).

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
    if method == "soxr_hq":
        import librosa

        return librosa.resample(np.asarray(x, dtype=np.float32), orig_sr=orig_sr, target_sr=target_sr,
                                res_type="soxr_hq")
    if method == "julius":
        return _resample_julius(x, int(orig_sr), int(target_sr))
    return _resample_sinc(x, int(orig_sr), int(target_sr), api)
