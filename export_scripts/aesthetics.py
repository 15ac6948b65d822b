"""Meta's audiobox-aesthetics for export: WavLM-base + four score heads, no ``audiobox_aesthetics`` package.

The published ``checkpoint.pt`` (``{"state_dict": {"model.<key>": tensor}, "model_cfg": {...}, "target_transform":
{axis: {"mean", "std"}}}``, what ``AesPredictor(checkpoint_pth=...)`` loads) holds ``AesMultiOutput``: a WavLM-base
encoder (fairseq naming) and, per axis (CE, CU, PC, PQ), softmax layer weights over its 13 hidden states and an MLP
head. This module builds the same network in plain torch for one 10-s window at 16 kHz:

- the conv feature encoder and the convolutional positional embedding are MERT's (``mert.py``: HuBERT-base's group
  norm variant, weight norm folded), loaded from WavLM's keys;
- frames whose 320 samples are all padding are masked (``forward_padding_mask``): zeroed before the positional
  convolution, excluded as attention keys, left out of the time mean;
- 12 post-LN layers whose attention adds WavLM's gated relative position bias (buckets of layer 0's
  ``relative_attention_bias``, each layer's gate from its own input), through ``F.multi_head_attention_forward``
  with the arguments WavLM's fast path passes;
- per axis: the softmax-weighted sum of the 13 hidden states, the masked time mean, L2 normalisation, the MLP.

Input: ``(batch, 2, 160000)``, the window and its mask (1 on real samples, 0 on the zero padding). Outputs: the four
predictions in the checkpoint's normalised space (``scores``; the manifest's ``output_transforms`` holds the
checkpoint's ``target_transform``, ``score * std + mean``) and each window's share of real samples (``weight``), by
which ``AesPredictor.forward`` averages a clip's windows.

References: Tjandra et al., "Meta Audiobox Aesthetics", arXiv:2502.05139, 2025; Chen et al., "WavLM", 2022;
github.com/facebookresearch/audiobox-aesthetics ``src/audiobox_aesthetics/{infer.py,model/aes.py,model/wavlm.py}``.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import load_strict
from .mert import ConvFeatureEncoder, PositionalConvEmbedding, fold_weight_norm

FAMILY = "aesthetics"
"""The model family (``audiofidelity/models/aesthetics.py``) whose artifacts this module builds."""

AXES = ("CE", "CU", "PC", "PQ")
SAMPLE_RATE, WINDOW = 16000, 160000
WAVLM = dict(conv_dim=[512] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2],
             conv_bias=False, hidden_size=768, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
             layers=12, heads=12, intermediate=3072, num_buckets=320, max_distance=800)
"""``DEFAULT_AUDIO_CFG`` of ``model/aes.py`` (WavLM-base: ``extractor_mode="default"``, post-LN, gated relative
position bias)."""
MODEL_CFG = dict(proj_num_layer=5, proj_ln=True, proj_act_fn="gelu", proj_dropout=0.0, nth_layer=13,
                 use_weighted_layer_sum=True, normalize_embed=True, output_dim=1)
"""The ``model_cfg`` this port implements (the published checkpoint's; ``precision`` is how the package runs it)."""
HOP = math.prod(WAVLM["conv_stride"])
FRAMES = 499
"""Frames of one window: ``ConvFeatureEncoder``'s output length for 160000 samples."""
EPS = 1e-5
CITATION = ("Tjandra, A. et al. Meta Audiobox Aesthetics: Unified Automatic Quality Assessment for Speech, Music, "
            "and Sound. arXiv:2502.05139, 2025; Chen, S. et al. WavLM: Large-Scale Self-Supervised Pre-Training for "
            "Full Stack Speech Processing. IEEE JSTSP 2022.")


def relative_buckets(frames: int, num_buckets: int, max_distance: int) -> torch.Tensor:
    """WavLM's ``_relative_positions_bucket`` (bidirectional) of every (query, key) offset, (frames, frames) int64,
    in its own torch ops (the log in float32)."""
    relative = torch.arange(frames)[None, :] - torch.arange(frames)[:, None]
    half = num_buckets // 2
    buckets = (relative > 0).to(torch.long) * half
    relative = torch.abs(relative)
    max_exact = half // 2
    large = max_exact + (torch.log(relative.float() / max_exact) / math.log(max_distance / max_exact)
                         * (half - max_exact)).to(torch.long)
    large = torch.min(large, torch.full_like(large, half - 1))
    return buckets + torch.where(relative < max_exact, relative, large)


class SelfAttention(nn.Module):
    """WavLM's ``MultiheadAttention`` in eval mode, its fast path: the relative position bias gated by the layer's
    input (not the projected query), then ``F.multi_head_attention_forward``."""

    def __init__(self, relative_bias: bool) -> None:
        super().__init__()
        width, heads = WAVLM["hidden_size"], WAVLM["heads"]
        self.heads = heads
        self.q_proj, self.k_proj = nn.Linear(width, width), nn.Linear(width, width)
        self.v_proj, self.out_proj = nn.Linear(width, width), nn.Linear(width, width)
        self.grep_linear = nn.Linear(width // heads, 8)
        self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))
        if relative_bias:
            self.relative_attention_bias = nn.Embedding(WAVLM["num_buckets"], heads)

    def position_bias(self, buckets: torch.Tensor, batch: int) -> torch.Tensor:
        """``compute_bias``, repeated per item: (batch * heads, frames, frames)."""
        values = self.relative_attention_bias(buckets).permute([2, 0, 1])
        t = buckets.shape[0]
        return values.unsqueeze(0).repeat(batch, 1, 1, 1).view(batch * self.heads, t, t)

    def forward(self, x: torch.Tensor, padding: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        t, b, c = x.shape
        query = x.transpose(0, 1).reshape(b, t, self.heads, -1).permute(0, 2, 1, 3)
        gate_a, gate_b = torch.sigmoid(self.grep_linear(query).view(b, self.heads, t, 2, 4).sum(-1)).chunk(2, dim=-1)
        gate = gate_a * (gate_b * self.grep_a - 1.0) + 2.0
        mask = (gate.view(b * self.heads, -1, 1) * bias).view((-1, t, t))
        out, _ = F.multi_head_attention_forward(
            x, x, x, c, self.heads, torch.empty([0]),
            torch.cat((self.q_proj.bias, self.k_proj.bias, self.v_proj.bias)), None, None, False, 0.0,
            self.out_proj.weight, self.out_proj.bias, False, padding, False, mask,
            use_separate_proj_weight=True, q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight,
            v_proj_weight=self.v_proj.weight)
        return out


class EncoderLayer(nn.Module):
    """``TransformerSentenceEncoderLayer`` with ``layer_norm_first=False`` (post-LN), time-major as WavLM runs it."""

    def __init__(self, relative_bias: bool) -> None:
        super().__init__()
        width = WAVLM["hidden_size"]
        self.self_attn = SelfAttention(relative_bias)
        self.self_attn_layer_norm = nn.LayerNorm(width, eps=EPS)
        self.fc1, self.fc2 = nn.Linear(width, WAVLM["intermediate"]), nn.Linear(WAVLM["intermediate"], width)
        self.final_layer_norm = nn.LayerNorm(width, eps=EPS)

    def forward(self, x: torch.Tensor, padding: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.self_attn_layer_norm(x + self.self_attn(x, padding, bias))
        return self.final_layer_norm(x + self.fc2(F.gelu(self.fc1(x))))


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pos_conv_embed = PositionalConvEmbedding(WAVLM)
        self.layer_norm = nn.LayerNorm(WAVLM["hidden_size"], eps=EPS)
        self.layers = nn.ModuleList(EncoderLayer(i == 0) for i in range(WAVLM["layers"]))
        self.register_buffer("buckets", relative_buckets(FRAMES, WAVLM["num_buckets"], WAVLM["max_distance"]),
                             persistent=False)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> list[torch.Tensor]:
        """The 13 hidden states, time-major (frames, batch, width): the input to the layers, then each layer's."""
        x = x.masked_fill(padding[..., None], 0.0)
        x = self.layer_norm(x + self.pos_conv_embed(x)).transpose(0, 1)
        bias = self.layers[0].self_attn.position_bias(self.buckets, x.shape[1])
        states = [x]
        for layer in self.layers:
            x = layer(x, padding, bias)
            states.append(x)
        return states


class WavLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.feature_extractor = ConvFeatureEncoder(WAVLM)
        self.layer_norm = nn.LayerNorm(WAVLM["conv_dim"][-1], eps=EPS)
        self.post_extract_proj = nn.Linear(WAVLM["conv_dim"][-1], WAVLM["hidden_size"])
        self.encoder = Encoder()

    def forward(self, wave: torch.Tensor, padding: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Hidden states and the frames' padding mask (True: every sample of the frame is padding)."""
        features = self.layer_norm(self.feature_extractor(wave).transpose(1, 2))
        frames = features.shape[1]
        padding = padding[:, :frames * HOP].reshape(padding.shape[0], frames, -1).all(-1)
        return self.encoder(self.post_extract_proj(features), padding), padding


def head(width: int) -> nn.Sequential:
    """``create_mlp_block(768, 1, 5, "gelu", ln=True, dropout=0)``: four Linear-LayerNorm-GELU blocks, a Linear."""
    blocks: list[nn.Module] = []
    for _ in range(MODEL_CFG["proj_num_layer"] - 1):
        blocks += [nn.Linear(width, width), nn.LayerNorm(width), nn.GELU()]
    return nn.Sequential(*blocks, nn.Linear(width, MODEL_CFG["output_dim"]))


class Aesthetics(nn.Module):
    """``AesMultiOutput.forward`` on windows with their masks: (batch, 2, 160000) -> normalised scores (batch, 4) in
    ``AXES`` order, and each window's share of real samples (batch,)."""

    def __init__(self) -> None:
        super().__init__()
        width = WAVLM["hidden_size"]
        self.wavlm_model = WavLM()
        self.proj_layer = nn.ModuleDict({axis: head(width) for axis in AXES})
        self.layer_weights = nn.ParameterDict({axis: nn.Parameter(torch.ones(MODEL_CFG["nth_layer"]))
                                               for axis in AXES})

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        wave, real = windows[:, 0], windows[:, 1] > 0.5
        states, padding = self.wavlm_model(wave, ~real)
        stacked = torch.stack(states, dim=-1)  # frames, batch, width, layers: as the original stacks them
        keep = (~padding).unsqueeze(dim=-1).to(wave.dtype)
        scores = []
        for axis in AXES:
            embed = torch.einsum("tbcl,l->btc", stacked, torch.softmax(self.layer_weights[axis], dim=-1))
            embed = F.normalize((embed * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1), dim=-1)
            scores.append(self.proj_layer[axis](embed).squeeze(-1))
        return torch.stack(scores, dim=-1), real.sum(dim=-1).to(wave.dtype) / WINDOW


UNUSED_KEYS = ("wavlm_model.mask_emb",)
"""Training-time mask embedding."""


def load_checkpoint(source: Path) -> tuple[Aesthetics, dict]:
    """Build from ``checkpoint.pt``, refusing a ``model_cfg`` this port does not implement; return the model (strict
    key check) and the ``target_transform``."""
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or not {"state_dict", "model_cfg", "target_transform"} <= set(checkpoint):
        raise SystemExit(f"{source}: expected audiobox-aesthetics' checkpoint.pt ({{'state_dict', 'model_cfg', "
                         f"'target_transform'}})")
    config = checkpoint["model_cfg"]
    differ = {k: config.get(k) for k, v in MODEL_CFG.items() if config.get(k) != v}
    if differ:
        raise SystemExit(f"{source}: model_cfg {differ} is not supported (this export implements {MODEL_CFG})")
    transform = checkpoint["target_transform"]
    if set(transform) != set(AXES):
        raise SystemExit(f"{source}: target_transform has axes {sorted(transform)}, expected {list(AXES)}")
    state = {k[len("model."):] if k.startswith("model.") else k: v for k, v in checkpoint["state_dict"].items()}
    renamed = {}
    for key, value in state.items():
        prefix = "wavlm_model.feature_extractor.conv_layers."
        if key.startswith(prefix):
            index, part, rest = key[len(prefix):].split(".", 2)
            key = f"{prefix}{index}.{ {'0': 'conv', '2': 'layer_norm'}.get(part, part)}.{rest}"
        key = key.replace("wavlm_model.encoder.pos_conv.0.", "wavlm_model.encoder.pos_conv_embed.conv.")
        renamed[key] = value
    fold_weight_norm(renamed, "wavlm_model.encoder.pos_conv_embed.conv")
    model = load_strict(Aesthetics(), renamed, source, "audiobox-aesthetics AesMultiOutput state dict",
                        ignore=UNUSED_KEYS)
    return model, {axis: {"mean": float(transform[axis]["mean"]), "std": float(transform[axis]["std"])}
                   for axis in AXES}


MEMORY = dict(axis=None, fixed_bytes=500_000_000, bytes_per_item=400_000_000)
"""Peak memory: the weights (400 MB) and, per 10-s window, the conv stack's first activations and 13 hidden states."""


def build(name: str, source: Path) -> dict:
    """Everything ``export.py`` needs to export the audiobox-aesthetics artifact (``source``: ``checkpoint.pt``)."""
    model, transform = load_checkpoint(source)
    batch = torch.export.Dim("batch", min=1, max=1024)
    generator = torch.Generator().manual_seed(0)
    example = torch.zeros(2, 2, WINDOW)
    example[:, 0] = torch.randn(2, WINDOW, generator=generator) * 0.1
    example[0, 1] = 1.0
    example[1, 1, :37000] = 1.0  # a last window, zero-padded after 2.3 s
    example[1, 0, 37000:] = 0.0
    return dict(
        module=model,
        example_inputs=(example,),
        dynamic_shapes={"windows": {0: batch}},
        frontend=dict(kind="aesthetics_windows", sample_rate=SAMPLE_RATE, window=WINDOW, hop=WINDOW),
        output_transforms={"scores": dict(kind="affine", axes=list(AXES), scale=[transform[a]["std"] for a in AXES],
                                          offset=[transform[a]["mean"] for a in AXES])},
        inputs=[dict(name="windows", shape=["batch", 2, WINDOW], dtype="float32", items_per_clip="variable",
                     memory=MEMORY)],
        outputs=[dict(name="scores", shape=["batch", len(AXES)], dtype="float32", roles=["aesthetics"]),
                 dict(name="weight", shape=["batch"], dtype="float32", roles=["aesthetics_weight"])],
        citation=CITATION,
    )
