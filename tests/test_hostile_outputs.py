"""Hostile outputs (#29 items 4 and 5): every file written is whole or absent, under exactly the name given; a
failed write names the file and leaves its previous content and no temporary file; no two inputs share an output.

A full disk is simulated by failing ``os.fsync`` / ``os.write`` on descriptors open on the output's file (read
back from ``/proc/self/fd``), the calls through which a full disk reports itself to a writer that checks;
refused permissions by failing ``os.replace`` (the tests run as root, which ``chmod`` does not stop).
"""
import errno
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from audiofidelity import cli
from audiofidelity.errors import OutputPathError
from audiofidelity.evaluate import evaluate
from conftest import linked_recordings

RUNTIME = Path(__file__).resolve().parents[1] / "runtime" / "audiofidelity"
NAMES = ["clip_00.wav", "clip_03.wav", "clip_07.flac"]


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _embed(folder: Path, models_dir: Path, *target: str) -> int:
    """``embed FOLDER`` with VGGish frames into ``target`` (``--out FILE`` or ``--out-dir DIR``)."""
    return cli.main(["embed", str(folder), "--model", "vggish", "--output", "frames", *target, "--models-dir",
                     str(models_dir), "--quiet"])


def _full_disk_on(monkeypatch, name: str) -> None:
    """``os.fsync`` and ``os.write`` fail with ENOSPC on descriptors open on ``name`` or a temporary file of it."""
    real_fsync, real_write = os.fsync, os.write

    def hit(fd) -> bool:
        try:
            opened = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        except OSError:
            return False
        return opened == name or opened.startswith(f".{name}.")

    def fsync(fd):
        if hit(fd if isinstance(fd, int) else fd.fileno()):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    def write(fd, data):
        if hit(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "write", write)


@pytest.fixture(scope="module")
def small(recordings_dir, tmp_path_factory):
    """Three paired clips (a FLAC among them)."""
    return linked_recordings(recordings_dir, tmp_path_factory.mktemp("hostile-small"), NAMES)


@pytest.fixture(scope="module")
def result(small, models_dir):
    return evaluate(small / "generated", small / "reference", metrics=["fad"], models_dir=models_dir, per_file=True,
                    progress=False)


# --- the helper ------------------------------------------------------------------------------------------------

def test_atomic_write_keeps_the_previous_content_when_the_disk_fills_mid_write(tmp_path):
    from audiofidelity.outputs import atomic_write

    target = tmp_path / "report.json"
    target.write_text("previous\n")
    target.chmod(0o640)

    def half_then_full(f):
        f.write(b'{"half": ')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OutputPathError, match=rf"--json {re.escape(str(target))}: cannot write it \(No space left "
                                              rf"on device\); its previous content is unchanged") as caught:
        atomic_write(target, half_then_full, option="--json")
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    assert target.read_text() == "previous\n" and _listing(tmp_path) == ["report.json"]
    with pytest.raises(OutputPathError, match="nothing was written"):
        atomic_write(tmp_path / "new.json", half_then_full, option="--json")
    assert _listing(tmp_path) == ["report.json"]
    atomic_write(target, lambda f: f.write(b"new\n"), option="--json")  # a replaced file keeps its mode
    assert target.read_text() == "new\n" and target.stat().st_mode & 0o777 == 0o640
    assert _listing(tmp_path) == ["report.json"]


def test_atomic_write_refused_or_impossible_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    from audiofidelity.outputs import atomic_write

    target = tmp_path / "stats.npz"
    target.write_bytes(b"previous")

    def refuse(source, destination):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(destination))

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", refuse)
        with pytest.raises(OutputPathError, match=rf"--out {re.escape(str(target))}: .*Permission denied") as caught:
            atomic_write(target, lambda f: f.write(b"new"), option="--out")
    assert caught.value.errno == errno.EACCES
    assert target.read_bytes() == b"previous" and _listing(tmp_path) == ["stats.npz"]
    under_a_file = target / "x.json"  # a real error, root or not
    with pytest.raises(OutputPathError, match=rf"--json {re.escape(str(under_a_file))}: .*Not a directory"):
        atomic_write(under_a_file, lambda f: f.write(b"{}"), option="--json")
    assert target.read_bytes() == b"previous"


