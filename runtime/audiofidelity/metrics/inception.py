"""Inception score from classifier logits, as audioldm_eval's ``calculate_isc``.

Rows shuffled by ``np.random.RandomState(2020).permutation``, split into 10 contiguous chunks
(``i*N//10 : (i+1)*N//10``), per chunk exp(mean_i KL(p_i || mean p)); mean and std over chunks.
Softmax in float64.

References: Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016;
audioldm_eval ``metrics/isc.py`` (from torch-fidelity).
"""
from __future__ import annotations

import numpy as np
from scipy.special import log_softmax
from ..errors import MetricUnavailableError

KEY_IS_MEAN = "inception_score_mean"
KEY_IS_STD = "inception_score_std"


def inception_score(logits: np.ndarray, *, splits: int = 10, shuffle: bool = True,
                    seed: int = 2020) -> dict[str, float]:
    """Inception score mean and std.

    Parameters
    ----------
    logits : np.ndarray, shape (n, classes)
        Pre-softmax scores.

    Raises
    ------
    ValueError
        If ``n < splits`` (a chunk would be empty; the original returns NaN).
    """
    logits = np.asarray(logits, dtype=np.float64)
    n = len(logits)
    if n < splits:
        raise MetricUnavailableError(f"inception score with {splits} splits needs at least {splits} clips, got {n}")
    if shuffle:
        logits = logits[np.random.RandomState(seed).permutation(n)]
    log_p = log_softmax(logits, axis=1)
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        chunk = slice(i * n // splits, (i + 1) * n // splits)
        log_q = np.log(p[chunk].mean(axis=0, keepdims=True))
        scores.append(np.exp((p[chunk] * (log_p[chunk] - log_q)).sum(axis=1).mean()))
    return {KEY_IS_MEAN: float(np.mean(scores)), KEY_IS_STD: float(np.std(scores))}
