"""The HTTP API (audioldm_eval's service endpoints, port 2600): routes, error bodies, auth, start-up recovery.

Every error answers JSON ``{"error": "<what went wrong>"}``. ``POST /evaluate`` stores the uploads
and queues a job (``202``); the worker (``worker.py``) runs it; ``GET /jobs/{id}`` reads it from the
SQLite store (``jobstore.py``), across restarts.
"""
from __future__ import annotations

import fcntl
import hmac
import logging
import os
import resource
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from .. import __version__, models_cli, registry
from ..evaluate import (BACKBONE_METRICS, DEFAULT_FAD_MODEL, METRICS, OPT_IN_METRICS, SIDES, is_paired,
                        resolve_metrics)
from ..errors import ServerStateError
from ..metric_table import api_names
from ..validation import check_int, check_optional, check_positive
from .jobstore import STATUSES, Job, JobStore, move_aside, now, rebuild, write_request
from .limits import RequestLimits
from .uploads import UploadError, UploadLimits, discard, store_side
from .worker import JobRunner, RunSettings

log = logging.getLogger("audiofidelity.server")

RECOMMENDED = ("fad", "isc")
DEFAULT_BACKBONE, DEFAULT_SAMPLING_RATE = "cnn14", 16000
"""What a request naming no backbone or rate gets (audioldm_eval's defaults); no fad_model: ``DEFAULT_FAD_MODEL``."""


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``audiofidelity serve`` is configured with."""

    data_dir: Path
    run: RunSettings = field(default_factory=RunSettings)
    limits: UploadLimits = field(default_factory=UploadLimits)
    request_timeout: float = 60.0
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    run_jobs: bool = True
    """False: queue and store jobs without running them (an API front end; tests of queued jobs)."""

    def __post_init__(self) -> None:  # serve's --request-timeout, checked as there
        check_positive(self.request_timeout, "request_timeout")


def parse_metrics(text: str | None, backbone: str) -> list[str] | None:
    """A request's comma-separated metrics as ``METRICS`` names; None (all) when empty or ``all``. Each may be
    given by its ``--metrics`` name or its API name (``metric_table.api_names``), in any case."""
    if text is None or not text.strip() or text.strip().lower() == "all":
        return None
    spellings = {api.lower(): name for name, api in api_names().items()} | {name: name for name in METRICS}
    given = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in given if m not in spellings]
    if unknown:
        raise HTTPException(400, f"Invalid metrics: {unknown}. Available: {list(api_names().values())}")
    names = [spellings[m] for m in given]
    try:
        return resolve_metrics(backbone, names)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


def _khz(rates) -> str:
    return ", ".join(f"{rate / 1000:g}" for rate in rates) + " kHz"


def backbone_description(backbone: str) -> str:
    """A backbone in words, from the registry: the artifact serving each of its rates (and the rate audio is
    resampled to for the model, when another), where the original comes from, and its licence."""
    served: dict[str, list[int]] = {}
    for rate in registry.backbones()[backbone]:
        served.setdefault(registry.artifact_for(backbone, rate).name, []).append(rate)
    described = []
    for name, rates in served.items():
        entry = registry.registry_entry(name)
        resampled = f", resampled to {_khz([entry.model_rate])}" if entry.model_rate not in (0, *rates) else ""
        described.append(f"{name} at {_khz(rates)}{resampled}: {entry.origin}, {entry.license}")
    return "; ".join(described)


def _int_field(value: object, name: str, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise HTTPException(400, f"{name} must be an integer, got {str(value)[:40]!r}") from None


def _request_settings(form) -> dict:
    """The evaluation settings of a submission, checked; ``HTTPException`` (400) naming what is wrong."""
    backbone = str(form.get("backbone") or DEFAULT_BACKBONE)
    rates = registry.backbones()
    if backbone not in rates:
        raise HTTPException(400, f"Invalid backbone '{backbone[:40]}'. Available: {sorted(rates)}")
    rate = _int_field(form.get("sampling_rate"), "sampling_rate", DEFAULT_SAMPLING_RATE)
    if rate not in rates[backbone]:
        raise HTTPException(400, f"Invalid sampling_rate {rate} for {backbone}. Available: {list(rates[backbone])}")
    try:  # the check Evaluator.evaluate and --limit make
        limit = check_optional(check_int, _int_field(form.get("limit_num"), "limit_num", None), "limit_num", minimum=1)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    fad_model = str(form.get("fad_model") or DEFAULT_FAD_MODEL)
    if fad_model not in registry.fad_models():
        raise HTTPException(400, f"Invalid fad_model '{fad_model[:40]}'. Available: {list(registry.fad_models())}")
    return {"backbone": backbone, "sampling_rate": rate, "limit_num": limit, "fad_model": fad_model,
            "metrics": parse_metrics(form.get("metrics"), backbone)}


def _uploads(form, side: str) -> list[UploadFile]:
    """The files of one side, sent as ``<side>_files`` or ``<side>_files[]``."""
    items = form.getlist(f"{side}_files") + form.getlist(f"{side}_files[]")
    if any(not isinstance(item, UploadFile) for item in items):
        raise HTTPException(400, f"{side}_files must be file uploads")
    if not items:
        raise HTTPException(400, f"No {side} files provided")
    return items


def process_memory() -> dict:
    """This process's resident memory now and at its peak, in bytes."""
    out = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    out["rss_bytes"] = int(line.split()[1]) * 1024
    except OSError:  # not Linux
        pass
    return out


