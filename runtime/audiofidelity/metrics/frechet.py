"""Fréchet distance between Gaussians fitted to two feature sets (FD with CNN14, FAD with VGGish).

FD = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)). The trace of the matrix square
root is computed from symmetric eigendecompositions: tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i) with
lambda_i the eigenvalues of S1^(1/2) S2 S1^(1/2), which is symmetric positive semi-definite. This is
stable for the rank-deficient covariances of small sets (N < D), where ``scipy.linalg.sqrtm`` of the
non-symmetric product is not, and does not depend on ``sqrtm(..., disp=)`` (gone in SciPy 1.18).

References: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule...", NeurIPS 2017;
Kilgour et al., "Fréchet Audio Distance", Interspeech 2019; audioldm_eval ``metrics/fid.py``.
"""
from __future__ import annotations

import numpy as np

from .gaussian import GaussianStats
from ..errors import MetricUnavailableError

KEY_FRECHET_DISTANCE = "frechet_distance"
KEY_FRECHET_AUDIO_DISTANCE = "frechet_audio_distance"
KEY_FRECHET_DISTANCE_LAYERS = "frechet_distance_mert_layers"


def _feature_matrix(features: np.ndarray) -> np.ndarray:
    """A float64 copy of ``features`` (callers may change it in place), checked to be (n >= 2, d)."""
    features = np.array(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise MetricUnavailableError(f"need a (n >= 2, d) feature matrix for a covariance, got shape {features.shape}")
    return features


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample covariance (ddof 1) of ``features``, shape (n, d) -> (d,), (d, d), float64
    (``GaussianStats``, the one implementation of the statistics)."""
    stats = GaussianStats.from_features(_feature_matrix(features))
    assert stats.mean is not None  # from_features of n >= 2 rows sets it
    return stats.mean, stats.cov


def _clipped_share(values: np.ndarray) -> float:
    """The mass of the negative eigenvalues (rounding of a PSD matrix) relative to the matrix's trace."""
    negative = -values[values < 0].sum()
    return float(negative / max(float(np.abs(values).sum()), 1e-300))


def _psd_sqrt(matrix: np.ndarray) -> tuple[np.ndarray, float]:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T, _clipped_share(values)


def trace_sqrt_product_checked(sigma1: np.ndarray, sigma2: np.ndarray) -> tuple[float, float]:
    """tr((sigma1 sigma2)^(1/2)) for symmetric positive semi-definite matrices, and the largest share of negative
    eigenvalue mass (relative to the trace) clipped to 0 on the way (sigma1's root, or sigma1^½ sigma2 sigma1^½)."""
    root1, clipped_root = _psd_sqrt(sigma1)
    inner = root1 @ sigma2 @ root1
    values = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(values, 0.0, None)).sum()), max(clipped_root, _clipped_share(values))


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((sigma1 sigma2)^(1/2)) for symmetric positive semi-definite matrices."""
    return trace_sqrt_product_checked(sigma1, sigma2)[0]


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); all inputs float64.

    Raises
    ------
    ValueError
        If the shapes disagree.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2))


def frechet_distance_gaussians(a: GaussianStats, b: GaussianStats) -> float:
    """Fréchet distance between the Gaussians of two sets of embedding rows (``GaussianStats``, e.g. streamed)."""
    if a.mean is None or b.mean is None:
        raise ValueError(f"a Fréchet distance needs statistics of at least 2 rows per side, got {a.count} and "
                         f"{b.count}")
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)


def frechet_distance_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (n, d) and (m, d) feature matrices.

    When a set has no more rows than columns its covariance is singular, and the square root
    turns eigenvalue rounding (~1e-15) into errors of ~1e-7 per null direction. Then the trace
    term is taken exactly from the centred features A, B instead: with S1 = A'A/(n-1) and
    S2 = B'B/(m-1), tr((S1 S2)^(1/2)) = ||A B'||_* / sqrt((n-1)(m-1)) (nuclear norm of an n x m
    matrix), which is also far cheaper for 2048-d embeddings of a few hundred clips.
    """
    x, y = _feature_matrix(features1), _feature_matrix(features2)
    n, m, d = len(x), len(y), x.shape[1]
    if y.shape[1] != d:
        raise ValueError(f"feature widths differ: {x.shape} vs {y.shape}")
    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)
    if min(n, m) > d:
        return frechet_distance(mu1, gaussian_statistics(x)[1], mu2, gaussian_statistics(y)[1])
    a, b = x, y  # no d x d covariance: the trace comes from the centred features
    a -= mu1  # in place: x and y are this function's own copies
    b -= mu2
    trace_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt((n - 1) * (m - 1))
    diff = mu1 - mu2
    return float(diff @ diff + (a * a).sum() / (n - 1) + (b * b).sum() / (m - 1) - 2.0 * trace_sqrt)


CLIP_REPORT = 1e-6
"""Negative eigenvalue mass (relative to the trace) above which the clipping to 0 is reported."""


def _checked(n: int, m: int, d: int, covariance: str, names: tuple[str, str], compute) -> tuple[float, dict]:
    """``compute() -> (value, clipped share, extra details)`` with the notes every FD carries, whatever the
    reference (rows or a statistics file's Gaussian): rows and dimensions, the singular-covariance warning,
    clipped eigenvalues above ``CLIP_REPORT``, and a negative total reported and returned as 0."""
    details: dict = {"covariance": covariance, "rows": [n, m], "dimensions": d}
    warnings = []
    if min(n, m) <= d:
        warnings.append(f"the {names[0] if n <= m else names[1]} set has {min(n, m)} rows for {d} dimensions: its "
                        f"covariance is singular and FD is biased upwards; compare only sets of equal size"
                        + ("; --covariance ledoit-wolf or oas estimates it better" if covariance == "mle" else ""))
    value, clipped, extra = compute()
    details.update(extra)
    if clipped > CLIP_REPORT:
        details["clipped_eigenvalues"] = clipped
        warnings.append(f"negative eigenvalues worth {clipped:.2g} of the trace were clipped to 0 (rounding of a "
                        f"near-singular covariance)")
    if value < 0:
        details["negative_total_clamped"] = value
        warnings.append(f"the total came out {value:.3g} (rounding: the sets' Gaussians coincide); reported as 0")
        value = 0.0
    if warnings:
        details["warnings"] = warnings
    return value, details


