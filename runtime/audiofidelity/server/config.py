"""What ``audiofidelity serve`` is configured with (``ServerConfig``), and the folders it implies."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..validation import check_positive
from .uploads import UploadLimits
from .worker import RunSettings


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

    @property
    def jobs_dir(self) -> Path:
        """One folder per unfinished job: its uploads and ``request.json``."""
        return self.data_dir / "jobs"

    @property
    def incoming_dir(self) -> Path:
        """Uploads still being received; moved into ``jobs_dir`` whole once checked."""
        return self.data_dir / "incoming"
