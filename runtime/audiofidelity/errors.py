"""Exceptions raised by audiofidelity; each also subclasses the matching built-in."""
from __future__ import annotations


class AudioFidelityError(Exception):
    """Base class of every error audiofidelity raises on purpose."""


class InvalidAudioError(AudioFidelityError, ValueError):
    """An audio file or array cannot be used: unreadable, empty, silent, non-finite or too short."""


class UnreadableFileError(InvalidAudioError):
    """A path that cannot be read as a file's content: gone, a dangling symlink, a FIFO, device or socket,
    unreadable, or changed while it was listed, hashed or read. Never cached: it says nothing about any content."""


class TooLongForMemoryError(InvalidAudioError):
    """A clip whose model pass would exceed the memory budget; refused before it runs (never cached: another
    budget may accept it)."""


class InputFolderError(AudioFidelityError, FileNotFoundError):
    """A folder to evaluate is missing, not a folder, or holds no files."""


class ArtifactNotFoundError(AudioFidelityError, FileNotFoundError):
    """An exported model artifact (``.pt2`` + manifest) is not where it was looked for."""


class OutputPathError(AudioFidelityError, OSError):
    """An output file (``--json``, ``--csv``, ``--save-features``, ``stats --out``, ...) cannot be written, or not
    whole (a full disk, a refused write); the message names the option and the file, whose previous content is
    kept (``outputs``). ``errno`` is the failure's."""


class DeviceError(AudioFidelityError, ValueError):
    """The requested device does not exist for this torch build or machine."""


class ManifestError(AudioFidelityError, ValueError):
    """An artifact manifest is unreadable or does not describe what the runtime needs."""


class ChecksumMismatchError(AudioFidelityError, ValueError):
    """A file's sha256 differs from the one its manifest or registry pins."""


class BadFilesError(AudioFidelityError, ValueError):
    """Bad input files were found and the run was asked to be strict about them."""


class IncompleteResultError(AudioFidelityError, RuntimeError):
    """A strict run (``--strict``) whose result left a metric unavailable or a pair out."""


class StatsFileError(AudioFidelityError, ValueError):
    """A reference statistics file is unreadable or was made with other artifacts or settings."""


class ServerStateError(AudioFidelityError, RuntimeError):
    """The service's data folder is held by another server, or its job store is damaged."""