def job_view(job: Job) -> dict:
    """A job as ``GET /jobs/{id}`` shows it; a finished job adds its report (metrics, problems, provenance)."""
    view = {"job_id": job.id, "status": job.status, "evaluation_mode": job.evaluation_mode,
            "backbone": job.request["backbone"], "sampling_rate": job.request["sampling_rate"],
            "fad_model": job.request.get("fad_model", DEFAULT_FAD_MODEL),
            "requested_metrics": job.request["metrics"], "limit_num": job.request["limit_num"],
            "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
            "attempts": job.attempts, "notes": job.notes, "uploads": job.request["uploads"],
            "progress": job.progress if job.status == "running" else None,
            "cancel_requested": job.cancel_requested, "metrics": None, "error": job.error}
    if job.report is not None:
        view.update({k: v for k, v in job.report.items() if k != "mode"})
    return view


def job_summary(job: Job) -> dict:
    """A job as ``GET /jobs`` lists it."""
    return {"job_id": job.id, "status": job.status, "evaluation_mode": job.evaluation_mode,
            "backbone": job.request["backbone"], "sampling_rate": job.request["sampling_rate"],
            "created_at": job.created_at, "finished_at": job.finished_at, "error": job.error,
            "progress": job.progress if job.status == "running" else None}


STORE_FILE = "jobs.sqlite3"
PUBLIC_PATHS = frozenset({"/", "/health"})
"""What answers without the token when one is set."""
PUBLIC_PREFIXES = ("/ui/", "/docs-assets/")
"""Static files anyone may fetch: the page's script and style, swagger-ui's (no data, nothing server-specific)."""
UI_DIR = Path(__file__).with_name("ui")
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
"""Content-Security-Policy of the page at ``/``: its own script and style only, nothing from elsewhere."""
MAX_OFFSET = 2**62
"""Largest ``/jobs`` offset (SQLite's integers are 64-bit: a larger one was a 500 OverflowError)."""
MAX_CONNECTIONS = 64
"""Concurrent connections uvicorn serves before it answers 503 (``limit_concurrency``)."""
MAX_HEADER_BYTES = 64 * 1024
"""Largest request line plus headers h11 buffers before it refuses the request."""


def _tidy(data_dir: Path, store: JobStore) -> None:
    """At start-up: drop half-received uploads and upload folders whose job is gone or finished."""
    discard(data_dir / "incoming")
    pending = store.ids("queued", "running")
    for folder in (data_dir / "jobs").iterdir():
        if folder.name not in pending:
            log.info("removing uploads of finished or unknown job %s", folder.name)
            discard(folder)


