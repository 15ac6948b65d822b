"""CLAP's text tower and CLAP score against laion_clap and transformers (parity tier: the stand-in checkpoint holds
RoBERTa-base, 125M values, and laion_clap is the reference)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from fixtures import checkpoints
from fixtures.clap_text import clap_text_state_dict
from fixtures.roberta_vocab import captions as tokenizer_corpus
from test_clap_fusion import side_python
from test_fad_models import need_laion_clap, write_clips

pytestmark = pytest.mark.parity
MODEL = "clap-630k-audioset"


def test_stand_in_has_the_packages_text_keys_and_shapes():
    need_laion_clap()
    from verify_clap_text import constructed_model

    want = {k: v for k, v in constructed_model(MODEL).state_dict().items()
            if k.startswith(("text_branch.", "text_projection.", "text_transform.", "logit_scale_t"))
            and not k.endswith(".position_ids")}
    got = clap_text_state_dict(MODEL)
    assert {k: (tuple(v.shape), str(v.dtype)) for k, v in got.items()} == \
        {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in want.items()}


@pytest.fixture(scope="module")
def tower(all_models_dir):
    from audiofidelity import artifacts
    from audiofidelity.text_tower import TextTower

    return TextTower(artifacts.load(MODEL + "-text", directory=all_models_dir))


def test_stand_in_captions_embed_far_apart_and_independent_of_their_pass(tower):
    corpus = tokenizer_corpus()[:20]
    rows = tower.embed(corpus)
    assert rows.shape == (20, 512) and np.allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)
    similarity = rows @ rows.T
    assert similarity[~np.eye(20, dtype=bool)].max() < 0.99  # the stand-in's activations did not collapse
    alone = np.concatenate([tower.embed([c]) for c in corpus[5:9]])
    assert np.array_equal(alone, rows[5:9])  # fixed passes: a caption's bits do not depend on its neighbours
    assert np.array_equal(tower.embed(corpus[::-1])[::-1], rows)


@pytest.fixture(scope="module")
def scored_audio(tmp_path_factory):
    """Clips from 0.2 s to 12 s at 16, 44.1 and 48 kHz, mono and stereo, and their captions (two ids without a file,
    one file without a caption)."""
    root = tmp_path_factory.mktemp("clap-score")
    write_clips(root / "gen", 48000, [0.2, 4.0, 12.0], seed=21)
    for i, (rate, channels) in enumerate([(44100, 2), (16000, 1)]):
        write_clips(root / f"tmp{i}", rate, [1.5 + i], channels=channels, seed=22 + i)
        (root / f"tmp{i}" / "clip_00.wav").rename(root / "gen" / f"other_{i}.wav")
    caps = {"clip_00": "A dog barks while rain falls.", "clip_01.wav": "Café jazz, 鳥の声 🎵",
            "other_0": "a very long caption " * 40, "other_1": "two words", "nothing": "no file", "gone": "no file"}
    (root / "captions.json").write_text(json.dumps(caps, ensure_ascii=False), encoding="utf-8")
    return root


@pytest.mark.parametrize("feeding, every", [("laion_clap", 4), ("stable-audio-metrics", 64)])
def test_verify_clap_text_passes_with_each_feeding(all_models_dir, all_checkpoints_dir, scored_audio, tmp_path,
                                                   feeding, every):
    """The token ids and the text tower on every ``every``-th caption of the corpus (a quarter once; both towers take
    15 s per 150 captions here, and the other feedings differ in their audio only), the CLAP score as ``feeding``."""
    need_laion_clap()
    corpus = tmp_path / "corpus.json"
    corpus.write_text(json.dumps(tokenizer_corpus()[::every], ensure_ascii=False), encoding="utf-8")
    done = subprocess.run([sys.executable, str(ROOT / "verify_scripts" / "verify_clap_text.py"), MODEL, "--source",
                           str(all_checkpoints_dir / checkpoints.CLAP[MODEL]["file"]), "--models-dir",
                           str(all_models_dir), "--captions", str(corpus), "--audio", str(scored_audio / "gen"),
                           "--audio-captions", str(scored_audio / "captions.json"), "--feeding", feeding],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: token ids identical, text embeddings within 0.0001 of laion_clap, CLAP score within 1e-05" \
        in done.stdout


def test_the_tower_takes_captions_of_up_to_512_tokens_and_refuses_longer(tower):
    from audiofidelity.errors import ManifestError
    from audiofidelity.text_tower import TextTower

    long = TextTower(tower.artifact, max_length=512)
    captions = ["two words", "a very long caption " * 40]
    short_rows, long_rows = tower.embed(captions), long.embed(captions)
    assert np.abs(short_rows[0] - long_rows[0]).max() < 1e-5  # padding is masked: only rounding differs
    assert np.abs(short_rows[1] - long_rows[1]).max() > 1e-3  # 77 tokens truncate it, 512 do not
    for length in (1, 513):
        with pytest.raises(ManifestError, match=f"takes 2 to 512 tokens per caption, not {length}"):
            TextTower(tower.artifact, max_length=length)


def test_verify_clap_text_passes_with_audioldm_evals_feeding(all_models_dir, all_checkpoints_dir, scored_audio,
                                                             tmp_path):
    """audioldm_eval's branch: two-step resampling with its 1-s padding at 32 kHz between, the first 10 s of the 12-s
    clip, clips under 10 s fed unpadded at 48 kHz, captions of 512 tokens (one over 77, one over 512), against
    laion_clap's model fed as the branch feeds it (its audio side in the side virtualenv)."""
    need_laion_clap()
    python = side_python()
    captions = json.loads((scored_audio / "captions.json").read_text(encoding="utf-8"))
    captions["clip_02"] = "word " * 700
    (tmp_path / "captions.json").write_text(json.dumps(captions, ensure_ascii=False), encoding="utf-8")
    corpus = tmp_path / "corpus.json"
    corpus.write_text(json.dumps(tokenizer_corpus()[::64], ensure_ascii=False), encoding="utf-8")  # see above
    done = subprocess.run([sys.executable, str(ROOT / "verify_scripts" / "verify_clap_text.py"), MODEL, "--source",
                           str(all_checkpoints_dir / checkpoints.CLAP[MODEL]["file"]), "--models-dir",
                           str(all_models_dir), "--captions", str(corpus), "--audio", str(scored_audio / "gen"),
                           "--audio-captions", str(tmp_path / "captions.json"), "--feeding", "audioldm_eval",
                           "--original-python", str(python)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CLAP score (audioldm_eval)" in done.stdout and "worst file" in done.stdout
    assert "OK: token ids identical, text embeddings within 0.0001 of laion_clap, CLAP score within 1e-05" \
        in done.stdout


def test_audioldm_evals_feeding_is_recorded_counts_the_cut_clip_and_refuses_the_fusion_model(all_models_dir,
                                                                                            scored_audio):
    from audiofidelity.evaluate import evaluate

    result = evaluate(scored_audio / "gen", scored_audio / "gen", metrics=["clap_score"], fad_model=MODEL,
                      captions=scored_audio / "captions.json", models_dir=all_models_dir, clap_feeding="audioldm_eval",
                      progress=False, cache=False)
    report = result.report
    assert report["provenance"]["clap_feeding"] == "audioldm_eval"
    assert report["files"]["generated"]["windowing"] == {MODEL: {"cut": 1, "padded": 0}}  # 12 s: its first 10 s
    laion = evaluate(scored_audio / "gen", scored_audio / "gen", metrics=["clap_score"], fad_model=MODEL,
                     captions=scored_audio / "captions.json", models_dir=all_models_dir, progress=False, cache=False)
    assert report["metrics"]["clap_score"] != laion.report["metrics"]["clap_score"]
    with pytest.raises(ValueError, match="fusion model"):
        evaluate(scored_audio / "gen", scored_audio / "gen", metrics=["clap_score"],
                 fad_model="clap-630k-audioset-fusion", captions=scored_audio / "captions.json",
                 models_dir=all_models_dir, clap_feeding="audioldm_eval", progress=False)


def test_eval_reports_the_score_per_file_and_every_unmatched_file_and_caption(all_models_dir, scored_audio, tmp_path):
    out = tmp_path / "report.json"
    script = (f"import sys, json; from audiofidelity import cli; "
              f"status = cli.main(['eval', {str(scored_audio / 'gen')!r}, {str(scored_audio / 'gen')!r}, '--metrics', "
              f"'clap_score', '--fad-model', {MODEL!r}, '--captions', {str(scored_audio / 'captions.json')!r}, "
              f"'--models-dir', {str(all_models_dir)!r}, '--per-file', '--quiet', '--no-cache', "
              f"'--clap-feeding', 'stable-audio-metrics', '--json', {str(out)!r}]); "
              f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
              f"('transformers', 'tokenizers', 'laion_clap', 'torchaudio')))); sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []  # the score runs on the runtime's dependencies alone
    report = json.loads(out.read_text())
    per_file = {name: row["clap_score"] for name, row in report["per_file"].items() if "clap_score" in row}
    assert set(per_file) == {"clip_00.wav", "clip_01.wav", "other_0.wav", "other_1.wav"}
    assert report["metrics"]["clap_score"] == pytest.approx(np.mean(list(per_file.values())), abs=1e-12)
    assert report["details"]["clap_score"]["files"] == 4 and report["details"]["clap_score"]["without_caption"] == 1
    assert report["files"]["captions"] == {"file": str(scored_audio / "captions.json"), "captions": 6,
                                           "generated_with_caption": 4}
    problems = [p for p in report["problems"] if "clap_score" in p["action"] or p["side"] == "captions"]
    assert {(p["side"], p["file"]) for p in problems} == {("generated", "clip_02.wav"), ("captions", "captions.json")}
    unused = next(p for p in problems if p["side"] == "captions")
    assert unused["ids"] == ["gone", "nothing"] and unused["action"] == "not scored against generated audio"
    assert report["provenance"]["clap_feeding"] == "stable-audio-metrics"
    sanity = report["details"]["clap_score"]["sanity"]  # the same folder on both sides: the same figures
    assert sanity["generated"] == sanity["reference"] and sanity["generated"]["files"] == 4
    assert sanity["generated"]["score"] == pytest.approx(report["metrics"]["clap_score"], abs=1e-12)
    # random stand-in towers: audio follows no caption, so the score is within noise of the floor and it says so
    assert len(sanity["warnings"]) == 2 and "within noise" in sanity["warnings"][0]


def test_the_text_export_refuses_a_checkpoint_without_a_text_tower(all_checkpoints_dir, tmp_path):
    import torch

    audio_only = tmp_path / "audio-only.pt"
    state = torch.load(all_checkpoints_dir / checkpoints.CLAP[MODEL]["file"], weights_only=True)["state_dict"]
    torch.save({"state_dict": {k: v for k, v in state.items() if ".text_" not in k and "module.text" not in k}},
               audio_only)
    from conftest import ROBERTA_FILES, run_export

    done = run_export(MODEL + "-text", audio_only, tmp_path / "out", *ROBERTA_FILES)
    assert done.returncode != 0 and "holds no RoBERTa text tower" in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    missing = run_export(MODEL + "-text", audio_only, tmp_path / "out")
    assert missing.returncode == 2 and "--vocab vocab.json" in missing.stderr


def test_embedder_and_embed_command_give_the_towers_caption_embeddings(all_models_dir, tower, scored_audio, tmp_path,
                                                                      capsys):
    from audiofidelity import Embedder, cli

    texts = ["a dog barks", "Café jazz, 鳥の声 🎵"]
    embedder = Embedder(MODEL, output="text", models_dir=all_models_dir)
    assert np.array_equal(embedder.embed_text(texts), tower.embed(texts))
    assert embedder.info.shape == (512,) and embedder.info.output == "text"
    assert np.array_equal(Embedder(MODEL + "-text", models_dir=all_models_dir).embed_text(texts), tower.embed(texts))
    with pytest.raises(ValueError, match="embeds captions"):
        embedder.embed(np.zeros(48000, np.float32), 48000)
    audio = Embedder(MODEL, models_dir=all_models_dir)
    assert "text" in audio.info.outputs
    with pytest.raises(ValueError, match="output='text'"):
        audio.embed_text(texts)
    with pytest.raises(ValueError, match="has no text tower"):
        Embedder("vggish", output="text", models_dir=all_models_dir)

    out = tmp_path / "text.npz"
    status = cli.main(["embed", "--captions", str(scored_audio / "captions.json"), "--model", MODEL, "--out", str(out),
                       "--models-dir", str(all_models_dir), "--quiet"])
    assert status == 0
    saved = np.load(out)
    ids = ["clip_00", "clip_01.wav", "other_0", "other_1", "nothing", "gone"]
    assert list(saved["files"]) == ids
    captions = json.loads((scored_audio / "captions.json").read_text(encoding="utf-8"))
    assert np.array_equal(np.stack([saved[i] for i in ids]), tower.embed([captions[i] for i in ids]))
    capsys.readouterr()
    assert cli.main(["embed", str(scored_audio / "gen"), "--captions", str(scored_audio / "captions.json"), "--model",
                     MODEL, "--out", str(out), "--models-dir", str(all_models_dir)]) == 2
    assert "one of the two" in capsys.readouterr().err
    (tmp_path / "ids.json").write_text('{"a.wav": "one", "a.flac": "two", "../up": "three"}')
    assert cli.main(["embed", "--captions", str(tmp_path / "ids.json"), "--model", MODEL, "--out-dir",
                     str(tmp_path / "dir"), "--models-dir", str(all_models_dir)]) == 2
    assert "not plain file names: '../up'" in capsys.readouterr().err and not (tmp_path / "dir").exists()


def test_frechet_audio_distance_clapscore_drop_in_pairs_by_id_and_matches_laion_clap(all_models_dir,
                                                                                       all_checkpoints_dir,
                                                                                       scored_audio, tmp_path):
    """The drop-in's score against laion_clap fed as frechet_audio_distance feeds it (``load_audio_task``:
    soundfile, the channel mean, ``resampy.resample`` to 48 kHz; tensors, so no int16 round trip), transcribed."""
    need_laion_clap()
    import resampy
    import soundfile as sf
    import torch

    from audiofidelity.compat.frechet_audio_distance import CLAPScore
    from audiofidelity.frontends import window_starts  # the documented rule over 10 s (none of these clips)
    from verify_clap_text import load_original

    folder = tmp_path / "audio"
    folder.mkdir()
    names = ["clip_00.wav", "clip_01.wav", "other_0.wav"]
    for name in names:
        (folder / name).symlink_to(scored_audio / "gen" / name)
    texts = ["A dog barks while rain falls.", "Café jazz, 鳥の声 🎵", "two words"]
    by_id = tmp_path / "by_id.csv"
    by_id.write_text("caption,file\n" + "".join(f'"{t}",{n}\n' for n, t in reversed(list(zip(names, texts)))),
                     encoding="utf-8")
    by_position = tmp_path / "by_position.csv"
    by_position.write_text("caption\n" + "".join(f'"{t}"\n' for t in texts), encoding="utf-8")
    drop_in = CLAPScore(submodel_name="630k-audioset", models_dir=all_models_dir, cache=False)
    mean, std = drop_in.score(by_id, folder)
    assert (mean, std) == drop_in.score(by_position, folder)

    vocab = all_models_dir / f"{MODEL}-text.vocab.json"
    original = load_original(MODEL, all_checkpoints_dir / checkpoints.CLAP[MODEL]["file"], vocab,
                             all_models_dir / f"{MODEL}-text.merges.txt")
    scores = []
    with torch.inference_mode():
        text = original.get_text_embedding(texts, use_tensor=True)
        for name, row in zip(names, text):
            wave, rate = sf.read(folder / name, dtype="float32")
            wave = resampy.resample(wave.mean(axis=1) if wave.ndim == 2 else wave, rate, 48000).astype(np.float32)
            pieces = [wave] if len(wave) <= 480000 else [wave[s:s + 480000] for s in window_starts(len(wave), 480000)]
            audio = torch.stack([original.get_audio_embedding_from_data(torch.from_numpy(p)[None], use_tensor=True)[0]
                                 for p in pieces]).mean(0)
            scores.append(float(torch.nn.functional.cosine_similarity(audio[None], row[None], eps=1e-8)[0]))
    assert mean == pytest.approx(np.mean(scores), abs=1e-5) and std == pytest.approx(np.std(scores), abs=1e-5)
    with pytest.raises(ValueError, match="3 files; without an id column"):
        (tmp_path / "short.csv").write_text("caption\none\n")
        drop_in.score(tmp_path / "short.csv", folder)


def test_the_service_scores_an_uploaded_captions_file_as_evaluate_does(all_models_dir, scored_audio, tmp_path):
    pytest.importorskip("fastapi")
    from audiofidelity.evaluate import Evaluator
    from test_server import make_client, wait_finished

    gen = scored_audio / "gen"
    names = sorted(p.name for p in gen.iterdir())
    files = [(f"{side}_files", (n, (gen / n).read_bytes())) for side in ("generated", "reference") for n in names]
    files.append(("captions", ("captions.json", (scored_audio / "captions.json").read_bytes())))
    with make_client(tmp_path, all_models_dir) as client:
        posted = client.post("/evaluate", files=files, data={"metrics": "CLAP_SCORE", "fad_model": MODEL})
        assert posted.status_code == 202, posted.json()
        job = wait_finished(client, posted.json()["job_id"], seconds=600)
    assert job["status"] == "completed", job
    assert job["files"]["captions"] == {"file": "captions/captions.json", "captions": 6, "generated_with_caption": 4}
    with Evaluator(metrics=["clap_score"], fad_model=MODEL, models_dir=all_models_dir, cache=False,
                   progress=False) as evaluator:
        with pytest.raises(ValueError, match="needs the captions"):
            evaluator.evaluate(gen, gen)
        direct = evaluator.evaluate(gen, gen, captions=scored_audio / "captions.json").report
    assert job["metrics"]["clap_score"] == direct["metrics"]["clap_score"]


def test_torchmetrics_clapscore_equals_eval_and_reduces_by_sum(all_models_dir, scored_audio, tmp_path):
    """Fed in batches (a list of clips at their rates, then audiocraft's form) it gives eval's value on the same
    clips; two ranks' states summed (torchmetrics' ``_sync_dist``, as the FAD test does) give the one-process value."""
    pytest.importorskip("torchmetrics")
    import soundfile as sf
    import torch

    from audiofidelity.compat.torchmetrics import CLAPScore
    from audiofidelity.errors import MetricUnavailableError
    from audiofidelity.evaluate import evaluate
    from test_torchmetrics_compat import _World

    names = ["clip_00.wav", "clip_01.wav", "other_0.wav", "other_1.wav"]
    captions = json.loads((scored_audio / "captions.json").read_text(encoding="utf-8"))
    texts = [captions.get(n, captions.get(n.removesuffix(".wav"))) for n in names]
    clips = []
    for name in names:
        data, rate = sf.read(scored_audio / "gen" / name, dtype="float32", always_2d=True)
        clips.append((torch.from_numpy(data.T.copy()), rate))
    folder = tmp_path / "captioned"
    folder.mkdir()
    for name in names:
        (folder / name).symlink_to(scored_audio / "gen" / name)
    want = evaluate(folder, folder, metrics=["clap_score"], fad_model=MODEL, captions=scored_audio / "captions.json",
                    models_dir=all_models_dir, cache=False, progress=False).report["metrics"]["clap_score"]

    def metric(batch):
        made = CLAPScore(MODEL, models_dir=all_models_dir, sync_on_compute=False)
        made.update([c for c, _ in clips[batch]], [r for _, r in clips[batch]], texts[batch])
        return made

    one = metric(slice(0, 4))
    assert float(one.compute()) == pytest.approx(want, abs=1e-12)
    synced = _World([metric(slice(0, 1)), metric(slice(1, 4))]).synced(0)
    assert float(synced.compute()) == pytest.approx(want, abs=1e-12)  # rank 0 alone holds one clip of four
    audiocraft = CLAPScore(MODEL, models_dir=all_models_dir)
    mono = [c[0] for c, _ in clips[:2]]
    length = min(len(m) for m in mono)
    audiocraft.update(torch.stack([m[:length] for m in mono]), texts[:2], torch.tensor([length, length]),
                      torch.tensor([clips[0][1], clips[1][1]]))
    assert int(audiocraft.count) == 2
    with pytest.raises(ValueError, match="one per clip"):
        audiocraft.update([clips[0][0]], [clips[0][1]], ["a", "b"])
    with pytest.raises(ValueError, match="non-empty str"):
        audiocraft.update([clips[0][0]], [clips[0][1]], [""])
    with pytest.raises(MetricUnavailableError):
        CLAPScore(MODEL, models_dir=all_models_dir).compute()


def test_a_tampered_or_missing_tokenizer_file_beside_the_tower_is_refused_by_name(all_models_dir, tmp_path):
    """The tokenizer files' sha256 is sealed in the manifest: an edited, truncated or absent one is never used."""
    import shutil

    from audiofidelity import artifacts
    from audiofidelity.errors import TokenizerFilesError
    from audiofidelity.text_tower import TextTower

    name = MODEL + "-text"
    for suffix in (".pt2", ".json", ".vocab.json", ".merges.txt"):
        shutil.copy(all_models_dir / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    vocab = tmp_path / f"{name}.vocab.json"
    original = vocab.read_bytes()
    for damaged in (original + b"\n", original[: len(original) // 2]):  # one byte more; cut short
        vocab.write_bytes(damaged)
        with pytest.raises(TokenizerFilesError) as refused:
            TextTower(artifacts.load(name, directory=tmp_path, lazy=True))
        assert refused.value.path == vocab
    vocab.unlink()
    with pytest.raises(TokenizerFilesError) as refused:
        TextTower(artifacts.load(name, directory=tmp_path, lazy=True))
    assert refused.value.path == vocab
