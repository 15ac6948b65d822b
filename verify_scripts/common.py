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