def test_atomic_write_through_a_link_replaces_the_file_it_points_to(tmp_path):
    from audiofidelity.outputs import write_text

    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to("real.json")
    write_text(tmp_path / "link.json", "new", option="--json")
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "real.json").read_text() == "new"


def test_append_text_never_leaves_half_a_row(tmp_path, monkeypatch):
    from audiofidelity.outputs import append_text

    target = tmp_path / "runs.csv"
    target.write_bytes(b"a,b\r\n1,2\r\n")
    real_write = os.write

    def short(fd, data):  # the disk fills after half the row
        return real_write(fd, data[:len(data) // 2])

    for failing, reason in ((short, "No space left on device after 4 of 8 bytes"),
                            (lambda fd, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")),
                             "No space left on device")):
        with monkeypatch.context() as patch:
            patch.setattr(os, "write", failing)
            with pytest.raises(OutputPathError, match=rf"--csv {re.escape(str(target))}: cannot write it \({reason}\)"):
                append_text(target, "3,4567\r\n", option="--csv")
        assert target.read_bytes() == b"a,b\r\n1,2\r\n" and _listing(tmp_path) == ["runs.csv"]
    append_text(target, "3,4567\r\n", option="--csv")
    assert target.read_bytes() == b"a,b\r\n1,2\r\n3,4567\r\n"


# --- every output of the CLI and the API -----------------------------------------------------------------------

def test_eval_outputs_survive_a_full_disk_whole_and_named(small, models_dir, tmp_path, monkeypatch, capsys, result):
    out = tmp_path / "out"
    out.mkdir()
    options = {"--json": "report.json", "--csv": "runs.csv", "--save-features": "features.npz",
               "--per-file-csv": "per_file.csv"}
    argv = ["eval", str(small / "generated"), str(small / "reference"), "--metrics", "fad", "--models-dir",
            str(models_dir), "--quiet", *[a for option, name in options.items() for a in (option, str(out / name))]]
    assert cli.main(argv) == 0
    before = {name: (out / name).read_bytes() for name in options.values()}
    for option, name in options.items():
        with monkeypatch.context() as patch:
            _full_disk_on(patch, name)
            assert cli.main(argv) == 1, option
        error = capsys.readouterr().err
        assert f"{option} {out / name}: cannot write it (No space left on device)" in error, error
        assert (out / name).read_bytes() == before[name], option
        assert _listing(out) == sorted(options.values()), option
        if option == "--json":
            json.loads((out / name).read_text())


def test_api_writers_keep_the_previous_file_on_a_full_disk(result, tmp_path, monkeypatch):
    from audiofidelity.reporting import append_csv, write_per_file_csv
    from audiofidelity.stats import ReferenceStats

    stats = ReferenceStats.from_features({"fad": [np.ones((3, 2)), np.zeros((2, 2))]}, ["a", "b"], {})
    writers = {"features.npz": lambda p: result.save_features(p), "stats.npz": lambda p: stats.save(p),
               "runs.csv": lambda p: append_csv(p, result.report),
               "per_file.csv": lambda p: write_per_file_csv(p, result.report["per_file"])}
    for name, write in writers.items():
        write(tmp_path / name)
        previous = (tmp_path / name).read_bytes()
        with monkeypatch.context() as patch:
            _full_disk_on(patch, name)
            with pytest.raises(OutputPathError, match=re.escape(str(tmp_path / name))):
                write(tmp_path / name)
        assert (tmp_path / name).read_bytes() == previous, name
    assert _listing(tmp_path) == sorted(writers)


def test_no_module_writes_a_file_but_through_outputs():
    """Every file the package writes goes through ``outputs`` (atomic, exact name): no ``write_text``,
    ``np.savez``, ``np.save`` to a path or ``open(..., "w")`` elsewhere."""
    pattern = re.compile(r"\.write_(text|bytes)\(|np\.savez|np\.save\((?!f,)|open\([^)]*[\"'][wx]b?[\"']")
    allowed = {"server/uploads.py": 'open(target, "xb")'}  # exclusive create of a fresh upload, checked there
    found = []
    for path in sorted(RUNTIME.rglob("*.py")):
        relative = path.relative_to(RUNTIME).as_posix()
        if relative == "outputs.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and allowed.get(relative, "\0") not in line:
                found.append(f"{relative}:{number}: {line.strip()}")
    assert found == []


def test_outputs_are_written_under_exactly_the_name_given(result, tmp_path, small, models_dir):
    """``np.savez(path)`` appended ``.npz`` to a name without it (``stats --out`` passes its path to ``save``)."""
    from audiofidelity.metrics import GaussianStats
    from audiofidelity.sc09 import Classified, save_training
    from audiofidelity.stats import ReferenceStats, save_gaussian

    stats = ReferenceStats.from_features({"fad": [np.ones((3, 2)), np.zeros((2, 2))]}, ["a", "b"], {})
    stats.save(tmp_path / "reference.stats")
    save_gaussian(GaussianStats.from_features(np.eye(3)), tmp_path / "gaussian")
    result.save_features(tmp_path / "features")
    artifact = SimpleNamespace(manifest=SimpleNamespace(sha256="0" * 64, frontend={}))
    save_training(tmp_path / "train.data", Classified(["a"], np.ones((1, 10)) / 10, np.zeros((1, 4))), artifact)
    assert _embed(small / "reference", models_dir, "--out", str(tmp_path / "emb.data")) == 0
    names = ["emb.data", "features", "gaussian", "reference.stats", "train.data"]
    assert _listing(tmp_path) == names
    for name in names:
        with np.load(tmp_path / name) as data:
            assert data.files, name
    assert ReferenceStats.load(tmp_path / "reference.stats").roles["fad"].count == 5


# --- no two inputs to one output -------------------------------------------------------------------------------

def _inputs(recordings_dir: Path, folder: Path, names: list[str]) -> Path:
    folder.mkdir()
    for i, name in enumerate(names):
        (folder / name).symlink_to(recordings_dir / "reference" / NAMES[i % len(NAMES)])
    return folder


def test_embed_out_dir_refuses_inputs_that_would_share_a_file(recordings_dir, models_dir, tmp_path, capsys):
    folder = _inputs(recordings_dir, tmp_path / "in", ["a.flac", "a.wav", "a.wav.ogg", "b.wav"])
    assert _embed(folder, models_dir, "--out-dir", str(tmp_path / "dir")) == 2
    error = capsys.readouterr().err
    assert "a.flac and a.wav -> a.npy" in error and "a.wav.ogg" not in error and "nothing was computed" in error
    assert not (tmp_path / "dir").exists()


def test_embed_out_dir_writes_one_file_per_input_and_counts_them(recordings_dir, models_dir, tmp_path, capsys):
    folder = _inputs(recordings_dir, tmp_path / "in", ["a.wav", "a.wav.ogg", "b.flac", "sub"])
    (folder / "sub").unlink()
    (folder / "sub").mkdir()  # a folder named like no file is skipped, not a clash
    assert _embed(folder, models_dir, "--out-dir", str(tmp_path / "dir")) == 0
    summary = json.loads(capsys.readouterr().out)
    written = _listing(tmp_path / "dir" / "embeddings" / "vggish")
    assert written == ["a.npy", "a.wav.npy", "b.npy"] and summary["files"] == len(written)


def test_embed_out_keys_never_collide_with_the_formats_own(recordings_dir, models_dir, tmp_path, capsys):
    clashing = _inputs(recordings_dir, tmp_path / "clashing", ["a.wav", "files", "info"])
    out = tmp_path / "all.npz"
    assert _embed(clashing, models_dir, "--out", str(out)) == 2
    assert "files, info would overwrite --out's own keys" in capsys.readouterr().err and not out.exists()
    odd = _inputs(recordings_dir, tmp_path / "odd", ["allow_pickle", "file", "x.wav"])  # np.savez's own arguments
    assert _embed(odd, models_dir, "--out", str(out)) == 0
    assert json.loads(capsys.readouterr().out)["files"] == 3
    with np.load(out) as data:
        assert sorted(data.files) == ["allow_pickle", "file", "files", "info", "x.wav"]
        assert list(data["files"]) == ["allow_pickle", "file", "x.wav"] and data["file"].dtype == np.float32
