"""The service's routes: module-level functions on ``router``, each given what it uses through ``Depends``.

The providers (``get_config``, ``get_store``, ``get_runner``, ``get_limits``) read ``request.app.state``, which
``app.create_app`` fills; a test can call a route with its own values or override a provider
(``app.dependency_overrides``). Every error is ``HTTPException``, which the app answers as ``{"error": ...}``.
"""
from __future__ import annotations

import os
import resource
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from .. import catalog, registry
from .._version import __version__
from ..evaluate import BACKBONE_METRICS, METRICS, OPT_IN_METRICS, SIDES, is_paired, resolve_metrics
from ..models import DEFAULTS
from ..metric_table import api_names
from ..plots import PlotUnavailableError, report_figures, svg_bytes
from ..settings import check_captions
from ..validation import check_int, check_optional
from .config import ServerConfig
from .jobstore import STATUSES, Job, JobStore, now, write_request
from .uploads import UploadError, UploadLimits, discard, store_captions, store_side
from .worker import JobRunner

RECOMMENDED = ("fad", "isc")
DEFAULT_BACKBONE, DEFAULT_SAMPLING_RATE = DEFAULTS.backbone, DEFAULTS.sample_rate
"""What a request naming no backbone or rate gets (audioldm_eval's defaults, ``models.DEFAULTS``)."""
UI_DIR = Path(__file__).with_name("ui")
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
"""Content-Security-Policy of the page at ``/``: its own script and style only, nothing from elsewhere."""
MAX_OFFSET = 2**62
"""Largest ``/jobs`` offset (SQLite's integers are 64-bit: a larger one was a 500 OverflowError)."""


def get_config(request: Request) -> ServerConfig:
    """The server's configuration."""
    return request.app.state.config


def get_store(request: Request) -> JobStore:
    """The job store."""
    return request.app.state.store


def get_runner(request: Request) -> JobRunner:
    """The worker that runs jobs (and holds the loaded models)."""
    return request.app.state.runner


Config = Annotated[ServerConfig, Depends(get_config)]
Store = Annotated[JobStore, Depends(get_store)]
Runner = Annotated[JobRunner, Depends(get_runner)]


def get_limits(config: Config) -> UploadLimits:
    """What an upload may be."""
    return config.limits


Limits = Annotated[UploadLimits, Depends(get_limits)]


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
    """A backbone in words, from its family's declarations: the artifact serving each of its rates (and the rate
    audio is resampled to for the model, when another), what it is, and its licence."""
    served: dict[str, list[int]] = {}
    for rate in registry.backbones()[backbone]:
        served.setdefault(registry.artifact_for(backbone, rate).name, []).append(rate)
    described = []
    for name, rates in served.items():
        entry = registry.registry_entry(name)
        resampled = f", resampled to {_khz([entry.model_rate])}" if entry.model_rate not in (0, *rates) else ""
        described.append(f"{name} at {_khz(rates)}{resampled}: {entry.description or entry.origin} ({entry.license})")
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
    fad_model = str(form.get("fad_model") or DEFAULTS.fad_model)
    if fad_model not in registry.fad_models():
        raise HTTPException(400, f"Invalid fad_model '{fad_model[:40]}'. Available: {list(registry.fad_models())}")
    return {"backbone": backbone, "sampling_rate": rate, "limit_num": limit, "fad_model": fad_model,
            "metrics": parse_metrics(form.get("metrics"), backbone)}


SERVICE_NAMES = {"captions": "a captions upload", "fad_model": "fad_model", "metrics": "metrics (CLAP_SCORE)"}
"""How ``check_captions`` names this service's form fields."""


def _captions_upload(form, settings: dict) -> UploadFile | None:
    """The captions file of a submission (``captions``), checked against its metrics and FAD model."""
    upload = form.get("captions")
    if upload is not None and not isinstance(upload, UploadFile):
        raise HTTPException(400, "captions must be a file upload")
    metrics = settings["metrics"] or resolve_metrics(settings["backbone"], None)
    try:
        check_captions(metrics, (upload.filename or "captions") if upload is not None else None,
                       registry.fad_model(settings["fad_model"]), names=SERVICE_NAMES)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return upload


