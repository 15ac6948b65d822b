"""Artifact registry and store: which exported model serves which backbone, and how it is loaded.

An artifact is ``<name>.pt2`` (a ``torch.export`` program) plus ``<name>.json`` (its manifest:
sha256, frontend parameters, input/output spec, provenance). The store finds them in a models
directory (``models_dir=`` / ``--models-dir`` / ``AUDIOFIDELITY_MODELS``), checks the ``.pt2``'s
sha256 against the manifest before loading, and keeps loaded programs for the process.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ArtifactNotFoundError, ChecksumMismatchError, ManifestError

MANIFEST_SCHEMA_VERSION = 1
MODELS_ENV = "AUDIOFIDELITY_MODELS"


@dataclass(frozen=True)
class ArtifactEntry:
    """One exportable model: what it serves and where its original checkpoint comes from.

    ``role``: ``"classifier"`` artifacts are backbones (embedding + logits for FD/KL/IS/KID);
    ``"fad"`` is VGGish, which serves FAD whatever the backbone. ``rates``: the evaluation sample
    rates it serves (the model's own input rate is in its manifest).
    """

    name: str
    role: str
    backbone: str
    rates: tuple[int, ...]
    architecture: str
    source_file: str
    source_url: str
    license: str


VGGISH_RELEASE = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/"
REGISTRY: tuple[ArtifactEntry, ...] = (
    ArtifactEntry("cnn14-16k", "classifier", "cnn14", (16000,), "cnn14", "Cnn14_16k_mAP=0.438.pth",
                  "https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth", "CC-BY-4.0"),
    ArtifactEntry("cnn14-32k", "classifier", "cnn14", (32000,), "cnn14", "Cnn14_mAP=0.431.pth",
                  "https://zenodo.org/record/3576403/files/Cnn14_mAP%3D0.431.pth", "CC-BY-4.0"),
    ArtifactEntry("mert-v1-95m", "classifier", "mert", (16000, 32000), "mert", "MERT-v1-95M",
                  "https://huggingface.co/m-a-p/MERT-v1-95M", "CC-BY-NC-4.0"),
    ArtifactEntry("vggish", "fad", "vggish", (16000,), "vggish", "vggish-10086976.pth",
                  VGGISH_RELEASE + "vggish-10086976.pth", "Apache-2.0"),
)
"""Every artifact this version knows, the single source for CLI choices and export commands."""


def registry_entry(name: str) -> ArtifactEntry:
    for entry in REGISTRY:
        if entry.name == name:
            return entry
    raise KeyError(f"unknown artifact {name!r}; known: {', '.join(e.name for e in REGISTRY)}")


def backbones() -> dict[str, tuple[int, ...]]:
    """Backbone name -> the sample rates it has artifacts for."""
    out: dict[str, tuple[int, ...]] = {}
    for entry in REGISTRY:
        if entry.role != "classifier":
            continue
        out[entry.backbone] = out.get(entry.backbone, ()) + entry.rates
    return out


def artifact_for(backbone: str, sample_rate: int) -> ArtifactEntry:
    """The registry entry serving ``backbone`` at ``sample_rate``."""
    for entry in REGISTRY:
        if entry.role == "classifier" and entry.backbone == backbone and sample_rate in entry.rates:
            return entry
    choices = "; ".join(f"{b}: {', '.join(map(str, r))} Hz" for b, r in backbones().items())
    raise ValueError(f"no artifact for backbone {backbone!r} at {sample_rate} Hz; available: {choices}")


def export_command(name: str, out: str = "MODELS_DIR") -> str:
    """The command that builds artifact ``name`` from its original checkpoint."""
    entry = registry_entry(name)
    return f"python export_scripts/export.py {name} --source {entry.source_file} --out {out}"


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

    def output_for(self, role: str) -> str | None:
        """The output that plays ``role`` (``embedding``, ``logits``, ``layers``, ``fad``), if any."""
        return next((o["name"] for o in self.outputs if role in o.get("roles", ())), None)

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
            return cls(name=raw["name"], sha256=raw["artifact"]["sha256"], frontend=raw["frontend"],
                       inputs=raw["inputs"], outputs=raw["outputs"], raw=raw)
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"{path}: manifest lacks required field {exc}") from exc


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def models_dir(explicit: str | Path | None = None) -> Path | None:
    """The models directory in force: ``explicit``, else ``$AUDIOFIDELITY_MODELS``, else None."""
    chosen = explicit if explicit is not None else os.environ.get(MODELS_ENV)
    return Path(chosen).expanduser() if chosen else None


def resolve(name: str, directory: str | Path | None = None) -> tuple[Path, Manifest]:
    """Find ``<name>.pt2`` and ``<name>.json``; return the program path and the parsed manifest.

    Raises
    ------
    ArtifactNotFoundError
        Naming the files looked for and the export command that builds them.
    """
    root = models_dir(directory)
    if root is None:
        raise ArtifactNotFoundError(
            f"no models directory for artifact {name!r}: pass --models-dir DIR (or models_dir=) or set "
            f"{MODELS_ENV}. Build the artifact with: {export_command(name)}")
    program, manifest_path = root / f"{name}.pt2", root / f"{name}.json"
    missing = [str(p) for p in (program, manifest_path) if not p.is_file()]
    if missing:
        raise ArtifactNotFoundError(
            f"artifact {name!r} not found: missing {' and '.join(missing)}. "
            f"Build it with: {export_command(name, str(root))}")
    manifest = Manifest.read(manifest_path)
    if manifest.name != name:
        raise ManifestError(f"{manifest_path} describes artifact {manifest.name!r}, not {name!r}")
    return program, manifest


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ``ChecksumMismatchError`` unless ``path`` hashes to ``expected``."""
    actual = file_sha256(path)
    if actual != expected:
        raise ChecksumMismatchError(
            f"{path}: sha256 is {actual}, but its manifest pins {expected}. The file is corrupt or was "
            f"replaced; delete it and export or download the artifact again")


@dataclass(frozen=True)
class LoadedArtifact:
    """A verified, loaded artifact: its manifest and the callable program on ``device``."""

    manifest: Manifest
    path: Path
    device: str
    program: Any


_LOADED: dict[tuple[str, str, str], LoadedArtifact] = {}
_LOCK = threading.Lock()


def load(name: str, *, directory: str | Path | None = None, device: str = "cpu") -> LoadedArtifact:
    """Resolve, verify (sha256) and load an artifact onto ``device``; cached per process.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"cnn14-16k"``.
    directory : path, optional
        Models directory; defaults to ``$AUDIOFIDELITY_MODELS``.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    """
    program_path, manifest = resolve(name, directory)
    # keyed on the path as found (not symlink-resolved): data files referenced by the manifest live beside it
    key = (str(program_path.absolute()), manifest.sha256, device)
    with _LOCK:
        if key not in _LOADED:
            verify_sha256(program_path, manifest.sha256)
            _LOADED[key] = LoadedArtifact(manifest, program_path, device, _load_program(program_path, device))
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
