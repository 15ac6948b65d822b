#!/usr/bin/env python3
"""Publish an exported artifact to the Hugging Face Hub and print the registry pin for it.

    python export_scripts/publish.py cnn14-16k --repo-id ORG/NAME --dir models/ [--dry-run OUT]

Uploads ``<name>.pt2``, ``<name>.json`` (plus data the manifest references, e.g. ``vggish.pca.npz``) and
the model card ``model_cards/<name>.md`` rendered from the manifest (sha256s, torch version, frontend)
as ``README.md``, in one commit. Prints the JSON pin (repo, commit, sha256s, size) to put into
``audiofidelity/registry.py`` or an ``AUDIOFIDELITY_REGISTRY`` file. ``--dry-run OUT`` writes the exact
folder it would upload to OUT and prints the pin with ``revision`` null (the commit does not exist yet).
Uploading needs a Hugging Face token with write access (``huggingface-cli login``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from audiofidelity.artifacts import data_files, file_sha256, verify_sha256
from audiofidelity.registry import names

CARDS = Path(__file__).resolve().parents[1] / "model_cards"


def render_card(name: str, manifest: dict) -> str:
    """The model card with the manifest's facts filled in (never typed by hand)."""
    source = manifest["source"]["sha256"]
    fields = {
        "sha256": manifest["artifact"]["sha256"],
        "source_sha256": source if isinstance(source, str) else ", ".join(f"{k} {v}" for k, v in source.items()),
        "torch": manifest["exported_with"]["torch"],
        "frontend": ", ".join(f"{k}={v}" for k, v in manifest["frontend"].items()),
    }
    text = (CARDS / f"{name}.md").read_text()
    for key, value in fields.items():
        text = text.replace("{{" + key + "}}", str(value))
    return text


def stage(name: str, models: Path, out: Path) -> dict:
    """Write the upload folder to ``out`` (verified files, rendered card); return the pin without revision."""
    manifest_path, program = models / f"{name}.json", models / f"{name}.pt2"
    manifest = json.loads(manifest_path.read_text())
    verify_sha256(program, manifest["artifact"]["sha256"])
    out.mkdir(parents=True, exist_ok=True)
    extra = data_files(manifest)
    for file in [program.name, manifest_path.name, *extra]:
        target = out / file
        if target.exists():
            target.unlink()
        try:
            os.link(models / file, target)
        except OSError:
            shutil.copyfile(models / file, target)
    (out / "README.md").write_text(render_card(name, manifest))
    return {"repo_id": None, "revision": None, "sha256": manifest["artifact"]["sha256"],
            "manifest_sha256": file_sha256(manifest_path), "size": manifest["artifact"]["size"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=names())
    parser.add_argument("--repo-id", required=True, help="ORG/NAME on the Hugging Face Hub")
    parser.add_argument("--dir", type=Path, required=True, help="models directory holding the exported artifact")
    parser.add_argument("--dry-run", type=Path, default=None, metavar="OUT", help="write the upload folder here only")
    args = parser.parse_args(argv)
    if args.dry_run is not None:
        pin = stage(args.name, args.dir, args.dry_run)
    else:
        import tempfile

        from huggingface_hub import HfApi

        with tempfile.TemporaryDirectory() as tmp:
            pin = stage(args.name, args.dir, Path(tmp))
            api = HfApi()
            api.create_repo(args.repo_id, exist_ok=True)
            commit = api.upload_folder(repo_id=args.repo_id, folder_path=tmp,
                                       commit_message=f"audiofidelity artifact {args.name} ({pin['sha256'][:12]})")
            pin["revision"] = commit.oid
    pin["repo_id"] = args.repo_id
    print(json.dumps({"artifacts": {args.name: {"hub": pin}}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
