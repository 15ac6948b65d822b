"""Build artifacts on the user's machine (``audiofidelity models build``, and ``eval`` on first use): each original
checkpoint downloaded from its upstream location (``download.py``) or taken from a file at hand, exported and
checked (``export.py``), sealed into the models folder, with a line per step.

The models folder gains only whole artifacts: the exporter writes each file atomically and the manifest last, one
build of an artifact runs at a time (a lock in the upstream cache; a second process waits and then keeps the first
one's), and a download becomes a file in the upstream cache (``$AUDIOFIDELITY_CACHE/upstream``) only whole and
checked.
"""
from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Callable

from audiofidelity.artifacts import MODELS_ENV, cache_root, file_sha256, verify_local
from audiofidelity.errors import AudioFidelityError, BuildError, OutputPathError
from audiofidelity.registry import ArtifactEntry, registry_entry

from .download import HF_PREFIX, fetch_extras, fetch_source, hf_commit, locked
from .export import builder_for, export, extra_options


def licence_note(entry: ArtifactEntry) -> str:
    """The licence in words for the line before a build (a non-commercial one said so)."""
    return f"licence {entry.license}" + (", non-commercial use only" if "-NC" in entry.license.upper() else "")


def check_models_folder(folder: Path) -> None:
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


def is_built(name: str, folder: Path) -> bool:
    """Whether ``folder`` holds artifact ``name`` whole: its manifest belongs to its program, and the program and
    every file the manifest names beside it hash to what is sealed."""
    try:
        verify_local(name, folder)
    except (AudioFidelityError, OSError):
        return False
    return True


def _check_requirements(name: str) -> None:
    missing = {module: how for module, how in getattr(builder_for(name), "REQUIRES", {}).items()
               if importlib.util.find_spec(module) is None}
    if missing:
        raise BuildError("cannot build {name}: its export needs {modules} ({how})", name=name,
                         modules=", ".join(missing), how="; ".join(dict.fromkeys(missing.values())))


def build(name: str, out: Path, *, source: Path | None = None, extras: dict[str, Path] | None = None,
          revision: str | None = None, cache: Path | None = None, force: bool = False, progress: bool = True,
          say: Callable[[str], None] = print) -> bool:
    """Build registry artifact ``name`` into the models folder ``out``; return False when it was already there
    whole (kept, unless ``force``).

    Parameters
    ----------
    source : the original checkpoint at hand (file or folder); None downloads it from the registry's
        ``source_url`` (with its sha256 pin, where there is one).
    extras : further upstream files at hand by option keyword (``vocab``, ``merges``, ``pca``); the others are
        downloaded.
    revision : a Hugging Face source's commit (MERT); default the registry's pin, else ``main``; the commit used
        is recorded.
    cache : where downloads are kept (default ``$AUDIOFIDELITY_CACHE/upstream``).

    Raises
    ------
    OutputPathError
        ``out`` cannot be written.
    DownloadError, ChecksumMismatchError
        From ``download.fetch_url``.
    BuildError
        A module the export needs is missing, the checkpoint is not what the exporter expects, or the export
        failed its check against eager PyTorch.
    """
    entry = registry_entry(name)
    folder_source = entry.source_url.startswith(HF_PREFIX) and "/resolve/" not in entry.source_url
    if revision is not None and not folder_source:
        raise BuildError("cannot build {name}: --revision applies to a Hugging Face model folder (MERT), and {name} "
                         "is built from one file", name=name)
    check_models_folder(out)
    _check_requirements(name)
    cache = cache if cache is not None else cache_root() / "upstream"
    with locked(cache / f".{name}.build.lock", url=entry.source_url):  # the models folder holds artifacts only
        if not force and is_built(name, out):
            return False
        say(f"{name}: {entry.source_file} from {entry.origin} ({licence_note(entry)})")
        given = dict(extras or {})
        if source is None:
            source = fetch_source(entry, cache, revision, progress=progress, say=say)
        elif entry.source_sha256 and source.is_file() and file_sha256(source) != entry.source_sha256:
            say(f"{name}: note: {source.name} is not the published {entry.source_file} (sha256 "
                f"{entry.source_sha256[:12]}...); the artifact is built from it, and its manifest names its sha256")
        revision = (hf_commit(source) or revision) if folder_source else None
        given.update(fetch_extras(entry, cache, given, progress=progress, say=say))
        say(f"{name}: exporting with torch.export and checking against eager PyTorch")
        try:
            export(name, source, out, pca=given.pop("pca", None), source_revision=revision,
                   extras={key: given[key] for key in extra_options(name)})
        except SystemExit as exc:  # the exporters' refusals: a wrong or damaged checkpoint, a failed check
            raise BuildError("cannot build {name}: {reason}", name=name, reason=str(exc.code)) from None
        except Exception as exc:  # torch.load of a file that is no checkpoint, an export the tracer refuses
            raise BuildError("cannot build {name} from {source}: {kind}: {reason}", name=name, source=source,
                             kind=type(exc).__name__, reason=str(exc).splitlines()[0] if str(exc) else "") from None
    return True


__all__ = ["build", "check_models_folder", "is_built", "licence_note"]
