"""Hostile-input round (#29 items 6 and 7): memos keyed by content, one behaviour per path.

Each test here failed before its fix: a reused evaluator served a rewritten reference's old features; a
statistics-file reference lost FD's notes and warnings; nonsense option values passed some entry points;
the service redacted paths by text replacement; Ctrl-C printed a traceback; ``eval-logs`` wrote into folders
it evaluates and exited 0 whatever happened; ``Embedder`` refused bf16 tensors.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from audiofidelity import cli
from audiofidelity.audio import Conditioning
from audiofidelity.metrics.options import MetricOptions

BAD_NUMBERS = ["nan", "inf", "-inf"]


# 7b: one check per value, for the command line, the Python API and the service ---------------------------------

EVAL_MISUSE = [*(["--kad-bandwidth", v] for v in ("inf", "nan", "-1", "0")),
               *(["--min-duration", v] for v in ("nan", "inf", "-1")),
               ["--max-memory", "nan"], ["--bootstrap", "1"], ["--bootstrap", "-2"], ["--limit", "0"],
               ["--limit", "-3"], ["--backbone", "mert", "--mert-chunk", "nan"],
               ["--backbone", "mert", "--mert-chunk", "inf"], ["--lsd-offset", "-1"], ["--batch-size", "0"],
               ["--workers", "-1"]]


@pytest.mark.parametrize("argv", EVAL_MISUSE, ids=" ".join)
def test_eval_refuses_nonsense_numbers_with_exit_2(tmp_path, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["eval", str(tmp_path), str(tmp_path), *argv])
    assert exit_info.value.code == 2
    assert argv[-2] in capsys.readouterr().err  # the message names the option


@pytest.mark.parametrize("argv", [
    ["stats", "R", "--out", "s.npz", "--limit", "0"], ["stats", "R", "--out", "s.npz", "--min-duration", "nan"],
    ["eval-logs", "L", "--reference", "R", "--kad-bandwidth", "inf"], ["eval-logs", "L", "--reference", "R",
                                                                      "--limit", "-1"],
    ["embed", "F", "--model", "vggish", "--out", "e.npz", "--limit", "0"],
    ["embed", "F", "--model", "vggish", "--out", "e.npz", "--min-duration", "inf"],
    ["embed", "F", "--model", "vggish", "--out", "e.npz", "--batch-size", "0"],
    ["serve", "--port", "70000"], ["serve", "--max-files", "0"], ["serve", "--max-file-mb", "nan"],
    ["serve", "--max-request-mb", "-1"], ["serve", "--request-timeout", "inf"], ["serve", "--workers", "-2"],
], ids=" ".join)
def test_every_command_refuses_nonsense_numbers_with_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2 and argv[-2] in capsys.readouterr().err


@pytest.mark.parametrize("value", [math.inf, math.nan, 0.0, -1.0])
def test_metric_options_refuse_a_bandwidth_that_is_not_a_finite_positive_number(value):
    with pytest.raises(ValueError, match="kad_bandwidth must be a finite number > 0"):
        MetricOptions(kad_bandwidth=value)


@pytest.mark.parametrize("value", [math.inf, math.nan, -0.5])
def test_conditioning_refuses_a_minimum_duration_that_is_not_a_finite_number(value):
    with pytest.raises(ValueError, match="min_duration must be a finite number >= 0"):
        Conditioning(min_duration=value)


@pytest.mark.parametrize("setting, message", [
    ({"batch_size": 0}, "batch_size must be >= 1"), ({"workers": -1}, "workers must be >= 0"),
    ({"lsd_offset": -5}, "lsd_offset must be >= 0"), ({"max_memory": 0}, "max_memory must be >= 1"),
    ({"backbone": "mert", "mert_chunk": math.nan}, "mert_chunk must be a finite number > 0"),
    ({"backbone": "mert", "mert_chunk": math.inf}, "mert_chunk must be a finite number > 0"),
])
def test_the_evaluator_refuses_what_the_command_line_refuses(setting, message):
    from audiofidelity.evaluate import Evaluator

    with pytest.raises(ValueError, match=message):
        Evaluator(metrics=["psnr"], progress=False, cache=False, **setting)


@pytest.mark.parametrize("run, message", [({"limit": 0}, "limit must be >= 1"), ({"limit": -2}, "limit must be >= 1"),
                                          ({"bootstrap": 1}, "bootstrap must be >= 2"),
                                          ({"bootstrap": -4}, "bootstrap must be >= 2")])
def test_evaluate_refuses_a_limit_or_bootstrap_that_makes_no_sense(recordings_dir, run, message):
    from audiofidelity.evaluate import evaluate

    with pytest.raises(ValueError, match=message):
        evaluate(recordings_dir / "generated", recordings_dir / "reference", metrics=["psnr"], progress=False,
                 cache=False, **run)


def test_the_embedder_refuses_a_zero_batch_before_loading_anything(tmp_path):
    from audiofidelity.embedder import Embedder

    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        Embedder("vggish", batch_size=0, models_dir=tmp_path)
    with pytest.raises(ValueError, match="max_memory must be >= 1"):
        Embedder("vggish", max_memory=-1, models_dir=tmp_path)


def test_the_service_refuses_what_the_command_line_refuses(tmp_path, recordings_dir):
    pytest.importorskip("fastapi")
    from test_server import make_client, upload

    from audiofidelity.server.uploads import UploadLimits
    from audiofidelity.server.worker import RunSettings

    with make_client(tmp_path, run_jobs=False) as client:
        answer = client.post("/evaluate", files=upload(recordings_dir), data={"limit_num": "-3"})
    assert answer.status_code == 400 and answer.json()["error"] == "limit_num must be >= 1, got -3"
    for make, setting in ((RunSettings, {"batch_size": 0}), (RunSettings, {"workers": -1}),
                          (UploadLimits, {"max_files": 0})):
        with pytest.raises(ValueError, match=f"{next(iter(setting))} must be >= "):
            make(**setting)


# 6: every memo of a long-lived object is keyed by content --------------------------------------------------------

def _small_sets(recordings_dir, tmp_path, count: int = 4):
    """Own copies of ``count`` generated and reference clips (tests rewrite them)."""
    import shutil

    names = [f"clip_{i:02d}.wav" for i in range(count)]
    for side in ("generated", "reference"):
        (tmp_path / side).mkdir()
        for name in names:
            shutil.copy2(recordings_dir / side / name, tmp_path / side / name)
    return tmp_path / "generated", tmp_path / "reference"


def _rewrite_keeping_times(target, source) -> None:
    """``target`` gets ``source``'s bytes in place (same name and inode), its atime and mtime put back."""
    import os

    before = os.stat(target)
    with open(target, "r+b") as f:
        f.truncate(0)
        f.write(source.read_bytes())
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(target).st_mtime_ns == before.st_mtime_ns


