"""Chroma cosine similarity (audiocraft's ``ChromaCosineSimilarityMetric``) in NumPy, checked against the original.

Fast tier: closed forms (an A4 sine is all A, identical clips give 1, scaling changes nothing), the filter bank
against ``librosa.filters.chroma`` bit for bit, the frame count against torch's float32 arithmetic, the refusals,
and the chroma and the metric against ``tests/data/chroma_original.npz``: what ``verify_scripts/chroma_original.py``
(audiocraft 896ec7c's ``ChromaExtractor`` and metric, transcribed; torch 2.11 + torchaudio 2.11 + librosa
0.10.2.post1 + julius 0.2.7) computed on the clips ``golden_inputs()`` builds (the file holds their sha256), with
MusicGen's settings (32 kHz, radix2_exp 14, argmax; and argmax off). Regenerate it with ``python
tests/test_chroma.py`` where that virtualenv exists.

Parity tier (``-m parity``): the transcription run again as a subprocess on fresh random clips in the original's
virtualenv (``$CHROMA_ORIGINAL_PYTHON``, else ``$PASST_ORIGINAL_PYTHON``, else the CI's ``VENV`` below, else
``$TMPDIR/passt-venv``); the tests skip and say so where there is none.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from audiofidelity.errors import InvalidAudioError, MetricUnavailableError
from audiofidelity.metrics import chroma as C
import original_runs

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "chroma_original.npz"
ORIGINAL_SCRIPT = ROOT / "verify_scripts" / "chroma_original.py"
VENV = (Path.home() / ".cache" / "audiofidelity-ci" /
        "passt-venv-torch2.11.0-hear21passt0.0.26-timm1.0.31-librosa0.10.2.post1-pyloudnorm0.1.1")
MUSICGEN = {k: v for k, v in C.MUSICGEN.items() if k != "sample_rate"}
SR = C.MUSICGEN["sample_rate"]

CHROMA_TOLERANCE = 1e-5
"""Absolute, on chroma values in [0, 1] (argmax off), against the original in float32. The banks are identical
and the frames the same samples; what is left is the float32 STFT's rounding (torch's FFT) against our float64,
relative to the frame's loudest bin since each frame is divided by it. Measured: 1.3e-6 at most (torch 2.11 on an
AMD EPYC, 2026-12-05: the stored clips, and 12 random sets of 4 pairs of 0.05-30 s at 32 and 44.1 kHz input); the
bound leaves room for other CPUs' FFT code paths (the PaSST mel's differ by up to 10x between a Xeon and an EPYC)."""
TIE_GAP = 10 * CHROMA_TOLERANCE
"""With argmax, a frame whose two loudest bins are closer than this may pick either: the original's float32
rounding decides. None of the stored clips' frames comes that close (the test checks; all-zero frames, exact on
both sides, excepted), so there the one-hot chroma must be equal; in the parity tier such frames are left out of
the comparison and allowed in the value. Measured: the closest call 2.4e-3 in 12 random sets."""
SUM_TOLERANCE = 1e-6
"""Absolute per compared frame, on a pair's summed frame similarities (argmax off), so a pair's value (sum /
frames) is within it too: torch's float32 chroma and ``cosine_similarity`` and its float32 sum against ours.
Measured 2.7e-7 per frame at most (same runs as above). With argmax every cosine is 0 or 1 exactly on both sides,
so the sums are equal."""
VALUE_TOLERANCE = 1e-6
"""Absolute, on the pooled value in [0, 1] (``compute()``: a float32 state over a float32 weight in the
original). Measured 5.3e-8 at most (same runs)."""


# the stored clips --------------------------------------------------------------------------------------------------

def _melody(rs: np.random.RandomState, n: int, notes: np.ndarray, *, sr: int = SR) -> np.ndarray:
    """Harmonic notes (MIDI numbers) one after another, four partials each, random phases."""
    t = np.arange(n) / sr
    x = np.zeros(n)
    for k, bounds in enumerate(np.array_split(np.arange(n), len(notes))):
        f0 = 440.0 * 2.0 ** ((notes[k] - 69) / 12)
        for h in range(1, 5):
            x[bounds] += np.sin(2 * np.pi * f0 * h * t[bounds] + rs.uniform(0, 2 * np.pi)) / h
    return x


def _pcm(x: np.ndarray) -> np.ndarray:
    """int16 samples, so what the original saw is exactly reproducible (a 1-ulp ``np.sin`` difference between
    NumPy builds cannot change them except at a rounding boundary)."""
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def golden_inputs() -> dict[str, np.ndarray]:
    """IN.npz of the stored file: int16 clips (legacy ``RandomState``: its stream is frozen by NumPy's policy).

    0: 2 s melody, the generated one with some notes a semitone up and more noise, ``size`` 5000 samples short;
    1: 9601 samples, shorter than the 16384-sample FFT (audiocraft pads it, an odd count); 2: stereo 1 s;
    3: 1 s, the reference silent in its second half and the generated clip in its first (zero frames).
    """
    rs = np.random.RandomState(20261205)
    pcm: dict[str, np.ndarray] = {}
    for i, n in enumerate((2 * SR, 9601, SR, SR)):
        notes = rs.randint(55, 80, size=5)
        ref = 0.2 * _melody(rs, n, notes) + 0.01 * rs.standard_normal(n)
        gen = 0.3 * _melody(rs, n, notes + (rs.uniform(size=5) < 0.4)) + 0.05 * rs.standard_normal(n)
        if i == 2:
            ref = np.stack([ref, 0.5 * ref + 0.02 * rs.standard_normal(n)])
            gen = np.stack([gen, 0.05 * rs.standard_normal(n)])
        if i == 3:
            ref[n // 2:] = 0
            gen[: n // 2] = 0
        pcm[f"gen{i}"], pcm[f"ref{i}"] = _pcm(gen), _pcm(ref)
    return pcm


def _sha256(pcm: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in sorted(pcm):
        digest.update(key.encode() + str(pcm[key].shape).encode() + pcm[key].tobytes())
    return digest.hexdigest()


def _in_npz(pcm: dict[str, np.ndarray], *, sample_rate: int = SR, sizes: dict[int, int] | None = None,
            radix2_exp: int = MUSICGEN["radix2_exp"], argmax: bool = True) -> dict[str, np.ndarray]:
    arrays = {k: (v.astype(np.float32) / 32768 if v.dtype == np.int16 else v.astype(np.float32))
              for k, v in pcm.items()}
    for i, size in (sizes or {}).items():
        arrays[f"size{i}"] = np.int64(size)
    return {**arrays, "sample_rate": np.int64(sample_rate), "chroma_sample_rate": np.int64(SR),
            "n_chroma": np.int64(12), "radix2_exp": np.int64(radix2_exp), "argmax": np.bool_(argmax)}


GOLDEN_SIZES = {0: 2 * SR - 5000}


# the original in its virtualenv ------------------------------------------------------------------------------------

def original_python() -> Path | None:
    tmp_venv = Path(os.environ.get("TMPDIR", "/tmp")) / "passt-venv"
    for candidate in (os.environ.get("CHROMA_ORIGINAL_PYTHON"), os.environ.get("PASST_ORIGINAL_PYTHON"),
                      VENV / "bin" / "python", tmp_venv / "bin" / "python"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


def run_original(inputs: dict[str, np.ndarray], folder: Path) -> dict[str, np.ndarray]:
    """``chroma_original.py`` on ``inputs`` in the original's virtualenv; skip (with the reason) where there is none."""
    python = original_python()
    if python is None:
        pytest.skip(f"no virtualenv with torchaudio, librosa and julius (set CHROMA_ORIGINAL_PYTHON, or make {VENV}: "
                    f"see verify_scripts/passt_original.py's docstring)")
    src, dst = folder / "in.npz", folder / "out.npz"
    np.savez(src, **inputs)
    done = original_runs.run_original(python, ORIGINAL_SCRIPT, [src, dst], dst, timeout=600)
    if done.returncode:
        if "ModuleNotFoundError" in done.stderr:
            pytest.skip(f"{python} cannot run the original: {done.stderr.strip().splitlines()[-1]}")
        raise AssertionError(f"chroma_original.py failed:\n{done.stderr[-3000:]}")
    with np.load(dst) as out:
        return dict(out)


def write_golden(path: Path = GOLDEN) -> None:
    """Run the original on ``golden_inputs()`` and store its output with the inputs' sha256 (no clips)."""
    import tempfile

    pcm = golden_inputs()
    with tempfile.TemporaryDirectory() as folder:
        out = run_original(_in_npz(pcm, sizes=GOLDEN_SIZES), Path(folder))
    np.savez_compressed(path, **out, inputs_sha256=np.str_(_sha256(pcm)))


# comparison --------------------------------------------------------------------------------------------------------

def _ours(inputs: dict[str, np.ndarray], *, resample_julius: bool = False) -> dict[str, object]:
    """Our chroma and pair values for an IN.npz dict, converted as the metric converts (julius, then the mean)."""
    from audiofidelity.resample import resample

    sample_rate = int(inputs["sample_rate"])
    settings = {"n_chroma": int(inputs["n_chroma"]), "radix2_exp": int(inputs["radix2_exp"])}
    found: dict[str, object] = {}
    for i in sorted(int(k[3:]) for k in inputs if k.startswith("gen")):
        pair = []
        for name in ("gen", "ref"):
            wave = np.atleast_2d(inputs[f"{name}{i}"])
            if sample_rate != SR:
                wave = np.stack([resample(c, sample_rate, SR, method="julius") for c in wave])
            mono = wave.astype(np.float64).mean(axis=0)
            found[f"soft_{name}{i}"] = C.chroma(mono, SR, **settings)
            found[f"chroma_{name}{i}"] = C.chroma(mono, SR, argmax=bool(inputs["argmax"]), **settings)
            pair.append(wave)
        size = int(inputs.get(f"size{i}", inputs[f"gen{i}"].shape[-1]))
        for prefix, argmax in (("", bool(inputs["argmax"])), ("soft_", False)):
            found[f"{prefix}pair{i}"] = C.chroma_cosine_similarity(*pair, SR, size=size, argmax=argmax, **settings)
    return found


def _clear(soft: np.ndarray) -> np.ndarray:
    """Frames whose argmax no rounding can change: the loudest bin more than ``TIE_GAP`` above the next, or all
    bins exactly 0 (silence: bin 0 on both sides)."""
    top = np.sort(soft.astype(np.float64), axis=1)
    return (top[:, -1] - top[:, -2] > TIE_GAP) | (top[:, -1] == 0)


def _compare(original: dict[str, np.ndarray], ours: dict[str, object], *, pairs: int, argmax: bool) -> None:
    ties = 0
    for i in range(pairs):
        for name in ("gen", "ref"):
            soft, theirs = ours[f"soft_{name}{i}"], original[f"soft_{name}{i}"]
            assert soft.shape == theirs.shape, (i, name)
            assert np.abs(soft - theirs).max() <= CHROMA_TOLERANCE, (i, name, np.abs(soft - theirs).max())
            mine, stored = ours[f"chroma_{name}{i}"], original[f"chroma_{name}{i}"]
            if not argmax:
                assert np.abs(mine - stored).max() <= CHROMA_TOLERANCE, (i, name)
                continue
            clear = _clear(theirs)
            ties += int(np.sum(~clear[: int(original[f"weight{i}"])]))
            assert np.array_equal(mine[clear], stored[clear]), (i, name)
        mine, soft_pair = ours[f"pair{i}"], ours[f"soft_pair{i}"]
        assert mine.frames == original[f"weight{i}"] and soft_pair.frames == original[f"soft_weight{i}"]
        for prefix, pair in (("soft_", soft_pair), ("", mine)):
            theirs = float(original[f"{prefix}cosine_sum{i}"])
            if prefix or not argmax:
                assert abs(pair.cosine_sum - theirs) <= SUM_TOLERANCE * pair.frames, (i, prefix, pair, theirs)
            elif not ties:
                assert pair.cosine_sum == theirs, i
    total = sum(ours[f"pair{i}"].frames for i in range(pairs))
    pooled = C.pooled_similarity([ours[f"pair{i}"] for i in range(pairs)])
    # each near-tie frame may count 1 on one side and 0 on the other
    assert abs(pooled - float(original["value"])) <= VALUE_TOLERANCE + 2 * ties / total
    soft_pooled = C.pooled_similarity([ours[f"soft_pair{i}"] for i in range(pairs)])
    assert abs(soft_pooled - float(original["soft_value"])) <= VALUE_TOLERANCE


# fast tier ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sample_rate,n_fft,n_chroma", [(32000, 16384, 12), (32000, 4096, 12), (44100, 2048, 24),
                                                         (22050, 1001, 12)])
