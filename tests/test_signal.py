"""PSNR, SSIM and LSD: golden parity, closed forms, transcriptions, and the evaluation wiring."""
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from audiofidelity import cli, evaluate
from audiofidelity.audio import Conditioning, load_conditioned
from audiofidelity.frontends import PAIRED_MEL, paired_mel
from audiofidelity.metrics.signal import log_spectral_distance, lsd_preprocess, psnr, ssim
from conftest import GOLDEN, golden, on_thread_counts

MELS = np.load(GOLDEN / "signal_mels.npz")
RUNS = {16000: "cnn14_16k_paired", 32000: "cnn14_32k_paired"}
UNPADDED = Conditioning(min_samples=0)


def _mel(path, rate):
    return paired_mel(load_conditioned(path, rate, UNPADDED), sample_rate=rate, **PAIRED_MEL[rate])


@pytest.mark.parametrize("key", sorted(MELS))
def test_paired_mel_matches_the_original(recordings_dir, key):
    rate, side, clip = key.split("/")
    want = MELS[key]
    got = _mel(recordings_dir / ("generated" if side == "gen" else "reference") / clip, int(rate))[:, :want.shape[1]]
    assert got.shape == want.shape
    # The original's float32 conv1d STFT, run as the same op: near-silent bins are its rounding (an FFT misses
    # them by up to 8e-5). The 0.5-s clip is short enough (< 20480 samples) for torch to run the conv as
    # im2col + gemm, whose rounding depends on the CPU: torch 2.8 (the golden run's) gives our bits here, and
    # against a float64 convolution the golden mel is 1.5e-5 off and ours 1.7e-5 (README, known differences).
    bound = 1.1e-5 if key == "32000/target/clip_09.wav" else 1e-5
    assert np.max(np.abs(got - want)) <= bound


@pytest.mark.parametrize("seconds", [0.5, 3.0])
@pytest.mark.parametrize("rate", sorted(RUNS))
def test_paired_mel_does_not_depend_on_torchs_thread_count(rate, seconds):
    # workers run on one thread, --workers 0 on every core: the bits must agree (0.5 s takes torch's gemm path)
    wave = np.random.RandomState(0).uniform(-0.5, 0.5, int(seconds * rate)).astype(np.float32)
    first, *others = on_thread_counts(lambda: paired_mel(wave, sample_rate=rate, **PAIRED_MEL[rate]))
    for other in others:
        np.testing.assert_array_equal(other, first)


@pytest.fixture(scope="module")
def signal_reports(recordings_dir):
    return {rate: evaluate(recordings_dir / "generated", recordings_dir / "reference", sample_rate=rate,
                           metrics=["psnr", "ssim", "lsd"], per_file=True, progress=False).report
            for rate in RUNS}


@pytest.mark.parametrize("rate", sorted(RUNS))
def test_psnr_and_ssim_per_file_and_mean_within_1e4(signal_reports, rate):
    report, (meta, _) = signal_reports[rate], golden(RUNS[rate])
    for name, value in meta["meta"]["per_file_psnr"].items():
        assert report["per_file"][name]["psnr"] == pytest.approx(value, abs=1e-4), name
        assert report["per_file"][name]["ssim"] == pytest.approx(meta["meta"]["per_file_ssim"][name], abs=1e-4), name
    assert report["metrics"]["psnr"] == pytest.approx(meta["metrics"]["psnr"], abs=1e-4)
    assert report["metrics"]["ssim"] == pytest.approx(meta["metrics"]["ssim"], abs=1e-4)


@pytest.mark.parametrize("rate", sorted(RUNS))
def test_lsd_per_file_and_mean_within_1e4_relative(signal_reports, rate):
    # upsampled clips included: their LSD above the source's Nyquist is resampler rounding, which
    # the torchaudio-equal resampler reproduces bit for bit
    report, (meta, _) = signal_reports[rate], golden(RUNS[rate])
    for name, value in meta["lsd_reference"]["per_file"].items():
        assert report["per_file"][name]["lsd"] == pytest.approx(value["lsd"], rel=1e-4), name
    assert report["metrics"]["lsd"] == pytest.approx(meta["lsd_reference"]["lsd"], rel=1e-4)


def test_identical_inputs_give_ssim_1_infinite_psnr_and_lsd_0():
    mel = np.random.RandomState(0).uniform(0, 1, (64, 50)).astype(np.float32)
    assert ssim(mel, mel, data_range=1.0) == pytest.approx(1.0, abs=1e-12)
    assert psnr(mel, mel) == np.inf
    wave = np.random.RandomState(1).standard_normal(8000).astype(np.float32)
    assert log_spectral_distance(wave, wave, sample_rate=16000) == pytest.approx(0.0, abs=1e-6)


