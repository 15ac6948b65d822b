"""The background worker: runs queued jobs one at a time, with each model loaded once per process.

Jobs run in order of submission in one thread (the models already use every core). An evaluator is
built on first need for each backbone, rate and set of models the requested metrics use, then kept;
its uploads are deleted once a job has finished, its report stays in the job store. A running job's
progress is written to the store at most every ``PROGRESS_INTERVAL`` seconds, and a job deleted while
it runs stops there (at the next chunk of files) and is removed with its uploads.
"""
from __future__ import annotations

import copy
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePath

from ..cache import FeatureCache
from ..errors import AudioFidelityError
from ..evaluate import BACKBONE_METRICS, METRICS, OPT_IN_METRICS, Evaluator
from ..models import DEFAULTS
from ..runner import DEFAULT_BATCH_SIZE
from ..validation import check_int
from .jobstore import Job, JobStore
from .uploads import discard

log = logging.getLogger("audiofidelity.server")
PROGRESS_INTERVAL = 0.5
"""Seconds between two progress records of a job (each also checks whether it was deleted)."""
PHASE_UNITS = {"pairs": "pairs", "metrics": "steps"}
"""What a phase counts, where not files."""


class JobCancelled(Exception):
    """The running job was deleted: stop it."""


def job_watch(store: JobStore, job_id: str):
    """An ``Evaluator.evaluate`` watch that records the job's progress and raises ``JobCancelled`` once the job's
    deletion was asked for; written at most every ``PROGRESS_INTERVAL`` seconds, and at each phase's start and end."""
    last = float("-inf")

    def watch(phase: str, done: int, total: int) -> None:
        nonlocal last
        moment = time.monotonic()
        if done not in (0, total) and moment - last < PROGRESS_INTERVAL:
            return
        last = moment
        progress = {"phase": phase, "done": done, "total": total, "unit": PHASE_UNITS.get(phase, "files")}
        if not store.set_progress(job_id, progress):
            raise JobCancelled(job_id)

    return watch


@dataclass(frozen=True)
class RunSettings:
    """How the server computes features: the ``eval`` options that do not come with a request."""

    models_dir: Path | None = None
    device: str = "cpu"
    batch_size: int = DEFAULT_BATCH_SIZE
    workers: int = 0
    cache: bool = True
    max_memory: int | None = None
    """Bytes one clip may take in each job (None: half the memory available when the evaluator is built)."""

    def __post_init__(self) -> None:  # the checks of Evaluator (and serve's --batch-size, --workers)
        check_int(self.batch_size, "batch_size", minimum=1)
        check_int(self.workers, "workers", minimum=0)


def models_needed(backbone: str, metrics: list[str] | None) -> frozenset[str]:
    """The artifact roles (``classifier``, ``fad``) the requested metrics read."""
    chosen = metrics if metrics is not None else BACKBONE_METRICS[backbone]
    return frozenset(need for need in (METRICS[m].needs for m in chosen) if need is not None)


