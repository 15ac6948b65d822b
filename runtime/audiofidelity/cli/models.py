"""``audiofidelity models``: list, download, verify and locate the artifacts of the registry."""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import artifacts, registry
from ..catalog import serves, where
from ..errors import AudioFidelityError
from ..reporting import align


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
        rows = [("name", "rate", "ch", "dim", "rows", "licence", "serves", "where")]
        for name in registry.names():
            entry = registry.registry_entry(name)
            audio = entry.model_rate > 0  # a text tower takes captions: no rate, no channels
            rows.append((name, str(entry.model_rate) if audio else "-", str(entry.channels) if audio else "-",
                         str(entry.dimension), entry.frames,
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
