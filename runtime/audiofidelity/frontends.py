"""Model frontends in NumPy: what turns a conditioned waveform into a network's input.

Every artifact manifest has a ``frontend`` section ``{"kind": ..., **parameters}``; ``apply_frontend``
looks the kind up in ``FRONTENDS`` and calls it with those parameters, so no code branches on
a model or sample rate.

A frontend returns one clip's model input with a leading *items* axis: one item for whole-clip
models, or several (VGGish's 0.96 s examples) that the runner batches like clips.

- ``log_mel``: PANNs CNN14's torchlibrosa ``Spectrogram`` + ``LogmelFilterBank`` (hann window,
  centred reflect-padded STFT, power spectrogram, librosa slaney mel, ``10*log10(max(x, amin))``).
- ``vggish_examples``: torchvggish's ``waveform_to_examples`` (periodic Hann, HTK-style mel,
  ``log(mel + 0.01)``, non-overlapping 96-frame examples, remainder dropped).
- ``mert_waveform``: ``Wav2Vec2FeatureExtractor``'s zero-mean unit-variance normalisation (MERT).
- ``waveform_segments``: the waveform itself, whole or in consecutive segments (EnCodec).
- ``clap_log_mel``: LAION-CLAP's int16 round trip, repeat-padding to 10-s windows, and HTS-AT's log-mel.
- ``sc09_mel``: the SC09 benchmark's 1-s cut/pad and 32x32 mel in dB (librosa 0.8 semantics).

``paired_mel`` is the model-free mel that PSNR and SSIM compare (audioldm_eval's ``TacotronSTFT``),
with its parameters per evaluation rate in ``PAIRED_MEL``; its STFT is torch's float32 conv1d, as in
the original, because the metric compares near-silent bins that only that op's rounding reproduces
(``float32_conv``: on one thread, so the bits do not depend on the core count).
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .errors import ManifestError
from .float32_conv import conv1d

if TYPE_CHECKING:
    import torch


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
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_mels + 2), htk)
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
         center: bool = True, pad_mode: str = "constant") -> np.ndarray:
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
                      center: bool, pad_mode: str, power: float) -> np.ndarray:
    """|STFT|**power of a mono float waveform, shape (n_fft // 2 + 1, frames), float64.

    ``pad_mode`` is passed explicitly: librosa >= 0.10 defaults to zero padding, torchlibrosa
    reflects (the first and last frames differ by up to 12 dB otherwise).
    """
    spec = stft(wave.astype(np.float64), n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                center=center, pad_mode=pad_mode)
    return np.abs(spec) ** power


def log_mel(wave: np.ndarray, *, sample_rate: int, n_fft: int, hop_length: int, win_length: int,
            window: str = "hann", center: bool = True, pad_mode: str = "reflect", power: float = 2.0,
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


@lru_cache(maxsize=8)
def htk_mel_matrix(n_mels: int, n_bins: int, sample_rate: int, fmin: float, fmax: float) -> np.ndarray:
    """VGGish's mel weights (``mel_features.spectrogram_to_mel_matrix``), shape (n_bins, n_mels), float64.

    Triangles on the HTK mel scale 1127 ln(1 + f/700) between ``fmin`` and ``fmax``; the DC bin gets no weight.
    """
    def to_mel(hz):
        return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)

    bins_mel = to_mel(np.linspace(0.0, sample_rate / 2.0, n_bins))
    edges = np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    weights.setflags(write=False)
    return weights


def vggish_examples(wave: np.ndarray, *, sample_rate: int, window_length: int, hop_length: int, fft_length: int,
                    n_mels: int, fmin: float, fmax: float, log_offset: float, example_frames: int,
                    example_hop: int) -> np.ndarray:
    """VGGish input patches (torchvggish ``waveform_to_examples`` on audio already at ``sample_rate``).

    Returns
    -------
    np.ndarray, shape (examples, 1, example_frames, n_mels), float32
        ``examples = 1 + (frames - example_frames) // example_hop`` (0 for audio shorter than one example).

    References: tensorflow/models ``research/audioset/vggish/mel_features.py``.
    """
    wave = np.asarray(wave)
    n_frames = 1 + (len(wave) - window_length) // hop_length
    if n_frames < example_frames:
        return np.zeros((0, 1, example_frames, n_mels), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(wave, window_length)[::hop_length][:n_frames]
    window = 0.5 - 0.5 * np.cos(2 * np.pi / window_length * np.arange(window_length))  # periodic Hann
    spectrum = np.abs(np.fft.rfft(frames * window, fft_length))
    log_mel = np.log(spectrum @ htk_mel_matrix(n_mels, spectrum.shape[1], sample_rate, fmin, fmax) + log_offset)
    n_examples = 1 + (len(log_mel) - example_frames) // example_hop
    examples = np.lib.stride_tricks.sliding_window_view(log_mel, example_frames, axis=0)[::example_hop][:n_examples]
    return np.ascontiguousarray(examples.transpose(0, 2, 1)[:, None], dtype=np.float32)


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


def mert_waveform(wave: np.ndarray, *, sample_rate: int, do_normalize: bool = True, padding_value: float = 0.0,
                  variance_epsilon: float = 1e-7, chunk_samples: int | None = None) -> np.ndarray:
    """MERT's input: the waveform, zero-mean unit-variance when ``do_normalize`` (variance + 1e-7).

    As ``Wav2Vec2FeatureExtractor`` prepares one unpadded clip (``padding_value`` only matters for
    padded batches, which audiofidelity never builds). Returns shape (1, n) float32: one item.
    With ``chunk_samples`` (``--mert-chunk``, not audioldm_eval-compatible) a longer clip becomes
    windows of that length, each normalised on its own: consecutive windows from the start and one
    ending at the clip's end, so all have one length and batch together; shape (windows, chunk_samples).
    """
    x = np.asarray(wave, dtype=np.float32)
    rows = [x]
    if chunk_samples is not None and len(x) > chunk_samples:
        rows = [x[s:s + chunk_samples] for s in window_starts(len(x), chunk_samples)]
    if do_normalize:  # float32, one row at a time, as Wav2Vec2FeatureExtractor: the same bits
        rows = [(r - r.mean()) / np.sqrt(r.var() + variance_epsilon) for r in rows]
    return np.stack(rows).astype(np.float32, copy=False)


def waveform_segments(wave: np.ndarray, *, sample_rate: int, channels: int,
                      segment_samples: int | None = None) -> np.ndarray | list[np.ndarray]:
    """A waveform model's input (EnCodec): the conditioned clip as (channels, samples) items.

    ``wave``: (n,) mono or (channels, n). The whole clip is one item; with ``segment_samples`` (fadtk's feeding
    of the 48 kHz model, one second each) consecutive segments from the start, the last one shorter: a list,
    as the items differ in length. ``sample_rate`` is the rate the audio was conditioned at (recorded only).
    """
    x = np.ascontiguousarray(np.asarray(wave, dtype=np.float32).reshape(channels, -1))
    if segment_samples is None or x.shape[1] <= segment_samples:
        return x[None]
    return [x[:, start:start + segment_samples] for start in range(0, x.shape[1], segment_samples)]


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


FRONTENDS: dict[str, Callable[..., np.ndarray | list[np.ndarray]]] = {
    "log_mel": log_mel,
    "vggish_examples": vggish_examples,
    "mert_waveform": mert_waveform,
    "waveform_segments": waveform_segments,
    "clap_log_mel": clap_log_mel,
    "sc09_mel": sc09_mel,
}
"""Frontend kinds a manifest may name, each a function ``(wave, **parameters) -> model input``."""


def stft_bytes(n: int, n_fft: int, hop_length: int) -> float:
    """Peak bytes of ``power_spectrogram``/``log_mel`` on ``n`` samples: the windowed frames (float64), the
    complex128 spectrum and its copy, the power and mel arrays (float64)."""
    frames = 1 + (n + n_fft) // hop_length
    bins = n_fft // 2 + 1
    return frames * (8.0 * n_fft + 16.0 * bins * 2 + 8.0 * bins * 2) + 8.0 * (n + n_fft)


def _log_mel_bytes(n: int, *, n_fft: int, hop_length: int, **_: Any) -> float:
    return stft_bytes(n, n_fft, hop_length)


def _vggish_bytes(n: int, *, window_length: int, hop_length: int, fft_length: int, **_: Any) -> float:
    frames = 1 + max(n - window_length, 0) // hop_length
    return frames * (8.0 * window_length + 8.0 * fft_length + 16.0 * (fft_length // 2 + 1) * 2) + 8.0 * n


def _clap_bytes(n: int, *, window_samples: int, n_fft: int, hop_length: int, **_: Any) -> float:
    windows = 1 + -(-n // window_samples)
    one = stft_bytes(window_samples, n_fft, hop_length)
    return 3.0 * 4 * max(n, window_samples) + one + 2.0 * windows * one / 8


def _sc09_bytes(n: int, *, samples: int, n_fft: int, hop_length: int, **_: Any) -> float:
    return 4.0 * n + stft_bytes(samples, n_fft, hop_length)


def _waveform_bytes(n: int, *, channels: int = 1, **_: Any) -> float:
    return 4.0 * 4 * channels * n


FRONTEND_BYTES: dict[str, Callable[..., float]] = {
    "log_mel": _log_mel_bytes,
    "vggish_examples": _vggish_bytes,
    "mert_waveform": _waveform_bytes,
    "waveform_segments": _waveform_bytes,
    "clap_log_mel": _clap_bytes,
    "sc09_mel": _sc09_bytes,
}
"""Each frontend's peak bytes for ``n`` samples at its rate, ``(n, **parameters) -> bytes``, known before it runs
(checked against measured peaks in tests/test_hostile_input.py)."""


def frontend_bytes(n: int, spec: dict[str, Any]) -> float:
    """Peak bytes the frontend a manifest describes allocates for ``n`` samples (``FRONTEND_BYTES``)."""
    params = dict(spec)
    kind = params.pop("kind", None)
    if kind not in FRONTEND_BYTES:
        raise ManifestError(f"unknown frontend kind {kind!r}; this version supports {', '.join(FRONTENDS)}")
    return FRONTEND_BYTES[kind](n, **params)


def apply_frontend(wave: np.ndarray, spec: dict[str, Any]) -> np.ndarray | list[np.ndarray]:
    """Run the frontend a manifest's ``frontend`` section describes on a conditioned waveform."""
    params = dict(spec)
    kind = params.pop("kind", None)
    if kind not in FRONTENDS:
        raise ManifestError(f"unknown frontend kind {kind!r}; this version supports {', '.join(FRONTENDS)}")
    return FRONTENDS[kind](wave, **params)
