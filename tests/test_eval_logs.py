"""``eval-logs``: every val_* folder of a training run against one reference, reference features once."""
import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from audiofidelity import cli
from audiofidelity.runner import EmbeddingRunner
from audiofidelity.training_logs import RESULTS_DIR, find_generation_folders, step_of


PER_FOLDER, REFERENCE = 3, 4


@pytest.fixture()
def log_dir(recordings_dir, tmp_path):
    """A training run with three generation folders of PER_FOLDER clips; its reference is ``../reference``."""
    root = tmp_path / "run"
    names = sorted(os.listdir(recordings_dir / "generated"))
    for i, step in enumerate((12000, 500, 3000)):
        folder = root / "samples" / f"val_{step}"
        folder.mkdir(parents=True)
        for name in names[i * 2:i * 2 + PER_FOLDER]:
            shutil.copy(recordings_dir / "generated" / name, folder / name)
    (root / "checkpoints").mkdir()
    (tmp_path / "reference").mkdir()
    for name in sorted(os.listdir(recordings_dir / "reference"))[:REFERENCE]:
        shutil.copy(recordings_dir / "reference" / name, tmp_path / "reference" / name)
    return root


@pytest.fixture()
def model_calls(monkeypatch):
    """Clips sent through each artifact, by artifact name."""
    calls = {}
    real = EmbeddingRunner.run

    def counting(self, inputs, *rest):
        calls[self.artifact.manifest.name] = calls.get(self.artifact.manifest.name, 0) + len(inputs)
        return real(self, inputs, *rest)
    monkeypatch.setattr(EmbeddingRunner, "run", counting)
    return calls


def _eval_logs(log_dir, recordings_dir, models_dir, *extra):
    return cli.main(["eval-logs", str(log_dir), "--reference", str(log_dir.parent / "reference"), "--models-dir",
                     str(models_dir), "--metrics", "fd,isc", "--quiet", "--no-cache", "--workers", "0", *extra])


def test_folders_are_found_recursively_and_ordered_by_step(log_dir):
    folders = find_generation_folders(log_dir)
    assert [step_of(f) for f in folders] == [500, 3000, 12000]


def test_three_folders_three_results_reference_features_once(log_dir, recordings_dir, models_dir, model_calls,
                                                             capsys):
    assert _eval_logs(log_dir, recordings_dir, models_dir) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[1:]] == ["500", "3000", "12000"]
    for step in (500, 3000, 12000):
        result = json.loads((log_dir / RESULTS_DIR / "samples" / f"val_{step}.json").read_text())
        assert result["step"] == step and result["report"]["files"]["generated"]["used"] == PER_FOLDER
    # each model saw the reference once and every generated clip once (cache off)
    assert model_calls == {"cnn14-16k": REFERENCE + 3 * PER_FOLDER}


@pytest.mark.parity  # 9 s; the content-fingerprint test stays in the fast tier
def test_unchanged_folders_are_skipped_unless_forced(log_dir, recordings_dir, models_dir, model_calls, capsys):
    assert _eval_logs(log_dir, recordings_dir, models_dir) == 0
    first = (log_dir / RESULTS_DIR / "samples" / "val_500.json").read_text()
    model_calls.clear()
    assert _eval_logs(log_dir, recordings_dir, models_dir) == 0
    assert model_calls == {}
    assert capsys.readouterr().out.count("(reused)") == 3
    shutil.copy(recordings_dir / "generated" / "clip_23.wav", log_dir / "samples" / "val_500" / "clip_23.wav")
    assert _eval_logs(log_dir, recordings_dir, models_dir) == 0
    assert model_calls["cnn14-16k"] == REFERENCE + PER_FOLDER + 1  # only val_500 again
    assert (log_dir / RESULTS_DIR / "samples" / "val_500.json").read_text() != first
    model_calls.clear()
    assert _eval_logs(log_dir, recordings_dir, models_dir, "--force") == 0
    assert model_calls["cnn14-16k"] == REFERENCE + 3 * PER_FOLDER + 1


def test_no_matching_folder_is_a_usage_error(tmp_path, recordings_dir, models_dir, capsys):
    (tmp_path / "empty_run").mkdir()
    assert cli.main(["eval-logs", str(tmp_path / "empty_run"), "--reference", str(recordings_dir / "reference"),
                     "--models-dir", str(models_dir), "--quiet"]) == 2
    assert "no folder matching 'val_*'" in capsys.readouterr().err


@pytest.mark.parity  # 6 s; the fast tier's test_trust checks the same for eval (audio overwritten, mtime kept)
def test_a_file_rewritten_with_its_mtime_put_back_is_evaluated_again(log_dir, recordings_dir, models_dir, capsys):
    assert _eval_logs(log_dir, recordings_dir, models_dir) == 0
    before = json.loads((log_dir / RESULTS_DIR / "samples" / "val_500.json").read_text())["report"]["metrics"]
    target = sorted((log_dir / "samples" / "val_500").iterdir())[0]
    stamp = target.stat()
    data, rate = sf.read(target, dtype="int16")
    sf.write(target, np.ascontiguousarray(data[::-1]), rate, subtype="PCM_16")  # same size, other bytes
    os.utime(target, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    capsys.readouterr()
    assert _eval_logs(log_dir, recordings_dir, models_dir) == 0
    assert capsys.readouterr().out.count("(reused)") == 2  # the other two folders
    after = json.loads((log_dir / RESULTS_DIR / "samples" / "val_500.json").read_text())["report"]["metrics"]
    assert after != before
