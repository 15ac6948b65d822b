#!/usr/bin/env python3
"""Run audiocraft's chroma cosine similarity, transcribed, and save what it computes (no project import).

A transcription of audiocraft 896ec7c47f5e5d1e5aa1e4b260c4405328bf009d (2025-03-13):
``audiocraft/modules/chroma.py`` (``ChromaExtractor``), ``audiocraft/metrics/chroma_cosinesim.py``
(``ChromaCosineSimilarityMetric.update`` and ``compute``) and ``audiocraft/data/audio_utils.py``
(``convert_audio``, ``convert_audio_channels``). audiocraft itself cannot be installed beside the runtime (its pins
conflict), and the transcription needs torchaudio (``Spectrogram``), librosa (``filters.chroma``) and julius
(``resample_frac``), so it runs in the virtualenv the PaSST parity uses (torch 2.11, torchaudio 2.11, librosa
0.10.2.post1, julius 0.2.7; see ``passt_original.py``), as a subprocess that talks through files::

    PYTHON chroma_original.py IN.npz OUT.npz

Two lines differ from the originals, neither in what is computed: einops' ``rearrange(x, 'b d t -> b t d')``
is ``x.permute(0, 2, 1)`` (what einops does for a torch tensor; einops is not in that virtualenv), and the metric
is a plain class with the two states ``torchmetrics.Metric.add_state`` would give it (float32 zeros, summed).

``IN.npz``: ``sample_rate`` (the waveforms' rate, the solver's ``sample_rates``), ``chroma_sample_rate`` (the
metric's ``sample_rate``), ``n_chroma``, ``radix2_exp``, ``argmax`` and pairs ``gen<i>``, ``ref<i>``: float32
arrays of one shape, (n,) or (channels, n), with optional ``size<i>`` (the solver's ``sizes``: the reference's
samples without padding, at ``sample_rate``; default n). Each pair is one ``update`` (a batch of one).
``OUT.npz``: ``chroma_gen<i>``, ``chroma_ref<i>`` ((frames, n_chroma) float32: the metric's extractor on the
converted waveforms), ``soft_gen<i>``, ``soft_ref<i>`` (the same extractor with ``argmax=False``),
``cosine_sum<i>`` (float32), ``weight<i>`` (int): what that ``update`` added to the two states (the sum as torch
computed it, before the float32 state rounds it), ``value``: ``compute()`` after all pairs;
``soft_cosine_sum<i>``, ``soft_weight<i>``, ``soft_value``: the same from a second metric with ``argmax=False``.
"""
from __future__ import annotations

import sys
import typing as tp

import julius
import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from librosa import filters
from torch import nn