def create_app(config: ServerConfig) -> FastAPI:
    """The FastAPI application for ``config``; its lifespan recovers interrupted jobs and runs the worker."""
    data_dir = config.data_dir
    jobs_dir, incoming = data_dir / "jobs", data_dir / "incoming"
    jobs_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(data_dir / STORE_FILE)
    runner = JobRunner(store, jobs_dir, config.run)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for job in store.recover():  # first, so a job failed here has its uploads tidied away below
            log.warning("job %s was running when the server stopped: now %s", job.id, job.status)
        _tidy(data_dir, store)
        if config.run_jobs:
            runner.start()
        yield
        runner.stop()
        store.close()

    from fastapi_offline import FastAPIOffline  # /docs from the package's files, no CDN

    # no /redoc: its script fetches a logo from cdn.redoc.ly whatever its options
    app = FastAPIOffline(title="audiofidelity evaluation service", version=__version__, lifespan=lifespan,
                         description="audioldm_eval's evaluation API (FAD, FD, KL, IS, KID, PSNR, SSIM, LSD) with a "
                                     "persistent job store.", static_url="/docs-assets", redoc_url=None,
                         swagger_ui_parameters={"validatorUrl": None})  # no call to swagger.io's validator
    app.mount("/ui", StaticFiles(directory=UI_DIR), name="ui")
    app.state.store, app.state.runner = store, runner
    app.add_middleware(RequestLimits, max_bytes=config.limits.max_request_bytes, timeout=config.request_timeout)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization"])

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": f"invalid request: {reasons}"}, status_code=400)  # as every other bad value

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server log"}, status_code=500)

    def token_given(authorization: str | None) -> bool:
        scheme, _, given = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), config.token.encode())

    @app.middleware("http")
    async def private_by_default(request: Request, call_next):
        """With ``--token-file`` every endpoint but ``/`` and ``/health`` needs ``Authorization: Bearer <token>``
        (job lists, results, model locations and the API docs included)."""
        path = request.url.path
        if config.token is not None and path not in PUBLIC_PATHS and not path.startswith(PUBLIC_PREFIXES) \
                and not token_given(request.headers.get("authorization")):
            return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.get("/", summary="Service information and endpoints (a browser gets the page for people)")
    def root(request: Request):
        if "text/html" in request.headers.get("accept", ""):
            return FileResponse(UI_DIR / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})
        return {"message": "audiofidelity evaluation service", "version": __version__,
                "endpoints": {"/health": "status, devices, loaded models, memory",
                              "/metrics": "available metrics", "/backbones": "available backbones",
                              "/models": "model artifacts: where they resolve, loaded or not",
                              "/evaluate": "POST: submit an evaluation job (multipart upload)",
                              "/jobs": "list jobs (paginated)", "/jobs/{job_id}": "GET a job's status and "
                              "results; DELETE it", "/docs": "API documentation"}}

    @app.get("/health", summary="Health, devices, loaded models and memory")
    def health() -> dict:
        import torch

        cuda = torch.cuda.is_available()
        return {"status": "healthy", "version": __version__, "cuda_available": cuda,
                "cuda_devices": torch.cuda.device_count() if cuda else 0, "pytorch_version": torch.__version__,
                "device": config.run.device, "models": {"loaded_models": runner.loaded_models()},
                "jobs": store.counts(), "worker_running": config.run_jobs, "memory": process_memory()}

    @app.get("/metrics", summary="Available metrics")
    def metrics() -> dict:
        api = api_names()
        return {"available_metrics": list(api.values()),
                "recommended": [api[m] for m in RECOMMENDED],
                "paired_only": [api[m] for m, spec in METRICS.items() if spec.paired_only],
                "descriptions": {api[m]: spec.help for m, spec in METRICS.items()},
                "result_keys": {api[m]: list(spec.keys) for m, spec in METRICS.items()},
                "by_backbone": {b: [api[m] for m in ms] for b, ms in BACKBONE_METRICS.items()},
                "opt_in": [api[m] for m in OPT_IN_METRICS]}

    @app.get("/backbones", summary="Available backbones")
    def backbones() -> dict:
        rates = registry.backbones()
        return {"available_backbones": sorted(rates), "sampling_rates": {b: list(r) for b, r in rates.items()},
                "descriptions": {b: backbone_description(b) for b in rates},
                "fad_models": {m.name: {"artifact": m.artifact, "toolkit": m.toolkit, "layer": m.layer}
                               for m in registry.fad_models().values()}}

    @app.get("/models", summary="Model artifacts: where each resolves, and whether it is loaded")
    def models() -> dict:
        loaded = set(runner.loaded_models())
        out = []
        for name in registry.names():
            entry = registry.registry_entry(name)
            where, path = models_cli.where(name, config.run.models_dir)
            out.append({"name": name, "role": entry.role, "backbone": entry.backbone, "rates": list(entry.rates),
                        "model_rate": entry.model_rate, "channels": entry.channels, "dimension": entry.dimension,
                        "rows": entry.frames, "serves": models_cli.serves(entry),
                        "license": entry.license, "resolves": where, "file": path.name if path else None,
                        "loaded": name in loaded})
        return {"models": out}

    upload_schema = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["generated_files", "reference_files"],
        "properties": {
            "generated_files": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "reference_files": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "backbone": {"type": "string", "default": DEFAULT_BACKBONE},
            "sampling_rate": {"type": "integer", "default": DEFAULT_SAMPLING_RATE},
            "fad_model": {"type": "string", "default": DEFAULT_FAD_MODEL, "description": "the embedding FAD reads"},
            "metrics": {"type": "string", "description": "comma list, e.g. FAD,ISc,FD (default: all)"},
            "limit_num": {"type": "integer", "description": "use only the first N files of each side"}}}}}}}

    @app.post("/evaluate", status_code=202, openapi_extra=upload_schema,
              summary="Submit an evaluation job: generated and reference audio files")
    async def submit(request: Request) -> JSONResponse:
        form = await request.form(max_files=config.limits.max_files, max_fields=100, max_part_size=64 * 1024)
        try:
            settings = _request_settings(form)
            files = {side: _uploads(form, side) for side in SIDES}
            job_id = uuid.uuid4().hex
            staging = incoming / job_id
            try:
                stored = {side: await run_in_threadpool(
                    store_side, side, [(f.filename, f.file) for f in files[side]], staging / side, config.limits)
                    for side in SIDES}
                mode = "paired" if is_paired(*[[f["name"] for f in stored[s]] for s in SIDES]) else "unpaired"
                request_record, created_at = {**settings, "uploads": stored}, now()
                write_request(staging, job_id, request_record, mode, created_at)
                os.replace(staging, jobs_dir / job_id)
            except UploadError as exc:
                raise HTTPException(exc.status, str(exc)) from None
            finally:
                discard(staging)
            store.add(job_id, request_record, mode, created_at=created_at)
        finally:
            await form.close()
        runner.wake()
        return JSONResponse({"job_id": job_id, "status": "queued", "evaluation_mode": mode,
                             "files": {side: len(stored[side]) for side in SIDES}, "url": f"/jobs/{job_id}"},
                            status_code=202, headers={"Location": f"/jobs/{job_id}"})

    @app.get("/jobs", summary="List jobs, newest first")
    def list_jobs(limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=MAX_OFFSET),
                  status: str | None = Query(None, description=f"one of {', '.join(STATUSES)}")) -> dict:
        if status is not None and status not in STATUSES:
            raise HTTPException(400, f"Invalid status '{status[:40]}'. Available: {list(STATUSES)}")
        jobs, total = store.list(limit=limit, offset=offset, status=status)
        following = offset + len(jobs)
        return {"jobs": [job_summary(j) for j in jobs], "total": total, "limit": limit, "offset": offset,
                "next_offset": following if following < total else None}

    @app.get("/jobs/{job_id}", summary="A job's status and, once finished, its results")
    def get_job(job_id: str) -> dict:
        job = store.get(job_id)
        if job is None:
            raise HTTPException(404, f"Job {job_id[:64]} not found")
        return job_view(job)

    @app.delete("/jobs/{job_id}", summary="Delete a job; a running one is stopped at its next chunk of files")
    def delete_job(job_id: str) -> JSONResponse:
        outcome = store.delete(job_id)
        if outcome is None:
            raise HTTPException(404, f"Job {job_id[:64]} not found")
        if outcome == "cancelling":  # the worker stops it, then removes it and its uploads
            return JSONResponse({"job_id": job_id, "deleted": False, "status": "cancelling"}, status_code=202)
        discard(jobs_dir / job_id)  # a known id: 32 hex digits
        return JSONResponse({"job_id": job_id, "deleted": True})

    return app


