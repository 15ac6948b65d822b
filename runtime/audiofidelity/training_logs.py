"""``eval-logs``: evaluate every generation folder of a training run against one reference (AudioLDM's
``eval.py --log_path``), with the models loaded and the reference features computed once.

Folders are the directories under the log directory whose names match a glob (default ``val_*``),
searched recursively. Each result is written into the log directory's own results folder, never into a
folder that is evaluated: ``<log dir>/audiofidelity-results/<folder path under the log dir>.json``
(``RESULTS_DIR``, which the search skips), together with a fingerprint of what it was computed from (the
content of the folder's files and of the reference, metrics and settings); a folder whose fingerprint is
unchanged is skipped unless ``force``. A folder that could not be evaluated (empty, or no usable file) is
listed with its reason (``LogResult.error``) and gets no result file.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from .cache import content_identity
from .errors import InputFolderError
from .evaluate import Evaluator
from .outputs import write_text
from .reporting import align

log = logging.getLogger(__name__)

RESULTS_DIR = "audiofidelity-results"
"""Folder under the log directory holding the results; never searched for generation folders."""
DEFAULT_GLOB = "val_*"


@dataclass
class LogResult:
    """One generation folder's outcome: its step, report, and whether it was computed now or reused."""

    folder: Path
    step: int | None
    report: dict
    reused: bool

    @property
    def error(self) -> str | None:
        """Why no metric could be computed for this folder (empty, no usable file), else None."""
        return self.report.get("error")


def step_of(folder: Path) -> int | None:
    """The training step in a folder name: its last run of digits (``val_12000`` -> 12000), else None."""
    numbers = re.findall(r"\d+", folder.name)
    return int(numbers[-1]) if numbers else None


def find_generation_folders(log_dir: str | Path, pattern: str = DEFAULT_GLOB) -> list[Path]:
    """Directories under ``log_dir`` matching ``pattern``, sorted by step (then path).

    Raises
    ------
    InputFolderError
        If ``log_dir`` is not a folder or holds no matching folder.
    """
    root = Path(log_dir)
    if not root.is_dir():
        raise InputFolderError(f"log folder not found: {root}")
    results = root / RESULTS_DIR
    folders = [p for p in root.rglob(pattern) if p.is_dir() and p != results and results not in p.parents]
    if not folders:
        raise InputFolderError(f"no folder matching {pattern!r} under {root}")
    return sorted(folders, key=lambda p: (step_of(p) is None, step_of(p) or 0, str(p)))


def result_path(folder: Path, log_dir: str | Path) -> Path:
    """Where ``folder``'s result is written: ``<log_dir>/RESULTS_DIR/<folder under log_dir>.json``."""
    inside = Path(folder).relative_to(log_dir)
    return Path(log_dir) / RESULTS_DIR / inside.parent / f"{inside.name}.json"


def _contents(path: Path, evaluator: Evaluator) -> list[tuple[str, str]]:
    """(name, content sha256) of a file, or of each file in a folder; hashed again only when a file's stamp
    (inode, size, mtime, ctime) moved, through the feature cache's memo."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return [(p.name, content_identity(p, evaluator.cache)) for p in files]


def fingerprint(folder: Path, reference: Path | None, evaluator: Evaluator, limit: int | None,
                bootstrap: int = 0) -> str:
    """Hash of everything a folder's result depends on: the content of its files and of the reference (None: no
    reference, reference-free metrics), metrics, settings and bootstrap (content, not timestamps: a file rewritten
    with its mtime put back still counts)."""
    payload = {"files": _contents(folder, evaluator),
               "reference": _contents(reference, evaluator) if reference is not None else None,
               "metrics": evaluator.selected, "settings": evaluator.settings(), "limit": limit,
               "lsd_offset": evaluator.lsd_offset, **({"bootstrap": bootstrap} if bootstrap else {})}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def evaluate_logs(evaluator: Evaluator, log_dir: str | Path, reference: str | Path | None, *,
                  pattern: str = DEFAULT_GLOB, force: bool = False, limit: int | None = None, write: bool = True,
                  bootstrap: int = 0) -> list[LogResult]:
    """Evaluate each generation folder against ``reference`` (None: reference-free metrics only); write (unless
    ``write`` is False: torchrun ranks other than 0) and return the results, by step. ``bootstrap``: resamplings
    for the 95% intervals (``Evaluator.evaluate``), which ``audiofidelity plot`` draws as bands."""
    reference = Path(reference) if reference is not None else None
    results = []
    for folder in find_generation_folders(log_dir, pattern):
        target = result_path(folder, log_dir)
        key = fingerprint(folder, reference, evaluator, limit, bootstrap)
        if not force and target.is_file():
            try:
                previous = json.loads(target.read_text())
            except (OSError, ValueError):
                previous = {}
            if previous.get("fingerprint") == key:
                log.info("%s: unchanged since %s, reusing it (--force recomputes)", folder, target.name)
                results.append(LogResult(folder, step_of(folder), previous["report"], reused=True))
                continue
        try:
            report = evaluator.evaluate(folder, reference, limit=limit, bootstrap=bootstrap).report
        except InputFolderError as exc:  # an empty generation folder: say so, go on with the others
            log.warning("%s: %s", folder, exc)
            results.append(LogResult(folder, step_of(folder), {"metrics": {}, "error": str(exc)}, reused=False))
            continue
        if write:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_text(target, json.dumps({"fingerprint": key, "folder": str(folder), "step": step_of(folder),
                                           "report": report}, indent=2) + "\n", option="eval-logs result")
        results.append(LogResult(folder, step_of(folder), report, reused=False))
    return results


def format_steps(results: list[LogResult]) -> str:
    """One line per folder, by step: the metrics computed, so a training curve reads top to bottom."""
    if not results:
        return "no generation folder evaluated"
    first: dict = next((r.report["metrics"] for r in results if r.report["metrics"]), {})
    keys = [k for k, v in first.items() if not isinstance(v, list)]
    header = ["step", "folder", *keys]
    rows = [[str(r.step) if r.step is not None else "-", r.folder.name + (" (reused)" if r.reused else ""),
             *("n/a" if r.report["metrics"].get(k) is None else f"{r.report['metrics'][k]:.6g}" for k in keys)]
            for r in results]
    return "\n".join(align([header, *rows]))
