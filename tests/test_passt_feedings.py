"""PaSST fed as each toolkit feeds it (``--passt-feeding``, issue #31): windows, levels, KL definitions, the report.

Fast tier: each piece against a formula written here from the toolkit's code (stable-audio-metrics' window loop and
pyloudnorm's peak normalisation, each toolkit's ``F.kl_div`` call in torch), the option's validation. Parity tier:
``verify_scripts/verify_passt.py``: ``eval --backbone passt --passt-feeding T`` against the original hear21passt fed
and scored by each toolkit's own code (``passt_original.py toolkits``, in the original's virtualenv) on the same
stand-in weights.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from audiofidelity import cli, models
from audiofidelity.audio import Conditioning, condition, peak_normalise
from audiofidelity.errors import InvalidAudioError
from audiofidelity.metrics import kl
from audiofidelity.models import passt
from audiofidelity.resample import resample

from verify_passt import RUNS


# stable-audio-metrics' windows --------------------------------------------------------------------------------------

def sam_loop(n: int) -> list[tuple[int, int, bool]]:
    """(start, length, padded) of each window, as ``return_probabilities``' loop computes them (10 s, 5-s hop)."""
    step, size = int((10 - 5) * 32000), int(10 * 32000)
    out = []
    for i in range(0, max(step, n - step), step):
        length = min(size, n - i)
        out.append((i, size if int(size * 0.15) < length < size else length, int(size * 0.15) < length < size))
    return out


@pytest.mark.parametrize("seconds", [0.1, 1.5, 1.50003, 4.0, 10.0, 10.00003, 12.0, 15.0, 15.5, 30.0, 47.55])
def test_the_windows_are_stable_audio_metrics_loop(seconds):
    n = int(round(seconds * 32000))
    wave = np.arange(1, n + 1, dtype=np.float32)
    windows = passt.sam_windows(wave, passt.WINDOW, passt.HOP, int(passt.WINDOW * 0.15))
    expected = sam_loop(n)
    assert [len(w) for w in windows] == [length for _, length, _ in expected]
    for w, (start, length, padded) in zip(windows, expected):
        real = min(length, n - start)
        assert np.array_equal(w[:real], wave[start:start + real])
        assert not w[real:].any() and (padded == (real < len(w)))
    # a clip of at most 1.5 s is the only window, unpadded (the loop's comment says "discard"; it keeps it)
    assert (len(windows) == 1 and len(windows[0]) == n < passt.WINDOW) == (n <= 48000)


def test_every_window_becomes_one_mel_item():
    wave = (0.1 * np.random.default_rng(0).standard_normal(12 * 32000)).astype(np.float32)
    params = {k: v for k, v in passt.FRONTEND.items() if k != "kind"}
    mel = passt.passt_mel(wave, **params, windows=[passt.WINDOW, passt.HOP, 48000])
    assert mel.shape == (2, 1, 128, 1000)
    second = np.pad(wave[160000:], (0, 320000 - len(wave[160000:])))
    assert np.array_equal(mel[1], passt.passt_mel(second, **params)[0])
    assert models.frontend_bytes(len(wave), {**passt.FRONTEND, "windows": [320000, 160000, 48000]}) > mel.nbytes


# stable-audio-metrics' reading of a file ----------------------------------------------------------------------------

def test_the_peak_is_normalised_as_pyloudnorm_does():
    wave = np.array([0.25, -0.5, 0.125], np.float32)
    out = peak_normalise(wave, -1.0)
    gain = np.power(10.0, -1.0 / 20.0) / np.max(np.abs(wave))  # pyloudnorm.normalize.peak
    assert out.dtype == np.float32 and np.array_equal(out, (gain * wave.astype(np.float64)).astype(np.float32))
    assert np.abs(out).max() == pytest.approx(10 ** (-1 / 20), rel=1e-7)
    assert np.array_equal(peak_normalise(np.zeros(4, np.float32), -1.0), np.zeros(4, np.float32))


