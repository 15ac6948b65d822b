"""Hostile input: memory bounded before it is spent, every channel a model reads validated, hostile file systems.

Each test fails without the mechanism it names (issue: "hostile input, third round"): a header's rate or length
is checked against the memory budget before decoding, resampling or a frontend allocates; validation runs on
exactly the signal each model reads; FIFOs, devices, sockets, dangling symlinks, vanished or changed files and
undecodable names are skipped by name; a report never holds a bare NaN.
"""
from __future__ import annotations

import json
import os
import resource
import socket
import struct
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiofidelity import cli
from audiofidelity.audio import (Conditioning, FileIdentity, SAMPLE_RATES, conditioning_bytes, file_problem,
                                 load_audio)
from audiofidelity.cache import FeatureCache
from audiofidelity.errors import InvalidAudioError, TooLongForMemoryError, UnreadableFileError
from audiofidelity.evaluate import finite_json
from audiofidelity.features import StageInput, compute_inputs
from audiofidelity.models import apply_frontend, frontend_bytes, frontend_kinds
from audiofidelity.memory import available_bytes
from audiofidelity.metric_table import compute_metrics
from audiofidelity.runner import InputSpec


def tone(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * (220 + 50 * seed) * t) + 0.01 * rng.standard_normal(len(t))
    return np.stack([mono * (0.5 + 0.5 * c) for c in range(channels)], axis=1).astype(np.float32)


