"""The artifact catalogue as ``audiofidelity models list`` and the service's ``/models`` show it: where each
artifact resolves now (without downloading) and which metrics it serves."""
from __future__ import annotations

from pathlib import Path

from . import artifacts, registry
from .models import scorers


def where(name: str, directory: Path | None) -> tuple[str, Path | None]:
    """Where an artifact resolves now without downloading: local, cached, downloadable or unavailable."""
    local = artifacts.local_files(name, directory)
    if all(p.is_file() for p in local):
        return "local", local[0]
    entry = registry.registry_entry(name)
    if entry.hub is None:
        return "unavailable (not published; build it locally)", None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(entry.hub.repo_id, f"{name}.pt2", revision=entry.hub.revision)
    if isinstance(cached, str):
        return "cached", Path(cached)
    return "downloadable", None


def serves(entry: registry.ArtifactEntry) -> str:
    """The metrics an artifact serves, in words: the backbone's at its evaluation rates, and FAD by name."""
    parts = []
    if entry.role == "classifier":
        parts.append(f"--backbone {entry.backbone} @ {','.join(str(r // 1000) + 'k' for r in entry.rates)}")
    if entry.role == "benchmark":
        parts.append(f"the {entry.backbone.upper()} benchmark's metrics")
    fad = [m.name for m in registry.fad_models().values() if m.artifact == entry.name]
    if len(fad) > 1:
        parts.append(f"--fad-model {fad[0]}..{fad[-1].rsplit('-', 1)[-1]}")
    elif fad:
        parts.append(f"--fad-model {fad[0]}")
    if entry.text_tower:
        parts.append("--metrics clap_score (audio)")
    if entry.role == "text":
        parts.append("--metrics clap_score (captions); Embedder output='text'")
    parts += [f"--metrics {s.name} (no reference needed)" for s in scorers().values() if s.artifact == entry.name]
    return "; ".join(parts)
