"""Precision, recall, density and coverage of generated embeddings against reference ones (k nearest neighbours).

With r_i the distance from reference row i to its k-th nearest other reference row (the ball around it) and
r'_j the same within the generated rows, as the ``prdc`` package (and Sony's audio-metrics, which calls it):

- precision: the share of generated rows inside at least one reference ball, d(x_i, y_j) < r_i;
- recall: the share of reference rows inside at least one generated ball, d(x_i, y_j) < r'_j;
- density: (1/k) × the mean over generated rows of how many reference balls hold them;
- coverage: the share of reference rows whose nearest generated row lies inside their ball.

Euclidean distances in float64, computed in blocks of reference rows so memory stays linear in the rows.

Reference: Naeem, Oh, Uh, Choi, Yoo, "Reliable Fidelity and Diversity Metrics for Generative Models", ICML 2020;
github.com/clovaai/generative-evaluation-prdc ``prdc/prdc.py``.
"""
from __future__ import annotations

import numpy as np
from ..errors import MetricUnavailableError

KEYS = ("precision", "recall", "density", "coverage")
DEFAULT_K = 5
BLOCK_ELEMENTS = 4_000_000


def _distances(a: np.ndarray, b: np.ndarray, b_norms: np.ndarray) -> np.ndarray:
    d2 = (a * a).sum(axis=1)[:, None] + b_norms[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(d2, 0.0))


def knn_radii(rows: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row to its k-th nearest other row (the (k+1)-th smallest, the row itself included)."""
    norms = (rows * rows).sum(axis=1)
    radii = np.empty(len(rows))
    step = max(1, BLOCK_ELEMENTS // len(rows))
    for start in range(0, len(rows), step):
        d = _distances(rows[start:start + step], rows, norms)
        d[np.arange(len(d)), start + np.arange(len(d))] = 0.0  # a row's distance to itself, exactly
        radii[start:start + step] = np.partition(d, k, axis=1)[:, k]
    return radii


def prdc(generated: np.ndarray, reference: np.ndarray, *, k: int = DEFAULT_K) -> dict[str, float]:
    """The four values for (m, d) generated and (n, d) reference rows.

    Raises ``ValueError`` when a side has no more than ``k`` rows (no k-th neighbour) or the widths differ.
    """
    y, x = np.asarray(generated, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need two (n, d) embedding matrices of equal width, got {x.shape} and {y.shape}")
    if min(len(x), len(y)) <= k:
        raise MetricUnavailableError(f"precision/recall/density/coverage with k={k} need more than {k} rows per "
                                     f"side; got "
                         f"{len(y)} generated and {len(x)} reference")
    real_radii, fake_radii = knn_radii(x, k), knn_radii(y, k)
    y_norms = (y * y).sum(axis=1)
    inside_counts = np.zeros(len(y), dtype=np.int64)  # per generated row: how many reference balls hold it
    recalled = np.zeros(len(x), dtype=bool)
    covered = np.zeros(len(x), dtype=bool)
    step = max(1, BLOCK_ELEMENTS // len(y))
    for start in range(0, len(x), step):
        d = _distances(x[start:start + step], y, y_norms)
        radii = real_radii[start:start + step, None]
        inside_counts += (d < radii).sum(axis=0)
        recalled[start:start + step] = (d < fake_radii[None, :]).any(axis=1)
        covered[start:start + step] = d.min(axis=1) < radii[:, 0]
    return {"precision": float((inside_counts > 0).mean()), "recall": float(recalled.mean()),
            "density": float(inside_counts.mean() / k), "coverage": float(covered.mean())}
