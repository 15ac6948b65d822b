"""Downloads of original checkpoints (``audiofidelity.exporters.download``) from a loopback stand-in of the upstream
servers: a file becomes the target only whole and checked, and every way a server fails is refused by name with
nothing left behind, so the next run starts clean."""
from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from audiofidelity.errors import ChecksumMismatchError, DownloadError
from audiofidelity.exporters.download import fetch_url

from upstream import Upstream

URL = "https://zenodo.org/record/1/files/Model%3D0.5.pth"
DATA = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture()
def upstream():
    with Upstream() as server:
        yield server


def _left(folder):
    """What a download left in ``folder``, its lock file aside."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


def test_a_whole_file_is_kept_and_reused_without_a_second_request(upstream, tmp_path):
    local = upstream.serve(URL, DATA)
    said = []
    target = fetch_url(local, tmp_path / "Model=0.5.pth", hashlib.sha256(DATA).hexdigest(), progress=False,
                       say=said.append)
    assert target.read_bytes() == DATA and _left(tmp_path) == ["Model=0.5.pth"]
    assert said == [f"Model=0.5.pth: downloading {local}", "Model=0.5.pth: 1.0 MB"]  # its size, as stated
    fetch_url(local, target, hashlib.sha256(DATA).hexdigest(), progress=False, say=said.append)
    assert len(upstream.requests) == 1 and said[2:] == [f"Model=0.5.pth: the copy in {tmp_path}"]


def test_an_unpinned_file_says_its_sha256_is_recorded(upstream, tmp_path):
    said = []
    fetch_url(upstream.serve(URL, DATA), tmp_path / "m.pth", progress=False, say=said.append)
    assert hashlib.sha256(DATA).hexdigest() in said[-1] and "no digest is published" in said[-1]


def test_bytes_that_differ_from_the_pin_are_refused_and_nothing_is_kept(upstream, tmp_path):
    with pytest.raises(ChecksumMismatchError) as caught:
        fetch_url(upstream.serve(URL, DATA), tmp_path / "m.pth", "0" * 64, progress=False)
    assert caught.value.expected == "0" * 64 and caught.value.actual == hashlib.sha256(DATA).hexdigest()
    assert "the registry's pin" in str(caught.value) and _left(tmp_path) == []


def test_a_copy_that_no_longer_matches_its_pin_is_downloaded_again(upstream, tmp_path):
    (tmp_path / "m.pth").write_bytes(b"rotten")
    said = []
    fetch_url(upstream.serve(URL, DATA), tmp_path / "m.pth", hashlib.sha256(DATA).hexdigest(), progress=False,
              say=said.append)
    assert (tmp_path / "m.pth").read_bytes() == DATA and "does not match its pin" in said[0]


def test_the_sha256_a_hugging_face_server_states_is_checked(upstream, tmp_path):
    good = upstream.serve("https://huggingface.co/a/b/resolve/main/good.pt", DATA,
                          fault="stated:" + hashlib.sha256(DATA).hexdigest())
    assert fetch_url(good, tmp_path / "good.pt", progress=False).read_bytes() == DATA
    bad = upstream.serve("https://huggingface.co/a/b/resolve/main/bad.pt", DATA, fault="stated:" + "1" * 64)
    with pytest.raises(ChecksumMismatchError, match="X-Linked-Etag"):
        fetch_url(bad, tmp_path / "bad.pt", progress=False)
    assert _left(tmp_path) == ["good.pt"]


@pytest.mark.parametrize("fault,match", [
    ("html", r"answered a web page \(text/html\), not a checkpoint"),
    ("loop", r"answered 302 .*infinite loop"),
    ("404", r"answered 404"),
    ("cut", r"(broke off after|of 1048576 bytes arrived)"),
    ("chunked-cut", r"broke off after"),
    ("huge", r"it is 1000000000000\.0 MB and .* MB are free"),
    ("redirect:file:///etc/passwd", r"answered 302 .*'file:///etc/passwd' is not allowed"),  # urllib's own
    ("redirect:ftp://127.0.0.1/x", r"redirect to a ftp: URL refused"),
])
def test_a_failing_server_is_refused_by_name_and_nothing_is_kept(upstream, tmp_path, fault, match):
    local = upstream.serve(URL, DATA, fault=fault)
    with pytest.raises(DownloadError, match=match) as caught:
        fetch_url(local, tmp_path / "m.pth", progress=False)
    assert caught.value.url == local and _left(tmp_path) == []


def test_a_server_that_dies_mid_download_leaves_nothing_and_the_next_run_starts_clean(upstream, tmp_path):
    local = upstream.serve(URL, DATA, fault="die")
    with pytest.raises(DownloadError):
        fetch_url(local, tmp_path / "m.pth", progress=False)
    assert _left(tmp_path) == []
    with pytest.raises(DownloadError, match="no network"):  # gone: refused, not hanging
        fetch_url(local, tmp_path / "m.pth", progress=False)
    with Upstream() as again:
        assert fetch_url(again.serve(URL, DATA), tmp_path / "m.pth", progress=False).read_bytes() == DATA


def test_no_network_is_a_clear_error(tmp_path):
    with pytest.raises(DownloadError, match=r"no network\? build from a file at hand with --source FILE"):
        fetch_url("http://127.0.0.1:9/x.pth", tmp_path / "x.pth", progress=False)


def test_a_folder_that_cannot_be_written_is_named(upstream, tmp_path):
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(DownloadError, match="cannot write into .*AUDIOFIDELITY_CACHE") as caught:
        fetch_url(upstream.serve(URL, DATA), tmp_path / "file" / "sub" / "m.pth", progress=False)
    assert caught.value.path == tmp_path / "file" / "sub"


def test_a_full_disk_is_named_and_leaves_nothing(upstream, tmp_path):
    """A file-size limit (RLIMIT_FSIZE) stands in for a full disk: the write fails mid-download as it would."""
    local = upstream.serve(URL, DATA)
    code = ("import resource, sys; from pathlib import Path; resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536));"
            "from audiofidelity.exporters.download import fetch_url; from audiofidelity.errors import DownloadError\n"
            "try: fetch_url(sys.argv[1], Path(sys.argv[2]), progress=False)\n"
            "except DownloadError as exc: print(exc); sys.exit(3)")
    done = subprocess.run([sys.executable, "-c", code, local, str(tmp_path / "m.pth")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert "cannot write" in done.stdout and "nothing was kept" in done.stdout and _left(tmp_path) == []


def test_an_md5_the_server_states_in_its_etag_is_checked(upstream, tmp_path):
    good = upstream.serve("https://zenodo.org/records/1/files/good.pth", DATA,
                          fault="etag:" + hashlib.md5(DATA).hexdigest())
    assert fetch_url(good, tmp_path / "good.pth", progress=False).read_bytes() == DATA
    bad = upstream.serve("https://zenodo.org/records/1/files/bad.pth", DATA, fault="etag:" + "2" * 32)
    with pytest.raises(ChecksumMismatchError, match=r"md5 .* the md5 the server states \(ETag\) is 2{32}"):
        fetch_url(bad, tmp_path / "bad.pth", progress=False)
    assert _left(tmp_path) == ["good.pth"]


def test_the_part_file_of_a_killed_download_is_removed_by_the_next_one(upstream, tmp_path):
    (tmp_path / ".m.pth.abc123.part").write_bytes(b"half")  # what a SIGKILL leaves
    fetch_url(upstream.serve(URL, DATA), tmp_path / "m.pth", progress=False)
    assert _left(tmp_path) == ["m.pth"]


def test_a_model_whose_export_needs_a_missing_module_is_refused_before_any_download(tmp_path, monkeypatch):
    import importlib.util

    from audiofidelity.errors import BuildError
    from audiofidelity.exporters.build import build

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "transformers" else real(name, *a))
    with pytest.raises(BuildError, match=r"cannot build pam: its export needs transformers \(pip install "
                                         r"transformers\)"):
        build("pam", tmp_path / "models", cache=tmp_path / "upstream", progress=False, say=lambda line: None)
    assert not (tmp_path / "upstream").exists()


PUBLISHED = {"cnn14-16k": "e2ee543a27919542c2ea03eabaa70b24dcd4e6c8e05621de6b67a94e4c5058e6",
             "clap-music": "fae3e9c087f2909c28a09dc31c8dfcdacbc42ba44c70e972b58c1bd1caf6dedd",
             "audiobox-aesthetics": "a4931a7a01c3e6733352e9d85371835f03bf9135f8b31e1583c23538811d4a32",
             "pam": "2cef4016d47d00eb28d153d522f397222057f95000e9bad6b9583c631284a1e6"}
"""Digests the upstream files are published with (Zenodo's md5-checked copy, Hugging Face's LFS object ids), as
public projects quote them."""


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_a_build_refuses_bytes_other_than_the_published_digest(upstream, tmp_path, monkeypatch, name):
    import json

    from audiofidelity.exporters.download import fetch_source
    from audiofidelity.registry import registry_entry

    entry = registry_entry(name)
    local = upstream.serve(entry.source_url, DATA)  # under its upstream path, pin left as the registry has it
    (tmp_path / "registry.json").write_text(json.dumps({"artifacts": {name: {"source_url": local}}}))
    monkeypatch.setenv("AUDIOFIDELITY_REGISTRY", str(tmp_path / "registry.json"))
    with pytest.raises(ChecksumMismatchError, match="the registry's pin") as caught:
        fetch_source(registry_entry(name), tmp_path / "upstream", progress=False, say=lambda line: None)
    assert caught.value.expected == PUBLISHED[name] and _left(tmp_path / "upstream") == []


def test_a_checkpoint_at_hand_that_is_not_the_published_one_is_named(tmp_path):
    from audiofidelity.errors import BuildError
    from audiofidelity.exporters.build import build

    source = tmp_path / "Cnn14_16k_mAP=0.438.pth"
    source.write_bytes(DATA)
    said: list[str] = []
    with pytest.raises(BuildError):  # not a checkpoint at all; said before the export refuses it
        build("cnn14-16k", tmp_path / "models", source=source, cache=tmp_path / "upstream", progress=False,
              say=said.append)
    assert any("is not the published Cnn14_16k_mAP=0.438.pth (sha256 e2ee543a2791...)" in line for line in said)
