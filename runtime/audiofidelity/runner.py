"""Run frontend outputs through a loaded artifact in batches; the one runner every model uses.

A frontend gives each clip an array of *items* (one log-mel for CNN14, several 0.96 s examples for
VGGish). Items of equal shape are stacked into batches across clips (no padding, so a clip's
features do not depend on its batch-mates); outputs come back per clip, in input order: shape
(D,) for one-item models, (items, D) otherwise.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Sequence

import numpy as np

from .artifacts import LoadedArtifact
from .errors import InvalidAudioError

DEFAULT_BATCH_SIZE = 8


class EmbeddingRunner:
    """Batches per-clip model inputs through an artifact's program.

    Parameters
    ----------
    artifact : LoadedArtifact
    batch_size : int
        Most items per forward pass; items are only batched with items of the same shape.
    average_items : bool
        Return the mean over a clip's items (windows of a chunked clip) instead of one row per item.
    """

    def __init__(self, artifact: LoadedArtifact, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 average_items: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.artifact = artifact
        self.batch_size = batch_size
        self.average_items = average_items
        spec = artifact.manifest.inputs[0]
        self._axes = spec["shape"][1:]  # per-item axes (no batch)
        self._minimum = spec.get("min", {})
        self.one_item = spec.get("items_per_clip", 1) == 1

    def check_input(self, x: np.ndarray) -> None:
        """Raise ``InvalidAudioError`` if one clip's frontend output does not fit the artifact's input spec."""
        name = self.artifact.manifest.name
        if x.ndim != len(self._axes) + 1:
            raise InvalidAudioError(f"{name} input has shape {x.shape}, expected (items, {self._axes})")
        if x.shape[0] == 0:
            raise InvalidAudioError(f"too short for {name}: the frontend produced no complete input")
        for size, axis in zip(x.shape[1:], self._axes):
            if isinstance(axis, int) and size != axis:
                raise InvalidAudioError(f"{name} input has shape {x.shape[1:]}, expected {self._axes}")
            if isinstance(axis, str) and size < self._minimum.get(axis, 0):
                raise InvalidAudioError(
                    f"too short for {name}: {size} {axis}, the model needs at least {self._minimum[axis]}")

    def run(self, inputs: Sequence[np.ndarray]) -> dict[str, list[np.ndarray]]:
        """Model outputs per clip: ``{output name: [one array per input]}``."""
        import torch

        names = self.artifact.manifest.output_names
        items: list[tuple[int, np.ndarray]] = [(clip, item) for clip, x in enumerate(inputs) for item in x]
        by_shape: dict[tuple, list[int]] = defaultdict(list)
        for x in inputs:
            self.check_input(x)
        for k, (_, item) in enumerate(items):
            by_shape[item.shape].append(k)
        results: list[list[np.ndarray] | None] = [None] * len(items)
        module, device = self.artifact.program, self.artifact.device
        with torch.inference_mode():
            for indices in by_shape.values():
                for start in range(0, len(indices), self.batch_size):
                    chunk = indices[start:start + self.batch_size]
                    batch = torch.from_numpy(np.stack([items[k][1] for k in chunk])).to(device)
                    outputs = module(batch)
                    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
                    arrays = [o.float().cpu().numpy() for o in outputs]
                    for row, k in enumerate(chunk):
                        results[k] = [a[row] for a in arrays]
        per_clip: dict[str, list[np.ndarray]] = {}
        for j, name in enumerate(names):
            rows: list[list[np.ndarray]] = [[] for _ in inputs]
            for k, (clip, _) in enumerate(items):
                rows[clip].append(results[k][j])
            per_clip[name] = [np.mean(r, axis=0) if self.average_items else r[0] if self.one_item else np.stack(r)
                              for r in rows]
        return per_clip


def vggish_pca(embeddings: np.ndarray, *, eigen_vectors: np.ndarray, means: np.ndarray) -> np.ndarray:
    """AudioSet's VGGish post-processing: PCA (with whitening), clip to [-2, 2], quantise to 0..255.

    As torchvggish's ``Postprocessor`` (float32). ``embeddings``: (n, 128) -> (n, 128) float32 integers.
    """
    pca = (embeddings.astype(np.float32) - means.astype(np.float32)) @ eigen_vectors.astype(np.float32).T
    return np.round((np.clip(pca, -2.0, 2.0) + 2.0) * np.float32(255.0 / 4.0)).astype(np.float32)


POSTPROCESSORS: dict[str, Callable[..., np.ndarray]] = {"vggish_pca": vggish_pca}
"""Post-processing kinds an artifact's manifest may carry data for, each ``(outputs, **data) -> outputs``."""
