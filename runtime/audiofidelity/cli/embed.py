"""``audiofidelity embed FOLDER --model NAME``: a folder's embeddings to one ``.npz`` or to one ``.npy`` per file.

``--out-dir DIR`` writes ``DIR/embeddings/<model>/<file stem>.npy`` (float32), the layout fadtk caches its
embeddings in, so a fadtk user can point at it; two inputs with one stem (``a.wav``, ``a.flac``; ``a.wav.ogg``
and ``a.wav``) would share a file there, so such a folder is refused, naming them, before anything is read.
``--out FILE.npz`` writes ``<file name>`` arrays plus ``files`` and ``info`` (JSON); an input file named
``files`` or ``info`` would overwrite those, so it is refused likewise. Every file is written atomically under
exactly the name given. Files are read, conditioned and cached as ``eval`` does (``Embedder``); skipped files
are listed with their reason on stdout's JSON summary and stderr; ``files`` there counts the arrays written.

``embed --captions FILE --model clap-...`` embeds captions with the model's text tower instead (arrays by id).
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..audio import CHANNEL_MODES, Conditioning
from ..captions import read_captions
from ..embedder import Embedder
from ..evaluate import list_folder
from ..outputs import atomic_write, check_writable, npz, output_error
from ..registry import names
from ..resample import RESAMPLERS
from ..validation import LIMIT, MIN_DURATION
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_runtime_options

log = logging.getLogger(__name__)
NPZ_KEYS = ("files", "info")
"""``--out``'s own keys beside one array per input file name."""


def name_clash(folder: Path, names: list[str], *, out_dir: bool) -> str | None:
    """Why these inputs cannot be written without one overwriting another, or None: for ``--out-dir`` two files
    with one stem (one ``<stem>.npy``), for ``--out`` a file named like one of ``NPZ_KEYS``."""
    if not out_dir:
        taken = [name for name in names if name in NPZ_KEYS]
        return (f"input file(s) {', '.join(taken)} would overwrite --out's own keys ({', '.join(NPZ_KEYS)}): rename "
                f"them or use --out-dir") if taken else None
    by_stem: dict[str, list[str]] = defaultdict(list)
    for name in names:
        if (folder / name).is_file():
            by_stem[Path(name).stem].append(name)
    shared = [f"{' and '.join(group)} -> {stem}.npy" for stem, group in by_stem.items() if len(group) > 1]
    return (f"--out-dir names each file <file stem>.npy (fadtk's layout), so these inputs would share one: "
            f"{'; '.join(shared)}; rename or move them, or use --out FILE.npz") if shared else None


def add_parser(commands) -> None:
    em = commands.add_parser("embed", help="write a folder's embeddings (one .npz, or one .npy per file)",
                             description=__doc__.split("\n")[0])
    em.add_argument("folder", type=Path, nargs="?", default=None,
                    help="folder of audio files (not searched recursively); not with --captions")
    em.add_argument("--captions", type=Path, default=None, metavar="FILE",
                    help="embed these captions (a JSON object or CSV of id -> caption, as eval's --captions) with "
                         "the --model's text tower instead of audio: one array per id")
    em.add_argument("--model", required=True, choices=names(), help="the artifact that embeds")
    em.add_argument("--output", default=None,
                    help="embedding, frames, logits, layers or layer:N (what the model offers; default: embedding "
                         "where the model has one, else frames)")
    em.add_argument("--pooling", choices=("none", "mean"), default="none", help="mean: one row per file")
    em.add_argument("--sr", type=int, default=None, help="classifiers: the evaluation rate (as eval --sr)")
    target = em.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="one .npz holding every file's array")
    target.add_argument("--out-dir", type=Path,
                        help="DIR/embeddings/<model>/<file stem>.npy (fadtk's layout; inputs sharing a stem: refused)")
    em.add_argument("--limit", type=LIMIT, default=None, help="only the first N files of the sorted folder")
    em.add_argument("--channel", choices=CHANNEL_MODES, default="first")
    em.add_argument("--resampler", choices=RESAMPLERS, default="torchaudio")
    em.add_argument("--min-duration", type=MIN_DURATION, default=Conditioning.min_duration)
    em.add_argument("--quiet", action="store_true", help="no progress bar or warnings")
    add_runtime_options(em)


