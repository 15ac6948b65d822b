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


def add_two_set_options(parser) -> None:
    """``--models-dir``, ``--audio`` and ``--reference`` (the two sets FAD compares) and ``--tolerance``."""
    parser.add_argument("--models-dir", type=Path, default=None, help="directory holding the exported artifact")
    parser.add_argument("--audio", type=Path, action="append", required=True, help="first set: file or folder")
    parser.add_argument("--reference", type=Path, action="append", required=True, help="second set: file or folder")
    parser.add_argument("--tolerance", type=float, default=1e-4)


def fad_difference(sets: dict) -> float:
    """FAD between ``sets["audio"]`` and ``sets["reference"]`` by each side (``{"ours": rows, "original": rows}``,
    ours with audiofidelity's formula, the original's transcribed); prints both; returns the relative difference."""
    from audiofidelity.metrics.frechet import frechet_distance_from_features

    ours = frechet_distance_from_features(sets["audio"]["ours"], sets["reference"]["ours"])
    theirs = original_fad(sets["audio"]["original"], sets["reference"]["original"])
    error = abs(ours / theirs - 1) if theirs else abs(ours)
    print(f"FAD: ours {ours:.6f}, original {theirs:.6f}, relative difference {error:.3g}")
    return error