class ChromaExtractor(nn.Module):
    """audiocraft ``modules/chroma.py`` as it is (but ``rearrange``)."""

    def __init__(self, sample_rate: int, n_chroma: int = 12, radix2_exp: int = 12, nfft: tp.Optional[int] = None,
                 winlen: tp.Optional[int] = None, winhop: tp.Optional[int] = None, argmax: bool = False,
                 norm: float = torch.inf):
        super().__init__()
        self.winlen = winlen or 2 ** radix2_exp
        self.nfft = nfft or self.winlen
        self.winhop = winhop or (self.winlen // 4)
        self.sample_rate = sample_rate
        self.n_chroma = n_chroma
        self.norm = norm
        self.argmax = argmax
        self.register_buffer('fbanks', torch.from_numpy(filters.chroma(sr=sample_rate, n_fft=self.nfft, tuning=0,
                                                                       n_chroma=self.n_chroma)), persistent=False)
        self.spec = torchaudio.transforms.Spectrogram(n_fft=self.nfft, win_length=self.winlen,
                                                      hop_length=self.winhop, power=2, center=True,
                                                      pad=0, normalized=True)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        T = wav.shape[-1]
        # in case we are getting a wav that was dropped out (nullified)
        # from the conditioner, make sure wav length is no less that nfft
        if T < self.nfft:
            pad = self.nfft - T
            r = 0 if pad % 2 == 0 else 1
            wav = F.pad(wav, (pad // 2, pad // 2 + r), 'constant', 0)
            assert wav.shape[-1] == self.nfft, f"expected len {self.nfft} but got {wav.shape[-1]}"

        spec = self.spec(wav).squeeze(1)
        raw_chroma = torch.einsum('cf,...ft->...ct', self.fbanks, spec)
        norm_chroma = torch.nn.functional.normalize(raw_chroma, p=self.norm, dim=-2, eps=1e-6)
        norm_chroma = norm_chroma.permute(0, 2, 1)  # einops.rearrange(norm_chroma, 'b d t -> b t d')

        if self.argmax:
            idx = norm_chroma.argmax(-1, keepdim=True)
            norm_chroma[:] = 0
            norm_chroma.scatter_(dim=-1, index=idx, value=1)

        return norm_chroma


def convert_audio_channels(wav: torch.Tensor, channels: int = 2) -> torch.Tensor:
    """audiocraft ``data/audio_utils.py`` (the branches a mono target takes)."""
    *shape, src_channels, length = wav.shape
    if src_channels == channels:
        pass
    elif channels == 1:
        wav = wav.mean(dim=-2, keepdim=True)
    else:
        raise NotImplementedError("only to_channels=1 is transcribed")
    return wav


def convert_audio(wav: torch.Tensor, from_rate: float, to_rate: float, to_channels: int) -> torch.Tensor:
    """audiocraft ``data/audio_utils.py``."""
    wav = julius.resample_frac(wav, int(from_rate), int(to_rate))
    wav = convert_audio_channels(wav, to_channels)
    return wav


class ChromaCosineSimilarityMetric:
    """audiocraft ``metrics/chroma_cosinesim.py``; the states as ``add_state(..., default=torch.tensor(0.))``."""

    def __init__(self, sample_rate: int, n_chroma: int, radix2_exp: int, argmax: bool, eps: float = 1e-8):
        self.chroma_sample_rate = sample_rate
        self.n_chroma = n_chroma
        self.eps = eps
        self.chroma_extractor = ChromaExtractor(sample_rate=self.chroma_sample_rate, n_chroma=self.n_chroma,
                                                radix2_exp=radix2_exp, argmax=argmax)
        self.cosine_sum = torch.tensor(0.)
        self.weight = torch.tensor(0.)

    def update(self, preds: torch.Tensor, targets: torch.Tensor,
               sizes: torch.Tensor, sample_rates: torch.Tensor) -> None:
        if preds.size(0) == 0:
            return
        assert preds.shape == targets.shape
        assert preds.size(0) == sizes.size(0)
        assert preds.size(0) == sample_rates.size(0)
        assert torch.all(sample_rates == sample_rates[0].item())
        device = self.weight.device
        preds, targets = preds.to(device), targets.to(device)
        sample_rate = sample_rates[0].item()
        preds = convert_audio(preds, from_rate=sample_rate, to_rate=self.chroma_sample_rate, to_channels=1)
        targets = convert_audio(targets, from_rate=sample_rate, to_rate=self.chroma_sample_rate, to_channels=1)
        gt_chroma = self.chroma_extractor(targets)
        gen_chroma = self.chroma_extractor(preds)
        self.last = (gen_chroma, gt_chroma, [])  # kept for the comparison, not in the original
        chroma_lens = (sizes / self.chroma_extractor.winhop).ceil().int()
        for i in range(len(gt_chroma)):
            t = int(chroma_lens[i].item())
            cosine_sim = torch.nn.functional.cosine_similarity(
                gt_chroma[i, :t], gen_chroma[i, :t], dim=1, eps=self.eps)
            self.cosine_sum += cosine_sim.sum(dim=0)
            self.weight += torch.tensor(t)
            self.last[2].append((cosine_sim.sum(dim=0), t))  # not in the original

    def compute(self) -> float:
        assert self.weight.item() > 0, "Unable to compute with total number of comparisons <= 0"
        return (self.cosine_sum / self.weight).item()


def batch(wave: np.ndarray) -> torch.Tensor:
    """(n,) or (channels, n) -> the solver's [B=1, C, T] float32."""
    wave = np.asarray(wave, dtype=np.float32)
    return torch.from_numpy(wave.reshape((1, -1, wave.shape[-1])).copy())


def main(src: str, dst: str) -> None:
    data = np.load(src)
    sample_rate, chroma_rate = int(data["sample_rate"]), int(data["chroma_sample_rate"])
    settings = dict(n_chroma=int(data["n_chroma"]), radix2_exp=int(data["radix2_exp"]))
    metrics = {"": ChromaCosineSimilarityMetric(chroma_rate, argmax=bool(data["argmax"]), **settings),
               "soft_": ChromaCosineSimilarityMetric(chroma_rate, argmax=False, **settings)}
    out: dict[str, np.ndarray] = {}
    pairs = sorted(int(k[3:]) for k in data.files if k.startswith("gen"))
    with torch.no_grad():
        for i in pairs:
            gen, ref = batch(data[f"gen{i}"]), batch(data[f"ref{i}"])
            size = int(data[f"size{i}"]) if f"size{i}" in data.files else gen.shape[-1]
            for prefix, metric in metrics.items():
                metric.update(gen, ref, torch.tensor([size]), torch.tensor([sample_rate]))
                gen_chroma, ref_chroma, [(cosine_sum, t)] = metric.last
                out[f"{prefix}cosine_sum{i}"], out[f"{prefix}weight{i}"] = cosine_sum.numpy(), np.int64(t)
                name = "chroma_" if not prefix else prefix
                out[f"{name}gen{i}"], out[f"{name}ref{i}"] = gen_chroma[0].numpy(), ref_chroma[0].numpy()
        for prefix, metric in metrics.items():
            out[f"{prefix}value"] = np.float64(metric.compute())
    np.savez(dst, **out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} IN.npz OUT.npz")
    main(sys.argv[1], sys.argv[2])
