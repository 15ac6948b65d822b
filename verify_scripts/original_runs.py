"""Run an original package's script in its own virtualenv, with an optional cache of its outputs keyed by content.

A parity check runs the original (hear21passt, openl3 on TensorFlow, laion_clap, audiobox-aesthetics, msclap) as a
subprocess and compares the arrays it saves with ours. What the original writes depends only on its script, its
virtualenv and the bytes of its inputs. With ``$AUDIOFIDELITY_ORIGINALS_CACHE`` set (``.ci/run`` sets it once per
machine, as it builds the virtualenvs once), a run whose key is already there is read back instead of run again:
only our side, the code under test, runs on every CI stop. Unset, every run runs.

The key hashes the bytes of every ``*_original.py`` script (one may import another), the interpreter's path and the
distributions installed beside it (the virtualenv's folder name carries its pins; a package added later changes the
listing), the processor, and every argument: a path that exists by its content (a file's bytes, a folder's names and
bytes), any other argument as written. The output path is left out of the key; only a run that succeeded is kept,
with its output's digest: an entry whose output no longer has it, or that cannot be read, is run again.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from audiofidelity.artifacts import file_sha256

CACHE_ENV = "AUDIOFIDELITY_ORIGINALS_CACHE"
HERE = Path(__file__).resolve().parent


def _digest_path(path: Path, digest: "hashlib._Hash") -> None:
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file():
                digest.update(f"{child.relative_to(path).as_posix()}\0{file_sha256(child)}".encode())
    else:  # its name too: an original may report by file name
        digest.update(f"{path.name}\0{file_sha256(path)}".encode())


def _content(path: Path) -> str:
    digest = hashlib.sha256()
    _digest_path(path, digest)
    return digest.hexdigest()


def _environment(python: Path) -> list[str]:
    """The interpreter's path, the distributions its virtualenv holds (names with versions), and the processor and
    its core count (an original's float rounding can depend on them)."""
    root = python.parent.parent
    installed = sorted(p.name for p in root.glob("lib/python*/site-packages/*.dist-info"))
    cpu = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    return [str(python), *installed, platform.machine(), cpu, str(os.cpu_count())]


def run_key(python: Path, script: Path, args: list[str], output: Path) -> str:
    """The content key of running ``script`` under ``python`` with ``args`` (``output`` excluded)."""
    digest = hashlib.sha256()
    for original in sorted({script.resolve(), *HERE.glob("*_original.py")}):
        digest.update(original.name.encode() + b"\0")
        _digest_path(original, digest)
    digest.update(json.dumps(_environment(python)).encode())
    for arg in args:
        digest.update(b"\1")
        if arg == str(output):
            digest.update(b"<output>")
        elif os.path.exists(arg):
            _digest_path(Path(arg), digest)
        else:
            digest.update(arg.encode())
    return digest.hexdigest()


def run_original(python: str | Path, script: Path, args: list[str | Path], output: Path | None = None, *,
                 timeout: float | None = None) -> subprocess.CompletedProcess:
    """``python script *args``, which writes ``output`` (a file or a folder; default: the one absolute path among
    ``args`` that does not exist yet); from the cache when ``$AUDIOFIDELITY_ORIGINALS_CACHE`` holds the same run
    (its stdout and stderr as they were). Without the variable, or without one such output, it always runs."""
    python, args = Path(python), [str(a) for a in args]
    command = [str(python), str(script), *args]
    if output is None:
        new = [a for a in args if os.path.isabs(a) and not os.path.exists(a)]
        output = Path(new[0]) if len(new) == 1 else None
    cache = os.environ.get(CACHE_ENV)
    if not cache or output is None:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    entry = Path(cache) / run_key(python, script, args, output)
    said = _stored(entry)
    if said is not None:
        os.utime(entry)  # last use, for pruning
        _copy(entry / "output", output)
        return subprocess.CompletedProcess(command, 0, said["stdout"], said["stderr"])
    shutil.rmtree(entry, ignore_errors=True)  # absent, or damaged: run again
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode == 0 and output.exists():
        Path(cache).mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(dir=cache, prefix=f".{entry.name}."))
        _copy(output, partial / "output")
        (partial / "done.json").write_text(json.dumps({"stdout": done.stdout, "stderr": done.stderr,
                                                       "output": _content(partial / "output")}))
        try:
            partial.rename(entry)
        except OSError:  # another run stored the same key meanwhile
            shutil.rmtree(partial, ignore_errors=True)
    return done


def _stored(entry: Path) -> dict | None:
    """A cache entry's record when it is whole: readable, and its output still has the digest it was stored with."""
    try:
        said = json.loads((entry / "done.json").read_text())
        return said if _content(entry / "output") == said["output"] else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
