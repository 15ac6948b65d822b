"""Captions files for CLAP score, the score's formula, and the settings that go with it (no model needed)."""
import json

import numpy as np
import pytest
import torch

from audiofidelity import cli
from audiofidelity.captions import read_captions
from audiofidelity.errors import CaptionsFileError
from audiofidelity.metrics.clap_score import clap_score, clap_scores, cosine
from audiofidelity.settings import EvaluationSettings


def write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_json_object_keys_by_name_or_name_without_extension(tmp_path):
    captions = read_captions(write(tmp_path / "c.json", json.dumps(
        {"a": "a dog barks", "b.wav": "rain on a roof", "c.flac": "exact name", "c": "by stem"})))
    assert captions.problems == []
    assert captions.caption_for("a.wav") == "a dog barks"
    assert captions.caption_for("b.wav") == "rain on a roof" and captions.caption_for("b.mp3") is None
    assert captions.caption_for("c.flac") == "exact name" and captions.caption_for("c.wav") == "by stem"
    assert captions.ids_used_by(["a.wav", "c.flac", "zz.wav"]) == {"a", "c.flac"}


def test_csv_with_musiccaps_columns_quotes_bom_and_non_ascii(tmp_path):
    text = '\ufeffytid,start_s,caption\nq1,0,"a piano, then strings"\nq2,10,"Café 鳥 🎵 ""quoted"""\n\n'
    captions = read_captions(write(tmp_path / "musiccaps.csv", text))
    assert captions.by_id == {"q1": "a piano, then strings", "q2": 'Café 鳥 🎵 "quoted"'}
    assert captions.problems == []


def test_every_unusable_entry_is_named_with_what_was_done(tmp_path):
    captions = read_captions(write(tmp_path / "c.json", '{"a": "one", "a": "two", "b": "  ", "c": 7, "d": "same", '
                                                         '"d": "same", "": "no id", "e": "fine"}'))
    assert captions.by_id == {"d": "same", "e": "fine"}
    reasons = {p["id"]: (p["reason"], p["action"]) for p in captions.problems}
    assert set(reasons) == {"a", "b", "c", ""}
    assert "another caption" in reasons["a"][0] and "unknown" in reasons["a"][1]
    assert "empty" in reasons["b"][0] and "not text" in reasons["c"][0] and "id is empty" in reasons[""][0]
    rows = read_captions(write(tmp_path / "c.csv", "file,caption\nx.wav,ok\ny.wav\n"))
    assert rows.by_id == {"x.wav": "ok"} and rows.problems[0]["line"] == 3


@pytest.mark.parametrize("content, expected", [
    (b"id,caption\nx,\xff\xfeoops\n", "not UTF-8"),
    (b'["a list"]', "not an object"),
    (b"name;caption\nx;y\n", "neither a JSON object nor a CSV"),
    (b"", "neither a JSON object nor a CSV"),
])
def test_files_that_cannot_be_captions_are_refused_by_name(tmp_path, content, expected):
    path = write(tmp_path / "bad.txt", content)
    with pytest.raises(CaptionsFileError, match=expected) as caught:
        read_captions(path)
    assert isinstance(caught.value, ValueError) and caught.value.path == path
    with pytest.raises(CaptionsFileError, match="cannot read"):
        read_captions(tmp_path / "absent.json")


def test_cosine_is_torchs_cosine_similarity_and_the_score_their_mean():
    rng = np.random.default_rng(0)
    audio = {f"f{i}": rng.standard_normal((1, 512)).astype(np.float32) for i in range(5)}
    text = {f"f{i}": rng.standard_normal(512).astype(np.float32) for i in range(4)}
    scores = clap_scores(audio, text)
    assert list(scores) == ["f0", "f1", "f2", "f3"]
    for name, value in scores.items():
        want = torch.nn.functional.cosine_similarity(torch.from_numpy(audio[name]), torch.from_numpy(text[name])[None],
                                                     dim=1, eps=1e-8)
        assert value == pytest.approx(float(want), abs=1e-6)
    assert clap_score(scores) == pytest.approx(np.mean(list(scores.values())))
    assert cosine(np.zeros(4), np.ones(4)) == 0.0  # no division by zero
    assert np.isnan(clap_score({}))


def test_settings_refuse_clap_score_without_captions_or_a_clap_model(tmp_path):
    captions = write(tmp_path / "c.json", '{"a": "x"}')
    EvaluationSettings(metrics=["clap_score"], fad_model="clap-music")  # captions may come with each evaluate call
    with pytest.raises(ValueError, match="clap_score only"):
        EvaluationSettings(metrics=["fad"], fad_model="clap-music", captions=captions)
    with pytest.raises(ValueError, match="CLAP --fad-model.*clap-630k-audioset"):
        EvaluationSettings(metrics=["clap_score"], captions=captions)
    settings = EvaluationSettings.from_keywords(metrics=["clap_score"], fad_model="clap-music-speech-audioset",
                                                captions=captions, clap_feeding="stable-audio-metrics")
    assert settings.model_options == {"clap_feeding": "stable-audio-metrics"}
    with pytest.raises(ValueError, match="clap_feeding must be one of"):
        EvaluationSettings.from_keywords(metrics=["clap_score"], fad_model="clap-music", captions=captions,
                                         clap_feeding="audiocraft")
    with pytest.raises(ValueError, match="--clap-feeding audioldm_eval: .*non-fusion.*clap-630k-audioset-fusion"):
        EvaluationSettings.from_keywords(metrics=["clap_score"], fad_model="clap-630k-audioset-fusion",
                                         captions=captions, clap_feeding="audioldm_eval")


