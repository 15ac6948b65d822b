"""The SC09 benchmark's metrics and classifier input against what the original SaShiMi code computed.

``tests/data/golden/sc09/`` is copied from ``shared/golden/sc09/``: the original ``sashimi/metrics.py`` and
transforms (librosa 0.8.1, scikit-learn 1.9.1), run unmodified on stand-in weights and audio. Here the metrics
take the original's own probabilities and activations, so every difference is the metrics' alone.
"""
import json

import numpy as np
import pytest
import scipy.linalg

from audiofidelity.models import apply_frontend
from audiofidelity.metrics import sc09
from conftest import GOLDEN

SC09 = GOLDEN / "sc09"
FRONTEND = dict(kind="sc09_mel", sample_rate=16000, samples=16000, n_fft=2048, hop_length=512, n_mels=32)


@pytest.fixture(scope="module")
def golden():
    features = np.load(SC09 / "features.npz")
    return json.loads((SC09 / "metrics.json").read_text()), {k: features[k] for k in features.files}


def test_inception_scores_mis_and_am_equal_the_benchmarks(golden):
    metrics, f = golden
    want = metrics["metrics"]["train_vs_generated"]
    assert sc09.inception_score(f["gen/probs"]) == pytest.approx(want["inception_score"], rel=1e-6)
    assert sc09.modified_inception_score(f["gen/probs"]) == pytest.approx(want["modified_inception_score"], rel=1e-6)
    assert sc09.am_score(f["train/probs"], f["gen/probs"]) == pytest.approx(want["am_score"], rel=1e-6)
    textbook = metrics["extras_not_from_original"]["textbook_inception_score_generated"]
    assert sc09.textbook_inception_score(f["gen/probs"]) == pytest.approx(textbook, rel=1e-6)
    halves = metrics["metrics"]["train_halves"]
    assert sc09.inception_score(f["train/probs"][1::2]) == pytest.approx(halves["inception_score_second"], rel=1e-6)


def test_fid_is_real_and_equals_the_real_part_of_the_benchmarks_complex_value(golden):
    metrics, f = golden
    want = metrics["metrics"]["train_vs_generated"]["fid"]["value"]
    assert want["complex"]  # the original's sqrtm of the singular product: complex
    value, details = sc09.fid(f["train/act"], f["gen/act"])
    assert isinstance(value, float) and value == pytest.approx(want["real"], rel=1e-4)
    assert "rows for 1024 dimensions" in details["warnings"][0]
    # two halves of one set: FID 0.148 is a small difference of traces summing to 48, and the original's sqrtm
    # of the singular product is off by 4e-5 there; ours equals the exact value (the nuclear norm of the
    # centred rows' cross product), and the original's real part is within 1e-6 of the traces from it
    first, second = f["train/act"][0::2].astype(np.float64), f["train/act"][1::2].astype(np.float64)
    ca, cb = first - first.mean(0), second - second.mean(0)
    traces = np.sum(ca ** 2) / 149 + np.sum(cb ** 2) / 149
    exact = np.sum((first.mean(0) - second.mean(0)) ** 2) + traces - 2 * scipy.linalg.svdvals(ca @ cb.T).sum() / 149
    ours = sc09.fid(f["train/act"][0::2], f["train/act"][1::2])[0]
    assert ours == pytest.approx(exact, rel=1e-9)
    assert abs(ours - metrics["metrics"]["train_halves"]["fid"]["value"]["real"]) < 1e-6 * traces


def test_ndb_bins_and_counts_equal_the_benchmarks_kmeans(golden):
    metrics, f = golden
    result = sc09.ndb(f["train/act"], f["gen/act"])
    internals = metrics["ndb_internals"]
    assert result["counts_train"] == internals["counts_train"]
    assert result["counts_generated"] == internals["counts_generated"]
    assert result["different_bins"] == internals["different_bins"]
    assert result["ndb_over_k"] == metrics["metrics"]["train_vs_generated"]["ndb_over_k"]
    assert result["kmeans_iterations"] == internals["kmeans_n_iter"]
    p, q = np.array(result["counts_train"]) / 300, np.array(result["counts_generated"]) / 200
    m = (p + q) / 2
    js = 0.5 * sum(a * np.log(a / b) for a, b in zip(p, m) if a > 0) + \
        0.5 * sum(a * np.log(a / b) for a, b in zip(q, m) if a > 0)
    assert result["js_divergence"] == pytest.approx(js, rel=1e-9)


def test_too_few_clips_give_a_reason_not_a_number():
    with pytest.raises(ValueError, match="at least 100 training clips"):
        sc09.ndb(np.zeros((60, 4)), np.zeros((10, 4)))
    with pytest.raises(ValueError, match="at least 2 generated clips"):
        sc09.modified_inception_score(np.full((1, 10), 0.1))


def test_classifier_input_equals_the_benchmarks_mel_from_the_loaded_and_the_fixed_waveform():
    inputs = np.load(SC09 / "inputs.npz")
    for name in inputs["files"]:
        want = inputs[f"mel_db/{name}"]
        for wave in (inputs[f"wave16k_fixed/{name}"], inputs[f"wave16k_loaded/{name}"]):  # cut or padded here
            got = apply_frontend(wave, FRONTEND)
            assert got.shape == (1, 1, 32, 32)
            assert np.max(np.abs(got[0, 0] - want)) <= 1e-4, name
