"""MERT-v1-95M for export: a HuBERT-style encoder built from the Hugging Face ``config.json``, no transformers.

MERT-v1-95M with its published settings is HuBERT-base with group norm: a 7-layer conv feature
encoder (group norm on the first layer, GELU), a feature projection with layer norm, a convolutional
positional embedding (kernel 128, 16 groups, weight norm folded into a plain weight here) and a
post-LN transformer encoder (12 layers, 12 heads, GELU). The exported program returns, per clip, the
time mean of each of the 13 hidden states (embedding output + 12 layers), what audioldm_eval's
``mert`` backbone feeds its metrics, and the 13 hidden states themselves, frame by frame, whose layers
fadtk's ``MERT-v1-95M-<layer>`` FAD reads (``--fad-model mert-v1-95m-<layer>``).

References: Li et al., "MERT: Acoustic Music Understanding Model with Large-Scale Self-supervised
Training", ICLR 2024; Hsu et al., "HuBERT", 2021; transformers ``models/hubert/modeling_hubert.py``.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import load_strict

FAMILY = "mert"
"""The model family (``audiofidelity/models/mert.py``) whose artifacts this module builds; ``export.py`` finds
it by this."""

MIN_SAMPLES = 720
"""Shortest input the conv stack accepts at 24 kHz (one output frame needs 400 samples; torch.export's
guards hold from 720)."""
CITATION = ("Li, Y. et al. MERT: Acoustic Music Understanding Model with Large-Scale Self-supervised Training. "
            "ICLR 2024.")
UNSUPPORTED = {  # config switch -> value this port implements
    "feature_extractor_cqt": False, "deepnorm": False, "do_stable_layer_norm": False, "conv_pos_batch_norm": False,
    "feat_extract_norm": "group", "feat_extract_activation": "gelu", "hidden_act": "gelu",
    "feat_proj_layer_norm": True, "use_weighted_layer_sum": False,
}
UNUSED_KEYS = {"masked_spec_embed"}  # training-time mask embedding


def check_config(config: dict, source: Path) -> None:
    """Refuse MERT/HuBERT variants this port does not implement, naming the switch."""
    for key, supported in UNSUPPORTED.items():
        if config.get(key, supported) != supported:
            raise SystemExit(f"{source}: config {key}={config[key]!r} is not supported (this export implements "
                             f"{key}={supported!r}, the MERT-v1-95M setting)")
    relax = config.get("attention_relax", -1.0)
    if relax is not None and relax > 0:
        raise SystemExit(f"{source}: config attention_relax={relax} is not supported (MERT-v1-95M uses -1)")


class ConvFeatureEncoder(nn.Module):
    def __init__(self, config: dict) -> None:
        super().__init__()
        dims, kernels, strides = config["conv_dim"], config["conv_kernel"], config["conv_stride"]
        self.conv_layers = nn.ModuleList()
        for i, (dim, k, s) in enumerate(zip(dims, kernels, strides)):
            layer = nn.Module()
            layer.conv = nn.Conv1d(1 if i == 0 else dims[i - 1], dim, k, stride=s, bias=config["conv_bias"])
            if i == 0:
                layer.layer_norm = nn.GroupNorm(dim, dim, affine=True)
            self.conv_layers.append(layer)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = wave[:, None]
        for i, layer in enumerate(self.conv_layers):
            x = layer.conv(x)
            if i == 0:
                x = layer.layer_norm(x)
            x = F.gelu(x)
        return x


class FeatureProjection(nn.Module):
    def __init__(self, config: dict) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(config["conv_dim"][-1], eps=config["layer_norm_eps"])
        self.projection = nn.Linear(config["conv_dim"][-1], config["hidden_size"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.layer_norm(x))


class PositionalConvEmbedding(nn.Module):
    """Grouped conv over time (weight norm folded); drops the last frame for an even kernel (same padding)."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        k = config["num_conv_pos_embeddings"]
        self.conv = nn.Conv1d(config["hidden_size"], config["hidden_size"], k, padding=k // 2,
                              groups=config["num_conv_pos_embedding_groups"])
        self.remove = 1 if k % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.transpose(1, 2))
        if self.remove:
            y = y[:, :, :-self.remove]
        return F.gelu(y).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.q_proj, self.k_proj = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.v_proj, self.out_proj = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        split = lambda y: y.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # noqa: E731
        q = split(self.q_proj(x) * self.head_dim ** -0.5)
        # softmax(q k^T) v of the scaled q, as one kernel that never holds the heads x t x t weights (2.3x faster
        # on a CPU at t = 750, within 1e-6 of the three steps)
        out = F.scaled_dot_product_attention(q, split(self.k_proj(x)), split(self.v_proj(x)), scale=1.0)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, -1))


