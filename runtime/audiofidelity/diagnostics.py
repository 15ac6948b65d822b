"""Per-file diagnostics of the generated set: which files pull a set-level score, and what in their audio might.

For each usable generated file (``--per-file``):

- ``fad``: the file's own rows against the reference Gaussian (fadtk's ``--indiv``: the FAD of one file's frames;
  ``None`` for a model with one row per clip, which gives a file no covariance);
- ``nearest_reference_distance``: Euclidean distance from the file's mean row to the nearest reference file's;
- audio facts and flags: ``silent`` (RMS below ``SILENCE_DBFS``), ``clipping`` (samples at 16-bit full scale or
  beyond), ``dc_offset`` (a channel mean beyond ``DC_LIMIT`` and a tenth of the RMS), ``low_rate`` (recorded below a
  rate the run
  conditions audio at, so the top of the band is empty).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .audio import load_audio
from .errors import InvalidAudioError
from .metrics import frechet

SILENCE_DBFS = -60.0
FULL_SCALE = 1.0 - 2.0 ** -15
"""A sample this large or larger is at full scale (32767/32768 in 16-bit)."""
DC_LIMIT = 0.01
"""A channel mean beyond this (-40 dBFS) and beyond ``DC_SHARE`` of the RMS is a DC offset (a short clip of a low
tone has a mean from its partial cycle alone, which the share keeps from being flagged)."""
DC_SHARE = 0.1
WORST = 10


def audio_facts(path: Path, conditioning_rates: list[int], *, memory_budget: int | None = None) -> dict:
    """Level, peak, clipped samples, DC offset and native rate of one file, and the flags they raise (over its
    finite samples: NaN or infinity in a channel no model read is flagged ``non_finite``). A file that cannot be
    read again (gone, changed, over ``memory_budget``) gets its reason as an ``unreadable`` flag."""
    try:
        audio, rate = load_audio(path, memory_budget=memory_budget)
    except InvalidAudioError as exc:
        return {"rms_dbfs": None, "peak": None, "clipped_samples": None, "dc_offset": None, "native_rate": None,
                "flags": [f"unreadable: {exc}"]}
    finite = np.isfinite(audio)
    non_finite = int(audio.size - np.count_nonzero(finite))
    if non_finite:
        audio = np.where(finite, audio, np.float32(0))
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    rms_dbfs = 20.0 * np.log10(rms) if rms > 0 else float("-inf")
    clipped = int(np.count_nonzero(np.abs(audio) >= FULL_SCALE))
    dc = float(np.max(np.abs(audio.mean(axis=1, dtype=np.float64))))
    flags = []
    if rms_dbfs < SILENCE_DBFS:
        flags.append(f"silent: RMS {rms_dbfs:.1f} dBFS")
    if clipped:
        flags.append(f"clipping: {clipped} sample(s) at full scale")
    if dc > DC_LIMIT and dc > DC_SHARE * rms:
        flags.append(f"dc_offset: channel mean {dc:.3g}")
    if non_finite:
        flags.append(f"non_finite: {non_finite} sample(s) NaN or infinite in channels no model read")
    below = [r for r in conditioning_rates if rate < r]
    if below:
        flags.append(f"low_rate: recorded at {rate} Hz, evaluated at {max(below)} Hz")
    return {"rms_dbfs": round(rms_dbfs, 2) if np.isfinite(rms_dbfs) else None, "peak": float(np.max(np.abs(audio))),
            "clipped_samples": clipped, "dc_offset": dc, "native_rate": rate, "flags": flags}


def file_scores(rows: np.ndarray, reference_gaussian: tuple[np.ndarray, np.ndarray] | None,
                reference_means: np.ndarray | None) -> dict:
    """One file's FAD against the reference Gaussian and its distance to the nearest reference file."""
    rows = np.atleast_2d(rows)
    out: dict = {"fad": None, "nearest_reference_distance": None}
    if reference_gaussian is not None and len(rows) >= 2:
        out["fad"] = frechet.frechet_distance_to_statistics(rows, *reference_gaussian)
    if reference_means is not None and len(reference_means):
        gap = reference_means - rows.mean(axis=0, dtype=np.float64)
        out["nearest_reference_distance"] = float(np.sqrt(np.min(np.sum(gap * gap, axis=1))))
    return out


def worst_files(per_file: dict[str, dict], count: int = WORST) -> list[str]:
    """The names of the ``count`` files with the highest per-file FAD (then the farthest from the reference)."""
    def badness(name: str) -> tuple:
        entry = per_file[name]
        return (entry.get("fad") is not None, entry.get("fad") or 0.0,
                entry.get("nearest_reference_distance") or 0.0, bool(entry.get("flags")))
    return sorted(per_file, key=badness, reverse=True)[:count]
