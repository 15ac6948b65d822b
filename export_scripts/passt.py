"""PaSST-S for export: hear21passt's ``passt_s_swa_p16_128_ap476`` ViT from the mel on, no hear21passt or timm, and
its 20-s and 30-s variants (``passt_20sec``, ``passt_30sec``: the same network with 200 and 300 time embeddings).

The release file (``passt-s-f128-p16-s10-ap.476-swa.pt``; ``...-20sec-...``, ``...-30sec-...``) is a plain state
dict of the ``PaSST`` network that ``get_basic_model(mode="logits")`` (``base20sec``, ``base30sec``) wraps as
``net`` (or ``{"model": state_dict}``, which its ``checkpoint_filter_fn`` also accepts). This module computes that
network's eval-mode ``forward`` (patchout and dropout off): the 16x16 patch convolution at stride 10 over (128 mel
bins, frames) -> 12 x T patches, ``T = (frames - 16) // 10 + 1``; the time positional embedding cut to the first T
columns (as hear21passt does for a shorter input) plus the frequency one; the patches flattened frequency-major; the
cls and distillation tokens (each plus its ``new_pos_embed``) in front; 12 pre-norm blocks (12-head attention as
``scaled_dot_product_attention``, GELU MLP, LayerNorm eps 1e-6); the final norm; ``features`` = the mean of the two
tokens (768, what av-benchmark's FD_passt reads); ``logits`` = ``head`` (LayerNorm + Linear) of it. The distillation
head ``head_dist`` is in the checkpoint but the eval forward never reads it: checked and dropped.

Input: the mel of ``passt_mel`` (``audiofidelity/models/passt.py``), (batch, 1, 128, frames) with 16 <= frames <=
1005 (the 99 time embeddings; a 10-s clip at 32 kHz gives 1000; 2015 and 3015 for the variants); batch and frames
dynamic.

References: Koutini, Schlüter, Eghbal-zadeh, Widmer, "Efficient Training of Audio Transformers with Patchout",
Interspeech 2022; github.com/kkoutini/passt_hear21 ``hear21passt/models/passt.py`` (0.0.26).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import load_strict

FAMILY = "passt"
"""The model family (``audiofidelity/models/passt.py``) whose artifacts this module builds; ``export.py`` finds it by
this."""

DIM, DEPTH, HEADS, CLASSES = 768, 12, 12, 527
MEL_BINS, PATCH, STRIDE = 128, 16, 10
F_PATCHES = (MEL_BINS - PATCH) // STRIDE + 1
INPUT_TDIM = {"passt-s": 998, "passt-s-20s": 2000, "passt-s-30s": 3000}
"""Each artifact's ``get_model(input_tdim=...)``: the defaults (10 s), ``passt_20sec`` and ``passt_30sec``."""
MIN_FRAMES = PATCH


def time_patches(name: str) -> int:
    """Time embeddings of an artifact's network: hear21passt's ``PatchEmbed.grid_size``, ``input_tdim // 10`` (99,
    200, 300; the convolution gives ``(frames - 16) // 10 + 1`` patches, 199 for a 20-s clip's 2000 frames)."""
    return INPUT_TDIM[name] // STRIDE


def max_frames(t_patches: int) -> int:
    """The most frames that give at most ``t_patches`` time patches (1005 for 99: a 10-s clip gives 1000)."""
    return (t_patches - 1) * STRIDE + PATCH + STRIDE - 1
EPS = 1e-6
UNUSED = ("head_dist.weight", "head_dist.bias")
CITATION = ("Koutini, K., Schlüter, J., Eghbal-zadeh, H., Widmer, G. Efficient Training of Audio Transformers with "
            "Patchout. Interspeech 2022.")


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.proj = nn.Linear(DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, HEADS, c // HEADS).permute(2, 0, 3, 1, 4)
        # softmax(q k^T / sqrt(64)) v, the original's three steps, as one kernel that never holds the 12 x n x n
        # weights: 4x faster on a CPU at n = 1190, within 1e-6 of them (the parity tier bounds the logits)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(DIM, 4 * DIM), nn.Linear(4 * DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(DIM, eps=EPS), Attention()
        self.norm2, self.mlp = nn.LayerNorm(DIM, eps=EPS), Mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, DIM, kernel_size=PATCH, stride=STRIDE)


