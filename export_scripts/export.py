#!/usr/bin/env python3
"""Export an original checkpoint to a ``torch.export`` artifact: ``DIR/<MODEL>.pt2`` + ``DIR/<MODEL>.json``.

    python export_scripts/export.py cnn14-16k --source Cnn14_16k_mAP=0.438.pth --out models/
    python export_scripts/export.py cnn14-32k --source Cnn14_mAP=0.431.pth --out models/
    python export_scripts/export.py vggish --source vggish-10086976.pth \
        [--pca vggish_pca_params-970ea276.pth] --out models/
    python export_scripts/export.py mert-v1-95m --source MERT-v1-95M/ --out models/
    python export_scripts/export.py cnn14-8k --source Cnn14_8k_mAP=0.416.pth --out models/
    python export_scripts/export.py encodec-24k --source encodec_24khz-d7cc33bc.th --out models/
    python export_scripts/export.py encodec-48k --source encodec_48khz-7e698e3e.th --out models/
    python export_scripts/export.py clap-630k-audioset --source 630k-audioset-best.pt --out models/
    python export_scripts/export.py clap-music --source music_audioset_epoch_15_esc_90.14.pt --out models/
    python export_scripts/export.py clap-630k-audioset-text --source 630k-audioset-best.pt \
        --vocab vocab.json --merges merges.txt --out models/   # roberta-base's tokenizer files
    python export_scripts/export.py sc09-resnext --source resnext.pth --out models/
    python export_scripts/export.py cnn14-16k --download --out models/   # fetch the original first

One driver serves every model: the registry (``audiofidelity.registry``) names the
artifact and its architecture, and the architecture's module here (``cnn14.py``) builds the
clean ``nn.Module``, example inputs, dynamic shapes and frontend parameters. This script exports,
checks the exported program against eager PyTorch, writes the program atomically and then the
manifest (schema below), and prints the manifest path.

Manifest (schema_version 2): name, backbone, sample_rate (the model's input rate), artifact
{file, sha256, size}, source {file, sha256 (a file's, or per file of a source folder), url}, exported_with
{torch, python, audiofidelity}, frontend, inputs, outputs (name / shape / dtype / roles; inputs carry ``min``
per named axis, ``items_per_clip`` and ``memory``), license, citation, and optionally postprocess {file,
sha256} (VGGish's PCA, with ``--pca``); a text tower's ``frontend.files`` names the tokenizer files copied beside
it with their sha256 (``sample_rate`` is null). Every field but ``artifact`` is also sealed inside the ``.pt2``
(``extra/audiofidelity.json``), so the program's sha256 covers them and the runtime refuses an edited manifest.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

import audiofidelity
from audiofidelity.artifacts import (EMBEDDED_MANIFEST, MANIFEST_SCHEMA_VERSION, bound_fields, cache_root,
                                     file_sha256)
from audiofidelity import models
from audiofidelity.errors import AudioFidelityError
from audiofidelity.registry import extra_files, names, registry_entry

HERE = Path(__file__).resolve().parent
PACKAGE = "audiofidelity.exporters"
"""What this folder is installed as (pyproject's ``package-dir``), so a family's module imports by that name
whether this file runs as a script or from ``audiofidelity models build``."""


def builders() -> dict[str, str]:
    """Model family -> the module in this folder that builds its artifacts: every module declaring
    ``FAMILY = "<name>"`` at its top level (read with ``ast``, nothing imported), so a new family's export module
    is found with no table to edit."""
    import ast

    found = {}
    for path in sorted(HERE.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["FAMILY"] \
                    and isinstance(node.value, ast.Constant):
                found[node.value.value] = path.stem
    return found


def builder_for(name: str):
    """The export module that builds registry artifact ``name`` (its family's)."""
    family = models.family_of(name).name
    module = builders().get(family)
    if module is None:
        raise SystemExit(f"no export module in {HERE} declares FAMILY = {family!r} (needed for {name})")
    return importlib.import_module(f"{PACKAGE}.{module}")


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def source_sha256(source: Path) -> str | dict[str, str]:
    """sha256 of a checkpoint file, or of each file directly inside a checkpoint folder."""
    if source.is_dir():
        return {p.name: file_sha256(p) for p in sorted(source.iterdir()) if p.is_file()}
    return file_sha256(source)


def _check_against_eager(module: torch.nn.Module, program, example_inputs: tuple, name: str) -> None:
    with torch.inference_mode():
        want = module(*example_inputs)
        got = program.module()(*example_inputs)
    want = want if isinstance(want, (tuple, list)) else (want,)
    got = got if isinstance(got, (tuple, list)) else (got,)
    for w, g in zip(want, got):
        err = float((w - g).abs().max())
        if err > 1e-5 * float(w.abs().max()) + 1e-7:
            raise SystemExit(f"{name}: exported program differs from eager PyTorch by {err:.3g}; not writing it")


def extra_options(name: str) -> dict[str, str]:
    """The further upstream files artifact ``name`` is built from (its entry's ``extra_sources`` but VGGish's
    optional ``--pca``): keyword of ``build`` -> the file's upstream name."""
    return {key: file for key, file in extra_files(registry_entry(name)).items() if key != "pca"}


def export(name: str, source: Path, out: Path, *, pca: Path | None = None, source_revision: str | None = None,
           extras: dict[str, Path] | None = None) -> Path:
    """Export registry artifact ``name`` from checkpoint ``source`` into ``out``; return the manifest path.
    ``extras``: the further files ``extra_options(name)`` names, by keyword."""
    builder = builder_for(name)
    if pca is not None and not hasattr(builder, "write_pca"):
        raise SystemExit(f"--pca applies to vggish only, not {name}")
    extras = extras or {}
    wanted = extra_options(name)
    if set(extras) != set(wanted):
        raise SystemExit(f"{name} is built from {source.name} with " + (", ".join(
            f"--{key} {file}" for key, file in wanted.items()) or "no further file") + f"; given {sorted(extras)}")
    spec = builder.build(name, source, **extras)
    module = spec["module"].eval()
    torch._dynamo.reset()  # a second export in one process would reuse the first one's traces of scan steps
    # export_config: torch.fx.experimental settings (EnCodec: size-oblivious sizes, so one frame is not special)
    with torch.no_grad(), torch.fx.experimental._config.patch(**spec.get("export_config", {})):
        program = torch.export.export(module, spec["example_inputs"], dynamic_shapes=spec["dynamic_shapes"],
                                      **spec.get("export_kwargs", {}))
    _check_against_eager(module, program, spec["example_inputs"], name)
    postprocess = None
    if pca is not None:
        def postprocess(out: Path) -> dict:  # written first: its sha256 is part of what the program seals
            pca_path = out / f"{name}{builder.PCA_FILE_SUFFIX}"
            _atomic_write(pca_path, lambda tmp: builder.write_pca(pca, Path(tmp)))
            return {"kind": "vggish_pca", "file": pca_path.name, "sha256": file_sha256(pca_path),
                    "source": {"file": pca.name, "sha256": file_sha256(pca)}}
    return write_artifact(name, program, spec, out, source=source, source_revision=source_revision,
                          postprocess=postprocess)


def write_artifact(name: str, program, spec: dict, out: Path, *, source: Path, source_revision: str | None = None,
                   postprocess=None) -> Path:
    """Write an exported ``program`` as registry artifact ``name`` into ``out``: the manifest (from ``spec``:
    frontend, inputs, outputs, citation; the registry entry: backbone, licence, source), sealed inside the
    ``.pt2``, and the manifest file; return its path. ``postprocess(out) -> dict``: writes post-processing data
    and returns the manifest's ``postprocess`` section."""
    entry = registry_entry(name)
    out.mkdir(parents=True, exist_ok=True)
    frontend = dict(spec["frontend"])
    if spec.get("files"):  # data the frontend reads (a tokenizer's files): copied beside, their sha256 sealed
        frontend["files"] = {}
        for key, given in spec["files"].items():
            target = out / f"{name}.{key}{Path(given).suffix}"
            _atomic_write(target, lambda tmp, given=given: Path(tmp).write_bytes(Path(given).read_bytes()))
            frontend["files"][key] = {"file": target.name, "sha256": file_sha256(target),
                                      "source": {"file": Path(given).name, "sha256": file_sha256(Path(given))}}
    manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "name": name,
        "backbone": entry.backbone,
        "sample_rate": frontend.get("sample_rate"),  # None: a text tower
        "source": {"file": source.name, "sha256": source_sha256(source), "url": entry.source_url,
                   **({"revision": source_revision} if source_revision else {}),
                   # further files read at export only (PAM's GPT-2 tokenizer): what the constants came from
                   **({"read": {key: {"file": Path(path).name, "sha256": file_sha256(Path(path))}
                                for key, path in spec["read_files"].items()}} if spec.get("read_files") else {})},
        "exported_with": {"torch": torch.__version__, "python": platform.python_version(),
                          "audiofidelity": audiofidelity.__version__},
        "frontend": frontend,
        "inputs": spec["inputs"],
        "outputs": spec["outputs"],
        "license": entry.license,
        "citation": spec["citation"],
        # how an output maps to the units reported (audiobox-aesthetics' target_transform), by output name
        **({"output_transforms": spec["output_transforms"]} if spec.get("output_transforms") else {}),
    }
    if postprocess is not None:
        manifest["postprocess"] = postprocess(out)
    program_path = out / f"{name}.pt2"
    sealed = {EMBEDDED_MANIFEST: json.dumps(bound_fields(manifest), sort_keys=True)}
    _atomic_write(program_path, lambda tmp: torch.export.save(program, tmp, extra_files=sealed))
    manifest["artifact"] = {"file": program_path.name, "sha256": file_sha256(program_path),
                            "size": program_path.stat().st_size}
    manifest_path = out / f"{name}.json"
    _atomic_write(manifest_path, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2) + "\n"))
    return manifest_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=names())
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--source", type=Path, help="the original checkpoint file or folder")
    source.add_argument("--download", action="store_true",
                        help="fetch the original from its upstream location (registry source_url) first")
    parser.add_argument("--revision", default=None, help="with --download of a Hugging Face source: the commit")
    parser.add_argument("--cache", type=Path, default=None,
                        help="with --download: where originals are kept (default: the audiofidelity cache)")
    parser.add_argument("--out", type=Path, required=True, help="directory to write <model>.pt2 and <model>.json")
    parser.add_argument("--pca", type=Path, default=None,
                        help="vggish only: torchvggish's PCA file, carried for the optional PCA post-processing")
    for key, file in sorted({k: f for n in names() for k, f in extra_options(n).items()}.items()):
        parser.add_argument(f"--{key}", type=Path, default=None,
                            help=f"the upstream {file} the artifacts that need it are built with")
    args = parser.parse_args(argv)
    wanted = extra_options(args.model)
    given = {key for key in {k for n in names() for k in extra_options(n)} if getattr(args, key) is not None}
    if given - set(wanted):
        parser.error(f"{', '.join('--' + k for k in sorted(given - set(wanted)))} does not apply to {args.model}")
    if args.revision is not None and not args.download:
        parser.error("--revision applies to --download only")
    if args.download:
        from audiofidelity.exporters.download import fetch_extras, fetch_source

        entry = registry_entry(args.model)
        cache = args.cache or cache_root() / "upstream"
        try:
            args.source = fetch_source(entry, cache, args.revision)
            fetched = fetch_extras(entry, cache, given={k: getattr(args, k) for k in (*wanted, "pca")})
        except AudioFidelityError as exc:  # no network, a web page, a cut transfer, a digest that differs
            print(f"export.py: error: {exc}", file=sys.stderr)
            return 1
        for key, path in fetched.items():
            setattr(args, key, path)
    missing = [f"--{key} {file}" for key, file in wanted.items() if getattr(args, key) is None]
    if missing:
        parser.error(f"{args.model} needs {', '.join(missing)} (or --download)")
    for key in wanted:
        if not getattr(args, key).is_file():
            parser.error(f"--{key} {getattr(args, key)} does not exist")
    if not args.source.exists():
        parser.error(f"--source {args.source} does not exist (expected {registry_entry(args.model).source_file}, "
                     f"from {registry_entry(args.model).source_url})")
    if args.pca is not None and not args.pca.is_file():
        parser.error(f"--pca {args.pca} does not exist")
    revision = None
    if args.download:
        from audiofidelity.exporters.download import hf_commit

        revision = args.revision or registry_entry(args.model).source_revision or hf_commit(args.source)
    print(export(args.model, args.source, args.out, pca=args.pca, source_revision=revision,
                 extras={key: getattr(args, key) for key in wanted}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
