"""A pip user's first run: ``audiofidelity eval GEN REF`` builds the model artifacts it lacks (each original
downloaded, exported and sealed into the default models folder), ``--offline`` refuses instead, and
``models build`` does it on its own. The originals are the stand-in checkpoints, served on loopback under their
upstream paths (the registry's source-URL override, ``$AUDIOFIDELITY_REGISTRY``); the last test runs the first run
from a built wheel in a fresh virtualenv, as a pip user has it."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from audiofidelity.exporters.vggish import PCA_FILE_SUFFIX
from audiofidelity.registry import registry_entry

from fixtures import checkpoints
from upstream import Upstream

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ("cnn14-16k", "vggish")
"""What ``eval GEN REF`` needs with its defaults (the PANNs backbone, VGGish FAD)."""
PCA_URL = registry_entry("vggish").source_url.rsplit("/", 1)[0] + "/" + checkpoints.VGGISH_PCA_FILE

VGGISH_PCA = "vggish" + PCA_FILE_SUFFIX
pytestmark = pytest.mark.parity  # every test here exports the stand-ins at least once


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def upstream():
    with Upstream() as server:
        yield server


def _serve(upstream: Upstream, checkpoint_dir: Path, tmp_path: Path, *, fault: str = "",
           pin: str | None = None) -> dict[str, str]:
    """Serve the default models' stand-ins under their upstream paths; return the environment of a first run
    (no models, an empty cache, downloads allowed, the registry pointing upstream here)."""
    sources = {"cnn14-16k": checkpoint_dir / checkpoints.CNN14["cnn14-16k"]["file"],
               "vggish": checkpoint_dir / checkpoints.VGGISH_FILE}
    overrides = {}
    for name, source in sources.items():
        url = upstream.serve(registry_entry(name).source_url, source, fault=fault if name == "cnn14-16k" else "")
        overrides[name] = {"source_url": url, "source_sha256": pin or _sha256(source)}
    upstream.serve(PCA_URL, checkpoint_dir / checkpoints.VGGISH_PCA_FILE)
    (tmp_path / "registry.json").write_text(json.dumps({"artifacts": overrides}))
    env = {k: v for k, v in os.environ.items() if k not in ("AUDIOFIDELITY_MODELS", "HF_HUB_OFFLINE")}
    env.update(AUDIOFIDELITY_REGISTRY=str(tmp_path / "registry.json"), AUDIOFIDELITY_CACHE=str(tmp_path / "cache"))
    return env


def _run(env, *args, python=sys.executable, cwd=None, flags=()):
    return subprocess.run([python, *flags, "-m", "audiofidelity", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=900)


def _eval(env, recordings_dir, *args, **kwargs):
    return _run(env, "eval", str(recordings_dir / "generated"), str(recordings_dir / "reference"), "--limit", "3",
                *args, **kwargs)


def _models(tmp_path):
    folder = tmp_path / "cache" / "models"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _parts(tmp_path):
    return [p.name for p in (tmp_path / "cache").rglob("*.part")]


def test_offline_refuses_with_the_command_that_builds_them(upstream, checkpoint_dir, recordings_dir, tmp_path):
    env = _serve(upstream, checkpoint_dir, tmp_path)
    for done in (_eval(env, recordings_dir, "--offline"), _eval({**env, "HF_HUB_OFFLINE": "1"}, recordings_dir)):
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert "audiofidelity models build cnn14-16k vggish" in done.stderr
    assert upstream.requests == [] and _models(tmp_path) == []


def test_a_server_that_dies_mid_download_leaves_nothing_and_the_next_run_builds(upstream, checkpoint_dir,
                                                                                   recordings_dir, tmp_path):
    env = _serve(upstream, checkpoint_dir, tmp_path, fault="die")
    done = _eval(env, recordings_dir)
    assert done.returncode == 1 and "Traceback" not in done.stderr and "nothing was kept" in done.stderr
    assert _models(tmp_path) == [] and _parts(tmp_path) == []
    with Upstream() as again:
        env = _serve(again, checkpoint_dir, tmp_path)
        done = _eval(env, recordings_dir)
        assert done.returncode == 0, done.stderr
        assert {"cnn14-16k.pt2", "vggish.pt2"} <= set(_models(tmp_path))


def test_a_checksum_mismatch_is_refused_and_nothing_is_written(upstream, checkpoint_dir, recordings_dir, tmp_path):
    env = _serve(upstream, checkpoint_dir, tmp_path, pin="0" * 64)
    done = _eval(env, recordings_dir)
    assert done.returncode == 1 and "the registry's pin is " + "0" * 64 in done.stderr
    assert _models(tmp_path) == [] and _parts(tmp_path) == [] and "Traceback" not in done.stderr


def test_no_network_is_a_clear_error(checkpoint_dir, recordings_dir, tmp_path):
    (tmp_path / "registry.json").write_text(json.dumps({"artifacts": {
        "cnn14-16k": {"source_url": "http://127.0.0.1:9/Cnn14_16k_mAP%3D0.438.pth"}}}))
    env = {k: v for k, v in os.environ.items() if k not in ("AUDIOFIDELITY_MODELS", "HF_HUB_OFFLINE")}
    env.update(AUDIOFIDELITY_REGISTRY=str(tmp_path / "registry.json"), AUDIOFIDELITY_CACHE=str(tmp_path / "cache"))
    done = _eval(env, recordings_dir)
    assert done.returncode == 1 and "no network?" in done.stderr and "Traceback" not in done.stderr


def test_models_build_names_a_folder_it_cannot_write_and_keeps_a_built_one(upstream, checkpoint_dir, tmp_path):
    env = _serve(upstream, checkpoint_dir, tmp_path)
    (tmp_path / "file").write_bytes(b"")
    refused = _run(env, "models", "build", "cnn14-16k", "--models-dir", str(tmp_path / "file" / "models"))
    assert refused.returncode == 1 and "cannot write there" in refused.stderr
    assert "--models-dir DIR or $AUDIOFIDELITY_MODELS" in refused.stderr and upstream.requests == []
    source = checkpoint_dir / checkpoints.CNN14["cnn14-16k"]["file"]
    built = _run(env, "models", "build", "cnn14-16k", "--source", str(source), "--quiet")
    assert built.returncode == 0, built.stderr
    assert "cnn14-16k: written to" in built.stdout and upstream.requests == []
    again = _run(env, "models", "build", "cnn14-16k")
    assert again.returncode == 0 and "already in" in again.stdout and upstream.requests == []
    for misuse in (("--vocab", str(source)), ("--revision", "main")):
        refused = _run(env, "models", "build", "cnn14-16k", "--source", str(source), *misuse)
        assert refused.returncode in (1, 2) and "Traceback" not in refused.stderr
        assert ("does not apply to cnn14-16k" if misuse[0] == "--vocab" else "--revision applies to") in refused.stderr


def test_models_build_rebuilds_an_artifact_missing_a_file_it_names(upstream, checkpoint_dir, tmp_path):
    env = _serve(upstream, checkpoint_dir, tmp_path)
    assert _run(env, "models", "build", "vggish", "--quiet").returncode == 0
    (tmp_path / "cache" / "models" / VGGISH_PCA).unlink()  # the .pt2 and manifest alone are not the artifact
    again = _run(env, "models", "build", "vggish", "--quiet")
    assert again.returncode == 0 and "vggish: written to" in again.stdout, again.stderr
    assert VGGISH_PCA in _models(tmp_path)


def test_the_first_run_from_a_built_wheel_in_a_fresh_virtualenv(upstream, checkpoint_dir, recordings_dir, models_dir,
                                                                 tmp_path):
    """The package as pip delivers it: a wheel built from this tree, installed into a new virtualenv, run from
    outside the source tree: the first ``eval`` builds the default models (each original downloaded once), the second
    downloads nothing and imports no exporter, and both give the numbers of the artifacts this session exported.
    Its dependencies come from this environment through a path file (not re-installed: torch alone is a GB); the
    package itself, exporters included, must come from the wheel."""
    wheel_dir = tmp_path / "dist"
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []  # else from the index
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(wheel_dir),
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "deps-of-the-test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    *map(str, wheel_dir.glob("*.whl"))], check=True, capture_output=True, timeout=300)
    # without $PYTHONPATH: a checkout on it would be imported instead of the wheel
    env = {k: v for k, v in _serve(upstream, checkpoint_dir, tmp_path).items() if k != "PYTHONPATH"}
    where = subprocess.run([str(python), "-c", "import audiofidelity.exporters.build as b, audiofidelity as a; "
                            "print(a.__file__); print(b.__file__)"], capture_output=True, text=True, check=True,
                           cwd=tmp_path, env=env).stdout.split()
    assert all(path.startswith(site) for path in where), where
    first = _eval(env, recordings_dir, python=python, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "building 2 model artifact(s) on first use" in first.stderr
    assert f"{checkpoints.CNN14['cnn14-16k']['file']}: downloading {upstream.base}/zenodo.org/" in first.stderr
    assert "licence CC-BY-4.0" in first.stderr and "licence Apache-2.0" in first.stderr
    assert _models(tmp_path) == sorted(["cnn14-16k.json", "cnn14-16k.pt2", "vggish.json", "vggish.pt2", VGGISH_PCA])
    assert len(upstream.requests) == 3  # the two checkpoints and VGGish's PCA file, once each
    second = _eval(env, recordings_dir, python=python, cwd=tmp_path, flags=("-X", "importtime"))
    assert second.returncode == 0 and "downloading" not in second.stderr and len(upstream.requests) == 3
    imported = re.findall(r"^import time:.*\|\s+([\w.]+)$", second.stderr, re.M)  # every module, workers' too
    assert "audiofidelity.evaluate" in imported and not [m for m in imported if "exporters" in m]
    assert json.loads(first.stdout)["metrics"] == json.loads(second.stdout)["metrics"]
    # the same numbers as the artifacts the test session exported from the same stand-ins
    exported = _eval(env, recordings_dir, "--models-dir", str(models_dir), "--no-cache", python=python, cwd=tmp_path)
    assert exported.returncode == 0 and json.loads(exported.stdout)["metrics"] == json.loads(first.stdout)["metrics"]
