"""Feature cache: each file's model outputs, keyed by what they depend on, so unchanged files are never decoded twice.

Key = sha256 over the audio file's content hash, the artifact's sha256, the model's frontend parameters,
the conditioning (channel, DC, resampler, padding, minimum duration) and rate, the device kind and the
package version. A file's content hash is remembered by (path, size, mtime), so a second run over an
unchanged folder reads no audio at all; a file whose bytes changed gets a new key. A file that was
rejected (undecodable, silent, too short) is cached with its reason, so it is reported again without
decoding. Entries live under ``cache_root()/features`` (never in the user's folders), written to a
temporary file and renamed into place, so concurrent runs never see half an entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import __version__
from .artifacts import cache_root, file_sha256

PROBLEM_KEY = "__problem__"
CACHE_FORMAT = 1


def _atomic_write(target: Path, write) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp.", suffix=target.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FeatureCache:
    """Per-file model outputs (or the reason a file was rejected) on disk.

    Parameters
    ----------
    root : path, optional
        Cache directory; default ``cache_root()`` (``$AUDIOFIDELITY_CACHE`` or the platform cache dir).
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root()
        self.hits = 0
        self.misses = 0

    @property
    def features_dir(self) -> Path:
        return self.root / "features"

    @property
    def hashes_dir(self) -> Path:
        return self.root / "content-sha256"

    def content_sha256(self, path: Path) -> str:
        """sha256 of the file's bytes, re-hashed only when its size or mtime changed since last time."""
        stat = path.stat()
        memo = self.hashes_dir / f"{hashlib.sha256(str(path.absolute()).encode()).hexdigest()}.json"
        stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        try:
            known = json.loads(memo.read_text())
            if {k: known[k] for k in stamp} == stamp:
                return known["sha256"]
        except (OSError, ValueError, KeyError):
            pass
        digest = file_sha256(path)
        try:
            _atomic_write(memo, lambda f: f.write(json.dumps({**stamp, "sha256": digest}).encode()))
        except OSError:
            pass  # a read-only cache only costs a re-hash
        return digest

    def keys(self, path: Path, settings: Sequence[dict[str, Any]]) -> list[str]:
        """Cache keys of one file's outputs, one per ``settings`` (artifact sha256, frontend, conditioning, ...);
        the file is hashed once for all of them."""
        audio = self.content_sha256(path)
        return [hashlib.sha256(json.dumps({"format": CACHE_FORMAT, "audiofidelity": __version__, "audio": audio,
                                           **one}, sort_keys=True, default=str).encode()).hexdigest()
                for one in settings]

    def _entry(self, key: str) -> Path:
        return self.features_dir / key[:2] / f"{key}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | str | None:
        """The cached outputs, the cached rejection reason (a str), or None when absent or unreadable."""
        try:
            with np.load(self._entry(key), allow_pickle=False) as data:
                entry = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError):
            self.misses += 1
            return None
        self.hits += 1
        return str(entry[PROBLEM_KEY]) if PROBLEM_KEY in entry else entry

    def put(self, key: str, value: dict[str, np.ndarray] | str) -> None:
        """Store outputs (or a rejection reason); a failed write only costs recomputation next time."""
        arrays = {PROBLEM_KEY: np.array(value)} if isinstance(value, str) else value
        try:
            _atomic_write(self._entry(key), lambda f: np.savez(f, **arrays))
        except OSError:
            pass

    def info(self) -> dict[str, Any]:
        """Location, entry count and size on disk."""
        files = [p for p in self.root.rglob("*") if p.is_file()] if self.root.exists() else []
        entries = sum(1 for p in files if p.suffix == ".npz" and p.parent.parent == self.features_dir)
        return {"root": str(self.root), "feature_entries": entries,
                "bytes": sum(p.stat().st_size for p in files)}

    def clear(self) -> int:
        """Delete every feature entry and content-hash memo; returns the number of files removed."""
        removed = 0
        for folder in (self.features_dir, self.hashes_dir):
            if folder.exists():
                removed += sum(1 for p in folder.rglob("*") if p.is_file())
                shutil.rmtree(folder)
        return removed
