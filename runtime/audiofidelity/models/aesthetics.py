"""Meta's audiobox-aesthetics (Tjandra et al. 2025): four per-file quality scores without a reference, content
enjoyment (CE), content usefulness (CU), production complexity (PC) and production quality (PQ), on a 1-10 scale.

Fed as ``AesPredictor.forward`` feeds it (issue #33): the channel mean, torchaudio's resampler to 16 kHz, 10-s windows
every 10 s, the last one zero-padded with a mask that keeps the padding out of attention and of the time mean
(frontend ``aesthetics_windows``); a clip's score per axis is its windows' scores weighted by each window's real
length (``clip_scores``), after the checkpoint's ``target_transform`` (the manifest's ``output_transforms``).
Export: ``export_scripts/aesthetics.py`` (WavLM-base in plain torch); stand-in: ``tests/fixtures/aesthetics.py``;
parity against the ``audiobox_aesthetics`` package: ``verify_scripts/verify_aesthetics.py``,
``tests/test_aesthetics.py``; card ``model_cards/audiobox-aesthetics.md``.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .family import ArtifactEntry, Frontend, ModelFamily, Scorer

AXES = ("ce", "cu", "pc", "pq")
"""The four scores, in the artifact's output order (``AXES_NAME`` of the package, lower-cased for result keys)."""
SOURCE_FILE = "checkpoint.pt"
SOURCE_URL = "https://huggingface.co/facebook/audiobox-aesthetics/resolve/main/checkpoint.pt"
"""``checkpoint.pt`` of Hugging Face ``facebook/audiobox-aesthetics``, the copy whose digest is published (the package's
``DEFAULT_S3_URL``, ``dl.fbaipublicfiles.com/audiobox-aesthetics/checkpoint.pt``, serves the same file)."""
SOURCE_SHA256 = "a4931a7a01c3e6733352e9d85371835f03bf9135f8b31e1583c23538811d4a32"
"""That file's sha256 (415,520,834 bytes) as public projects pin it (not measured here: no network)."""


def aesthetics_windows(wave: np.ndarray, *, window: int, hop: int, **_: Any) -> np.ndarray:
    """``make_inference_batch`` of one clip: windows of ``window`` samples starting every ``hop`` (0, hop, ... below
    the clip's length), each zero-padded to ``window`` and stacked with its mask (1.0 on real samples).

    Returns
    -------
    np.ndarray, shape (windows, 2, window), float32
        Channel 0 the window, channel 1 its mask; no window for an empty clip.

    See Also: audiobox_aesthetics ``infer.make_inference_batch`` (``hop_size=10, window_size=10``, ``pad_zero``).
    """
    x = np.asarray(wave, dtype=np.float32)
    starts = range(0, len(x), hop)
    out = np.zeros((len(starts), 2, window), np.float32)
    for i, start in enumerate(starts):
        piece = x[start:start + window]
        out[i, 0, :len(piece)] = piece
        out[i, 1, :len(piece)] = 1.0
    return out


def aesthetics_windows_bytes(n: int, *, window: int, hop: int, **_: Any) -> float:
    """The stacked windows and masks, twice (built, then batched)."""
    return 2.0 * 8 * window * -(-max(n, 1) // hop)


def aesthetics_fitting(n: int, *, window: int, hop: int, **_: Any) -> str | None:
    """``"padded"`` when the last window is zero-padded (its mask keeps the padding out of the score)."""
    return "padded" if n and (n - 1) // hop * hop + window > n else None


def clip_values(rows: Mapping[str, np.ndarray], transforms: Mapping[str, Any]) -> np.ndarray:
    """``Scorer.clip_values``: ``clip_scores`` of one clip's rows."""
    return clip_scores(rows["aesthetics"], rows["aesthetics_weight"], transforms["aesthetics"])


def clip_scores(scores: np.ndarray, weights: np.ndarray, transform: Mapping[str, Any]) -> np.ndarray:
    """One clip's four scores: each window's prediction mapped back by the checkpoint's ``target_transform``
    (``score * std + mean``), then averaged with the windows' real-length weights, in float32 as the package does.

    Parameters
    ----------
    scores : np.ndarray, shape (windows, 4)
        The artifact's ``scores`` rows (normalised space).
    weights : np.ndarray, shape (windows,)
        The artifact's ``weight`` rows (each window's share of real samples).
    transform : the manifest's ``output_transforms["scores"]`` (``scale``: std, ``offset``: mean, per axis)

    Returns
    -------
    np.ndarray, shape (4,), float64

    See Also: audiobox_aesthetics ``AesPredictor.forward``: ``(preds * weights).sum() / weights.sum()``.
    """
    scale = np.asarray(transform["scale"], np.float32)
    offset = np.asarray(transform["offset"], np.float32)
    values = np.asarray(scores, np.float32) * scale + offset
    w = np.asarray(weights, np.float32)[:, None]
    return ((values * w).sum(axis=0, dtype=np.float32) / w.sum(dtype=np.float32)).astype(np.float64)


FAMILY = ModelFamily(
    "aesthetics",
    artifacts=(ArtifactEntry("audiobox-aesthetics", "quality", "aesthetics", (), "wavlm_aesthetics", SOURCE_FILE,
                             SOURCE_URL, "CC-BY-4.0",
                             source_sha256=SOURCE_SHA256,
                             origin="Meta audiobox-aesthetics, Hugging Face facebook/audiobox-aesthetics",
                             model_rate=16000, dimension=4, frames="4 scores per clip (10-s windows, weighted)",
                             description="audiobox-aesthetics WavLM-base + heads: CE, CU, PC, PQ per clip",
                             provides=("aesthetics", "aesthetics_weight")),),
    frontends=(Frontend("aesthetics_windows", aesthetics_windows, aesthetics_windows_bytes, aesthetics_fitting,
                        nominal_samples=lambda window, **_: window),),
    scorers=(Scorer("aesthetics", "audiobox-aesthetics", ("aesthetics", "aesthetics_weight"),
                    tuple(f"aesthetics_{axis}" for axis in AXES), clip_values,
                    description="audiobox-aesthetics' content enjoyment, content usefulness, production complexity "
                                "and production quality (1-10), mean over files; no reference needed",
                    conditioning=(("channel", "mean"), ("remove_dc", False), ("resampler", "torchaudio"),
                                  ("min_samples", 0), ("min_duration", 0.0))),),
)
