"""Per-pair signal metrics (PSNR, SSIM, LSD, chroma similarity) over two folders of same-named clips; no model.

Each pair is decoded and conditioned as audioldm_eval's ``MelPairedDataset`` does (first channel,
mean removed, resampled to the evaluation rate, no padding), then:

- PSNR and SSIM compare the pair's ``paired_mel`` spectrograms trimmed to the common frame count;
  a pair with infinite PSNR (identical spectrograms) is left out of both, as the original does;
- LSD compares the waveforms after ``lsd_preprocess`` (HiFi-GAN offset, mean, peak, trim).

The chroma similarity reads each file as audiocraft's ``ChromaCosineSimilarityMetric`` does instead (every channel
resampled to 32 kHz with julius', then averaged; the generated clip cut or zero-padded to the reference's length,
counted), and its corpus value pools frames (``PairValues.weights``), as the metric's ``compute()`` does.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .audio import Conditioning, load_audio, load_conditioned, validate_audio
from .cache import FeatureCache
from .errors import InvalidAudioError, MetricUnavailableError, UnreadableFileError
from .frontends import PAIRED_MEL, paired_mel, stft_bytes
from .metrics import chroma, signal
from .resample import resample, resample_bytes

PAIRS_PER_TASK = 4
"""Pairs sent to a worker process at a time (fewer round trips; the results stay in order)."""


@dataclass
class PairValues:
    """Per-file values of the selected signal metrics, and why some pairs are left out."""

    per_file: dict[str, dict[str, float | None]] = field(default_factory=dict)
    excluded: list[dict] = field(default_factory=list)
    bad_files: list[dict] = field(default_factory=list)
    weights: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per metric, each file's weight in the corpus value (the chroma similarity's compared frames); a metric
    without weights is a plain mean over files."""
    padded: dict[str, list[str]] = field(default_factory=dict)
    """Per metric, the generated files zero-padded to their reference's length (the chroma similarity)."""

    def mean(self, key: str) -> float:
        """The corpus value: the mean over files, weighted where the metric pools (``weights``)."""
        kept = {name: float(value) for name, v in self.per_file.items() if (value := v.get(key)) is not None}
        if not kept:
            raise ValueError(f"no pair has a finite {key} (see 'problems')")
        if key in self.weights:
            weight = self.weights[key]
            return float(sum(value * weight[name] for name, value in kept.items())
                         / sum(weight[name] for name in kept))
        return float(np.mean(list(kept.values())))


