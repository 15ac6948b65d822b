"""The HEAR 2021 API over an audiofidelity model: ``load_model``, ``get_timestamp_embeddings``,
``get_scene_embeddings`` (hearbenchmark.com's common API), with no HEAR package needed.

    from audiofidelity.compat import hear
    model = hear.load_model(model="vggish", models_dir="models")
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)  # audio: [n_sounds, n_samples] at 16 kHz

``model.sample_rate`` is the rate the API expects audio at (the network's own); timestamps are frame centres in
milliseconds. A clip-level model (CNN14) has one timestamp per sound, at its middle; scene embeddings are the
mean over frames. Audio is conditioned as ``eval`` conditions it (``Embedder``).
"""
from __future__ import annotations

import numpy as np
import torch

from ..embedder import Embedder
from ..models import DEFAULTS
from .evar import _default_output


class HearModel(torch.nn.Module):
    """An ``Embedder`` with the attributes HEAR's API requires."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__()
        self.embedder = embedder
        self.sample_rate = embedder.info.conditioning_rate
        self.scene_embedding_size = self.timestamp_embedding_size = int(embedder.info.shape[-1])


def load_model(model_file_path: str = "", *, model: str = DEFAULTS.fad_model, output: str | None = None,
               models_dir: str | None = None) -> HearModel:
    """The HEAR entry point; ``model_file_path`` is accepted and unused (artifacts come from ``models_dir``)."""
    return HearModel(Embedder(model, output=output or _default_output(model), models_dir=models_dir))


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """[n_sounds, n_samples] -> (embeddings [n_sounds, n_timestamps, D], timestamps [n_sounds, n_timestamps] in ms)."""
    rows = model.embedder.embed(audio, model.sample_rate)
    frames = rows[:, None, :] if rows.ndim == 2 else rows
    hop = model.embedder.info.frame_seconds
    if hop:
        centres = (np.arange(frames.shape[1]) + 0.5) * hop * 1000.0
    else:
        centres = np.array([audio.shape[-1] / model.sample_rate * 500.0])
    timestamps = np.broadcast_to(centres, frames.shape[:2]).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(frames)), torch.from_numpy(np.ascontiguousarray(timestamps))


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """[n_sounds, n_samples] -> [n_sounds, D]: the mean of the timestamp embeddings."""
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return embeddings.mean(dim=1)
