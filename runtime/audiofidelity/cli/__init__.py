"""The ``audiofidelity`` command line: a thin layer over ``audiofidelity.evaluate``.

Commands: ``eval`` (two folders, or a folder and a statistics file), ``eval-logs`` (every generation folder of a
training run), ``stats`` (a reference folder's statistics file), ``cache`` (feature cache info/clear) in
``cli.eval``; ``models`` (artifacts), ``embed``, ``sc09`` and ``sc09-stats``, ``serve`` (the HTTP service;
``server`` extra), ``plot`` (pictures of reports; ``plot`` extra) in modules of their own; ``cli.common`` holds what
they share. Results (JSON) go to stdout, progress bars and per-file problems to stderr.
Exit status: 0 on success, 2 on misuse (bad arguments,
missing or empty folder), 1 when the run cannot complete (artifact missing or corrupt, bad files under
``--strict``), 130 after Ctrl-C (one line on stderr).
"""
from __future__ import annotations

import argparse
import logging
import sys

from .._version import __version__
from ..errors import AudioFidelityError, InputFolderError
from . import embed, models, plot, sc09, serve
from . import eval as eval_command
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="audiofidelity", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"audiofidelity {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    eval_command.add_parsers(commands)
    models.add_parser(commands)
    embed.add_parser(commands)
    sc09.add_parsers(commands)
    serve.add_parser(commands)
    plot.add_parser(commands)
    return parser


RUNNERS = {"eval": eval_command.run_eval, "eval-logs": eval_command.run_eval_logs, "stats": eval_command.run_stats,
           "cache": eval_command.run_cache, "models": models.run, "embed": embed.run, "serve": serve.run_serve,
           "plot": plot.run, **sc09.RUNNERS}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``audiofidelity`` and ``python -m audiofidelity``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.ERROR if getattr(args, "quiet", False) else logging.INFO if getattr(args, "verbose", False) \
        else logging.WARNING
    logging.basicConfig(level=level, format="audiofidelity: %(message)s", stream=sys.stderr, force=True)
    if args.command in ("eval", "eval-logs", "stats"):
        eval_command.validate(parser, args)
    try:
        return RUNNERS[args.command](args)
    except InputFolderError as exc:
        print(f"audiofidelity: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AudioFidelityError as exc:
        print(f"audiofidelity: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # e.g. --json or --save-features into a missing folder
        print(f"audiofidelity: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; the evaluator has stopped its workers
        print("audiofidelity: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


__all__ = ["main", "build_parser"]
