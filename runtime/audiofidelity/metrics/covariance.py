"""Covariance estimators for the Fréchet distances: the plain sample covariance, or a shrunk one for small sets.

``mle`` is what every FAD/FD toolkit uses (``np.cov``: the sample covariance, n − 1), and the default. With
fewer rows than dimensions it is singular; Ledoit-Wolf and OAS shrink the maximum-likelihood covariance
S = XᵀX / n towards μI (μ = tr S / p): Σ = (1 − δ) S + δ μ I, with δ estimated from the rows. Both formulas
are scikit-learn's (``ledoit_wolf_shrinkage``; ``oas`` since 1.3), written out here in NumPy.

References: Ledoit & Wolf, "A well-conditioned estimator for large-dimensional covariance matrices", J.
Multivariate Analysis 2004; Chen, Wiesel, Eldar, Hero, "Shrinkage Algorithms for MMSE Covariance Estimation",
IEEE TSP 2010.
"""
from __future__ import annotations

import numpy as np

COVARIANCES = ("mle", "ledoit-wolf", "oas")


def ledoit_wolf_shrinkage(centred: np.ndarray) -> float:
    """Ledoit-Wolf's δ for centred (n, p) rows."""
    n, p = centred.shape
    squared = centred * centred
    variance_trace = squared.sum(axis=0) / n
    mu = variance_trace.sum() / p
    delta_ = float(((centred.T @ centred) ** 2).sum()) / n ** 2
    beta_ = float((squared.T @ squared).sum())
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2.0 * mu * variance_trace.sum() + p * mu ** 2) / p
    beta = min(beta, delta)
    return 0.0 if beta == 0 else beta / delta


def oas_shrinkage(mle_cov: np.ndarray, n: int) -> float:
    """Oracle approximating shrinkage's δ from the maximum-likelihood covariance of n rows."""
    p = mle_cov.shape[0]
    alpha = float(np.mean(mle_cov ** 2))
    mu = float(np.trace(mle_cov)) / p
    numerator = alpha + mu ** 2
    denominator = (n + 1) * (alpha - mu ** 2 / p)
    return 1.0 if denominator == 0 else min(numerator / denominator, 1.0)


def estimate(rows: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Mean, covariance and shrinkage δ (None for ``mle``) of (n >= 2, p) rows, float64."""
    if method not in COVARIANCES:
        raise ValueError(f"covariance must be one of {', '.join(COVARIANCES)}, got {method!r}")
    x = np.asarray(rows, dtype=np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    n, p = centred.shape
    if method == "mle":
        return mean, centred.T @ centred / (n - 1), None
    mle_cov = centred.T @ centred / n
    delta = ledoit_wolf_shrinkage(centred) if method == "ledoit-wolf" else oas_shrinkage(mle_cov, n)
    shrunk = (1.0 - delta) * mle_cov
    shrunk.flat[:: p + 1] += delta * float(np.trace(mle_cov)) / p
    return mean, shrunk, delta
