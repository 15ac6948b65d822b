"""The resampler against torchaudio's output (golden) and its own invariants."""
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofidelity.audio import Conditioning, load_conditioned
from audiofidelity.resample import TORCHAUDIO_APIS, _sinc_kernel, resample, sinc_kernel
from conftest import GOLDEN, on_thread_counts

WINDOWS = np.load(GOLDEN / "resampled.npz")
CLIPS = sorted({k.rsplit("/", 1)[0] for k in WINDOWS})


@pytest.mark.parametrize("key", CLIPS)
def test_conditioned_waveform_matches_torchaudio(recordings_dir, key):
    rate, clip = key.split("/")
    wave = load_conditioned(recordings_dir / "reference" / clip, int(rate), Conditioning())
    n = int(WINDOWS[f"{key}/length"])
    assert len(wave) == n
    mid = n // 2
    got = {"head": wave[:2048], "middle": wave[mid - 1024: mid + 1024], "tail": wave[-2048:]}
    # torchaudio's own float32 ops, so the same bits (a float64 NumPy filter was up to 1.8e-7 off here)
    for part, values in got.items():
        np.testing.assert_array_equal(values, WINDOWS[f"{key}/{part}"], err_msg=part)


def test_every_fixture_rate_pair_is_covered(recordings_dir):
    pairs = set()
    for key in CLIPS:
        rate, clip = key.split("/")
        pairs.add((sf.info(recordings_dir / "reference" / clip).samplerate, int(rate)))
    assert pairs >= {(r, t) for t in (16000, 32000) for r in (16000, 22050, 32000, 44100, 48000) if r != t}


@pytest.mark.parametrize("orig,new", [(44100, 16000), (16000, 32000), (22050, 16000), (48000, 24000)])
def test_length_is_torchaudios_ceil(orig, new):
    x = np.random.RandomState(0).standard_normal(12345).astype(np.float32)
    assert len(resample(x, orig, new)) == math.ceil(new * len(x) / orig)


def test_equal_rates_return_the_input_unchanged():
    x = np.arange(10, dtype=np.float32)
    assert resample(x, 16000, 16000) is x


def test_kernel_rows_sum_to_the_passband_gain():
    # a low-pass at rolloff * Nyquist passes DC with gain ~1 for every output phase
    kernel, _ = sinc_kernel(441, 160)
    assert kernel.shape[:2] == (160, 1)
    assert np.allclose(kernel.sum(dim=(1, 2)).numpy(), 1.0, atol=2e-2)


@pytest.mark.parametrize("seconds", [0.2, 3.0])
@pytest.mark.parametrize("orig,new", [(44100, 16000), (16000, 32000), (16000, 24000), (48000, 24000)])
def test_output_does_not_depend_on_torchs_thread_count(orig, new, seconds):
    # workers run on one thread, --workers 0 on every core: the bits must agree (0.2 s takes torch's gemm path)
    x = np.random.RandomState(0).standard_normal(int(orig * seconds)).astype(np.float32)
    first, *others = on_thread_counts(lambda: resample(x, orig, new))
    for other in others:
        np.testing.assert_array_equal(other, first)


@pytest.mark.parametrize("api", TORCHAUDIO_APIS)
def test_kernel_does_not_depend_on_torchs_thread_count(api):
    # built once per process (cached), so the output test above would not see a thread-dependent kernel
    first, *others = on_thread_counts(lambda: _sinc_kernel(441, 160, api=api)[0])
    for other in others:
        assert torch.equal(other, first)


def test_a_sine_below_nyquist_survives_downsampling():
    t = np.arange(44100) / 44100
    y = resample(np.sin(2 * np.pi * 440 * t).astype(np.float32), 44100, 16000)
    ref = np.sin(2 * np.pi * 440 * np.arange(len(y)) / 16000)
    assert np.max(np.abs(y[100:-100] - ref[100:-100])) < 1e-2


def test_resampy_is_selectable_and_differs_slightly():
    # a different filter: equal on a well-inside-the-band tone, but not bit-equal
    x = np.sin(2 * np.pi * 1000 * np.arange(22050) / 22050).astype(np.float32)
    a, b = resample(x, 22050, 16000), resample(x, 22050, 16000, method="resampy")
    n = min(len(a), len(b))
    assert 0 < np.max(np.abs(a[200:n - 200] - b[200:n - 200])) < 1e-2


def test_torchaudios_two_kernels_differ_by_rounding_only():
    # functional.resample builds the kernel in float32, transforms.Resample in float64 (then stores float32)
    x = np.random.RandomState(0).standard_normal(16000).astype(np.float32)
    a, b = resample(x, 16000, 24000), resample(x, 16000, 24000, api="transforms")
    assert 0 < np.max(np.abs(a - b)) < 1e-5
    with pytest.raises(ValueError, match="api must be one of"):
        resample(x, 16000, 24000, api="sox")


def test_unknown_resampler_is_refused():
    with pytest.raises(ValueError, match="unknown resampler 'sox'"):
        resample(np.zeros(10, np.float32), 1, 2, method="sox")
