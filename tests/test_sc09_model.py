"""The SC09 classifier export: its stand-in checkpoint is the golden run's, and the exported program gives the
activations and probabilities the original code computed on the benchmark's own inputs."""
import json
import pickle

import numpy as np
import pytest
import torch

from audiofidelity import artifacts
from audiofidelity.runner import EmbeddingRunner
from conftest import DATA, GOLDEN, run_export
from fixtures import sc09 as fixture


@pytest.mark.parity  # generates all 34M stand-in values
def test_stand_in_tensors_equal_the_pinned_checksums():
    want = json.loads((DATA / "sc09_checkpoint_sha256.json").read_text())
    assert fixture.checksums() == want


@pytest.mark.parity  # writes the 138 MB pickled checkpoint and exports it
def test_export_gives_the_originals_activations_and_probabilities(tmp_path):
    source, _ = fixture.write_checkpoint(tmp_path / "ck")
    done = run_export("sc09-resnext", source, tmp_path / "models")
    assert done.returncode == 0, done.stderr
    artifact = artifacts.load("sc09-resnext", directory=tmp_path / "models")
    inputs, golden = np.load(GOLDEN / "sc09" / "inputs.npz"), np.load(GOLDEN / "sc09" / "features.npz")
    names = list(inputs["files"])
    outputs = EmbeddingRunner(artifact).run([inputs[f"mel_db/{n}"][None, None] for n in names])
    rows = {side: {str(n): i for i, n in enumerate(golden[f"{side}/files"])} for side in ("train", "gen")}
    for k, name in enumerate(names):
        side = "train" if name.startswith("train/") else "gen"
        row = rows[side][name]
        act, probs, logits = (golden[f"{side}/{what}"][row] for what in ("act", "probs", "logits"))
        assert np.max(np.abs(outputs["1024"][k] - act)) <= 1e-5 * np.max(np.abs(act)), name
        # the original ran batches of 128: the last layer's float32 sum (weights x 1024 features + a bias up to
        # +-35) rounds with the batch's GEMM kernel, ~3e-5 here, as eager PyTorch of the same port on these 8
        # inputs does too (1e-5 needs the original's batches of 128, which only a whole-set run can rebuild)
        assert np.max(np.abs(outputs["logits"][k] - logits)) <= 5e-5, name
        got_probs = torch.softmax(torch.from_numpy(outputs["logits"][k]), dim=0).numpy()
        assert np.max(np.abs(got_probs - probs)) <= 5e-5 * np.max(probs), name


class NotTheClassifier:
    """A class the weights-only reader must refuse by name."""


def test_a_checkpoint_holding_other_code_is_refused_by_name(tmp_path):
    path = tmp_path / "resnext.pth"
    with open(path, "wb") as f:
        pickle.dump(NotTheClassifier(), f)
    done = run_export("sc09-resnext", path, tmp_path / "models")
    assert done.returncode != 0
    assert "not the SC09 benchmark's pickled DataParallel(CifarResNeXt)" in done.stderr
    assert not (tmp_path / "models" / "sc09-resnext.pt2").exists()
