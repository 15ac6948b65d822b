"""Fetch original checkpoints from their upstream locations (``audiofidelity models build``, ``export.py
--download``).

A download streams into a hidden part file beside its target and becomes the target only whole and checked: its
length against the server's, its bytes against every digest known for them (the registry's sha256 pin, the sha256
a Hugging Face server states for an LFS file, an md5 a server states in its ETag), and never a web page. Anything
else removes the part file and raises ``DownloadError`` or ``ChecksumMismatchError`` naming the URL, so a half or
wrong file is never used and the next run starts clean.
"""
from __future__ import annotations

import glob
import hashlib
import http.client
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import IO, Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from audiofidelity._version import __version__
from audiofidelity.artifacts import file_sha256
from audiofidelity.errors import ChecksumMismatchError, DownloadError
from audiofidelity.registry import ArtifactEntry, extra_files

HF_PREFIX = "https://huggingface.co/"
VGGISH_PCA_FILE = "vggish_pca_params-970ea276.pth"
MERT_FILES = ["config.json", "preprocessor_config.json", "pytorch_model.bin", "model.safetensors"]
TIMEOUT_S = 60
CHUNK = 1 << 20


@dataclass(frozen=True)
class Digest:
    """A digest the downloaded bytes must have: ``algorithm`` (``sha256`` or ``md5``), its hex value and, in
    words, where it comes from."""

    algorithm: str
    value: str
    stated_by: str


def stated_digests(headers: list[Message]) -> list[Digest]:
    """The digests the server states in its response headers (redirects' included): Hugging Face's
    ``X-Linked-Etag`` (an LFS file's sha256) and Zenodo's ``ETag: "md5:<hex>"``."""
    found = []
    for h in headers:
        linked = (h.get("X-Linked-Etag") or "").strip('"W/ ')
        if re.fullmatch(r"[a-f0-9]{64}", linked):
            found.append(Digest("sha256", linked, "the sha256 the Hugging Face server states (X-Linked-Etag)"))
        etag = (h.get("ETag") or "").strip('"W/ ')
        if re.fullmatch(r"md5:[a-f0-9]{32}", etag):
            found.append(Digest("md5", etag[4:], "the md5 the server states (ETag)"))
    return found


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """urllib's redirect handling (at most 10, a loop refused) that keeps each redirect's headers (Hugging Face
    states an LFS file's sha256 on the redirect to its storage, not on the file's response) and refuses a redirect
    to anything but HTTP(S), or from HTTPS down to HTTP."""

    def __init__(self) -> None:
        self.headers: list[Message] = []

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Message,
                         newurl: str) -> urllib.request.Request | None:
        scheme, old = urllib.parse.urlsplit(newurl).scheme, urllib.parse.urlsplit(req.full_url).scheme
        if scheme not in ("http", "https") or (old == "https" and scheme == "http"):
            raise urllib.error.HTTPError(req.full_url, code, f"redirect to a {scheme}: URL refused", headers, fp)
        self.headers.append(headers)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open(url: str) -> tuple[http.client.HTTPResponse, list[Message]]:
    """The response to ``url`` (redirects followed) and the headers of every response on the way."""
    redirects = _CheckedRedirects()
    opener = urllib.request.build_opener(redirects)
    request = urllib.request.Request(url, headers={"User-Agent": f"audiofidelity/{__version__}"})
    response = opener.open(request, timeout=TIMEOUT_S)
    return response, [*redirects.headers, response.headers]


def _check_digests(url: str, target: Path, digests: list[Digest], sha256: str, md5: str) -> None:
    for d in digests:
        actual = sha256 if d.algorithm == "sha256" else md5
        if actual != d.value:
            raise ChecksumMismatchError(
                "{url}: the download's {algorithm} is {actual}, but {stated_by} is {expected}; nothing was kept "
                "(a changed or corrupt upstream file, or a proxy in the way)", url=url, path=target,
                algorithm=d.algorithm, actual=actual, expected=d.value, stated_by=d.stated_by)


