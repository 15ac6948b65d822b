"""``audiofidelity sc09 GEN --train TRAIN`` and ``audiofidelity sc09-stats TRAIN --out train.npz``: the SC09 benchmark.

``sc09`` prints (or writes with ``--json``) the report of ``sc09.evaluate_sc09``; ``TRAIN`` is the training folder
(``zero/`` ... ``nine/``) or a file from ``sc09-stats``, which classifies the training set once.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..artifacts import load
from ..outputs import check_writable, write_text
from ..sc09 import ARTIFACT, classify, evaluate_sc09, save_training, training_files
from .common import EXIT_OK


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models-dir", type=Path, default=None,
                   help="directory with sc09-resnext.pt2 + .json (default: $AUDIOFIDELITY_MODELS, else models/ in the "
                        "cache directory; then the Hub)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")


def add_parsers(commands) -> None:
    run = commands.add_parser("sc09", help="the SC09 benchmark's FID, IS, mIS, AM and NDB of generated digits",
                              description=__doc__.split("\n")[0])
    run.add_argument("generated", type=Path, help="folder of generated 1-s clips (.wav)")
    run.add_argument("--train", type=Path, required=True,
                     help="the SC09 training folder (zero/ ... nine/) or a file from 'audiofidelity sc09-stats'")
    run.add_argument("--threshold", action="store_true",
                     help="the benchmark's cut for likelihood-ordered samples: drop the first 40%% and the last 5%%")
    run.add_argument("--json", type=Path, default=None, dest="json_out", help="write the report here, not stdout")
    _add_model_options(run)
    stats = commands.add_parser("sc09-stats", help="classify the SC09 training set once, for 'sc09 --train FILE'")
    stats.add_argument("train", type=Path, help="the SC09 training folder (zero/ ... nine/)")
    stats.add_argument("--out", type=Path, required=True, help="file to write (.npz)")
    _add_model_options(stats)


def run_sc09(args: argparse.Namespace) -> int:
    check_writable(args.json_out, "--json")
    report = evaluate_sc09(args.generated, args.train, models_dir=args.models_dir, device=args.device,
                           threshold=args.threshold)
    text = json.dumps(report, indent=2)
    if args.json_out is not None:
        write_text(args.json_out, text + "\n", option="--json")
    else:
        print(text)
    for problem in report["problems"]:
        print(f"audiofidelity: {problem['side']}/{problem['file']}: {problem['reason']} (skipped)", file=sys.stderr)
    return EXIT_OK


def run_sc09_stats(args: argparse.Namespace) -> int:
    check_writable(args.out, "--out")
    artifact = load(ARTIFACT, directory=args.models_dir, device=args.device)
    train = classify(training_files(args.train), args.train, artifact)
    save_training(args.out, train, artifact, option="--out")
    for problem in train.problems:
        print(f"audiofidelity: train/{problem['file']}: {problem['reason']} (skipped)", file=sys.stderr)
    print(json.dumps({"out": str(args.out), "files": len(train.files), "skipped": len(train.problems)}))
    return EXIT_OK


RUNNERS = {"sc09": run_sc09, "sc09-stats": run_sc09_stats}
"""The SC09 benchmark's commands, by name."""