@pytest.mark.parametrize("bad", [1.0, float("nan"), float("inf"), "-1", True])
def test_a_peak_level_above_full_scale_or_not_a_number_is_refused(bad):
    with pytest.raises(ValueError, match="peak_dbfs"):
        Conditioning(peak_dbfs=bad)


def test_the_conditioning_is_librosa_load_then_the_peak():
    """``librosa.load(sr=32000, mono=True)`` (the channel mean, soxr_hq) and the peak, as stable-audio-metrics."""
    import librosa

    rng = np.random.default_rng(1)
    stereo = (0.2 * rng.standard_normal((2, 44100))).astype(np.float32)
    fields = passt.FEEDINGS["stable-audio-metrics"].conditioning
    ours = condition(stereo, 44100, 32000, Conditioning(**fields))
    theirs = librosa.resample(librosa.to_mono(stereo), orig_sr=44100, target_sr=32000, res_type="soxr_hq")
    theirs = (np.power(10.0, -1 / 20) / np.max(np.abs(theirs)) * theirs.astype(np.float64)).astype(np.float32)
    assert np.array_equal(ours, theirs)
    assert np.array_equal(resample(stereo[0], 32000, 32000, method="soxr_hq"), stereo[0])


# audiocraft's reading of a file -------------------------------------------------------------------------------------

@pytest.mark.parametrize("old, new, n", [(44100, 32000, 44100 * 3 + 17), (48000, 32000, 96005), (16000, 32000, 16001),
                                         (22050, 32000, 44100), (8000, 32000, 8003)])