@contextmanager
def locked(path: Path, *, url: str) -> Iterator[None]:
    """Hold the lock file ``path`` (created, with its folder) across processes: one download of a file, or one
    build of an artifact, at a time; a second waits, then finds the first one's result. Without ``fcntl``
    (Windows) nothing is locked and two such runs each do the whole work."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "w")
    except OSError as exc:
        raise DownloadError("cannot write into {path} ({reason}); set AUDIOFIDELITY_CACHE to a writable folder",
                            path=path.parent, reason=exc.strerror or str(exc), url=url) from None
    with handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def fetch_url(url: str, target: Path, expected_sha256: str | None = None, *, progress: bool = True,
              say: Callable[[str], None] = print) -> Path:
    """``url`` as ``target`` (kept when already there and matching what is pinned), downloaded and checked as the
    module says; returns ``target``.

    Raises
    ------
    DownloadError
        The server is unreachable, answers an error, a web page or a redirect loop, the transfer is cut short,
        or ``target``'s folder cannot be written or hold it (a full disk included).
    ChecksumMismatchError
        The bytes differ from a pinned or stated digest.
    """
    pinned = [Digest("sha256", expected_sha256, "the registry's pin")] if expected_sha256 else []
    with locked(target.parent / f".{target.name}.lock", url=url):
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*.part"):  # of a killed download
            stale.unlink(missing_ok=True)
        if target.is_file():
            if all(file_sha256(target) == d.value for d in pinned):
                say(f"{target.name}: the copy in {target.parent}")
                return target
            say(f"{target.name}: the copy in {target.parent} does not match its pin; downloading it again")
            target.unlink()
        say(f"{target.name}: downloading {url}")
        fd, part = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                sha256, md5, stated = _download(url, out, target, progress, say)
            _check_digests(url, target, [*pinned, *stated], sha256, md5)
            os.replace(part, target)
            if not pinned and not stated:
                say(f"{target.name}: no digest is published for it; its sha256 {sha256} is recorded in the "
                    f"manifest")
        finally:
            if os.path.exists(part):
                os.unlink(part)
    return target


def _download(url: str, out: IO[bytes], target: Path, progress: bool,
              say: Callable[[str], None]) -> tuple[str, str, list[Digest]]:
    """Stream ``url`` into ``out`` (saying its size first, refused when the folder has not the room); return the
    bytes' sha256 and md5 and the digests the server states."""
    from tqdm.auto import tqdm

    try:
        response, headers = _open(url)
    except urllib.error.HTTPError as exc:
        raise DownloadError("cannot download {url}: the server answered {code} {reason}", url=url,
                            code=exc.code, reason=exc.reason, path=target) from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError("cannot download {url}: {reason} (no network? build from a file at hand with "
                            "--source FILE)", url=url, reason=str(reason) or type(exc).__name__,
                            path=target) from None
    with response:
        kind = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind in ("text/html", "application/xhtml+xml"):
            raise DownloadError("cannot download {url}: the server answered a web page ({kind}), not a checkpoint "
                                "(a login, error or consent page)", url=url, kind=kind, path=target)
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        say(f"{target.name}: {total / 1e6:.1f} MB" if total is not None else f"{target.name}: size not stated")
        free = shutil.disk_usage(target.parent).free
        if total is not None and total > free:
            raise DownloadError("cannot download {url} into {path}: it is {size:.1f} MB and {free:.1f} MB are free "
                                "(free space there, or set AUDIOFIDELITY_CACHE)", url=url, path=target.parent,
                                size=total / 1e6, free=free / 1e6)
        sha256, md5, received = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress,
                  leave=False) as bar:
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, ValueError, http.client.HTTPException) as exc:  # a reset, a cut transfer
                    raise DownloadError("cannot download {url}: the transfer broke off after {received} bytes "
                                        "({reason}); nothing was kept", url=url, received=received,
                                        reason=type(exc).__name__, path=target) from None
                if not block:
                    break
                try:
                    out.write(block)
                except OSError as exc:
                    raise DownloadError("cannot write {path}: {reason}; nothing was kept (free space there, or "
                                        "set AUDIOFIDELITY_CACHE)", path=target.parent,
                                        reason=exc.strerror or str(exc), url=url) from None
                sha256.update(block)
                md5.update(block)
                received += len(block)
                bar.update(len(block))
    if total is not None and received != total:
        raise DownloadError("cannot download {url}: {received} of {total} bytes arrived; nothing was kept",
                            url=url, received=received, total=total, path=target)
    if received == 0:
        raise DownloadError("cannot download {url}: the server sent no bytes", url=url, path=target)
    return sha256.hexdigest(), md5.hexdigest(), stated_digests(headers)


def fetch_hf_folder(entry: ArtifactEntry, revision: str | None, *, say: Callable[[str], None] = print) -> Path:
    """Download a Hugging Face model folder (MERT) at a commit (``main`` when none is given or pinned: the commit
    it resolves to is the folder's name, recorded in the manifest); honours ``HF_HUB_OFFLINE`` and ``HF_HOME``."""
    from huggingface_hub import snapshot_download

    revision = revision or entry.source_revision
    if revision is None:
        say(f"{entry.name}: no upstream commit is pinned for it; taking {entry.source_url} at main and recording "
            f"the commit in the manifest")
    repo_id = entry.source_url[len(HF_PREFIX):]
    try:
        return Path(snapshot_download(repo_id, revision=revision or "main", allow_patterns=MERT_FILES))
    except Exception as exc:  # huggingface_hub raises several unrelated types for "not reachable / not cached"
        raise DownloadError("cannot fetch {url} at {revision}: {reason}", url=entry.source_url,
                            revision=revision or "main", reason=f"{type(exc).__name__}: {exc}") from None


def hf_commit(folder: Path) -> str | None:
    """The commit a Hugging Face snapshot folder holds (its name), or None for any other folder or file."""
    return folder.name if folder.is_dir() and re.fullmatch(r"[0-9a-f]{40}", folder.name) else None


def fetch_source(entry: ArtifactEntry, cache: Path, revision: str | None = None, *, progress: bool = True,
                 say: Callable[[str], None] = print) -> Path:
    """The original checkpoint of ``entry``, downloaded (or reused) under ``cache``."""
    if entry.source_url.startswith(HF_PREFIX) and "/resolve/" not in entry.source_url:
        return fetch_hf_folder(entry, revision, say=say)
    return fetch_url(entry.source_url, cache / entry.source_file, entry.source_sha256, progress=progress, say=say)


def fetch_extras(entry: ArtifactEntry, cache: Path, given: dict[str, Path | None], *, progress: bool = True,
                 say: Callable[[str], None] = print) -> dict[str, Path]:
    """The further upstream files ``entry`` is built with that are not ``given`` (VGGish's PCA, beside its
    checkpoint upstream; a tokenizer's files), downloaded (or reused) under ``cache``: option keyword -> path."""
    fetched = {}
    if entry.architecture == "vggish" and given.get("pca") is None:
        fetched["pca"] = fetch_url(entry.source_url.rsplit("/", 1)[0] + "/" + VGGISH_PCA_FILE, cache / VGGISH_PCA_FILE,
                                   progress=progress, say=say)
    for (key, file), url in zip(extra_files(entry).items(), entry.extra_urls):
        if given.get(key) is None:
            fetched[key] = fetch_url(url, cache / entry.name / file, progress=progress, say=say)
    return fetched
