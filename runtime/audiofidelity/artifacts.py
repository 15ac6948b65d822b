"""Artifact store: find an exported model, prove its bytes, load it once per process.

An artifact is ``<name>.pt2`` (a ``torch.export`` program) plus ``<name>.json`` (its manifest: sha256,
frontend parameters, input/output spec, provenance). Resolution order: a models directory
(``models_dir=`` / ``--models-dir`` / ``$AUDIOFIDELITY_MODELS``), then the Hugging Face cache or Hub at the
registry's pinned revision (``hf_hub_download``; honours ``HF_HUB_OFFLINE``, ``HF_HOME``, ``HF_ENDPOINT``),
then an error saying how to build the artifact. The ``.pt2``'s sha256 is checked before every load (a
verified file is remembered by path, size and mtime, so a 300 MB file is not re-hashed on every run);
a mismatch is never loaded.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ArtifactNotFoundError, ChecksumMismatchError, ManifestError
from .registry import ArtifactEntry, export_command, registry_entry

MANIFEST_SCHEMA_VERSION = 1
MODELS_ENV = "AUDIOFIDELITY_MODELS"
CACHE_ENV = "AUDIOFIDELITY_CACHE"


@dataclass(frozen=True)
class Manifest:
    """An artifact's JSON manifest (see ``export_scripts/export.py`` for how it is written)."""

    name: str
    sha256: str
    frontend: dict[str, Any]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    raw: dict[str, Any]

    @property
    def output_names(self) -> list[str]:
        return [o["name"] for o in self.outputs]

    @property
    def sample_rate(self) -> int:
        """The rate the model's frontend takes its waveform at."""
        return int(self.frontend["sample_rate"])

    def roles(self) -> dict[str, str]:
        """Feature role (``embedding``, ``logits``, ``layers``, ``fad``) -> the output that plays it."""
        return {role: o["name"] for o in self.outputs for role in o.get("roles", ())}

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ManifestError(f"cannot read artifact manifest {path}: {exc}") from exc
        version = raw.get("schema_version")
        if version != MANIFEST_SCHEMA_VERSION:
            raise ManifestError(f"{path}: manifest schema_version {version!r}, this version reads "
                                f"{MANIFEST_SCHEMA_VERSION}; re-export the artifact or upgrade audiofidelity")
        try:
            manifest = cls(name=raw["name"], sha256=raw["artifact"]["sha256"], frontend=raw["frontend"],
                           inputs=raw["inputs"], outputs=raw["outputs"], raw=raw)
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"{path}: manifest lacks required field {exc}") from exc
        unroled = [o.get("name") for o in manifest.outputs if not o.get("roles")]
        if unroled:
            raise ManifestError(f"{path}: outputs {unroled} declare no roles (an export from before roles existed); "
                                f"re-export the artifact with export_scripts/export.py")
        return manifest


