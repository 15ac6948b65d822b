"""The NumPy log-mel against torchlibrosa's algorithm, rebuilt from the checkpoint's frozen buffers."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audiofidelity.audio import Conditioning, load_conditioned
from audiofidelity.errors import ManifestError
from audiofidelity.frontends import log_mel
from audiofidelity.models import apply_frontend

from fixtures import checkpoints

FRONTENDS = {
    "cnn14-16k": dict(kind="log_mel", sample_rate=16000, n_fft=512, hop_length=160, win_length=512, fmax=8000,
                      fmin=50, n_mels=64),
    "cnn14-32k": dict(kind="log_mel", sample_rate=32000, n_fft=1024, hop_length=320, win_length=1024, fmax=14000,
                      fmin=50, n_mels=64),
}


def torchlibrosa_log_mel(wave: np.ndarray, model: str) -> np.ndarray:
    """torchlibrosa's Spectrogram + LogmelFilterBank: conv1d with the stored DFT*window, power, melW, dB."""
    sd = checkpoints.cnn14_state_dict(model)
    spec = FRONTENDS[model]
    x = F.pad(torch.from_numpy(wave)[None, None], (spec["n_fft"] // 2, spec["n_fft"] // 2), mode="reflect")
    real = F.conv1d(x, torch.from_numpy(sd["spectrogram_extractor.stft.conv_real.weight"]), stride=spec["hop_length"])
    imag = F.conv1d(x, torch.from_numpy(sd["spectrogram_extractor.stft.conv_imag.weight"]), stride=spec["hop_length"])
    power = (real ** 2 + imag ** 2)[0].T  # (frames, freq)
    mel = power @ torch.from_numpy(sd["logmel_extractor.melW"])
    return (10 * torch.log10(torch.clamp(mel, min=1e-10))).numpy()


@pytest.mark.parametrize("model, clip", [
    (model, clip) if (model, clip) == ("cnn14-16k", "reference/clip_03.wav") else
    pytest.param(model, clip, marks=pytest.mark.parity)  # torchlibrosa (the verify extra): the parity tier
    for model in sorted(FRONTENDS) for clip in ["reference/clip_03.wav", "generated/clip_12.wav", "reference/clip_09.wav"]])
def test_log_mel_matches_torchlibrosa(recordings_dir, model, clip):
    wave = load_conditioned(recordings_dir / clip, FRONTENDS[model]["sample_rate"], Conditioning())
    ours = apply_frontend(wave, FRONTENDS[model])
    theirs = torchlibrosa_log_mel(wave, model)
    assert ours.shape == (1, 1, 1 + len(wave) // FRONTENDS[model]["hop_length"], 64)
    ours = ours[0]
    # torchlibrosa runs in float32: its dB values carry ~1e-5 dB of rounding where energy is high and
    # up to ~1e-3 dB near the 1e-10 floor; ours is float64 until the final cast
    loud = theirs > -60
    assert np.max(np.abs(ours[0][loud] - theirs[loud])) < 1e-3
    assert np.max(np.abs(ours[0] - theirs)) < 0.05


def test_reflect_padding_shapes_the_edge_frames():
    wave = np.random.RandomState(0).standard_normal(16000).astype(np.float32)
    spec = {k: v for k, v in FRONTENDS["cnn14-16k"].items() if k != "kind"}
    reflect = log_mel(wave, **spec)
    constant = log_mel(wave, **spec, pad_mode="constant")
    assert np.abs(reflect[0, 0, 0] - constant[0, 0, 0]).max() > 0.5
    assert np.allclose(reflect[0, 0, 5:-5], constant[0, 0, 5:-5])


def test_unknown_frontend_kind_is_a_manifest_error():
    with pytest.raises(ManifestError, match="unknown frontend kind 'cqt'"):
        apply_frontend(np.zeros(100, np.float32), {"kind": "cqt"})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_fft, hop, win, pad", [(512, 160, 512, "reflect"), (1024, 320, 1024, "reflect"),
                                                  (371, 320, None, "constant"), (2048, 441, None, "constant"),
                                                  (512, 160, 400, "reflect")])
def test_numpy_stft_is_bit_identical_to_librosa(dtype, n_fft, hop, win, pad):
    import librosa

    from audiofidelity.frontends import stft

    x = np.random.default_rng(0).standard_normal(33333).astype(dtype)
    want = librosa.stft(x, n_fft=n_fft, hop_length=hop, win_length=win, pad_mode=pad)
    got = stft(x, n_fft=n_fft, hop_length=hop, win_length=win, pad_mode=pad)
    assert got.dtype == want.dtype and np.array_equal(got, want)


@pytest.mark.parametrize("args", [(16000, 512, 64, 50, 8000, False, "slaney"), (32000, 1024, 64, 50, 14000, False, "slaney"),
                                  (16000, 512, 64, 125, 7500, True, None), (24000, 400, 80, 0, None, False, "slaney")])
def test_numpy_mel_filterbank_is_bit_identical_to_librosa(args):
    import librosa

    from audiofidelity.frontends import mel_filterbank

    sr, n_fft, n_mels, fmin, fmax, htk, norm = args
    want = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm,
                               dtype=np.float64)
    assert np.array_equal(mel_filterbank(*args), want)


def test_frontends_do_not_import_librosa(recordings_dir):
    import subprocess
    import sys

    code = ("import sys\n"
            "from audiofidelity.audio import Conditioning, load_conditioned\n"
            "from audiofidelity.frontends import log_mel\n"
            "from audiofidelity.metrics.signal import log_spectral_distance\n"
            f"w = load_conditioned({str(recordings_dir / 'reference' / 'clip_00.wav')!r}, 16000, Conditioning())\n"
            "log_mel(w, sample_rate=16000, n_fft=512, hop_length=160, win_length=512, fmin=50, fmax=8000)\n"
            "log_spectral_distance(w, w, sample_rate=16000)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('librosa', 'numba'))))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
