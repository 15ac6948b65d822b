"""Drop-in replacements: audioldm_eval's EvaluationHelper(Parallel) and frechet_audio_distance's class."""
import json
import math
import warnings

import numpy as np
import pytest

from audiofidelity.compat.audioldm_eval import RESULT_KEYS, EvaluationHelper, EvaluationHelperParallel
from audiofidelity.compat.frechet_audio_distance import FAD_CONDITIONING, FrechetAudioDistance, package_fad_model
from audiofidelity.evaluate import evaluate
from audiofidelity.multidevice import MultiDeviceEvaluator, hashed_shards, join, shard
from conftest import GOLDEN, golden

MAIN_KEYS = ("frechet_distance", "frechet_audio_distance", "kullback_leibler_divergence_sigmoid",
             "kullback_leibler_divergence_softmax", "inception_score_mean", "inception_score_std")


def _close(got, want, key):
    if key in ("frechet_distance", "frechet_audio_distance"):
        return got == pytest.approx(want, rel=1e-3)
    return got == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize("backbone, run, generated", [
    pytest.param("cnn14", "cnn14_16k_paired", "generated", marks=pytest.mark.parity),  # 13 s; golden paths stay fast
    pytest.param("cnn14", "cnn14_16k_unpaired", "unpaired",
                                                              marks=pytest.mark.parity),
    pytest.param("mert", "mert_16k_paired", "generated", marks=pytest.mark.parity),
    pytest.param("mert", "mert_16k_unpaired", "unpaired", marks=pytest.mark.parity)])
def test_main_returns_the_original_dict(recordings_dir, models_dir, tmp_path, backbone, run, generated, monkeypatch):
    monkeypatch.setenv("AUDIOFIDELITY_MODELS", str(models_dir))
    want = json.loads((GOLDEN / run / "metrics.json").read_text())["metrics"]
    helper = EvaluationHelper(16000, "cpu", backbone=backbone, progress=False, write_json=False)
    got = helper.main(str(recordings_dir / generated), str(recordings_dir / "reference"))
    assert tuple(got) == RESULT_KEYS
    for key in MAIN_KEYS:
        assert _close(got[key], want[key], key), (key, got[key], want[key])
    if generated == "unpaired":
        assert got["kullback_leibler_divergence_softmax"] == -1 and got["kullback_leibler_divergence_sigmoid"] == -1
    # what the original's main never computes stays NaN, as there
    for key in ("psnr", "ssim", "lsd", "kernel_inception_distance_mean", "kernel_inception_distance_std"):
        assert math.isnan(got[key]), key


@pytest.mark.parametrize("run, generated", [  # the paired run (PSNR/SSIM of every pair, 8 s) in the parity tier
    pytest.param("cnn14_16k_paired", "generated", marks=pytest.mark.parity), ("cnn14_16k_unpaired", "unpaired")])
def test_calculate_metrics_with_psnr_ssim_matches_the_golden_call(recordings_dir, models_dir, run, generated):
    # the golden data were made with calculate_metrics(..., calculate_psnr_ssim=True)
    want = golden(run)[0]["metrics"]
    helper = EvaluationHelper(16000, "cpu", models_dir=models_dir, progress=False, write_json=False)
    got = helper.calculate_metrics(str(recordings_dir / generated), str(recordings_dir / "reference"), None,
                                   calculate_psnr_ssim=True)
    for key in ("psnr", "ssim"):
        assert got[key] == pytest.approx(want[key], abs=1e-4), key  # -1 in unpaired mode, as the original


def test_result_json_is_written_beside_the_generated_folder(recordings_dir, models_dir, tmp_path):
    import shutil

    gen = tmp_path / "samples" / "val_100"
    shutil.copytree(recordings_dir / "unpaired", gen)
    helper = EvaluationHelper(16000, "cpu", models_dir=models_dir, progress=False)
    got = helper.main(str(gen), str(recordings_dir / "reference"), limit_num=12)
    written = list((tmp_path / "samples").glob("*_val_100.json"))
    assert len(written) == 1
    saved = json.loads(written[0].read_text().replace("NaN", "null"))
    assert saved["frechet_distance"] == got["frechet_distance"]
    assert sorted(p.name for p in gen.iterdir()) == sorted(p.name for p in (recordings_dir / "unpaired").iterdir())
    assert helper.last_report["provenance"]["limit"] == 12