def _write(args: argparse.Namespace, arrays: dict[str, np.ndarray], info: dict, skipped: list[dict],
           folder: Path | None) -> int:
    """Write ``arrays`` to ``--out`` or into ``folder`` (``--out-dir``); print the JSON summary; the exit status."""
    count = 0
    if args.out:
        everything = {"files": np.array(list(arrays)), "info": np.array(json.dumps(info)),
                      **{name: array.astype(np.float32) for name, array in arrays.items()}}
        atomic_write(args.out, npz(everything), option="--out")
        written, count = str(args.out), len(arrays)
    else:
        assert folder is not None  # the parser requires --out or --out-dir
        for name, array in arrays.items():
            atomic_write(folder / f"{Path(name).stem}.npy", functools.partial(np.save, arr=array.astype(np.float32)),
                         option="--out-dir")
            count += 1
        written = str(folder)
    print(json.dumps({"written": written, "files": count, "skipped": skipped, "info": info}, indent=2))
    return EXIT_OK if arrays else EXIT_FAILED


def _usage(message: str) -> int:
    print(f"audiofidelity: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _out_folder(args: argparse.Namespace) -> Path | None:
    folder = args.out_dir / "embeddings" / args.model if args.out_dir else None
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise output_error("--out-dir", folder, exc, existed=False) from exc
    return folder


def run_captions(args: argparse.Namespace) -> int:
    """``embed --captions FILE``: each caption's text embedding, keyed by its id (an id that is not a plain file
    name cannot name a ``--out-dir`` file: refused, named)."""
    captions = read_captions(args.captions)
    ids = list(captions.by_id)
    if args.out_dir is not None:
        unsafe = [i for i in ids if Path(i).name != i or i.startswith(".") or "\\" in i]
        if unsafe:
            return _usage(f"--out-dir names each file <id without extension>.npy; these ids are not plain file "
                          f"names: {', '.join(map(repr, unsafe[:10]))}; use --out FILE.npz")
        by_stem: dict[str, list[str]] = defaultdict(list)
        for i in ids:
            by_stem[Path(i).stem].append(i)
        shared = [" and ".join(group) for group in by_stem.values() if len(group) > 1]
        if shared:
            return _usage(f"--out-dir names each file <id without extension>.npy, so these ids would share one: "
                          f"{'; '.join(shared)}; use --out FILE.npz")
    elif [i for i in ids if i in NPZ_KEYS]:
        return _usage(f"ids {', '.join(i for i in ids if i in NPZ_KEYS)} would overwrite --out's own keys "
                      f"({', '.join(NPZ_KEYS)}); use --out-dir")
    try:
        embedder = Embedder(args.model, output="text", device=args.device, models_dir=args.models_dir)
    except ValueError as exc:
        return _usage(str(exc))
    folder = _out_folder(args)
    for problem in captions.problems:
        log.warning("%s: %s (%s)", args.captions.name, problem["reason"], problem["action"])
    rows = embedder.embed_text(list(captions.by_id.values()), progress=not args.quiet)
    return _write(args, dict(zip(ids, rows)), asdict(embedder.info), captions.problems, folder)


def run(args: argparse.Namespace) -> int:
    """Run ``embed``; returns the exit status."""
    check_writable(args.out, "--out")  # before anything is read, as eval's outputs
    if (args.folder is None) == (args.captions is None):
        return _usage("give a FOLDER of audio or --captions FILE (one of the two)")
    if args.captions is not None:
        return run_captions(args)
    clash = name_clash(args.folder, list_folder(args.folder, limit=args.limit), out_dir=args.out is None)
    if clash is not None:
        print(f"audiofidelity: error: {clash}; nothing was computed", file=sys.stderr)
        return EXIT_USAGE
    folder = _out_folder(args)
    conditioning = Conditioning(channel=args.channel, resampler=args.resampler, min_duration=args.min_duration)
    try:
        embedder = Embedder(args.model, output=args.output, pooling=args.pooling, sample_rate=args.sr,
                            device=args.device, batch_size=args.batch_size, models_dir=args.models_dir,
                            conditioning=conditioning, cache=not args.no_cache)
    except ValueError as exc:  # an output or rate the model does not offer
        return _usage(str(exc))
    result = embedder.embed_folder(args.folder, limit=args.limit, progress=not args.quiet)
    for problem in result.problems:
        log.warning("%s: %s (skipped)", problem["file"], problem["reason"])
    return _write(args, result.arrays, asdict(embedder.info), result.problems, folder)
