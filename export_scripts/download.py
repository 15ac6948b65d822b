"""Fetch original checkpoints from their upstream locations for ``export.py --download``."""
from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from audiofidelity.artifacts import file_sha256
from audiofidelity.registry import ArtifactEntry

HF_PREFIX = "https://huggingface.co/"
VGGISH_PCA_FILE = "vggish_pca_params-970ea276.pth"
MERT_FILES = ["config.json", "preprocessor_config.json", "pytorch_model.bin", "model.safetensors"]


def fetch_url(url: str, target: Path, expected_sha256: str | None = None) -> Path:
    """Download ``url`` to ``target`` atomically (kept if already there and matching); check the sha256 if pinned."""
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, out, length=1 << 22)
            os.replace(tmp, target)
        except OSError as exc:
            raise SystemExit(f"cannot download {url}: {exc}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    if expected_sha256 is not None and file_sha256(target) != expected_sha256:
        actual = file_sha256(target)
        target.unlink()
        raise SystemExit(f"{url}: downloaded sha256 {actual}, the registry pins {expected_sha256}; removed {target}")
    return target


def fetch_hf_folder(entry: ArtifactEntry, revision: str | None) -> Path:
    """Download a Hugging Face model folder (MERT) at a commit; honours HF_HUB_OFFLINE and HF_HOME."""
    from huggingface_hub import snapshot_download

    revision = revision or entry.source_revision
    if revision is None:
        raise SystemExit(f"the registry pins no upstream revision for {entry.name}; pass --revision COMMIT "
                         f"(a commit of {entry.source_url}) so the export records exactly what it used")
    repo_id = entry.source_url[len(HF_PREFIX):]
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=MERT_FILES))
    except Exception as exc:  # huggingface_hub raises several unrelated types for "not reachable / not cached"
        raise SystemExit(f"cannot fetch {repo_id} at {revision}: {type(exc).__name__}: {exc}") from None


def fetch_source(entry: ArtifactEntry, cache: Path, revision: str | None = None) -> Path:
    """The original checkpoint of ``entry``, downloaded (or reused) under ``cache``."""
    if entry.source_url.startswith(HF_PREFIX):
        return fetch_hf_folder(entry, revision)
    return fetch_url(entry.source_url, cache / entry.source_file, entry.source_sha256)