def frechet_distance_checked(features1: np.ndarray, features2: np.ndarray, *, covariance: str = "mle",
                             names: tuple[str, str] = ("generated", "reference")) -> tuple[float, dict]:
    """FD between two (n, d) and (m, d) feature matrices with what a reader needs to trust it.

    ``covariance``: ``mle`` (the originals' sample covariance; exact nuclear-norm trace when a set has no more
    rows than dimensions), ``ledoit-wolf`` or ``oas`` (``covariance.py``). Never negative or complex: negative
    eigenvalues from rounding are clipped at 0 and reported (``clipped_eigenvalues``) above ``CLIP_REPORT`` of
    the trace, and a total below 0 (identical sets, rounding) is reported and returned as 0. ``warnings`` names
    (``names``) a set with no more rows than dimensions (its covariance is singular). A statistics-file
    reference gets the same notes (``frechet_distance_to_statistics_checked``).
    """
    from .covariance import estimate

    x, y = _feature_matrix(features1), _feature_matrix(features2)
    n, m, d = len(x), len(y), x.shape[1]
    if y.shape[1] != d:
        raise ValueError(f"feature widths differ: {x.shape} vs {y.shape}")

    def compute() -> tuple[float, float, dict]:
        if covariance == "mle" and min(n, m) <= d:
            return frechet_distance_from_features(x, y), 0.0, {}  # exact: no eigenvalue to clip
        if covariance == "mle":  # GaussianStats, as every FD here (statistics files included) computes it
            (mu1, sigma1), (mu2, sigma2), delta1, delta2 = gaussian_statistics(x), gaussian_statistics(y), None, None
        else:
            (mu1, sigma1, delta1), (mu2, sigma2, delta2) = estimate(x, covariance), estimate(y, covariance)
        trace_sqrt, clipped = trace_sqrt_product_checked(sigma1, sigma2)
        diff = mu1 - mu2
        value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)
        return value, clipped, ({"shrinkage": [delta1, delta2]} if delta1 is not None else {})

    return _checked(n, m, d, covariance, names, compute)


def frechet_distance_to_statistics_checked(features: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, count2: int, *,
                                           names: tuple[str, str] = ("generated", "reference")
                                           ) -> tuple[float, dict]:
    """``frechet_distance_checked`` against a reference given as its Gaussian N(mu2, sigma2) of ``count2`` rows (a
    statistics file without features): the same clipping, notes and warnings as against the rows themselves.
    When the features have no more rows than dimensions the trace is exact (``frechet_distance_to_statistics``),
    else it comes from the symmetric eigendecompositions, clipping reported as for rows."""
    x = _feature_matrix(features)
    n, d = x.shape
    mu2, sigma2 = np.atleast_1d(np.asarray(mu2, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu2.shape != (d,) or sigma2.shape != (d, d):
        raise ValueError(f"feature width {d} does not match the statistics' {mu2.shape}")

    def compute() -> tuple[float, float, dict]:
        if n <= d:
            return frechet_distance_to_statistics(x, mu2, sigma2), 0.0, {}  # exact: no eigenvalue to clip
        mu1, sigma1 = gaussian_statistics(x)
        trace_sqrt, clipped = trace_sqrt_product_checked(sigma1, sigma2)
        diff = mu1 - mu2
        return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt), clipped, {}

    return _checked(n, int(count2), d, "mle", names, compute)


def frechet_distance_to_statistics(features: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to (n, d) features and given statistics N(mu2, sigma2).

    When n <= d the features' covariance S1 = A'A/(n-1) is singular; the trace term is then taken from
    the n x n matrix A sigma2 A'/(n-1), whose eigenvalues are those of S1 sigma2 (exact, as above).
    """
    x = np.asarray(features, dtype=np.float64)
    mu1, sigma1 = gaussian_statistics(x)
    if x.shape[0] > x.shape[1]:
        return frechet_distance(mu1, sigma1, mu2, sigma2)
    if np.shape(mu2) != mu1.shape:
        raise ValueError(f"feature width {x.shape[1]} does not match the statistics' {np.shape(mu2)}")
    a = x - mu1
    inner = a @ np.asarray(sigma2, dtype=np.float64) @ a.T / (len(x) - 1)
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    diff = mu1 - np.asarray(mu2, dtype=np.float64)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def frechet_distance_per_layer(features1: np.ndarray, features2: np.ndarray) -> list[float]:
    """One Fréchet distance per layer between per-file layer features, shapes (n, layers, d) and (m, layers, d).

    For MERT: each layer's per-file time-mean vectors form one sample per file, which is the statistically
    sound FD (audioldm_eval's compatible FD instead pools the 13 layers of every file as 13 samples).
    """
    x, y = np.asarray(features1), np.asarray(features2)
    if x.ndim != 3 or y.ndim != 3 or x.shape[1:] != y.shape[1:]:
        raise ValueError(f"need (files, layers, d) features of equal layers and width, got {x.shape} and {y.shape}")
    return [frechet_distance_from_features(x[:, layer], y[:, layer]) for layer in range(x.shape[1])]
