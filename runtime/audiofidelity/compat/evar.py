"""An audiofidelity model as an EVAR audio representation (``evar/ar_base.py``'s interface), no EVAR needed.

EVAR builds a representation as ``AR(cfg)`` and calls ``precompute(device, data_loader)``, then
``forward(batch_audio)`` ([B, samples] at ``cfg.sample_rate`` -> [B, D]) for its linear evaluation;
``encode_frames(batch_audio)`` gives [B, D, T]. Point an EVAR config at this class with
``audiofidelity_model`` (an artifact name), optional ``audiofidelity_output`` and ``models_dir``::

    from audiofidelity.compat.evar import AR_AudioFidelity
    ar = AR_AudioFidelity({"sample_rate": 16000, "audiofidelity_model": "vggish"})

Frame-level outputs (VGGish, EnCodec, a MERT layer) give their frames; a clip embedding (CNN14) is one frame.
``forward`` is the mean over frames (EVAR's ``temporal_pooling_type: mean``). Audio goes through
``Embedder.embed``, so it is conditioned as ``eval`` conditions it.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ..embedder import Embedder
from ..registry import registry_entry


def _default_output(model: str) -> str:
    """The output the model's family names for adapters (frame rows where it has them)."""
    return registry_entry(model).adapter_output


class AR_AudioFidelity(torch.nn.Module):  # noqa: N801 (EVAR's naming)
    """EVAR's ``BaseAudioRepr`` interface over an ``Embedder``."""

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__()
        self.cfg = dict(cfg)
        model = self.cfg["audiofidelity_model"]
        self.embedder = Embedder(model, output=self.cfg.get("audiofidelity_output") or _default_output(model),
                                 models_dir=self.cfg.get("models_dir"))
        self.sample_rate = int(self.cfg["sample_rate"])

    def precompute(self, device, data_loader) -> None:
        """Nothing to precompute: the models need no data statistics."""

    def encode_frames(self, batch_audio: torch.Tensor) -> torch.Tensor:
        """[B, samples] -> [B, D, T] (T = 1 for a clip embedding), on the input's device."""
        rows = self.embedder.embed(batch_audio, self.sample_rate)
        frames = rows[:, None, :] if rows.ndim == 2 else rows  # (B, T, D)
        return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 2, 1))).to(batch_audio.device)

    def forward(self, batch_audio: torch.Tensor) -> torch.Tensor:
        """[B, samples] -> [B, D]: the mean over frames."""
        return self.encode_frames(batch_audio).mean(dim=2)
