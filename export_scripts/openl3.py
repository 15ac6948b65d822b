"""OpenL3 mel256 for export: openl3's audio network from the decibel mel on, no TensorFlow, Keras or kapre.

openl3 0.4.2's weights (``openl3_audio_mel256_music.h5``, ``..._env.h5``) are Keras 2 ``save_weights`` HDF5 files that
``load_audio_embedding_model_from_path`` loads by topology: the layers that hold weights, in file order, matched to
the constructed model's by position. This module reads them the same way (names are not relied on; shapes are
checked) into the network ``_construct_mel256_audio_network`` builds after its kapre frontend: a one-channel batch
norm; four blocks of two 3x3 'same' convolutions (64, 128, 256, 512 filters), each followed by a batch norm
(Keras' epsilon 1e-3) and a ReLU, the first three blocks closed by a 2x2 max pool (stride 2, 'valid'); except that the
last convolution (``audio_embedding_layer``) has no batch norm and no ReLU; then ``load_audio_embedding_model``'s
512-d pooling: a (32, 24) 'same' max pool over the (32, 24) map that is left, i.e. the maximum over it, flattened.

Input: the decibel mel of ``openl3_mel`` (``audiofidelity/models/openl3.py``), (batch, 1, 256, 199): 256 mel bands
by 199 STFT frames of one 1-s window at 48 kHz, Keras' (batch, 256, 199, 1) channels-last map as channels-first.
Output: (batch, 512).

References: Cramer, Wu, Salamon, Bello, "Look, Listen and Learn More: Design Choices for Deep Audio Embeddings",
ICASSP 2019; github.com/marl/openl3 ``openl3/models.py`` (0.4.2).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FAMILY = "openl3"
"""The model family (``audiofidelity/models/openl3.py``) whose artifacts this module builds; ``export.py`` finds it by
this."""
REQUIRES = {"h5py": "pip install 'audiofidelity[export]'"}
"""What this export imports beyond torch, and how to get it (``build`` checks before it downloads)."""

FILTERS = (64, 64, 128, 128, 256, 256, 512, 512)
POOLED_AFTER = (1, 3, 5)
"""The convolutions (0-based) after whose ReLU a 2x2 max pool closes a block."""
MEL_BINS, FRAMES, EMBEDDING = 256, 199, 512
BN_EPS = 1e-3
"""Keras' ``BatchNormalization`` default epsilon (PyTorch's is 1e-5)."""
CITATION = ("Cramer, A. L., Wu, H.-H., Salamon, J., Bello, J. P. Look, Listen and Learn More: Design Choices for Deep "
            "Audio Embeddings. ICASSP 2019. Arandjelović, R., Zisserman, A. Look, Listen and Learn. ICCV 2017.")


class OpenL3Mel256(nn.Module):
    """openl3's mel256 audio network after its frontend, with the 512-d max pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.bn_input = nn.BatchNorm2d(1, eps=BN_EPS)
        channels = [1, *FILTERS]
        self.convs = nn.ModuleList(nn.Conv2d(channels[i], channels[i + 1], 3, padding=1) for i in range(8))
        self.bns = nn.ModuleList(nn.BatchNorm2d(f, eps=BN_EPS) for f in FILTERS[:-1])

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.bn_input(mel)
        for i, bn in enumerate(self.bns):
            x = F.relu(bn(self.convs[i](x)))
            if i in POOLED_AFTER:
                x = F.max_pool2d(x, 2, 2)
        return self.convs[-1](x).amax(dim=(2, 3))


def _layer_weights(group) -> list[np.ndarray]:
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
    return [np.asarray(group[name], dtype=np.float32) for name in names]


def read_keras_weights(source: Path) -> list[list[np.ndarray]]:
    """The weights of every layer that has some, in the file's layer order, as Keras' ``load_weights`` reads an HDF5
    weights file by topology (a whole-model file's ``model_weights`` group too)."""
    import gzip
    import io

    import h5py

    with open(source, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"  # the upstream download, ``<file>-v0_4_0.h5.gz``
    try:
        f = h5py.File(io.BytesIO(gzip.decompress(source.read_bytes())) if gzipped else source, "r")
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise SystemExit(f"{source}: not an HDF5 file ({exc}); expected openl3's Keras weights (.h5)") from exc
    with f:
        root = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise SystemExit(f"{source}: no 'layer_names' attribute; not a Keras weights file")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in root.attrs["layer_names"]]
        return [w for w in (_layer_weights(root[name]) for name in names) if w]


def load_net(source: Path) -> OpenL3Mel256:
    """openl3's mel256 weights in ``OpenL3Mel256``: 16 weighted layers (the input batch norm, then each convolution and
    the batch norm after it), shapes checked."""
    layers = read_keras_weights(source)
    expected = 1 + 2 * len(FILTERS) - 1
    if len(layers) != expected:
        raise SystemExit(f"{source}: {len(layers)} layers with weights, expected {expected} (openl3's mel256 audio "
                         f"network: a batch norm, 8 convolutions, 7 batch norms)")
    net = OpenL3Mel256()
    order: list[nn.Module] = [net.bn_input]
    for i, conv in enumerate(net.convs):
        order.append(conv)
        if i < len(net.bns):
            order.append(net.bns[i])
    with torch.no_grad():
        for index, (module, arrays) in enumerate(zip(order, layers)):
            if isinstance(module, nn.Conv2d):
                want = [(3, 3, module.in_channels, module.out_channels), (module.out_channels,)]
                _check(source, index, arrays, want)
                module.weight.copy_(torch.from_numpy(arrays[0].transpose(3, 2, 0, 1).copy()))
                module.bias.copy_(torch.from_numpy(arrays[1]))
            else:  # Keras order: gamma, beta, moving mean, moving variance
                _check(source, index, arrays, [(module.num_features,)] * 4)
                for target, array in zip((module.weight, module.bias, module.running_mean, module.running_var),
                                         arrays):
                    target.copy_(torch.from_numpy(array))
    return net.eval()


def _check(source: Path, index: int, arrays: list[np.ndarray], want: list[tuple[int, ...]]) -> None:
    got = [tuple(a.shape) for a in arrays]
    if got != want:
        raise SystemExit(f"{source}: weighted layer {index} has shapes {got}, expected {want} (openl3's mel256 "
                         f"audio network)")


MEMORY = dict(axis=None, fixed_bytes=32_000_000, bytes_per_item=60_000_000)
"""Peak activation memory of a pass: a fixed part plus each 1-s window; the 64-filter maps at full resolution are
13 MB each (64 x 256 x 199 float32) and a few are alive at once."""


def build(name: str, source: Path) -> dict:
    """Everything ``export.py`` needs to export one OpenL3 mel256 artifact."""
    from audiofidelity.models.openl3 import FRONTEND

    batch = torch.export.Dim("batch", min=1, max=4096)
    example = torch.rand(3, 1, MEL_BINS, FRAMES, generator=torch.Generator().manual_seed(0)) * -80.0
    return dict(
        module=load_net(source),
        example_inputs=(example,),
        dynamic_shapes={"mel": {0: batch}},
        frontend=dict(FRONTEND),
        inputs=[dict(name="mel", shape=["batch", 1, MEL_BINS, FRAMES], dtype="float32", items_per_clip="variable",
                     memory=MEMORY)],
        outputs=[dict(name="openl3", shape=["batch", EMBEDDING], dtype="float32", roles=["fad"])],
        citation=CITATION,
    )