def _uploads(form, side: str, *, required: bool = True) -> list[UploadFile]:
    """The files of one side, sent as ``<side>_files`` or ``<side>_files[]`` (none allowed unless ``required``)."""
    items = form.getlist(f"{side}_files") + form.getlist(f"{side}_files[]")
    if any(not isinstance(item, UploadFile) for item in items):
        raise HTTPException(400, f"{side}_files must be file uploads")
    if not items and required:
        free = ", ".join(api_names()[m] for m in METRICS if METRICS[m].reference_free)
        raise HTTPException(400, f"No {side} files provided" + (
            f" (only reference-free metrics, {free}, run without them)" if side == "reference" else ""))
    return items


def _reference_free(settings: dict) -> bool:
    """Whether every metric of a submission runs without a reference (its reference files are then optional)."""
    return all(METRICS[m].reference_free for m in settings["metrics"] or resolve_metrics(settings["backbone"], None))


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
            "fad_model": job.request.get("fad_model", DEFAULTS.fad_model),
            "requested_metrics": job.request["metrics"], "limit_num": job.request["limit_num"],
            "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
            "attempts": job.attempts, "notes": job.notes, "uploads": job.request["uploads"],
            "captions": job.request.get("captions"),
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


router = APIRouter()


@router.get("/", summary="Service information and endpoints (a browser gets the page for people)")
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


@router.get("/health", summary="Health, devices, loaded models and memory")
def health(config: Config, store: Store, runner: Runner) -> dict:
    import torch

    cuda = torch.cuda.is_available()
    return {"status": "healthy", "version": __version__, "cuda_available": cuda,
            "cuda_devices": torch.cuda.device_count() if cuda else 0, "pytorch_version": torch.__version__,
            "device": config.run.device, "models": {"loaded_models": runner.loaded_models()},
            "jobs": store.counts(), "worker_running": config.run_jobs, "memory": process_memory()}


@router.get("/metrics", summary="Available metrics")
def metrics() -> dict:
    api = api_names()
    return {"available_metrics": list(api.values()),
            "recommended": [api[m] for m in RECOMMENDED],
            "paired_only": [api[m] for m, spec in METRICS.items() if spec.paired_only],
            "descriptions": {api[m]: spec.help for m, spec in METRICS.items()},
            "result_keys": {api[m]: list(spec.keys) for m, spec in METRICS.items()},
            "by_backbone": {b: [api[m] for m in ms] for b, ms in BACKBONE_METRICS.items()},
            "opt_in": [api[m] for m in OPT_IN_METRICS]}


@router.get("/backbones", summary="Available backbones")
def backbones() -> dict:
    rates = registry.backbones()
    return {"available_backbones": sorted(rates), "sampling_rates": {b: list(r) for b, r in rates.items()},
            "descriptions": {b: backbone_description(b) for b in rates},
            "fad_models": {m.name: {"artifact": m.artifact, "toolkit": m.toolkit, "layer": m.layer}
                           for m in registry.fad_models().values()}}


@router.get("/models", summary="Model artifacts: where each resolves, and whether it is loaded")
def models(config: Config, runner: Runner) -> dict:
    loaded = set(runner.loaded_models())
    out = []
    for name in registry.names():
        entry = registry.registry_entry(name)
        where, path = catalog.where(name, config.run.models_dir)
        out.append({"name": name, "role": entry.role, "backbone": entry.backbone, "rates": list(entry.rates),
                    "model_rate": entry.model_rate, "channels": entry.channels, "dimension": entry.dimension,
                    "rows": entry.frames, "serves": catalog.serves(entry),
                    "license": entry.license, "resolves": where, "file": path.name if path else None,
                    "loaded": name in loaded})
    return {"models": out}


UPLOAD_SCHEMA = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["generated_files"],
    "properties": {
        "generated_files": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "reference_files": {"type": "array", "items": {"type": "string", "format": "binary"},
                            "description": "required unless every metric asked for is reference-free"},
        "backbone": {"type": "string", "default": DEFAULT_BACKBONE},
        "sampling_rate": {"type": "integer", "default": DEFAULT_SAMPLING_RATE},
        "fad_model": {"type": "string", "default": DEFAULTS.fad_model, "description": "the embedding FAD reads"},
        "metrics": {"type": "string", "description": "comma list, e.g. FAD,ISc,FD (default: all)"},
        "captions": {"type": "string", "format": "binary",
                     "description": "CLAP_SCORE: the captions the generated files were made from (JSON object or "
                                    "CSV of file or id -> caption)"},
        "limit_num": {"type": "integer", "description": "use only the first N files of each side"}}}}}}}
