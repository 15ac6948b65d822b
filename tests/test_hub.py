"""Pinned artifacts through a real Hugging Face cache (offline): resolution, checksums, build instructions, CLI."""
import json
import os
import subprocess
import sys

import pytest

from audiofidelity.artifacts import data_files, file_sha256

REVISION = "0123456789abcdef0123456789abcdef01234567"
REPOS = {"cnn14-16k": "audiofidelity-test/cnn14-16k", "vggish": "audiofidelity-test/vggish"}


def _snapshot(hf_home, name, models_dir, revision=REVISION, tamper=False):
    """Lay one artifact out as huggingface_hub's cache does: hub/models--org--name/snapshots/<rev>/<files>."""
    org, repo = REPOS[name].split("/")
    snap = hf_home / "hub" / f"models--{org}--{repo}" / "snapshots" / revision
    snap.mkdir(parents=True, exist_ok=True)
    (snap / f"{name}.json").write_bytes((models_dir / f"{name}.json").read_bytes())
    for data in data_files(json.loads((models_dir / f"{name}.json").read_text())):  # as publish.py uploads them
        os.link(models_dir / data, snap / data)
    if tamper:
        data = bytearray((models_dir / f"{name}.pt2").read_bytes())
        data[len(data) // 2] ^= 0x01
        (snap / f"{name}.pt2").write_bytes(bytes(data))
    else:
        os.link(models_dir / f"{name}.pt2", snap / f"{name}.pt2")


def _pins(models_dir, revision=REVISION):
    pins = {}
    for name, repo in REPOS.items():
        manifest = json.loads((models_dir / f"{name}.json").read_text())
        pins[name] = {"hub": {"repo_id": repo, "revision": revision, "sha256": manifest["artifact"]["sha256"],
                              "manifest_sha256": file_sha256(models_dir / f"{name}.json"),
                              "size": manifest["artifact"]["size"]}}
    return {"artifacts": pins}


@pytest.fixture
def hub_env(tmp_path, models_dir):
    """An offline environment whose registry pins the fixture artifacts to a test repo and revision."""
    hf_home = tmp_path / "hf"
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(_pins(models_dir)))
    env = {k: v for k, v in os.environ.items() if k not in ("AUDIOFIDELITY_MODELS", "HF_HUB_CACHE")}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", AUDIOFIDELITY_REGISTRY=str(registry),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    return hf_home, registry, env


def _cli(env, *args):
    return subprocess.run([sys.executable, "-m", "audiofidelity", *args], capture_output=True, text=True, env=env)


def _eval(env, recordings_dir, *args):
    return _cli(env, "eval", str(recordings_dir / "generated"), str(recordings_dir / "reference"), "--limit", "3",
                "--metrics", "fd,fad", "--quiet", *args)


def test_eval_resolves_pinned_artifacts_from_the_hf_cache_offline(hub_env, models_dir, recordings_dir):
    hf_home, _, env = hub_env
    for name in REPOS:
        _snapshot(hf_home, name, models_dir)
    done = _eval(env, recordings_dir, "--require-pinned")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for artifact in report["provenance"]["artifacts"]:
        assert artifact["origin"] == "hub" and artifact["pinned"]
        assert artifact["hub"] == {"repo_id": REPOS[artifact["name"]], "revision": REVISION}
    listing = _cli(env, "models", "list")
    assert "cnn14-16k" in listing.stdout and "cached" in listing.stdout and "unavailable" in listing.stdout
    assert _cli(env, "models", "verify").stdout.count(": ok (cached") == 2
    assert REVISION in _cli(env, "models", "path", "vggish").stdout


@pytest.mark.parity  # 8 s; test_trust.py refuses tampered local artifacts in the fast tier
def test_a_tampered_byte_is_refused(hub_env, models_dir, recordings_dir, fresh_cache):
    hf_home, _, env = hub_env
    env["AUDIOFIDELITY_CACHE"] = str(fresh_cache)  # nothing cached: the program must be loaded
    _snapshot(hf_home, "cnn14-16k", models_dir, tamper=True)
    _snapshot(hf_home, "vggish", models_dir)
    done = _eval(env, recordings_dir)
    assert done.returncode == 1
    assert "sha256 is" in done.stderr and "cnn14-16k.pt2" in done.stderr and "Traceback" not in done.stderr
    verify = _cli(env, "models", "verify")
    assert verify.returncode == 1 and "cnn14-16k: FAILED" in verify.stdout


def test_a_missing_revision_gives_the_build_instructions(hub_env, models_dir, recordings_dir):
    hf_home, registry, env = hub_env
    for name in REPOS:
        _snapshot(hf_home, name, models_dir, revision="f" * 40)  # cached, but not at the pinned revision
    done = _eval(env, recordings_dir)
    assert done.returncode == 1
    assert f"at revision {REVISION}" in done.stderr
    assert "audiofidelity models build cnn14-16k --source Cnn14_16k_mAP=0.438.pth" in done.stderr


def test_require_pinned_refuses_a_local_build(hub_env, models_dir, recordings_dir, tmp_path):
    _, registry, env = hub_env
    pins = json.loads(registry.read_text())
    pins["artifacts"]["cnn14-16k"]["hub"]["sha256"] = "0" * 64  # the published bytes differ from this build
    registry.write_text(json.dumps(pins))
    done = _eval(env, recordings_dir, "--models-dir", str(models_dir), "--require-pinned")
    assert done.returncode == 1 and "--require-pinned" in done.stderr and "0" * 64 in done.stderr
    assert _eval(env, recordings_dir, "--models-dir", str(models_dir)).returncode == 0  # local builds are fine otherwise


def test_every_load_hashes_the_program(models_dir, monkeypatch):
    from audiofidelity import artifacts

    calls = []
    real = artifacts.file_sha256
    monkeypatch.setattr(artifacts, "file_sha256", lambda p, *a: calls.append(p) or real(p, *a))
    for _ in range(2):  # two processes' loads: no memo of an earlier check is trusted
        monkeypatch.setattr(artifacts, "_LOADED", {})
        artifacts.load("cnn14-16k", directory=models_dir)
    assert calls == [models_dir / "cnn14-16k.pt2"] * 2