def lock_data_dir(data_dir: Path):
    """Hold an exclusive lock on the data folder for this process's life (``server.lock`` names the holder's pid).

    Raises ``ServerStateError`` naming the holder when another server has it: two servers on one folder would
    run the same jobs and delete each other's uploads."""
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    handle = open(data_dir / "server.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ServerStateError(f"the data folder {data_dir} is in use by another audiofidelity server (pid {holder}); "
                               f"stop that one, or give this one another --data-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def recover_store(data_dir: Path) -> str | None:
    """``--recover``: move a damaged job store aside and start a new one with the jobs still waiting in ``jobs/``
    queued again; what was done, in words (None when the store is sound)."""
    path = data_dir / STORE_FILE
    try:
        JobStore(path).close()
        return None
    except ServerStateError:
        moved = move_aside(path)
    store = JobStore(path)
    try:
        queued, unreadable = rebuild(store, data_dir / "jobs")
    finally:
        store.close()
    done = f"the damaged job store was moved to {moved.name}; "
    done += (f"{len(queued)} unfinished job(s) were rebuilt from their upload folders and queued again "
             f"({', '.join(queued)})" if queued else "starting with an empty store")
    if unreadable:
        done += f"; {len(unreadable)} upload folder(s) without a readable request are discarded"
    return done + "; the results of finished jobs were only in the damaged store"


def default_artifacts() -> list[str]:
    """The artifacts a request with the default settings needs, from the metric table and the registry: the
    backbone's at its rate when a default metric reads the classifier, the FAD model's when one reads FAD."""
    needs = {METRICS[m].needs for m in resolve_metrics(DEFAULT_BACKBONE, None)}
    named = {"classifier": registry.artifact_for(DEFAULT_BACKBONE, DEFAULT_SAMPLING_RATE).name,
             "fad": registry.fad_models()[DEFAULT_FAD_MODEL].artifact}
    return list(dict.fromkeys(artifact for need, artifact in named.items() if need in needs))


def missing_artifacts(models_dir: Path | None) -> list[str]:
    """The ``default_artifacts`` that resolve neither locally nor from the Hub or its cache."""
    return [name for name in default_artifacts() if models_cli.where(name, models_dir)[0].startswith("unavailable")]


def serve(config: ServerConfig, *, host: str = "127.0.0.1", port: int = 2600, recover: bool = False,
          lazy_models: bool = False) -> None:
    """Run the service with uvicorn until interrupted, holding the data folder's lock. Refuses to start when
    the default request's artifacts are missing (naming them and how to build them) unless ``lazy_models``."""
    import uvicorn

    from .connections import HeaderDeadlineH11

    os.umask(0o077)  # uploads, the job store and the cache this process writes: readable by its user only
    lock = lock_data_dir(config.data_dir)
    try:
        if recover and (done := recover_store(config.data_dir)):
            log.warning("%s", done)
        app = create_app(config)
        missing = [] if lazy_models else missing_artifacts(config.run.models_dir)
        if missing:
            raise ServerStateError(f"the models a default request needs are missing: {', '.join(missing)}. "
                                   f"{registry.build_instructions(missing)}\n(--lazy-models starts the server "
                                   f"anyway; requests that need a missing model then fail with this message)")
        uvicorn.run(app, host=host, port=port, log_level="info", timeout_keep_alive=5,
                    http=HeaderDeadlineH11, limit_concurrency=MAX_CONNECTIONS,
                    h11_max_incomplete_event_size=MAX_HEADER_BYTES)
    finally:
        lock.close()
