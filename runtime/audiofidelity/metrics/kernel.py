"""Kernel inception distance: unbiased polynomial-kernel MMD^2 averaged over random subsets.

As audioldm_eval's ``calculate_kid`` (from torch-fidelity): kernel (x.y / d + 1)^3, 100 subsets
drawn without replacement by ``np.random.RandomState(2020).choice`` (first set, then second, per
subset), subset size 1000 shrunk to the smaller set. Arithmetic in float64.

References: Bińkowski et al., "Demystifying MMD GANs", ICLR 2018; torch-fidelity ``metric_kid.py``.
"""
from __future__ import annotations

import numpy as np
from ..errors import MetricUnavailableError

KEY_KID_MEAN = "kernel_inception_distance_mean"
KEY_KID_STD = "kernel_inception_distance_std"


def polynomial_kernel(x: np.ndarray, y: np.ndarray, *, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> np.ndarray:
    """(gamma x y^T + coef0)^degree with gamma = 1 / d by default; shapes (n, d), (m, d) -> (n, m)."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """Unbiased MMD^2 estimate from the three (m, m) kernel matrices of equal-size samples."""
    m = k_xx.shape[0]
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(features1: np.ndarray, features2: np.ndarray, *, subsets: int = 100,
                              subset_size: int = 1000, degree: int = 3, gamma: float | None = None,
                              coef0: float = 1.0, seed: int = 2020) -> dict[str, float]:
    """KID mean and standard deviation over ``subsets`` random subsets.

    Parameters
    ----------
    features1, features2 : np.ndarray, shapes (n, d) and (m, d)
    subset_size : int
        Shrunk to ``min(n, m)`` when larger (audioldm_eval's behaviour).

    Raises
    ------
    ValueError
        If either set has fewer than 2 rows or the widths differ.
    """
    x, y = np.asarray(features1), np.asarray(features2)  # subsets become float64 when drawn: no full copies
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need two (n, d) feature matrices of equal width, got {x.shape} and {y.shape}")
    size = min(subset_size, len(x), len(y))
    if size < 2:
        raise MetricUnavailableError(f"KID needs at least 2 samples per set, got {len(x)} and {len(y)}")
    rng = np.random.RandomState(seed)
    mmds = np.empty(subsets)
    for i in range(subsets):
        a = x[rng.choice(len(x), size, replace=False)].astype(np.float64)
        b = y[rng.choice(len(y), size, replace=False)].astype(np.float64)
        kernel = lambda p, q: polynomial_kernel(p, q, degree=degree, gamma=gamma, coef0=coef0)  # noqa: E731
        mmds[i] = mmd2_unbiased(kernel(a, a), kernel(a, b), kernel(b, b))
    return {KEY_KID_MEAN: float(mmds.mean()), KEY_KID_STD: float(mmds.std())}
