"""The HTTP API (audioldm_eval's service endpoints, port 2600): the app, error bodies, auth, start-up recovery.

``create_app`` builds the state (job store, worker, configuration on ``app.state``), the middleware and the
error handlers, and includes the routes (``routes.py``). Every error answers JSON ``{"error": "<what went
wrong>"}``. ``POST /evaluate`` stores the uploads and queues a job (``202``); the worker (``worker.py``) runs it;
``GET /jobs/{id}`` reads it from the SQLite store (``jobstore.py``), across restarts.
"""
from __future__ import annotations

import fcntl
import hmac
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from .. import catalog, registry
from .._version import __version__
from ..errors import ServerStateError
from ..evaluate import METRICS, resolve_metrics
from ..models import DEFAULTS
from .config import ServerConfig
from .jobstore import JobStore, move_aside, rebuild
from .limits import RequestLimits
from .routes import DEFAULT_BACKBONE, DEFAULT_SAMPLING_RATE, UI_DIR, router
from .uploads import discard
from .worker import JobRunner

__all__ = ["ServerConfig", "create_app", "lock_data_dir", "missing_artifacts", "recover_store", "serve"]

log = logging.getLogger("audiofidelity.server")

STORE_FILE = "jobs.sqlite3"
PUBLIC_PATHS = frozenset({"/", "/health"})
"""What answers without the token when one is set."""
PUBLIC_PREFIXES = ("/ui/", "/docs-assets/")
"""Static files anyone may fetch: the page's script and style, swagger-ui's (no data, nothing server-specific)."""
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


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Recover jobs cut off by a stop, tidy the uploads, run the worker; at shutdown stop it and close the store."""
    config, store, runner = app.state.config, app.state.store, app.state.runner
    for job in store.recover():  # first, so a job failed here has its uploads tidied away below
        log.warning("job %s was running when the server stopped: now %s", job.id, job.status)
    _tidy(config.data_dir, store)
    if config.run_jobs:
        runner.start()
    yield
    runner.stop()
    store.close()


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return JSONResponse({"error": f"invalid request: {reasons}"}, status_code=400)  # as every other bad value


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("internal error on %s %s", request.method, request.url.path)
    return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server log"}, status_code=500)


def token_given(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (compared in constant time)."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


async def private_by_default(request: Request, call_next):
    """With ``--token-file`` every endpoint but ``/`` and ``/health`` needs ``Authorization: Bearer <token>``
    (job lists, results, model locations and the API docs included)."""
    token, path = request.app.state.config.token, request.url.path
    if token is not None and path not in PUBLIC_PATHS and not path.startswith(PUBLIC_PREFIXES) \
            and not token_given(request.headers.get("authorization"), token):
        return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    return await call_next(request)


def create_app(config: ServerConfig) -> FastAPI:
    """The FastAPI application for ``config``; its lifespan recovers interrupted jobs and runs the worker."""
    config.jobs_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(config.data_dir / STORE_FILE)

    from fastapi_offline import FastAPIOffline  # /docs from the package's files, no CDN

    # no /redoc: its script fetches a logo from cdn.redoc.ly whatever its options
    app = FastAPIOffline(title="audiofidelity evaluation service", version=__version__, lifespan=lifespan,
                         description="audioldm_eval's evaluation API (FAD, FD, KL, IS, KID, PSNR, SSIM, LSD) with a "
                                     "persistent job store.", static_url="/docs-assets", redoc_url=None,
                         swagger_ui_parameters={"validatorUrl": None})  # no call to swagger.io's validator
    app.mount("/ui", StaticFiles(directory=UI_DIR), name="ui")
    app.state.config, app.state.store = config, store
    app.state.runner = JobRunner(store, config.jobs_dir, config.run)
    app.add_middleware(RequestLimits, max_bytes=config.limits.max_request_bytes, timeout=config.request_timeout)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization"])
    app.middleware("http")(private_by_default)  # added last: the outermost, before CORS and the body limits
    # FastAPI's decorator registers a handler typed for its own exception (add_exception_handler's type wants one
    # for any Exception)
    app.exception_handler(HTTPException)(http_error)
    app.exception_handler(RequestValidationError)(invalid_request)
    app.exception_handler(Exception)(internal_error)
    app.include_router(router)
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
             "fad": registry.fad_models()[DEFAULTS.fad_model].artifact}
    return list(dict.fromkeys(artifact for need, artifact in named.items() if need in needs))


def missing_artifacts(models_dir: Path | None) -> list[str]:
    """The ``default_artifacts`` that resolve neither locally nor from the Hub or its cache."""
    return [name for name in default_artifacts() if catalog.where(name, models_dir)[0].startswith("unavailable")]


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
                                   f"{registry.build_instructions(missing, config.run.models_dir)}\n(--lazy-models "
                                   f"starts the server anyway; requests that need a missing model then fail with "
                                   f"this message)")
        uvicorn.run(app, host=host, port=port, log_level="info", timeout_keep_alive=5,
                    http=HeaderDeadlineH11, limit_concurrency=MAX_CONNECTIONS,
                    h11_max_incomplete_event_size=MAX_HEADER_BYTES)
    finally:
        lock.close()