SPECTROGRAM = dict(sample_rate=48000, n_fft=1024, hop_length=480, win_length=1024, window="hann", center=True,
                   pad_mode="reflect", power=2.0, n_mels=64, fmin=50, fmax=14000, htk=False, mel_norm="slaney",
                   amin=1e-10, ref=1.0, top_db=None)


def test_audioldm_evals_clap_input_is_the_first_window_and_a_short_clip_as_it_is():
    from audiofidelity.frontends import log_mel
    from audiofidelity.models.clap import clap_log_mel, clap_log_mel_fitting

    x = np.random.default_rng(0).uniform(-0.5, 0.5, 30000).astype(np.float32)
    first = clap_log_mel(x, window_samples=24000, quantize=False, windowing="first", **SPECTROGRAM)
    assert np.array_equal(first, log_mel(x[:24000], **SPECTROGRAM))  # the rest dropped, nothing averaged
    short = clap_log_mel(x[:9000], window_samples=24000, quantize=False, windowing="first", **SPECTROGRAM)
    assert short.shape == (1, 1, 9000 // 480 + 1, 64) and np.array_equal(short, log_mel(x[:9000], **SPECTROGRAM))
    repeated = clap_log_mel(x[:9000], window_samples=24000, quantize=False, **SPECTROGRAM)
    assert repeated.shape == (1, 1, 24000 // 480 + 1, 64)  # laion_clap's repeat-padding, for contrast
    assert [clap_log_mel_fitting(n, window_samples=24000, windowing=w) for n in (24000, 24001) for w in
            ("first", "repeat")] == [None, None, "cut", None]
    with pytest.raises(ValueError, match="windowing must be one of"):
        clap_log_mel(x, window_samples=24000, windowing="middle", **SPECTROGRAM)


def test_command_line_misuse_exits_2_naming_the_fix(tmp_path, capsys):
    (tmp_path / "g").mkdir()
    captions = write(tmp_path / "c.json", '{"a": "x"}')
    for args, message in ((["--metrics", "clap_score", "--fad-model", "clap-music"], "--captions FILE"),
                          (["--metrics", "clap_score", "--captions", str(captions)], "CLAP --fad-model"),
                          (["--captions", str(captions)], "add it to --metrics")):
        with pytest.raises(SystemExit) as exited:
            cli.main(["eval", str(tmp_path / "g"), str(tmp_path / "g"), *args])
        assert exited.value.code == 2 and message in capsys.readouterr().err


def test_shuffled_captions_never_pair_a_file_with_its_own_and_are_the_same_every_run():
    from audiofidelity.metrics.clap_score import shuffled_partners

    names = [f"f{i}" for i in range(9)]
    partners = shuffled_partners(names)
    assert sorted(partners) == names and sorted(partners.values()) == names  # a permutation
    assert all(partner != name for name, partner in partners.items())
    assert partners == shuffled_partners(names) and shuffled_partners(["a"]) == {}
    assert shuffled_partners(["a", "b"]) == {"a": "b", "b": "a"}


def test_the_floor_is_the_score_against_shuffled_captions_and_warns_within_noise():
    from audiofidelity.metrics.clap_score import floor, shuffled_partners

    rng = np.random.default_rng(3)
    text = {f"f{i}": rng.standard_normal(16) for i in range(12)}
    matched = {n: t + 0.3 * rng.standard_normal(16) for n, t in text.items()}  # audio that follows its caption
    unrelated = {n: rng.standard_normal(16) for n in text}
    partners = shuffled_partners(list(text))
    cos = lambda a, b: float(torch.nn.functional.cosine_similarity(torch.tensor(a)[None], torch.tensor(b)[None])[0])  # noqa: E731
    for audio, noisy in ((matched, False), (unrelated, True)):
        found = floor(audio, text)
        own = np.array([cos(audio[n], text[n]) for n in text])
        other = np.array([cos(audio[n], text[partners[n]]) for n in text])
        assert found.score == pytest.approx(own.mean(), abs=1e-12)
        assert found.floor == pytest.approx(other.mean(), abs=1e-12)
        assert found.standard_error == pytest.approx(np.std(own - other, ddof=1) / np.sqrt(12), abs=1e-12)
        assert found.within_noise is noisy
    assert floor({"a": np.ones(3)}, {"a": np.ones(3)}) is None


def test_files_sharing_a_caption_are_never_each_others_floor():
    from audiofidelity.metrics.clap_score import floor, shuffled_partners

    captions = {"a1": "cat", "a2": "cat", "a3": "cat", "b1": "dog", "c1": "car"}
    partners = shuffled_partners(list(captions), captions)
    assert all(captions[p] != captions[n] for n, p in partners.items()) and set(partners) == set(captions)
    assert shuffled_partners(["a", "b"], {"a": "x", "b": "x"}) == {}
    rng = np.random.default_rng(5)
    same = rng.standard_normal(8)
    assert floor({f"g{i}": rng.standard_normal(8) for i in range(4)}, {f"g{i}": same for i in range(4)}) is None
