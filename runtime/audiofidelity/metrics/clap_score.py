"""CLAP score: the cosine between each generated clip's audio embedding and its caption's text embedding, averaged.

Hessel et al.'s CLIPScore carried to audio as audio-generation papers report it (AudioLDM 2, MusicGen, Stable Audio,
MMAudio): no weight and no clipping at 0, the plain mean of per-file cosines (stable-audio-metrics ``clap_score``,
audioldm_eval's ``calculate_clap_sore``).

See Also
--------
torch.nn.functional.cosine_similarity : ``cosine`` reproduces it (eps 1e-8 on the norms' product, computed here in
    float64).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

KEY_CLAP_SCORE = "clap_score"
EPS = 1e-8


def cosine(audio: np.ndarray, text: np.ndarray) -> float:
    """Cosine similarity of two vectors (a clip's rows are averaged first).

    Parameters
    ----------
    audio : np.ndarray, shape (dim,) or (rows, dim)
    text : np.ndarray, shape (dim,)
    """
    a = np.atleast_2d(np.asarray(audio, dtype=np.float64)).mean(axis=0)
    t = np.asarray(text, dtype=np.float64).reshape(-1)
    return float(a @ t / max(np.linalg.norm(a) * np.linalg.norm(t), EPS))


def clap_scores(audio: Mapping[str, np.ndarray], text: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Each file's cosine, for the files in both mappings (in ``audio``'s order)."""
    return {name: cosine(rows, text[name]) for name, rows in audio.items() if name in text}


def clap_score(per_file: Mapping[str, float]) -> float:
    """The mean of the per-file cosines (NaN for none)."""
    return float(np.mean(list(per_file.values()))) if per_file else float("nan")
