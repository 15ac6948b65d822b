"""OpenL3 mel256 (openl3 0.4.2) fed as stable-audio-metrics' ``openl3_fd.py`` feeds it (issue #33).

Fast tier: each step against a formula written here from the original's code: openl3's framing
(``_preprocess_audio_batch``), kapre's frontend through librosa's own STFT and mel bank, ``soxr.resample``'s lengths
and samples, pyloudnorm's peak before soxr, the stereo rows, the FD of "fake stereo". Parity tier: openl3 itself in
TensorFlow (``verify_scripts/openl3_original.py`` in its own virtualenv): the stand-in's layout against openl3's
constructed model, kapre's mel, the network, and ``eval --fad-model openl3-*`` against stable-audio-metrics' code
(``verify_scripts/verify_openl3.py``).
"""
from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from audiofidelity import cli
from audiofidelity.audio import Conditioning, condition, condition_stereo
from audiofidelity.models import openl3
from audiofidelity.resample import resample, resampled_length
from fixtures.openl3 import FILES, LAYERS, weights, write_weights
import original_runs

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {k: v for k, v in openl3.FRONTEND.items() if k != "kind"}
SPECTRAL = {k: PARAMS[k] for k in ("n_fft", "hop_length", "n_mels", "amin", "dynamic_range")}


# openl3's framing ---------------------------------------------------------------------------------------------------

def openl3_frames(audio: np.ndarray, hop_size: float) -> np.ndarray:
    """openl3 0.4.2 ``core._preprocess_audio_batch`` after its resampling, transcribed (``center=True``)."""
    frame_len, hop_len = 48000, int(hop_size * 48000)
    audio = np.pad(audio, (int(frame_len / 2.0), 0), mode="constant", constant_values=0)
    audio_len = audio.size
    if audio_len < frame_len:
        pad_length = frame_len - audio_len
    else:
        pad_length = int(np.ceil((audio_len - frame_len) / float(hop_len))) * hop_len - (audio_len - frame_len)
    if pad_length > 0:
        audio = np.pad(audio, (0, pad_length), mode="constant", constant_values=0)
    n_frames = 1 + int((len(audio) - frame_len) / float(hop_len))
    return np.lib.stride_tricks.as_strided(audio, shape=(frame_len, n_frames),
                                           strides=(audio.itemsize, hop_len * audio.itemsize)).T


@pytest.mark.parametrize("seconds", [0.1, 0.5, 0.99, 1.0, 1.2345, 2.5, 3.0, 10.0, 10.26])
@pytest.mark.parametrize("hop", [0.1, 0.5])
def test_the_windows_are_openl3s_framing(seconds, hop):
    n = int(round(seconds * 48000))
    wave = np.arange(1, n + 1, dtype=np.float32)
    ours = openl3.openl3_windows(wave, window_samples=48000, hop_samples=int(hop * 48000), center=True)
    assert np.array_equal(ours, openl3_frames(wave, hop))
    assert len(ours) == openl3.window_count(n, window_samples=48000, hop_samples=int(hop * 48000), center=True)


# kapre's frontend ---------------------------------------------------------------------------------------------------

def kapre_formula(window: np.ndarray) -> np.ndarray:
    """kapre 0.3.7's ``get_melspectrogram_layer`` as openl3 builds it, through librosa's own pieces: zeros after the
    window to ``ceil(48000 / 242)`` frames (``pad_end``), ``librosa.stft(center=False)`` with the periodic Hann
    window, its magnitude times ``librosa.filters.mel`` (Slaney), openl3's decibels less the maximum, at least -80."""
    import librosa

    frames = math.ceil(len(window) / 242)
    padded = np.pad(window.astype(np.float64), (0, (frames - 1) * 242 + 2048 - len(window)))
    magnitude = np.abs(librosa.stft(padded, n_fft=2048, hop_length=242, window="hann", center=False))
    mel = librosa.filters.mel(sr=48000, n_fft=2048, n_mels=256, htk=False, norm="slaney").astype(np.float32)
    db = 10.0 * np.log10(np.maximum(mel.astype(np.float64) @ magnitude, 1e-10))
    return np.maximum(db - db.max(), -80.0)


@pytest.mark.parametrize("signal", ["noise", "tone", "quiet", "silence_then_click"])
def test_the_decibel_mel_is_kapres(signal):
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 48000
    window = {"noise": 0.1 * rng.standard_normal(48000), "tone": 0.5 * np.sin(2 * np.pi * 1000 * t),
              "quiet": 1e-7 * rng.standard_normal(48000),
              "silence_then_click": np.where(np.arange(48000) == 40000, 1.0, 0.0)}[signal].astype(np.float32)
    ours = openl3.decibel_mel(window[None], sample_rate=48000, **SPECTRAL)
    assert ours.shape == (1, 1, 256, 199) and ours.dtype == np.float32
    assert np.abs(ours[0, 0] - kapre_formula(window)).max() < 1e-4  # float64 both; the float32 result
    assert ours.max() == 0.0 and ours.min() >= -80.0


