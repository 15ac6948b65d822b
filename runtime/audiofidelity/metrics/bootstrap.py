"""Percentile bootstrap over files: how much a set-level metric (FD, FAD, KID) moves when the clips are resampled.

Each replicate draws the generated files (and the reference files, unless the reference is fixed
statistics) with replacement, recomputes the metric on the rows of the drawn files (a VGGish file
brings all its frames), and the interval is the (1 - confidence)/2 and (1 + confidence)/2 percentiles
of the replicates. The generator is seeded, so the same inputs give the same interval every run.

Reference: Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

DEFAULT_SEED = 0
DEFAULT_CONFIDENCE = 0.95


def stack_files(per_file: Sequence[np.ndarray], indices: np.ndarray) -> np.ndarray:
    """Rows of the chosen files, in draw order."""
    return np.concatenate([np.atleast_2d(per_file[i]) for i in indices])


def bootstrap_interval(statistic: Callable[[np.ndarray, np.ndarray | None], float], n_generated: int,
                       n_reference: int | None, replicates: int, *, seed: int = DEFAULT_SEED,
                       confidence: float = DEFAULT_CONFIDENCE) -> dict:
    """Percentile interval of ``statistic(generated_indices, reference_indices)`` over resampled files.

    ``n_reference`` None keeps the reference fixed (``statistic`` then gets None for it).
    Returns ``{"low", "high", "confidence", "replicates", "seed", "resampled"}``.
    """
    if replicates < 2:
        raise ValueError(f"a bootstrap needs at least 2 replicates, got {replicates}")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(replicates):
        gen = rng.integers(0, n_generated, n_generated)
        ref = rng.integers(0, n_reference, n_reference) if n_reference is not None else None
        values.append(statistic(gen, ref))
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return {"low": float(low), "high": float(high), "confidence": confidence, "replicates": replicates,
            "seed": seed, "resampled": ["generated"] + (["reference"] if n_reference is not None else [])}
