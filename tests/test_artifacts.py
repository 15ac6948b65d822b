"""Artifact store: resolution, checksum before load, clear errors naming files and the export command."""
import dataclasses
import json
import os

import pytest

from audiofidelity import artifacts, cli, registry
from audiofidelity.errors import ArtifactNotFoundError, ChecksumMismatchError, ManifestError
from audiofidelity.evaluate import Evaluator
from audiofidelity.registry import FadModel, fad_models


def _copy_artifact(models_dir, tmp_path, name="cnn14-16k"):
    out = tmp_path / "models"
    out.mkdir()
    os.link(models_dir / f"{name}.pt2", out / f"{name}.pt2")  # hard link: no 300 MB copy
    (out / f"{name}.json").write_text((models_dir / f"{name}.json").read_text())
    return out


def test_missing_artifact_names_the_files_the_folder_and_the_build_command(tmp_path):
    with pytest.raises(ArtifactNotFoundError) as info:
        artifacts.resolve("cnn14-32k", tmp_path)
    message = str(info.value)
    assert "cnn14-32k.pt2 and cnn14-32k.json missing in " + str(tmp_path) in message
    assert info.value.models == tmp_path
    assert f"audiofidelity models build cnn14-32k --models-dir {tmp_path}" in message


def test_without_a_models_directory_the_default_one_is_looked_in(monkeypatch, tmp_path):
    monkeypatch.setenv("AUDIOFIDELITY_CACHE", str(tmp_path / "cache"))
    assert artifacts.models_dir() == tmp_path / "cache" / "models"
    with pytest.raises(ArtifactNotFoundError) as info:
        artifacts.resolve("cnn14-16k")
    assert info.value.models == tmp_path / "cache" / "models"
    assert str(info.value).endswith("Build it with: audiofidelity models build cnn14-16k")  # no folder to name


def test_environment_variable_is_honoured(models_dir, monkeypatch):
    monkeypatch.setenv("AUDIOFIDELITY_MODELS", str(models_dir))
    found = artifacts.resolve("cnn14-16k")
    assert found.program == models_dir / "cnn14-16k.pt2" and found.manifest.name == "cnn14-16k"
    assert found.origin == "local"


@pytest.mark.parity  # 7 s; test_trust.py refuses a .pt2 changed in place in the fast tier
def test_checksum_mismatch_refuses_to_load(models_dir, tmp_path, recordings_dir, capsys):
    out = _copy_artifact(models_dir, tmp_path)
    manifest = json.loads((out / "cnn14-16k.json").read_text())
    real = manifest["artifact"]["sha256"]
    manifest["artifact"]["sha256"] = "0" * 64
    (out / "cnn14-16k.json").write_text(json.dumps(manifest))
    with pytest.raises(ChecksumMismatchError) as info:
        artifacts.load("cnn14-16k", directory=out)
    assert real in str(info.value) and "0" * 64 in str(info.value)
    status = cli.main(["eval", str(recordings_dir / "generated"), str(recordings_dir / "reference"),
                       "--models-dir", str(out), "--metrics", "fd", "--quiet"])
    assert status == 1 and "sha256" in capsys.readouterr().err


def test_manifest_of_another_schema_is_refused(models_dir, tmp_path):
    out = _copy_artifact(models_dir, tmp_path)
    manifest = json.loads((out / "cnn14-16k.json").read_text())
    manifest["schema_version"] = 99
    (out / "cnn14-16k.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="schema_version 99"):
        artifacts.resolve("cnn14-16k", out)


def test_loaded_programs_are_kept_per_process(models_dir):
    first = artifacts.load("cnn14-16k", directory=models_dir)
    assert artifacts.load("cnn14-16k", directory=models_dir) is first


def test_cli_choices_come_from_the_registry():
    parser = cli.build_parser()
    eval_parser = parser._subparsers._group_actions[0].choices["eval"]
    backbone = next(a for a in eval_parser._actions if a.dest == "backbone")
    assert list(backbone.choices) == sorted(registry.backbones())


def test_manifest_outputs_without_roles_are_refused(models_dir, tmp_path):
    out = _copy_artifact(models_dir, tmp_path)
    manifest = json.loads((out / "cnn14-16k.json").read_text())
    for output in manifest["outputs"]:
        del output["roles"]
    (out / "cnn14-16k.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="declare no roles"):
        artifacts.resolve("cnn14-16k", out)


def test_every_fad_model_is_listed_with_its_artifact():
    names = set(fad_models())
    assert {"vggish", "cnn14-8k", "cnn14-16k", "cnn14-32k", "encodec-24k", "encodec-48k"} <= names
    assert {f"mert-v1-95m-{layer}" for layer in range(1, 13)} <= names


def test_an_artifact_without_the_role_a_fad_model_reads_is_refused_with_the_export_command(models_dir):
    lacking = dataclasses.replace(fad_models()["cnn14-16k"], name="x", role="hidden_states")
    with pytest.raises(ManifestError, match="no output with role 'hidden_states'.*audiofidelity models build cnn14-16k --source"):
        Evaluator(metrics=["fad"], fad_model=lacking, models_dir=models_dir, progress=False, cache=False)
    assert isinstance(lacking, FadModel)
