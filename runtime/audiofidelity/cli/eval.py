"""``audiofidelity eval``, ``eval-logs``, ``stats`` and ``cache``: the commands over ``audiofidelity.evaluate``."""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

from .. import runner
from ..artifacts import models_dir
from ..audio import CHANNEL_MODES, Conditioning
from ..cache import FeatureCache
from ..errors import ArtifactNotFoundError, BuildError
from ..evaluate import (BACKBONE_METRICS, METRICS, OPT_IN_METRICS, Evaluator, check_reference_free, list_folder,
                        resolve_metrics)
from ..metrics.covariance import COVARIANCES
from ..metrics.kad import BANDWIDTH_SOURCES
from ..metrics.options import INF_DRAWS, MetricOptions
from ..metrics.signal import HIFIGAN_OFFSET
from ..models import DEFAULTS, ModelOptionError, check_model_options, model_options
from ..multidevice import DistributedEvaluator, distributed_rank
from ..outputs import check_writable, write_text
from ..probabilities import save_reference_probabilities
from ..registry import artifact_for, backbones, fad_model, fad_models
from ..reporting import append_csv, check_csv, format_table, write_per_file_csv
from ..resample import RESAMPLERS
from ..runner import PRECISIONS
from ..settings import EvaluationSettings, check_captions
from ..training_logs import DEFAULT_GLOB, evaluate_logs, find_generation_folders, format_steps
from ..validation import LIMIT, MIN_DURATION, arg_type, check_int, check_positive
from .common import EXIT_FAILED, EXIT_OK, add_runtime_options, resolve_device, say_on_stderr


def _metric_list(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                                         f"choose from {', '.join(METRICS)}")
    return names


