"""The cache of the originals' runs (``verify_scripts/original_runs.py``): a run is read back only when its script,
its interpreter and the bytes of its inputs are those of a stored one that succeeded."""
from __future__ import annotations

import sys

import pytest

import original_runs

FAKE = """import os, sys
with open(os.environ["RUNS_LOG"], "a") as log:
    log.write("ran\\n")
data = open(sys.argv[1], "rb").read()
if data == b"fail":
    sys.exit("refused")
open(sys.argv[2], "wb").write(data[::-1])
print("stdout of", len(data))
"""


@pytest.fixture()
def fake(tmp_path, monkeypatch):
    script = tmp_path / "fake_original.py"
    script.write_text(FAKE)
    monkeypatch.setenv("RUNS_LOG", str(tmp_path / "runs.log"))
    (tmp_path / "runs.log").write_text("")
    return script


def runs(tmp_path) -> int:
    return len((tmp_path / "runs.log").read_text().splitlines())


def call(script, source, out):
    out.parent.mkdir(exist_ok=True)
    return original_runs.run_original(sys.executable, script, [source, out])


def test_without_the_cache_every_run_runs(fake, tmp_path, monkeypatch):
    monkeypatch.delenv(original_runs.CACHE_ENV, raising=False)
    (tmp_path / "in.bin").write_bytes(b"abc")
    for i in range(2):
        assert call(fake, tmp_path / "in.bin", tmp_path / f"out{i}.bin").returncode == 0
    assert runs(tmp_path) == 2


def test_the_same_run_is_read_back_and_a_changed_input_runs_again(fake, tmp_path, monkeypatch):
    monkeypatch.setenv(original_runs.CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "in.bin").write_bytes(b"abc")
    first = call(fake, tmp_path / "in.bin", tmp_path / "a" / "out.bin")
    again = call(fake, tmp_path / "in.bin", tmp_path / "b" / "out.bin")  # another output path: the same run
    assert runs(tmp_path) == 1 and (tmp_path / "b" / "out.bin").read_bytes() == b"cba"
    assert again.returncode == 0 and again.stdout == first.stdout == "stdout of 3\n"
    (tmp_path / "in.bin").write_bytes(b"abd")  # same size, one byte changed
    call(fake, tmp_path / "in.bin", tmp_path / "c" / "out.bin")
    assert runs(tmp_path) == 2 and (tmp_path / "c" / "out.bin").read_bytes() == b"dba"
    fake.write_text(FAKE + "\n")  # the original's script changed
    call(fake, tmp_path / "in.bin", tmp_path / "d" / "out.bin")
    assert runs(tmp_path) == 3


def test_a_failed_run_is_not_kept(fake, tmp_path, monkeypatch):
    monkeypatch.setenv(original_runs.CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "in.bin").write_bytes(b"fail")
    for name in ("a", "b"):
        done = call(fake, tmp_path / "in.bin", tmp_path / f"{name}.bin")
        assert done.returncode == 1 and "refused" in done.stderr
    assert runs(tmp_path) == 2 and [p.name for p in (tmp_path / "cache").glob("*")] == []


def test_the_output_is_the_one_argument_that_does_not_exist_yet(fake, tmp_path, monkeypatch):
    monkeypatch.setenv(original_runs.CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "in.bin").write_bytes(b"xyz")
    for name in ("a", "b"):
        original_runs.run_original(sys.executable, fake, [tmp_path / "in.bin", tmp_path / f"{name}.bin"])
    assert runs(tmp_path) == 1 and (tmp_path / "b.bin").read_bytes() == b"zyx"


@pytest.mark.parametrize("damage", ["output", "record"])
def test_a_damaged_entry_is_run_again(fake, tmp_path, monkeypatch, damage):
    monkeypatch.setenv(original_runs.CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "in.bin").write_bytes(b"abc")
    call(fake, tmp_path / "in.bin", tmp_path / "a" / "out.bin")
    (entry,) = (tmp_path / "cache").iterdir()
    (entry / ("output" if damage == "output" else "done.json")).write_bytes(b"tampered")
    again = call(fake, tmp_path / "in.bin", tmp_path / "b" / "out.bin")
    assert again.returncode == 0 and runs(tmp_path) == 2 and (tmp_path / "b" / "out.bin").read_bytes() == b"cba"
    call(fake, tmp_path / "in.bin", tmp_path / "c" / "out.bin")  # stored whole again
    assert runs(tmp_path) == 2


@pytest.mark.parametrize("writer", ["openl3 clips", "passt pairs", "toolkit clips"])
def test_what_the_parity_tier_feeds_an_original_is_the_same_bytes_every_run(writer, tmp_path):
    """The cache keys a run by its inputs' bytes: a test input that changes from run to run (libsndfile stamps a
    float WAV's PEAK chunk with the time of writing) runs its original on every CI stop. Written twice, a second
    apart: the same bytes."""
    import time

    from test_fad_models import write_clips
    from test_openl3 import write_clips as openl3_clips
    from test_passt_feedings import write_pairs

    write = {"openl3 clips": openl3_clips, "passt pairs": write_pairs,
             "toolkit clips": lambda root: write_clips(root / "c", 44100, [0.3, 1.2], channels=2, seed=5)}[writer]
    found = []
    for run in ("first", "second"):
        if found:
            time.sleep(1.1)
        (tmp_path / run).mkdir()
        write(tmp_path / run)
        assert any(p.is_file() for p in (tmp_path / run).rglob("*"))
        found.append(original_runs._content(tmp_path / run))  # the key's digest of a folder: names and bytes
    assert found[0] == found[1]
