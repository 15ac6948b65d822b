"""Artifact store: find an exported model, prove its bytes, load it once per process.

An artifact is ``<name>.pt2`` (a ``torch.export`` program) plus ``<name>.json`` (its manifest: sha256,
frontend parameters, input/output spec, provenance). Resolution order: a models directory
(``models_dir=`` / ``--models-dir`` / ``$AUDIOFIDELITY_MODELS``, else ``models`` in the cache directory, where
``audiofidelity models build`` writes), then the Hugging Face cache or Hub at the
registry's pinned revision (``hf_hub_download``; honours ``HF_HUB_OFFLINE``, ``HF_HOME``, ``HF_ENDPOINT``),
then an error saying how to build the artifact. The ``.pt2`` is hashed on every load, in a thread
beside ``torch.export.load`` so the check costs no wall time; a mismatch is never used. Every manifest
field that shapes a number is also stored inside the ``.pt2`` (``extra/audiofidelity.json``, covered by
its sha256), and a manifest that disagrees with that copy is refused, naming the field.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArtifactNotFoundError, ChecksumMismatchError, DeviceError, ManifestError, literal
from .heap import keep_freed_heap
from .registry import ArtifactEntry, HubPin, build_command, build_instructions, export_command, registry_entry

MANIFEST_SCHEMA_VERSION = 2
EMBEDDED_MANIFEST = "audiofidelity.json"
"""Extra file of the ``.pt2`` archive holding the manifest less its ``artifact`` section (see ``bound_fields``)."""
MODELS_ENV = "AUDIOFIDELITY_MODELS"
CACHE_ENV = "AUDIOFIDELITY_CACHE"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of an artifact, as its manifest declares it.

    ``shape``: with the batch axis first; named axes (``"frames"``) are dynamic. ``per_item``: the shape of one
    item (the batch axis dropped), the one place it is worked out.
    """

    name: str
    shape: tuple
    dtype: str = "float32"
    roles: tuple[str, ...] = ()
    minimum: dict = field(default_factory=dict)
    memory: dict | None = None
    channels: int = 1
    items_per_clip: int | str = 1

    @classmethod
    def from_manifest(cls, spec: dict[str, Any]) -> "TensorSpec":
        return cls(spec["name"], tuple(spec["shape"]), spec.get("dtype", "float32"), tuple(spec.get("roles", ())),
                   dict(spec.get("min", {})), spec.get("memory"), int(spec.get("channels", 1)),
                   spec.get("items_per_clip", 1))

    @property
    def per_item(self) -> tuple:
        return self.shape[1:]

    @property
    def frame_rows(self) -> bool:
        """Whether an item gives several rows along a dynamic axis (frames), not one."""
        return len(self.shape) > 1 and isinstance(self.shape[1], str)

    def per_item_of(self, layer: int | None) -> tuple:
        """``per_item`` of one layer (a hidden-states output's first per-item axis taken), or of the whole."""
        return self.per_item[1:] if layer is not None else self.per_item


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
    def input(self) -> TensorSpec:
        """The program's (one) input."""
        return TensorSpec.from_manifest(self.inputs[0])

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec.from_manifest(o) for o in self.outputs)

    def output(self, name: str) -> TensorSpec:
        """The output called ``name`` (``ManifestError`` naming the ones there are)."""
        for spec in self.output_specs:
            if spec.name == name:
                return spec
        raise ManifestError(f"artifact {literal(repr(self.name))} has no output {literal(repr(name))}; it has "
                            f"{literal(', '.join(self.output_names))}")

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
            raise ManifestError(f"cannot read artifact manifest {{path}}: {literal(exc)}", path=path) from exc
        version = raw.get("schema_version")
        if version != MANIFEST_SCHEMA_VERSION:
            raise ManifestError(f"{{path}}: manifest schema_version {literal(repr(version))}, this version reads "
                                f"{MANIFEST_SCHEMA_VERSION}; re-export the artifact or upgrade audiofidelity",
                                path=path)
        try:
            manifest = cls(name=raw["name"], sha256=raw["artifact"]["sha256"], frontend=raw["frontend"],
                           inputs=raw["inputs"], outputs=raw["outputs"], raw=raw)
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"{{path}}: manifest lacks required field {literal(exc)}", path=path) from exc
        unroled = [o.get("name") for o in manifest.outputs if not o.get("roles")]
        if unroled:
            raise ManifestError(f"{{path}}: outputs {literal(unroled)} declare no roles (an export from before roles "
                                f"existed); build the artifact again (audiofidelity models build)", path=path)
        return manifest