def test_a_reused_evaluator_sees_a_reference_file_rewritten_in_place(recordings_dir, models_dir, tmp_path):
    from audiofidelity.evaluate import Evaluator

    generated, reference = _small_sets(recordings_dir, tmp_path)
    settings = dict(metrics=["fd", "psnr"], models_dir=models_dir, progress=False)
    with Evaluator(**settings) as evaluator:
        first = evaluator.evaluate(generated, reference).report["metrics"]
        _rewrite_keeping_times(reference / "clip_01.wav", recordings_dir / "unpaired" / "other_05.wav")
        second = evaluator.evaluate(generated, reference).report["metrics"]
    with Evaluator(**settings) as fresh:
        expected = fresh.evaluate(generated, reference).report["metrics"]
    assert second != first and second == expected


def test_the_compat_helper_sees_a_reference_file_rewritten_in_place(recordings_dir, models_dir, tmp_path):
    from audiofidelity.compat.audioldm_eval import EvaluationHelper

    generated, reference = _small_sets(recordings_dir, tmp_path)
    helper = EvaluationHelper(16000, models_dir=models_dir, progress=False, write_json=False)
    first = helper.main(str(generated), str(reference))
    _rewrite_keeping_times(reference / "clip_02.wav", recordings_dir / "unpaired" / "other_03.wav")
    second = helper.main(str(generated), str(reference))
    expected = EvaluationHelper(16000, models_dir=models_dir, progress=False, write_json=False).main(
        str(generated), str(reference))
    same = lambda a, b: all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)  # noqa: E731
    assert not same(first, second) and same(second, expected)


