"""LAION-CLAP's audio tower for export: HTS-AT (Swin transformer) + audio projection, no ``laion_clap`` package.

The published checkpoints (``630k-audioset-best.pt``: HTSAT-tiny; the music and music/speech ones: HTSAT-base;
``630k-audioset-fusion-best.pt``: HTSAT-tiny with feature fusion; ``models/clap.py`` ``CHECKPOINTS``) are
``{"state_dict": {"module.<key>": tensor}, ...}`` of the whole ``CLAP`` model (audio and text towers). The export
keeps ``audio_branch.*`` and ``audio_projection.*`` and computes what laion_clap's ``CLAP.get_audio_embedding`` does
for one 10-s window (the fusion model: for one clip's fusion planes, ``FusionPatchEmbed``): from the log-mel on
(the runtime's NumPy frontend reproduces torchlibrosa's, whose frozen buffers are checked here and dropped),
``bn0`` over mel bins, the bicubic stretch of 1001 frames to 1024 and the fold into a 256x256 image
(``reshape_wav2img``), the Swin layers, the token mean (``embedding``), the projection MLP, and L2 normalisation:
512 values per window.
The classification head (``tscam_conv``, ``head``) and the text tower are not exported.

An input is one 10-s window (480000 samples at 48 kHz -> 1001 frames) as laion_clap feeds it; the non-fusion towers'
frames axis is dynamic up to that, for audioldm_eval's CLAP score, which feeds a clip under 10 s as it is (HTS-AT
stretches any length to 1024 frames).

References: Wu, Chen et al., "Large-scale Contrastive Language-Audio Pretraining with Feature Fusion and
Keyword-to-Caption Augmentation", ICASSP 2023; Chen et al., "HTS-AT", ICASSP 2022; github.com/LAION-AI/CLAP
``src/laion_clap/clap_module/{htsat,model}.py``, ``hook.py``, ``training/data.py``.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audiofidelity.models.clap import CHECKPOINTS
from audiofidelity.registry import registry_entry
from .checkpoints import clap_state_dict, load_strict
from .clap_text import build_text
from .cnn14 import check_frontend_buffers

FAMILY = "clap"
"""The model family (``audiofidelity/models/clap.py``) whose artifacts this module builds; ``export.py`` finds
it by this."""

TOWERS = {"HTSAT-tiny": dict(embed_dim=96, depths=(2, 2, 6, 2)),
          "HTSAT-base": dict(embed_dim=128, depths=(2, 2, 12, 2)),
          "HTSAT-tiny-fusion": dict(embed_dim=96, depths=(2, 2, 6, 2), fusion=True)}
"""``create_htsat_model``'s ``tiny`` and ``base`` settings (both: 4/8/16/32 heads, window 8, spec 256); the fusion
checkpoint is ``tiny`` with ``fusion_type="aff_2d"`` (``CLAP_Module(enable_fusion=True)``)."""
TOWER_OF = {name: tower for name, _, tower in CHECKPOINTS}
HEADS, WINDOW, SPEC_SIZE, PATCH, MEL_BINS, FREQ_RATIO = (4, 8, 16, 32), 8, 256, 4, 64, 4
JOINT_DIM = 512
WINDOW_SAMPLES, FRAMES, MIN_FRAMES = 480000, 1001, 2
FRONTEND = dict(kind="clap_log_mel", sample_rate=48000, window_samples=WINDOW_SAMPLES, quantize=True,
                n_fft=1024, hop_length=480, win_length=1024, window="hann", center=True, pad_mode="reflect",
                power=2.0, n_mels=MEL_BINS, fmin=50, fmax=14000, htk=False, mel_norm="slaney", amin=1e-10, ref=1.0,
                top_db=None)
"""laion_clap's ``HTSAT-*.json`` audio_cfg and ``HTSAT_Swin_Transformer``'s torchlibrosa settings; ``quantize``:
``get_audio_embedding_from_data``'s int16 round trip."""
FUSION_FRONTEND = dict(FRONTEND, kind="clap_fusion_mel", htk=True, mel_norm=None)
"""The fusion model's input: ``training/data.py`` ``get_mel`` (torchaudio's ``MelSpectrogram``: HTK mel scale, no
filter normalisation; ``AmplitudeToDB``: 10 log10 of the power, floored at 1e-10) of the whole clip."""
FUSION_CHANNELS = 5
"""The fusion input's planes: the global mel, three local chunks, the ``longer`` flag."""
FROZEN_FRONTEND_KEYS = ("audio_branch.spectrogram_extractor.stft.conv_real.weight",
                        "audio_branch.spectrogram_extractor.stft.conv_imag.weight",
                        "audio_branch.logmel_extractor.melW")
