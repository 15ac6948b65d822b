"""``audiofidelity serve``: the evaluation service (``audiofidelity.server``; the ``server`` extra)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..validation import arg_type, check_int, check_positive
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_runtime_options, resolve_device


def _port(text: str) -> int:
    value = arg_type(check_int, "--port", int, minimum=0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"--port must be <= 65535, got {value}")
    return value


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "audiofidelity" / "server"


def add_parser(commands) -> None:
    sv = commands.add_parser("serve",
                             help="run the evaluation service (HTTP API; pip install 'audiofidelity[server]')",
                             description="Serve audioldm_eval's evaluation API with a persistent job store.")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s: this machine only)")
    sv.add_argument("--port", type=_port, default=2600)
    sv.add_argument("--data-dir", type=Path, default=_default_data_dir(),
                    help="job store and uploads (default %(default)s)")
    sv.add_argument("--lazy-models", action="store_true",
                    help="start even when the models a default request needs are missing (jobs needing them fail)")
    sv.add_argument("--recover", action="store_true",
                    help="if the job store is damaged, move it aside and start a new one with the unfinished jobs "
                         "whose uploads remain queued again (says what it did)")
    sv.add_argument("--token-file", type=Path, default=None,
                    help="file holding a bearer token that every endpoint but / and /health then requires")
    add_runtime_options(sv)
    sv.add_argument("--max-file-mb", type=arg_type(check_positive, "--max-file-mb"), default=200,
                    help="largest upload per file (default %(default)s)")
    sv.add_argument("--max-request-mb", type=arg_type(check_positive, "--max-request-mb"), default=2048,
                    help="largest request body (default %(default)s)")
    sv.add_argument("--max-files", type=arg_type(check_int, "--max-files", int, minimum=1), default=1000,
                    help="most files per request (default %(default)s)")
    sv.add_argument("--request-timeout", type=arg_type(check_positive, "--request-timeout"), default=60,
                    help="seconds a client may stall while uploading (default %(default)s)")
    sv.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                    help="allow browser requests from this origin (repeatable; default: no CORS)")


def run_serve(args: argparse.Namespace) -> int:
    try:
        from ..server.app import ServerConfig, serve
        from ..server.uploads import UploadLimits
        from ..server.worker import RunSettings
    except ImportError as exc:
        print(f"audiofidelity: error: 'serve' needs the server extra ({exc.name} is missing): "
              "pip install 'audiofidelity[server]'", file=sys.stderr)
        return EXIT_FAILED
    token = None
    if args.token_file is not None:
        token = args.token_file.read_text().strip()
        if not token:
            print(f"audiofidelity: error: token file {args.token_file} is empty", file=sys.stderr)
            return EXIT_USAGE
    mb = 2**20
    config = ServerConfig(
        data_dir=args.data_dir,
        run=RunSettings(models_dir=args.models_dir, device=resolve_device(args.device), batch_size=args.batch_size,
                        workers=args.workers, cache=not args.no_cache, max_memory=args.max_memory),
        limits=UploadLimits(max_file_bytes=int(args.max_file_mb * mb),
                            max_request_bytes=int(args.max_request_mb * mb), max_files=args.max_files),
        request_timeout=args.request_timeout, token=token, cors_origins=tuple(args.cors_origin))
    serve(config, host=args.host, port=args.port, recover=args.recover, lazy_models=args.lazy_models)
    return EXIT_OK