def wav_with_rate(path: Path, rate: int, seconds: float = 1.0) -> Path:
    """A valid 16-bit WAV whose header declares ``rate`` (the samples were written at 16 kHz)."""
    sf.write(path, tone(seconds, 16000), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[24:28] = struct.pack("<I", rate)
    data[28:32] = struct.pack("<I", (rate * 2) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def good_folder(folder: Path, count: int = 3, rate: int = 16000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        sf.write(folder / f"good{i}.wav", tone(1.0, rate, seed=i)[:, 0], rate)
    return folder


# 1. memory bounded before it is spent -------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [1, 999, SAMPLE_RATES[1] + 1, 2**31 - 1])
def test_a_header_rate_outside_the_audio_range_is_refused_before_decoding(tmp_path, rate):
    with pytest.raises(InvalidAudioError, match=f"sample rate {rate} Hz is outside"):
        load_audio(wav_with_rate(tmp_path / "x.wav", rate))


def test_a_coprime_rate_whose_resampling_kernel_exceeds_the_budget_is_refused_with_its_estimate(tmp_path):
    path = wav_with_rate(tmp_path / "x.wav", 44101)  # 44101 -> 16000 Hz: a 16000 x 44135 kernel (2.8 GB float32)
    cost = lambda frames, channels, rate: conditioning_bytes(frames, rate, 16000, Conditioning())  # noqa: E731
    with pytest.raises(TooLongForMemoryError, match=r"would need about [0-9.]+ GB, over the memory budget of 1\.0 GB"):
        load_audio(path, memory_budget=10**9, cost=cost)
    audio, rate = load_audio(path, memory_budget=10**9)  # decoding alone fits
    assert rate == 44101 and audio.shape == (1, 16000)


def test_a_header_that_declares_more_frames_than_the_budget_is_refused_unread(tmp_path):
    path = tmp_path / "x.flac"
    sf.write(path, tone(0.5, 16000)[:, 0], 16000)
    data = bytearray(path.read_bytes())
    # STREAMINFO (after "fLaC" and a 4-byte block header): bytes 13..17 end with the 36-bit total sample count
    data[21] |= 0x0F
    data[22:26] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    with pytest.raises(TooLongForMemoryError, match="68719476735 frames"):
        load_audio(path, memory_budget=2**30)


def test_every_frontend_declares_a_peak_at_least_what_it_allocates():
    """Each family's frontend peak estimate against tracemalloc's measured peak (NumPy allocations), 30 s each."""
    specs = {
        "log_mel": dict(sample_rate=16000, n_fft=512, hop_length=160, win_length=512, n_mels=64, fmin=50, fmax=8000),
        "vggish_examples": dict(sample_rate=16000, window_length=400, hop_length=160, fft_length=512, n_mels=64,
                                fmin=125, fmax=7500, log_offset=0.01, example_frames=96, example_hop=96),
        "mert_waveform": dict(sample_rate=24000),
        "waveform_segments": dict(sample_rate=24000, channels=1),
        "clap_log_mel": dict(sample_rate=48000, window_samples=480000, n_fft=1024, hop_length=480, win_length=1024,
                             n_mels=64, fmin=50, fmax=14000),
        "clap_fusion_mel": dict(sample_rate=48000, window_samples=480000, n_fft=1024, hop_length=480, win_length=1024,
                                n_mels=64, fmin=50, fmax=14000, htk=True, mel_norm=None),
        "sc09_mel": dict(sample_rate=16000, samples=16000, n_fft=2048, hop_length=512, n_mels=32),
        "passt_mel": dict(sample_rate=32000, n_fft=1024, hop_length=320, win_length=800, n_mels=128, fmin=0.0,
                          fmax=15000.0, preemphasis=0.97, log_offset=1e-5, shift=4.5, scale=5.0),
        "aesthetics_windows": dict(sample_rate=16000, window=160000, hop=160000),
        "pam_chunks": dict(sample_rate=44100, chunk_samples=308700, mel_sample_rate=32000, n_fft=1024,
                           hop_length=320, win_length=1024, n_mels=64, fmin=50, fmax=14000),
        "openl3_mel": dict(sample_rate=48000, window_samples=48000, hop_seconds=0.5, center=True, n_fft=2048,
                           hop_length=242, n_mels=256, amin=1e-10, dynamic_range=80.0),
    }
    assert set(specs) == set(frontend_kinds())
    for kind, params in specs.items():
        wave = tone(30.0, params["sample_rate"])[:, 0]
        spec = {"kind": kind, **params}
        tracemalloc.start()
        apply_frontend(wave, spec)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        estimate = frontend_bytes(len(wave), spec)
        assert peak <= estimate <= 4 * max(peak, 16 * len(wave)), (kind, peak, estimate)  # covers, not wildly over


@pytest.mark.parametrize("rates", [(44100, 48000), pytest.param((96000, 44100), marks=pytest.mark.parity),
                                   pytest.param((8000, 48000), marks=pytest.mark.parity)])
def test_the_numpy_resamplers_declare_a_peak_at_least_what_they_allocate(rates):
    """resampy 0.2's algorithm (all NumPy, so tracemalloc sees it) on 30 s, its filter table built inside."""
    from audiofidelity.resample import resample, resample_bytes, resampy02_filter

    wave = tone(30.0, rates[0])[:, 0]
    resampy02_filter.cache_clear()
    tracemalloc.start()
    resample(wave, *rates, method="resampy_0.2")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    estimate = resample_bytes(len(wave), *rates, method="resampy_0.2")
    assert peak <= estimate <= 4 * max(peak, 16 * len(wave)), (peak, estimate)


def test_the_resampling_estimate_covers_the_measured_peak(tmp_path):
    """resample_bytes against the process's high-water mark (torch allocations included) in a fresh process."""
    script = textwrap.dedent("""
        import numpy as np, sys
        from audiofidelity.resample import resample, resample_bytes
        def hwm():
            return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM'))
        x = np.random.default_rng(0).standard_normal(4001 * 4).astype(np.float32)
        resample(x[:8000], 8000, 16000)  # torch's own start-up allocations before the baseline
        before = hwm()
        resample(x, 4001, 1000)  # coprime: a 1000 x 4051 kernel
        print(hwm() - before, resample_bytes(len(x), 4001, 1000))
    """)
    measured, estimate = map(float, subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                                   check=True).stdout.split())
    assert measured <= estimate, (measured, estimate)


def test_the_budget_respects_an_address_space_limit():
    script = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, resource.RLIM_INFINITY)); "
              "from audiofidelity.memory import available_bytes; print(available_bytes())")
    left = int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert 0 < left < 6 * 2**30
    assert available_bytes() is not None


def _limited(gigabytes: float):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (int(gigabytes * 2**30), resource.RLIM_INFINITY))
    return apply


