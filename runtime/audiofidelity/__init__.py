"""audiofidelity: audioldm_eval's audio-generation metrics from exported models, without the heavy stack.

Public API: ``evaluate`` (two folders -> metrics report), ``Evaluator`` (models loaded once, many
evaluations), ``Embedder`` (any model's embeddings from arrays, tensors or files), the metric functions and
``GaussianStats`` in ``audiofidelity.metrics``, the drop-ins in ``audiofidelity.compat``, and the
``audiofidelity`` command line (``audiofidelity.cli``).
Importing the package loads NumPy, SciPy and soundfile only; torch and librosa load on first use.
"""
from __future__ import annotations

from ._version import __version__
from .embedder import Embedder
from .evaluate import EvaluationResult, Evaluator, evaluate

__all__ = ["__version__", "evaluate", "Evaluator", "EvaluationResult", "Embedder"]
