"""Feature cache: each file's model outputs, keyed by what they depend on, so unchanged files are never decoded twice.

Key = sha256 over the audio file's content hash, the artifact's sha256, the model's frontend parameters,
the conditioning (channel, DC, resampler, padding, minimum duration) and rate, the device kind, the batch
size and the package version. A file's content hash is remembered by (path, device, inode, size, mtime,
ctime), as git's index does: a write to the file moves its ctime even when its mtime is put back
(``touch -r``), so a changed file is always re-hashed, and a second run over an unchanged folder reads no
audio at all. A file that was rejected (undecodable, silent, too short) is cached with its reason (which
names no path: the report attaches it), so it is reported again without decoding. Entries live under
``cache_root()/features`` (never in the user's folders), written to a temporary file and renamed into
place, so concurrent runs never see half an entry; an entry that cannot be read or fails its check is
deleted and recomputed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ._version import __version__
from .artifacts import cache_root
from .audio import FileIdentity, open_regular
from .errors import InvalidAudioError
from .outputs import atomic_write, npz

log = logging.getLogger(__name__)

PROBLEM_KEY = "__problem__"
CACHE_FORMAT = 2
RACY_NS = 2 * 10**9
"""A file changed less than this before it is hashed is hashed again next time, not memoised: the kernel stamps
files from a coarse clock (a few ms per tick), so a same-size rewrite within one tick keeps every stamp the memo
compares (git's "racily clean" rule)."""
"""2: per-clip forward passes, batch size in the key, path-free rejection reasons."""


def content_identity(path: Path, cache: "FeatureCache | None" = None) -> str:
    """What an in-memory memo keys a listed entry by: a regular file's content sha256 (through ``cache``'s
    (inode, size, mtime, ctime) memo when there is a cache, else read every time), never its path or name
    alone; anything else (a folder, a FIFO, a socket, a broken link) by its kind and stat stamp, without
    opening it (a FIFO would block)."""
    import stat as stat_module

    try:
        info = path.stat()
    except OSError as exc:
        return f"unreadable:{type(exc).__name__}"
    if not stat_module.S_ISREG(info.st_mode):
        return (f"mode {stat_module.S_IFMT(info.st_mode):o}:{info.st_dev}:{info.st_ino}:{info.st_mtime_ns}:"
                f"{info.st_ctime_ns}")
    try:
        return cache.content_sha256(path) if cache is not None else _sha256(path, FileIdentity.of(info))
    except (OSError, InvalidAudioError) as exc:  # unreadable or changed: the run reports it; a later run looks again
        return f"unreadable:{type(exc).__name__}:{info.st_ctime_ns}"


def _sha256(path: Path, identity: FileIdentity) -> str:
    """sha256 of a regular file's bytes, read through ``open_regular`` (never blocks on a FIFO swapped in; raises
    ``UnreadableFileError`` when the file is not ``identity`` or changes while it is read)."""
    digest = hashlib.sha256()
    with open_regular(path, identity) as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write(target: Path, write) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, write, option="feature cache entry")


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
        """sha256 of the file's bytes (see ``identify``)."""
        return self.identify(path)[0]

    def identify(self, path: Path) -> tuple[str, FileIdentity]:
        """(sha256 of the file's bytes, the identity they were read under): re-hashed unless its device, inode,
        size, mtime and ctime are all as when it was last hashed, and were then older than ``RACY_NS``.

        Raises ``UnreadableFileError`` for a path that is not a regular file or changed while it was hashed.
        """
        identity = FileIdentity.of(os.stat(path))
        memo = self.hashes_dir / f"{hashlib.sha256(str(path.absolute()).encode()).hexdigest()}.json"
        stamp = {"size": identity.size, "mtime_ns": identity.mtime_ns, "ctime_ns": identity.ctime_ns,
                 "inode": identity.inode, "device": identity.device}
        try:
            known = json.loads(memo.read_text())
            if {k: known[k] for k in stamp} == stamp:
                return known["sha256"], identity
        except (OSError, ValueError, KeyError, TypeError):
            pass
        digest = _sha256(path, identity)
        if time.time_ns() - max(identity.mtime_ns, identity.ctime_ns) < RACY_NS:
            return digest, identity  # too recent to vouch for its content later
        try:
            _atomic_write(memo, lambda f: f.write(json.dumps({**stamp, "sha256": digest}).encode()))
        except OSError:
            pass  # a read-only cache only costs a re-hash
        return digest, identity

    def keys(self, path: Path, settings: Sequence[dict[str, Any]]) -> list[str]:
        """Cache keys of one file's outputs, one per ``settings`` (artifact sha256, frontend, conditioning, ...);
        the file is hashed once for all of them."""
        return self.keys_and_identity(path, settings)[1]

    def keys_and_identity(self, path: Path, settings: Sequence[dict[str, Any]]) -> tuple[FileIdentity, list[str]]:
        """``keys``, and the identity of the content they were made from (a later read must find the same)."""
        audio, identity = self.identify(path)
        return identity, [hashlib.sha256(json.dumps({"format": CACHE_FORMAT, "audiofidelity": __version__,
                                                     "audio": audio, **one}, sort_keys=True,
                                                    default=str).encode()).hexdigest() for one in settings]

    def _entry(self, key: str) -> Path:
        return self.features_dir / key[:2] / f"{key}.npz"

    def get(self, key: str, valid: Callable[[dict[str, np.ndarray]], bool] | None = None
            ) -> dict[str, np.ndarray] | str | None:
        """The cached outputs, the cached rejection reason (a str), or None when absent.

        An entry that cannot be read (truncated, empty, not an archive) or that ``valid`` rejects (wrong
        outputs or shapes) is deleted and counted as a miss, so it is recomputed and rewritten.
        """
        path = self._entry(key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                entry = {name: data[name] for name in data.files}
            if PROBLEM_KEY in entry:
                reason = entry[PROBLEM_KEY]
                if reason.ndim != 0 or reason.dtype.kind != "U" or len(entry) != 1:
                    raise ValueError("malformed rejection entry")
                self.hits += 1
                return str(reason)
            if valid is not None and not valid(entry):
                raise ValueError("outputs do not match the model's")
        except Exception as exc:  # any unreadable entry (zipfile.BadZipFile, zlib.error, ...) is a miss
            log.warning("feature cache entry %s is unusable (%s: %s); deleted, recomputing", path.name,
                        type(exc).__name__, exc)
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def pair_key(self, generated: Path, reference: Path, settings: dict[str, Any]) -> str:
        """Cache key of one pair's signal metrics: both files' content and every setting of the metrics."""
        return hashlib.sha256(json.dumps({"format": CACHE_FORMAT, "audiofidelity": __version__, "pair": [
            self.content_sha256(generated), self.content_sha256(reference)], **settings}, sort_keys=True,
            default=str).encode()).hexdigest()

    def _pair_entry(self, key: str) -> Path:
        return self.root / "pairs" / key[:2] / f"{key}.json"

    def get_pair(self, key: str) -> dict | None:
        """A pair's cached result (JSON: floats round-trip exactly), or None; unreadable entries are deleted."""
        path = self._pair_entry(key)
        try:
            value = json.loads(path.read_text())
            if not isinstance(value, dict):
                raise ValueError("not an object")
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError) as exc:
            log.warning("pair cache entry %s is unusable (%s); deleted, recomputing", path.name, exc)
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put_pair(self, key: str, value: dict) -> None:
        try:
            _atomic_write(self._pair_entry(key), lambda f: f.write(json.dumps(value).encode()))
        except OSError:
            pass

    def put(self, key: str, value: dict[str, np.ndarray] | str) -> None:
        """Store outputs (or a rejection reason); a failed write only costs recomputation next time."""
        arrays = {PROBLEM_KEY: np.array(value)} if isinstance(value, str) else value
        try:
            _atomic_write(self._entry(key), npz(arrays))
        except OSError:
            pass

    def info(self) -> dict[str, Any]:
        """Location, entry count and size on disk."""
        files = [p for p in self.root.rglob("*") if p.is_file()] if self.root.exists() else []
        entries = sum(1 for p in files if p.suffix == ".npz" and p.parent.parent == self.features_dir)
        pairs = sum(1 for p in files if p.suffix == ".json" and p.parent.parent == self.root / "pairs")
        return {"root": str(self.root), "feature_entries": entries, "pair_entries": pairs,
                "bytes": sum(p.stat().st_size for p in files)}

    def clear(self) -> int:
        """Delete every feature and pair entry and content-hash memo; returns the number of files removed."""
        removed = 0
        for folder in (self.features_dir, self.hashes_dir, self.root / "pairs"):
            if folder.exists():
                removed += sum(1 for p in folder.rglob("*") if p.is_file())
                shutil.rmtree(folder)
        return removed
