"""Evaluation jobs in SQLite (WAL): they survive restarts, and none is ever dropped silently.

A job moves queued -> running -> completed | failed. ``recover`` runs at start-up: a job found
``running`` was cut off by a stop of the server; it is queued again (up to ``MAX_ATTEMPTS`` starts) or
failed with that reason, and either way the job says so in its ``notes``. A running job records its
``progress``; deleting it sets ``cancel_requested``, and the worker removes it at its next chunk.
"""
from __future__ import annotations

import builtins
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ServerStateError
from ..outputs import write_text

STATUSES = ("queued", "running", "completed", "failed")
REQUEST_FILE = "request.json"
"""A job's request, kept in its upload folder so a damaged store can be rebuilt (``rebuild``)."""
MAX_ATTEMPTS = 2
"""Starts a job gets: one interrupted run is retried, a second interruption fails it (no crash loops)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    request TEXT NOT NULL,
    evaluation_mode TEXT,
    report TEXT,
    error TEXT,
    notes TEXT NOT NULL DEFAULT '[]',
    progress TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at);
"""
_ADDED_COLUMNS = {"progress": "TEXT", "cancel_requested": "INTEGER NOT NULL DEFAULT 0"}
"""Columns a store written by an earlier version lacks: added at open."""


def now() -> str:
    """UTC time as ISO 8601 with microseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass
class Job:
    """One evaluation job: what was asked (``request``) and, once finished, the report or the error."""

    id: str
    status: str
    created_at: str
    request: dict
    evaluation_mode: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    report: dict | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    progress: dict | None = None
    cancel_requested: bool = False

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Job":
        values = dict(row)
        for column in ("request", "report", "progress"):
            values[column] = json.loads(values[column]) if values[column] else None
        values["notes"] = json.loads(values["notes"])
        values["cancel_requested"] = bool(values["cancel_requested"])
        return cls(**values)


def damaged_message(path: Path, why: str) -> str:
    return (f"the job store {path} is damaged ({why}); nothing was changed. Start with --recover to move it aside "
            f"and begin a new store with the unfinished jobs whose uploads remain (finished jobs' results are lost)")


def move_aside(path: Path) -> Path:
    """Rename a damaged store (and its WAL files) to ``<name>.damaged-<UTC time>``; return the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            source.rename(target.with_name(target.name + suffix))
    return target


def write_request(folder: Path, job_id: str, request: dict, evaluation_mode: str, created_at: str) -> None:
    """Keep a job's request beside its uploads (``request.json``): what ``rebuild`` queues again from."""
    record = {"job_id": job_id, "request": request, "evaluation_mode": evaluation_mode, "created_at": created_at}
    write_text(folder / REQUEST_FILE, json.dumps(record), option="job request")


def rebuild(store: "JobStore", jobs_dir: Path) -> tuple[list[str], list[str]]:
    """Queue again each job whose upload folder holds its ``request.json`` and both sides (after a damaged store
    was moved aside); (ids queued, folders that could not be read back, which start-up then discards)."""
    queued, unreadable = [], []
    for folder in sorted(p for p in jobs_dir.iterdir() if p.is_dir()) if jobs_dir.is_dir() else []:
        try:
            record = json.loads((folder / REQUEST_FILE).read_text())
            if record["job_id"] != folder.name or not all((folder / side).is_dir() for side in ("generated",
                                                                                                 "reference")):
                raise ValueError("not this folder's job, or a side is missing")
            note = f"{now()}: rebuilt from its upload folder after the job store was found damaged; queued again"
            store.add(folder.name, record["request"], record["evaluation_mode"], created_at=record["created_at"],
                      notes=[note])
        except (OSError, ValueError, KeyError, TypeError, sqlite3.Error):
            unreadable.append(folder.name)
        else:
            queued.append(folder.name)
    return queued, unreadable


