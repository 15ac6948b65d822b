"""Bad input is reported by name with its reason, never a traceback or a silent substitution."""
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from audiofidelity import cli, evaluate
from audiofidelity.errors import BadFilesError, InputFolderError

BAD_FILES = {  # name -> expected reason fragment
    "empty.wav": "empty file (0 bytes)",
    "notes.txt": "cannot be decoded as audio",
    "nan.wav": "NaN or infinite",
    "silent.wav": "silent",
    "tiny.wav": "too short: 10.0 ms",
    "folder": "is a folder",
}


@pytest.fixture
def folders(tmp_path, recordings_dir):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir(), ref.mkdir()
    for i in range(12):
        shutil.copy(recordings_dir / "unpaired" / f"other_{i:02d}.wav", gen)
    for i in range(4):
        shutil.copy(recordings_dir / "reference" / f"clip_{i:02d}.wav", ref)
    (gen / "empty.wav").write_bytes(b"")
    (gen / "notes.txt").write_text("not audio")
    sf.write(gen / "nan.wav", np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    sf.write(gen / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(gen / "tiny.wav", np.random.RandomState(0).standard_normal(160).astype(np.float32) * 0.1, 16000)
    (gen / "folder").mkdir()
    return gen, ref


def test_bad_files_are_skipped_and_listed_with_reasons(folders, models_dir, tmp_path, capsys):
    gen, ref = folders
    status = cli.main(["eval", str(gen), str(ref), "--models-dir", str(models_dir), "--json", str(tmp_path / "r.json")])
    assert status == 0
    report = json.loads((tmp_path / "r.json").read_text())
    problems = {p["file"]: p for p in report["problems"]}
    assert set(problems) == set(BAD_FILES)
    for name, reason in BAD_FILES.items():
        assert reason in problems[name]["reason"] and problems[name]["action"] == "skipped"
        assert problems[name]["side"] == "generated"
    assert report["files"]["generated"] == {"folder": str(gen), "listed": 18, "used": 12, "skipped": 6}
    assert report["metrics"]["frechet_distance"] is not None
    err = capsys.readouterr().err
    assert all(name in err for name in BAD_FILES) and "Traceback" not in err


def test_strict_turns_bad_files_into_an_error(folders, models_dir, capsys):
    gen, ref = folders
    assert cli.main(["eval", str(gen), str(ref), "--models-dir", str(models_dir), "--strict", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "6 bad file(s) and --strict is set" in err and "generated/notes.txt" in err
    with pytest.raises(BadFilesError, match="empty.wav"):
        evaluate(gen, ref, models_dir=models_dir, strict=True, progress=False)


def test_min_duration_zero_accepts_a_10ms_clip_padded_as_audioldm_eval_does(folders, models_dir):
    gen, ref = folders
    report = evaluate(gen, ref, models_dir=models_dir, metrics=["fd"], progress=False,
                      conditioning=__import__("audiofidelity").audio.Conditioning(min_duration=0)).report
    assert "tiny.wav" not in {p["file"] for p in report["problems"]}


def test_missing_and_empty_folders_exit_2(tmp_path, recordings_dir, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    ref = str(recordings_dir / "reference")
    assert cli.main(["eval", str(tmp_path / "nope"), ref, "--quiet"]) == 2
    assert "folder not found" in capsys.readouterr().err
    assert cli.main(["eval", str(empty), ref, "--quiet"]) == 2
    assert "folder is empty" in capsys.readouterr().err
    with pytest.raises(InputFolderError, match="not a folder"):
        evaluate(recordings_dir / "reference" / "clip_00.wav", ref)


@pytest.mark.parity  # 9 s; test_trust.py fails a folder of bad files with a summary in the fast tier
def test_a_folder_whose_files_are_all_bad_yields_null_metrics_with_reasons(tmp_path, recordings_dir, models_dir):
    gen = tmp_path / "gen"
    gen.mkdir()
    (gen / "a.wav").write_bytes(b"")
    (gen / "b.wav").write_text("x")
    report = evaluate(gen, recordings_dir / "reference", models_dir=models_dir, progress=False).report
    assert report["metrics"]["frechet_distance"] is None
    assert report["unavailable"]["frechet_distance"] == "no usable generated files (2 skipped, see problems)"
    assert report["error"] == report["unavailable"]["frechet_distance"]
    assert report["files"]["generated"]["used"] == 0


@pytest.mark.parametrize("argv,message", [
    (["--sr", "22050"], "no artifact for backbone 'cnn14' at 22050 Hz"),
    (["--metrics", "fd,bogus"], "unknown metric(s) bogus"),
    (["--limit", "0"], "--limit must be >= 1"),
])
def test_misuse_exits_2_with_a_hint(recordings_dir, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["eval", str(recordings_dir / "generated"), str(recordings_dir / "reference"), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_silent_clip_passes_only_where_silence_is_allowed_and_empty_or_nan_never_do():
    from audiofidelity.audio import validate_audio
    from audiofidelity.errors import InvalidAudioError

    silent = np.zeros((1, 16000), np.float32)
    with pytest.raises(InvalidAudioError, match="silent"):
        validate_audio(silent, 16000)
    validate_audio(silent, 16000, allow_silent=True)  # the SC09 benchmark classifies it like any sample
    nan = silent.copy()
    nan[0, 5] = np.nan
    for bad, reason in ((np.zeros((1, 0), np.float32), "no samples"), (nan, "1 sample")):
        with pytest.raises(InvalidAudioError, match=reason):
            validate_audio(bad, 16000, allow_silent=True)


def test_a_file_without_a_partner_in_paired_mode_is_named_not_skipped_silently(tmp_path):
    """101 generated and 100 reference files share 100 names: paired mode (over 99% of both), and the one without a
    partner is named with what was done (audioldm_eval drops it without a word); ``--strict`` refuses the run."""
    from audiofidelity import cli

    rng = np.random.default_rng(0)
    for side, count in (("gen", 101), ("ref", 100)):
        (tmp_path / side).mkdir()
        for i in range(count):
            sf.write(tmp_path / side / f"c{i:03d}.wav", 0.1 * rng.standard_normal(1600), 16000)
    out = tmp_path / "report.json"
    common = [str(tmp_path / "gen"), str(tmp_path / "ref"), "--metrics", "lsd", "--sr", "16000", "--quiet",
              "--no-cache", "--workers", "0"]
    assert cli.main(["eval", *common, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["mode"] == "paired" and report["files"]["pairs"] == 100
    assert [p for p in report["problems"] if p["file"] == "c100.wav"] == [
        {"side": "generated", "file": "c100.wav", "reason": "no file of the same name in the other folder",
         "action": "left out of the paired metrics"}]
    assert cli.main(["eval", *common, "--strict"]) != 0
