"""Checking and storing uploaded audio: safe names, audio recognised by content, size limits.

Every file of a request is written under a staging folder first; if any file is refused, the caller
removes the folder, so a refused request leaves nothing behind. Names are kept as uploaded (pairing
is by name), but only plain file names are accepted: no path separators, no ``..``, no control
characters, no leading dot.
"""
from __future__ import annotations

import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

import soundfile as sf

from ..validation import check_int

MAX_NAME_BYTES = 200
_COPY_BLOCK = 1 << 20


class UploadError(Exception):
    """An upload is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UploadLimits:
    """What one request may upload."""

    max_file_bytes: int = 200 * 2**20
    max_request_bytes: int = 2 * 2**30
    max_files: int = 1000

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_request_bytes", "max_files"):
            check_int(getattr(self, name), name, minimum=1)


def _is_mp3(head: bytes) -> bool:
    return head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


AUDIO_SIGNATURES = {
    "WAV": lambda h: h[:4] in (b"RIFF", b"RIFX", b"RF64") and h[8:12] == b"WAVE",
    "FLAC": lambda h: h[:4] == b"fLaC",
    "OGG": lambda h: h[:4] == b"OggS",
    "AIFF": lambda h: h[:4] == b"FORM" and h[8:12] in (b"AIFF", b"AIFC"),
    "CAF": lambda h: h[:4] == b"caff",
    "AU": lambda h: h[:4] == b".snd",
    "MP3": _is_mp3,
}
"""Accepted audio types, by their leading bytes (the file name's extension is not trusted)."""


def audio_type(head: bytes) -> str | None:
    """The audio type the first bytes of a file announce, or None for anything else."""
    return next((name for name, matches in AUDIO_SIGNATURES.items() if matches(head)), None)


def check_name(name: str | None) -> str:
    """The upload's file name if it is a plain, safe file name; otherwise ``UploadError``."""
    if not name:
        raise UploadError("an uploaded file has no file name")
    normal = unicodedata.normalize("NFC", name)
    if "/" in normal or "\\" in normal or normal in (".", ".."):
        raise UploadError(f"file name {name!r} is a path; upload plain file names (no '/', '\\' or '..')")
    if normal.startswith(".") or any(unicodedata.category(c).startswith("C") for c in normal):
        raise UploadError(f"file name {name!r} starts with a dot or holds control characters")
    if len(normal.encode("utf-8")) > MAX_NAME_BYTES:
        raise UploadError(f"file name {name[:40]!r}... is longer than {MAX_NAME_BYTES} bytes")
    return normal


def _copy_limited(source: BinaryIO, target: Path, limit: int, name: str) -> int:
    """Copy ``source`` to ``target``; its size, or ``UploadError`` (413) past ``limit`` bytes."""
    size = 0
    with open(target, "xb") as out:
        while block := source.read(_COPY_BLOCK):
            size += len(block)
            if size > limit:
                raise UploadError(f"{name}: larger than the {limit} bytes allowed per file", status=413)
            out.write(block)
    return size


def store_side(side: str, files: Iterable[tuple[str | None, BinaryIO]], folder: Path,
               limits: UploadLimits) -> list[dict]:
    """Check and write one side's uploads into ``folder``; a description of each stored file.

    Raises
    ------
    UploadError
        On the first unsafe name, duplicate name, empty, oversized, non-audio or undecodable file.
    """
    folder.mkdir(parents=True)
    stored = []
    for raw_name, source in files:
        name = check_name(raw_name)
        target = folder / name
        if target.exists():
            raise UploadError(f"{side}: file name {name!r} is uploaded twice")
        head = source.read(16)
        kind = audio_type(head)
        if not head:
            raise UploadError(f"{side}/{name}: empty file (0 bytes)")
        if kind is None:
            raise UploadError(f"{side}/{name}: not audio: its content is none of {', '.join(AUDIO_SIGNATURES)}",
                              status=415)
        source.seek(0)
        size = _copy_limited(source, target, limits.max_file_bytes, f"{side}/{name}")
        try:
            with open(target, "rb") as stored_file:  # read through a reader named as the client named it, so
                info = sf.info(_UploadReader(stored_file, f"{side}/{name}"))  # libsndfile's errors name no server path
        except (RuntimeError, ValueError) as exc:  # libsndfile's errors are RuntimeErrors
            raise UploadError(f"{side}/{name}: looks like {kind} but cannot be decoded: {exc}", status=415) from exc
        stored.append({"name": name, "bytes": size, "type": kind, "sample_rate": info.samplerate,
                       "channels": info.channels, "seconds": round(info.duration, 3)})
    return stored


class _UploadReader:
    """A stored upload as libsndfile reads it (its virtual I/O: read, seek, tell), shown by ``repr`` as
    ``side/name``, which is what libsndfile's error messages name."""

    def __init__(self, file: BinaryIO, shown: str) -> None:
        self._file, self._shown = file, shown

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def __repr__(self) -> str:
        return repr(self._shown)


def discard(folder: Path) -> None:
    """Remove a staging or job folder and everything in it (no error if it is already gone)."""
    shutil.rmtree(folder, ignore_errors=True)


def store_captions(raw_name: str | None, source: BinaryIO, folder: Path, limits: UploadLimits) -> dict:
    """Check and write a captions file (CLAP score) into ``folder``; a description of it.

    Raises
    ------
    UploadError
        An unsafe name, an empty or oversized file, or one ``captions.read_captions`` refuses (its reason, with the
        file shown by its upload name).
    """
    from ..captions import MAX_BYTES, read_captions
    from ..errors import CaptionsFileError

    name = check_name(raw_name)
    folder.mkdir(parents=True)
    target = folder / name
    size = _copy_limited(source, target, min(limits.max_file_bytes, MAX_BYTES), f"captions/{name}")
    if not size:
        raise UploadError(f"captions/{name}: empty file (0 bytes)")
    try:
        captions = read_captions(target)
    except CaptionsFileError as exc:
        raise UploadError(exc.render(lambda value: f"captions/{name}" if isinstance(value, Path) else str(value)),
                          status=422) from None
    return {"name": name, "bytes": size, "captions": len(captions.by_id), "problems": len(captions.problems)}

