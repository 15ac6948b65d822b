"""Helpers shared by the verify scripts (imported as a sibling module)."""
from __future__ import annotations

from pathlib import Path


def audio_files(paths: list[Path]) -> list[Path]:
    """The files named, and the files directly inside the folders named, sorted per folder."""
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(q for q in p.iterdir() if q.is_file()) if p.is_dir() else [p])
    return files


def relative_error(ours, theirs) -> float:
    """max |ours - theirs| / max |theirs| (0 when both are empty)."""
    import numpy as np

    if np.size(theirs) == 0:
        return 0.0
    return float(np.max(np.abs(ours - theirs)) / max(float(np.max(np.abs(theirs))), 1e-30))


def verdict(failed: list[str], ok_message: str) -> int:
    """Print the verdict (failures to stderr) and return the exit status: 1 if anything failed."""
    import sys

    if failed:
        print(f"FAIL: {'; '.join(failed)}", file=sys.stderr)
        return 1
    print(f"OK: {ok_message}")
    return 0


def original_fad(a, b) -> float:
    """FAD as audioldm_eval, frechet_audio_distance and fadtk compute it (``scipy.linalg.sqrtm``), transcribed."""
    import numpy as np
    import scipy.linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1.dot(s2)).real
    return float((mu1 - mu2).dot(mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
