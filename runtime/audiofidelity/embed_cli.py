"""``audiofidelity embed FOLDER --model NAME``: a folder's embeddings to one ``.npz`` or to one ``.npy`` per file.

``--out-dir DIR`` writes ``DIR/embeddings/<model>/<file stem>.npy`` (float32), the layout fadtk caches its
embeddings in, so a fadtk user can point at it; ``--out FILE.npz`` writes ``<file name>`` arrays plus ``files``
and ``info`` (JSON). Files are read, conditioned and cached as ``eval`` does (``Embedder``); skipped files are
listed with their reason on stdout's JSON summary and stderr.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from .audio import CHANNEL_MODES, Conditioning
from .registry import names
from .resample import RESAMPLERS
from .validation import LIMIT, MIN_DURATION

log = logging.getLogger(__name__)
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parser(commands, add_runtime_options: Callable[[argparse.ArgumentParser], None]) -> None:
    em = commands.add_parser("embed", help="write a folder's embeddings (one .npz, or one .npy per file)",
                             description=__doc__.split("\n")[0])
    em.add_argument("folder", type=Path, help="folder of audio files (not searched recursively)")
    em.add_argument("--model", required=True, choices=names(), help="the artifact that embeds")
    em.add_argument("--output", default=None,
                    help="embedding, frames, logits, layers or layer:N (what the model offers; default: embedding "
                         "where the model has one, else frames)")
    em.add_argument("--pooling", choices=("none", "mean"), default="none", help="mean: one row per file")
    em.add_argument("--sr", type=int, default=None, help="classifiers: the evaluation rate (as eval --sr)")
    target = em.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="one .npz holding every file's array")
    target.add_argument("--out-dir", type=Path, help="DIR/embeddings/<model>/<file stem>.npy (fadtk's layout)")
    em.add_argument("--limit", type=LIMIT, default=None, help="only the first N files of the sorted folder")
    em.add_argument("--channel", choices=CHANNEL_MODES, default="first")
    em.add_argument("--resampler", choices=RESAMPLERS, default="torchaudio")
    em.add_argument("--min-duration", type=MIN_DURATION, default=Conditioning.min_duration)
    em.add_argument("--quiet", action="store_true", help="no progress bar or warnings")
    add_runtime_options(em)


def run(args: argparse.Namespace) -> int:
    """Run ``embed``; returns the exit status."""
    from .cli import check_writable
    from .embedder import Embedder

    check_writable(args.out, "--out")  # before any audio is decoded, as eval's outputs
    folder = args.out_dir / "embeddings" / args.model if args.out_dir else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    conditioning = Conditioning(channel=args.channel, resampler=args.resampler, min_duration=args.min_duration)
    try:
        embedder = Embedder(args.model, output=args.output, pooling=args.pooling, sample_rate=args.sr,
                            device=args.device, batch_size=args.batch_size, models_dir=args.models_dir,
                            conditioning=conditioning, cache=not args.no_cache)
    except ValueError as exc:  # an output or rate the model does not offer
        print(f"audiofidelity: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    result = embedder.embed_folder(args.folder, limit=args.limit, progress=not args.quiet)
    for problem in result.problems:
        log.warning("%s: %s (skipped)", problem["file"], problem["reason"])
    if args.out:
        arrays = {name: array.astype(np.float32) for name, array in result.arrays.items()}
        np.savez(args.out, files=np.array(list(result.arrays)), info=np.array(json.dumps(asdict(embedder.info))),
                 **arrays)
        written = str(args.out)
    else:
        stems = Counter(Path(name).stem for name in result.arrays)
        for name, array in result.arrays.items():
            target = f"{Path(name).stem}.npy" if stems[Path(name).stem] == 1 else f"{name}.npy"
            if target != f"{Path(name).stem}.npy":  # a.wav and a.flac: neither overwrites the other
                log.warning("%s shares its stem with another file: written as %s", name, target)
            np.save(folder / target, array.astype(np.float32))
        written = str(folder)
    print(json.dumps({"written": written, "files": len(result.arrays), "skipped": result.problems,
                      "info": asdict(embedder.info)}, indent=2))
    return EXIT_OK if result.arrays else EXIT_FAILED

