"""Kullback-Leibler divergence between paired clips' class distributions, as audioldm_eval's ``calculate_kl``.

For pairs matched by file name, KL(reference || generated) summed over classes and pairs and
divided by the number of pairs, with ``EPS = 1e-6`` added to the generated probabilities inside
the log (so the value can be slightly negative). ``softmax``: p = softmax(logits).
``sigmoid``: p = sigmoid(logits) per class, the same elementwise sum without the (1 - p) terms,
exactly as ``torch.nn.functional.kl_div`` computes it in the original. Float64.

Other toolkits report other KLs under the same name (``reverse``, ``epsilon``): stable-audio-metrics' is
KL(generated || reference) with the epsilon on the reference, av-benchmark's has no epsilon.

References: audioldm_eval ``metrics/kl.py`` (AudioGen's formulation); Kreuk et al., "AudioGen", 2022;
stable-audio-metrics ``src/passt_kld.py``; av-benchmark ``av_bench/metrics/kl.py``.
"""
from __future__ import annotations

from functools import partial

import numpy as np
from scipy.special import expit, log_expit, log_softmax, softmax, xlogy

KEY_KL_SOFTMAX = "kullback_leibler_divergence_softmax"
KEY_KL_SIGMOID = "kullback_leibler_divergence_sigmoid"
EPS = 1e-6
"""audioldm_eval's epsilon (``KLDefinition.epsilon``'s default in ``models/family.py`` states it again: the layers
keep models from importing metrics)."""
DISTRIBUTIONS = {"softmax": (partial(softmax, axis=1), partial(log_softmax, axis=1)), "sigmoid": (expit, log_expit)}
"""Each mode's class probabilities and their logarithm, from (pairs, classes) logits."""


def kl_divergence(generated_logits: np.ndarray, reference_logits: np.ndarray, *, mode: str = "softmax",
                  reverse: bool = False, epsilon: float = EPS) -> float:
    """Mean KL over pairs (row i of each matrix is one pair): KL(reference || generated), or with ``reverse``
    KL(generated || reference).

    Parameters
    ----------
    generated_logits, reference_logits : np.ndarray, shape (pairs, classes)
    mode : {"softmax", "sigmoid"}
    reverse : bool
        KL(generated || reference) (stable-audio-metrics), not KL(reference || generated) (audioldm_eval).
    epsilon : float
        Added inside the log to the probabilities in second place; 0: the logs are taken from the logits exactly
        (av-benchmark's ``log_softmax``/``logsigmoid`` with ``log_target=True``).
    """
    g = np.asarray(generated_logits, dtype=np.float64)
    r = np.asarray(reference_logits, dtype=np.float64)
    if g.shape != r.shape or g.ndim != 2 or len(g) == 0:
        raise ValueError(f"need two equal (pairs >= 1, classes) logit matrices, got {g.shape} and {r.shape}")
    if mode not in DISTRIBUTIONS:
        raise ValueError(f"mode must be 'softmax' or 'sigmoid', got {mode!r}")
    probabilities, log = DISTRIBUTIONS[mode]
    first, second = (g, r) if reverse else (r, g)
    if not epsilon:  # kl_div(log q, log p, log_target=True): exp(log p) * (log p - log q)
        log_p, log_q = log(first), log(second)
        return float((np.exp(log_p) * (log_p - log_q)).sum()) / len(g)
    p, q = probabilities(first), probabilities(second)
    return float((xlogy(p, p) - p * np.log(q + epsilon)).sum()) / len(g)


def kl_divergence_to_probabilities(generated_logits: np.ndarray, reference_probabilities: np.ndarray, *,
                                   reverse: bool = False, epsilon: float = EPS) -> float:
    """``kl_divergence`` in softmax mode with the reference side given as class probabilities (a reference-
    probabilities file: stable-audio-metrics' ``load_ref_probabilities``), row i of each one pair.

    Parameters
    ----------
    generated_logits : np.ndarray, shape (pairs, classes)
    reference_probabilities : np.ndarray, shape (pairs, classes), rows summing to 1
    reverse, epsilon : as ``kl_divergence`` (epsilon 0: a zero probability where the other side has mass gives
        an infinite KL, as the definition does)
    """
    g = softmax(np.asarray(generated_logits, dtype=np.float64), axis=1)
    r = np.asarray(reference_probabilities, dtype=np.float64)
    if g.shape != r.shape or g.ndim != 2 or len(g) == 0:
        raise ValueError(f"need (pairs >= 1, classes) logits and probabilities of one shape, got {g.shape} and "
                         f"{r.shape}")
    p, q = (g, r) if reverse else (r, g)
    with np.errstate(divide="ignore"):
        return float((xlogy(p, p) - xlogy(p, q + epsilon)).sum()) / len(g)