def _add_model_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that computes features: backbone, models, conditioning, cache."""
    rates = sorted({rate for served in backbones().values() for rate in served})
    p.add_argument("--backbone", choices=sorted(backbones()), default=DEFAULTS.backbone)
    p.add_argument("--sr", type=int, default=DEFAULTS.sample_rate,
                   help=f"evaluation sample rate ({' or '.join(map(str, rates))})")
    add_runtime_options(p)
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32 (default, exact); bf16 (autocast) or tf32 (CUDA) trade accuracy for speed: opt-in only")
    p.add_argument("--channel", choices=CHANNEL_MODES, default="first",
                   help="first channel (audioldm_eval) or the mean of all channels")
    p.add_argument("--resampler", choices=RESAMPLERS, default="torchaudio",
                   help="torchaudio-equal sinc (audioldm_eval), resampy kaiser_best, soxr_hq (librosa.load's) or "
                        "julius (audiocraft's)")
    p.add_argument("--min-duration", type=MIN_DURATION, default=Conditioning.min_duration,
                   help="skip clips shorter than this many seconds (default %(default)s; 0 accepts any length)")
    p.add_argument("--fad-model", choices=list(fad_models()), default=DEFAULTS.fad_model, metavar="NAME",
                   help="the embedding FAD reads (default %(default)s, as audioldm_eval): " + ", ".join(fad_models())
                        + "; 'audiofidelity models list' shows each")
    for option in model_options().values():  # each model family's own settings, as it declares them
        if option.flag_only:
            p.add_argument(option.flag, action="store_true", help=option.help)
        else:
            p.add_argument(option.flag, type=_option_type(option), default=None, metavar=option.metavar,
                           help=option.help)
    p.add_argument("--require-pinned", action="store_true",
                   help="refuse artifacts whose sha256 is not pinned in the registry (no local builds)")
    p.add_argument("--offline", action="store_true",
                   help="never download: a missing model artifact is an error naming the command that builds it "
                        "(also when HF_HUB_OFFLINE is set); by default eval builds what it lacks on first use")
    p.add_argument("--batch-across-clips", action="store_true",
                   help="fill forward passes with several clips (faster on the CPU; the last bits of a clip's "
                        "features then depend on the clips run with it; not the default)")
    p.add_argument("--strict", action="store_true", help="fail on any bad file instead of skipping it")
    p.add_argument("--quiet", action="store_true", help="no progress bars or warnings")
    p.add_argument("-v", "--verbose", action="store_true", help="log what the run does")


def _bandwidth(text: str) -> str | float:
    if text in BANDWIDTH_SOURCES:
        return text
    try:
        return check_positive(float(text), "--kad-bandwidth")
    except ValueError:  # not a number, or NaN, inf, 0 or negative
        raise argparse.ArgumentTypeError(f"--kad-bandwidth takes {' or '.join(BANDWIDTH_SOURCES)} or a finite "
                                         f"positive number, not {text!r}") from None


def _bootstrap(text: str) -> int:
    """``--bootstrap N``: 0 (none) or at least 2 resamplings."""
    value = arg_type(check_int, "--bootstrap", int, minimum=0)(text)
    if value == 1:
        raise argparse.ArgumentTypeError(f"--bootstrap needs at least 2 resamplings (0: none), got {value}")
    return value


def _add_metric_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", type=_metric_list, default=None,
                   help=f"comma-separated subset of {','.join(METRICS)} (default: audioldm_eval's that the backbone "
                        f"supports; {', '.join(OPT_IN_METRICS)} only when named)")
    p.add_argument("--inf", action="store_true",
                   help="add each selected fad, fd and kad extrapolated to infinitely many samples (fad_inf, ...)")
    p.add_argument("--inf-draw", choices=INF_DRAWS, default="frames",
                   help="what the extrapolations draw with replacement: frames (rows, as fadtk) or whole clips")
    p.add_argument("--covariance", choices=COVARIANCES, default="mle",
                   help="FD/FAD covariance: mle (the originals' sample covariance, default), or the shrunk "
                        "ledoit-wolf or oas for sets with few rows per dimension")
    p.add_argument("--kad-bandwidth", type=_bandwidth, default="reference", metavar="reference|generated|VALUE",
                   help="KAD's RBF bandwidth: the median pairwise distance of the reference rows (default, the "
                        "paper's), of the generated rows (kadtk's code), or a number")
    p.add_argument("--captions", type=Path, default=None, metavar="FILE",
                   help="clap_score: the captions the files were generated from, a JSON object or a CSV of id -> "
                        "caption (ids: file names, with or without extension)")
    p.add_argument("--limit", type=LIMIT, default=None, help="use only the first N files of each sorted folder")
    p.add_argument("--lsd-offset", type=arg_type(check_int, "--lsd-offset", int, minimum=0), default=HIFIGAN_OFFSET,
                   help="samples dropped from each generated clip before LSD (default %(default)s, HiFi-GAN's delay)")


def add_parsers(commands) -> None:
    """The ``eval``, ``eval-logs``, ``stats`` and ``cache`` commands."""
    metric_help = "\n".join(f"  {name:<11} {spec.help}" for name, spec in METRICS.items())
    ev = commands.add_parser("eval", help="compare a folder of generated audio with a folder of reference audio",
                             description="Compute audioldm_eval's metrics between two folders of audio.",
                             epilog=f"metrics:\n{metric_help}", formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("generated", type=Path, help="folder of generated audio")
    ev.add_argument("reference", type=Path, nargs="?", default=None,
                    help="folder of reference (ground-truth) audio, a statistics file from 'audiofidelity stats', or "
                         "a class-probabilities file for KL (.pkl as stable-audio-metrics ships them, or .npz with "
                         "'ids' and 'probabilities'), paired with the generated files by name without extension; "
                         "leave it out for reference-free metrics only (see the metrics below)")
    _add_metric_options(ev)
    ev.add_argument("--json", type=Path, default=None, dest="json_out",
                    help="write the JSON report to this file instead of stdout (checked before any work)")
    ev.add_argument("--format", choices=("json", "table"), default="json",
                    help="what goes to stdout: the JSON report (default) or a readable table")
    ev.add_argument("--csv", type=Path, default=None, help="append one row for this run to this CSV file")
    ev.add_argument("--save-features", type=Path, default=None, help="write per-file features to this .npz")
    ev.add_argument("--per-file", action="store_true",
                    help="add per generated file: its FAD against the reference (fadtk's --indiv), the distance to "
                         "the nearest reference file, flags (silent, clipping, DC offset, low native rate), and each "
                         "pair's psnr, ssim and lsd; --format table lists the worst ten")
    ev.add_argument("--per-file-csv", type=Path, default=None, metavar="PATH",
                    help="write every file's per-file values to this CSV (implies --per-file)")
    ev.add_argument("--bootstrap", type=_bootstrap, default=0, metavar="N",
                    help="add 95%% intervals for fd, fad and kid from N resamplings of the files (seeded)")
    _add_model_options(ev)

    logs = commands.add_parser("eval-logs", help="evaluate every generation folder of a training run",
                               description="Evaluate each generation folder under LOG_DIR against one reference; "
                                           "results are written to LOG_DIR/audiofidelity-results/<folder>.json "
                                           "(never into an evaluated folder). Exit status as eval's: 2 on misuse, "
                                           "1 when a folder could not be evaluated.")
    logs.add_argument("log_dir", type=Path, help="training log folder holding the generation folders")
    logs.add_argument("--reference", type=Path, default=None,
                      help="reference folder or statistics file (leave it out for reference-free metrics only)")
    logs.add_argument("--bootstrap", type=_bootstrap, default=0, metavar="N",
                      help="N resamplings for 95%% intervals of FD/FAD/KID in each result (audiofidelity plot draws "
                           "them as bands)")
    logs.add_argument("--glob", default=DEFAULT_GLOB, help="generation folder name pattern (default %(default)s)")
    logs.add_argument("--force", action="store_true", help="re-evaluate folders that already have a current result")
    _add_metric_options(logs)
    _add_model_options(logs)

    st = commands.add_parser("stats", help="store a reference folder's statistics for later evaluations",
                             description="Compute a reference folder's FD/FAD statistics once; pass the file to "
                                         "'eval' in place of the folder.")
    st.add_argument("reference", type=Path, help="folder of reference audio")
    st.add_argument("--out", type=Path, required=True, help="statistics file to write (.npz)")
    st.add_argument("--limit", type=LIMIT, default=None, help="use only the first N files of the sorted folder")
    st.add_argument("--features", action="store_true",
                    help="also store the features (needed for kid, fd_layers and resampling the reference)")
    st.add_argument("--probabilities", type=Path, default=None, metavar="FILE.npz",
                    help="also write each file's softmax class probabilities (by name without extension), which "
                         "'eval GEN FILE.npz' reads for the KL (the backbone's feeding recorded and checked)")
    st.add_argument("--fadtk-name", default=None, metavar="NAME",
                    help="also store the FAD statistics as fadtk's NAME.mu / NAME.cov keys (fadtk's load_stats reads "
                         "the file then)")
    _add_model_options(st)

    cache = commands.add_parser("cache", help="show or clear the feature cache")
    cache.add_argument("action", choices=("info", "clear"))


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    try:
        artifact_for(args.backbone, args.sr)
        resolve_metrics(args.backbone, getattr(args, "metrics", None))
    except ValueError as exc:
        parser.error(str(exc))
    device = resolve_device(args.device)
    if args.precision == "tf32" and not device.startswith("cuda"):
        parser.error("--precision tf32 applies to CUDA devices only (use --device cuda, or bf16 on the CPU)")
    if args.precision == "bf16" and device == "cpu" and not runner.native_bf16():
        print("audiofidelity: warning: this CPU has no bf16 instructions, so --precision bf16 is emulated: about 6x "
              "slower than fp32 where measured; fp32 is the default and the exact path", file=sys.stderr)
    try:  # each option is checked by its type; here, that the run uses a model of its family
        check_model_options(_model_option_values(args), backbone=args.backbone, fad_model=args.fad_model)
    except ModelOptionError as exc:
        parser.error(exc.command_line())
    except ValueError as exc:  # a value the chosen model cannot take (a family's refusal)
        parser.error(str(exc))
    if getattr(args, "reference", ...) is None:  # eval without a reference
        try:
            check_reference_free(resolve_metrics(args.backbone, args.metrics))
        except ValueError as exc:
            parser.error(str(exc))
    if hasattr(args, "captions"):
        try:
            check_captions(resolve_metrics(args.backbone, args.metrics), args.captions, fad_model(args.fad_model))
        except ValueError as exc:
            parser.error(str(exc))
    if getattr(args, "inf", False):
        chosen = resolve_metrics(args.backbone, args.metrics)
        args.metrics = chosen + [f"{m}_inf" for m in ("fad", "fd", "kad") if m in chosen and f"{m}_inf" not in chosen]


def offline(args: argparse.Namespace) -> bool:
    """Whether downloads are refused: ``--offline`` or ``HF_HUB_OFFLINE`` (the Hub's own switch) set."""
    return args.offline or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _evaluator(args: argparse.Namespace, metrics: list[str] | None) -> Evaluator:
    """``_new_evaluator``, first building the model artifacts it lacks (the first run) unless ``offline``, under
    ``--require-pinned`` (which refuses local builds) or on ``torchrun`` (ranks would build side by side)."""
    try:
        return _new_evaluator(args, metrics)
    except ArtifactNotFoundError as exc:
        missing = getattr(exc, "names", None)
        if not missing or offline(args) or args.require_pinned or distributed_rank() is not None:
            raise
        folder = models_dir(args.models_dir)
        say_on_stderr(args.quiet)(f"building {len(missing)} model artifact(s) on first use into {folder}: "
                                  f"{', '.join(missing)} (--offline refuses instead)")
        # in a process of its own: tracing and exporting leave nothing in the process that then evaluates
        done = subprocess.run([sys.executable, "-m", "audiofidelity", "models", "build", *missing, "--models-dir",
                               str(folder), *(["--quiet"] if args.quiet else [])], stdout=sys.stderr)
        if done.returncode != 0:
            raise BuildError("the model artifact(s) {names} could not be built (why is said above); --offline "
                             "refuses instead of building", names=", ".join(missing)) from None
    return _new_evaluator(args, metrics)


def _new_evaluator(args: argparse.Namespace, metrics: list[str] | None) -> Evaluator:
    """The evaluator for these options: one process, or this rank's share under ``torchrun``."""
    conditioning = Conditioning(channel=args.channel, resampler=args.resampler, min_duration=args.min_duration)
    settings = EvaluationSettings(
        backbone=args.backbone, sample_rate=args.sr, metrics=metrics, models_dir=args.models_dir,
        device=resolve_device(args.device), batch_size=args.batch_size, conditioning=conditioning, strict=args.strict,
        lsd_offset=getattr(args, "lsd_offset", HIFIGAN_OFFSET), require_pinned=args.require_pinned,
        progress=not args.quiet, cache=not args.no_cache, workers=args.workers, precision=args.precision,
        max_memory=args.max_memory, batch_across_clips=args.batch_across_clips, fad_model=args.fad_model,
        metric_options=MetricOptions(covariance=getattr(args, "covariance", "mle"),
                                     kad_bandwidth=getattr(args, "kad_bandwidth", "reference"),
                                     inf_draw=getattr(args, "inf_draw", "frames")),
        model_options=_model_option_values(args), captions=getattr(args, "captions", None))
    if distributed_rank() is not None:
        return DistributedEvaluator(settings)
    return Evaluator(settings)


def _model_option_values(args: argparse.Namespace) -> dict:
    """The model families' options as given on the command line (unset ones left out)."""
    return {name: getattr(args, name) for name in model_options()
            if getattr(args, name, None) not in (None, False)}


def _option_type(option) -> Callable[[str], object]:
    """An argparse ``type=`` for a family's option: its parser, then its check (a bad value exits 2)."""
    def parse(text: str) -> object:
        try:
            return option.check((option.parse or str)(text))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None  # argparse names the flag

    parse.__name__ = option.name
    return parse


def _is_writer() -> bool:
    """Whether this process writes results: always, except on ``torchrun`` ranks other than 0."""
    found = distributed_rank()
    return found is None or found[0] == 0


def run_eval(args: argparse.Namespace) -> int:
    list_folder(args.generated)  # folder errors before the models load
    if args.reference is not None and not args.reference.is_file():
        list_folder(args.reference)
    if _is_writer():
        for path, option in ((args.json_out, "--json"), (args.csv, "--csv"), (args.save_features, "--save-features"),
                             (args.per_file_csv, "--per-file-csv")):
            check_writable(path, option)
        if args.csv is not None:  # before any work: a row that would not fit the file is refused now
            check_csv(args.csv, resolve_metrics(args.backbone, args.metrics))
    with _evaluator(args, args.metrics) as evaluator:
        result = evaluator.evaluate(args.generated, args.reference, limit=args.limit,
                                    per_file=args.per_file or args.per_file_csv is not None, bootstrap=args.bootstrap)
    if not _is_writer():
        return EXIT_OK
    text = json.dumps(result.report, indent=2)
    if args.json_out is not None:
        write_text(args.json_out, text + "\n", option="--json")
    if args.save_features is not None:
        result.save_features(args.save_features, option="--save-features")
    if args.csv is not None:
        append_csv(args.csv, result.report)
    if args.per_file_csv is not None:
        write_per_file_csv(args.per_file_csv, result.report["per_file"])
    files = result.report["files"]
    logging.getLogger("audiofidelity").info(
        "%s mode; used %d generated and %d reference files (%d pairs)", result.report["mode"],
        files["generated"]["used"], files.get("reference", {}).get("used", 0), files["pairs"])
    if result.report["problems"]:
        logging.getLogger("audiofidelity").warning(
            "skipped %d bad file(s); they are listed under 'problems' in the report", len(result.report["problems"]))
    if args.format == "table":
        print(format_table(result.report))
    elif args.json_out is None:
        print(text)
    if "error" in result.report and not args.per_file:
        print(f"audiofidelity: error: {result.report['error']}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def run_eval_logs(args: argparse.Namespace) -> int:
    """``eval-logs``: exits as ``eval`` does (2 on misuse, a missing reference or log folder included; 1 when a
    folder could not be evaluated, naming each)."""
    if args.reference is not None and not args.reference.is_file():
        list_folder(args.reference)  # folder errors before the models load
    find_generation_folders(args.log_dir, args.glob)
    with _evaluator(args, args.metrics) as evaluator:
        results = evaluate_logs(evaluator, args.log_dir, args.reference, pattern=args.glob, force=args.force,
                                limit=args.limit, write=_is_writer(), bootstrap=args.bootstrap)
    if _is_writer():
        print(format_steps(results))
    failed = [r for r in results if r.error]
    if failed:
        print(f"audiofidelity: error: {len(failed)} folder(s) could not be evaluated: "
              + "; ".join(f"{r.folder.name}: {r.error}" for r in failed), file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def run_stats(args: argparse.Namespace) -> int:
    if _is_writer():
        check_writable(args.out, "--out")
        if args.probabilities is not None:
            check_writable(args.probabilities, "--probabilities")
    metrics = [m for m in ("fd", "fad", "fd_layers") if m in BACKBONE_METRICS[args.backbone]]
    with _evaluator(args, metrics) as evaluator:
        stats, probabilities, problems = evaluator.reference_set(
            args.reference, limit=args.limit, keep_features=args.features, probabilities=args.probabilities is not None)
    if not _is_writer():
        return EXIT_OK
    stats.save(args.out, fadtk_name=args.fadtk_name, option="--out")
    summary = {"statistics": str(args.out), "files": len(stats.files), "skipped": problems,
               "roles": {role: r.count for role, r in stats.roles.items()}, "settings": stats.settings}
    if probabilities is not None:
        save_reference_probabilities(args.probabilities, list(probabilities.ids), probabilities.probabilities,
                                     made_with=probabilities.made_with or {}, option="--probabilities")
        summary["probabilities"] = str(args.probabilities)
    print(json.dumps(summary, indent=2))
    return EXIT_OK


def run_cache(args: argparse.Namespace) -> int:
    cache = FeatureCache()
    if args.action == "clear":
        print(f"removed {cache.clear()} file(s) from {cache.root}")
    else:
        print(json.dumps(cache.info(), indent=2))
    return EXIT_OK
