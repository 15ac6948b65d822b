"""The artifact registry in force: every model family's artifacts (``models/``) with their Hub pins, looked up by name.

A Hub pin names the exact bytes: repository, commit (revision) and the sha256 of the ``.pt2`` and of
its manifest. Entries not yet published have ``hub=None`` and say so; nothing pretends.
``AUDIOFIDELITY_REGISTRY=path.json`` overrides pins and upstream locations (mirrors, tests)::

    {"artifacts": {"cnn14-16k": {"hub": {"repo_id": "org/name", "revision": "<40 hex>",
                                         "sha256": "...", "manifest_sha256": "...", "size": 123},
                                 "source_url": "...", "source_sha256": "...", "source_revision": "..."}}}
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from . import models
from .errors import ManifestError
from .models import ArtifactEntry, FadModel, HubPin

REGISTRY_ENV = "AUDIOFIDELITY_REGISTRY"


def fad_models() -> dict[str, FadModel]:
    """Every ``--fad-model`` name -> what it reads."""
    return {m.name: m for m in models.all_fad_models()}


def fad_model(name: str) -> FadModel:
    try:
        return fad_models()[name]
    except KeyError:
        raise ValueError(f"unknown FAD model {name!r}; choose from {', '.join(fad_models())}") from None


def _overrides() -> dict[str, dict]:
    path = os.environ.get(REGISTRY_ENV)
    if not path:
        return {}
    try:
        return json.loads(Path(path).read_text())["artifacts"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ManifestError(f"cannot read registry override {path} ({REGISTRY_ENV}): {exc}; expected "
                            f'{{"artifacts": {{"<name>": {{"hub": {{...}}}}}}}}') from exc


def entries() -> tuple[ArtifactEntry, ...]:
    """The registry in force: built-in entries with ``$AUDIOFIDELITY_REGISTRY`` pins applied."""
    overrides = _overrides()
    unknown = sorted(set(overrides) - {e.name for e in models.builtin_entries()})
    if unknown:
        raise ManifestError(f"registry override names unknown artifact(s) {unknown}; known: "
                            f"{', '.join(e.name for e in models.builtin_entries())}")
    out = []
    for entry in models.builtin_entries():
        fields = dict(overrides.get(entry.name, {}))
        if fields.get("hub"):
            fields["hub"] = HubPin(**fields["hub"])
        allowed = {"hub", "source_url", "source_sha256", "source_revision"}
        if set(fields) - allowed:
            raise ManifestError(f"registry override for {entry.name} sets {sorted(set(fields) - allowed)}; "
                                f"only {sorted(allowed)} can be overridden")
        out.append(dataclasses.replace(entry, **fields))
    return tuple(out)


def registry_entry(name: str) -> ArtifactEntry:
    for entry in entries():
        if entry.name == name:
            return entry
    raise KeyError(f"unknown artifact {name!r}; known: {', '.join(e.name for e in entries())}")


def names() -> list[str]:
    return [e.name for e in models.builtin_entries()]


def extra_files(entry: ArtifactEntry) -> dict[str, str]:
    """The further upstream files ``entry`` is built from (its ``extra_sources``, ``--OPTION FILE`` each): option
    keyword -> the file's upstream name."""
    return {option.split()[0][2:]: option.split()[-1] for option in entry.extra_sources}


def backbones() -> dict[str, tuple[int, ...]]:
    """Backbone name -> the evaluation sample rates it has artifacts for."""
    out: dict[str, tuple[int, ...]] = {}
    for entry in models.builtin_entries():
        if entry.role == "classifier":
            out[entry.backbone] = out.get(entry.backbone, ()) + entry.rates
    return out


def artifact_for(backbone: str, sample_rate: int) -> ArtifactEntry:
    """The registry entry serving ``backbone`` at ``sample_rate``."""
    for entry in entries():
        if entry.role == "classifier" and entry.backbone == backbone and sample_rate in entry.rates:
            return entry
    choices = "; ".join(f"{b}: {', '.join(map(str, r))} Hz" for b, r in backbones().items())
    raise ValueError(f"no artifact for backbone {backbone!r} at {sample_rate} Hz; available: {choices}")


def export_command(name: str, out: str | Path | None = None, *, force: bool = False) -> str:
    """The command that builds artifact ``name`` from its original checkpoint at hand, into the models folder
    ``out`` (None: the default one); ``force``: over a stale copy (which ``models build`` would otherwise keep)."""
    entry = registry_entry(name)
    extra = "".join(f" {option}" for option in entry.extra_sources)
    where = f" --models-dir {out}" if out is not None else ""
    return f"audiofidelity models build {name} --source {entry.source_file}{extra}{where}" + " --force" * force


def build_command(names: list[str], out: str | Path | None = None) -> str:
    """The command that downloads the originals of ``names`` and builds them into ``out`` (None: the default
    models folder)."""
    return f"audiofidelity models build {' '.join(names)}" + (f" --models-dir {out}" if out is not None else "")


def build_instructions(missing: list[str], out: str | Path | None = None) -> str:
    """How to build every artifact in ``missing`` into ``out`` (None: the default models folder): the one command
    that downloads and builds them all, and per artifact where its original comes from, under which licence, and
    the command for a copy at hand; for one error message that names them all."""
    lines = [f"Build them once with: {build_command(missing, out)}",
             "(it downloads each original checkpoint from its upstream location, exports and seals it; eval does "
             "this itself unless --offline or HF_HUB_OFFLINE is set)"]
    for name in missing:
        entry = registry_entry(name)
        files = " + ".join([entry.source_file, *extra_files(entry).values()])
        lines += [f"  {name}: {files} from {entry.origin} ({entry.license})",
                  f"    with the file at hand: {export_command(name, out)}"]
    return "\n".join(lines)


__all__ = ["ArtifactEntry", "FadModel", "HubPin", "artifact_for", "backbones", "build_command", "build_instructions",
           "entries", "export_command", "extra_files", "fad_model", "fad_models", "names", "registry_entry"]