def test_ssim_of_a_constant_image_with_itself_does_not_divide_by_zero():
    const = np.full((64, 20), 0.5)
    assert ssim(const, const, data_range=1.0) == pytest.approx(1.0)


def test_ssim_matches_a_loop_transcription_of_the_definition():
    rs = np.random.RandomState(2)
    x, y = rs.uniform(0, 1, (12, 15)), rs.uniform(0, 1, (12, 15))
    c1, c2, vals = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2, []
    for i in range(3, 9):  # windows fully inside: the cropped region of a 7x7 window
        for j in range(3, 12):
            a, b = x[i - 3:i + 4, j - 3:j + 4].ravel(), y[i - 3:i + 4, j - 3:j + 4].ravel()
            cov = np.cov(a, b)  # sample covariance, ddof 1
            vals.append((2 * a.mean() * b.mean() + c1) * (2 * cov[0, 1] + c2)
                        / ((a.mean() ** 2 + b.mean() ** 2 + c1) * (cov[0, 0] + cov[1, 1] + c2)))
    assert ssim(x, y, data_range=1.0) == pytest.approx(np.mean(vals), rel=1e-10)


def test_psnr_is_10_log10_of_range_over_mse():
    a = np.zeros((4, 4))
    b = np.full((4, 4), 0.1)
    assert psnr(a, b) == pytest.approx(20.0)
    assert psnr(a - 0.5, b) == pytest.approx(10 * np.log10(4 / 0.36))  # negative values: range 2


def test_lsd_preprocess_applies_offset_mean_peak_and_trim():
    gen = np.concatenate([np.full(1120, 9.0), np.arange(10.0)])
    ref = np.arange(20.0) * 2
    g, r = lsd_preprocess(gen, ref)
    assert len(g) == len(r) == 10
    assert np.max(np.abs(g)) == pytest.approx(1.0) and g.mean() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="silent"):
        lsd_preprocess(np.concatenate([np.ones(1120), np.zeros(100)]), ref)


def test_signal_metrics_need_no_model_and_report_left_out_pairs(tmp_path, recordings_dir, capsys):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir(), ref.mkdir()
    for name in ("clip_00.wav", "clip_02.wav", "clip_04.wav"):
        shutil.copy(recordings_dir / "reference" / name, ref)
    shutil.copy(recordings_dir / "generated" / "clip_00.wav", gen)
    shutil.copy(recordings_dir / "reference" / "clip_02.wav", gen)  # identical: infinite PSNR
    quiet_tail = np.zeros(16000, np.float32)
    quiet_tail[:1000] = np.tile([0.25, -0.25], 500)  # zero mean, so the tail stays exactly 0: silent after the offset
    sf.write(gen / "clip_04.wav", quiet_tail, 16000)
    status = cli.main(["eval", str(gen), str(ref), "--metrics", "psnr,ssim,lsd", "--per-file", "--quiet",
                       "--json", str(tmp_path / "r.json")])  # no --models-dir: no artifact anywhere
    assert status == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["provenance"]["artifacts"] == []
    left_out = {(p["file"], p["action"]) for p in report["problems"] if p["side"] == "pair"}
    assert left_out == {("clip_02.wav", "left out of psnr"), ("clip_02.wav", "left out of ssim"),
                        ("clip_04.wav", "left out of lsd")}
    assert report["per_file"]["clip_02.wav"]["psnr"] is None
    assert report["metrics"]["psnr"] == pytest.approx(np.mean([report["per_file"][n]["psnr"]
                                                                for n in ("clip_00.wav", "clip_04.wav")]))


def test_unpaired_mode_leaves_signal_metrics_null_with_the_reason(recordings_dir):
    report = evaluate(recordings_dir / "unpaired", recordings_dir / "reference", metrics=["psnr", "lsd"],
                      progress=False).report
    assert report["metrics"] == {"psnr": None, "lsd": None}
    assert "needs paired mode" in report["unavailable"]["psnr"]


def test_one_evaluator_computes_a_subset_of_its_metrics_per_run(recordings_dir):
    from audiofidelity import Evaluator

    with Evaluator(metrics=["psnr", "ssim"], progress=False, cache=False) as evaluator:
        both = evaluator.evaluate(recordings_dir / "generated", recordings_dir / "reference").report
        only = evaluator.evaluate(recordings_dir / "generated", recordings_dir / "reference", metrics=["ssim"]).report
        with pytest.raises(ValueError, match="were not selected when this evaluator was built"):
            evaluator.evaluate(recordings_dir / "generated", recordings_dir / "reference", metrics=["lsd"])
    assert only["metrics"] == {"ssim": both["metrics"]["ssim"]}
