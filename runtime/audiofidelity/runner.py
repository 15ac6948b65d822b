"""Run frontend outputs through a loaded artifact in batches; the one runner every model uses.

A frontend gives each clip an array of *items* (one log-mel for CNN14, several 0.96 s examples for
VGGish, the windows of a chunked MERT clip), or a list of items of different lengths (EnCodec 48 kHz's
1-s segments, the last one shorter). CPU kernels round differently for different batch sizes, but at one batch
size an item's output does not depend on the other items of its pass (``tests/test_runner.py`` checks it for every
model). So a clip's features are the same bits whatever ran beside it (and whatever the feature cache held) when
every pass an item can be in has one size:

- items of the frontend's *nominal* shape (its window's: VGGish's examples, PaSST's, CLAP's and OpenL3's windows,
  aesthetics' and PAM's chunks, EnCodec-48k's 1-s segments; a whole-clip model's 10-s clip: CNN14) run across
  clips in passes of exactly one size (``batch_size``, or fewer for large items: ``NOMINAL_PASS_BYTES``), the last
  one filled with zero items whose outputs are dropped;
- items of any other shape (a whole clip of another length, a short clip's unpadded window) run one clip at a
  time, at most ``batch_size`` per pass: a pass's size then depends on the clip alone.

``across_clips`` batches those too (faster for CNN14 on equal-length clips; a clip's last bits then depend on its
batch-mates). Outputs come back per clip, in input order:
shape (D,) for one-item models, (items, D) otherwise; an output whose first per-item axis is named (frames)
is concatenated along it, so a clip's frames come back as one (frames, D) array whatever its segmenting.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Collection, Sequence, Union

import numpy as np

from .artifacts import LoadedArtifact, weight_layout
from .errors import InvalidAudioError, TooLongForMemoryError
from .memory import MemoryModel, format_bytes
from .models.family import COLLECTS

DEFAULT_BATCH_SIZE = 8
NOMINAL_PASS_BYTES = 1 << 29
"""The most a pass of nominal items may take (512 MiB by the manifest's memory model): large items (a 10-s PaSST or
WavLM window) gain little from batching on a CPU and would make one clip's call cost a whole pass of them."""
Items = Union[np.ndarray, Sequence[np.ndarray]]
"""One clip's model input: an array with a leading items axis, or a list of items of different shapes."""


