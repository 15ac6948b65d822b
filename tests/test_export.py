"""The export script: strict checkpoint checks, the manifest, and the exported program's guards."""
import json

import numpy as np
import torch

from audiofidelity.artifacts import file_sha256
from conftest import run_export
from fixtures import checkpoints


def test_manifest_describes_the_artifact(models_dir, checkpoint_dir):
    manifest = json.loads((models_dir / "cnn14-16k.json").read_text())
    assert manifest["schema_version"] == 1 and manifest["name"] == "cnn14-16k"
    assert manifest["artifact"]["sha256"] == file_sha256(models_dir / "cnn14-16k.pt2")
    source = checkpoint_dir / checkpoints.CNN14["cnn14-16k"]["file"]
    assert manifest["source"] == {"file": source.name, "sha256": file_sha256(source),
                                  "url": "https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth"}
    assert manifest["frontend"] == {
        "kind": "log_mel", "sample_rate": 16000, "n_fft": 512, "hop_length": 160, "win_length": 512, "fmax": 8000,
        "window": "hann", "center": True, "pad_mode": "reflect", "power": 2.0, "n_mels": 64, "fmin": 50,
        "htk": False, "mel_norm": "slaney", "amin": 1e-10, "ref": 1.0, "top_db": None}
    assert manifest["inputs"][0]["min"] == {"frames": 64}
    assert [o["name"] for o in manifest["outputs"]] == ["2048", "logits"]
    assert manifest["license"] == "CC-BY-4.0" and "PANNs" in manifest["citation"]


def test_exported_program_has_dynamic_batch_and_frames_and_guards_the_minimum(models_dir):
    module = torch.export.load(str(models_dir / "cnn14-32k.pt2")).module()
    for shape in [(1, 1, 64, 64), (3, 1, 333, 64)]:
        embedding, logits = module(torch.zeros(shape))
        assert embedding.shape == (shape[0], 2048) and logits.shape == (shape[0], 527)
    try:
        module(torch.zeros(1, 1, 63, 64))
    except Exception as exc:  # the exported guard; the runner reports this before calling the model
        assert "64" in str(exc)
    else:
        raise AssertionError("63 frames were accepted")


def test_a_32k_checkpoint_passed_as_16k_is_refused(checkpoint_dir, tmp_path):
    done = run_export("cnn14-16k", checkpoint_dir / checkpoints.CNN14["cnn14-32k"]["file"], tmp_path)
    assert done.returncode != 0
    assert "another sample rate" in done.stderr
    assert not list(tmp_path.iterdir())


def test_a_checkpoint_with_missing_keys_is_refused(tmp_path):
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in checkpoints.cnn14_state_dict("cnn14-16k").items()}
    del state["fc1.bias"]
    torch.save({"model": state}, tmp_path / "broken.pth")
    done = run_export("cnn14-16k", tmp_path / "broken.pth", tmp_path / "out")
    assert done.returncode != 0 and "missing keys ['fc1.bias']" in done.stderr


def test_a_missing_source_is_a_usage_error(tmp_path):
    done = run_export("cnn14-16k", tmp_path / "nope.pth", tmp_path)
    assert done.returncode == 2 and "zenodo.org/record/3987831" in done.stderr
