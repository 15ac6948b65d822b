"""Exceptions raised by audiofidelity; each also subclasses the matching built-in.

An error that names a path carries it as a keyword field (``folder=``, ``path=``, ``models=``...): the message
is then a ``str.format`` template of its fields (``literal`` escapes any other text put in it), ``str(exc)`` is
the message with the fields as given, and ``exc.render(show)`` is the message with each field shown by
``show``: the service shows a path relative to the job's folder or by its option name (``worker.public_value``),
so what it reports is built from the fields, never by replacing text.
"""
from __future__ import annotations

from typing import Any, Callable


def literal(text: object) -> str:
    """``text`` as it must appear in an error template (its braces doubled)."""
    return str(text).replace("{", "{{").replace("}", "}}")


class AudioFidelityError(Exception):
    """Base class of every error audiofidelity raises on purpose.

    Parameters
    ----------
    message : str
        The message; with ``fields``, a template naming them (``"folder not found: {folder}"``).
    **fields
        Structured values the message names (paths, names, expected and actual values), kept as attributes.
    """

    def __init__(self, message: str = "", **fields: Any) -> None:
        self.template, self.fields = message, fields
        for name, value in fields.items():
            setattr(self, name, value)
        super().__init__(message.format(**fields) if fields else message)

    def render(self, show: Callable[[Any], str]) -> str:
        """The message with each field shown by ``show`` (the message itself when there are no fields)."""
        if not self.fields:
            return str(self)
        return self.template.format(**{name: show(value) for name, value in self.fields.items()})


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


class DownloadError(AudioFidelityError, OSError):
    """An original checkpoint could not be downloaded whole (``models build``): no network, an HTTP error, a web
    page or a redirect loop instead of the file, a transfer cut short, or a folder that cannot take it. Fields:
    ``url`` and, where one is involved, ``path``; nothing partial is ever kept."""


class BuildError(AudioFidelityError, RuntimeError):
    """An artifact could not be built from its original checkpoint (``models build``, ``eval`` on first use): the
    checkpoint is not the one the exporter expects, or the export failed its check. Field: ``name``."""


class DeviceError(AudioFidelityError, ValueError):
    """The requested device does not exist for this torch build or machine."""


class ManifestError(AudioFidelityError, ValueError):
    """An artifact manifest is unreadable or does not describe what the runtime needs."""


class ChecksumMismatchError(AudioFidelityError, ValueError):
    """A file's sha256 differs from the one its manifest or registry pins."""


class BadFilesError(AudioFidelityError, ValueError):
    """Bad input files were found and the run was asked to be strict about them."""


class MetricUnavailableError(AudioFidelityError, ValueError):
    """A metric cannot be computed from the data at hand (too few clips, rows or pairs; a degenerate set): reported
    as ``null`` with this reason. Any other exception inside a metric is a defect and propagates."""


class IncompleteResultError(AudioFidelityError, RuntimeError):
    """A strict run (``--strict``) whose result left a metric unavailable or a pair out."""


class StatsFileError(AudioFidelityError, ValueError):
    """A reference statistics file is unreadable or was made with other artifacts or settings."""


class ServerStateError(AudioFidelityError, RuntimeError):
    """The service's data folder is held by another server, or its job store is damaged."""


class ReferenceProbabilitiesError(AudioFidelityError, ValueError):
    """A reference class-probabilities file (stable-audio-metrics' ``*__reference_probabilities.pkl``, or its
    ``.npz`` form) is refused: unreadable, too large, not a dict of id -> probability vector, a vector of the
    wrong length, non-finite, negative or not summing to 1 (logits), or a pickle that would run anything beyond
    rebuilding plain containers of numbers (refused before it runs)."""


class TokenizerFilesError(AudioFidelityError, ValueError):
    """A tokenizer's files (RoBERTa's ``vocab.json`` / ``merges.txt``) are refused: unreadable, not the sha256
    pinned for them, or malformed (not JSON, special tokens missing, a merges line that is not two tokens, a merge
    whose result is not in the vocab). ``path``: the file; ``expected`` and ``actual``: what it should hold and
    what it holds."""


class CaptionsFileError(AudioFidelityError, ValueError):
    """A captions file (``--captions``) is refused whole: unreadable, too large, not UTF-8, or neither a JSON object
    of id -> caption nor a CSV with an id and a caption column. ``path``: the file; ``expected`` and ``actual`` where
    a format was not met. Problems of single entries are reported, not raised (``captions.Captions.problems``)."""