class PasstNet(nn.Module):
    """``PaSST`` (distilled, 527 classes) in eval mode: mel (batch, 1, 128, frames) -> (features, logits)."""

    def __init__(self, t_patches: int) -> None:
        super().__init__()
        self.t_patches = t_patches
        self.patch_embed = PatchEmbed()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.new_pos_embed = nn.Parameter(torch.zeros(1, 2, DIM))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, DIM, F_PATCHES, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, DIM, 1, t_patches))
        self.blocks = nn.Sequential(*[Block() for _ in range(DEPTH)])
        self.norm = nn.LayerNorm(DIM, eps=EPS)
        self.head = nn.Sequential(nn.LayerNorm(DIM), nn.Linear(DIM, CLASSES))  # LayerNorm's default eps, as upstream

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.patch_embed.proj(mel)  # (batch, 768, 12, T)
        t = x.shape[-1]
        torch._check(t <= self.t_patches)  # the first t time embeddings (hear21passt's slice), no guard on t == 99
        x = x + self.time_new_pos_embed.narrow(3, 0, t)
        x = x + self.freq_new_pos_embed
        x = x.flatten(2).transpose(1, 2)
        b = x.shape[0]
        cls = self.cls_token.expand(b, -1, -1) + self.new_pos_embed[:, :1, :]
        dist = self.dist_token.expand(b, -1, -1) + self.new_pos_embed[:, 1:, :]
        x = self.norm(self.blocks(torch.cat((cls, dist, x), dim=1)))
        features = (x[:, 0] + x[:, 1]) / 2
        return features, self.head(features)


def load_net(source: Path, name: str = "passt-s") -> PasstNet:
    """Load a PaSST-S release file for artifact ``name`` with a strict key check (``head_dist`` checked for shape,
    then dropped; the time embedding must be the variant's)."""
    state = torch.load(source, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or "time_new_pos_embed" not in state:
        raise SystemExit(f"{source}: expected a PaSST state dict (hear21passt's release file, with "
                         f"time_new_pos_embed), got {type(state).__name__}")
    shapes = {k: tuple(state[k].shape) for k in UNUSED if k in state}
    if shapes != {"head_dist.weight": (CLASSES, DIM), "head_dist.bias": (CLASSES,)}:
        raise SystemExit(f"{source}: not PaSST-S with 527 AudioSet classes; head_dist shapes {shapes}")
    time_shape, t_patches = tuple(state["time_new_pos_embed"].shape), time_patches(name)
    if time_shape != (1, DIM, 1, t_patches):
        other = next((n for n in INPUT_TDIM if (1, DIM, 1, time_patches(n)) == time_shape), None)
        raise SystemExit(f"{source}: time positional embedding {time_shape}, expected {(1, DIM, 1, t_patches)} for "
                         f"{name}" + (f" (this is {other}'s checkpoint: export it as {other})" if other else ""))
    return load_strict(PasstNet(t_patches), state, source, f"PaSST-S ({name}) state dict", ignore=UNUSED)


def window_samples(name: str) -> int:
    """The window at 32 kHz audioldm_eval's feeding cuts or zero-pads every clip to: 10 s (1000 frames), 20 s or
    30 s for the variants."""
    return {"passt-s": 10, "passt-s-20s": 20, "passt-s-30s": 30}[name] * 32000

MEMORY = dict(axis="frames", fixed_bytes=64_000_000, bytes_per_item=2_000_000, bytes_per_unit=60_000,
              bytes_per_unit_squared=300.0)
"""Peak activation memory of a pass: about 1.2 tokens per frame, a dozen (tokens, 768)-sized float32 tensors alive,
the attention scores (12 heads, tokens squared) twice. Measured as peak RSS growth of one pass of the loaded program
(torch 2.13, CPU): 26 MB (1 x 200 frames), 97 MB (1 x 500), 224 MB (2 x 500), 215 MB (1 x 1000), 768 MB
(4 x 1000); this bound is 64 + 26, 171, 278, 426 and 1512 MB there."""


def build(name: str, source: Path) -> dict:
    """Everything ``export.py`` needs to export PaSST-S."""
    from audiofidelity.models.passt import FRONTEND

    model = load_net(source, name)
    batch = torch.export.Dim("batch", min=1, max=1024)
    frames = torch.export.Dim("frames", min=MIN_FRAMES, max=max_frames(model.t_patches))
    # an example shorter than the longest input, so that no size is specialised to the embedding's 99 columns
    example = torch.randn(2, 1, MEL_BINS, 700, generator=torch.Generator().manual_seed(0)) * 0.8 - 0.3
    return dict(
        module=model,
        example_inputs=(example,),
        dynamic_shapes={"mel": {0: batch, 3: frames}},
        export_config={"backed_size_oblivious": True},  # one time patch is not special (no 0/1 specialisation)
        frontend={**FRONTEND, "samples": window_samples(name)},  # audioldm_eval's feeding: one window, cut or padded
        inputs=[dict(name="mel", shape=["batch", 1, MEL_BINS, "frames"], dtype="float32", min={"frames": MIN_FRAMES},
                     memory=MEMORY)],
        outputs=[dict(name="features", shape=["batch", DIM], dtype="float32", roles=["embedding"]),
                 dict(name="logits", shape=["batch", CLASSES], dtype="float32", roles=["logits"])],
        citation=CITATION,
    )
