"""EnCodec's SEANet encoder for export: continuous 128-d frames before quantisation, no ``encodec`` package.

The published checkpoints (``encodec_24khz-d7cc33bc.th``, ``encodec_48khz-7e698e3e.th``) are the state
dict of the whole ``EncodecModel`` (encoder, decoder, quantizer); the export keeps ``encoder.*``. 24 kHz:
mono, causal, weight-normed convolutions (folded into plain weights here). 48 kHz: stereo, non-causal,
``time_group_norm`` (``GroupNorm(1, C)`` over the whole time axis of what it is given). Both: hop 320,
a 2-layer LSTM(512) with a skip connection before the last convolution.

Three changes make one graph serve every length with the original's frames: the padding helper's
``math.ceil`` of a length is integer arithmetic (torch.export cannot take the ceil of a symbolic size);
its reflect padding, which zero-extends signals shorter than the padding first, is one index gather with
no branch on the length; and the LSTM runs as a ``scan`` over time (``nn.LSTM`` fixes the length at
export). The scan's sums differ from the fused LSTM kernel's in the last bits (2e-7 on unit activations).

References: Défossez et al., "High Fidelity Neural Audio Compression", TMLR 2023;
github.com/facebookresearch/encodec ``encodec/modules/{seanet,conv,lstm}.py``, ``encodec/model.py``.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch._higher_order_ops.scan import scan

from .checkpoints import load_strict

FAMILY = "encodec"
"""The model family (``audiofidelity/models/encodec.py``) whose artifacts this module builds; ``export.py`` finds
it by this."""

VARIANTS = {
    "encodec-24k": dict(sample_rate=24000, channels=1, causal=True, group_norm=False, segment_seconds=None),
    "encodec-48k": dict(sample_rate=48000, channels=2, causal=False, group_norm=True, segment_seconds=1.0),
}
"""``EncodecModel.encodec_model_24khz`` / ``_48khz`` settings; ``segment_seconds``: how fadtk feeds it (the 48 kHz
model's own 1-s segments, one after another, the last one shorter, without the model's RMS normalisation)."""
N_FILTERS, DIMENSION, RATIOS, LSTM_LAYERS, COMPRESS = 32, 128, (2, 4, 5, 8), 2, 2
HOP = 2 * 4 * 5 * 8
CITATION = ("Défossez, A., Copet, J., Synnaeve, G., Adi, Y. High Fidelity Neural Audio Compression. "
            "Transactions on Machine Learning Research (2023).")


def reflect_pad(x: torch.Tensor, left: int, right) -> torch.Tensor:
    """encodec's ``pad1d(x, (left, right), mode="reflect")`` for any length, as one gather.

    The original zero-extends a signal no longer than the largest padding to one sample more, reflects, and
    cuts the extension off again; reflecting the index into that extended length and reading zeros past the
    signal gives the same values without a branch on the (symbolic) length.
    """
    length = x.shape[-1]
    extended = torch.sym_max(length, torch.sym_max(left, right) + 1)
    position = torch.arange(-left, length + right, device=x.device)
    index = (extended - 1) - ((extended - 1) - position.abs()).abs()
    taken = x.index_select(-1, index.clamp(max=length - 1))
    return torch.where(index < length, taken, torch.zeros((), dtype=x.dtype, device=x.device))


class StreamableConv(nn.Module):
    """``SConv1d``: reflect padding that keeps the last window full (causal: the kernel's share all on the
    left), the convolution, then ``GroupNorm(1, C)`` for 48 kHz. Keys ``conv.conv.*``, ``conv.norm.*``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1, *, causal: bool,
                 group_norm: bool) -> None:
        super().__init__()
        self.conv = nn.Module()
        self.conv.conv = nn.Conv1d(cin, cout, kernel, stride, dilation=dilation)
        self.conv.norm = nn.GroupNorm(1, cout) if group_norm else nn.Identity()
        self.causal = causal
        self.kernel = (kernel - 1) * dilation + 1
        self.stride = stride
        self.padding_total = self.kernel - stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1]
        frames = -((self.kernel - self.padding_total - length) // self.stride)  # ceil((L - k + p) / s)
        extra = frames * self.stride + self.kernel - self.padding_total - length
        if self.causal:
            x = reflect_pad(x, self.padding_total, extra)
        else:
            right = self.padding_total // 2
            x = reflect_pad(x, self.padding_total - right, right + extra)
        return self.conv.norm(self.conv.conv(x))


class ResidualBlock(nn.Module):
    """``SEANetResnetBlock``: ELU -> conv k3 (dim -> dim/2) -> ELU -> conv k1 (-> dim), plus a k1 shortcut."""

    def __init__(self, dim: int, dilation: int, **conv) -> None:
        super().__init__()
        hidden = dim // COMPRESS
        self.block = nn.Sequential(nn.ELU(), StreamableConv(dim, hidden, 3, dilation=dilation, **conv),
                                   nn.ELU(), StreamableConv(hidden, dim, 1, **conv))
        self.shortcut = StreamableConv(dim, dim, 1, **conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class ScanLSTM(nn.Module):
    """``SLSTM``: a multi-layer LSTM over time plus the input (skip), run as ``scan`` steps so the time axis
    stays dynamic in the exported graph. Parameters are ``nn.LSTM``'s (keys ``lstm.weight_ih_l0`` ...)."""

    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, layers)

    def _layer(self, inputs: torch.Tensor, layer: int) -> torch.Tensor:
        """One LSTM layer: every step's input share ``inputs`` (time, batch, 4 hidden) -> hidden states."""
        w_hh = getattr(self.lstm, f"weight_hh_l{layer}")
        state = inputs.new_zeros(inputs.shape[1], w_hh.shape[1])

        def step(carry, gates_in):
            h, c = carry
            i, f, g, o = (gates_in + h @ w_hh.T).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            return (h.clone(), c.clone()), h.clone()

        _, hidden = scan(step, (state, state.clone()), inputs)
        return hidden

    def _input_share(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (getattr(self.lstm, f"weight_ih_l{layer}"),
                getattr(self.lstm, f"bias_ih_l{layer}") + getattr(self.lstm, f"bias_hh_l{layer}"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the first layer's input share as a kernel-1 convolution of the (batch, features, time) input, the
        # next ones' as a linear map of the contiguous (time, batch, hidden) states: a matmul over a permuted
        # time axis, or a convolution of one, makes torch.export assume more than one frame
        weight, bias = self._input_share(0)
        y = self._layer(F.conv1d(x, weight[:, :, None], bias).permute(2, 0, 1), 0)
        for layer in range(1, self.lstm.num_layers):
            y = self._layer(F.linear(y, *self._input_share(layer)), layer)
        return y.permute(1, 2, 0) + x


class SeanetEncoder(nn.Module):
    """Waveform (batch, channels, samples) -> frames (batch, frames, 128), frames = ceil(samples / 320).

    ``model.N`` indices and key names are ``SEANetEncoder``'s, so the checkpoint's ``encoder.*`` loads as is
    (after weight norm is folded).
    """

    def __init__(self, channels: int, causal: bool, group_norm: bool) -> None:
        super().__init__()
        conv = dict(causal=causal, group_norm=group_norm)
        layers: list[nn.Module] = [StreamableConv(channels, N_FILTERS, 7, **conv)]
        mult = 1
        for ratio in RATIOS:
            layers += [ResidualBlock(mult * N_FILTERS, 1, **conv), nn.ELU(),
                       StreamableConv(mult * N_FILTERS, mult * N_FILTERS * 2, 2 * ratio, ratio, **conv)]
            mult *= 2
        layers += [ScanLSTM(mult * N_FILTERS, LSTM_LAYERS), nn.ELU(), StreamableConv(mult * N_FILTERS, DIMENSION, 7,
                                                                                      **conv)]
        self.model = nn.Sequential(*layers)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.model(wave).transpose(1, 2)


def fold_weight_norms(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace every ``weight_g``/``weight_v`` pair (``torch.nn.utils.weight_norm``, dim 0) by its weight."""
    out = {}
    for key, value in state.items():
        if key.endswith(".weight_g"):
            prefix = key[: -len(".weight_g")]
            out[f"{prefix}.weight"] = torch._weight_norm(state[f"{prefix}.weight_v"], value, 0)
        elif not key.endswith(".weight_v"):
            out[key] = value
    return out


def load_encoder(source: Path, name: str) -> SeanetEncoder:
    """The checkpoint's encoder with a strict key check (weight norm folded)."""
    variant = VARIANTS[name]
    state = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not any(str(k).startswith("encoder.") for k in state):
        raise SystemExit(f"{source}: expected an EnCodec state dict with encoder.* keys (the file "
                         f"EncodecModel.encodec_model_{variant['sample_rate'] // 1000}khz loads)")
    weight_normed = any(k.endswith(".weight_g") for k in state)
    if weight_normed == variant["group_norm"]:
        other = "encodec-48k" if weight_normed else "encodec-24k"
        raise SystemExit(f"{source}: this checkpoint's convolutions are {'weight-normed' if weight_normed else 'group-normed'}, "
                         f"as in {other}, not {name}")
    encoder = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    return load_strict(SeanetEncoder(variant["channels"], variant["causal"], variant["group_norm"]),
                       fold_weight_norms(encoder), source, f"{name} SEANet encoder state dict")


MEMORY = dict(axis="samples", fixed_bytes=32_000_000, bytes_per_unit=1_500)
"""Peak activation memory of one pass, per input sample: the first blocks hold 32-64 channels at the full rate
(a few float32 copies of each, and the padding's int64 index). An upper bound measured on the CPU."""


def build(name: str, source: Path) -> dict:
    """Everything ``export.py`` needs to export one EnCodec encoder artifact."""
    variant = VARIANTS[name]
    encoder = load_encoder(source, name)
    rate, channels = variant["sample_rate"], variant["channels"]
    batch = torch.export.Dim("batch", min=1, max=1024)
    samples = torch.export.Dim("samples", min=1, max=rate * 3600)
    example = torch.randn(2, channels, rate // 2) * 0.1
    segment = None if variant["segment_seconds"] is None else int(variant["segment_seconds"] * rate)
    return dict(
        module=encoder,
        example_inputs=(example,),
        dynamic_shapes={"wave": {0: batch, 2: samples}},
        export_kwargs={"prefer_deferred_runtime_asserts_over_guards": True},
        export_config={"backed_size_oblivious": True},  # else clips of one frame (<= 320 samples) are refused
        frontend=dict(kind="waveform_segments", sample_rate=rate, channels=channels, segment_samples=segment),
        inputs=[dict(name="wave", shape=["batch", channels, "samples"], dtype="float32", min={"samples": 1},
                     channels=channels, items_per_clip=1 if segment is None else "variable", memory=MEMORY)],
        outputs=[dict(name="frames", shape=["batch", "frames", DIMENSION], dtype="float32", roles=["fad"])],
        citation=CITATION,
    )
