"""``audiofidelity models``: list, download, verify and locate the artifacts of the registry."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import artifacts, registry
from .errors import AudioFidelityError


def where(name: str, directory: Path | None) -> tuple[str, Path | None]:
    """Where an artifact resolves now without downloading: local, cached, downloadable or unavailable."""
    local = artifacts.local_files(name, directory)
    if local is not None and all(p.is_file() for p in local):
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
    return "; ".join(parts)


def add_parser(commands) -> None:
    models = commands.add_parser("models", help="list, download, verify or locate the model artifacts")
    verbs = models.add_subparsers(dest="verb", required=True)
    for verb, text in (("list", "each artifact and where it resolves now"),
                       ("download", "fetch pinned artifacts into the Hugging Face cache"),
                       ("verify", "re-hash every artifact that resolves locally or from the cache"),
                       ("path", "print the path an artifact resolves to")):
        p = verbs.add_parser(verb, help=text)
        if verb in ("download", "path"):
            p.add_argument("name", choices=registry.names() + (["all"] if verb == "download" else []))
        p.add_argument("--models-dir", type=Path, default=None)


def run(args: argparse.Namespace) -> int:
    """Run one ``models`` verb; returns the exit status."""
    if args.verb == "list":
        from .reporting import align

        rows = [("name", "rate", "ch", "dim", "rows", "licence", "serves", "where")]
        for name in registry.names():
            entry = registry.registry_entry(name)
            rows.append((name, str(entry.model_rate), str(entry.channels), str(entry.dimension), entry.frames,
                         entry.license, serves(entry) or "-", where(name, args.models_dir)[0]))
        print("\n".join(align(rows)))
        return 0
    if args.verb == "path":
        print(artifacts.resolve(args.name, args.models_dir).program)
        return 0
    if args.verb == "download":
        chosen = registry.names() if args.name == "all" else [args.name]
        failed = 0
        for name in chosen:
            if registry.registry_entry(name).hub is None:
                print(f"{name}: not published on the Hub; build it with: {registry.export_command(name)}")
                failed += args.name != "all"
                continue
            found = artifacts.resolve(name)  # the Hub path (no models directory here)
            artifacts.verify_sha256(found.program, found.manifest.sha256)
            print(f"{name}: {found.program}")
        return 1 if failed else 0
    bad = 0
    for name in registry.names():
        status, _ = where(name, args.models_dir)
        if status not in ("local", "cached"):
            continue
        found = artifacts.resolve(name, args.models_dir)
        try:
            artifacts.verify_sha256(found.program, found.manifest.sha256)
            print(f"{name}: ok ({status}, sha256 {found.manifest.sha256[:12]}…)")
        except AudioFidelityError as exc:
            bad += 1
            print(f"{name}: FAILED: {exc}")
    return 1 if bad else 0