def cache_root() -> Path:
    """audiofidelity's one cache directory: ``$AUDIOFIDELITY_CACHE``, else ``$XDG_CACHE_HOME/audiofidelity``,
    else ``~/.cache/audiofidelity``. Never inside the user's audio folders."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "audiofidelity"


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _memo_path() -> Path:
    return cache_root() / "verified-sha256.json"


def _read_memo() -> dict[str, dict]:
    try:
        return json.loads(_memo_path().read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _remember(path: Path, sha256: str) -> None:
    stat = path.stat()
    memo = _read_memo()
    memo[str(path.absolute())] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}
    target = _memo_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".verified.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(memo, f)
        os.replace(tmp, target)  # atomic: concurrent runs see the old or the new memo, never half of one
    except OSError:
        pass  # a read-only cache only costs a re-hash next time


def verify_sha256(path: Path, expected: str, *, use_memo: bool = True) -> None:
    """Raise ``ChecksumMismatchError`` unless ``path`` hashes to ``expected``.

    With ``use_memo``, a file verified before with the same size and mtime is not hashed again.
    """
    stat = path.stat()
    known = _read_memo().get(str(path.absolute())) if use_memo else None
    if known and known == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": expected}:
        return
    actual = file_sha256(path)
    if actual != expected:
        raise ChecksumMismatchError(
            f"{path}: sha256 is {actual}, but {expected} is pinned for it. The file is corrupt or was "
            f"replaced; delete it and export or download the artifact again")
    _remember(path, actual)


def models_dir(explicit: str | Path | None = None) -> Path | None:
    """The models directory in force: ``explicit``, else ``$AUDIOFIDELITY_MODELS``, else None."""
    chosen = explicit if explicit is not None else os.environ.get(MODELS_ENV)
    return Path(chosen).expanduser() if chosen else None


@dataclass(frozen=True)
class Resolved:
    """Where an artifact was found: its files, manifest, and origin (``local`` or ``hub``)."""

    program: Path
    manifest: Manifest
    origin: str
    entry: ArtifactEntry


def local_files(name: str, directory: str | Path | None = None) -> tuple[Path, Path] | None:
    """``(<name>.pt2, <name>.json)`` in the models directory in force, or None when there is none."""
    root = models_dir(directory)
    return (root / f"{name}.pt2", root / f"{name}.json") if root is not None else None


def _from_hub(entry: ArtifactEntry) -> tuple[Path, Path]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub import errors as hub_errors

    pin = entry.hub
    failures = (hub_errors.LocalEntryNotFoundError, hub_errors.EntryNotFoundError, hub_errors.RepositoryNotFoundError,
                hub_errors.RevisionNotFoundError, hub_errors.HfHubHTTPError, OSError, ValueError)
    try:
        paths = [Path(hf_hub_download(pin.repo_id, f"{entry.name}{suffix}", revision=pin.revision,
                                      library_name="audiofidelity")) for suffix in (".pt2", ".json")]
    except failures as exc:
        raise ArtifactNotFoundError(
            f"artifact {entry.name!r} could not be fetched from {pin.repo_id} at revision {pin.revision} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Build it from the original "
            f"instead: {export_command(entry.name)}, then pass --models-dir") from exc
    return paths[0], paths[1]


def resolve(name: str, directory: str | Path | None = None) -> Resolved:
    """Find ``<name>.pt2`` and ``<name>.json``: models directory, then the pinned Hub revision.

    Raises
    ------
    ArtifactNotFoundError
        Naming the files looked for and the export command that builds them.
    ChecksumMismatchError
        If a downloaded manifest differs from its pin.
    """
    entry = registry_entry(name)
    root = models_dir(directory)
    local = local_files(name, directory)
    looked = ""
    if local is not None:
        program, manifest_path = local
        if program.is_file() and manifest_path.is_file():
            return Resolved(program, _read_manifest(manifest_path, name), "local", entry)
        looked = f"missing {' and '.join(str(p) for p in local if not p.is_file())}. "
    if entry.hub is None:
        where = looked or (f"no models directory (pass --models-dir DIR or models_dir=, or set {MODELS_ENV}) "
                           f"and ")
        raise ArtifactNotFoundError(
            f"artifact {name!r} not found: {where}it is not published on the Hugging Face Hub yet. "
            f"Build it with: {export_command(name, str(root) if root else 'MODELS_DIR')}")
    program, manifest_path = _from_hub(entry)
    verify_sha256(manifest_path, entry.hub.manifest_sha256)
    manifest = _read_manifest(manifest_path, name)
    if manifest.sha256 != entry.hub.sha256:
        raise ChecksumMismatchError(f"{manifest_path} pins {manifest.sha256} for {name}.pt2, the registry pins "
                                    f"{entry.hub.sha256}; the download does not match the registry")
    return Resolved(program, manifest, "hub", entry)


def _read_manifest(path: Path, name: str) -> Manifest:
    manifest = Manifest.read(path)
    if manifest.name != name:
        raise ManifestError(f"{path} describes artifact {manifest.name!r}, not {name!r}")
    return manifest


@dataclass(frozen=True)
class LoadedArtifact:
    """A verified, loaded artifact: its manifest, where it came from, and the callable program on ``device``."""

    manifest: Manifest
    path: Path
    device: str
    program: Any
    origin: str = "local"
    entry: ArtifactEntry | None = None


_LOADED: dict[tuple[str, str, str], LoadedArtifact] = {}
_LOCK = threading.Lock()


def load(name: str, *, directory: str | Path | None = None, device: str = "cpu",
         require_pinned: bool = False) -> LoadedArtifact:
    """Resolve, verify (sha256) and load an artifact onto ``device``; cached per process.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"cnn14-16k"``.
    directory : path, optional
        Models directory; defaults to ``$AUDIOFIDELITY_MODELS``, then the Hub pin.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    require_pinned : bool
        Refuse an artifact whose sha256 is not the registry's Hub pin (a local build, say).
    """
    found = resolve(name, directory)
    if require_pinned and (found.entry.hub is None or found.manifest.sha256 != found.entry.hub.sha256):
        pinned = found.entry.hub.sha256 if found.entry.hub else "nothing (not published)"
        raise ChecksumMismatchError(
            f"--require-pinned: {found.program} has sha256 {found.manifest.sha256}, the registry pins {pinned} "
            f"for {name}")
    # keyed on the path as found (not symlink-resolved): data files referenced by the manifest live beside it
    key = (str(found.program.absolute()), found.manifest.sha256, device)
    with _LOCK:
        if key not in _LOADED:
            verify_sha256(found.program, found.manifest.sha256)
            _LOADED[key] = LoadedArtifact(found.manifest, found.program, device,
                                          _load_program(found.program, device), found.origin, found.entry)
        return _LOADED[key]


def load_postprocess(artifact: LoadedArtifact) -> dict[str, Any]:
    """The manifest's ``postprocess`` section with its data file verified (sha256) and loaded.

    Raises
    ------
    ManifestError
        If the artifact was exported without post-processing data.
    ArtifactNotFoundError, ChecksumMismatchError
        If the referenced file is missing or altered.
    """
    section = artifact.manifest.raw.get("postprocess")
    if section is None:
        raise ManifestError(f"artifact {artifact.manifest.name!r} carries no post-processing data; re-export it "
                            f"with it (for vggish: export.py vggish --pca vggish_pca_params-970ea276.pth ...)")
    path = artifact.path.parent / section["file"]
    if not path.is_file():
        raise ArtifactNotFoundError(f"{path} (post-processing data of {artifact.manifest.name}) is missing")
    verify_sha256(path, section["sha256"])
    import numpy as np

    with np.load(path) as data:
        return {"kind": section["kind"], **{k: data[k] for k in data.files}}


def _load_program(path: Path, device: str) -> Any:
    import torch

    exported = torch.export.load(str(path))
    if device != "cpu":
        from torch.export.passes import move_to_device_pass

        exported = move_to_device_pass(exported, device)
    return exported.module()
