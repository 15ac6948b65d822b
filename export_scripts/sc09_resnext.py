"""The SC09 benchmark's speech-digit classifier (SaShiMi's ResNeXt-29) for export, without the original source tree.

The published ``resnext.pth`` (Hugging Face ``krandiash/sashimi-release``, ``sc09_classifier/resnext.pth``) is a
whole pickled ``torch.nn.DataParallel(CifarResNeXt(nlabels=10, cardinality=8, depth=29, base_width=64,
widen_factor=4, in_channels=1))`` whose classes pickle as ``models.resnext.CifarResNeXt`` and
``models.resnext.ResNeXtBottleneck``. It is read with ``torch.load(weights_only=True)``: those two names are
allowed as empty ``nn.Module`` stand-ins that only receive their pickled state (no code of the original runs,
and nothing else outside torch's tensor types and ``torch.nn`` containers is accepted); the state dict is then
loaded strictly into the port below. The exported program takes the 32x32 dB mel and returns the 10 logits and
the 1024-d input of the final classifier layer (what the benchmark's forward hook reads).

References: Goel et al., "It's Raw! Audio Generation with State-Space Models", ICML 2022 (github.com/
HazyResearch/state-spaces ``sashimi/sc09_classifier``); Xie et al., "Aggregated Residual Transformations for
Deep Neural Networks" (ResNeXt), CVPR 2017; tugstugi/pytorch-speech-commands ``models/resnext.py``.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import load_strict

FAMILY = "sc09"
"""The model family (``audiofidelity/models/sc09.py``) whose artifacts this module builds; ``export.py`` finds
it by this."""

CARDINALITY, DEPTH, BASE_WIDTH, WIDEN, LABELS = 8, 29, 64, 4, 10
STAGES = (64, 64 * WIDEN, 128 * WIDEN, 256 * WIDEN)
FRONTEND = dict(kind="sc09_mel", sample_rate=16000, samples=16000, n_fft=2048, hop_length=512, n_mels=32,
                amin=1e-10, top_db=80.0)
"""The benchmark's ``LoadAudio`` (16 kHz) + ``FixAudioLength`` (1 s) + ``ToMelSpectrogram(n_mels=32)``."""
CITATION = ("Goel, K., Gu, A., Donahue, C., Ré, C. It's Raw! Audio Generation with State-Space Models. "
            "ICML 2022.")


class Bottleneck(nn.Module):
    """ResNeXt bottleneck: 1x1 reduce, grouped 3x3, 1x1 expand, each with batch norm; projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        inner = CARDINALITY * int(BASE_WIDTH * (cout / (WIDEN * 64.0)))
        self.conv_reduce = nn.Conv2d(cin, inner, 1, 1, 0, bias=False)
        self.bn_reduce = nn.BatchNorm2d(inner)
        self.conv_conv = nn.Conv2d(inner, inner, 3, stride, 1, groups=CARDINALITY, bias=False)
        self.bn = nn.BatchNorm2d(inner)
        self.conv_expand = nn.Conv2d(inner, cout, 1, 1, 0, bias=False)
        self.bn_expand = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if cin != cout:
            self.shortcut.add_module("shortcut_conv", nn.Conv2d(cin, cout, 1, stride, 0, bias=False))
            self.shortcut.add_module("shortcut_bn", nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn_reduce(self.conv_reduce(x)))
        y = F.relu(self.bn(self.conv_conv(y)))
        return F.relu(self.shortcut(x) + self.bn_expand(self.conv_expand(y)))


class ResNeXt(nn.Module):
    """CifarResNeXt-29 (8x64d, widen 4) on one input channel: (batch, 1, 32, 32) -> logits, 1024-d features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_1_3x3 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
        self.bn_1 = nn.BatchNorm2d(64)
        for s, stride in enumerate((1, 2, 2)):
            name = f"stage_{s + 1}"
            stage = nn.Sequential()
            for i in range((DEPTH - 2) // 9):
                cin, step = (STAGES[s], stride) if i == 0 else (STAGES[s + 1], 1)
                stage.add_module(f"{name}_bottleneck_{i}", Bottleneck(cin, STAGES[s + 1], step))
            self.add_module(name, stage)
        self.classifier = nn.Linear(STAGES[3], LABELS)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.bn_1(self.conv_1_3x3(mel)))
        x = self.stage_3(self.stage_2(self.stage_1(x)))
        features = F.avg_pool2d(x, 8, 1).reshape(-1, STAGES[3])
        return self.classifier(features), features


def _pickled_stand_in(name: str) -> type:
    """An empty ``nn.Module`` class that unpickles as ``models.resnext.<name>`` and keeps only its state."""
    cls = type(name, (nn.Module,), {"__module__": "models.resnext"})
    cls.__qualname__ = name
    return cls


def read_state_dict(source: Path) -> dict[str, torch.Tensor]:
    """The classifier's state dict from the pickled ``DataParallel`` (see the module docstring)."""
    allowed = [_pickled_stand_in("CifarResNeXt"), _pickled_stand_in("ResNeXtBottleneck"),
               nn.DataParallel, nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.Sequential]
    try:
        with torch.serialization.safe_globals(allowed):
            model = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler names what it refused
        raise SystemExit(f"{source}: not the SC09 benchmark's pickled DataParallel(CifarResNeXt) "
                         f"({str(exc).splitlines()[0]})") from None
    inner = getattr(model, "module", model)
    if not isinstance(inner, nn.Module):
        raise SystemExit(f"{source}: expected a pickled DataParallel(CifarResNeXt), got {type(model).__name__}")
    return inner.state_dict()


def build(name: str, source: Path) -> dict:
    """Everything ``export.py`` needs to export the SC09 classifier."""
    model = load_strict(ResNeXt(), read_state_dict(source), source, "SC09 CifarResNeXt-29 state dict")
    batch = torch.export.Dim("batch", min=1, max=4096)
    example = torch.randn(2, 1, 32, 32) * 20 - 40
    return dict(
        module=model,
        example_inputs=(example,),
        dynamic_shapes={"mel": {0: batch}},
        frontend=dict(FRONTEND),
        inputs=[dict(name="mel", shape=["batch", 1, 32, 32], dtype="float32",
                     memory=dict(axis=None, fixed_bytes=50_000_000, bytes_per_item=20_000_000))],
        outputs=[dict(name="logits", shape=["batch", LABELS], dtype="float32", roles=["logits"]),
                 dict(name="1024", shape=["batch", STAGES[3]], dtype="float32", roles=["embedding"])],
        citation=CITATION,
    )