class FeedForward(nn.Module):
    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(hidden, intermediate)
        self.output_dense = nn.Linear(intermediate, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(F.gelu(self.intermediate_dense(x)))


class EncoderLayer(nn.Module):
    """Post-LN transformer layer (HuBERT-base)."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        hidden, eps = config["hidden_size"], config["layer_norm_eps"]
        self.attention = Attention(hidden, config["num_attention_heads"])
        self.layer_norm = nn.LayerNorm(hidden, eps=eps)
        self.feed_forward = FeedForward(hidden, config["intermediate_size"])
        self.final_layer_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(x + self.attention(x))
        return self.final_layer_norm(x + self.feed_forward(x))


class Encoder(nn.Module):
    def __init__(self, config: dict) -> None:
        super().__init__()
        self.pos_conv_embed = PositionalConvEmbedding(config)
        self.layer_norm = nn.LayerNorm(config["hidden_size"], eps=config["layer_norm_eps"])
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config["num_hidden_layers"]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.layer_norm(x + self.pos_conv_embed(x))
        states = [x]
        for layer in self.layers:
            x = layer(x)
            states.append(x)
        return states


class MertLayerMeans(nn.Module):
    """Waveform (batch, samples) at 24 kHz, normalised -> per-layer time means (batch, 13, hidden) and the
    hidden states (batch, 13, frames, hidden)."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.feature_extractor = ConvFeatureEncoder(config)
        self.feature_projection = FeatureProjection(config)
        self.encoder = Encoder(config)

    def forward(self, input_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.feature_extractor(input_values).transpose(1, 2)
        states = self.encoder(self.feature_projection(features))
        return torch.stack([s.mean(dim=1) for s in states], dim=1), torch.stack(states, dim=1)


def fold_weight_norm(state: dict[str, torch.Tensor], prefix: str) -> None:
    """Replace a weight-normed conv's (g, v) pair by its weight, in place; accepts both naming schemes.

    Legacy (transformers 4.x, MERT's published file): ``weight_g``/``weight_v``; transformers 5.x:
    ``parametrizations.weight.original0``/``original1``. weight = g * v / ||v||, norm over all dims but 2.
    """
    for g_key, v_key in ((f"{prefix}.weight_g", f"{prefix}.weight_v"),
                         (f"{prefix}.parametrizations.weight.original0", f"{prefix}.parametrizations.weight.original1")):
        if g_key in state and v_key in state:
            g, v = state.pop(g_key), state.pop(v_key)
            state[f"{prefix}.weight"] = torch._weight_norm(v, g, 2)
            return
    raise SystemExit(f"no weight-norm parameters for {prefix} (expected weight_g/weight_v or "
                     f"parametrizations.weight.original0/original1)")


def load_state(source: Path) -> dict[str, torch.Tensor]:
    """The folder's weights: ``model.safetensors`` where safetensors is installed (the export extra), else
    ``pytorch_model.bin`` (MERT's repository has both; torch reads the second alone)."""
    safetensors, legacy = source / "model.safetensors", source / "pytorch_model.bin"
    if safetensors.is_file() and (importlib.util.find_spec("safetensors") or not legacy.is_file()):
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise SystemExit("reading model.safetensors needs the export extra: pip install "
                             "'audiofidelity[export]'") from None
        return load_file(str(safetensors))
    if legacy.is_file():
        return torch.load(legacy, map_location="cpu", weights_only=True)
    raise SystemExit(f"{source}: no model.safetensors or pytorch_model.bin (pass the Hugging Face model folder)")


def load_model(source: Path) -> tuple[MertLayerMeans, dict, dict]:
    """Build from ``config.json``, load the weights with a strict key check; return model, config, preprocessor."""
    try:
        config = json.loads((source / "config.json").read_text())
        preprocessor = json.loads((source / "preprocessor_config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"{source}: needs config.json and preprocessor_config.json ({exc})") from None
    check_config(config, source)
    state = dict(load_state(source))
    fold_weight_norm(state, "encoder.pos_conv_embed.conv")
    model = load_strict(MertLayerMeans(config), state, source, "MERT/HuBERT state dict for this config",
                        ignore=tuple(UNUSED_KEYS))
    return model, config, preprocessor


MEMORY = dict(axis="samples", fixed_bytes=64_000_000, bytes_per_unit=450, bytes_per_unit_squared=0.0011)
"""Peak activation memory of a pass: attention is quadratic in a clip's frames (samples / 320; 12 heads
of float32 scores, a few alive at once). An upper bound of what was measured on the CPU (0.45, 1.0 and
2.1 GB at 20, 40 and 60 s), plus the 13 returned hidden states (125 bytes per sample); a 5-minute clip
would need about 60 GB."""


def build(name: str, source: Path) -> dict:
    """Everything ``export.py`` needs to export the MERT artifact (``source``: the Hugging Face folder)."""
    model, config, preprocessor = load_model(source)
    rate = int(preprocessor.get("sampling_rate", config.get("sample_rate", 24000)))
    batch = torch.export.Dim("batch", min=1, max=1024)
    samples = torch.export.Dim("samples", min=MIN_SAMPLES, max=rate * 3600)
    example = torch.randn(2, rate * 2)
    layers = config["num_hidden_layers"] + 1
    return dict(
        module=model,
        example_inputs=(example,),
        dynamic_shapes={"input_values": {0: batch, 1: samples}},
        export_kwargs={"prefer_deferred_runtime_asserts_over_guards": True},
        frontend=dict(kind="mert_waveform", sample_rate=rate, do_normalize=bool(preprocessor.get("do_normalize", True)),
                      padding_value=float(preprocessor.get("padding_value", 0.0)), variance_epsilon=1e-7),
        inputs=[dict(name="input_values", shape=["batch", "samples"], dtype="float32", min={"samples": MIN_SAMPLES},
                     memory=MEMORY)],
        outputs=[dict(name="layer_time_mean", shape=["batch", layers, config["hidden_size"]], dtype="float32",
                      roles=["embedding", "logits", "layers"]),
                 dict(name="hidden_states", shape=["batch", layers, "frames", config["hidden_size"]],
                      dtype="float32", roles=["hidden_states"])],
        citation=CITATION,
    )