def test_the_filter_bank_is_librosas(sample_rate, n_fft, n_chroma):
    filters = pytest.importorskip("librosa.filters")
    ours = C.chroma_filterbank(sample_rate, n_fft, n_chroma=n_chroma)
    theirs = filters.chroma(sr=sample_rate, n_fft=n_fft, tuning=0, n_chroma=n_chroma)
    assert ours.dtype == theirs.dtype == np.float32 and ours.shape == (n_chroma, 1 + n_fft // 2)
    assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("settings", [{}, MUSICGEN], ids=["extractor-defaults", "musicgen"])
def test_an_a4_sine_is_all_a(settings):
    wave = (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(SR) / SR)).astype(np.float32)
    out = C.chroma(wave, SR, **settings)
    _, _, hop = C.stft_sizes(radix2_exp=settings.get("radix2_exp", 12))
    assert out.shape == (1 + SR // hop, 12)
    assert np.all(np.argmax(out, axis=1) == 9)  # bin 0 is C: A is 9 semitones up
    assert np.allclose(out[:, 9], 1.0, atol=1e-12)  # each frame divided by its largest bin
    if settings.get("argmax"):
        assert np.array_equal(out, np.eye(12)[[9] * len(out)])
    else:  # the bank's bumps are a semitone wide: G# and A# get some (at a 4096-point FFT up to 0.45), no more
        assert np.all(out[:, [8, 10]] < 0.5) and np.all(np.delete(out, [8, 9, 10], axis=1) < 0.1)


def test_identical_clips_give_one_and_scale_changes_nothing():
    pcm = golden_inputs()
    ref = pcm["ref0"].astype(np.float32) / 32768
    for argmax in (True, False):
        same = C.chroma_cosine_similarity(ref, ref, SR, argmax=argmax)
        assert same.frames == int(np.ceil(len(ref) / 4096)) and same.value == pytest.approx(1.0, abs=1e-12)
        # loudness normalisation (MusicGen's solver scales the generated clip) cannot move it: frames are scaled
        # to their loudest bin; the 1e-6 floor only matters for frames 1e-6 of full scale
        scaled = C.chroma_cosine_similarity(ref * 0.25, ref, SR, argmax=argmax)
        assert scaled.value == pytest.approx(1.0, abs=1e-12)
    assert C.pooled_similarity([same, C.ChromaSimilarity(cosine_sum=0.0, frames=same.frames)]) == pytest.approx(0.5)


def test_the_frame_count_is_audiocrafts_float32_ceiling():
    sizes = [1, 4095, 4096, 4097, 320000, 4096 * 5000 + 1, 2 ** 26 + 3]
    # (torch.tensor(sizes) / 4096).ceil().int().tolist() in torch 2.11 and 2.13 (not imported: 2 s); the exact
    # ceilings of the last two are 5001 and 16385, but float32 rounds 20480001 and 67108867 down first
    theirs = [1, 1, 1, 2, 79, 5000, 16384]
    assert [C.compared_frames(s, 4096) for s in sizes] == theirs


def test_short_clips_are_padded_to_the_fft_and_sizes_cut_the_comparison():
    rs = np.random.RandomState(0)
    short = (0.1 * rs.standard_normal(5001)).astype(np.float32)
    assert C.chroma(short, SR, **MUSICGEN).shape == (1 + 16384 // 4096, 12)
    ref, gen = (0.1 * rs.standard_normal((2, 3 * SR))).astype(np.float32)
    full = C.chroma_cosine_similarity(gen, ref, SR, argmax=False)
    cut = C.chroma_cosine_similarity(gen, ref, SR, size=SR, argmax=False)
    soft = [C.chroma(x, SR, radix2_exp=14) for x in (ref, gen)]
    assert cut.frames == 8 and cut.cosine_sum == pytest.approx(np.sum(C.cosine_similarity(soft[0][:8], soft[1][:8])))
    assert full.frames == len(soft[0]) == 24  # ceil(96000 / 4096) = 1 + 96000 // 4096: every frame
    # a size beyond the chromagram (a resampled run whose sizes stayed at the input rate) counts every frame it
    # names, as audiocraft does, while the sum covers the frames there are
    over = C.chroma_cosine_similarity(gen, ref, SR, size=2 * 3 * SR, argmax=False)
    assert over.frames == 47 and over.cosine_sum == pytest.approx(
        np.sum(C.cosine_similarity(soft[0], soft[1])))


def test_silent_frames_compare_as_zero_or_as_c():
    silence = np.zeros(SR, dtype=np.float32)
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(SR) / SR)).astype(np.float32)
    assert np.array_equal(C.chroma(silence, SR), np.zeros((1 + SR // 1024, 12)))
    assert C.chroma_cosine_similarity(silence, tone, SR, argmax=False).value == 0.0
    # argmax of an all-zero frame is its first bin (C), as torch's: two silent clips agree everywhere
    assert C.chroma_cosine_similarity(silence, silence, SR).value == 1.0


def test_the_stored_original_output():
    with np.load(GOLDEN) as stored:
        original = dict(stored)
    pcm = golden_inputs()
    assert str(original["inputs_sha256"]) == _sha256(pcm), "golden_inputs() no longer makes the stored clips"
    inputs = _in_npz(pcm, sizes=GOLDEN_SIZES)
    ours = _ours(inputs)
    for i in range(4):  # no near-tie in the stored clips' frames, so the one-hot chroma must agree everywhere
        for name in ("gen", "ref"):
            assert np.all(_clear(original[f"soft_{name}{i}"])), (i, name)
    _compare(original, ours, pairs=4, argmax=True)
    assert original["weight0"] == np.ceil((2 * SR - 5000) / 4096)
    assert 0.3 < float(original["value"]) < 0.9 and 0.3 < float(original["soft_value"]) < 0.99


def test_match_reference_length():
    ref = np.zeros((2, 100), dtype=np.float32)
    long, padded = C.match_reference_length(np.ones((2, 130), dtype=np.float32), ref)
    assert long.shape == (2, 100) and padded == 0
    short, padded = C.match_reference_length(np.ones(70, dtype=np.float32), ref)
    assert short.shape == (100,) and padded == 30 and short[70:].sum() == 0 and short[:70].sum() == 70


@pytest.mark.parametrize("generated,reference,kwargs,error,match", [
    (np.zeros(5000, np.float32), np.zeros(5001, np.float32), {}, InvalidAudioError, "differ in length"),
    (np.full(5000, np.nan, np.float32), np.zeros(5000, np.float32), {}, InvalidAudioError, "NaN or infinite"),
    (np.zeros(5000, np.int16), np.zeros(5000, np.float32), {}, InvalidAudioError, "divide by 32768"),
    (np.zeros(0, np.float32), np.zeros(0, np.float32), {}, InvalidAudioError, "non-empty"),
    (np.zeros(5000, np.float32), np.zeros(5000, np.float32), {"size": -1}, ValueError, "non-negative"),
    (np.zeros(5000, np.float32), np.zeros(5000, np.float32), {"winlen": 4096, "nfft": 2048}, ValueError,
     "winlen <= nfft"),
])
def test_refusals(generated, reference, kwargs, error, match):
    with pytest.raises(error, match=match):
        C.chroma_cosine_similarity(generated, reference, SR, **kwargs)


def test_more_refusals():
    with pytest.raises(InvalidAudioError, match="average the channels"):
        C.chroma(np.zeros((2, 5000), np.float32), SR)
    with pytest.raises(MetricUnavailableError, match="no chroma frame"):
        C.pooled_similarity([])


# parity tier -------------------------------------------------------------------------------------------------------

def _random_pairs(rs: np.random.Generator, sample_rate: int, seconds: list[float]) -> dict[str, np.ndarray]:
    legacy = np.random.RandomState(rs.integers(2 ** 31))
    pairs = {}
    for i, s in enumerate(seconds):
        n = max(1, int(s * sample_rate))
        notes = legacy.randint(40, 90, size=max(1, int(s * 3)))
        ref = rs.uniform(0.05, 0.5) * _melody(legacy, n, notes, sr=sample_rate) + 0.02 * rs.standard_normal(n)
        gen = (rs.uniform(0.05, 0.5) * _melody(legacy, n, notes + rs.integers(-1, 2, size=len(notes)),
                                               sr=sample_rate) + rs.uniform(0, 0.2) * rs.standard_normal(n))
        if i % 2:
            ref, gen = np.stack([ref, rs.standard_normal(n) * 0.05]), np.stack([gen, gen * 0.5])
        pairs[f"gen{i}"], pairs[f"ref{i}"] = gen.astype(np.float32), ref.astype(np.float32)
    return pairs


@pytest.mark.parity
@pytest.mark.parametrize("sample_rate,radix2_exp,argmax", [(SR, 14, True), (SR, 12, False), (44100, 14, True)],
                         ids=["musicgen", "extractor-defaults", "resampled-44k"])
def test_parity_with_the_original_on_fresh_clips(tmp_path, sample_rate, radix2_exp, argmax):
    seed = int(np.random.SeedSequence().entropy % 2 ** 32)
    rs = np.random.default_rng(seed)
    seconds = [10.0, float(rs.uniform(0.05, 0.5)), float(rs.uniform(0.5, 12)), float(rs.uniform(1, 30))]
    pairs = _random_pairs(rs, sample_rate, seconds)
    sizes = {i: int(rs.integers(1, pairs[f"gen{i}"].shape[-1] + 1)) for i in (1, 2)}
    inputs = _in_npz(pairs, sample_rate=sample_rate, sizes=sizes, radix2_exp=radix2_exp, argmax=argmax)
    original = run_original(inputs, tmp_path)
    try:
        _compare(original, _ours(inputs), pairs=len(seconds), argmax=argmax)
    except AssertionError as exc:
        raise AssertionError(f"seed {seed}: {exc}") from exc


if __name__ == "__main__":
    write_golden()
    sys.exit(0)


# through eval ------------------------------------------------------------------------------------------------------

def test_eval_gives_the_pooled_similarity_of_each_pair_read_as_audiocraft_reads_it(tmp_path):
    """``eval --metrics chroma_similarity`` (no model): each pair read as audiocraft does (every channel resampled to
    32 kHz with julius', the generated clip cut or padded to its reference, the padded ones named), the corpus value
    pooled over frames as the metric's ``compute()`` (not a mean of per-file values), per-file values kept."""
    import soundfile as sf

    from audiofidelity import cli
    from audiofidelity.resample import resample

    rs = np.random.RandomState(4)
    clips = {"a.wav": (44100, 2, 7.0, 6.0), "b.wav": (32000, 1, 3.0, 4.5), "c.wav": (48000, 1, 12.0, 12.0)}
    for side in ("gen", "ref"):
        (tmp_path / side).mkdir()
    pairs = []
    for i, (name, (rate, channels, gen_s, ref_s)) in enumerate(clips.items()):
        waves = {}
        for side, seconds, shift in (("gen", gen_s, 0), ("ref", ref_s, 3)):
            n = int(seconds * rate)
            notes = np.array([57 + (k * 5 + i + shift) % 12 for k in range(8)])
            x = np.stack([_melody(rs, n, notes, sr=rate) * (0.5 + 0.2 * c) for c in range(channels)])
            sf.write(tmp_path / side / name, x.T.astype(np.float32), rate, subtype="FLOAT")
            waves[side] = np.stack([resample(ch.astype(np.float32), rate, SR, method="julius") for ch in x.astype(
                np.float32)])
        gen, padded = C.match_reference_length(waves["gen"], waves["ref"])
        pairs.append((name, C.chroma_cosine_similarity(gen, waves["ref"], SR), padded))
    out = tmp_path / "report.json"
    assert cli.main(["eval", str(tmp_path / "gen"), str(tmp_path / "ref"), "--metrics", "chroma_similarity",
                     "--per-file", "--json", str(out), "--quiet", "--no-cache", "--workers", "0"]) == 0
    import json

    report = json.loads(out.read_text())
    value = report["metrics"]["chroma_similarity"]
    assert value == pytest.approx(C.pooled_similarity(p for _, p, _ in pairs), abs=1e-12)
    assert value != pytest.approx(np.mean([p.value for _, p, _ in pairs]), abs=1e-6)  # pooled, not averaged
    details = report["details"]["chroma_similarity"]
    assert details["frames"] == sum(p.frames for _, p, _ in pairs)
    assert details["padded_to_reference"] == [n for n, _, padded in pairs if padded] == ["b.wav"]
    for name, similarity, _ in pairs:
        assert report["per_file"][name]["chroma_similarity"] == pytest.approx(similarity.value, abs=1e-12)
