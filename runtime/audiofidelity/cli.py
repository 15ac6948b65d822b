"""The ``audiofidelity`` command line: a thin layer over ``audiofidelity.evaluate``.

Results (JSON) go to stdout, progress bars and per-file problems to stderr. Exit status: 0 on
success, 2 on misuse (bad arguments, missing or empty folder), 1 when the run cannot complete
(artifact missing or corrupt, bad files under ``--strict``).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import __version__, models_cli
from .registry import artifact_for, backbones
from .audio import CHANNEL_MODES, Conditioning
from .errors import AudioFidelityError, InputFolderError
from .evaluate import METRICS, evaluate, resolve_metrics
from .metrics.signal import HIFIGAN_OFFSET
from .resample import RESAMPLERS
from .runner import DEFAULT_BATCH_SIZE

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _metric_list(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                                         f"choose from {', '.join(METRICS)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="audiofidelity", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"audiofidelity {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    metric_help = "\n".join(f"  {name:<11} {spec.description}" for name, spec in METRICS.items())
    ev = commands.add_parser("eval", help="compare a folder of generated audio with a folder of reference audio",
                             description="Compute audioldm_eval's metrics between two folders of audio.",
                             epilog=f"metrics:\n{metric_help}", formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("generated", type=Path, help="folder of generated audio")
    ev.add_argument("reference", type=Path, help="folder of reference (ground-truth) audio")
    ev.add_argument("--backbone", choices=sorted(backbones()), default="cnn14")
    ev.add_argument("--sr", type=int, default=16000, help="evaluation sample rate (cnn14: 16000 or 32000)")
    ev.add_argument("--metrics", type=_metric_list, default=None,
                    help=f"comma-separated subset of {','.join(METRICS)} (default: all the backbone supports)")
    ev.add_argument("--limit", type=int, default=None, help="use only the first N files of each sorted folder")
    ev.add_argument("--json", type=Path, default=None, dest="json_out", help="also write the JSON report here")
    ev.add_argument("--save-features", type=Path, default=None, help="write per-file features to this .npz")
    ev.add_argument("--models-dir", type=Path, default=None,
                    help="directory with <artifact>.pt2 + .json (default: $AUDIOFIDELITY_MODELS)")
    ev.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ev.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    ev.add_argument("--channel", choices=CHANNEL_MODES, default="first",
                    help="first channel (audioldm_eval) or the mean of all channels")
    ev.add_argument("--resampler", choices=RESAMPLERS, default="torchaudio",
                    help="torchaudio-equal sinc (audioldm_eval) or resampy kaiser_best")
    ev.add_argument("--min-duration", type=float, default=Conditioning.min_duration,
                    help="skip clips shorter than this many seconds (default %(default)s; 0 accepts any length)")
    ev.add_argument("--per-file", action="store_true", help="add each pair's psnr, ssim and lsd to the report")
    ev.add_argument("--lsd-offset", type=int, default=HIFIGAN_OFFSET,
                    help="samples dropped from each generated clip before LSD (default %(default)s, HiFi-GAN's delay)")
    ev.add_argument("--fad-pca", action="store_true",
                    help="apply AudioSet's PCA + 8-bit quantisation to VGGish embeddings before FAD (not audioldm_eval's)")
    ev.add_argument("--mert-chunk", type=float, default=None, metavar="SECONDS",
                    help="mert: average layer means over windows of this length (long audio; not audioldm_eval's)")
    ev.add_argument("--require-pinned", action="store_true",
                    help="refuse artifacts whose sha256 is not pinned in the registry (no local builds)")
    ev.add_argument("--strict", action="store_true", help="fail on any bad file instead of skipping it")
    ev.add_argument("--quiet", action="store_true", help="no progress bars or warnings; JSON only")
    ev.add_argument("-v", "--verbose", action="store_true", help="log what the run does")
    models_cli.add_parser(commands)
    return parser


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    try:
        artifact_for(args.backbone, args.sr)
        resolve_metrics(args.backbone, args.metrics)
    except ValueError as exc:
        parser.error(str(exc))
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be >= 1, got {args.limit}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.mert_chunk is not None and (args.backbone != "mert" or args.mert_chunk <= 0):
        parser.error("--mert-chunk needs --backbone mert and a positive number of seconds")
    if args.lsd_offset < 0:
        parser.error(f"--lsd-offset must be >= 0, got {args.lsd_offset}")
    if args.min_duration < 0:
        parser.error(f"--min-duration must be >= 0, got {args.min_duration}")


def run_eval(args: argparse.Namespace) -> int:
    conditioning = Conditioning(channel=args.channel, resampler=args.resampler, min_duration=args.min_duration)
    result = evaluate(args.generated, args.reference, backbone=args.backbone, sample_rate=args.sr,
                      metrics=args.metrics, limit=args.limit, models_dir=args.models_dir, device=args.device,
                      batch_size=args.batch_size, conditioning=conditioning, strict=args.strict,
                      per_file=args.per_file, lsd_offset=args.lsd_offset, fad_pca=args.fad_pca,
                      mert_chunk=args.mert_chunk, require_pinned=args.require_pinned, progress=not args.quiet)
    text = json.dumps(result.report, indent=2)
    if args.json_out is not None:
        args.json_out.write_text(text + "\n")
    if args.save_features is not None:
        result.save_features(args.save_features)
    files = result.report["files"]
    logging.getLogger("audiofidelity").info(
        "%s mode; used %d of %d generated and %d of %d reference files (%d pairs)", result.report["mode"],
        files["generated"]["used"], files["generated"]["listed"], files["reference"]["used"],
        files["reference"]["listed"], files["pairs"])
    if result.report["problems"]:
        logging.getLogger("audiofidelity").warning(
            "skipped %d bad file(s); they are listed under 'problems' in the report", len(result.report["problems"]))
    print(text)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``audiofidelity`` and ``python -m audiofidelity``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.ERROR if getattr(args, "quiet", False) else logging.INFO if getattr(args, "verbose", False) \
        else logging.WARNING
    logging.basicConfig(level=level, format="audiofidelity: %(message)s", stream=sys.stderr, force=True)
    if args.command == "eval":
        _validate(parser, args)
    try:
        return run_eval(args) if args.command == "eval" else models_cli.run(args)
    except InputFolderError as exc:
        print(f"audiofidelity: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AudioFidelityError as exc:
        print(f"audiofidelity: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # e.g. --json or --save-features into a missing folder
        print(f"audiofidelity: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


__all__ = ["main", "build_parser"]
