"""Per-pair signal metrics (PSNR, SSIM, LSD) over two folders of same-named clips; no model involved.

Each pair is decoded and conditioned as audioldm_eval's ``MelPairedDataset`` does (first channel,
mean removed, resampled to the evaluation rate, no padding), then:

- PSNR and SSIM compare the pair's ``paired_mel`` spectrograms trimmed to the common frame count;
  a pair with infinite PSNR (identical spectrograms) is left out of both, as the original does;
- LSD compares the waveforms after ``lsd_preprocess`` (HiFi-GAN offset, mean, peak, trim).
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .audio import Conditioning, load_conditioned
from .cache import FeatureCache
from .errors import InvalidAudioError, MetricUnavailableError, UnreadableFileError
from .frontends import PAIRED_MEL, paired_mel, stft_bytes
from .metrics import signal

PAIRS_PER_TASK = 4
"""Pairs sent to a worker process at a time (fewer round trips; the results stay in order)."""


@dataclass
class PairValues:
    """Per-file values of the selected signal metrics, and why some pairs are left out."""

    per_file: dict[str, dict[str, float | None]] = field(default_factory=dict)
    excluded: list[dict] = field(default_factory=list)
    bad_files: list[dict] = field(default_factory=list)

    def mean(self, key: str) -> float:
        values = [x for x in (v.get(key) for v in self.per_file.values()) if x is not None]
        if not values:
            raise ValueError(f"no pair has a finite {key} (see 'problems')")
        return float(np.mean(values))


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
    waves, bad, unreadable = {}, {}, False
    for side, folder in (("generated", generated), ("reference", reference)):
        try:
            waves[side] = load_conditioned(folder / name, sample_rate, conditioning, memory_budget=memory_budget,
                                           then=functools.partial(pair_bytes, sample_rate=sample_rate))
        except UnreadableFileError as exc:  # about the path, not the content the key names: never cached
            bad[side] = str(exc)
            unreadable = True
        except InvalidAudioError as exc:
            bad[side] = str(exc)
    if len(waves) < 2:
        return {"bad": bad, "values": None, "reasons": {}, **({"unreadable": True} if unreadable else {})}
    values, reasons = pair_values(waves["generated"], waves["reference"], sample_rate=sample_rate,
                                  metrics=metrics, lsd_offset=lsd_offset)
    return {"bad": bad, "values": values, "reasons": reasons}


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
        for metric, reason in result["reasons"].items():
            out.excluded.append({"side": "pair", "file": name, "reason": f"{metric}: {reason}",
                                 "action": f"left out of {metric}"})
        if progress is not None:
            progress(1)
    return out