class JobRunner:
    """Claims queued jobs from the store and runs them in a daemon thread."""

    def __init__(self, store: JobStore, jobs_dir: Path, settings: RunSettings, *, idle_wait: float = 1.0) -> None:
        self.store, self.jobs_dir, self.settings, self.idle_wait = store, jobs_dir, settings, idle_wait
        self._evaluators: dict[tuple[str, int, frozenset[str], str, frozenset[str]], Evaluator] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="audiofidelity-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop after its current job; a job cut off is recovered at the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # still in a job: the process exit ends it
                return
        for evaluator in self._evaluators.values():
            evaluator.close()

    def wake(self) -> None:
        """A job was queued: look now instead of at the next poll."""
        self._wake.set()

    def loaded_models(self) -> list[str]:
        """Names of the artifacts loaded so far."""
        return sorted({a.manifest.name for e in self._evaluators.values() for a in e.artifacts.values() if a.loaded})

    def _evaluator(self, backbone: str, sample_rate: int, metrics: list[str] | None,
                   fad_model: str = DEFAULTS.fad_model) -> Evaluator:
        needs = models_needed(backbone, metrics)
        opt_in = frozenset(m for m in metrics or () if m in OPT_IN_METRICS)  # clap_score loads a text tower
        key = (backbone, sample_rate, needs, fad_model, opt_in)
        if key not in self._evaluators:
            usable = [m for m in BACKBONE_METRICS[backbone] if METRICS[m].needs is None or METRICS[m].needs in needs]
            usable += sorted(opt_in)
            s = self.settings
            self._evaluators[key] = Evaluator(backbone=backbone, sample_rate=sample_rate, metrics=usable,
                                              models_dir=s.models_dir, device=s.device, batch_size=s.batch_size,
                                              progress=False, cache=s.cache, workers=s.workers, fad_model=fad_model,
                                              max_memory=s.max_memory)
        return self._evaluators[key]

    def run(self, job: Job) -> None:
        """Evaluate one claimed job and record its report or its error; its uploads are then removed."""
        request = job.request
        folder = self.jobs_dir / job.id
        log.info("job %s: running (attempt %d)", job.id, job.attempts)
        try:
            evaluator = self._evaluator(request["backbone"], request["sampling_rate"], request["metrics"],
                                        request.get("fad_model", DEFAULTS.fad_model))
            captions = request.get("captions")
            reference = folder / "reference" if request["uploads"]["reference"] else None  # reference-free metrics
            result = evaluator.evaluate(folder / "generated", reference, limit=request["limit_num"],
                                        metrics=request["metrics"], watch=job_watch(self.store, job.id),
                                        captions=folder / "captions" / captions["name"] if captions else None)
        except JobCancelled:
            discard(folder)  # before the row: once the job answers 404, its uploads are gone
            finished = not self.store.remove_cancelled(job.id)
        except (AudioFidelityError, ValueError, OSError) as exc:
            log.warning("job %s: failed: %s", job.id, exc)
            finished = self.store.fail(job.id, self.public_error(exc, folder))
        except Exception as exc:  # a bug must fail the job with its reason, not kill the worker
            log.exception("job %s: internal error", job.id)
            finished = self.store.fail(job.id, f"internal error ({type(exc).__name__}); see the server log")
        else:
            finished = self.store.complete(job.id, self.public_report(result.report, folder))
            if finished:
                log.info("job %s: completed", job.id)
        if not finished:
            log.info("job %s: deleted while running; stopped and removed", job.id)
        discard(folder)

    def public_value(self, value: object, folder: Path) -> str:
        """A report's or an error's field as the service shows it: a path inside the job's folder relative to it
        (``generated``, ``reference/a.wav``), the data, models or cache folder (or a path inside one) by its
        option name (``MODELS_DIR/vggish.pt2``), any other path by its file name alone; anything else as ``str``.
        Paths are compared as paths (made absolute), never searched for in text."""
        if not isinstance(value, PurePath):
            return str(value)
        path = Path(os.path.abspath(value))
        cache = FeatureCache().root if self.settings.cache else None
        for root, name in ((folder, None), (self.jobs_dir.parent, "DATA_DIR"), (self.settings.models_dir, "MODELS_DIR"),
                           (cache, "FEATURE_CACHE")):
            if root is None:
                continue
            root = Path(os.path.abspath(root))
            if path == root or root in path.parents:
                inside = path.relative_to(root).as_posix()
                return inside if name is None else name if inside == "." else f"{name}/{inside}"
        return path.name

    def public_error(self, exc: BaseException, folder: Path) -> str:
        """A failed job's error as the service shows it: built from the error's structured fields
        (``AudioFidelityError.render``; an ``OSError``'s ``strerror`` and ``filename``), paths shown by
        ``public_value``."""
        if isinstance(exc, AudioFidelityError):
            return exc.render(lambda value: self.public_value(value, folder))
        if isinstance(exc, OSError):
            where = f": {self.public_value(Path(exc.filename), folder)}" if exc.filename else ""
            return f"{exc.strerror or type(exc).__name__}{where}"
        return str(exc)  # a ValueError names settings and values, not paths

    def public_report(self, report: dict, folder: Path) -> dict:
        """The report as the service stores it: each side's folder by its job-relative name, the feature cache by
        its option name; nothing else in a report names a path (problems name files by their upload names)."""
        out = copy.deepcopy(report)
        for entry in out["files"].values():
            for key in ("folder", "file"):  # a side's folder, the captions file
                if isinstance(entry, dict) and isinstance(entry.get(key), str):
                    entry[key] = self.public_value(Path(entry[key]), folder)
        provenance = out.get("provenance", {})
        if provenance.get("feature_cache") is not None:
            provenance["feature_cache"] = self.public_value(Path(provenance["feature_cache"]), folder)
        return out

    def run_next(self) -> bool:
        """Run the oldest queued job, if any; whether there was one."""
        job = self.store.claim_next()
        if job is None:
            return False
        self.run(job)
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.run_next():
                self._wake.wait(self.idle_wait)
                self._wake.clear()