def test_the_mel_bank_is_librosas_float32_one_bit_for_bit():
    import librosa

    want = librosa.filters.mel(sr=48000, n_fft=2048, n_mels=256, fmin=0.0, fmax=None, htk=False, norm="slaney")
    assert want.dtype == np.float32
    assert np.array_equal(openl3.slaney_mel_matrix(48000, 2048, 256), want.T.astype(np.float64))


def test_a_stereo_clip_gives_its_left_windows_then_its_right():
    rng = np.random.default_rng(1)
    pair = (0.1 * rng.standard_normal((2, 70000))).astype(np.float32)
    both = openl3.openl3_mel(pair, **{**PARAMS, "hop_seconds": 0.5, "channels": 2})
    with pytest.raises(ValueError, match="channels=1"):
        openl3.openl3_mel(pair, **{**PARAMS, "hop_seconds": 0.5})
    left = openl3.openl3_mel(pair[0], **{**PARAMS, "hop_seconds": 0.5})
    right = openl3.openl3_mel(pair[1], **{**PARAMS, "hop_seconds": 0.5})
    assert np.array_equal(both, np.concatenate([left, right]))
    rows = np.arange(len(both) * 3, dtype=np.float32).reshape(len(both), 3)
    joined = openl3.join_channels(rows)
    assert joined.shape == (len(left), 6)
    assert np.array_equal(joined[:, :3], rows[:len(left)]) and np.array_equal(joined[:, 3:], rows[len(left):])
    assert np.array_equal(openl3.twice(rows), np.concatenate([rows, rows], axis=1))


# reading a file as openl3_fd does -----------------------------------------------------------------------------------

@pytest.mark.parametrize("rates", [(44100, 48000), (48000, 44100), (16000, 44100), (22050, 44100), (32000, 44100),
                                   (8000, 44100), (96000, 44100), (44100, 32000)])
def test_the_soxr_resampler_is_a_direct_soxr_call(rates):
    import soxr  # librosa's dependency

    rng = np.random.default_rng(2)
    for n in (1, 2, 7, 239, 240, 241, 1000, 44100, 44101, 123457):
        x = (0.3 * rng.standard_normal(n)).astype(np.float32)
        want = soxr.resample(x, *rates)
        assert resampled_length(n, *rates, method="soxr") == len(want)
        assert np.array_equal(resample(x, *rates, method="soxr"), want)


def test_a_half_sample_length_rounds_as_python_soxrs_float_arithmetic():
    import soxr

    # n * new / old ends in .5 for these; the float64 quotient python-soxr forms rounds it down or up
    for n, rates in ((240, (48000, 44100)), (1000, (8000, 44100)), (80, (48000, 44100)), (400, (48000, 44100)),
                     (1, (44100, 22050)), (3, (44100, 22050)), (5, (48000, 24000))):
        assert resampled_length(n, *rates, method="soxr") == len(soxr.resample(np.zeros(n, np.float32), *rates))


def test_the_resampler_is_resampy_0_2_bit_for_bit():
    """Against resampy 0.2.2's own output (``tests/data/resampy_0.2.2_kaiser_best.npz``, written by it in openl3's
    virtualenv: float32 noise, up- and downsampling, 1 to 2401 samples); resampy 0.3 redesigned ``kaiser_best``
    (8192 samples per crossing, roll-off 0.917), which moves these outputs by up to 0.1."""
    with np.load(ROOT / "tests" / "data" / "resampy_0.2.2_kaiser_best.npz") as golden:
        for i in range(9):
            x, (old, new) = golden[f"x{i}"], golden[f"rates{i}"]
            ours = resample(x, int(old), int(new), method="resampy_0.2")
            assert resampled_length(len(x), int(old), int(new), method="resampy_0.2") == len(golden[f"y{i}"])
            assert np.array_equal(ours, golden[f"y{i}"])
        newer = resample(golden["x0"], 44100, 48000, method="resampy")
        assert np.abs(newer - golden["y0"]).max() > 1e-2