class JobStore:
    """Thread-safe access to the jobs table of one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        if self.path.exists() and self.path.stat().st_size == 0:  # SQLite would silently start an empty store
            raise ServerStateError(damaged_message(self.path, "it is empty (0 bytes)"))
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            verdict = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise sqlite3.DatabaseError(verdict)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            present = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in present:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
        except sqlite3.DatabaseError as exc:
            raise ServerStateError(damaged_message(self.path, str(exc))) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, params: tuple) -> int:
        """Run one statement in its own transaction; the number of rows it changed."""
        with self._lock:
            return self._db.execute(sql, params).rowcount

    def add(self, job_id: str, request: dict, evaluation_mode: str, *, created_at: str | None = None,
            notes: list[str] | None = None) -> None:
        """Queue a new job."""
        self._write("INSERT INTO jobs (id, status, created_at, request, evaluation_mode, notes) "
                    "VALUES (?, 'queued', ?, ?, ?, ?)",
                    (job_id, created_at or now(), json.dumps(request), evaluation_mode, json.dumps(notes or [])))

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def list(self, *, limit: int, offset: int, status: str | None = None) -> tuple[list[Job], int]:
        """One page of jobs, newest first, and the total count (of that status)."""
        where, params = ("WHERE status = ?", (status,)) if status else ("", ())
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM jobs {where}", params).fetchone()[0]
            rows = self._db.execute(f"SELECT * FROM jobs {where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                                    (*params, limit, offset)).fetchall()
        return [Job.from_row(r) for r in rows], total

    def counts(self) -> dict[str, int]:
        """Number of jobs in each status."""
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {status: 0 for status in STATUSES} | {r[0]: r[1] for r in rows}

    def claim_next(self) -> Job | None:
        """Mark the oldest queued job running (one more attempt) and return it; None when none is queued."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at, id LIMIT 1"
                                       ).fetchone()
                if row is not None:
                    self._db.execute("UPDATE jobs SET status = 'running', started_at = ?, attempts = attempts + 1, "
                                     "progress = NULL WHERE id = ?", (now(), row[0]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return self.get(row[0]) if row is not None else None

    def set_progress(self, job_id: str, progress: dict) -> bool:
        """Record a running job's progress; False when its deletion was asked for (the run should stop)."""
        with self._lock:
            self._db.execute("UPDATE jobs SET progress = ? WHERE id = ? AND status = 'running'",
                             (json.dumps(progress), job_id))
            row = self._db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row is not None and not row[0]

    def complete(self, job_id: str, report: dict) -> bool:
        """Record the report; False (and the job removed) when its deletion was asked for meanwhile."""
        return self._finish(job_id, "UPDATE jobs SET status = 'completed', finished_at = ?, report = ?, "
                                    "evaluation_mode = ?, progress = NULL WHERE id = ?",
                            (now(), json.dumps(report), report.get("mode"), job_id))

    def fail(self, job_id: str, error: str) -> bool:
        """Record the error; False (and the job removed) when its deletion was asked for meanwhile."""
        return self._finish(job_id, "UPDATE jobs SET status = 'failed', finished_at = ?, error = ?, progress = NULL "
                                    "WHERE id = ?", (now(), error, job_id))

    def _finish(self, job_id: str, sql: str, params: tuple) -> bool:
        with self._lock:
            row = self._db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row[0]:
                self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
                return False
            self._db.execute(sql, params)
            return True

    def remove_cancelled(self, job_id: str) -> bool:
        """Remove a running job stopped because its deletion was asked for; whether it was removed."""
        return self._write("DELETE FROM jobs WHERE id = ? AND cancel_requested = 1", (job_id,)) == 1

    def delete(self, job_id: str) -> str | None:
        """Delete a job: ``"deleted"`` at once, or ``"cancelling"`` for a running one, which its worker stops and
        removes at its next chunk; None when there is no such job."""
        with self._lock:
            row = self._db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            if row[0] == "running":
                self._db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
                return "cancelling"
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        return "deleted"

    def ids(self, *statuses: str) -> set[str]:
        """The ids of the jobs in these statuses."""
        marks = ", ".join("?" * len(statuses))
        with self._lock:
            return {r[0] for r in self._db.execute(f"SELECT id FROM jobs WHERE status IN ({marks})", statuses)}

    def recover(self) -> builtins.list[Job]:  # builtins.: the method list above shadows the type here
        """After a restart: re-queue or fail each job left ``running``, noting why; returns those jobs. One whose
        deletion was asked for is deleted."""
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE status = 'running' AND cancel_requested = 1")
            rows = self._db.execute("SELECT * FROM jobs WHERE status = 'running'").fetchall()
        recovered = []
        for job in map(Job.from_row, rows):
            stamp = now()
            if job.attempts < MAX_ATTEMPTS:
                note = f"{stamp}: the server stopped during attempt {job.attempts}; queued again"
                self._write("UPDATE jobs SET status = 'queued', started_at = NULL, progress = NULL, notes = ? "
                            "WHERE id = ?",
                            (json.dumps([*job.notes, note]), job.id))
            else:
                note = f"{stamp}: the server stopped during attempt {job.attempts} of {MAX_ATTEMPTS}; not retried"
                self._write("UPDATE jobs SET status = 'failed', finished_at = ?, error = ?, notes = ?, progress = NULL "
                            "WHERE id = ?",
                            (stamp, f"interrupted {job.attempts} times by server stops; not retried",
                             json.dumps([*job.notes, note]), job.id))
            updated = self.get(job.id)
            assert updated is not None  # its row was just updated, before the service takes any request
            recovered.append(updated)
        return recovered