def test_eval_under_an_address_space_limit_refuses_a_hostile_header_by_name(tmp_path, models_dir):
    """The whole CLI under ``prlimit --as``: the 44101 Hz file would build a 2.8 GB kernel (and its temporaries);
    it is refused with its estimate, the others are evaluated, exit 0, valid JSON."""
    gen = good_folder(tmp_path / "gen", 3)
    wav_with_rate(gen / "coprime.wav", 44101)
    wav_with_rate(gen / "one-hertz.wav", 1)
    ref = good_folder(tmp_path / "ref", 3, rate=22050)
    out = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "audiofidelity", "eval", str(gen), str(ref), "--models-dir",
                          str(models_dir), "--metrics", "fd,fad", "--json", str(out), "--quiet", "--no-cache",
                          "--workers", "0"], capture_output=True, text=True, timeout=300, preexec_fn=_limited(6))
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    reasons = {p["file"]: p["reason"] for p in report["problems"]}
    assert "over the memory budget" in reasons["coprime.wav"]
    assert "sample rate 1 Hz is outside" in reasons["one-hertz.wav"]
    assert report["files"]["generated"]["used"] == 3 and "Traceback" not in run.stderr


# 2. every sample a model reads is validated -------------------------------------------------------------------

def _stereo_stage() -> StageInput:
    spec = InputSpec("stereo-toy", (2, "samples"), {"samples": 1})
    return StageInput(16000, 16000, {"kind": "waveform_segments", "sample_rate": 16000, "channels": 2}, spec,
                      channels=2)


def test_a_nan_in_the_second_channel_rejects_the_file_for_a_stereo_model_only(tmp_path):
    audio = tone(1.0, 16000, channels=2).T.copy()
    audio[1, 100] = np.nan
    path = tmp_path / "x.wav"
    sf.write(path, audio.T, 16000, subtype="FLOAT")
    stereo = _stereo_stage()
    mono = StageInput(16000, 16000, {"kind": "waveform_segments", "sample_rate": 16000, "channels": 1},
                      InputSpec("mono-toy", (1, "samples"), {"samples": 1}))
    made, reason, rejected = compute_inputs(path, [mono, stereo], [0, 1], Conditioning())
    assert reason == "1 sample(s) are NaN or infinite" and rejected == [1]
    made, reason, _ = compute_inputs(path, [mono], [0], Conditioning())
    assert reason is None and np.all(np.isfinite(made[0]))  # the mono model reads the first channel only


def test_a_mixdown_that_cancels_to_silence_is_rejected_for_a_mean_channel_model(tmp_path):
    audio = tone(1.0, 16000, channels=1)[:, 0]
    path = tmp_path / "x.wav"
    sf.write(path, np.stack([audio, -audio], axis=1), 16000, subtype="FLOAT")
    mono = StageInput(16000, 16000, {"kind": "waveform_segments", "sample_rate": 16000, "channels": 1},
                      InputSpec("mono-toy", (1, "samples"), {"samples": 1}))
    _, reason, _ = compute_inputs(path, [mono], [0], Conditioning(channel="mean"))
    assert reason == "all samples are zero (silent)"


def test_samples_orders_of_magnitude_beyond_full_scale_are_named(tmp_path, models_dir):
    gen, ref = good_folder(tmp_path / "gen", 2), good_folder(tmp_path / "ref", 2)
    sf.write(gen / "int-scale.wav", tone(1.0, 16000)[:, 0] * 32767, 16000, subtype="FLOAT")
    report = json.loads(_eval(gen, ref, models_dir, tmp_path, "--metrics", "fd").read_text())
    assert "over 100 x full scale" in {p["file"]: p["reason"] for p in report["problems"]}["int-scale.wav"]


def test_a_metric_that_comes_out_nan_is_null_with_its_reason_and_the_report_is_valid_json():
    from audiofidelity import metric_table

    class Data:
        details: dict = {}

    spec = metric_table.METRICS["kad"]
    real = spec.compute
    try:
        object.__setattr__(spec, "compute", lambda data: {spec.keys[0]: float("nan")})
        values, unavailable = compute_metrics(["kad"], Data(), None)
    finally:
        object.__setattr__(spec, "compute", real)
    assert values[spec.keys[0]] is None and "not finite" in unavailable[spec.keys[0]]
    report = finite_json({"a": [1.0, float("inf"), np.float32("nan")], "b": {"c": float("-inf")}, "d": "x"})
    assert report == {"a": [1.0, None, None], "b": {"c": None}, "d": "x"}
    json.dumps(report, allow_nan=False)


def test_strict_fails_when_a_metric_is_unavailable(tmp_path, models_dir, capsys):
    gen, ref = good_folder(tmp_path / "gen", 3), good_folder(tmp_path / "ref", 3)
    status = cli.main(["eval", str(gen), str(ref), "--models-dir", str(models_dir), "--metrics", "isc", "--strict",
                       "--quiet", "--json", str(tmp_path / "r.json")])
    assert status == 1
    assert "unavailable and --strict is set: inception_score_mean" in capsys.readouterr().err