def test_the_reference_memo_follows_content_not_the_folder(recordings_dir, models_dir, tmp_path, decodes):
    """An identical copy of the reference elsewhere is served from the memo, reported under its own folder."""
    import shutil

    from audiofidelity.evaluate import Evaluator

    generated, reference = _small_sets(recordings_dir, tmp_path)
    copy = shutil.copytree(reference, tmp_path / "copy")
    with Evaluator(metrics=["fd"], models_dir=models_dir, progress=False, cache=False) as evaluator:
        first = evaluator.evaluate(generated, reference).report
        decoded = len(decodes)
        second = evaluator.evaluate(generated, copy).report
    assert len(decodes) == decoded + 4  # the generated side only
    assert second["metrics"] == first["metrics"] and second["files"]["reference"]["folder"] == str(copy)


# 7a: a statistics-file reference gets the notes and warnings of a folder reference --------------------------------

@pytest.mark.parametrize("generated_side", ["generated", "reference"])
def test_fd_against_a_statistics_file_carries_the_folder_runs_notes(recordings_dir, models_dir, tmp_path,
                                                                    generated_side):
    """Same rows, same warnings (singular covariance), same clamping of a total below 0 (identical sets)."""
    from audiofidelity.evaluate import Evaluator

    generated, reference = _small_sets(recordings_dir, tmp_path)
    generated = {"generated": generated, "reference": reference}[generated_side]
    with Evaluator(metrics=["fd", "fad"], models_dir=models_dir, progress=False) as evaluator:
        stats, _ = evaluator.reference_statistics(reference)
        stats.save(tmp_path / "reference.npz")
        by_folder = evaluator.evaluate(generated, reference).report
        by_file = evaluator.evaluate(generated, tmp_path / "reference.npz").report
    for key in ("frechet_distance", "frechet_audio_distance"):
        folder_details, file_details = by_folder["details"][key], by_file["details"][key]
        assert file_details["warnings"] == folder_details["warnings"], key
        assert {k: v for k, v in file_details.items() if k != "negative_total_clamped"} == \
            {k: v for k, v in folder_details.items() if k != "negative_total_clamped"}, key
        assert by_file["metrics"][key] >= 0
        assert by_file["metrics"][key] == pytest.approx(by_folder["metrics"][key], rel=1e-6, abs=1e-6)


# 7c: the service's public view is built from fields, never by replacing text --------------------------------------

def test_relative_data_and_models_folders_leave_reports_and_errors_intact(recordings_dir, models_dir, tmp_path,
                                                                         monkeypatch):
    """Data folder ``d`` and models folder ``m`` (relative): text replacement turned every "d" of a report into
    DATA_DIR ("frechet_DATA_DIRistance") and every "m" of an error into MODELS_DIR."""
    pytest.importorskip("fastapi")
    import os
    from pathlib import Path

    from fastapi.testclient import TestClient
    from test_server import upload, wait_finished

    from audiofidelity.server.app import ServerConfig, create_app
    from audiofidelity.server.worker import RunSettings

    monkeypatch.chdir(tmp_path)
    os.symlink(models_dir, tmp_path / "m")
    (tmp_path / "e").mkdir()  # a models folder without the models
    names = ["clip_00.wav", "clip_01.wav", "clip_02.wav"]
    config = ServerConfig(data_dir=Path("d"), run=RunSettings(models_dir=Path("m"), cache=False))
    with TestClient(create_app(config)) as client:
        job = wait_finished(client, client.post("/evaluate", files=upload(recordings_dir, names),
                                                data={"metrics": "FD,psnr"}).json()["job_id"])
    assert job["status"] == "completed", job
    assert set(job["metrics"]) == {"frechet_distance", "psnr"} and "frechet_distance" in job["details"]
    assert job["files"]["generated"]["folder"] == "generated" and job["files"]["reference"]["folder"] == "reference"
    assert job["provenance"]["feature_cache"] is None
    assert "DATA_DIR" not in str(job) and "MODELS_DIR" not in str(job) and str(tmp_path) not in str(job)
    config = ServerConfig(data_dir=Path("d2"), run=RunSettings(models_dir=Path("e"), cache=False))
    with TestClient(create_app(config)) as client:
        failed = wait_finished(client, client.post("/evaluate", files=upload(recordings_dir, names),
                                                   data={"metrics": "fd"}).json()["job_id"])
    assert failed["status"] == "failed"
    assert failed["error"].startswith("1 model artifact(s) missing in MODELS_DIR: cnn14-16k. They are not published")
    assert "--models-dir MODELS_DIR" in failed["error"] and str(tmp_path) not in failed["error"]


