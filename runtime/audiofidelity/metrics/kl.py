"""Kullback-Leibler divergence between paired clips' class distributions, as audioldm_eval's ``calculate_kl``.

For pairs matched by file name, KL(reference || generated) summed over classes and pairs and
divided by the number of pairs, with ``EPS = 1e-6`` added to the generated probabilities inside
the log (so the value can be slightly negative). ``softmax``: p = softmax(logits).
``sigmoid``: p = sigmoid(logits) per class, the same elementwise sum without the (1 - p) terms,
exactly as ``torch.nn.functional.kl_div`` computes it in the original. Float64.

References: audioldm_eval ``metrics/kl.py`` (AudioGen's formulation); Kreuk et al., "AudioGen", 2022.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit, softmax, xlogy

KEY_KL_SOFTMAX = "kullback_leibler_divergence_softmax"
KEY_KL_SIGMOID = "kullback_leibler_divergence_sigmoid"
EPS = 1e-6


def _kl_div_sum(generated_probs: np.ndarray, reference_probs: np.ndarray) -> float:
    # torch kl_div(input=log(q + EPS), target=p, reduction="sum"): sum p * (log p - input), 0 where p == 0
    return float((xlogy(reference_probs, reference_probs) - reference_probs * np.log(generated_probs + EPS)).sum())


def kl_divergence(generated_logits: np.ndarray, reference_logits: np.ndarray, *, mode: str = "softmax") -> float:
    """Mean KL(reference || generated) over pairs (row i of each matrix is one pair).

    Parameters
    ----------
    generated_logits, reference_logits : np.ndarray, shape (pairs, classes)
    mode : {"softmax", "sigmoid"}
    """
    g = np.asarray(generated_logits, dtype=np.float64)
    r = np.asarray(reference_logits, dtype=np.float64)
    if g.shape != r.shape or g.ndim != 2 or len(g) == 0:
        raise ValueError(f"need two equal (pairs >= 1, classes) logit matrices, got {g.shape} and {r.shape}")
    if mode == "softmax":
        q, p = softmax(g, axis=1), softmax(r, axis=1)
    elif mode == "sigmoid":
        q, p = expit(g), expit(r)
    else:
        raise ValueError(f"mode must be 'softmax' or 'sigmoid', got {mode!r}")
    return _kl_div_sum(q, p) / len(g)
