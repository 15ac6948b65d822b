"""``audiofidelity plot``: pictures of reports (``audiofidelity.plots``; the ``plot`` extra)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..validation import arg_type, check_int
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE

MAX_WORST = 200
"""Bars in the worst-files picture at most: more would not be readable (nor quick to draw)."""


def _formats(text: str) -> list[str]:
    from ..plots import FORMATS

    chosen = [f.strip() for f in text.split(",") if f.strip()]
    if not chosen or any(f not in FORMATS for f in chosen):
        raise argparse.ArgumentTypeError(f"--format takes a comma list of {', '.join(FORMATS)}, got {text!r}")
    return chosen


def _worst(text: str) -> int:
    value = arg_type(check_int, "--worst", int, minimum=1)(text)
    if value > MAX_WORST:
        raise argparse.ArgumentTypeError(f"--worst must be at most {MAX_WORST}, got {value}")
    return value


def add_parser(commands) -> None:
    pl = commands.add_parser(
        "plot", help="draw a report's pictures (pip install 'audiofidelity[plot]')",
        description="Pictures of an 'eval --json' report (MERT's per-layer FD, the FAD∞/KAD∞/FD∞ fits, the worst "
                    "files with --per-file) or of a training run's eval-logs results (each metric over the steps, "
                    "bootstrap bands where computed), from the reports alone.")
    pl.add_argument("source", type=Path, help="a report JSON, or a log folder eval-logs wrote results into")
    pl.add_argument("--out", type=Path, required=True, help="folder to write <picture>.png and .svg into")
    pl.add_argument("--format", type=_formats, default=["png", "svg"], dest="formats",
                    help="comma list of png, svg (default both)")
    pl.add_argument("--worst", type=_worst, default=12,
                    help=f"files in the worst-files picture (default %(default)s, at most {MAX_WORST})")


def run(args: argparse.Namespace) -> int:
    from ..plots import read_report, read_steps, report_figures, save, steps_figure

    source: Path = args.source
    if source.is_dir():
        try:
            steps = read_steps(source)
        except ValueError as exc:
            print(f"audiofidelity: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        figure = steps_figure(steps)
        figures = {"steps": figure} if figure is not None else {}
        what = f"{len(steps)} eval-logs result(s) under {source}"
    elif source.is_file():
        try:
            report = read_report(source)
            report = report.get("report", report)  # an eval-logs result holds its report
            if not isinstance(report, dict) or "metrics" not in report:
                raise ValueError("no 'metrics' in it")
        except (OSError, ValueError) as exc:
            print(f"audiofidelity: error: {source}: not an audiofidelity report ({exc})", file=sys.stderr)
            return EXIT_USAGE
        figures = report_figures(report, worst=args.worst)
        what = f"the report {source.name}"
    else:
        print(f"audiofidelity: error: {source}: no such file or folder", file=sys.stderr)
        return EXIT_USAGE
    if not figures:
        print(f"audiofidelity: error: nothing to draw from {what}: pictures come from metrics over several steps "
              f"(eval-logs), fd_layers (MERT), fad_inf/kad_inf/fd_inf fits, or per-file FAD (--per-file)",
              file=sys.stderr)
        return EXIT_FAILED
    for path in save(figures, args.out, args.formats):
        print(path)
    return EXIT_OK
