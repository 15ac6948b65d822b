"""Sample-size-free scores: a metric at growing sample sizes, extrapolated to infinitely many samples.

FAD (and FD, KAD) are biased by the number of samples: their expectation is close to linear in 1/n.
fadtk's FAD∞ draws n generated rows with replacement (``np.random.choice``) at ``steps`` sizes evenly spaced
from ``minimum`` to all of them (25 sizes from 500), scores each draw against the whole reference, fits
score = intercept + slope / n by least squares (``np.polyfit``) and reports the intercept, with the slope and R².
Here the generator is ``np.random.RandomState(seed)`` (recorded), and the draw can also be whole clips (their
rows together: the frames of one clip are not independent), which fadtk does not offer.

Reference: Chong & Forsyth, "Effectively Unbiased FID and Inception Score and where to find them", CVPR 2020;
Gui et al., "Adapting Frechet Audio Distance for Generative Music Evaluation", ICASSP 2024 (fadtk ``score_inf``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from ..errors import MetricUnavailableError


def extrapolate(score: Callable[[np.ndarray], float], units: int, *, unit: str, minimum: int = 500, steps: int = 25,
                seed: int = 0) -> dict:
    """``score(indices)`` at ``steps`` sizes from ``minimum`` to ``units`` (indices drawn with replacement), fitted
    against 1/n: ``{"value": intercept, "slope", "r2", "points": [[n, score], ...], "unit", "seed"}``.

    Raises ``ValueError`` when there are not more ``units`` than ``minimum`` (no line to fit).
    """
    if units <= minimum:
        raise MetricUnavailableError(f"the extrapolation needs more than {minimum} generated {unit} (its smallest "
                                     f"sample "
                         f"size); there are {units}")
    sizes = [int(n) for n in np.linspace(minimum, units, steps)]
    rng = np.random.RandomState(seed)
    points = [[n, float(score(rng.choice(units, size=n, replace=True)))] for n in sizes]
    xs, ys = 1.0 / np.array(sizes, dtype=np.float64), np.array([p[1] for p in points])
    slope, intercept = np.polyfit(xs, ys, 1)
    residual = float(np.sum((ys - (slope * xs + intercept)) ** 2))
    spread = float(np.sum((ys - ys.mean()) ** 2))
    return {"value": float(intercept), "slope": float(slope), "r2": 1.0 - residual / spread if spread else 1.0,
            "points": points, "unit": unit, "seed": seed}
