"""What the commands share: exit statuses, option types, the runtime options, the device and the core count."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable

from ..errors import BuildError
from ..memory import parse_size
from ..runner import DEFAULT_BATCH_SIZE
from ..validation import arg_type, check_int

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130
"""128 + SIGINT, as a shell reports a command ended by Ctrl-C."""


def memory_size(text: str) -> int:
    """``--max-memory SIZE``: bytes (``memory.parse_size``: 4G, 512M, 1.5GiB or a number of bytes)."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def builder() -> ModuleType:
    """``audiofidelity.exporters.build`` (torch and the exporters load for a build only), or a ``BuildError`` saying
    how to get it when this installation lacks it (an editable install made before the exporters were packaged)."""
    try:
        return importlib.import_module("audiofidelity.exporters.build")
    except ImportError as exc:
        raise BuildError("cannot build models: the exporters do not import ({reason}); reinstall audiofidelity "
                         "(pip install -e . in a checkout)", reason=str(exc)) from None


def say_on_stderr(quiet: bool) -> Callable[[str], None]:
    """How a build reports its steps: lines on stderr (stdout carries results), none with ``--quiet``."""
    return (lambda line: None) if quiet else (lambda line: print(f"audiofidelity: {line}", file=sys.stderr))


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_device(requested: str) -> str:
    """``auto``: the first GPU when torch sees one, else the CPU."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    """Where the models come from and how they run: shared by the evaluating commands, ``embed`` and ``serve``."""
    p.add_argument("--models-dir", type=Path, default=None,
                   help="directory with <artifact>.pt2 + .json (default: $AUDIOFIDELITY_MODELS, else models/ in the "
                        "cache directory; then the Hub)")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda, cuda:N or auto (a GPU when there is one); under torchrun each rank uses "
                        "cuda:LOCAL_RANK")
    p.add_argument("--batch-size", type=arg_type(check_int, "--batch-size", int, minimum=1),
                   default=DEFAULT_BATCH_SIZE)
    p.add_argument("--workers", type=arg_type(check_int, "--workers", int, minimum=0), default=available_cores(),
                   help="processes decoding and preprocessing while the models run (default: the available "
                        "cores, %(default)s; 0: in the main process); results do not depend on it")
    p.add_argument("--no-cache", action="store_true", help="compute every feature afresh; read and write no cache")
    p.add_argument("--max-memory", type=memory_size, default=None, metavar="SIZE",
                   help="most memory one clip's decoding, preprocessing or model pass may use, e.g. 8G (default: half "
                        "the available memory); a clip that would need more is refused by name before it is decoded")