def test_the_peak_comes_before_soxr_as_in_openl3_fd():
    """``pyln.normalize.peak(audio, -1.0)`` then ``soxr.resample(audio, sr, samplingrate)`` (float64 there)."""
    import soxr

    rng = np.random.default_rng(3)
    audio = (0.05 * rng.standard_normal((2, 22050))).astype(np.float32)
    gain = np.power(10.0, -1.0 / 20.0) / np.max(np.abs(audio.mean(axis=0)))
    want = soxr.resample(gain * audio.mean(axis=0), 22050, 44100)  # the unbatched path: librosa's mono mix first
    read = Conditioning(**dict(openl3.SAM_READ))
    ours = condition(audio, 22050, 44100, read)
    assert np.abs(ours - want).max() < 2e-7
    # the batched path's stereo: one gain, the two channels' peak
    stereo = condition_stereo(audio, 22050, 44100, read)
    joint = np.power(10.0, -1.0 / 20.0) / np.max(np.abs(audio))
    want = soxr.resample((joint * audio).T, 22050, 44100).T
    assert stereo.shape == want.shape and np.abs(stereo - want).max() < 2e-7


def test_fake_stereo_doubles_the_frechet_distance():
    """The unbatched path's rows beside themselves: mean (m, m), covariance [[S, S], [S, S]], so FD is twice the
    mono FD (from the definition: both terms double)."""
    from audiofidelity.metrics.frechet import frechet_distance_from_features

    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((300, 6)), rng.standard_normal((280, 6)) * 1.3 + 0.2
    mono = frechet_distance_from_features(a, b)
    doubled = frechet_distance_from_features(openl3.twice(a), openl3.twice(b))
    assert doubled == pytest.approx(2 * mono, rel=1e-6)


@pytest.mark.parametrize("rate", ["96000", "999", "44100.5", "x"])
def test_an_evaluation_rate_openl3_cannot_take_is_refused_by_name(rate, tmp_path, capsys):
    (tmp_path / "a").mkdir()
    with pytest.raises(SystemExit) as exited:
        cli.main(["eval", str(tmp_path / "a"), str(tmp_path / "a"), "--metrics", "fad", "--fad-model",
                  "openl3-music-stereo", "--openl3-rate", rate, "--models-dir", str(tmp_path)])
    assert exited.value.code == 2 and "--openl3-rate" in capsys.readouterr().err


def test_the_rate_option_needs_an_openl3_fad_model(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    with pytest.raises(SystemExit) as exited:
        cli.main(["eval", str(tmp_path / "a"), str(tmp_path / "a"), "--metrics", "fad", "--openl3-rate", "48000",
                  "--models-dir", str(tmp_path)])
    assert exited.value.code == 2 and "--openl3-rate needs --fad-model openl3-" in capsys.readouterr().err


# the stand-in -------------------------------------------------------------------------------------------------------

STAND_IN_SHA256 = {"openl3-mel256-music": "ca9e703a7de2fd08f2b06d18f0f2bb39eab7314498a288182a137d8949d3d712",
                   "openl3-mel256-env": "25e1b8f571b8050fe42502ce4d4c8c2f67ed94250fe5b920e12ab7a4c89994b5"}
"""sha256 over every weight's name and its array's sha256 (``stand_in.state_dict_sha256``), in file order."""


def test_the_stand_in_is_the_same_on_every_machine():
    from fixtures.stand_in import state_dict_sha256

    for model in FILES:
        flat = {key: array for _, arrays in weights(model) for key, array in arrays}
        assert len(flat) == 2 * 8 + 4 * 8
        assert state_dict_sha256(flat) == STAND_IN_SHA256[model]


def test_the_exporter_reads_the_keras_file_by_topology(tmp_path):
    """Names are not read (Keras loads by position): the stand-in with its layers renamed loads the same network."""
    import h5py
    import torch
    from audiofidelity.exporters.openl3 import load_net

    path = write_weights(tmp_path / "a.h5", "openl3-mel256-music")
    net = load_net(path)
    layers = weights("openl3-mel256-music")
    kernel = dict(layers)["conv2d"][0][1]
    assert torch.equal(net.convs[0].weight, torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
    assert net.bn_input.eps == 1e-3 and float(net.bn_input.running_mean[0]) == dict(layers)[
        "batch_normalization"][2][1][0]
    with h5py.File(path, "r+") as f:
        f.attrs["layer_names"] = np.array([f"renamed_{name}".encode() if name in f else name.encode()
                                           for name, _, _ in LAYERS])
        for name, _, _ in LAYERS:
            f.move(name, f"renamed_{name}")
    renamed = load_net(path)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), renamed.state_dict().values()))
    # the upstream download is gzipped (``<file>-v0_4_0.h5.gz``, what openl3's setup.py fetches): read as it is
    gzipped = tmp_path / "openl3_audio_mel256_music.h5"
    gzipped.write_bytes(gzip.compress(path.read_bytes()))
    unzipped = load_net(gzipped)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), unzipped.state_dict().values()))
    x = torch.rand(2, 1, 256, 199) * -80
    with torch.no_grad():
        assert net(x).shape == (2, 512)


