"""Build artifacts on the user's machine (``audiofidelity models build``, and ``eval`` on first use): each original
checkpoint downloaded from its upstream location (``download.py``) or taken from a file at hand, exported and
checked (``export.py``), sealed into the models folder, with a line per step.

The models folder gains only whole artifacts: the exporter writes each file atomically and the manifest last, and
a download becomes a file in the upstream cache (``$AUDIOFIDELITY_CACHE/upstream``) only whole and checked.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from audiofidelity.artifacts import MODELS_ENV, cache_root
from audiofidelity.errors import BuildError, OutputPathError
from audiofidelity.registry import ArtifactEntry, registry_entry

from .download import fetch_extras, fetch_source, hf_commit
from .export import export, extra_options


def licence_note(entry: ArtifactEntry) -> str:
    """The licence in words for the line before a download (a non-commercial one said so)."""
    return f"licence {entry.license}" + (", non-commercial use only" if "-NC" in entry.license.upper() else "")


def check_writable(folder: Path) -> None:
    """Refuse a models folder that cannot take files, naming it and how to choose another, before any download."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        error = OutputPathError("models folder {path}: cannot write there ({reason}); choose another with "
                                f"--models-dir DIR or ${MODELS_ENV}", path=folder, reason=exc.strerror or str(exc))
        error.errno = exc.errno
        raise error from None


def build(name: str, out: Path, *, source: Path | None = None, extras: dict[str, Path] | None = None,
          revision: str | None = None, cache: Path | None = None, progress: bool = True,
          say: Callable[[str], None] = print) -> Path:
    """Build registry artifact ``name`` into the models folder ``out``; return its manifest's path.

    Parameters
    ----------
    source : the original checkpoint at hand (file or folder); None downloads it from the registry's
        ``source_url`` (with its sha256 pin, where there is one).
    extras : further upstream files at hand by option keyword (``vocab``, ``merges``, ``pca``); the others are
        downloaded.
    revision : a Hugging Face source's commit (MERT); default the registry's pin, else ``main`` (the commit it
        resolves to is recorded).
    cache : where downloads are kept (default ``$AUDIOFIDELITY_CACHE/upstream``).

    Raises
    ------
    OutputPathError
        ``out`` cannot be written.
    DownloadError, ChecksumMismatchError
        From ``download.fetch_url``.
    BuildError
        The checkpoint is not what the exporter expects, or the export failed its check against eager PyTorch.
    """
    entry = registry_entry(name)
    check_writable(out)
    cache = cache if cache is not None else cache_root() / "upstream"
    given = dict(extras or {})
    if source is None:
        say(f"{name}: downloading {entry.source_file} from {entry.source_url} ({entry.origin}; "
            f"{licence_note(entry)})")
        source = fetch_source(entry, cache, revision, progress=progress, say=say)
        revision = revision or entry.source_revision or hf_commit(source)
    else:
        say(f"{name}: from {source} ({licence_note(entry)})")
    if entry.extra_sources:
        given.update(fetch_extras(entry, cache, given, progress=progress, say=say))
    say(f"{name}: exporting with torch.export and checking against eager PyTorch")
    try:
        manifest = export(name, source, out, pca=given.pop("pca", None), source_revision=revision,
                          extras={key: given[key] for key in extra_options(name)})
    except SystemExit as exc:  # the exporters' refusals: a wrong or damaged checkpoint, a failed check
        raise BuildError("cannot build {name}: {reason}", name=name, reason=str(exc.code)) from None
    say(f"{name}: written to {out}")
    return manifest


def build_missing(names: list[str], out: Path, *, progress: bool = True,
                  say: Callable[[str], None] = print) -> None:
    """``build`` each of ``names`` into ``out`` (``eval``'s first run), in order; the first failure stops."""
    for name in names:
        build(name, out, progress=progress, say=say)