UNUSED_PREFIXES = ("audio_branch.tscam_conv.", "audio_branch.head.", "audio_transform.", "text_", "logit_scale",
                   "token_embedding", "positional_embedding", "ln_final", "transformer.")
"""Keys of the whole CLAP model the audio embedding does not read."""
CITATION = ("Wu, Y., Chen, K., Zhang, T., Hui, Y., Berg-Kirkpatrick, T., Dubnov, S. Large-scale Contrastive "
            "Language-Audio Pretraining with Feature Fusion and Keyword-to-Caption Augmentation. ICASSP 2023.")


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window, window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    b = windows.shape[0] // ((h // window) * (w // window))  # the original's int(n / (h * w / window**2)), exact
    x = windows.view(b, h // window, w // window, window, window, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


def relative_position_index(window: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid([torch.arange(window), torch.arange(window)], indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    relative[:, :, 0] += window - 1
    relative[:, :, 1] += window - 1
    relative[:, :, 0] *= 2 * window - 1
    return relative.sum(-1)


def shifted_window_mask(h: int, w: int, window: int, shift: int) -> torch.Tensor:
    """SW-MSA's attention mask (0 within a region, -100 across regions), as HTS-AT builds it."""
    image = torch.zeros((1, h, w, 1))
    region = 0
    for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            image[:, hs, ws, :] = region
            region += 1
    windows = window_partition(image, window).view(-1, window * window)
    mask = windows.unsqueeze(1) - windows.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.window, self.heads, self.scale = window, heads, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        area = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(area, area, -1)
        bias = bias.permute(2, 0, 1).unsqueeze(0)  # (1, heads, n, n)
        if mask is not None:  # the shifted windows' mask, per window
            windows = mask.shape[0]
            bias = (bias + mask.unsqueeze(1)).repeat(b // windows, 1, 1, 1)
        # softmax((q / sqrt(d)) k^T + bias) v, the original's steps, as one kernel (about 1.6x faster on a CPU)
        out = F.scaled_dot_product_attention(qkv[0] * self.scale, qkv[1], qkv[2], attn_mask=bias, scale=1.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """A Swin block; where the resolution is no larger than the window, one window and no shift (as HTS-AT)."""

    def __init__(self, dim: int, resolution: int, heads: int, shift: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.window = min(WINDOW, resolution)
        self.shift = 0 if resolution <= WINDOW else shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, self.window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim)
        if self.shift:
            self.register_buffer("attn_mask", shifted_window_mask(resolution, resolution, self.window, self.shift))
        else:
            self.attn_mask = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = w = self.resolution
        b, _, c = x.shape
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = window_partition(x, self.window).view(-1, self.window * self.window, c)
        windows = self.attn(windows, self.attn_mask).view(-1, self.window, self.window, c)
        x = window_reverse(windows, self.window, h, w)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = shortcut + x.view(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        x = x.view(b, self.resolution, self.resolution, c)
        x = torch.cat([x[:, 0::2, 0::2, :], x[:, 1::2, 0::2, :], x[:, 0::2, 1::2, :], x[:, 1::2, 1::2, :]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinLayer(nn.Module):
    def __init__(self, dim: int, resolution: int, depth: int, heads: int, downsample: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(SwinBlock(dim, resolution, heads, 0 if i % 2 == 0 else WINDOW // 2)
                                    for i in range(depth))
        self.downsample = PatchMerging(dim, resolution) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=PATCH, stride=PATCH)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class AttentionalFusion(nn.Module):
    """``feature_fusion.AFF(type="2D")`` in eval mode: local and global channel attention over x + residual, then
    2 x wei + 2 residual (1 - wei)."""

    def __init__(self, channels: int, r: int = 4) -> None:
        super().__init__()
        inner = channels // r
        self.local_att = nn.Sequential(nn.Conv2d(channels, inner, 1), nn.BatchNorm2d(inner), nn.ReLU(),
                                       nn.Conv2d(inner, channels, 1), nn.BatchNorm2d(channels))
        self.global_att = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, inner, 1), nn.BatchNorm2d(inner),
                                        nn.ReLU(), nn.Conv2d(inner, channels, 1), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        mixed = x + residual
        weight = torch.sigmoid(self.local_att(mixed) + self.global_att(mixed))
        return 2 * x * weight + 2 * residual * (1 - weight)


class FusionPatchEmbed(PatchEmbed):
    """HTS-AT's ``PatchEmbed`` with ``fusion_type="aff_2d"``: the global view's patches, fused with the three local
    chunks' (``mel_conv2d``, 3x wider stride, their patches side by side, zero-padded to the global width) where
    ``longer`` is set; elsewhere the global patches alone (laion_clap then uses the first plane only)."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.mel_conv2d = nn.Conv2d(1, dim, kernel_size=(PATCH, PATCH * 3), stride=(PATCH, PATCH * 3))
        self.fusion_model = AttentionalFusion(dim)

    def forward(self, x: torch.Tensor, longer: torch.Tensor) -> torch.Tensor:
        glob = self.proj(x[:, :1])
        b, chunks, h, w = x[:, 1:].shape
        local = self.mel_conv2d(x[:, 1:].reshape(b * chunks, 1, h, w))
        local = local.view(b, chunks, *local.shape[1:]).permute(0, 2, 3, 1, 4).flatten(3)
        local = F.pad(local, (0, glob.shape[-1] - local.shape[-1]))  # 3 x 21 columns -> 64
        fused = torch.where(longer.view(-1, 1, 1, 1) > 0.5, self.fusion_model(glob, local), glob)
        return self.norm(fused.flatten(2).transpose(1, 2))


class HtsatBody(nn.Module):
    """``HTSAT_Swin_Transformer`` from the log-mel to its ``embedding`` (eval mode); with ``fusion``, from the fusion
    planes (``FUSION_CHANNELS``)."""

    def __init__(self, embed_dim: int, depths: tuple[int, ...], fusion: bool = False) -> None:
        super().__init__()
        self.fusion = fusion
        self.bn0 = nn.BatchNorm2d(MEL_BINS)
        self.patch_embed = FusionPatchEmbed(embed_dim) if fusion else PatchEmbed(embed_dim)
        grid = SPEC_SIZE // PATCH
        self.layers = nn.ModuleList(SwinLayer(embed_dim * 2 ** i, grid // 2 ** i, depth, HEADS[i], i < len(depths) - 1)
                                    for i, depth in enumerate(depths))
        self.features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(self.features)
        self.downsampled = 2 ** (len(depths) - 1) * PATCH

    def reshape_wav2img(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, (SPEC_SIZE * FREQ_RATIO, x.shape[3]), mode="bicubic", align_corners=True)
        x = x.permute(0, 1, 3, 2).contiguous()
        x = x.reshape(x.shape[0], x.shape[1], x.shape[2], FREQ_RATIO, x.shape[3] // FREQ_RATIO)
        x = x.permute(0, 1, 3, 2, 4).contiguous()
        return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3], x.shape[4])

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        longer = log_mel[:, -1, 0, 0] if self.fusion else None
        x = log_mel[:, :-1] if self.fusion else log_mel
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        x = self.reshape_wav2img(x)
        side = x.shape[2] // self.downsampled
        x = self.patch_embed(x, longer) if longer is not None else self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)
        b, _, c = x.shape
        x = x.permute(0, 2, 1).contiguous().reshape(b, c, side, side)
        freq_bins = side // FREQ_RATIO
        x = x.reshape(b, c, side // freq_bins, freq_bins, side).permute(0, 1, 3, 2, 4).contiguous()
        x = x.reshape(b, c, freq_bins, -1)
        return torch.flatten(F.adaptive_avg_pool1d(torch.flatten(x, 2), 1), 1)


class ClapAudioEmbedding(nn.Module):
    """``CLAP.get_audio_embedding`` from the log-mel: HTS-AT embedding -> projection MLP -> L2 norm."""

    def __init__(self, embed_dim: int, depths: tuple[int, ...], fusion: bool = False) -> None:
        super().__init__()
        self.audio_branch = HtsatBody(embed_dim, depths, fusion)
        self.audio_projection = nn.Sequential(nn.Linear(self.audio_branch.features, JOINT_DIM), nn.ReLU(),
                                              nn.Linear(JOINT_DIM, JOINT_DIM))

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio_projection(self.audio_branch(log_mel)), dim=-1)


def load_embedding(source: Path, name: str) -> ClapAudioEmbedding:
    """Load a LAION-CLAP checkpoint's audio tower and projection with a strict key check."""
    state = clap_state_dict(source)
    missing_frozen = [k for k in FROZEN_FRONTEND_KEYS if k not in state]
    if missing_frozen:
        raise SystemExit(f"{source}: not a LAION-CLAP HTS-AT checkpoint; missing keys {missing_frozen}")
    variant = TOWERS[TOWER_OF[name]]
    fused = any(".fusion_model." in k or ".mel_conv2d." in k for k in state)
    if fused != variant.get("fusion", False):
        raise SystemExit(f"{source}: {'a' if fused else 'not a'} fusion checkpoint, but {name} is LAION-CLAP "
                         f"{TOWER_OF[name]}; pass {'the *-fusion-best.pt' if not fused else 'a non-fusion'} checkpoint")
    # the torchlibrosa buffers are the HTS-AT's (a fusion model keeps them unused): they prove a 48-kHz HTS-AT
    check_frontend_buffers({k[len("audio_branch."):]: state[k] for k in FROZEN_FRONTEND_KEYS}, FRONTEND, source)
    unused = tuple(k for k in state if k in FROZEN_FRONTEND_KEYS or k.startswith(UNUSED_PREFIXES))
    return load_strict(ClapAudioEmbedding(variant["embed_dim"], variant["depths"], variant.get("fusion", False)),
                       state, source, f"LAION-CLAP {TOWER_OF[name]} state dict", ignore=unused)


MEMORY = dict(axis=None, fixed_bytes=200_000_000, bytes_per_item=150_000_000)
"""Peak activation memory per window, an upper bound of what was measured on the CPU."""


def build(name: str, source: Path, **extras: Path) -> dict:
    """Everything ``export.py`` needs to export one LAION-CLAP artifact: an audio tower here, a text tower
    (``*-text``, with the tokenizer files in ``extras``) in ``clap_text.py``."""
    if registry_entry(name).role == "text":
        return build_text(name, source, **extras)
    model = load_embedding(source, name)
    fusion = model.audio_branch.fusion
    batch = torch.export.Dim("batch", min=1, max=1024)
    channels = FUSION_CHANNELS if fusion else 1
    example = torch.randn(2, channels, FRAMES, MEL_BINS) * 20 - 30
    if fusion:  # one clip under 10 s (its planes alike, flag 0), one longer (flag 1)
        example[0, 1:4] = example[0, 0]
        example[:, 4] = torch.tensor([0.0, 1.0])[:, None, None]
    frames = FRAMES if fusion else "frames"
    return dict(
        module=model,
        example_inputs=(example,),
        dynamic_shapes={"log_mel": {0: batch} if fusion else
                        {0: batch, 2: torch.export.Dim("frames", min=MIN_FRAMES, max=FRAMES)}},
        frontend=dict(FUSION_FRONTEND if fusion else FRONTEND),
        inputs=[dict(name="log_mel", shape=["batch", channels, frames, MEL_BINS], dtype="float32",
                     items_per_clip=1 if fusion else "variable", memory=MEMORY,
                     **({} if fusion else {"min": {"frames": MIN_FRAMES}}))],
        outputs=[dict(name="embedding", shape=["batch", JOINT_DIM], dtype="float32", roles=["embedding"])],
        citation=CITATION,
    )