def test_a_file_that_is_not_openl3s_is_refused_by_name(tmp_path):
    import h5py
    from audiofidelity.exporters.openl3 import load_net

    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(SystemExit, match="not an HDF5 file"):
        load_net(tmp_path / "text.h5")
    with h5py.File(tmp_path / "short.h5", "w") as f:
        f.attrs["layer_names"] = np.array([b"conv2d"])
        f.create_group("conv2d").attrs["weight_names"] = np.array([b"conv2d/kernel:0"])
        f["conv2d"].create_dataset("conv2d/kernel:0", data=np.zeros((3, 3, 1, 64), np.float32))
    with pytest.raises(SystemExit, match="1 layers with weights, expected 16"):
        load_net(tmp_path / "short.h5")


def write_clips(root: Path) -> tuple[Path, Path]:
    """Two folders of WAV files (stable-audio-metrics globs ``*.wav``): mono and stereo, 16 to 48 kHz, 0.4 to 4 s
    (one shorter than openl3's 1-s window), tones, chirps and noise, stored as 16-bit and float."""
    import soundfile as sf
    from scipy.io import wavfile

    rng = np.random.default_rng(6)
    folders = root / "gen", root / "ref"
    for k, folder in enumerate(folders):
        folder.mkdir(parents=True)
        for i, (rate, seconds, channels) in enumerate([(44100, 2.3, 2), (48000, 1.0, 1), (16000, 0.4, 1),
                                                       (22050, 3.1, 2), (32000, 4.0, 1), (44100, 1.7, 2)]):
            t = np.arange(int(rate * seconds)) / rate
            f0 = 150.0 * (i + 1) + 40.0 * k
            x = 0.3 * np.sin(2 * np.pi * (f0 + 400 * t * (i % 2)) * t) + 0.03 * rng.standard_normal(len(t))
            if channels == 2:
                x = np.stack([x, 0.6 * np.roll(x, 29) + 0.02 * rng.standard_normal(len(t))], axis=1)
            if i % 2:  # float32 through scipy: libsndfile's float WAV holds a PEAK chunk stamped with the time of
                wavfile.write(folder / f"clip{i}.wav", rate, x.astype(np.float32))  # writing (the originals' cache key)
            else:
                sf.write(folder / f"clip{i}.wav", x.astype(np.float32), rate, subtype="PCM_16")
    return folders


# parity tier: openl3 itself -----------------------------------------------------------------------------------------

def original_python() -> str:
    python = os.environ.get("OPENL3_ORIGINAL_PYTHON")
    if not python or not Path(python).exists():
        pytest.skip("openl3's virtualenv (TensorFlow 2.15, kapre 0.3.7) is not built: set OPENL3_ORIGINAL_PYTHON "
                    "(verify_scripts/openl3_original.py says how; .ci/run builds it)")
    return python


@pytest.fixture(scope="module")
def openl3_dir(tmp_path_factory) -> Path:
    """Both stand-ins written and exported (the parity tier's own: 10 s, so these tests need no other model)."""
    from conftest import run_export
    from fixtures.openl3 import write_openl3

    out = tmp_path_factory.mktemp("openl3")
    write_openl3(out)
    for model, file in FILES.items():
        done = run_export(model, out / file, out)
        assert done.returncode == 0, done.stderr
    return out


