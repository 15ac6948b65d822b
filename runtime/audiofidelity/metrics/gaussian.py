"""Streaming Gaussian statistics of embedding rows: the one implementation behind every FD, FAD and stats file.

``GaussianStats`` keeps a float64 row count, mean and centred co-moment (the sum of outer products of the rows'
deviations from the mean). Batches are folded in, and statistics of shards merged, with Chan, Golub and
LeVeque's pairwise update, so any split of the same rows gives the statistics one pass gives (to float64
rounding). ``all_reduce`` merges the statistics of every ``torch.distributed`` rank in rank order. The distance
between two of them is ``frechet.frechet_distance_gaussians``; the statistics file format (``save_gaussian``,
``load_gaussian``) lives in ``audiofidelity.stats``, outside the pure metric math.

Reference: Chan, Golub, LeVeque, "Updating Formulae and a Pairwise Algorithm for Computing Sample Variances",
Stanford CS tech. report STAN-CS-79-773 (1979).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from ..errors import MetricUnavailableError


@dataclass
class GaussianStats:
    """Count, mean (d,) and centred co-moment (d, d) of the rows seen so far, float64.

    ``GaussianStats().update(batch)`` folds in an (n, d) batch; ``a.merge(b)`` (or ``a + b``) gives the
    statistics of both sets; ``cov`` is the sample covariance (ddof 1), as every FAD toolkit uses.
    """

    count: int = 0
    mean: np.ndarray | None = None
    comoment: np.ndarray | None = None

    @classmethod
    def from_features(cls, features: np.ndarray) -> "GaussianStats":
        """The statistics of an (n, d) matrix in one pass."""
        rows = np.asarray(features, dtype=np.float64)
        if rows.ndim != 2:
            raise ValueError(f"embedding rows must be a 2-D (n, d) array, got shape {rows.shape}")
        if rows.shape[0] == 0:
            return cls()
        mean = rows.mean(axis=0)
        centred = rows - mean
        return cls(rows.shape[0], mean, centred.T @ centred)

    @property
    def dim(self) -> int | None:
        return None if self.mean is None else self.mean.shape[0]

    def update(self, features: np.ndarray) -> "GaussianStats":
        """Fold in a batch of rows (n, d); returns self."""
        merged = self.merge(GaussianStats.from_features(features))
        self.count, self.mean, self.comoment = merged.count, merged.mean, merged.comoment
        return self

    def merge(self, other: "GaussianStats") -> "GaussianStats":
        """The statistics of this set and ``other`` together (Chan et al.'s pairwise update)."""
        if other.count == 0:
            return GaussianStats(self.count, self.mean, self.comoment)
        if self.count == 0:
            return GaussianStats(other.count, other.mean, other.comoment)
        if self.dim != other.dim:
            raise ValueError(f"cannot merge statistics of {self.dim}-d and {other.dim}-d embeddings")
        (mean_a, comoment_a), (mean_b, comoment_b) = self._moments(), other._moments()
        count = self.count + other.count
        delta = mean_b - mean_a
        mean = mean_a + delta * (other.count / count)
        comoment = comoment_a + comoment_b + np.outer(delta, delta) * (self.count * other.count / count)
        return GaussianStats(count, mean, comoment)

    __add__ = merge

    @property
    def cov(self) -> np.ndarray:
        """Sample covariance (ddof 1)."""
        if self.count < 2:
            raise MetricUnavailableError(f"a covariance needs at least 2 embedding rows, got {self.count}")
        return self._moments()[1] / (self.count - 1)

    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        """The mean and co-moment, which statistics of any rows have (``from_features``, ``merge``, a file)."""
        if self.mean is None or self.comoment is None:
            raise ValueError(f"statistics of {self.count} rows without a mean and co-moment")
        return self.mean, self.comoment

    def all_reduce(self) -> "GaussianStats":
        """Statistics of every rank's rows, merged in rank order, on every rank (``torch.distributed``, if it is
        initialised; else these statistics unchanged). Ranks must agree on the dimension (an empty rank is fine)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return GaussianStats(self.count, self.mean, self.comoment)
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, (self.count, self.mean, self.comoment))
        merged = GaussianStats()
        for count, mean, comoment in gathered:
            merged = merged.merge(GaussianStats(count, mean, comoment))
        self.count, self.mean, self.comoment = merged.count, merged.mean, merged.comoment
        return self