def data_files(raw: dict[str, Any]) -> list[str]:
    """The files a manifest names beside its program (post-processing data, a tokenizer's files), which travel with
    it: published and downloaded together."""
    return [name for f in _data_entries(raw) if isinstance(name := f.get("file"), str)]


def _data_entries(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest sections naming a file beside the program, each with its ``file`` and ``sha256``."""
    named = [raw["postprocess"]] if isinstance(raw.get("postprocess"), dict) else []
    files = raw.get("frontend", {}).get("files") if isinstance(raw.get("frontend"), dict) else None
    return named + ([f for f in files.values() if isinstance(f, dict)] if isinstance(files, dict) else [])


def bound_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """The manifest fields stored inside the ``.pt2``: all but ``artifact`` (the program's own name, sha256
    and size, which cannot be inside it)."""
    return {k: v for k, v in raw.items() if k != "artifact"}


def embedded_manifest(program: Path) -> dict[str, Any] | None:
    """The manifest copy inside a ``.pt2`` archive (``<archive>/extra/audiofidelity.json``), or None."""
    import zipfile

    try:
        with zipfile.ZipFile(program) as archive:
            member = next((n for n in archive.namelist() if n.endswith(f"/extra/{EMBEDDED_MANIFEST}")), None)
            return json.loads(archive.read(member)) if member else None
    except (OSError, zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError):
        return None


def first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    """Dotted path of the first field where ``a`` and ``b`` differ (``frontend.fmax``), or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in a or key not in b:
                return where
            found = first_difference(a[key], b[key], where)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{prefix}[{i}]")
            if found:
                return found
        return None
    return None if (a == b and type(a) is type(b)) else prefix or "(whole manifest)"


def check_bound(manifest: "Manifest", program: Path, manifest_path: Path) -> None:
    """Refuse a manifest that disagrees with the copy inside its ``.pt2`` (a field edited after export).

    The copy is read from the archive's directory without loading the program; the program's sha256,
    checked at load, proves the copy itself.
    """
    embedded = embedded_manifest(program)
    if embedded is None:
        raise ManifestError(f"{{path}} carries no embedded manifest (extra/{EMBEDDED_MANIFEST}): it was exported "
                            f"by an older version or is not an audiofidelity artifact; re-export it with "
                            f"{export_command(manifest.name, force=True)}", path=program)
    field_path = first_difference(bound_fields(manifest.raw), embedded)
    if field_path is not None:
        raise ManifestError(f"{{path}}: field '{literal(field_path)}' differs from the copy sealed inside "
                            f"{literal(program.name)} (the manifest was edited after export); restore it or re-export "
                            f"the artifact", path=manifest_path)


def plain_file_name(value: Any, folder: Path, what: str) -> Path:
    """``folder / value`` when ``value`` is a bare file name; a manifest never points out of its folder."""
    if not isinstance(value, str) or not value or value in (".", "..") or Path(value).name != value \
            or "\\" in value:
        raise ManifestError(f"manifest field {what} is {value!r}: only a file name in the models folder is "
                            f"allowed (no paths); restore the manifest or re-export the artifact")
    return folder / value


def cache_root() -> Path:
    """audiofidelity's one cache directory: ``$AUDIOFIDELITY_CACHE``, else ``$XDG_CACHE_HOME/audiofidelity``, else
    the platform's user cache folder: ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows, ``~/.cache``
    elsewhere. Never inside the user's audio folders."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "audiofidelity"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "audiofidelity"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "audiofidelity"
    return Path.home() / ".cache" / "audiofidelity"


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ``ChecksumMismatchError`` unless ``path`` hashes to ``expected`` (hashed every time: no memo
    that a content change with a restored timestamp, or bit-rot, could keep)."""
    _check_digest(path, file_sha256(path), expected)


def _check_digest(path: Path, actual: str, expected: str) -> None:
    if actual != expected:
        raise ChecksumMismatchError(
            "{path}: sha256 is {actual}, but {expected} is pinned for it. The file is corrupt or was "
            "replaced; delete it and export or download the artifact again", path=path, actual=actual,
            expected=expected)


def models_dir(explicit: str | Path | None = None) -> Path:
    """The models directory in force: ``explicit``, else ``$AUDIOFIDELITY_MODELS``, else ``models`` in the cache
    directory (``cache_root``), where ``audiofidelity models build`` and ``eval``'s first run put artifacts."""
    chosen = explicit if explicit is not None else os.environ.get(MODELS_ENV)
    return Path(chosen).expanduser() if chosen else cache_root() / "models"


@dataclass(frozen=True)
class Resolved:
    """Where an artifact was found: its files, manifest, and origin (``local`` or ``hub``)."""

    program: Path
    manifest: Manifest
    origin: str
    entry: ArtifactEntry


PLACEHOLDER = "\0"


def _named(directory: str | Path | None) -> str | None:
    """What a build command names as its models folder: a placeholder for the ``{models}`` field (the service shows
    it by its option name, never its path), or None for the default folder."""
    return None if directory is None and not os.environ.get(MODELS_ENV) else PLACEHOLDER


def _as_field(text: str) -> str:
    """``text`` for an error template whose ``models`` field stands where ``_named``'s placeholder is."""
    return literal(text).replace(PLACEHOLDER, "{models}")


def local_files(name: str, directory: str | Path | None = None) -> tuple[Path, Path]:
    """``(<name>.pt2, <name>.json)`` in the models directory in force."""
    root = models_dir(directory)
    return root / f"{name}.pt2", root / f"{name}.json"


def _hub_files(entry: ArtifactEntry, pin: HubPin, files: list[str]) -> list[Path]:
    """``files`` of ``entry``'s Hub repository at ``pin``'s revision (one snapshot folder), downloaded or cached."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub import errors as hub_errors

    failures = (hub_errors.LocalEntryNotFoundError, hub_errors.EntryNotFoundError, hub_errors.RepositoryNotFoundError,
                hub_errors.RevisionNotFoundError, hub_errors.HfHubHTTPError, OSError, ValueError)
    try:
        return [Path(hf_hub_download(pin.repo_id, file, revision=pin.revision, library_name="audiofidelity"))
                for file in files]
    except failures as exc:
        raise ArtifactNotFoundError(
            f"artifact {entry.name!r} could not be fetched from {pin.repo_id} at revision {pin.revision} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Build it from the original "
            f"instead: {build_command([entry.name])}") from exc


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
    program, manifest_path = local_files(name, directory)
    if program.is_file() and manifest_path.is_file():
        return Resolved(program, _read_manifest(manifest_path, name, program), "local", entry)
    if entry.hub is None:
        files = " and ".join(p.name for p in (program, manifest_path) if not p.is_file())
        raise ArtifactNotFoundError(
            f"artifact {literal(name)} not found: {literal(files)} missing in {{models}}; it is not published on "
            f"the Hugging Face Hub yet. Build it with: {_as_field(build_command([name], _named(directory)))}",
            models=root)
    program, manifest_path = _hub_files(entry, entry.hub, [f"{name}.pt2", f"{name}.json"])
    verify_sha256(manifest_path, entry.hub.manifest_sha256)
    manifest = _read_manifest(manifest_path, name, program)
    _hub_files(entry, entry.hub, data_files(manifest.raw))  # beside the program in the snapshot; sha256 in the manifest
    if manifest.sha256 != entry.hub.sha256:
        raise ChecksumMismatchError("{path} pins {actual} for {name}.pt2, the registry pins {expected}; the "
                                    "download does not match the registry", path=manifest_path,
                                    actual=manifest.sha256, name=name, expected=entry.hub.sha256)
    return Resolved(program, manifest, "hub", entry)


def verify_local(name: str, directory: str | Path) -> Resolved:
    """Prove that the models folder ``directory`` holds artifact ``name`` whole: its manifest belongs to its program
    (``_read_manifest``), and the program and every file the manifest names beside it hash to what is pinned there.
    Everything is hashed (``models build`` decides from this whether to build again).

    Raises
    ------
    ArtifactNotFoundError, ManifestError, ChecksumMismatchError
    """
    folder = Path(directory)
    program, manifest_path = local_files(name, folder)
    if not (program.is_file() and manifest_path.is_file()):
        raise ArtifactNotFoundError(f"{{models}} holds no whole {literal(name)}", models=folder)
    manifest = _read_manifest(manifest_path, name, program)
    verify_sha256(program, manifest.sha256)
    for entry in _data_entries(manifest.raw):
        verify_sha256(plain_file_name(entry.get("file"), folder, "data file"), str(entry.get("sha256")))
    return Resolved(program, manifest, "local", registry_entry(name))


def _read_manifest(path: Path, name: str, program: Path) -> Manifest:
    """Read ``path`` and prove it belongs to ``program``: its name, its file field, its sealed copy."""
    manifest = Manifest.read(path)
    if manifest.name != name:
        raise ManifestError("{path} describes artifact {actual!r}, not {name!r}", path=path, actual=manifest.name,
                            name=name)
    if plain_file_name(manifest.raw["artifact"].get("file"), path.parent, "artifact.file").name != program.name:
        raise ManifestError("{path}: field 'artifact.file' is {actual!r}, not {expected!r}; restore the manifest or "
                            "re-export the artifact", path=path, actual=manifest.raw["artifact"].get("file"),
                            expected=program.name)
    check_bound(manifest, program, path)
    return manifest


class LoadedArtifact:
    """A resolved artifact: its manifest, where it came from, and its program on ``device``, which is loaded
    (its bytes hashed meanwhile) on first use, once per process and layout, so a run that finds every feature in
    the cache never reads the ``.pt2``."""

    def __init__(self, manifest: Manifest, path: Path, device: str, origin: str = "local",
                 entry: ArtifactEntry | None = None) -> None:
        self.manifest, self.path, self.device, self.origin, self.entry = manifest, path, device, origin, entry
        self._programs: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def program(self) -> Any:
        """The callable exported program, loaded and verified against the manifest's sha256 on first access."""
        return self.program_for("fp32")

    def program_for(self, precision: str) -> Any:
        """The program as passes at ``precision`` run it, loaded and verified on first access.

        bf16 passes run a copy whose 4-D weights (convolution kernels) are channels-last: with bf16, oneDNN's
        convolutions (AMX) then run without reordering every layer's input and output, CNN14 and VGGish 2.3x
        faster here with the same output bits (``benchmarks/RESULTS.md`` (s)). fp32 passes keep the layout the
        original computes in (channels-last moves fp32 results in their last bits, and is no faster for CNN14).
        """
        layout = weight_layout(precision)
        with self._lock:
            if layout not in self._programs:
                program = _load_verified(self.path, self.manifest.sha256, self.device)
                if layout == "channels_last":
                    import torch

                    program = program.to(memory_format=torch.channels_last)
                self._programs[layout] = program
            return self._programs[layout]

    @property
    def loaded(self) -> bool:
        return bool(self._programs)


def weight_layout(precision: str) -> str:
    """The layout of a program's 4-D weights in passes at ``precision``: ``channels_last`` for bf16, else
    ``exported`` (``LoadedArtifact.program_for``)."""
    return "channels_last" if precision == "bf16" else "exported"


_LOADED: dict[tuple[str, str, str], LoadedArtifact] = {}
_LOCK = threading.Lock()


def load(name: str, *, directory: str | Path | None = None, device: str = "cpu",
         require_pinned: bool = False, lazy: bool = False) -> LoadedArtifact:
    """Resolve an artifact and load it onto ``device`` (verified by sha256); cached per process.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"cnn14-16k"``.
    directory : path, optional
        Models directory; defaults to ``models_dir()``'s (``$AUDIOFIDELITY_MODELS``, else the cache's), then the
        Hub pin.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    require_pinned : bool
        Refuse an artifact whose sha256 is not the registry's Hub pin (a local build, say).
    lazy : bool
        Leave the program unloaded until ``.program`` is first used (the manifest is read and checked now).
    """
    return _artifact(resolve(name, directory), device=device, require_pinned=require_pinned, lazy=lazy)


def _artifact(found: Resolved, *, device: str, require_pinned: bool, lazy: bool) -> LoadedArtifact:
    """The per-process artifact of a resolved ``.pt2`` (see ``load``)."""
    name = found.manifest.name
    if require_pinned and (found.entry.hub is None or found.manifest.sha256 != found.entry.hub.sha256):
        pinned = found.entry.hub.sha256 if found.entry.hub else "nothing (not published)"
        raise ChecksumMismatchError(
            "--require-pinned: {path} has sha256 {actual}, the registry pins {expected} for {name}",
            path=found.program, actual=found.manifest.sha256, expected=pinned, name=name)
    # keyed on the path as found (not symlink-resolved): data files referenced by the manifest live beside it
    key = (str(found.program.absolute()), found.manifest.sha256, device)
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = LoadedArtifact(found.manifest, found.program, device, found.origin, found.entry)
        artifact = _LOADED[key]
    if not lazy:
        artifact.program  # noqa: B018 - load and verify now
    return artifact


def load_all(names: list[str], *, directory: str | Path | None = None, device: str = "cpu",
             require_pinned: bool = False, lazy: bool = False) -> list[LoadedArtifact]:
    """``load`` each of ``names``; when any cannot be found, one error names every missing one and how to
    build each (not one error per run)."""
    found: dict[str, Resolved] = {}
    missing: dict[str, str] = {}
    for name in dict.fromkeys(names):
        try:
            found[name] = resolve(name, directory)
        except ArtifactNotFoundError as exc:
            missing[name] = str(exc)
    if missing:
        root = models_dir(directory)
        published = [n for n in missing if registry_entry(n).hub is not None]
        hub = "; ".join(missing[n] for n in published)
        raise ArtifactNotFoundError(
            f"{len(missing)} model artifact(s) missing in {{models}}: {', '.join(missing)}. "
            + (f"Hub: {literal(hub)}. " if hub else "They are not published on the Hugging Face Hub yet. ")
            + _as_field(build_instructions(list(missing), _named(directory))),
            models=root, names=list(missing))
    return [_artifact(found[name], device=device, require_pinned=require_pinned, lazy=lazy) for name in names]


def check_device(device: str) -> None:
    """Refuse a device this torch cannot run on, before any model loads (``cpu``, ``cuda``, ``cuda:N``).

    Raises
    ------
    DeviceError
        Naming the device, what this torch sees and what to pass instead.
    """
    if device == "cpu":
        return
    if device != "cuda" and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise DeviceError(f"device {device!r} is not one of cpu, cuda, cuda:N, auto")
    import torch

    if not torch.cuda.is_available():
        raise DeviceError(f"device {device!r}: this torch ({torch.__version__}) sees no CUDA device (a CPU-only "
                          f"build, or no driver); use --device cpu (or auto), or install a CUDA build of torch")
    index = int(device[5:]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise DeviceError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                          f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")


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
                            f"with it: {export_command(artifact.manifest.name, force=True)}")
    path = plain_file_name(section.get("file"), artifact.path.parent, "postprocess.file")
    if not path.is_file():
        raise ArtifactNotFoundError(f"{{path}} (post-processing data of {literal(artifact.manifest.name)}) is missing",
                                    path=path)
    verify_sha256(path, section["sha256"])
    import numpy as np

    with np.load(path) as data:
        return {"kind": section["kind"], **{k: data[k] for k in data.files}}


def _load_verified(path: Path, sha256: str, device: str) -> Any:
    """Load ``path`` while a thread hashes it (hashlib releases the GIL), so the check adds no wall time;
    the program is returned only when the bytes match ``sha256``."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as hasher:
        digest = hasher.submit(file_sha256, path)
        try:
            program = _load_program(path, device)
        except Exception as exc:  # a damaged archive: say whether its bytes are the pinned ones
            _check_digest(path, digest.result(), sha256)
            raise ManifestError(f"{{path}}: its sha256 is the pinned one, but torch cannot load it ({literal(exc)}); "
                                f"this torch ({torch_version()}) may be older than the one that exported it",
                                path=path) from exc
        _check_digest(path, digest.result(), sha256)
    return program


def torch_version() -> str:
    """torch's version without importing it (a fully cached run never needs torch itself)."""
    if "torch" in sys.modules:
        return sys.modules["torch"].__version__
    from importlib.metadata import version

    return version("torch")


ONEDNN_CACHE_CAPACITY = "128"
"""Entries of oneDNN's cache of compiled CPU primitives (one per layer and input shape; its default is 1024). Clips of
many lengths otherwise grow the resident memory with every new length, by about 1 GB for CNN14 before it levels off
(``benchmarks/RESULTS.md`` (r)); 128 keeps a few shapes' worth at no measured cost, and a primitive computes the same
bits whether cached or not. Set before the first pass, unless ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` is already set."""


def _load_program(path: Path, device: str) -> Any:
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE_CAPACITY)  # read at oneDNN's first use
    keep_freed_heap()  # this process runs model passes: their large blocks are reused, not faulted in anew
    import torch

    exported = torch.export.load(str(path))
    if device != "cpu":
        from torch.export.passes import move_to_device_pass

        exported = move_to_device_pass(exported, device)
    return exported.module()