def run_original(*args: str) -> None:
    done = original_runs.run_original(original_python(), ROOT / "verify_scripts" / "openl3_original.py", list(args),
                                      timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parity
def test_the_stand_in_has_the_constructed_models_layers(tmp_path):
    run_original("keys", str(tmp_path / "keys.json"))
    constructed = json.loads((tmp_path / "keys.json").read_text())
    assert [name for name, *_ in constructed] == [name for name, _, _ in LAYERS]
    ours = dict(weights("openl3-mel256-music"))
    for name, _, theirs in constructed:
        assert [(key, list(array.shape)) for key, array in ours[name]] == [(key, shape) for key, shape in theirs]


@pytest.mark.parity
def test_the_resampling_and_framing_are_openl3s(tmp_path):
    """openl3's ``preprocess_audio`` (resampy 0.2.2's kaiser_best to 48 kHz in float32, the centring, the end padding,
    the windows every 0.5 s) against the frontend's framing after ``resample(method="resampy_0.2")``: bit for bit."""
    rng = np.random.default_rng(7)
    clips = {f"audio{i}": (0.2 * rng.standard_normal(int(rate * seconds))).astype(np.float32)
             for i, (rate, seconds) in enumerate(((44100, 2.3), (16000, 0.4), (48000, 1.0), (22050, 3.05),
                                                  (32000, 1.75)))}
    rates = {f"rate{i}": np.array(rate) for i, rate in enumerate((44100, 16000, 48000, 22050, 32000))}
    np.savez(tmp_path / "in.npz", **clips, **rates)
    run_original("frames", str(tmp_path / "in.npz"), str(tmp_path / "out.npz"), "0.5")
    with np.load(tmp_path / "out.npz") as saved:
        for i in range(len(clips)):
            wave = resample(clips[f"audio{i}"], int(rates[f"rate{i}"]), 48000, method="resampy_0.2")
            ours = openl3.openl3_windows(wave, window_samples=48000, hop_samples=24000, center=True)
            theirs = saved[f"frames{i}"].reshape(len(saved[f"frames{i}"]), -1)
            assert ours.shape == theirs.shape
            assert np.array_equal(ours, theirs)


@pytest.mark.parity
def test_the_mel_and_the_network_are_openl3s(openl3_dir, tmp_path):
    """kapre's float32 frontend against ours (float64), and openl3's Keras network loaded from the stand-in (file
    format included) against the exported artifact, on the same mel."""
    import torch

    from audiofidelity.artifacts import load

    rng = np.random.default_rng(5)
    t = np.arange(48000) / 48000
    frames = np.stack([0.1 * rng.standard_normal(48000), 0.5 * np.sin(2 * np.pi * 440 * t),
                       0.3 * np.sin(2 * np.pi * (200 + 3000 * t) * t), np.zeros(48000)]).astype(np.float32)
    frames[3, 30000] = 0.5
    np.savez(tmp_path / "in.npz", frames0=frames)
    run_original("mel", str(tmp_path / "in.npz"), str(tmp_path / "mel.npz"))
    theirs = np.load(tmp_path / "mel.npz")["mel0"]
    ours = openl3.decibel_mel(frames, sample_rate=48000, **SPECTRAL)[:, 0]
    assert theirs.shape == ours.shape
    # openl3's decibels are 10 log10 of the magnitude over an 80-dB range: its floor, 1e-8 of a window's largest mel
    # value, is below float32 precision, so kapre's bins far under the peak are TensorFlow's FFT rounding (about
    # 2e-8 of the peak: 8e-4 dB at -40 dB, 0.07 at -60, up to 5 dB near -75 in a tone's or chirp's empty bands);
    # ours are float64. Measured: noise 7e-5 dB everywhere, a click in silence 4e-6.
    loud = np.maximum(ours, theirs) > -40.0
    assert np.abs(ours - theirs)[loud].max() < 2e-3
    assert np.abs(ours - theirs)[[0, 3]].max() < 1e-3 and np.abs(ours - theirs).max() < 6.0
    np.savez(tmp_path / "net_in.npz", frames0=frames[:, None], mel0=ours)
    run_original("net", str(openl3_dir / FILES["openl3-mel256-music"]), str(tmp_path / "net_in.npz"),
                 str(tmp_path / "net.npz"))
    with np.load(tmp_path / "net.npz") as saved:
        from_mel, from_wave = saved["embedding_from_mel0"], saved["embedding0"]
    artifact = load("openl3-mel256-music", directory=openl3_dir)
    with torch.inference_mode():
        exported = artifact.program(torch.from_numpy(ours[:, None])).numpy()
    scale = np.abs(from_mel).max(axis=1)
    assert np.all(np.abs(exported - from_mel).max(axis=1) / scale < 1e-5)  # the same mel: torch against Keras
    # whole: the rows of the tone and the chirp carry kapre's noise floor (measured 3e-3 and 8e-3), not the others
    assert np.all(np.abs(exported - from_wave).max(axis=1) / scale < [1e-4, 1e-2, 2e-2, 1e-4])


@pytest.mark.parity
@pytest.mark.parametrize("content", ["music"])  # env: the same code with the other file (3 min each)
def test_eval_gives_stable_audio_metrics_openl3_fd(openl3_dir, tmp_path, content):
    generated, reference = write_clips(tmp_path)
    done = subprocess.run([sys.executable, str(ROOT / "verify_scripts" / "verify_openl3.py"), "--source",
                           str(openl3_dir / FILES[f"openl3-mel256-{content}"]), "--content-type", content,
                           "--models-dir", str(openl3_dir), "--generated", str(generated), "--reference",
                           str(reference), "--original-python", original_python(), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
