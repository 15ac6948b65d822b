"""The feature pipeline: worker processes and batch size do not change what comes out."""
import os
import platform
import shutil

import numpy as np
import pytest

from audiofidelity import cli
from audiofidelity.evaluate import CHUNK_FILES, Evaluator, _malloc_trim, _return_free_heap


@pytest.fixture()
def folder(recordings_dir, tmp_path):
    """More than two chunks of files, with a broken file and a sub-folder in the middle."""
    out = tmp_path / "mixed"
    out.mkdir()
    for side in ("reference", "generated"):
        for path in sorted((recordings_dir / side).iterdir()):
            shutil.copy(path, out / f"{side[:3]}_{path.name}")
    (out / "gen_clip_05x.wav").write_bytes(b"RIFF broken")
    (out / "gen_clip_06x").mkdir()
    assert len(list(out.iterdir())) > 2 * CHUNK_FILES
    return out


def _features(folder, **settings):
    names = sorted(p.name for p in folder.iterdir())
    with Evaluator(metrics=["fd", "fad"], progress=False, cache=False, **settings) as evaluator:
        return evaluator.side_features(folder, names, "x")


def test_worker_processes_give_bit_identical_features_and_problems(folder, models_dir):
    inline = _features(folder, models_dir=models_dir, workers=0)
    pooled = _features(folder, models_dir=models_dir, workers=2)
    assert pooled.files == inline.files and len(inline.files) == 48
    assert pooled.problems == inline.problems
    assert [p["file"] for p in inline.problems] == ["gen_clip_05x.wav", "gen_clip_06x"]
    for output, values in inline.per_file.items():
        assert all(np.array_equal(a, b) for a, b in zip(values, pooled.per_file[output])), output


def test_worker_processes_give_identical_pair_metrics_and_problems(recordings_dir, tmp_path):
    for side in ("generated", "reference"):
        shutil.copytree(recordings_dir / side, tmp_path / side)
    broken = sorted((tmp_path / "generated").iterdir())[3]
    broken.write_bytes(b"RIFF broken")
    reports = []
    for workers in (0, 2):
        with Evaluator(metrics=["psnr", "ssim", "lsd"], progress=False, cache=False, workers=workers) as evaluator:
            reports.append(evaluator.evaluate(tmp_path / "generated", tmp_path / "reference", per_file=True).report)
    inline, pooled = reports
    assert len(inline["per_file"]) > CHUNK_FILES and broken.name not in inline["per_file"]
    assert [p["file"] for p in inline["problems"]] == [broken.name]
    assert pooled["per_file"] == inline["per_file"] and pooled["problems"] == inline["problems"]
    assert pooled["metrics"] == inline["metrics"]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_heap_pages_go_back_to_the_os():
    def rss_mb():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    assert _malloc_trim() is not None
    blocks = [np.ones(8192) for _ in range(4000)]  # 64 KB each: from the heap, below the mmap threshold
    del blocks[::4], blocks[::3]  # free half of them, scattered: glibc keeps those pages
    held = rss_mb()
    _return_free_heap()
    assert held - rss_mb() > 50  # of the ~125 MB freed


@pytest.mark.parametrize("batch_size", [1, pytest.param(3, marks=pytest.mark.slow)])
def test_batch_size_moves_features_only_by_rounding(recordings_dir, models_dir, batch_size):
    # no padding is ever added to batch clips, so a clip's features do not depend on its batch-mates beyond
    # the CPU convolutions' rounding, which changes with the batch composition (~1e-6 relative)
    reference = recordings_dir / "reference"
    base = _features(reference, models_dir=models_dir, batch_size=8)
    other = _features(reference, models_dir=models_dir, batch_size=batch_size)
    assert other.files == base.files
    for output, values in base.per_file.items():
        for a, b in zip(values, other.per_file[output]):
            assert np.max(np.abs(a - b)) <= 1e-5 * max(np.max(np.abs(a)), 1e-3), output


def test_cli_workers_flag(recordings_dir, models_dir, tmp_path, capsys):
    import json

    reports = []
    for workers in ("0", "2"):
        assert cli.main(["eval", str(recordings_dir / "generated"), str(recordings_dir / "reference"),
                         "--models-dir", str(models_dir), "--metrics", "fd", "--quiet", "--no-cache",
                         "--workers", workers]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0]["metrics"] == reports[1]["metrics"]
    with pytest.raises(SystemExit) as stop:
        cli.main(["eval", str(recordings_dir / "generated"), str(recordings_dir / "reference"), "--workers", "-1"])
    assert stop.value.code == 2


def test_bf16_is_an_opt_in_that_moves_features_by_under_2_percent(recordings_dir, models_dir):
    folder = recordings_dir / "reference"
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