# 3. the file system is hostile too ----------------------------------------------------------------------------

def hostile_folder(folder: Path) -> dict[str, str]:
    """Good files plus one of each hostile kind; returns name -> the reason expected."""
    good_folder(folder, 3)
    os.mkfifo(folder / "fifo.wav")
    (folder / "dangling.wav").symlink_to(folder / "nowhere.wav")
    (folder / "zero.wav").symlink_to("/dev/zero")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "sock.wav"))
    server.close()
    sf.write(os.fsencode(folder) + b"/bad\xffname.wav", tone(1.0, 16000)[:, 0], 16000)
    return {"fifo.wav": "a FIFO", "dangling.wav": "dangling symlink", "zero.wav": "a character device",
            "sock.wav": "a socket", "bad\\xffname.wav": "not valid UTF-8"}


def _eval(gen: Path, ref: Path, models_dir: Path, out: Path, *args: str) -> Path:
    report = out / "report.json"
    status = cli.main(["eval", str(gen), str(ref), "--models-dir", str(models_dir), "--json", str(report),
                       "--quiet", "--workers", "0", *args])
    assert status == 0
    return report


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_fifos_devices_sockets_dangling_links_and_undecodable_names_are_skipped_by_name(tmp_path, models_dir,
                                                                                       cache):
    expected = hostile_folder(tmp_path / "gen")
    ref = good_folder(tmp_path / "ref", 3)
    text = _eval(tmp_path / "gen", ref, models_dir, tmp_path, "--metrics", "fd,psnr",
                 *(() if cache else ("--no-cache",))).read_text()
    report = json.loads(text)
    text.encode("utf-8")  # no lone surrogate: every name is shown with escapes
    reasons = {p["file"]: p["reason"] for p in report["problems"] if p["side"] == "generated"}
    for name, words in expected.items():
        assert words in reasons[name], (name, reasons.get(name))
    assert report["files"]["generated"]["used"] == 3


def test_the_embedder_and_stats_skip_the_same_hostile_entries(tmp_path, models_dir):
    from audiofidelity.embedder import Embedder

    expected = hostile_folder(tmp_path / "gen")
    done = Embedder("cnn14-16k", models_dir=models_dir, cache=False).embed_folder(tmp_path / "gen")
    assert len(done.arrays) == 3
    assert {p["file"] for p in done.problems} == set(expected)
    out = tmp_path / "stats.npz"
    assert cli.main(["stats", str(tmp_path / "gen"), "--out", str(out), "--models-dir", str(models_dir), "--quiet",
                     "--workers", "0"]) == 0


def test_a_file_that_vanishes_after_listing_is_named(tmp_path, models_dir, monkeypatch):
    import importlib

    evaluate_module = importlib.import_module("audiofidelity.evaluate")
    gen, ref = good_folder(tmp_path / "gen", 3), good_folder(tmp_path / "ref", 3)
    real = evaluate_module.list_folder

    def listing_then_delete(folder, **kwargs):
        names = real(folder, **kwargs)
        if Path(folder) == gen:
            (gen / "good1.wav").unlink()
        return names

    monkeypatch.setattr(evaluate_module, "list_folder", listing_then_delete)
    report = json.loads(_eval(gen, ref, models_dir, tmp_path, "--metrics", "fd", "--no-cache").read_text())
    assert {p["file"]: p["reason"] for p in report["problems"]}["good1.wav"] == "vanished (no longer exists)"


def test_a_file_changed_since_it_was_hashed_is_refused_and_nothing_is_cached_under_its_old_content(tmp_path):
    path = good_folder(tmp_path / "gen", 1) / "good0.wav"
    cache = FeatureCache(tmp_path / "cache")
    identity, _ = cache.keys_and_identity(path, [{}])
    sf.write(path, tone(1.0, 16000, seed=7)[:, 0], 16000)  # rewritten in place after hashing
    stage = StageInput(16000, 16000, {"kind": "waveform_segments", "sample_rate": 16000, "channels": 1},
                       InputSpec("mono-toy", (1, "samples"), {"samples": 1}))
    made, reason, rejected = compute_inputs(path, [stage], [0], Conditioning(), identity)
    assert made == {} and "changed after it was listed" in reason and rejected == []
    with pytest.raises(UnreadableFileError, match="changed after it was listed"):
        load_audio(path, expected=identity)
    assert FileIdentity.of(os.stat(path)) != identity


