"""The feature pipeline: worker processes and batch size do not change what comes out."""
import os
import shutil

import numpy as np
import pytest

from audiofidelity import cli
from audiofidelity.cli import eval as eval_command
from audiofidelity.evaluate import Evaluator

CHUNK = 4
"""Chunk size in these tests (16 in use): a few files then span several chunks and use the workers."""


@pytest.fixture()
def small_chunks(monkeypatch):
    import importlib

    monkeypatch.setattr(importlib.import_module("audiofidelity.features"), "CHUNK_FILES", CHUNK)


@pytest.fixture()
def folder(recordings_dir, tmp_path, small_chunks):
    """More than two chunks of files, with a broken file and a sub-folder in the middle."""
    out = tmp_path / "mixed"
    out.mkdir()
    for side in ("reference", "generated"):
        for path in sorted((recordings_dir / side).iterdir())[:6]:
            shutil.copy(path, out / f"{side[:3]}_{path.name}")
    (out / "gen_clip_02x.wav").write_bytes(b"RIFF broken")
    (out / "gen_clip_03x").mkdir()
    assert len(list(out.iterdir())) > 2 * CHUNK
    return out


def _first(recordings_dir, tmp_path, count: int = 6):
    """A folder with the first ``count`` reference recordings (mixed rates and lengths)."""
    out = tmp_path / "first"
    out.mkdir()
    for path in sorted((recordings_dir / "reference").iterdir())[:count]:
        shutil.copy(path, out)
    return out


def _features(folder, **settings):
    names = sorted(p.name for p in folder.iterdir())
    with Evaluator(metrics=["fd", "fad"], progress=False, cache=False, **settings) as evaluator:
        return evaluator.side_features(folder, names, "x")


@pytest.mark.parity  # 13 s of spawned workers; the pair-metric worker test below stays in the fast tier
def test_worker_processes_give_bit_identical_features_and_problems(folder, models_dir):
    inline = _features(folder, models_dir=models_dir, workers=0)
    pooled = _features(folder, models_dir=models_dir, workers=2)
    assert pooled.files == inline.files and len(inline.files) == 12
    assert pooled.problems == inline.problems
    assert [p["file"] for p in inline.problems] == ["gen_clip_02x.wav", "gen_clip_03x"]
    for output, values in inline.per_file.items():
        assert all(np.array_equal(a, b) for a, b in zip(values, pooled.per_file[output])), output


def test_worker_processes_give_identical_pair_metrics_and_problems_and_are_started_once(recordings_dir, tmp_path,
                                                                                        small_chunks, monkeypatch):
    from audiofidelity import features as pipeline

    started = []
    real = pipeline.spawn_pool
    monkeypatch.setattr(pipeline, "spawn_pool", lambda workers: started.append(workers) or real(workers))
    for side in ("generated", "reference"):
        (tmp_path / side).mkdir()
        for path in sorted((recordings_dir / side).iterdir())[:10]:
            shutil.copy(path, tmp_path / side)
    broken = sorted((tmp_path / "generated").iterdir())[3]
    broken.write_bytes(b"RIFF broken")
    reports = []
    for workers in (0, 2):
        with Evaluator(metrics=["psnr", "ssim", "lsd"], progress=False, cache=False, workers=workers) as evaluator:
            for _ in range(1 + workers // 2):  # the pooled evaluator runs twice, on the same workers
                reports.append(evaluator.evaluate(tmp_path / "generated", tmp_path / "reference",
                                                  per_file=True).report)
    inline, pooled, again = reports
    assert started == [2] and again == pooled
    assert len(inline["per_file"]) > CHUNK and broken.name not in inline["per_file"]
    assert [p["file"] for p in inline["problems"]] == [broken.name]
    assert pooled["per_file"] == inline["per_file"] and pooled["problems"] == inline["problems"]
    assert pooled["metrics"] == inline["metrics"]


@pytest.mark.parametrize("batch_size", [1, pytest.param(3, marks=pytest.mark.slow)])
def test_batch_size_moves_features_only_by_rounding(recordings_dir, models_dir, tmp_path, batch_size):
    # a pass holds one clip's items: CNN14's one item per clip is the same whatever the batch size; VGGish's
    # examples of a clip are split into other passes, and the CPU convolutions round differently per batch size
    reference = _first(recordings_dir, tmp_path)
    base = _features(reference, models_dir=models_dir, batch_size=8)
    other = _features(reference, models_dir=models_dir, batch_size=batch_size)
    assert other.files == base.files
    for output, values in base.per_file.items():
        for a, b in zip(values, other.per_file[output]):
            if output == "vggish":
                assert np.max(np.abs(a - b)) <= 1e-5 * max(np.max(np.abs(a)), 1e-3), output
            else:
                assert np.array_equal(a, b), output


def test_cli_workers_flag(recordings_dir, models_dir):
    # what the workers compute is tested above, on the Evaluator the flag configures
    args = cli.build_parser().parse_args(["eval", str(recordings_dir / "generated"), str(recordings_dir / "reference"),
                                          "--models-dir", str(models_dir), "--metrics", "fd", "--workers", "2"])
    with eval_command._evaluator(args, args.metrics) as evaluator:
        assert evaluator.workers == 2
    with pytest.raises(SystemExit) as stop:
        cli.main(["eval", str(recordings_dir / "generated"), str(recordings_dir / "reference"), "--workers", "-1"])
    assert stop.value.code == 2


@pytest.mark.parity  # an opt-in's accuracy bound; CI's parity tier
def test_bf16_is_an_opt_in_that_moves_features_by_under_2_percent(recordings_dir, models_dir, tmp_path):
    folder = _first(recordings_dir, tmp_path)
    exact = _features(folder, models_dir=models_dir)
    fast = _features(folder, models_dir=models_dir, precision="bf16")
    for output, values in exact.per_file.items():
        errors = [np.max(np.abs(a - b)) / np.max(np.abs(a)) for a, b in zip(values, fast.per_file[output])]
        assert 0 < max(errors) < 0.02, output  # measured here: <= 0.94% of each clip's largest value


def test_tf32_needs_a_gpu(recordings_dir, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["eval", str(recordings_dir / "generated"), str(recordings_dir / "reference"),
                  "--precision", "tf32"])
    assert stop.value.code == 2 and "CUDA devices only" in capsys.readouterr().err


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_bf16_instructions_is_warned(tmp_path, capsys, monkeypatch, native):
    from audiofidelity import runner

    monkeypatch.setattr(runner, "native_bf16", lambda: native)
    (tmp_path / "gen").mkdir()
    (tmp_path / "ref").mkdir()  # empty folders: the run stops after the options are checked, before any model
    cli.main(["eval", str(tmp_path / "gen"), str(tmp_path / "ref"), "--precision", "bf16", "--offline"])
    assert ("no bf16 instructions" in capsys.readouterr().err) is not native


def test_pool_workers_exit_when_their_parent_is_killed(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time\n"
        "from audiofidelity.features import spawn_pool\n"
        "if __name__ == '__main__':\n"
        "    pool = spawn_pool(2)\n"
        "    pids = set(pool.submit(os.getpid).result() for _ in range(8))\n"
        "    print(' '.join(map(str, sorted(pids))), flush=True)\n"
        "    time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert workers

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for init to reap it is gone too
            return f.read().split(") ")[1][0] != "Z"

    assert all(alive(pid) for pid in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)
