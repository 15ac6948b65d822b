"""CLAP score: the cosine between each generated clip's audio embedding and its caption's text embedding, averaged.

Hessel et al.'s CLIPScore carried to audio as audio-generation papers report it (AudioLDM 2, MusicGen, Stable Audio,
MMAudio): no weight and no clipping at 0, the plain mean of per-file cosines (stable-audio-metrics ``clap_score``,
audioldm_eval's ``calculate_clap_sore``). A score means little without its floor (broken pipelines report 0.05-0.1;
some text towers map unrelated captions to 0.999): ``floor`` scores the same audio against shuffled captions.

See Also
--------
torch.nn.functional.cosine_similarity : ``cosine`` reproduces it (eps 1e-8 on the norms' product, computed here in
    float64).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


SHUFFLE_SEED = 0
NOISE_STANDARD_ERRORS = 2.0
"""A score is "within noise" of its shuffled-caption floor when the mean per-file margin over the floor is at most
this many standard errors of that mean."""


def shuffled_partners(names: Sequence[str], captions: Mapping[str, object] | None = None,
                      seed: int = SHUFFLE_SEED) -> dict[str, str]:
    """Each name paired with another name whose caption differs: a permutation drawn with ``seed``, each name taking
    the next one in it (cyclically) whose ``captions`` entry is another caption (by default every name's is its own:
    a derangement). The same every run. Empty when fewer than two different captions exist."""
    keys = {name: (captions[name] if captions is not None else name) for name in names}
    if len(set(keys.values())) < 2:
        return {}
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    partners = {}
    for k, name in enumerate(order):
        step = 1
        while keys[order[(k + step) % len(order)]] == keys[name]:
            step += 1
        partners[name] = order[(k + step) % len(order)]
    return partners


@dataclass(frozen=True)
class Floor:
    """A side's CLAP score against its own captions and against shuffled ones (the floor a score of unrelated
    captions gives), with the mean per-file margin and its standard error."""

    score: float
    floor: float
    margin: float
    standard_error: float
    files: int

    @property
    def within_noise(self) -> bool:
        return not self.margin > NOISE_STANDARD_ERRORS * self.standard_error

    def as_dict(self) -> dict[str, float | int]:
        return {"score": self.score, "shuffled_floor": self.floor, "margin": self.margin,
                "margin_standard_error": self.standard_error, "files": self.files}


def floor(audio: Mapping[str, np.ndarray], text: Mapping[str, np.ndarray]) -> Floor | None:
    """The score of the files in both mappings against their captions and against ``shuffled_partners``' captions
    (always another caption: files generated from one prompt are never paired with each other): per file
    ``cos(a_i, t_i) - cos(a_i, t_pi(i))``, whose mean is the margin and ``std(ddof=1) / sqrt(n)`` its standard
    error. None when fewer than two different captions exist."""
    names = [name for name in audio if name in text]
    captions = {name: np.asarray(text[name]).tobytes() for name in names}  # the same caption, the same embedding
    partners = shuffled_partners(names, captions)
    if not partners:
        return None
    own = np.array([cosine(audio[n], text[n]) for n in names])
    other = np.array([cosine(audio[n], text[partners[n]]) for n in names])
    margin = own - other
    return Floor(float(own.mean()), float(other.mean()), float(margin.mean()),
                 float(margin.std(ddof=1) / np.sqrt(len(names))), len(names))
