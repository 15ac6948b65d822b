"""Writing output files: whole or not at all, under exactly the name given, and errors that name the file.

``atomic_write`` writes to a temporary file in the target's folder (``.<name>.<random>.tmp``, created with the
process's umask, or with the mode of the file it replaces), fsyncs it and renames it over the target, so a
reader never sees half a file, and a full disk, a refused permission or a crash leaves the previous content
as it was and no temporary file behind. ``append_text`` appends a block of whole lines (CSV rows) with one
``os.write`` on an ``O_APPEND`` descriptor; a short write (a disk filling up mid-row) is cut back, so a
failure never leaves half a row. Both raise ``OutputPathError`` (an ``OSError`` with the original errno)
naming the option, the path and the reason. ``npz`` writes arrays into an open file, so the name is the one
given (``np.savez(path)`` appends ``.npz`` to a name without it), and takes any key (``np.savez(**arrays)``
mistakes keys such as ``file`` or ``allow_pickle`` for its own arguments).
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable, Mapping

import numpy as np

from .errors import OutputPathError, literal

_TEMP_NAME_MAX = 200
"""Characters of the target's name kept in the temporary file's name (names are at most 255 bytes)."""


def output_error(option: str, path: str | Path, exc: OSError, *, existed: bool) -> OutputPathError:
    """``OutputPathError`` saying which option's file could not be written, why, and what is left of it."""
    left = "its previous content is unchanged" if existed else "nothing was written"
    error = OutputPathError(f"{literal(option)} {{path}}: cannot write it ({literal(exc.strerror or exc)}); {left}",
                            path=path)
    error.errno = exc.errno
    return error


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable where the platform allows it (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | Path, write_fn: Callable[[BinaryIO], object], *, option: str) -> None:
    """Write ``path`` whole or not at all: ``write_fn(f)`` writes into a binary temporary file beside it.

    Parameters
    ----------
    path : path
        The file to write, exactly as named (a symbolic link is followed: the file it points to is replaced).
    write_fn : callable
        Called once with the open temporary file (binary).
    option : str
        What the path was given as (``--json``, ``stats --out``, ``feature cache``), for the error message.

    Raises
    ------
    OutputPathError
        If any step fails with an ``OSError`` (full disk, no permission, missing folder, the path is a
        folder); the target keeps its previous content and no temporary file remains. Any other exception
        of ``write_fn`` propagates unchanged, with the same guarantees.
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    try:
        previous = os.stat(path)
    except OSError:
        previous = None
    temp = path.with_name(f".{path.name[:_TEMP_NAME_MAX]}.{secrets.token_hex(4)}.tmp")
    created = False
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        created = True
        with os.fdopen(fd, "wb") as f:
            if previous is not None and stat.S_ISREG(previous.st_mode):
                with contextlib.suppress(OSError):  # a file system without modes keeps its default
                    os.fchmod(f.fileno(), stat.S_IMODE(previous.st_mode))
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
        created = False
    except OSError as exc:
        raise output_error(option, path, exc, existed=previous is not None) from exc
    finally:
        if created:
            with contextlib.suppress(OSError):
                os.unlink(temp)
    _fsync_folder(path.parent)


def write_text(path: str | Path, text: str, *, option: str) -> None:
    """``atomic_write`` of ``text`` as UTF-8."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")), option=option)


def append_text(path: str | Path, text: str, *, option: str) -> None:
    """Append ``text`` (whole lines) to ``path``, created when missing, with one ``os.write``.

    A short write (the disk filled up part-way) is cut back to where it began, unless another writer has
    appended after it meanwhile, and reported, so the file never ends in half a line of this text.

    Raises
    ------
    OutputPathError
        If the file cannot be opened or the text not written whole; the file's previous content is intact.
    """
    data = text.encode("utf-8")
    existed = os.path.exists(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        raise output_error(option, path, exc, existed=existed) from exc
    try:
        written = os.write(fd, data)
        if written != len(data):
            end = os.lseek(fd, 0, os.SEEK_CUR)
            if os.fstat(fd).st_size == end:
                os.ftruncate(fd, end - written)
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} after {written} of {len(data)} bytes")
    except OSError as exc:
        raise output_error(option, path, exc, existed=existed) from exc
    finally:
        os.close(fd)


def npz(arrays: Mapping[str, np.ndarray], *, compressed: bool = False) -> Callable[[BinaryIO], None]:
    """A ``write_fn`` for ``atomic_write`` writing ``arrays`` as an ``.npz`` that ``np.load`` reads back
    with exactly these keys (no pickles)."""
    def write(f: BinaryIO) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED,
                             allowZip64=True) as archive:
            for key, value in arrays.items():
                with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
    return write


def check_writable(path: Path | None, option: str) -> None:
    """Fail before any work when ``path`` cannot be written (missing folder, no permission, a folder);
    a file that did not exist is not left behind.

    Raises
    ------
    OutputPathError
        Naming ``option`` and ``path``, and saying that nothing was computed.
    """
    if path is None:
        return
    existed = path.exists()
    try:
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder")
        with open(path, "a"):
            pass
    except OSError as exc:
        raise OutputPathError(f"{option} {path}: cannot write there ({exc.strerror or exc}); nothing was "
                              f"computed") from exc
    if not existed:
        path.unlink(missing_ok=True)