def test_a_job_whose_folder_vanished_fails_naming_only_job_relative_paths(tmp_path):
    """An error's path fields are shown relative to the job folder, or by option name, or by file name."""
    from pathlib import Path

    from audiofidelity.errors import InputFolderError
    from audiofidelity.server.worker import JobRunner, RunSettings

    runner = JobRunner(None, tmp_path / "data" / "jobs", RunSettings(models_dir=tmp_path / "models", cache=False))
    folder = tmp_path / "data" / "jobs" / "abc"
    error = InputFolderError("folder not found: {folder}", folder=folder / "reference")
    assert str(error) == f"folder not found: {folder / 'reference'}"  # the message itself is unchanged
    assert runner.public_error(error, folder) == "folder not found: reference"
    assert runner.public_value(tmp_path / "models" / "vggish.pt2", folder) == "MODELS_DIR/vggish.pt2"
    assert runner.public_value(tmp_path / "data" / "jobs.sqlite3", folder) == "DATA_DIR/jobs.sqlite3"
    assert runner.public_value(Path("/somewhere/else.wav"), folder) == "else.wav"
    assert runner.public_error(FileNotFoundError(2, "No such file or directory", str(folder / "generated" / "a.wav")),
                               folder) == "No such file or directory: generated/a.wav"


# 7d: Ctrl-C ends any command with one line and exit 130, its workers stopped ---------------------------------------

def test_ctrl_c_in_any_command_is_one_line_and_exit_130(monkeypatch, capsys, tmp_path):
    def interrupted(args):
        raise KeyboardInterrupt

    for command, argv in (("eval", ["eval", str(tmp_path), str(tmp_path)]), ("cache", ["cache", "info"]),
                          ("models", ["models", "list"])):
        monkeypatch.setitem(cli.RUNNERS, command, interrupted)
        try:
            assert cli.main(argv) == 130
        except KeyboardInterrupt:
            pytest.fail(f"{command}: KeyboardInterrupt escaped cli.main")
        assert capsys.readouterr().err == "audiofidelity: interrupted\n"


INTERRUPTED_RUN = """
import os, sys, time
from audiofidelity import cli
from audiofidelity.evaluate import Evaluator

def run(args):
    with Evaluator(metrics=["psnr"], workers=2, cache=False, progress=False) as evaluator:
        pool = evaluator._started_pool()
        pids = [pool.submit(os.getpid).result() for _ in range(8)]
        busy = [pool.submit(time.sleep, 60) for _ in range(4)]  # work in flight when Ctrl-C comes
        print(" ".join(map(str, sorted(set(pids)))), flush=True)
        busy[0].result()
    return 0

cli.RUNNERS["eval"] = run
sys.exit(cli.main(["eval", sys.argv[1], sys.argv[1]]))
"""