"""``POST /evaluate``'s body for the API docs (the route reads the form itself, to bound it)."""


@router.post("/evaluate", status_code=202, openapi_extra=UPLOAD_SCHEMA,
             summary="Submit an evaluation job: generated and reference audio files")
async def submit(request: Request, config: Config, store: Store, runner: Runner, limits: Limits) -> JSONResponse:
    form = await request.form(max_files=limits.max_files, max_fields=100, max_part_size=64 * 1024)
    try:
        settings = _request_settings(form)
        files = {side: _uploads(form, side, required=side == "generated" or not _reference_free(settings))
                 for side in SIDES}
        captions = _captions_upload(form, settings)
        job_id = uuid.uuid4().hex
        staging = config.incoming_dir / job_id
        try:
            stored = {side: await run_in_threadpool(
                store_side, side, [(f.filename, f.file) for f in files[side]], staging / side, limits)
                for side in SIDES}
            names = {side: [f["name"] for f in stored[side]] for side in SIDES}
            mode = "reference-free" if not names["reference"] \
                else "paired" if is_paired(names["generated"], names["reference"]) else "unpaired"
            extra = {}
            if captions is not None:
                extra["captions"] = await run_in_threadpool(store_captions, captions.filename, captions.file,
                                                            staging / "captions", limits)
            request_record, created_at = {**settings, "uploads": stored, **extra}, now()
            write_request(staging, job_id, request_record, mode, created_at)
            os.replace(staging, config.jobs_dir / job_id)
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


@router.get("/jobs", summary="List jobs, newest first")
def list_jobs(store: Store, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=MAX_OFFSET),
              status: str | None = Query(None, description=f"one of {', '.join(STATUSES)}")) -> dict:
    if status is not None and status not in STATUSES:
        raise HTTPException(400, f"Invalid status '{status[:40]}'. Available: {list(STATUSES)}")
    jobs, total = store.list(limit=limit, offset=offset, status=status)
    following = offset + len(jobs)
    return {"jobs": [job_summary(j) for j in jobs], "total": total, "limit": limit, "offset": offset,
            "next_offset": following if following < total else None}


@router.get("/jobs/{job_id}", summary="A job's status and, once finished, its results")
def get_job(job_id: str, store: Store) -> dict:
    job = store.get(job_id)
    if job is None:
        raise HTTPException(404, f"Job {job_id[:64]} not found")
    return job_view(job)


@router.get("/jobs/{job_id}/plots", summary="A finished job's pictures (SVG): MERT's per-layer FD, the FAD∞ fits")
def job_plots(job_id: str, store: Store) -> dict:
    job = store.get(job_id)
    if job is None:
        raise HTTPException(404, f"Job {job_id[:64]} not found")
    if job.report is None:
        raise HTTPException(409, f"Job {job.id} has no report to draw: it is {job.status}")
    try:  # matplotlib (the plot extra) is imported on the first picture
        figures = report_figures(job.report)
    except PlotUnavailableError as exc:
        raise HTTPException(501, str(exc)) from None
    return {"job_id": job.id, "plots": [{"name": name, "svg": svg_bytes(figure).decode()}
                                        for name, figure in figures.items()]}


@router.delete("/jobs/{job_id}", summary="Delete a job; a running one is stopped at its next chunk of files")
def delete_job(job_id: str, config: Config, store: Store) -> JSONResponse:
    outcome = store.delete(job_id)
    if outcome is None:
        raise HTTPException(404, f"Job {job_id[:64]} not found")
    if outcome == "cancelling":  # the worker stops it, then removes it and its uploads
        return JSONResponse({"job_id": job_id, "deleted": False, "status": "cancelling"}, status_code=202)
    discard(config.jobs_dir / job_id)  # a known id: 32 hex digits
    return JSONResponse({"job_id": job_id, "deleted": True})
