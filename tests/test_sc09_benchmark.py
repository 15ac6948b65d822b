"""``audiofidelity sc09`` end to end on the stand-in checkpoint and audio, against the original SaShiMi code's run.

The audio and checkpoint are regenerated here by the ported fixture (``tests/fixtures/sc09.py``) and checked byte
for byte / tensor for tensor against what the golden run used; the figures are ``tests/data/golden/sc09``'s.
"""
import hashlib
import json

import numpy as np
import pytest

from audiofidelity import cli, sc09
from conftest import GOLDEN, run_export
from fixtures import sc09 as fixture

pytestmark = pytest.mark.parity  # the 300 training clips through the classifier once, the 200 generated twice,
# and 100 and 40 of them twice more
SC09 = GOLDEN / "sc09"


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    root = tmp_path_factory.mktemp("sc09")
    fixture.write_audio(root / "audio", seed=0)
    source, _ = fixture.write_checkpoint(root / "ck")
    done = run_export("sc09-resnext", source, root / "models")
    assert done.returncode == 0, done.stderr
    return root


def run(*args):
    assert cli.main(list(map(str, args))) == 0


@pytest.fixture(scope="module")
def train_stats(benchmark, tmp_path_factory):
    """The 300 training clips classified once (``sc09-stats``), for the tests that read them (``--train FOLDER``
    is ``test_a_training_file_gives_the_folders_numbers_and_bad_files_are_named``'s, on a subset)."""
    out = tmp_path_factory.mktemp("sc09-train") / "train.npz"
    run("sc09-stats", benchmark / "audio" / "train", "--out", out, "--models-dir", benchmark / "models")
    return out


def test_the_regenerated_audio_is_the_golden_runs_byte_for_byte(benchmark):
    want = json.loads((SC09 / "audio_sha256.json").read_text())["files"]
    got = {name: hashlib.sha256((benchmark / "audio" / name).read_bytes()).hexdigest() for name in want}
    assert got == want


def test_sc09_equals_the_benchmarks_numbers(benchmark, train_stats, tmp_path):
    audio = benchmark / "audio"
    run("sc09", audio / "generated", "--train", train_stats, "--models-dir", benchmark / "models",
        "--json", tmp_path / "report.json")
    report = json.loads((tmp_path / "report.json").read_text())
    golden = json.loads((SC09 / "metrics.json").read_text())
    want, got = golden["metrics"]["train_vs_generated"], report["metrics"]
    assert got["fid"] == pytest.approx(want["fid"]["value"]["real"], rel=1e-4)
    for key in ("inception_score", "modified_inception_score", "am_score"):
        assert got[key] == pytest.approx(want[key], rel=1e-6), key
    assert got["textbook_inception_score"] == pytest.approx(
        golden["extras_not_from_original"]["textbook_inception_score_generated"], rel=1e-6)
    assert got["ndb_over_k"] == want["ndb_over_k"]
    internals = golden["ndb_internals"]
    ndb = report["details"]["ndb"]
    assert ndb["counts_train"] == internals["counts_train"]
    assert ndb["counts_generated"] == internals["counts_generated"]
    assert ndb["different_bins"] == internals["different_bins"]
    assert report["files"]["generated"] == {"listed": 200, "used": 200, "cut": 3, "padded": 4}
    assert report["files"]["train"] == {"used": 300} and report["problems"] == []


def exact_probabilities(activations: np.ndarray) -> np.ndarray:
    """The final layer and softmax of ``activations`` in float64: what float32 arithmetic approximates."""
    weight, bias = (np.float64(t) for t in fixture.classifier())
    logits = activations.astype(np.float64) @ weight.T + bias
    logits -= logits.max(axis=1, keepdims=True)
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


@pytest.mark.parametrize("side", ["gen", "train"])
def test_per_file_outputs_equal_the_originals(benchmark, train_stats, side):
    """The generated clips through ``sc09.classify``; the training clips as ``sc09-stats`` wrote them."""
    from audiofidelity.artifacts import load

    artifact = load("sc09-resnext", directory=benchmark / "models")
    audio = benchmark / "audio"
    if side == "gen":
        ours = sc09.classify(sc09.generated_files(audio / "generated"), audio, artifact)
        files = ours.files
    else:
        ours = sc09.load_training(train_stats, artifact)
        files = ["train/" + name for name in ours.files]  # sc09-stats names them inside the training folder
    golden = np.load(SC09 / "features.npz")
    assert files == [str(f) for f in golden[f"{side}/files"]]
    act, probs = golden[f"{side}/act"], golden[f"{side}/probs"]
    assert np.max(np.abs(ours.activations - act)) <= 1e-5 * np.max(np.abs(act))
    # The original's probabilities are float32: its last layer sums 1024 products and a bias of up to +-35 that
    # cancel, so they stand 8.7e-6 (generated) and 1.4e-5 (train) x max from the exact softmax of its *own*
    # activations. "Within 1e-5 of the golden" would refuse exact arithmetic; within 1e-5 of the exact value
    # means, by the triangle inequality, within 1e-5 + that rounding of the golden.
    own_rounding = np.max(np.abs(exact_probabilities(act) - probs)) / np.max(probs)
    assert own_rounding > 5e-6  # the cancellation the stand-in was built with is there
    assert np.max(np.abs(ours.probs - probs)) <= (1e-5 + own_rounding) * np.max(probs)


def test_a_training_file_gives_the_folders_numbers_and_bad_files_are_named(benchmark, tmp_path):
    """On 100 of the training clips (the first 10 of each digit: 2·K for NDB's K-means): each path classifies them,
    a third of the work of the whole training set."""
    audio = benchmark / "audio"
    train = tmp_path / "train"
    for path in sc09.training_files(audio / "train"):  # each digit's files in the benchmark's order
        (train / path.parent.name).mkdir(parents=True, exist_ok=True)
        if len(list((train / path.parent.name).iterdir())) < 10:
            (train / path.parent.name / path.name).symlink_to(path)
    run("sc09-stats", train, "--out", tmp_path / "train.npz", "--models-dir", benchmark / "models")
    generated = tmp_path / "gen"
    generated.mkdir()
    for path in sorted((audio / "generated").iterdir())[:40]:
        (generated / path.name).symlink_to(path)
    (generated / "gen_999.wav").write_bytes(b"")
    run("sc09", generated, "--train", tmp_path / "train.npz", "--models-dir", benchmark / "models", "--threshold",
        "--json", tmp_path / "stats.json")
    run("sc09", generated, "--train", train, "--models-dir", benchmark / "models", "--threshold",
        "--json", tmp_path / "folder.json")
    by_stats, by_folder = (json.loads((tmp_path / f).read_text()) for f in ("stats.json", "folder.json"))
    assert by_stats["metrics"] == by_folder["metrics"]
    assert by_stats["problems"] == [{"side": "generated", "file": "gen_999.wav", "reason": "empty file (0 bytes)",
                                     "action": "skipped"}]
    assert by_stats["files"]["generated"]["used"] == 22  # 40 usable, threshold keeps [16, 38)
    assert by_stats["metrics"]["ndb_over_k"] is not None and by_stats["files"]["train"] == {"used": 100}
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((tmp_path / "train.npz").read_bytes()[:1000])
    assert cli.main(["sc09", str(generated), "--train", str(truncated), "--models-dir",
                     str(benchmark / "models")]) == 1  # named, not a traceback
