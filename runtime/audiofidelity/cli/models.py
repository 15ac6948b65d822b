"""``audiofidelity models``: build, list, download, verify and locate the artifacts of the registry."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import artifacts, registry
from ..catalog import serves, where
from ..errors import AudioFidelityError
from ..reporting import align
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, builder, say_on_stderr


def _extra_files_of_all() -> dict[str, str]:
    """Every further upstream file an artifact may be built from: ``models build``'s ``--OPTION FILE`` options."""
    return {key: file for entry in registry.entries() for key, file in registry.extra_files(entry).items()}


def add_parser(commands) -> None:
    models = commands.add_parser("models", help="build, list, download, verify or locate the model artifacts")
    verbs = models.add_subparsers(dest="verb", required=True)
    build = verbs.add_parser("build", help="download original checkpoints from their upstream locations, export "
                             "and seal them into the models folder (default: $AUDIOFIDELITY_MODELS, else the "
                             "cache directory's models folder)")
    build.add_argument("name", nargs="+", choices=registry.names() + ["all"], metavar="NAME",
                       help="artifacts to build (or all); models list names them")
    build.add_argument("--models-dir", type=Path, default=None)
    build.add_argument("--source", type=Path, default=None,
                       help="the original checkpoint (file or folder) at hand instead of a download (one NAME only)")
    for key, file in sorted(_extra_files_of_all().items()):
        build.add_argument(f"--{key}", type=Path, default=None, help=f"the upstream {file} at hand (one NAME only)")
    build.add_argument("--revision", default=None, help="a Hugging Face source's commit (MERT; default: main, "
                       "recorded in the manifest)")
    build.add_argument("--force", action="store_true", help="build again what the models folder already holds")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    for verb, text in (("list", "each artifact and where it resolves now"),
                       ("download", "fetch pinned artifacts into the Hugging Face cache"),
                       ("verify", "re-hash every artifact that resolves locally or from the cache"),
                       ("path", "print the path an artifact resolves to")):
        p = verbs.add_parser(verb, help=text)
        if verb in ("download", "path"):
            p.add_argument("name", choices=registry.names() + (["all"] if verb == "download" else []))
        p.add_argument("--models-dir", type=Path, default=None)


def run_build(args: argparse.Namespace) -> int:
    """``models build``: each artifact downloaded, exported and sealed, or kept when already whole (a line on
    stdout for each), its steps on stderr; 1 when any failed (each named with why), 2 on misuse, else 0."""
    chosen = list(dict.fromkeys(registry.names() if "all" in args.name else args.name))
    at_hand = {key: getattr(args, key) for key in ("source", *_extra_files_of_all())
               if getattr(args, key, None) is not None}
    if at_hand and len(chosen) != 1:
        print(f"audiofidelity: error: {', '.join('--' + k for k in sorted(at_hand))} name(s) a file for one "
              f"artifact; give one NAME", file=sys.stderr)
        return EXIT_USAGE
    takes = {"source", *registry.extra_files(registry.registry_entry(chosen[0]))}
    if set(at_hand) - takes:
        print(f"audiofidelity: error: {', '.join('--' + k for k in sorted(set(at_hand) - takes))} does not apply "
              f"to {chosen[0]}", file=sys.stderr)
        return EXIT_USAGE
    build = builder().build
    folder = artifacts.models_dir(args.models_dir)
    failed = []
    for name in chosen:
        try:
            made = build(name, folder, source=at_hand.get("source"), revision=args.revision, force=args.force,
                         extras={k: v for k, v in at_hand.items() if k != "source"}, progress=not args.quiet,
                         say=say_on_stderr(args.quiet))
        except AudioFidelityError as exc:
            failed.append(name)
            print(f"audiofidelity: {name}: failed: {exc}", file=sys.stderr)
            continue
        print(f"{name}: written to {folder}" if made else
              f"{name}: already in {folder} (every file's sha256 checked; --force builds it again)")
    if failed:
        print(f"audiofidelity: error: {len(failed)} of {len(chosen)} not built: {', '.join(failed)}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Run one ``models`` verb; returns the exit status."""
    if args.verb == "build":
        return run_build(args)
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
                print(f"{name}: not published on the Hub; build it with: {registry.build_command([name])}")
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
