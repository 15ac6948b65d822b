"""Kernel audio distance (KAD): unbiased MMD² with a Gaussian RBF kernel, ×100, as kadtk computes it.

KAD = 100 · [ Σ_{i≠j} k(x_i, x_j) / (m(m−1)) + Σ_{i≠j} k(y_i, y_j) / (n(n−1)) − 2 Σ_{i,j} k(x_i, y_j) / (mn) ],
k(a, b) = exp(−γ ‖a − b‖²), γ = 1 / (2σ² + 1e-8), with ‖a − b‖² = ‖a‖² + ‖b‖² − 2 a·b as kadtk forms it.

The bandwidth σ is the median pairwise Euclidean distance of the **reference** set (the lower middle value
for an even count of pairs, as ``torch.median``), as the paper and kadtk's README define it; kadtk's code
takes it from the evaluated set (kadtk issue #9), which ``bandwidth="generated"`` reproduces. Above
``MEDIAN_PAIRS`` pairs the median is taken over that many pairs drawn with a seeded generator (recorded).

The sums run over blocks of at most ``BLOCK_ELEMENTS`` kernel values in float64, so memory grows linearly
with the number of rows: no N×N matrix is ever held.

References: Chung, Y. et al., "KAD: No More FAD! An Effective and Efficient Evaluation Metric for Audio
Generation", 2025; github.com/YoonjinXD/kadtk ``kadtk/kad.py``; Gretton et al., "A Kernel Two-Sample Test",
JMLR 2012.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from ..errors import MetricUnavailableError

KEY_KAD = "kernel_audio_distance"
SCALE = 100.0
EPS = 1e-8
BANDWIDTH_SOURCES = ("reference", "generated")
MEDIAN_PAIRS = 2_000_000
"""Most pairwise distances the median is taken over exactly; beyond, that many pairs drawn at random."""
BLOCK_ELEMENTS = 4_000_000
"""Kernel values per block (32 MB in float64)."""


@dataclass(frozen=True)
class Bandwidth:
    """The kernel bandwidth used and where it came from (recorded in the report)."""

    sigma: float
    source: str
    """``reference``, ``generated`` or ``given``."""
    pairs: int = 0
    """How many pairwise distances the median was taken over (0 when given)."""
    subsampled: bool = False
    seed: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _rows(features: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise MetricUnavailableError(f"KAD needs at least 2 embedding rows on each side; the {name} set has "
                         f"{len(x) if x.ndim == 2 else 0}")
    return x


def median_pairwise_distance(features: np.ndarray, *, max_pairs: int = MEDIAN_PAIRS, seed: int = 0) -> Bandwidth:
    """The median Euclidean distance over the pairs i < j of ``features`` (lower middle value for an even count),
    or over ``max_pairs`` distinct pairs drawn with ``np.random.default_rng(seed)`` when there are more."""
    x = _rows(features, "bandwidth")
    n = len(x)
    total = n * (n - 1) // 2
    if total <= max_pairs:
        parts = []
        for i in range(n - 1):  # n <= 2000 here
            d = x[i + 1:] - x[i]
            parts.append(np.sqrt((d * d).sum(axis=1)))
        distances, subsampled, used_seed = np.concatenate(parts), False, None
    else:
        rng = np.random.default_rng(seed)
        first = rng.integers(0, n, max_pairs)
        second = (first + rng.integers(1, n, max_pairs)) % n  # never first, uniform over the others
        distances = np.empty(max_pairs)
        step = max(1, BLOCK_ELEMENTS // x.shape[1])
        for start in range(0, max_pairs, step):
            d = x[first[start:start + step]] - x[second[start:start + step]]
            distances[start:start + step] = np.sqrt((d * d).sum(axis=1))
        subsampled, used_seed = True, seed
    middle = (len(distances) - 1) // 2
    return Bandwidth(float(np.partition(distances, middle)[middle]), "", len(distances), subsampled, used_seed)


def _kernel_sum(a: np.ndarray, b: np.ndarray, gamma: float) -> float:
    """Σ_{i,j} exp(−γ‖a_i − b_j‖²), blockwise."""
    b_norms = (b * b).sum(axis=1)
    total = 0.0
    step = max(1, BLOCK_ELEMENTS // len(b))
    for start in range(0, len(a), step):
        x = a[start:start + step]
        d2 = (x * x).sum(axis=1)[:, None] + b_norms[None, :] - 2.0 * (x @ b.T)
        total += float(np.exp(-gamma * d2).sum())
    return total


def _within_sum(a: np.ndarray, gamma: float) -> float:
    """Σ_{i≠j} exp(−γ‖a_i − a_j‖²): the upper triangle twice, blockwise."""
    norms = (a * a).sum(axis=1)
    total = 0.0
    step = max(1, BLOCK_ELEMENTS // len(a))
    for start in range(0, len(a), step):
        x = a[start:start + step]
        d2 = norms[start:start + step, None] + norms[None, start:] - 2.0 * (x @ a[start:].T)
        k = np.exp(-gamma * d2)
        rows = np.arange(len(x))
        k[rows, rows] = 0.0  # the block's own diagonal
        k[np.tril_indices(len(x), -1)] = 0.0  # below it: counted from the other side
        total += 2.0 * float(k.sum())
    return total


def choose_bandwidth(generated: np.ndarray, reference: np.ndarray, bandwidth: str | float = "reference", *,
                     seed: int = 0) -> Bandwidth:
    """The bandwidth ``bandwidth`` names: the median heuristic on the ``"reference"`` (default, the paper's) or
    ``"generated"`` rows (kadtk's code), or a given positive number.

    Raises ``ValueError`` for a zero bandwidth (every row of that set identical) or an unknown choice.
    """
    if isinstance(bandwidth, str):
        if bandwidth not in BANDWIDTH_SOURCES:
            raise ValueError(f"bandwidth must be one of {BANDWIDTH_SOURCES} or a positive number, got {bandwidth!r}")
        found = median_pairwise_distance(reference if bandwidth == "reference" else generated, seed=seed)
        chosen = Bandwidth(found.sigma, bandwidth, found.pairs, found.subsampled, found.seed)
    else:
        chosen = Bandwidth(float(bandwidth), "given")
    if not chosen.sigma > 0:
        raise MetricUnavailableError(f"the kernel bandwidth is {chosen.sigma:g} ({chosen.source}): all embedding "
                                     f"rows of that "
                         f"set are identical, so KAD is undefined")
    return chosen


def kernel_audio_distance(generated: np.ndarray, reference: np.ndarray, *, bandwidth: str | float = "reference",
                          seed: int = 0) -> tuple[float, Bandwidth]:
    """KAD between two (rows, d) embedding sets, and the bandwidth used (``choose_bandwidth``).

    Raises
    ------
    ValueError
        Fewer than 2 rows on a side, different widths, or a zero bandwidth (all bandwidth rows identical).
    """
    x, y = _rows(generated, "generated"), _rows(reference, "reference")
    chosen = choose_bandwidth(x, y, bandwidth, seed=seed)
    return kad_against(y, chosen.sigma)(x), chosen


def kad_against(reference: np.ndarray, sigma: float):
    """KAD of any generated rows against a fixed reference at bandwidth ``sigma``: the reference's own kernel sum is
    computed once (the extrapolation scores 25 draws against one reference)."""
    y = _rows(reference, "reference")
    gamma = 1.0 / (2.0 * sigma ** 2 + EPS)
    n = len(y)
    reference_term = _within_sum(y, gamma) / (n * (n - 1))

    def distance(generated: np.ndarray) -> float:
        x = _rows(generated, "generated")
        if x.shape[1] != y.shape[1]:
            raise ValueError(f"embedding widths differ: {x.shape[1]} vs {y.shape[1]}")
        m = len(x)
        cross = 2.0 * _kernel_sum(x, y, gamma) / (m * n)
        return SCALE * (_within_sum(x, gamma) / (m * (m - 1)) + reference_term - cross)

    return distance