def test_the_julius_resampler_is_julius_bit_for_bit(old, new, n):
    """audiocraft's ``convert_audio`` resamples with ``julius.resample_frac``'s defaults: the same float32 kernel,
    replicate padding, convolution and float32-rounded floor length (one torch thread on both sides: the
    convolution's rounding depends on the thread count below ~20000 samples)."""
    import julius
    import torch

    x = (0.3 * np.random.default_rng(n).standard_normal(n)).astype(np.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        theirs = julius.resample_frac(torch.from_numpy(x), old, new).numpy()
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(resample(x, old, new, method="julius"), theirs)


@pytest.mark.parametrize("seconds", [0.1, 0.15, 0.15004, 3.0, 10.0, 10.1, 10.15004, 25.0])
def test_the_segments_are_audiocrafts_split(seconds):
    """``torch.split(wav, 320000)``, each piece kept unpadded if it has more than 4800 samples (0.15 s)."""
    import torch

    n = int(round(seconds * 32000))
    wave = np.arange(1, n + 1, dtype=np.float32)
    theirs = [s.numpy() for s in torch.split(torch.from_numpy(wave), 320000) if s.size(-1) > 4800]
    ours = passt.audiocraft_segments(wave, passt.WINDOW, passt.AUDIOCRAFT_MINIMUM)
    assert len(ours) == len(theirs) and all(np.array_equal(a, b) for a, b in zip(ours, theirs))
    params = {k: v for k, v in passt.FRONTEND.items() if k != "kind"}
    if not theirs:
        with pytest.raises(InvalidAudioError, match="only segments of more than 4800 samples"):
            passt.passt_mel(wave, **params, samples=passt.WINDOW, segments=passt.AUDIOCRAFT_MINIMUM)


@pytest.mark.parametrize("seconds", [0.2, 1.5, 3.0, 10.0, 10.1, 10.15004, 12.5, 25.0])
def test_the_report_counts_what_each_feeding_padded_or_cut(seconds):
    """``passt_fitting`` against each toolkit's loop written here: one window (cut past 10 s, zeros below), the 8-s
    ``--audio_length`` first, stable-audio-metrics' windows (zeros in a last window of more than 1.5 s), audiocraft's
    segments (a last piece of at most 0.15 s dropped)."""
    n = int(round(seconds * 32000))
    params = {k: v for k, v in passt.FRONTEND.items() if k != "kind"}
    one = "cut" if n > 320000 else "padded" if n < 320000 else None
    assert passt.passt_fitting(n, **params, samples=320000) == one
    assert passt.passt_fitting(n, **params, samples=320000, truncate=256000) == ("cut" if n > 256000 else "padded")
    sam = "padded" if any(padded for *_, padded in sam_loop(n)) else None
    assert passt.passt_fitting(n, **params, windows=[passt.WINDOW, passt.HOP, 48000]) == sam
    import torch

    pieces = torch.split(torch.zeros(n), 320000)
    dropped = "cut" if any(s.size(-1) <= 4800 for s in pieces) else None
    assert passt.passt_fitting(n, **params, samples=passt.WINDOW, segments=passt.AUDIOCRAFT_MINIMUM) == dropped


def test_the_stage_counts_from_the_length_conditioning_gives():
    """A 9.99999-s clip at 44.1 kHz is 319999.68 samples at 32 kHz: torchaudio's ceil makes it exactly 10 s (no
    padding), julius's floor one sample short (padded)."""
    from audiofidelity.features import StageInput

    frames = 440999
    for resampler, expected in (("torchaudio", None), ("julius", "padded")):
        stage = StageInput(32000, 32000, {**passt.FRONTEND, "samples": 320000}, None,
                           conditioning=Conditioning(resampler=resampler, min_samples=0))
        assert stage.fitting(frames, 44100, Conditioning()) == expected
        assert len(resample(np.zeros(frames, np.float32), 44100, 32000, method=resampler)) == 320000 - (expected
                                                                                                       is not None)


def test_audio_length_reads_only_the_first_seconds():
    wave = (0.1 * np.random.default_rng(2).standard_normal(12 * 32000)).astype(np.float32)
    params = {k: v for k, v in passt.FRONTEND.items() if k != "kind"}
    cut = passt.passt_mel(wave, **params, samples=320000, truncate=8 * 32000)
    assert np.array_equal(cut, passt.passt_mel(np.pad(wave[:8 * 32000], (0, 2 * 32000)), **params))
    (option,) = [o for o in passt.FAMILY.options if o.name == "passt_audio_length"]
    assert option.adjust(8.0, 32000).frontend == {"truncate": 256000}
    for bad in (0.0, -1.0, float("nan"), float("inf"), 1e308, 86400.5):
        with pytest.raises(ValueError, match="passt_audio_length must be a finite number > 0 and <= 86400"):
            option.check(bad)
    assert option.adjust(option.check(86400.0), 32000).frontend == {"truncate": 86400 * 32000}


# the KL each toolkit reports ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def logits():
    rng = np.random.default_rng(5)
    return tuple((3 * rng.standard_normal((4, 527))).astype(np.float32) for _ in range(2))


def test_each_toolkits_kl_is_its_own_torch_call(logits):
    """Each definition against the toolkit's own ``F.kl_div`` call, in float64 (their float32 sums cancel: the
    sigmoid KL is a small difference of sums near 200)."""
    import torch
    import torch.nn.functional as F

    gen, ref = (torch.from_numpy(x).double() for x in logits)
    n = len(gen)
    audioldm_eval = float(F.kl_div((gen.softmax(1) + 1e-6).log(), ref.softmax(1), reduction="sum")) / n
    sam = sum(float(F.kl_div((ref[i].softmax(0) + 1e-6).log(), gen[i].softmax(0), reduction="sum"))
              for i in range(n)) / n
    av_benchmark = float(F.kl_div(F.log_softmax(gen, 1), F.log_softmax(ref, 1), reduction="sum", log_target=True)) / n
    av_sigmoid = float(F.kl_div(F.logsigmoid(gen), F.logsigmoid(ref), reduction="sum", log_target=True)) / n
    for definition, expected, mode in ((models.AUDIOLDM_EVAL_KL, audioldm_eval, "softmax"),
                                       (passt.FEEDINGS["stable-audio-metrics"].kl, sam, "softmax"),
                                       (passt.FEEDINGS["av-benchmark"].kl, av_benchmark, "softmax"),
                                       (passt.FEEDINGS["av-benchmark"].kl, av_sigmoid, "sigmoid")):
        assert kl.kl_divergence(*logits, mode=mode, reverse=definition.reverse,
                                epsilon=definition.epsilon) == pytest.approx(expected, rel=1e-12)
    assert len({round(v, 9) for v in (audioldm_eval, sam, av_benchmark)}) == 3  # three different numbers


def test_audiocrafts_kl_is_per_segment_with_both_directions(logits):
    """audiocraft's ``PasstKLDivergenceMetric``: softmax per segment, each generated segment with the reference's
    segment of the same index, ``kl_divergence(pred, target)`` summed and divided by the number of segments; its
    ``kld_qp`` the reverse and ``kld_both`` their sum (written here in torch from its code). A pair with different
    numbers of segments is left out and named."""
    import torch
    import torch.nn.functional as F

    from audiofidelity.features import SideFeatures
    from audiofidelity.metric_table import METRICS, EvaluationData

    def kl_divergence(pred, target, epsilon=1e-6):  # audiocraft/metrics/kld.py
        return F.kl_div((pred + epsilon).log(), target, reduction="none").sum(-1)

    gen, ref = logits
    split = {"a.wav": slice(0, 1), "b.wav": slice(1, 4)}
    sides = [SideFeatures(None, list(split), list(split), {"logits": [x[s] for s in split.values()]})
             for x in (gen, ref)]
    sides[0].files.append("c.wav")
    sides[1].files.append("c.wav")
    sides[0].per_file["logits"].append(gen[:2])
    sides[1].per_file["logits"].append(ref[:1])
    data = EvaluationData(*sides, ["a.wav", "b.wav", "c.wav"], roles={"logits": "logits"},
                          kl_definition=passt.FEEDINGS["audiocraft"].kl)
    value = METRICS["kl"].compute(data)["kullback_leibler_divergence_softmax"]
    p, t = (torch.from_numpy(x).double().softmax(-1) for x in (gen, ref))
    kld_pq, kld_qp = float(kl_divergence(p, t).sum()) / 4, float(kl_divergence(t, p).sum()) / 4
    details = data.details["kullback_leibler_divergence_softmax"]
    assert value == pytest.approx(kld_pq, rel=1e-12) and details["reverse"] == pytest.approx(kld_qp, rel=1e-12)
    assert details["both"] == pytest.approx(kld_pq + kld_qp, rel=1e-12) and details["segments"] == 4
    reason = "the generated and reference files have different numbers of segments"
    assert details["left_out"] == [{"file": "c.wav", "segments": [2, 1], "reason": reason}]
    assert "per segment" in details["definition"] and "(audiocraft)" in details["definition"]


def exit_status(*args: str) -> int:
    try:
        return cli.main(list(args))
    except SystemExit as exc:  # argparse's own refusals
        return int(exc.code or 0)


def test_a_feeding_that_is_not_a_toolkit_is_refused_by_name(capsys, tmp_path):
    assert exit_status("eval", str(tmp_path), str(tmp_path), "--backbone", "passt", "--sr", "32000",
                       "--passt-feeding", "audiocraftt") == 2
    err = capsys.readouterr().err
    assert ("argument --passt-feeding: passt_feeding must be one of audioldm_eval, stable-audio-metrics, "
            "stable-audio-metrics-max, audiocraft, av-benchmark, got 'audiocraftt'") in err
    assert "Traceback" not in err
    assert exit_status("eval", str(tmp_path), str(tmp_path), "--passt-feeding", "av-benchmark") == 2
    assert "--passt-feeding needs --backbone passt" in capsys.readouterr().err


# against the originals ----------------------------------------------------------------------------------------------

CLIPS = ((25.0, 44100, 2), (0.12, 48000, 1), (0.2, 16000, 1), (3.0, 48000, 2), (10.0, 32000, 1), (12.5, 44100, 1),
         (1.0, 16000, 2))
"""(seconds, rate, channels) of each pair: 0.12 s to 25 s at 16, 32, 44.1 and 48 kHz, mono and stereo. The 0.12-s
clip is shorter than PaSST's 16 frames once read at 32 kHz unpadded: stable-audio-metrics skips its id silently,
audiofidelity names it."""


def write_pairs(root):
    import soundfile as sf

    rng = np.random.default_rng(3)
    for side, shift in (("gen", 0), ("ref", 1)):
        (root / side).mkdir()
        for i, (seconds, rate, channels) in enumerate(CLIPS):
            n = int(seconds * rate)
            t = np.arange(n) / rate
            x = 0.3 * np.sin(2 * np.pi * (300 + 80 * i + 40 * shift) * t) + 0.05 * rng.standard_normal(n)
            sf.write(root / side / f"c{i}.wav", np.stack([x, 0.5 * np.roll(x, 100)], 1) if channels == 2 else x, rate)


@pytest.mark.parity  # the passt-s stand-in export and the original's virtualenv
def test_every_feeding_gives_its_toolkits_numbers(all_models_dir, tmp_path):
    """``verify_scripts/verify_passt.py`` on ``CLIPS``: per feeding, every figure within its bound against the
    toolkit's own code on hear21passt with the same stand-in weights (its ``BOUNDS``: softmax KL 1e-4 relative,
    logits and embeddings 1e-4 x max...), the same files left out; and each report counting what its window padded
    or cut as the toolkit's loop does (``WINDOWING``)."""
    from fixtures.passt import write_passt
    from test_passt import original_python

    if not original_python().exists():
        pytest.skip(f"no virtualenv with hear21passt at {original_python()} (set PASST_ORIGINAL_PYTHON)")
    write_pairs(tmp_path)
    source = write_passt(tmp_path)
    done = subprocess.run([sys.executable, str(VERIFY), "--source", str(source), "--models-dir", str(all_models_dir),
                           "--generated", str(tmp_path / "gen"), "--reference", str(tmp_path / "ref"),
                           "--original-python", str(original_python()), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=3000)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    measured = json.loads((tmp_path / "out" / "verify.json").read_text())["measured"]
    assert measured["audioldm_eval"]["rows logits"] < 1e-4 and "kl both" in measured["audiocraft"]
    for toolkit, feeding, _ in RUNS:
        report = json.loads((tmp_path / "out" / toolkit / "report.json").read_text())
        assert report["provenance"]["passt_feeding"] == feeding
        assert report["files"]["generated"]["windowing"] == {"passt-s": WINDOWING[toolkit]}


VERIFY = Path(__file__).resolve().parents[1] / "verify_scripts" / "verify_passt.py"
WINDOWING = {"audioldm_eval": {"padded": 4, "cut": 2}, "av-benchmark": {"padded": 4, "cut": 2},
             "av-benchmark-8s": {"padded": 4, "cut": 3}, "stable-audio-metrics": {"padded": 2, "cut": 0},
             "stable-audio-metrics-max": {"padded": 2, "cut": 0}, "audiocraft": {"padded": 0, "cut": 0}}
"""What each toolkit's loop does to ``CLIPS`` (25, 0.12, 0.2, 3, 10, 12.5, 1 s) among the files it uses: one 10-s
window pads four and cuts the 25-s and 12.5-s clips (the 8-s read cuts the 10-s one too); stable-audio-metrics pads
the 3-s clip and the 12.5-s clip's second window (the 0.2-s and 1-s clips are fed unpadded, the 0.12-s one is too
short); audiocraft's segments leave none out (no last piece of 0.15 s or less)."""