def test_file_problem_never_opens_what_it_inspects(tmp_path):
    os.mkfifo(tmp_path / "f")
    assert file_problem(tmp_path / "f") == "is a FIFO (named pipe), not an audio file; not opened"
    assert file_problem(tmp_path) == "is a folder (folders are not searched recursively)"
    assert file_problem(tmp_path / "missing") == "vanished (no longer exists)"
    with pytest.raises(UnreadableFileError, match="FIFO"):
        load_audio(tmp_path / "f")


@pytest.mark.parity  # needs the encodec-48k export (the FAD-only stand-ins)
def test_a_nan_in_the_channel_only_a_stereo_fad_model_reads_is_skipped_by_name_end_to_end(all_models_dir, tmp_path,
                                                                                        capsys):
    """encodec-48k reads a file's first two channels: a NaN in the second is a named problem (KAD stays a number,
    --per-file works, --strict fails), never a bare NaN in the report."""
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    for folder, seed in ((gen, 0), (ref, 10)):
        folder.mkdir()
        for i in range(3):
            sf.write(folder / f"s{i}.wav", tone(1.0, 48000, channels=2, seed=seed + i), 48000, subtype="FLOAT")
    poisoned = tone(1.0, 48000, channels=2, seed=5)
    poisoned[1000, 1] = np.nan
    sf.write(gen / "poisoned.wav", poisoned, 48000, subtype="FLOAT")
    args = ["--models-dir", str(all_models_dir), "--fad-model", "encodec-48k", "--metrics", "fad,kad"]
    text = _eval(gen, ref, all_models_dir, tmp_path, *args[2:], "--per-file").read_text()
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in the report"))
    assert {p["file"]: p["reason"] for p in report["problems"]}["poisoned.wav"] == "1 sample(s) are NaN or infinite"
    assert isinstance(report["metrics"]["kernel_audio_distance"], float)
    assert "poisoned.wav" not in report["per_file"]
    assert cli.main(["eval", str(gen), str(ref), *args, "--strict", "--quiet", "--workers", "0"]) == 1
    assert "poisoned.wav: 1 sample(s) are NaN or infinite" in capsys.readouterr().err


def test_errors_that_name_a_path_carry_it_as_a_field_so_the_service_never_rewrites_text(tmp_path):
    """A statistics file or an output that fails names its path through a field: ``render`` shows it as the
    service chooses, and no other text of the message is touched (a path like ``m`` would otherwise rewrite every
    ``m``)."""
    import errno

    from audiofidelity.outputs import output_error
    from audiofidelity.stats import read_arrays
    from audiofidelity.errors import StatsFileError

    with pytest.raises(StatsFileError) as missing:
        read_arrays(tmp_path / "m", "a statistics file")
    assert missing.value.path == tmp_path / "m" and str(tmp_path) in str(missing.value)
    shown = missing.value.render(lambda value: "STATS")
    assert shown.startswith("STATS is not a statistics file") and str(tmp_path) not in shown
    failed = output_error("--json", tmp_path / "m", OSError(errno.ENOSPC, "No space left on device"), existed=True)
    assert failed.render(lambda value: "OUT") == ("--json OUT: cannot write it (No space left on device); its "
                                                  "previous content is unchanged")


@pytest.mark.parity  # 4 s; the fast tier keeps eval's run under the same limit
def test_the_embedder_under_an_address_space_limit_refuses_an_absurd_rate_by_name(models_dir):
    """``Embedder.embed`` of a 1-s array declared at 44101 Hz under ``prlimit --as 6G`` with the default budget: a
    ValueError naming the memory it would need, not a 2.8 GB allocation."""
    script = textwrap.dedent(f"""
        import numpy as np
        from audiofidelity import Embedder
        embedder = Embedder("cnn14-16k", models_dir={str(models_dir)!r}, cache=False)
        audio = 0.3 * np.sin(np.arange(44101) / 7).astype(np.float32)
        try:
            embedder.embed(audio, 44101)
        except ValueError as exc:
            print("refused:", exc)
        print("fine:", embedder.embed(audio[:16000], 16000).shape)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         preexec_fn=_limited(6))
    assert run.returncode == 0, run.stderr
    assert "refused:" in run.stdout and "over the memory budget" in run.stdout and "fine: (2048,)" in run.stdout
