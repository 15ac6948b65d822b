"""Run frontend outputs through a loaded artifact in batches; the one runner every model uses.

A frontend gives each clip an array of *items* (one log-mel for CNN14, several 0.96 s examples for
VGGish). Items of equal shape are stacked into batches across clips (no padding, so a clip's
features do not depend on its batch-mates); outputs come back per clip, in input order: shape
(D,) for one-item models, (items, D) otherwise.
"""
from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .artifacts import LoadedArtifact
from .errors import InvalidAudioError

DEFAULT_BATCH_SIZE = 8


@dataclass(frozen=True)
class InputSpec:
    """What one clip's frontend output must look like for an artifact (picklable, for worker processes)."""

    name: str
    axes: tuple
    minimum: dict

    @classmethod
    def from_manifest(cls, manifest) -> "InputSpec":
        spec = manifest.inputs[0]
        return cls(manifest.name, tuple(spec["shape"][1:]), dict(spec.get("min", {})))  # per-item axes (no batch)

    def check(self, x: np.ndarray) -> None:
        """Raise ``InvalidAudioError`` if one clip's frontend output does not fit the artifact's input spec."""
        if x.ndim != len(self.axes) + 1:
            raise InvalidAudioError(f"{self.name} input has shape {x.shape}, expected (items, {self.axes})")
        if x.shape[0] == 0:
            raise InvalidAudioError(f"too short for {self.name}: the frontend produced no complete input")
        for size, axis in zip(x.shape[1:], self.axes):
            if isinstance(axis, int) and size != axis:
                raise InvalidAudioError(f"{self.name} input has shape {x.shape[1:]}, expected {self.axes}")
            if isinstance(axis, str) and size < self.minimum.get(axis, 0):
                raise InvalidAudioError(
                    f"too short for {self.name}: {size} {axis}, the model needs at least {self.minimum[axis]}")


class EmbeddingRunner:
    """Batches per-clip model inputs through an artifact's program.

    Parameters
    ----------
    artifact : LoadedArtifact
    batch_size : int
        Most items per forward pass; items are only batched with items of the same shape.
    average_items : bool
        Return the mean over a clip's items (windows of a chunked clip) instead of one row per item.
    precision : str
        ``fp32`` (exact), or the opt-in ``bf16`` (autocast, any device) or ``tf32`` (CUDA matmuls and
        convolutions): faster, and the features move (see the README for how much).
    """

    def __init__(self, artifact: LoadedArtifact, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 average_items: bool = False, precision: str = "fp32") -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "tf32" and not artifact.device.startswith("cuda"):
            raise ValueError("tf32 applies to CUDA devices only (use --device cuda, or bf16 on the CPU)")
        self.precision = precision
        self.artifact = artifact
        self.batch_size = batch_size
        self.average_items = average_items
        self.input_spec = InputSpec.from_manifest(artifact.manifest)
        self.one_item = artifact.manifest.inputs[0].get("items_per_clip", 1) == 1

    def check_input(self, x: np.ndarray) -> None:
        """Raise ``InvalidAudioError`` if one clip's frontend output does not fit the artifact's input spec."""
        self.input_spec.check(x)

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
        with torch.inference_mode(), _precision(self.precision, device):
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


PRECISIONS = ("fp32", "tf32", "bf16")


@contextlib.contextmanager
def _precision(precision: str, device: str):
    """Run the enclosed model calls at ``precision``; fp32 changes nothing."""
    import torch

    if precision == "bf16":
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16):
            yield
    elif precision == "tf32":
        saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    else:
        yield


def vggish_pca(embeddings: np.ndarray, *, eigen_vectors: np.ndarray, means: np.ndarray) -> np.ndarray:
    """AudioSet's VGGish post-processing: PCA (with whitening), clip to [-2, 2], quantise to 0..255.

    As torchvggish's ``Postprocessor`` (float32). ``embeddings``: (n, 128) -> (n, 128) float32 integers.
    """
    pca = (embeddings.astype(np.float32) - means.astype(np.float32)) @ eigen_vectors.astype(np.float32).T
    return np.round((np.clip(pca, -2.0, 2.0) + 2.0) * np.float32(255.0 / 4.0)).astype(np.float32)


POSTPROCESSORS: dict[str, Callable[..., np.ndarray]] = {"vggish_pca": vggish_pca}
"""Post-processing kinds an artifact's manifest may carry data for, each ``(outputs, **data) -> outputs``."""