def _mel_pair(gen: np.ndarray, ref: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    if sample_rate not in PAIRED_MEL:
        raise ValueError(f"PSNR/SSIM mel is defined at {', '.join(map(str, PAIRED_MEL))} Hz, not {sample_rate}")
    mels = [paired_mel(x, sample_rate=sample_rate, **PAIRED_MEL[sample_rate]) for x in (gen, ref)]
    frames = min(m.shape[1] for m in mels)
    return mels[0][:, :frames], mels[1][:, :frames]


def pair_values(gen: np.ndarray, ref: np.ndarray, *, sample_rate: int, metrics: Sequence[str],
                lsd_offset: int = signal.HIFIGAN_OFFSET) -> tuple[dict[str, float | None], dict[str, str]]:
    """Signal metrics of one conditioned pair: (values, reasons for the ones left out)."""
    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    if signal.KEY_PSNR in metrics or signal.KEY_SSIM in metrics:
        mel_gen, mel_ref = _mel_pair(gen, ref, sample_rate)
        psnr = signal.psnr(mel_gen, mel_ref)
        if np.isinf(psnr):
            for key in (signal.KEY_PSNR, signal.KEY_SSIM):
                reasons[key] = ("infinite PSNR (identical mel spectrograms): left out of PSNR and SSIM as "
                                "audioldm_eval does")
        else:
            values[signal.KEY_PSNR] = psnr
            low, high = min(mel_gen.min(), mel_ref.min()), max(mel_gen.max(), mel_ref.max())
            try:
                values[signal.KEY_SSIM] = signal.ssim(mel_gen, mel_ref, data_range=float(high - low))
            except MetricUnavailableError as exc:
                reasons[signal.KEY_SSIM] = str(exc)
    if signal.KEY_LSD in metrics:
        try:
            values[signal.KEY_LSD] = signal.log_spectral_distance(
                *signal.lsd_preprocess(gen, ref, offset=lsd_offset), sample_rate=sample_rate)
        except MetricUnavailableError as exc:
            reasons[signal.KEY_LSD] = str(exc)
    return {k: v for k, v in values.items() if k in metrics}, {k: v for k, v in reasons.items() if k in metrics}


def chroma_pair(generated: np.ndarray, gen_rate: int, reference: np.ndarray,
                ref_rate: int) -> tuple[chroma.ChromaSimilarity, int]:
    """audiocraft's chroma similarity of one decoded pair, (channels, n) each: every channel resampled to 32 kHz with
    julius' resampler (``convert_audio``), the generated clip cut or zero-padded to the reference's length (MusicGen's
    solver cuts to it); returns the pair's frame sum and count, and the samples of padding added."""
    rate = chroma.MUSICGEN_SAMPLE_RATE
    gen, ref = (np.stack([resample(channel, r, rate, method="julius") for channel in audio])
                for audio, r in ((generated, gen_rate), (reference, ref_rate)))
    gen, padded = chroma.match_reference_length(gen, ref)
    return chroma.chroma_cosine_similarity(gen, ref, rate), padded


def pair_bytes(samples: int, *, sample_rate: int) -> float:
    """Peak bytes of one side's pair metrics on ``samples`` samples: the PSNR/SSIM mel (an STFT's worth) and
    LSD's spectrogram, with their copies, counted twice for the other side's arrays held meanwhile."""
    mel = PAIRED_MEL.get(sample_rate, PAIRED_MEL[max(PAIRED_MEL)])
    lsd_fft = int(2048 / (44100 / sample_rate))
    return 2.0 * (stft_bytes(samples, mel["n_fft"], mel["hop_length"])
                  + stft_bytes(samples, lsd_fft, max(sample_rate // 100, 1)))


def _one_pair(generated: Path, reference: Path, name: str, sample_rate: int, metrics: Sequence[str],
              conditioning: Conditioning, lsd_offset: int, memory_budget: int | None = None) -> dict:
    """Decode one pair and compute its values: ``{"bad": {side: reason}, "values": dict | None, "reasons":
    {metric: reason}}`` (JSON, naming no file, so it can be cached by content). Module-level so worker
    processes can run it."""
    waves, raw, bad, unreadable = {}, {}, {}, False
    signal_metrics = [m for m in metrics if m != chroma.KEY_CHROMA_SIMILARITY]
    for side, folder in (("generated", generated), ("reference", reference)):
        try:
            if signal_metrics:
                waves[side] = load_conditioned(folder / name, sample_rate, conditioning, memory_budget=memory_budget,
                                               then=functools.partial(pair_bytes, sample_rate=sample_rate))
            if chroma.KEY_CHROMA_SIMILARITY in metrics:  # audiocraft's reading: every channel, no other conditioning
                raw[side] = load_audio(folder / name, memory_budget=memory_budget, cost=chroma_bytes)
                validate_audio(*raw[side], min_duration=conditioning.min_duration)
        except UnreadableFileError as exc:  # about the path, not the content the key names: never cached
            bad[side] = str(exc)
            unreadable = True
        except InvalidAudioError as exc:
            bad[side] = str(exc)
    if bad:
        return {"bad": bad, "values": None, "reasons": {}, **({"unreadable": True} if unreadable else {})}
    values, reasons = pair_values(waves["generated"], waves["reference"], sample_rate=sample_rate,
                                  metrics=signal_metrics, lsd_offset=lsd_offset) if signal_metrics else ({}, {})
    result: dict = {"bad": bad, "values": values, "reasons": reasons}
    if raw:
        similarity, padded = chroma_pair(*raw["generated"], *raw["reference"])
        values[chroma.KEY_CHROMA_SIMILARITY] = similarity.value
        result["weights"] = {chroma.KEY_CHROMA_SIMILARITY: similarity.frames}
        if padded:
            result["padded"] = [chroma.KEY_CHROMA_SIMILARITY]
    return result


def chroma_bytes(frames: int, channels: int, rate: int) -> float:
    """Peak bytes of one side's chroma similarity beyond decoding: each channel's julius resampling, the channels at
    32 kHz and their mean, the chromagram's blocks of STFT (``chroma.BLOCK_VALUES`` complex values at a time)."""
    out = frames * chroma.MUSICGEN_SAMPLE_RATE / rate
    return channels * resample_bytes(frames, rate, chroma.MUSICGEN_SAMPLE_RATE, method="julius") \
        + 8.0 * channels * out + 16.0 * out + 32.0 * chroma.BLOCK_VALUES


def compute_pairs(generated: Path, reference: Path, names: Sequence[str], *, sample_rate: int,
                  metrics: Sequence[str], conditioning: Conditioning, lsd_offset: int = signal.HIFIGAN_OFFSET,
                  progress=None, pool=None, cache: FeatureCache | None = None,
                  memory_budget: int | None = None) -> PairValues:
    """Signal metrics for every named pair; unreadable files and left-out pairs are recorded, not raised.

    With a ``cache``, a pair whose two files and settings are unchanged is read from it (keyed by both
    files' content and every setting), so only new or edited pairs are decoded. With a ``pool``
    (``--workers``, a callable that starts it on first use) the others are computed in worker processes;
    results are taken in ``names`` order, so they do not depend on the worker count or the cache.
    """
    unpadded = dataclasses.replace(conditioning, min_samples=0)
    settings = {"kind": "pair_metrics", "sample_rate": sample_rate, "metrics": sorted(metrics),
                "conditioning": unpadded.as_dict(), "lsd_offset": lsd_offset,
                "paired_mel": PAIRED_MEL.get(sample_rate)}
    keys, found = [], []
    for name in names:
        try:
            key = cache.pair_key(generated / name, reference / name, settings) if cache else None
            keys.append(key)
            found.append(cache.get_pair(key) if cache and key is not None else None)
        except InvalidAudioError:  # not a regular file, or changed while hashed: decoding names the side
            keys.append(None)
            found.append(None)
    todo = [n for n, f in zip(names, found) if f is None]
    task = functools.partial(_one_pair, generated, reference, sample_rate=sample_rate, metrics=metrics,
                             conditioning=unpadded, lsd_offset=lsd_offset, memory_budget=memory_budget)
    computed = iter(pool().map(task, todo, chunksize=PAIRS_PER_TASK) if pool is not None and todo
                    else map(task, todo))
    out = PairValues()
    for name, key, result in zip(names, keys, found):
        if result is None:
            result = next(computed)
            if cache and key is not None and not result.pop("unreadable", False):
                cache.put_pair(key, result)
        for side, reason in result["bad"].items():
            out.bad_files.append({"side": side, "file": name, "reason": reason, "action": "skipped"})
        if result["values"] is not None:
            out.per_file[name] = {key: result["values"].get(key) for key in metrics}
            for metric, weight in result.get("weights", {}).items():
                out.weights.setdefault(metric, {})[name] = weight
            for metric in result.get("padded", []):
                out.padded.setdefault(metric, []).append(name)
        for metric, reason in result["reasons"].items():
            out.excluded.append({"side": "pair", "file": name, "reason": f"{metric}: {reason}",
                                 "action": f"left out of {metric}"})
        if progress is not None:
            progress(1)
    return out
