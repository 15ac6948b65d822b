"""Paired signal metrics: PSNR and SSIM of mel spectrograms, log-spectral distance of waveforms.

Defined as audioldm_eval computes them (``calculate_psnr_ssim``, ``calculate_lsd``), with NumPy/SciPy
ports of scikit-image's ``peak_signal_noise_ratio`` / ``structural_similarity`` and ssr_eval's
``AudioMetrics`` LSD, so neither scikit-image nor ssr_eval is needed.

References: Wang et al., "Image quality assessment: from error visibility to structural similarity",
IEEE TIP 2004; scikit-image ``metrics/simple_metrics.py``, ``metrics/_structural_similarity.py``;
ssr_eval ``metrics.py`` (Liu et al., NVSR 2022).
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter
from ..errors import MetricUnavailableError

KEY_PSNR = "psnr"
KEY_SSIM = "ssim"
KEY_LSD = "lsd"
HIFIGAN_OFFSET = 160 * 7
"""Samples dropped from the start of each generated clip before LSD (audioldm_eval: HiFi-GAN's delay)."""
LSD_EPS = 1e-12


def psnr(image_true: np.ndarray, image_test: np.ndarray, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB, as ``skimage.metrics.peak_signal_noise_ratio``.

    ``data_range`` defaults to scikit-image's inference for float images: 1 when ``image_true`` is
    non-negative, else 2. Identical images give ``inf``.
    """
    a = np.asarray(image_true, dtype=np.float64)
    b = np.asarray(image_test, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if data_range is None:
        data_range = 1.0 if a.min() >= 0 else 2.0
    mse = np.mean((a - b) ** 2)
    with np.errstate(divide="ignore"):
        return float(10.0 * np.log10(data_range ** 2 / mse))


def ssim(image1: np.ndarray, image2: np.ndarray, *, data_range: float, win_size: int = 7, k1: float = 0.01,
         k2: float = 0.03) -> float:
    """Mean structural similarity, as ``skimage.metrics.structural_similarity`` with its defaults.

    Uniform ``win_size`` window (scipy ``uniform_filter``, reflect mode), sample covariance
    (N / (N - 1)), constants (k1 R)^2 and (k2 R)^2, mean over the image with a border of
    ``(win_size - 1) // 2`` cropped. Computed in float64.

    Raises
    ------
    ValueError
        If the shapes differ, an image is smaller than the window, or ``data_range`` is not positive.
    """
    x = np.asarray(image1, dtype=np.float64)
    y = np.asarray(image2, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    if min(x.shape) < win_size:
        raise MetricUnavailableError(f"SSIM needs images of at least {win_size}x{win_size}, got {x.shape}")
    if not data_range > 0:
        raise MetricUnavailableError(f"data_range must be positive, got {data_range}")
    n = win_size ** x.ndim
    cov_norm = n / (n - 1)
    mean = lambda im: uniform_filter(im, size=win_size)  # noqa: E731
    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    pad = (win_size - 1) // 2
    return float(s[tuple(slice(pad, d - pad) for d in s.shape)].mean())


def lsd_preprocess(generated: np.ndarray, reference: np.ndarray, *,
                   offset: int = HIFIGAN_OFFSET) -> tuple[np.ndarray, np.ndarray]:
    """audioldm_eval's ``calculate_lsd`` conditioning of a pair before LSD (float32, as the original).

    Drop the first ``offset`` samples of the generated clip, remove each clip's mean, scale each to
    peak 1, trim both to the shorter length.

    Raises
    ------
    ValueError
        If a clip is silent (peak 0) after these steps, or nothing is left after the offset.
    """
    out = []
    for name, clip in (("generated", np.asarray(generated, dtype=np.float32)[offset:]),
                       ("reference", np.asarray(reference, dtype=np.float32))):
        if clip.size == 0:
            raise MetricUnavailableError(f"{name} clip has no samples left after the {offset}-sample offset")
        clip = clip - np.mean(clip)
        peak = np.max(np.abs(clip))
        if peak == 0:
            raise MetricUnavailableError(f"{name} clip is silent after removing its mean; LSD is undefined")
        out.append(clip / peak)
    n = min(len(out[0]), len(out[1]))
    return out[0][:n], out[1][:n]


def log_spectral_distance(estimate: np.ndarray, target: np.ndarray, *, sample_rate: int) -> float:
    """ssr_eval's ``AudioMetrics(sample_rate).lsd`` of two equal-length waveforms.

    Magnitude STFT with librosa's defaults (hann, centred, zero padding) at
    ``n_fft = int(2048 / (44100 / sample_rate))``, ``hop = int(sample_rate / 100)``; then the mean over
    frames of sqrt(mean over bins of log10(T^2 / (E + eps)^2 + eps)^2), eps = 1e-12.

    Computed in float32 like the original (complex64 STFT of float32 audio, float32 torch ops): in
    near-empty bins the log ratio is set by rounding, so float64 would move LSD by up to 4e-4.
    """
    from ..frontends import stft

    n_fft, hop = int(2048 / (44100 / sample_rate)), int(sample_rate / 100)
    spectra = [np.abs(stft(np.asarray(x, dtype=np.float32), n_fft=n_fft, hop_length=hop, pad_mode="constant"))
               for x in (estimate, target)]
    est, tgt = spectra
    eps = np.float32(LSD_EPS)
    per_bin = np.log10(tgt ** 2 / (est + eps) ** 2 + eps) ** 2
    return float(np.mean(np.sqrt(np.mean(per_bin, axis=0)), dtype=np.float64))