@dataclass(frozen=True)
class InputSpec:
    """What one clip's frontend output must look like for an artifact (picklable, for worker processes)."""

    name: str
    axes: tuple
    minimum: dict
    memory: MemoryModel | None = None
    nominal: tuple[int, ...] | None = None
    """The frontend's nominal item shape: such items run in full passes of ``nominal_pass`` (``EmbeddingRunner``)."""
    nominal_pass: int = 1

    def nominal_pass_size(self, batch_size: int) -> int:
        """How many items a pass of nominal ones holds: ``batch_size``, or fewer where one item is large, so a pass
        stays within ``NOMINAL_PASS_BYTES`` (the same on every machine: never the memory available)."""
        if self.nominal is None or self.memory is None:
            return batch_size
        units = self.nominal[self.axes.index(self.memory.axis)] if self.memory.axis else 0
        fits = int((NOMINAL_PASS_BYTES - self.memory.fixed_bytes) // max(self.memory.item_bytes(units), 1.0))
        return max(1, min(batch_size, fits))

    @classmethod
    def from_manifest(cls, manifest) -> "InputSpec":
        spec = manifest.input
        return cls(manifest.name, spec.per_item, spec.minimum, MemoryModel.from_manifest(spec.memory))

    def pass_bytes(self, x: Items, batch_size: int) -> float:
        """Estimated peak memory of the largest forward pass over one clip's items ``x`` (0: no model)."""
        if self.memory is None or not len(x):
            return 0.0
        units = max(item.shape[self.axes.index(self.memory.axis)] for item in x) if self.memory.axis else 0
        full = any(item.shape == self.nominal for item in x)
        return self.memory.pass_bytes(self.nominal_pass if full else min(batch_size, len(x)), units)

    def check_memory(self, x: Items, batch_size: int, budget: int | None, advice: str) -> None:
        """Raise ``TooLongForMemoryError`` if one clip's pass would exceed ``budget`` bytes (None: no guard)."""
        need = self.pass_bytes(x, batch_size)
        if budget is not None and need > budget:
            raise TooLongForMemoryError(
                f"too long for memory: {self.name} would need about {format_bytes(need)} for this clip, over the "
                f"{format_bytes(budget)} budget (--max-memory; default half the available memory); {advice}")

    def check(self, x: Items) -> None:
        """Raise ``InvalidAudioError`` if one clip's frontend output does not fit the artifact's input spec."""
        if len(x) == 0:
            raise InvalidAudioError(f"too short for {self.name}: the frontend produced no complete input")
        for item in x:
            if item.ndim != len(self.axes):
                raise InvalidAudioError(f"{self.name} input item has shape {item.shape}, expected {self.axes}")
            for size, axis in zip(item.shape, self.axes):
                if isinstance(axis, int) and size != axis:
                    raise InvalidAudioError(f"{self.name} input has shape {item.shape}, expected {self.axes}")
                if isinstance(axis, str) and size < self.minimum.get(axis, 0):
                    raise InvalidAudioError(f"too short for {self.name}: {size} {axis}, the model needs at least "
                                            f"{self.minimum[axis]}")


class EmbeddingRunner:
    """Batches per-clip model inputs through an artifact's program.

    Parameters
    ----------
    artifact : LoadedArtifact
    batch_size : int
        Most items per forward pass; items are only batched with items of the same shape.
    across_clips : bool
        Fill passes with items of several clips of the same shape also where that shape is not the nominal one
        (faster on the CPU, 1.2-1.7x for CNN14 here; a clip's last bits then depend on which clips share its pass).
    nominal_shape : tuple, optional
        The frontend's usual item shape (``models.nominal_item_shape``): items of it run across clips in passes of
        exactly ``nominal_pass`` (``nominal_scale * batch_size``, or fewer for large items:
        ``InputSpec.nominal_pass_size``), zero-filled.
    nominal_scale : int
        Batch sizes of nominal items per full pass (``models.nominal_pass_scale``).
    collect : {"mean", "max", "each"}, optional
        Return one row per clip from its items (windows of a chunked clip): their mean, or each column's largest
        value; or one row per item (``each``) even for an artifact whose manifest feeds one item per clip;
        None: one row per item, the one item's row itself where the manifest says one.
    precision : str
        ``fp32`` (exact), or the opt-in ``bf16`` (autocast, any device) or ``tf32`` (CUDA matmuls and
        convolutions): faster, and the features move (see the README for how much).
    """

    def __init__(self, artifact: LoadedArtifact, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 collect: str | None = None, precision: str = "fp32", across_clips: bool = False,
                 nominal_shape: tuple[int, ...] | None = None, nominal_scale: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "tf32" and not artifact.device.startswith("cuda"):
            raise ValueError("tf32 applies to CUDA devices only (use --device cuda, or bf16 on the CPU)")
        self.precision = precision
        self.layout = weight_layout(precision)
        self.artifact = artifact
        self.batch_size = batch_size
        self.across_clips = across_clips
        self.nominal_shape = nominal_shape
        if collect not in (None, *COLLECTS):
            raise ValueError(f"collect must be one of {COLLECTS} or None, got {collect!r}")
        self.collect = collect
        spec = replace(InputSpec.from_manifest(artifact.manifest), nominal=nominal_shape)
        self.nominal_pass = spec.nominal_pass_size(nominal_scale * batch_size)
        self.input_spec = replace(spec, nominal_pass=self.nominal_pass)
        self.one_item = artifact.manifest.input.items_per_clip == 1 and collect != "each"

    def check_input(self, x: Items) -> None:
        """Raise ``InvalidAudioError`` if one clip's frontend output does not fit the artifact's input spec."""
        self.input_spec.check(x)

    def run(self, inputs: Sequence[Items], outputs: Collection[str] | None = None) -> dict[str, list[np.ndarray]]:
        """Model outputs per clip: ``{output name: [one array per input]}``; ``outputs``: only these are copied out
        of the program's results (MERT's hidden states are large when only the layer means are kept)."""
        import torch

        for x in inputs:
            self.check_input(x)
        module, device = self.artifact.program_for(self.precision), self.artifact.device
        # each group's items go through the program together, in passes of batch_size: one clip's items of one
        # shape, or (across_clips) every item of one shape
        owner = [clip for clip, x in enumerate(inputs) for _ in range(len(x))]
        items = [item for x in inputs for item in x]
        groups: dict = {}
        for k, item in enumerate(items):
            shared = self.across_clips or item.shape == self.nominal_shape
            groups.setdefault(item.shape if shared else (owner[k], item.shape), []).append(k)
        specs = [(j, spec) for j, spec in enumerate(self.artifact.manifest.output_specs)
                 if outputs is None or spec.name in outputs]
        rows: list[list[np.ndarray]] = [[] for _ in items]  # every item is in one group, so each is filled
        with torch.inference_mode(), _precision(self.precision, device):
            for members in groups.values():
                full = items[members[0]].shape == self.nominal_shape
                size = self.nominal_pass if full else self.batch_size
                for start in range(0, len(members), size):
                    chunk = members[start:start + size]
                    batch = np.stack([items[k] for k in chunk])
                    if full and len(chunk) < size:  # inert zero items: every such pass has one size
                        batch = np.concatenate([batch, np.zeros((size - len(chunk), *batch.shape[1:]), batch.dtype)])
                    results = module(torch.from_numpy(batch).to(device))
                    results = results if isinstance(results, (tuple, list)) else (results,)
                    arrays = [results[j].float().cpu().numpy() for j, _ in specs]
                    for row, k in enumerate(chunk):
                        rows[k] = [a[row] for a in arrays]
        per_clip: dict[str, list[np.ndarray]] = {}
        for index, (_, spec) in enumerate(specs):
            mine: list[list[np.ndarray]] = [[] for _ in inputs]
            for k, clip in enumerate(owner):
                mine[clip].append(rows[k][index])
            per_clip[spec.name] = [np.mean(r, axis=0) if self.collect == "mean" else np.max(r, axis=0)
                                   if self.collect == "max" else r[0] if self.one_item
                                   else np.concatenate(r) if spec.frame_rows else np.stack(r) for r in mine]
        return per_clip


PRECISIONS = ("fp32", "tf32", "bf16")


def native_bf16() -> bool:
    """Whether oneDNN runs bf16 on this CPU's own instructions (AVX-512 or AMX); elsewhere torch emulates it, and
    ``--precision bf16`` was measured 6x slower than fp32 (``benchmarks/RESULTS.md`` (t))."""
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


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
