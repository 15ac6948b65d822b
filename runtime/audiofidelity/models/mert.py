"""MERT-v1-95M (Li et al. 2023): audioldm_eval's second backbone (13 hidden-state means per clip) and fadtk's
per-layer FAD embeddings (``mert-v1-95m-1`` ... ``-12``), at 24 kHz.

Frontend ``mert_waveform`` (``Wav2Vec2FeatureExtractor``'s normalisation); option ``--mert-chunk`` (windows of a
long clip, averaged; not audioldm_eval's). Export: ``export_scripts/mert.py``; verify:
``verify_scripts/verify_mert.py``; card ``model_cards/mert-v1-95m.md``; stand-ins ``tests/fixtures/checkpoints.py``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..frontends import window_starts
from ..validation import check_positive
from .family import Adjustment, ArtifactEntry, FadModel, Frontend, ModelFamily, ModelOption

LAYERS = range(1, 13)
REVISION = "12af15fef9d0ac838c3f475bfbbf26d2060dd4f5"
"""The m-a-p/MERT-v1-95M commit public projects pin (its ``pytorch_model.bin``, sha256 a2b8b747...3fcd, is the only
weight file there); the Hub states each file's sha256 on download, which the build checks."""


def mert_waveform(wave: np.ndarray, *, sample_rate: int, do_normalize: bool = True, padding_value: float = 0.0,
                  variance_epsilon: float = 1e-7, chunk_samples: int | None = None) -> np.ndarray:
    """MERT's input: the waveform, zero-mean unit-variance when ``do_normalize`` (variance + 1e-7).

    As ``Wav2Vec2FeatureExtractor`` prepares one unpadded clip (``padding_value`` only matters for
    padded batches, which audiofidelity never builds). Returns shape (1, n) float32: one item.
    With ``chunk_samples`` (``--mert-chunk``, not audioldm_eval-compatible) a longer clip becomes
    windows of that length, each normalised on its own: consecutive windows from the start and one
    ending at the clip's end, so all have one length and batch together; shape (windows, chunk_samples).
    """
    x = np.asarray(wave, dtype=np.float32)
    rows = [x]
    if chunk_samples is not None and len(x) > chunk_samples:
        rows = [x[s:s + chunk_samples] for s in window_starts(len(x), chunk_samples)]
    if do_normalize:  # float32, one row at a time, as Wav2Vec2FeatureExtractor: the same bits
        rows = [(r - r.mean()) / np.sqrt(r.var() + variance_epsilon) for r in rows]
    return np.stack(rows).astype(np.float32, copy=False)


def mert_waveform_bytes(n: int, **_: Any) -> float:
    """``mert_waveform``'s peak bytes for ``n`` samples: the float32 copies normalisation makes."""
    return 4.0 * 4 * n


def chunk(seconds: float, model_rate: int) -> Adjustment:
    """``--mert-chunk``: windows of ``seconds`` at the model's rate, one row per clip (their mean)."""
    return Adjustment(frontend={"chunk_samples": int(round(seconds * model_rate))}, collect="mean")


def too_long_advice(memory, model_rate: int, budget: int, batch_size: int, options: dict) -> str:
    """The ``--mert-chunk`` that fits the budget (attention is quadratic in a window's length)."""
    if options.get("mert_chunk") is not None or memory is None or memory.axis != "samples":
        return "split the file, or raise --max-memory"
    seconds = memory.largest_units(budget, batch_size) // model_rate
    if seconds < 1:
        return "raise --max-memory or lower --batch-size"
    return (f"pass --mert-chunk {min(seconds, 10)} (windows up to {seconds} s fit this budget at --batch-size "
            f"{batch_size}; not audioldm_eval-compatible), or raise --max-memory")


FAMILY = ModelFamily(
    "mert",
    artifacts=(
        ArtifactEntry("mert-v1-95m", "classifier", "mert", (16000, 32000), "mert", "MERT-v1-95M",
                      "https://huggingface.co/m-a-p/MERT-v1-95M", "CC-BY-NC-4.0", source_revision=REVISION,
                      origin="Hugging Face repository m-a-p/MERT-v1-95M (a folder)", model_rate=24000, dimension=768,
                      frames="75 per s per layer", frame_seconds=320 / 24000,
                      description="MERT-v1-95M music encoder, 13 hidden-state means (audioldm_eval's MERT branch)",
                      provides=("embedding", "logits", "layers", "hidden_states"), adapter_output="layer:12"),
    ),
    fad_models=tuple(FadModel(f"mert-v1-95m-{layer}", "mert-v1-95m", "hidden_states", "fadtk", layer=layer)
                     for layer in LAYERS),
    frontends=(Frontend("mert_waveform", mert_waveform, mert_waveform_bytes),),  # no nominal shape: benchmarks (n)
    options=(ModelOption("mert_chunk", "backbone", "mert: average layer means over windows of this length (long "
                         "audio; not audioldm_eval's)", adjust=chunk, parse=float,
                         check=lambda value: check_positive(value, "mert_chunk"), metavar="SECONDS",
                         provenance="mert_chunk_seconds"),),
    too_long_advice=too_long_advice,
)
