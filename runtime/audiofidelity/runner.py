"""Run frontend outputs through a loaded artifact in batches; the one runner every model uses.

Inputs of equal shape are stacked into batches (no padding, so a clip's features do not depend
on its batch-mates); outputs come back in input order, one array per manifest output.
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
        Most clips per forward pass; clips are only batched with clips of the same shape.
    """

    def __init__(self, artifact: LoadedArtifact, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.artifact = artifact
        self.batch_size = batch_size
        spec = artifact.manifest.inputs[0]
        self._axes = spec["shape"][1:]  # per-clip axes (no batch)
        self._minimum = spec.get("min", {})

    def check_input(self, x: np.ndarray) -> None:
        """Raise ``InvalidAudioError`` if one clip's input does not fit the artifact's input spec."""
        if x.ndim != len(self._axes):
            raise InvalidAudioError(f"model input has shape {x.shape}, expected axes {self._axes}")
        for size, axis in zip(x.shape, self._axes):
            if isinstance(axis, int) and size != axis:
                raise InvalidAudioError(f"model input has shape {x.shape}, expected {self._axes}")
            if isinstance(axis, str) and size < self._minimum.get(axis, 0):
                raise InvalidAudioError(
                    f"too short for {self.artifact.manifest.name}: {size} {axis}, the model needs at least "
                    f"{self._minimum[axis]}")

    def run(self, inputs: Sequence[np.ndarray], *,
            on_batch: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
        """Model outputs for each input, stacked: ``{output name: array (len(inputs), ...)}``.

        ``on_batch(n)`` is called after each forward pass with the number of clips it held (progress).
        """
        import torch

        names = self.artifact.manifest.output_names
        if not inputs:
            return {o["name"]: np.zeros((0, *o["shape"][1:]), np.float32) for o in self.artifact.manifest.outputs}
        results: list[list[np.ndarray] | None] = [None] * len(inputs)
        by_shape: dict[tuple, list[int]] = defaultdict(list)
        for i, x in enumerate(inputs):
            self.check_input(x)
            by_shape[x.shape].append(i)
        module, device = self.artifact.program, self.artifact.device
        with torch.inference_mode():
            for indices in by_shape.values():
                for start in range(0, len(indices), self.batch_size):
                    chunk = indices[start:start + self.batch_size]
                    batch = torch.from_numpy(np.stack([inputs[i] for i in chunk])).to(device)
                    outputs = module(batch)
                    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
                    arrays = [o.float().cpu().numpy() for o in outputs]
                    for row, i in enumerate(chunk):
                        results[i] = [a[row] for a in arrays]
                    if on_batch is not None:
                        on_batch(len(chunk))
        return {name: np.stack([r[k] for r in results]) for k, name in enumerate(names)}
