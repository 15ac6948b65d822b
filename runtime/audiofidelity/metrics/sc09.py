"""The SC09 benchmark's metrics
(SaShiMi: HazyResearch/state-spaces ``sashimi/sc09_classifier/test_speech_commands.py``),
from a speech-digit classifier's softmax probabilities and 1024-d activations of the training set and a generated set.

Bit-faithful to that code where it is deterministic, and named as it names them:

- ``inception_score`` (the benchmark's IS): ``np.random.seed(0)``, permute the generated rows, split them in
  halves, and ``scipy.stats.entropy(half_1, mean_of_half_2)`` on the **default axis 0**: each class column is
  normalised over the samples and a per-class KL taken, then averaged over classes and exponentiated. That is
  not the textbook IS, which ``textbook_inception_score`` gives: exp(mean_i KL(p_i ‖ p̄)).
- ``modified_inception_score``: ``np.random.seed(0)``, 10000 pairs drawn with replacement, exp(mean KL(p_i ‖ p_j)).
- ``am_score``: KL(mean train probabilities ‖ mean generated probabilities) + mean entropy of the generated rows.
- ``ndb``: k-means (K = 50) on the training activations with every parameter fixed (``KMEANS``: scikit-learn's
  k-means++ and Lloyd, one initialisation, seed 0, as scikit-learn 1.4+ runs the benchmark's
  ``KMeans(n_clusters=50, random_state=0)``; before 1.4 it ran ten), both sets binned by nearest centroid, a
  two-proportion z-test per bin at p < 0.05, NDB/K; also the Jensen-Shannon divergence of the bin proportions.
- ``fid``: the project's Fréchet distance (``frechet.frechet_distance_checked``), real and never negative. The
  benchmark's ``scipy.linalg.sqrtm`` of the singular covariance product usually comes out complex; this equals
  its real part.

References: Goel, Gu, Donahue, Ré, "It's Raw! Audio Generation with State-Space Models", ICML 2022; Gurumurthy
et al., "DeLiGAN", CVPR 2017 (mIS); Zhou et al., "Activation Maximization Generative Adversarial Nets", ICLR 2018
(AM); Richardson & Weiss, "On GANs and GMMs", NeurIPS 2018 (NDB).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

from . import frechet
from ..errors import MetricUnavailableError

KMEANS: dict[str, Any] = dict(n_clusters=50, init="k-means++", n_init=1, max_iter=300, tol=1e-4, algorithm="lloyd",
                              random_state=0)
"""The k-means of NDB, every parameter fixed (scikit-learn's ``KMeans`` keywords, recorded in the report)."""
NDB_ALPHA = 0.05
MIS_PAIRS = 10000


def entropy(*args: Any, **kwargs: Any) -> Any:
    """``scipy.stats.entropy``, imported on first use: importing scipy.stats adds half a second to every CLI start."""
    from scipy.stats import entropy as scipy_entropy

    return scipy_entropy(*args, **kwargs)


def _probabilities(probs: np.ndarray, name: str, least: int) -> np.ndarray:
    p = np.asarray(probs)
    if p.ndim != 2 or len(p) < least:
        got = len(p) if p.ndim == 2 else 0
        raise MetricUnavailableError(f"{name} needs at least {least} generated clips, got {got}")
    return p


def inception_score(probs: np.ndarray) -> float:
    """The benchmark's IS (see the module docstring): a per-class statistic over two seeded halves."""
    p = _probabilities(probs, "the inception score", 2)
    p = p[np.random.RandomState(0).permutation(len(p))]
    first, second = p[: len(p) // 2], p[len(p) // 2:]
    mean_2 = np.mean(second, axis=0)
    return float(np.exp(entropy(first, np.repeat(mean_2[None, :], len(first), axis=0)).mean()))


def textbook_inception_score(probs: np.ndarray) -> float:
    """exp(mean_i KL(p_i ‖ p̄)) over all generated rows (Salimans et al. 2016), for comparison."""
    p = _probabilities(probs, "the inception score", 1).astype(np.float64)
    return float(np.exp(np.mean(entropy(p, np.mean(p, axis=0)[None, :], axis=1))))


def modified_inception_score(probs: np.ndarray, pairs: int = MIS_PAIRS) -> float:
    """exp(mean KL(p_i ‖ p_j)) over ``pairs`` pairs drawn as the benchmark draws them."""
    p = _probabilities(probs, "the modified inception score", 2)
    rng = np.random.RandomState(0)
    drawn = np.array([rng.choice(np.arange(len(p)), size=2, replace=True) for _ in range(pairs)])
    return float(np.exp(np.mean(entropy(p[drawn[:, 0]], p[drawn[:, 1]], axis=1))))


def am_score(train_probs: np.ndarray, probs: np.ndarray) -> float:
    """KL(mean train ‖ mean generated) + the generated rows' mean entropy."""
    p = _probabilities(probs, "the AM score", 1)
    return float(entropy(np.mean(train_probs, axis=0), np.mean(p, axis=0)) + np.mean(entropy(p, axis=1)))


def fid(train_activations: np.ndarray, activations: np.ndarray) -> tuple[float, dict]:
    """FID between the training and generated activations, with its details (``frechet_distance_checked``)."""
    return frechet.frechet_distance_checked(activations, train_activations)


def ndb(train_activations: np.ndarray, activations: np.ndarray) -> dict:
    """NDB/K, the bins that differ, per-bin counts and the JS divergence of the bin proportions.

    Raises ``ValueError`` with fewer than 2·K training rows (K-means would leave bins empty or undefined).
    """
    from scipy.stats import norm
    from sklearn.cluster import KMeans  # scikit-learn comes with librosa

    k: int = KMEANS["n_clusters"]
    train = np.asarray(train_activations)
    if len(train) < 2 * k:
        raise MetricUnavailableError(f"NDB with K={k} needs at least {2 * k} training clips, got {len(train)}")
    kmeans = KMeans(**KMEANS).fit(train)
    labels_train, labels_gen = kmeans.predict(train), kmeans.predict(np.asarray(activations))
    counts_train = np.bincount(labels_train, minlength=k)
    counts_gen = np.bincount(labels_gen, minlength=k)
    p_train, p_gen = counts_train / len(labels_train), counts_gen / len(labels_gen)
    pooled = (p_train * len(labels_train) + p_gen * len(labels_gen)) / (len(labels_train) + len(labels_gen))
    z = (p_train - p_gen) / np.sqrt(pooled * (1 - pooled) * (1 / len(labels_train) + 1 / len(labels_gen)))
    different = 2.0 * norm.cdf(-np.abs(z)) < NDB_ALPHA
    return {"ndb_over_k": int(np.count_nonzero(different)) / k, "different_bins": np.flatnonzero(different).tolist(),
            "counts_train": counts_train.tolist(), "counts_generated": counts_gen.tolist(),
            "js_divergence": float(jensenshannon(p_train, p_gen) ** 2), "kmeans": dict(KMEANS),
            "kmeans_iterations": int(kmeans.n_iter_)}
