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
