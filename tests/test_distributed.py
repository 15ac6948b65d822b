"""torchrun: two CPU ranks (gloo on localhost) give exactly the single-process numbers."""
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.parity  # torchrun's two processes export nothing new but cost a minute: CI's parity tier


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(command, env, tmp_path):
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, cwd=tmp_path,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture()
def folders(recordings_dir, tmp_path):
    gen = tmp_path / "gen"
    shutil.copytree(recordings_dir / "unpaired", gen)
    (gen / "zz_broken.wav").write_bytes(b"not audio")
    return gen, recordings_dir / "reference"


def test_two_gloo_ranks_match_one_process(folders, models_dir, tmp_path):
    args = ["eval", *map(str, folders), "--models-dir", str(models_dir), "--quiet", "--no-cache"]
    # one thread per process on both sides: torchrun sets OMP_NUM_THREADS=1, and the thread count moves the
    # last bits of VGGish (~1e-8 in FAD)
    env = {"OMP_NUM_THREADS": "1", "AUDIOFIDELITY_CACHE": str(tmp_path / "cache")}
    _run([sys.executable, "-m", "audiofidelity", *args, "--json", str(tmp_path / "single.json")], env, tmp_path)
    done = _run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
                 "127.0.0.1", "--master-port", str(_free_port()), "-m", "audiofidelity", *args,
                 "--json", str(tmp_path / "dist.json")], env, tmp_path)
    single = json.loads((tmp_path / "single.json").read_text())
    dist = json.loads((tmp_path / "dist.json").read_text())
    assert dist["metrics"] == single["metrics"]
    assert dist["files"] == single["files"] and dist["files"]["generated"]["used"] == 12
    assert dist["problems"] == single["problems"] and [p["file"] for p in dist["problems"]] == ["zz_broken.wav"]
    assert dist["provenance"]["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert done.stdout == ""  # --json FILE: the report goes to the file (rank 0's), nothing to stdout