def test_positional_old_form_and_unsupported_rate(models_dir, monkeypatch):
    monkeypatch.setenv("AUDIOFIDELITY_MODELS", str(models_dir))
    helper = EvaluationHelper(32000, "cpu")  # the pre-MERT positional form: CNN14
    assert helper.backbone == "cnn14" and helper._evaluator(("fd",)).entry.name == "cnn14-32k"
    with pytest.raises(ValueError, match="16kHz and 32kHz"):
        EvaluationHelper(22050, "cpu")


@pytest.mark.parity  # 10 s of two full evaluations; test_two_shards_give_bit_identical_features keeps the split fast
def test_parallel_falls_back_to_what_exists_with_a_warning(recordings_dir, models_dir):
    with pytest.warns(RuntimeWarning, match="2 GPU"):
        parallel = EvaluationHelperParallel(16000, 2, models_dir=models_dir, progress=False, write_json=False)
    # the same batch size as the parallel helper's default (1): VGGish splits a clip's examples into passes of it
    single = EvaluationHelper(16000, "cpu", models_dir=models_dir, progress=False, write_json=False, batch_size=1)
    args = (str(recordings_dir / "unpaired"), str(recordings_dir / "reference"))
    assert parallel.main(*args, limit_num=4) == single.main(*args, limit_num=4)


def test_two_shards_give_bit_identical_features(recordings_dir, models_dir):
    from audiofidelity.evaluate import Evaluator

    settings = dict(metrics=["fd", "fad"], models_dir=models_dir, progress=False, cache=False)
    split = MultiDeviceEvaluator(["cpu", "cpu"], **settings)
    whole = Evaluator(**settings)
    names = sorted(p.name for p in (recordings_dir / "reference").iterdir())[:5]
    a = split.side_features(recordings_dir / "reference", names, "ref")
    b = whole.side_features(recordings_dir / "reference", names, "ref")
    assert a.files == b.files == names
    for output in b.per_file:
        assert all(np.array_equal(x, y) for x, y in zip(a.per_file[output], b.per_file[output]))


def test_shards_are_contiguous_and_complete():
    names = [f"{i:03d}" for i in range(50)]
    parts = shard(names, 3)
    assert [len(p) for p in parts] == [17, 17, 16] and sum(parts, []) == names
    assert shard(names[:2], 3) == [["000"], ["001"], []]


def test_hashed_shards_keep_each_files_rank_when_others_come_and_go():
    names = [f"clip_{i:04d}.wav" for i in range(300)]
    parts = hashed_shards(names, 3)
    assert sorted(sum(parts, [])) == names and all(part == sorted(part) for part in parts)
    assert all(70 <= len(part) <= 130 for part in parts)  # 100 each on average
    rank = {name: r for r, part in enumerate(parts) for name in part}
    changed = [n for n in names if n[5:9] not in {f"{i:04d}" for i in range(0, 300, 7)}] + ["new_1.wav", "new_2.wav"]
    after = hashed_shards(sorted(changed), 3)
    assert all(rank[name] == r for r, part in enumerate(after) for name in part if name in rank)


@pytest.mark.parity  # three evaluations; the torchrun test runs the same join, test_hashed_shards_keep... stays fast
def test_hashed_shards_joined_are_the_one_process_features_in_listing_order(recordings_dir, models_dir, tmp_path):
    from audiofidelity.evaluate import Evaluator

    names = sorted(p.name for p in (recordings_dir / "reference").iterdir())[:6]
    for name in names:
        (tmp_path / name).symlink_to(recordings_dir / "reference" / name)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not audio")
    (tmp_path / "zz_empty.wav").write_bytes(b"")
    listed = sorted(p.name for p in tmp_path.iterdir())
    evaluator = Evaluator(metrics=["fd", "fad"], models_dir=models_dir, progress=False)
    whole = evaluator.side_features(tmp_path, listed, "whole")
    parts = hashed_shards(listed, 3)
    assert all(parts) and sum(parts, []) != listed  # every rank holds files, not in listing order
    joined = join(tmp_path, listed, [evaluator.side_features(tmp_path, part, "part") for part in parts])
    assert joined.files == whole.files == names and joined.problems == whole.problems
    assert [p["file"] for p in joined.problems] == ["broken.wav", "zz_empty.wav"]
    for output in whole.per_file:
        assert all(np.array_equal(x, y) for x, y in zip(joined.per_file[output], whole.per_file[output], strict=True))


