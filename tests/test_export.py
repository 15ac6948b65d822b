"""The export script: strict checkpoint checks, the manifest, and the exported program's guards."""
import json
import os

import numpy as np
import pytest
import torch

from audiofidelity.artifacts import embedded_manifest, file_sha256
from audiofidelity.models import mert
from conftest import run_export
from fixtures import checkpoints


def test_manifest_describes_the_artifact(models_dir, checkpoint_dir):
    manifest = json.loads((models_dir / "cnn14-16k.json").read_text())
    assert manifest["schema_version"] == 2 and manifest["name"] == "cnn14-16k"
    # everything but the program's own checksum is sealed inside the program, so its sha256 covers it
    assert embedded_manifest(models_dir / "cnn14-16k.pt2") == {k: v for k, v in manifest.items() if k != "artifact"}
    assert manifest["artifact"]["sha256"] == file_sha256(models_dir / "cnn14-16k.pt2")
    source = checkpoint_dir / checkpoints.CNN14["cnn14-16k"]["file"]
    assert manifest["source"] == {"file": source.name, "sha256": file_sha256(source),
                                  "url": "https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth"}
    assert manifest["frontend"] == {
        "kind": "log_mel", "sample_rate": 16000, "n_fft": 512, "hop_length": 160, "win_length": 512, "fmax": 8000,
        "window": "hann", "center": True, "pad_mode": "reflect", "power": 2.0, "n_mels": 64, "fmin": 50,
        "htk": False, "mel_norm": "slaney", "amin": 1e-10, "ref": 1.0, "top_db": None}
    assert manifest["inputs"][0]["min"] == {"frames": 32}
    assert [o["name"] for o in manifest["outputs"]] == ["2048", "logits"]
    assert manifest["license"] == "CC-BY-4.0" and "PANNs" in manifest["citation"]


def test_exported_program_has_dynamic_batch_and_frames_and_guards_the_minimum(models_dir):
    module = torch.export.load(str(models_dir / "cnn14-32k.pt2")).module()
    for shape in [(1, 1, 32, 64), (2, 1, 63, 64), (3, 1, 333, 64)]:  # 32-63 frames too (size-oblivious export)
        embedding, logits = module(torch.zeros(shape))
        assert embedding.shape == (shape[0], 2048) and logits.shape == (shape[0], 527)
    try:
        module(torch.zeros(1, 1, 31, 64))
    except Exception as exc:  # the exported guard; the runner reports this before calling the model
        assert "32" in str(exc)
    else:
        raise AssertionError("31 frames were accepted")


@pytest.mark.parity  # an export run; test_vggish's wrong-checkpoint refusal stays in the fast tier
def test_a_32k_checkpoint_passed_as_16k_is_refused(checkpoint_dir, tmp_path):
    done = run_export("cnn14-16k", checkpoint_dir / checkpoints.CNN14["cnn14-32k"]["file"], tmp_path)
    assert done.returncode != 0
    assert "another sample rate" in done.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parity  # writes a 300 MB checkpoint and runs an export
def test_a_checkpoint_with_missing_keys_is_refused(tmp_path):
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in checkpoints.cnn14_state_dict("cnn14-16k").items()}
    del state["fc1.bias"]
    torch.save({"model": state}, tmp_path / "broken.pth")
    done = run_export("cnn14-16k", tmp_path / "broken.pth", tmp_path / "out")
    assert done.returncode != 0 and "missing keys ['fc1.bias']" in done.stderr


def test_a_missing_source_is_a_usage_error(tmp_path):
    done = run_export("cnn14-16k", tmp_path / "nope.pth", tmp_path)
    assert done.returncode == 2 and "zenodo.org/record/3987831" in done.stderr


def _override(tmp_path, name, **fields):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"artifacts": {name: fields}}))
    return {"AUDIOFIDELITY_REGISTRY": str(path)}


@pytest.mark.parity  # a whole export through --download
def test_download_fetches_the_original_checks_its_pin_and_records_it(checkpoint_dir, tmp_path):
    source = checkpoint_dir / checkpoints.CNN14["cnn14-16k"]["file"]
    env = _override(tmp_path, "cnn14-16k", source_url=source.as_uri(), source_sha256=file_sha256(source))
    done = run_export("cnn14-16k", None, tmp_path / "out", "--cache", str(tmp_path / "upstream"), env=env)
    assert done.returncode == 0, done.stderr
    assert file_sha256(tmp_path / "upstream" / source.name) == file_sha256(source)
    manifest = json.loads((tmp_path / "out" / "cnn14-16k.json").read_text())
    assert manifest["source"]["sha256"] == file_sha256(source)


def test_download_refuses_bytes_that_differ_from_the_pin(checkpoint_dir, tmp_path):
    source = checkpoint_dir / checkpoints.CNN14["cnn14-16k"]["file"]
    env = _override(tmp_path, "cnn14-16k", source_url=source.as_uri(), source_sha256="0" * 64)
    done = run_export("cnn14-16k", None, tmp_path / "out", "--cache", str(tmp_path / "upstream"), env=env)
    assert done.returncode != 0 and "the registry's pin is " + "0" * 64 in done.stderr
    assert not (tmp_path / "upstream" / source.name).exists() and not (tmp_path / "out").exists()


@pytest.mark.parity  # a whole MERT export: the CNN14 download test covers the same path in the fast tier
def test_download_of_mert_takes_a_pinned_revision_from_the_hf_cache(checkpoint_dir, tmp_path):
    revision = "abcdef0123456789abcdef0123456789abcdef01"
    snap = tmp_path / "hf" / "hub" / "models--m-a-p--MERT-v1-95M" / "snapshots" / revision
    snap.mkdir(parents=True)
    for file in (checkpoint_dir / checkpoints.MERT_DIR).iterdir():
        os.link(file, snap / file.name)
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    missing = run_export("mert-v1-95m", None, tmp_path / "out", env=env)
    assert missing.returncode != 0 and f"at {mert.REVISION}" in missing.stderr  # the registry's commit, not cached
    done = run_export("mert-v1-95m", None, tmp_path / "out", "--revision", revision, env=env)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "out" / "mert-v1-95m.json").read_text())
    assert manifest["source"]["revision"] == revision
    assert manifest["source"]["sha256"]["pytorch_model.bin"] == file_sha256(snap / "pytorch_model.bin")
