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

RESAMPLERS = ("torchaudio", "resampy", "resampy_0.2", "soxr_hq", "soxr", "julius")
"""Names accepted by ``resample(method=...)``; ``torchaudio`` is audioldm_eval's behaviour, ``soxr_hq``
``librosa.load``'s (stable-audio-metrics' PaSST), ``soxr`` a direct ``soxr.resample`` call's (its OpenL3),
``resampy_0.2`` resampy 0.2's ``kaiser_best`` (openl3 pins ``resampy<0.3``), ``julius`` audiocraft's."""

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
    if method == "resampy_0.2":  # the tables, the input, the output times (and their running sum), one block's work
        return 8.0 * 4 * RESAMPY02_TABLE + 4.0 * n + 28.0 * out + 8.0 * 16 * RESAMPY02_BLOCK
    if method in ("soxr_hq", "soxr"):  # soxr's float32 output, librosa's length fix and dtype copies; small filter
        return 4.0 * (n + 3 * out) + 4_000_000
    gcd = math.gcd(orig_sr, target_sr)
    if method == "julius":  # built row by row in float32: the kernel, the stacked copy, one row's temporaries
        rows, taps = _kernel_shape(orig_sr // gcd, target_sr // gcd, JULIUS_ZEROS, JULIUS_ROLLOFF)
        return 2 * 4.0 * rows * taps + 8 * 4.0 * taps + 4.0 * (n + 2 * taps) * 2 + 4.0 * (out + rows) * 3
    rows, taps = _kernel_shape(orig_sr // gcd, target_sr // gcd)
    return 6.0 * 8 * rows * taps + 4.0 * (n + 2 * taps) * 2 + 4.0 * (out + rows) * 3


def resampled_length(n: int, orig_sr: int, target_sr: int, *, method: str = "torchaudio") -> int:
    """How many samples ``resample`` returns for ``n`` (``n`` when the rates agree): ``floor`` for julius (its
    float32 quotient) and resampy, ``ceil`` for torchaudio and soxr_hq (librosa fixes the length to it), the nearest
    integer for soxr (``floor(n / (orig / target) + 0.5)`` in float64, as python-soxr computes it)."""
    if orig_sr == target_sr:
        return n
    gcd = math.gcd(orig_sr, target_sr)
    old, new = orig_sr // gcd, target_sr // gcd
    if method == "soxr":  # python-soxr's output length, its float64 arithmetic: a half rounds either way
        return math.floor(n / (orig_sr / target_sr) + 0.5)
    if method == "julius":
        return int(np.floor(np.float32(new * n / old)))
    if method == "resampy":
        return int(n * target_sr / orig_sr)
    if method == "resampy_0.2":
        return int(n * (float(target_sr) / orig_sr))
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
    method : {"torchaudio", "resampy", "soxr_hq", "soxr", "julius"}
        ``torchaudio``: equal to ``torchaudio.functional.resample`` with its defaults (output length
        ``ceil(n * target_sr / orig_sr)``). ``resampy``: ``resampy.resample(..., filter="kaiser_best")``,
        torchvggish's choice (slower, a different filter, so features differ slightly). ``soxr_hq``:
        ``librosa.resample(res_type="soxr_hq")``, what ``librosa.load(sr=...)`` does (librosa itself runs it).
        ``resampy_0.2``: resampy 0.2.2's ``resample(..., filter="kaiser_best")`` on float32 audio (openl3 and
        stable-audio-metrics pin ``resampy<0.3``; 0.3 redesigned ``kaiser_best``): ``_resample_resampy02``.
        ``soxr``: ``soxr.resample(x, orig_sr, target_sr)`` called directly (HQ; stable-audio-metrics' OpenL3): the
        same samples without librosa's length fix (``resampled_length``), through librosa (soxr is its dependency,
        not this package's).
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
    if method in ("soxr_hq", "soxr"):
        import librosa

        y = librosa.resample(np.asarray(x, dtype=np.float32), orig_sr=orig_sr, target_sr=target_sr,
                             res_type="soxr_hq")
        return y if method == "soxr_hq" else y[..., :resampled_length(x.shape[-1], orig_sr, target_sr, method=method)]
    if method == "resampy_0.2":
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 2:  # a stereo stage's channels, each on its own
            return np.stack([_resample_resampy02(channel, int(orig_sr), int(target_sr)) for channel in x])
        return _resample_resampy02(x, int(orig_sr), int(target_sr))
    if method == "julius":
        return _resample_julius(x, int(orig_sr), int(target_sr))
    return _resample_sinc(x, int(orig_sr), int(target_sr), api)


RESAMPY02_ZEROS, RESAMPY02_PRECISION = 64, 512
RESAMPY02_ROLLOFF, RESAMPY02_BETA = 0.9475937167399596, 14.769656459379492
RESAMPY02_TABLE = RESAMPY02_ZEROS * RESAMPY02_PRECISION + 1
RESAMPY02_BLOCK = 1 << 15
"""Output samples computed together (bounds the (block,)-sized float64 temporaries)."""


@lru_cache(maxsize=1)
def resampy02_filter() -> np.ndarray:
    """resampy 0.2's ``kaiser_best`` table (``data/kaiser_best.npz``: the right wing of a Kaiser-windowed sinc, 64 zero
    crossings, 512 samples each), regenerated as its ``sinc_window`` made it: within 1 ulp of the stored table
    (99.85 % of the values identical), read-only, float64, shape (32769,)."""
    from scipy.signal import windows

    n = RESAMPY02_ZEROS * RESAMPY02_PRECISION
    sinc = RESAMPY02_ROLLOFF * np.sinc(RESAMPY02_ROLLOFF * np.linspace(0, RESAMPY02_ZEROS, num=n + 1, endpoint=True))
    table = windows.kaiser(2 * n + 1, RESAMPY02_BETA)[n:] * sinc
    table.setflags(write=False)
    return table


def _resample_resampy02(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """resampy 0.2.2's ``resample_f`` on a float32 signal, in NumPy, bit for bit: output times accumulated as its
    ``time_register += 1 / ratio`` (a float64 running sum), the table scaled by the ratio when downsampling, each
    output sample a float32 sum its loop adds to in order (left wing, then right), each weighted term formed in
    float64 (``interp_win[...] + eta * interp_delta[...]`` times the sample). Vectorised over blocks of output times.

    See Also: resampy 0.2.2 ``core.resample``, ``interpn.resample_f``."""
    ratio = float(target_sr) / orig_sr
    n_out = int(len(x) * ratio)
    win = resampy02_filter() * ratio if ratio < 1 else resampy02_filter()
    delta = np.zeros_like(win)
    delta[:-1] = np.diff(win)
    scale = min(1.0, ratio)
    step = int(scale * RESAMPY02_PRECISION)
    times = np.concatenate([[0.0], np.cumsum(np.full(max(n_out - 1, 0), 1.0 / ratio))])
    y = np.zeros(n_out, dtype=np.float32)
    for start in range(0, n_out, RESAMPY02_BLOCK):
        t = times[start:start + RESAMPY02_BLOCK]
        n = t.astype(np.int64)
        frac = scale * (t - n)
        acc = np.zeros(len(t), dtype=np.float32)
        for wing, sign in ((frac, -1), (scale - frac, 1)):
            index = wing * RESAMPY02_PRECISION
            offset = index.astype(np.int64)
            eta = index - offset
            taps = (len(win) - offset) // step
            count = np.minimum(n + 1, taps) if sign < 0 else np.minimum(len(x) - n - 1, taps)
            for i in range(int(count.max(initial=0))):
                live = i < count
                k = offset[live] + i * step
                sample = x[n[live] - i] if sign < 0 else x[n[live] + i + 1]
                acc[live] = (acc[live] + (win[k] + eta[live] * delta[k]) * sample).astype(np.float32)
        y[start:start + len(t)] = acc
    return y