def test_ctrl_c_stops_the_worker_processes_without_a_traceback(tmp_path):
    """SIGINT to the process group, as a terminal sends it: exit 130 at once, one line, no worker left."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    (tmp_path / "a.wav").write_bytes(b"")
    env = {**os.environ, "PYTHONPATH": str(Path(cli.__file__).parents[2])}
    child = subprocess.Popen([sys.executable, "-c", INTERRUPTED_RUN, str(tmp_path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        workers = [int(pid) for pid in child.stdout.readline().split()]
        assert workers, child.stderr.read()
        os.killpg(child.pid, signal.SIGINT)
        started = time.monotonic()
        code = child.wait(timeout=30)
        assert time.monotonic() - started < 10  # not the 60 s the workers' tasks would take
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    stderr = child.stderr.read()
    assert code == 130 and stderr == "audiofidelity: interrupted\n", stderr
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


# 7e: eval-logs never writes into a folder it evaluates, and exits as eval does ------------------------------------

def test_eval_logs_writes_no_file_into_an_evaluated_folder_and_reuses_its_results(recordings_dir, tmp_path, capsys):
    """With --glob '*' the folder ``run`` holds the generation folder ``run/val_100``: a result written beside
    val_100 landed in ``run``, which is evaluated too (a new "file" each run, never reused)."""
    import shutil

    generated, reference = _small_sets(recordings_dir, tmp_path, count=3)
    log_dir = tmp_path / "logs"
    shutil.copytree(generated, log_dir / "run" / "val_100")
    evaluated = [log_dir / "run", log_dir / "run" / "val_100"]
    before = [sorted(p.name for p in folder.iterdir()) for folder in evaluated]
    argv = ["eval-logs", str(log_dir), "--reference", str(reference), "--glob", "*", "--metrics", "psnr", "--quiet"]
    assert cli.main(argv) == 0
    assert [sorted(p.name for p in folder.iterdir()) for folder in evaluated] == before
    assert (log_dir / "audiofidelity-results" / "run" / "val_100.json").is_file()
    capsys.readouterr()
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == 2 and all("(reused)" in line for line in lines), lines  # the results folder is not searched


def test_eval_logs_exits_as_eval_does(recordings_dir, models_dir, tmp_path, capsys):
    import shutil

    generated, reference = _small_sets(recordings_dir, tmp_path, count=3)
    log_dir = tmp_path / "logs"
    shutil.copytree(generated, log_dir / "val_1")
    (log_dir / "val_2").mkdir()
    (log_dir / "val_2" / "broken.wav").write_text("not audio")
    common = ["--models-dir", str(models_dir), "--metrics", "fd", "--quiet"]
    assert cli.main(["eval-logs", str(log_dir), "--reference", str(tmp_path / "missing"), *common]) == 2
    assert "folder not found" in capsys.readouterr().err
    assert cli.main(["eval-logs", str(log_dir), "--reference", str(reference), *common]) == 1
    err = capsys.readouterr().err
    assert "1 folder(s) could not be evaluated: val_2: no usable generated files" in err
    shutil.rmtree(log_dir / "val_2")
    (log_dir / "val_1" / "broken.wav").write_text("not audio")
    assert cli.main(["eval-logs", str(log_dir), "--reference", str(reference), "--strict", *common]) == 1
    assert "--strict" in capsys.readouterr().err


# 7f: the Embedder's default output works for every model; bfloat16 tensors are accepted ---------------------------

def _registry_models():
    from audiofidelity import registry
    from audiofidelity.embedder import EMBEDDING_ROLES

    fast = ("cnn14-16k", "vggish")  # the rest in the parity tier (MERT alone took 3 s of the fast tier's 5 min)
    return [pytest.param(name, marks=() if name in fast else pytest.mark.parity)
            for name in registry.names() if registry.registry_entry(name).role in EMBEDDING_ROLES]


@pytest.mark.parametrize("model", _registry_models())
def test_the_embedders_default_output_works_for_every_embedding_model(model, request):
    """VGGish and EnCodec declare only frame rows (role ``fad``): the default ``embedding`` refused them. (Text
    towers embed captions: test_clap_text.py.)"""
    from conftest import PARITY_ONLY

    from audiofidelity.embedder import Embedder

    folder = request.getfixturevalue("all_models_dir" if model in PARITY_ONLY else "models_dir")
    embedder = Embedder(model, models_dir=folder)
    assert embedder.info.output in ("embedding", "frames")
    rate = embedder.info.conditioning_rate
    clip = 0.1 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate).astype(np.float32)
    rows = embedder.embed(np.stack([clip] * embedder.info.channels) if embedder.info.channels > 1 else clip, rate)
    assert rows.shape[-1] == embedder.info.shape[-1] and np.all(np.isfinite(rows))


def test_the_sc09_classifier_is_refused_by_the_embedder_saying_what_runs_it(models_dir):
    from audiofidelity.embedder import Embedder

    with pytest.raises(ValueError, match="sc09-resnext is not an embedding model .* audiofidelity sc09 runs it"):
        Embedder("sc09-resnext", models_dir=models_dir)


def test_a_bfloat16_tensor_is_embedded_as_its_exact_float32_values(models_dir):
    import torch

    from audiofidelity.embedder import Embedder

    embedder = Embedder("cnn14-16k", models_dir=models_dir)
    clip = torch.sin(torch.arange(16000) * 0.05) * 0.3
    bf16 = clip.to(torch.bfloat16)
    assert np.array_equal(embedder.embed(bf16, 16000), embedder.embed(bf16.float().numpy(), 16000))
    assert np.array_equal(embedder.embed(clip.half(), 16000), embedder.embed(clip.half().float().numpy(), 16000))
