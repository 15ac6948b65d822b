"""The verify script against the original PANNs Cnn14 (needs the ``verify`` extra, which CI installs)."""
import subprocess
import sys

import pytest

from conftest import ROOT
from fixtures import checkpoints

pytestmark = pytest.mark.parity  # the verify scripts against the original packages: CI's parity tier

pytest.importorskip("torchlibrosa", reason="the verify extra is not installed: pip install -e '.[verify]'")


def _verify(model, source, models_dir, *audio):
    cmd = [sys.executable, str(ROOT / "verify_scripts" / "verify_cnn14.py"), model, "--source", str(source),
           "--models-dir", str(models_dir)]
    for a in audio:
        cmd += ["--audio", str(a)]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.mark.parametrize("model", sorted(checkpoints.CNN14))
def test_export_matches_the_original_panns_cnn14(model, all_checkpoints_dir, all_models_dir, recordings_dir):
    done = _verify(model, all_checkpoints_dir / checkpoints.CNN14[model]["file"], all_models_dir,
                   recordings_dir / "reference" / "clip_03.wav", recordings_dir / "generated" / "clip_09.wav",
                   recordings_dir / "unpaired" / "other_05.wav")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: embedding and logits within 0.0001" in done.stdout


def test_verify_fails_on_the_wrong_checkpoint(checkpoint_dir, models_dir, recordings_dir):
    done = _verify("cnn14-32k", checkpoint_dir / checkpoints.CNN14["cnn14-16k"]["file"], models_dir,
                   recordings_dir / "reference" / "clip_03.wav")
    assert done.returncode != 0 and "does not load into the original 32000 Hz Cnn14" in done.stderr


def test_vggish_export_matches_torchvggish_down_to_fad(checkpoint_dir, models_dir, recordings_dir, tmp_path):
    pytest.importorskip("torchvggish", reason="the verify extra is not installed")
    sets = {}
    for label, folder, names in (("audio", "unpaired", ["other_00.wav", "other_05.wav", "other_08.wav"]),
                                 ("reference", "reference", ["clip_03.wav", "clip_09.wav", "clip_16.wav"])):
        sets[label] = tmp_path / label
        sets[label].mkdir()
        for name in names:
            (sets[label] / name).symlink_to(recordings_dir / folder / name)
    done = subprocess.run([sys.executable, str(ROOT / "verify_scripts" / "verify_vggish.py"), "--source",
                           str(checkpoint_dir / checkpoints.VGGISH_FILE), "--models-dir", str(models_dir),
                           "--audio", str(sets["audio"]), "--reference", str(sets["reference"])],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: examples within 1e-05, embeddings and FAD within 0.0001" in done.stdout


def test_mert_export_matches_transformers_hubert(checkpoint_dir, models_dir, recordings_dir):
    pytest.importorskip("transformers", reason="the verify extra is not installed")
    done = subprocess.run([sys.executable, str(ROOT / "verify_scripts" / "verify_mert.py"), "--source",
                           str(checkpoint_dir / checkpoints.MERT_DIR), "--models-dir", str(models_dir),
                           "--audio", str(recordings_dir / "reference" / "clip_09.wav"),
                           "--audio", str(recordings_dir / "unpaired" / "other_03.wav")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: every layer within 0.0001" in done.stdout
