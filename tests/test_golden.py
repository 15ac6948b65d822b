"""The CLI reproduces the original audioldm_eval's numbers on the fixture audio and weights."""
import json

import numpy as np
import pytest

from audiofidelity import cli
from conftest import GOLDEN, LazyRuns, eval_cli, golden, tiered

RUNS = {  # run -> (sample rate, generated folder)
    "cnn14_16k_paired": (16000, "generated"),
    "cnn14_16k_unpaired": (16000, "unpaired"),
    "cnn14_32k_paired": (32000, "generated"),
    "cnn14_32k_unpaired": (32000, "unpaired"),
}
RUN_TIERS = tiered(RUNS, "cnn14_16k_paired")
"""One end-to-end golden run by default; the rest of the matrix in the ``parity`` tier."""


@pytest.fixture(scope="module")
def cli_runs(recordings_dir, models_dir, tmp_path_factory):
    return LazyRuns(lambda run: eval_cli(recordings_dir / RUNS[run][1], recordings_dir / "reference",
                                         tmp_path_factory.mktemp(run), "--sr", str(RUNS[run][0]),
                                         "--models-dir", str(models_dir)))


@pytest.mark.parametrize("run", RUN_TIERS)
def test_fd_and_kid_within_1e4_relative(cli_runs, run):
    report, _ = cli_runs[run]
    want, _ = golden(run)
    got = report["metrics"]
    assert got["frechet_distance"] == pytest.approx(want["metrics"]["frechet_distance"], rel=1e-4)
    kid = want["kid_reference"]
    assert got["kernel_inception_distance_mean"] == pytest.approx(kid["kernel_inception_distance_mean"], rel=1e-4)
    # in paired runs every subset is the whole set, so the original's std is float32 rounding noise
    # (~2e-7): compare the std relative to the larger of itself and the mean
    scale = max(kid["kernel_inception_distance_std"], kid["kernel_inception_distance_mean"])
    assert abs(got["kernel_inception_distance_std"] - kid["kernel_inception_distance_std"]) <= 1e-4 * scale


@pytest.mark.parametrize("run", RUN_TIERS)
def test_fad_within_1e4_relative(cli_runs, run):
    # FAD always runs VGGish at 16 kHz, so the 32 kHz runs carry the same FAD as the 16 kHz ones
    report, _ = cli_runs[run]
    want = golden(run)[0]["metrics"]["frechet_audio_distance"]
    assert report["metrics"]["frechet_audio_distance"] == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("run", [r for r in RUN_TIERS if r.values[0].startswith("cnn14_16k")])
def test_per_file_vggish_embeddings_within_1e4_of_max(cli_runs, run):
    _, features = cli_runs[run]
    want = np.load(GOLDEN / run / "vggish.npz")
    sides = [side for side in ("gen", "ref") if f"{side}/files" in want.files]
    for side in sides:
        for name in want[f"{side}/files"]:
            expected = want[f"{side}/emb/{name}"]
            got = features[f"{side}/vggish/{name}"]
            assert got.shape == expected.shape, name
            assert np.max(np.abs(got - expected)) <= 1e-4 * np.max(np.abs(expected)), (side, name)


@pytest.mark.parametrize("run", RUN_TIERS)
def test_is_and_kl_within_1e4_absolute(cli_runs, run):
    report, _ = cli_runs[run]
    want = golden(run)[0]["metrics"]
    got = report["metrics"]
    for key in ("inception_score_mean", "inception_score_std"):
        assert got[key] == pytest.approx(want[key], abs=1e-4)
    for key in ("kullback_leibler_divergence_softmax", "kullback_leibler_divergence_sigmoid"):
        if want[key] == -1:  # the original's "not computed" sentinel in unpaired mode
            assert got[key] is None and "paired" in report["unavailable"][key]
        else:
            assert got[key] == pytest.approx(want[key], abs=1e-4)


@pytest.mark.parametrize("run", RUN_TIERS)
def test_mode_and_file_order_follow_the_original(cli_runs, run):
    report, features = cli_runs[run]
    meta, want = golden(run)
    assert report["mode"] == ("paired" if meta["meta"]["same_name"] else "unpaired")
    for side in ("gen", "ref"):
        assert list(features[f"{side}/files"]) == list(want[f"{side}/files"])
    assert report["problems"] == []


@pytest.mark.parametrize("run", RUN_TIERS)
def test_per_file_embeddings_and_logits_within_1e4_relative(cli_runs, run):
    _, features = cli_runs[run]
    _, want = golden(run)
    for side in ("gen", "ref"):
        for feature in ("2048", "logits"):
            for name, expected in zip(want[f"{side}/files"], want[f"{side}/{feature}"]):
                got = features[f"{side}/{feature}/{name}"]
                assert np.max(np.abs(got - expected)) <= 1e-4 * np.max(np.abs(expected)), (side, feature, name)


def test_report_carries_provenance(cli_runs):
    report, _ = cli_runs["cnn14_16k_paired"]
    prov = report["provenance"]
    assert prov["sample_rate"] == 16000 and prov["backbone"] == "cnn14"
    classifier, vggish = prov["artifacts"]
    assert classifier["name"] == "cnn14-16k" and len(classifier["sha256"]) == 64
    assert classifier["frontend"]["n_fft"] == 512
    assert vggish["name"] == "vggish" and vggish["frontend"]["kind"] == "vggish_examples"
    assert prov["conditioning"] == {"channel": "first", "remove_dc": True, "resampler": "torchaudio",
                                    "min_samples": 32000, "min_duration": 0.1}
    assert report["files"]["pairs"] == 24


def test_limit_truncates_the_sorted_lists_and_keeps_the_originals_pairing(recordings_dir, models_dir, tmp_path):
    status = cli.main(["eval", str(recordings_dir / "generated"), str(recordings_dir / "reference"), "--limit", "5",
                       "--metrics", "fd,kl", "--models-dir", str(models_dir), "--quiet",
                       "--save-features", str(tmp_path / "f.npz"), "--json", str(tmp_path / "r.json")])
    assert status == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["mode"] == "paired" and report["files"]["pairs"] == 5
    assert set(report["metrics"]) == {"frechet_distance", "kullback_leibler_divergence_softmax"}
    features = np.load(tmp_path / "f.npz")
    _, want = golden("cnn14_16k_paired")
    assert list(features["gen/files"]) == list(want["gen/files"][:5])
    for name, expected in zip(want["gen/files"][:5], want["gen/2048"][:5]):
        assert np.max(np.abs(features[f"gen/2048/{name}"] - expected)) <= 1e-4 * np.max(np.abs(expected))