def test_fad_dropin_equals_eval_with_the_packages_conditioning(recordings_dir, models_dir, tmp_path):
    fad = FrechetAudioDistance(model_name="vggish", sample_rate=16000, models_dir=models_dir)
    score = fad.score(str(recordings_dir / "reference"), str(recordings_dir / "unpaired"))
    report = evaluate(recordings_dir / "unpaired", recordings_dir / "reference", metrics=["fad"],
                      models_dir=models_dir, progress=False, conditioning=FAD_CONDITIONING,
                      fad_model=package_fad_model("vggish")).report
    assert score == pytest.approx(report["metrics"]["frechet_audio_distance"], rel=1e-12)
    assert report["provenance"]["fad_model"]["toolkit"] == "frechet_audio_distance"
    # not audioldm_eval's number: the package averages channels and resamples with resampy, no padding
    audioldm = golden("cnn14_16k_unpaired")[0]["metrics"]["frechet_audio_distance"]
    assert score != pytest.approx(audioldm, rel=1e-4)


@pytest.mark.parity  # 9 s; the drop-in equals eval in the fast tier
def test_fad_dropin_embedding_files_are_written_then_read(recordings_dir, models_dir, tmp_path):
    fad = FrechetAudioDistance(model_name="pann", sample_rate=16000, models_dir=models_dir)
    paths = tmp_path / "bg.npy", tmp_path / "ev.npy"
    first = fad.score(str(recordings_dir / "reference"), str(recordings_dir / "unpaired"), *map(str, paths))
    background = np.load(paths[0])
    assert background.shape == (24, 2048)  # 2-D PANN embeddings, one row per clip
    np.save(paths[0], background * 2.0)  # a stored file is used as it is, not recomputed
    second = fad.score(str(recordings_dir / "reference"), str(recordings_dir / "unpaired"), *map(str, paths))
    assert second != pytest.approx(first)


def test_fad_dropin_in_memory_embeddings_and_statistics(recordings_dir, models_dir):
    import soundfile as sf

    fad = FrechetAudioDistance(model_name="vggish", models_dir=models_dir, use_activation=True)
    audio, rate = sf.read(str(recordings_dir / "reference" / "clip_00.wav"), dtype="float32")
    embeddings = fad.get_embeddings([audio if audio.ndim == 1 else audio[:, 0]], sr=rate)
    assert embeddings.ndim == 2 and embeddings.shape[1] == 128 and embeddings.min() >= 0.0  # ReLU kept
    mu, sigma = fad.calculate_embd_statistics(np.random.default_rng(0).normal(size=(50, 4)))
    assert fad.calculate_frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_fad_dropin_refuses_what_it_cannot_do(models_dir):
    with pytest.raises(ValueError, match="not available"):
        FrechetAudioDistance(model_name="mert", models_dir=models_dir)
    with pytest.raises(ValueError, match="clap submodel '630k' is not exported"):
        FrechetAudioDistance(model_name="clap", sample_rate=48000, submodel_name="630k", models_dir=models_dir)
    with pytest.raises(ValueError, match="with fusion is not exported"):
        FrechetAudioDistance(model_name="clap", sample_rate=48000, enable_fusion=True, models_dir=models_dir)
    with pytest.raises(ValueError, match="48000"):
        FrechetAudioDistance(model_name="clap", sample_rate=44100, models_dir=models_dir)
    with pytest.raises(ValueError, match="channels=2"):
        FrechetAudioDistance(model_name="encodec", sample_rate=48000, channels=1, models_dir=models_dir)
    with pytest.raises(ValueError, match="16000"):
        FrechetAudioDistance(model_name="vggish", sample_rate=32000, models_dir=models_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="vggish model only"):
            FrechetAudioDistance(model_name="pann", use_pca=True, models_dir=models_dir)
