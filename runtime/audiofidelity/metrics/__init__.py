"""Metric math as pure functions on arrays: features -> statistics -> score, one module per family."""
from .frechet import frechet_distance, frechet_distance_from_features, gaussian_statistics
from .gaussian import GaussianStats
from .inception import inception_score
from .kernel import kernel_inception_distance
from .kl import kl_divergence

__all__ = ["GaussianStats", "frechet_distance", "frechet_distance_from_features", "gaussian_statistics",
           "inception_score", "kernel_inception_distance", "kl_divergence"]
