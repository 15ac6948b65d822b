"""VGGish for export: the VGG body as a clean ``nn.Module`` and torchvggish's checkpoint loader.

torchvggish's release file ``vggish-10086976.pth`` is a plain state dict (``features.*`` conv
layers, ``embeddings.*`` fully connected layers). The export outputs the 128-d embedding **before**
the final ReLU, as audioldm_eval and frechet_audio_distance use it (``use_activation=False``).
The optional PCA file (``vggish_pca_params-970ea276.pth``) is carried next to the program as
``vggish.pca.npz`` (referenced, with its sha256, from the manifest) so the runtime can apply
AudioSet's PCA + 8-bit quantisation on request.

References: Hershey et al., "CNN Architectures for Large-Scale Audio Classification", ICASSP 2017;
github.com/harritaylor/torchvggish; tensorflow/models ``research/audioset/vggish``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoints import load_strict

FAMILY = "vggish"
"""The model family (``audiofidelity/models/vggish.py``) whose artifacts this module builds; ``export.py`` finds
it by this."""

FRONTEND = dict(kind="vggish_examples", sample_rate=16000, window_length=400, hop_length=160, fft_length=512,
                n_mels=64, fmin=125.0, fmax=7500.0, log_offset=0.01, example_frames=96, example_hop=96)
CITATION = ("Hershey, S. et al. CNN Architectures for Large-Scale Audio Classification. ICASSP 2017. "
            "Kilgour, K. et al. Fréchet Audio Distance: A Reference-Free Metric for Evaluating Music "
            "Enhancement Algorithms. Interspeech 2019.")
PCA_FILE_SUFFIX = ".pca.npz"


def _features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 1
    for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.ReLU()]
            channels = v
    return nn.Sequential(*layers)


class VGGishBody(nn.Module):
    """VGGish from log-mel examples (batch, 1, 96, 64) to the 128-d embedding before the last ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _features()
        self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                                        nn.Linear(4096, 128))

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        x = self.features(examples)
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # (batch, time, freq, channels), as TF's VGGish
        return self.embeddings(x)


def load_body(source: Path) -> VGGishBody:
    """Load torchvggish's state dict into ``VGGishBody`` with a strict key check."""
    state = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise SystemExit(f"{source}: expected torchvggish's state dict, got {type(state).__name__}")
    return load_strict(VGGishBody(), state, source, "torchvggish VGGish state dict")


def _numpy_array_globals() -> list:
    """What unpickling a dict of float NumPy arrays needs, so ``weights_only`` loading still applies."""
    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, np.dtypes.Float32DType, np.dtypes.Float64DType]


def write_pca(pca: Path, out: Path) -> Path:
    """Convert torchvggish's PCA parameters to ``out`` (an .npz: eigen_vectors (128, 128), means (128,))."""
    with torch.serialization.safe_globals(_numpy_array_globals()):  # the file holds NumPy arrays, not tensors
        params = torch.load(pca, map_location="cpu", weights_only=True)
    try:
        vectors = np.asarray(params["pca_eigen_vectors"], dtype=np.float32)
        means = np.asarray(params["pca_means"], dtype=np.float32).reshape(-1)
    except (KeyError, TypeError) as exc:
        raise SystemExit(f"{pca}: expected torchvggish's PCA parameters (pca_eigen_vectors, pca_means)") from exc
    if vectors.shape != (128, 128) or means.shape != (128,):
        raise SystemExit(f"{pca}: PCA shapes {vectors.shape} and {means.shape}, expected (128, 128) and (128,)")
    with open(out, "wb") as f:
        np.savez(f, eigen_vectors=vectors, means=means)
    return out


MEMORY = dict(axis=None, fixed_bytes=20_000_000, bytes_per_item=3_500_000)
"""Peak activation memory of a pass: a fixed part plus each 0.96-s example, an upper bound of what was
measured on the CPU (3.0 MB per example at a batch of 512)."""


def build(name: str, source: Path) -> dict:
    """Everything ``export.py`` needs to export the VGGish artifact."""
    body = load_body(source)
    batch = torch.export.Dim("batch", min=1, max=65536)
    example = torch.randn(3, 1, 96, 64)
    return dict(
        module=body,
        example_inputs=(example,),
        dynamic_shapes={"examples": {0: batch}},
        frontend=dict(FRONTEND),
        inputs=[dict(name="examples", shape=["batch", 1, 96, 64], dtype="float32", items_per_clip="variable",
                     memory=MEMORY)],
        outputs=[dict(name="vggish", shape=["batch", 128], dtype="float32", roles=["fad"])],
        citation=CITATION,
    )
