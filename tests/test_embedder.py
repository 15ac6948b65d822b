"""``Embedder``, ``audiofidelity embed`` and ``GaussianStats``: the models and the statistics from Python."""
import json

import numpy as np
import pytest
import soundfile as sf

from audiofidelity import Embedder, cli
from audiofidelity.metrics import GaussianStats
from audiofidelity.metrics.frechet import frechet_distance_gaussians
from audiofidelity.stats import load_gaussian, save_gaussian
from conftest import eval_cli, linked_recordings

NAMES = ["clip_00.wav", "clip_03.wav", "clip_07.flac", "clip_09.wav", "clip_16.wav"]


@pytest.fixture(scope="module")
def small(recordings_dir, tmp_path_factory):
    """Five generated and five reference clips (mixed rates, a FLAC, a stereo file among the reference ones)."""
    return linked_recordings(recordings_dir, tmp_path_factory.mktemp("small"), NAMES)


@pytest.fixture(scope="module")
def saved(small, models_dir, tmp_path_factory):
    """``eval --save-features`` on the small folders (CNN14 16 kHz + VGGish)."""
    out = tmp_path_factory.mktemp("saved")
    return eval_cli(small / "generated", small / "reference", out, "--models-dir", str(models_dir), "--metrics",
                    "fd,fad", "--no-cache")


@pytest.mark.parametrize("model, output, key", [
    ("cnn14-16k", "embedding", "2048"), pytest.param("cnn14-16k", "logits", "logits", marks=pytest.mark.parity),
    ("vggish", "frames", "vggish")])
def test_embedder_gives_eval_save_features_arrays_from_files_and_from_arrays(small, models_dir, saved, model, output,
                                                                              key):
    _, features = saved
    embedder = Embedder(model, output=output, models_dir=models_dir)
    files = embedder.embed_folder(small / "reference")
    assert list(files.arrays) == NAMES and not files.problems
    for name in NAMES:
        want = features[f"ref/{key}/{name}"]
        assert np.array_equal(files.arrays[name], want), name
        audio, rate = sf.read(small / "reference" / name, dtype="float32", always_2d=True)
        from_array = embedder.embed(audio.T[None], rate)[0]  # a batch of one multichannel clip, first channel
        assert np.array_equal(from_array, want), name


def test_pooling_info_and_a_torch_tensor(small, models_dir):
    import torch

    frames = Embedder("vggish", output="frames", models_dir=models_dir)
    pooled = Embedder("vggish", output="frames", pooling="mean", models_dir=models_dir)
    audio, rate = sf.read(small / "reference" / "clip_03.wav", dtype="float32", always_2d=True)
    audio = audio[:, 0]
    rows = frames.embed(audio, rate)
    assert rows.ndim == 2 and rows.shape[1] == 128
    assert np.allclose(pooled.embed(torch.from_numpy(audio), rate), rows.mean(axis=0), rtol=0, atol=1e-6)
    batch = frames.embed(np.stack([audio, audio * 0.5]), rate)
    assert batch.shape == (2, *rows.shape) and np.array_equal(batch[0], rows)
    info = frames.info
    assert (info.sample_rate, info.shape) == (16000, ("frames", 128)) and pooled.info.shape == (128,)
    assert info.outputs == ("frames",) and len(info.sha256) == 64 and info.rows == "1 per 0.96 s"


@pytest.mark.parametrize("audio, rate, message", [
    (np.zeros(0, np.float32), 16000, "audio is empty"),
    (np.full(16000, np.nan, np.float32), 16000, "NaN or infinite"),
    (np.zeros(16000, np.float32), 16000, "silent"),
    (np.ones(100, np.float32) * 0.1, 16000, "too short"),
    (np.ones(16000, np.int16), 16000, "float samples"),
    (np.ones(16000, np.float32) * 0.1, 0, "sample_rate must be a positive integer"),
    (np.ones((2, 2, 2, 16000), np.float32), 16000, "audio must be"),
])
def test_bad_audio_is_a_value_error_naming_the_problem(models_dir, audio, rate, message):
    embedder = Embedder("cnn14-16k", models_dir=models_dir)
    with pytest.raises(ValueError, match=message):
        embedder.embed(audio, rate)


def test_an_output_the_model_lacks_is_refused_with_what_it_offers(models_dir):
    with pytest.raises(ValueError, match="vggish offers output frames; not 'embedding'"):
        Embedder("vggish", output="embedding", models_dir=models_dir)
    with pytest.raises(ValueError, match="evaluates at 16000 Hz, not 44100"):
        Embedder("cnn14-16k", sample_rate=44100, models_dir=models_dir)


def test_embed_command_writes_fadtk_layout_and_npz_and_names_bad_files(small, models_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in NAMES[:3]:
        (folder / name).symlink_to(small / "reference" / name)
    (folder / "broken.wav").write_bytes(b"RIFF not audio")
    common = ["--model", "vggish", "--output", "frames", "--models-dir", str(models_dir), "--no-cache", "--quiet"]
    assert cli.main(["embed", str(folder), "--out-dir", str(tmp_path / "dir"), *common]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["files"] == 3 and [p["file"] for p in summary["skipped"]] == ["broken.wav"]
    written = sorted(p.name for p in (tmp_path / "dir" / "embeddings" / "vggish").iterdir())
    assert written == ["clip_00.npy", "clip_03.npy", "clip_07.npy"]
    assert cli.main(["embed", str(folder), "--out", str(tmp_path / "all.npz"), *common]) == 0
    with np.load(tmp_path / "all.npz") as data:
        assert list(data["files"]) == NAMES[:3]
        for name in NAMES[:3]:
            stem = tmp_path / "dir" / "embeddings" / "vggish" / f"{name.rsplit('.', 1)[0]}.npy"
            assert np.array_equal(data[name], np.load(stem)) and data[name].dtype == np.float32
        assert json.loads(str(data["info"]))["model"] == "vggish"


def test_gaussian_stats_of_shards_and_streams_equal_one_pass():
    rows = np.random.default_rng(3).normal(size=(500, 6)) * [1, 2, 3, 4, 5, 6] + 10.0
    mean, cov = rows.mean(axis=0), np.cov(rows, rowvar=False)  # the textbook statistics, not the production code
    shards = [GaussianStats.from_features(part) for part in np.array_split(rows, 7)]
    merged = sum(shards[1:], shards[0])
    streamed = GaussianStats()
    for start in range(0, 500, 33):
        streamed.update(rows[start:start + 33])
    for stats in (merged, streamed):
        assert stats.count == 500
        assert np.allclose(stats.mean, mean, rtol=0, atol=1e-12)
        assert np.allclose(stats.cov, cov, rtol=1e-12, atol=1e-12)
    assert GaussianStats().merge(merged).count == 500
    with pytest.raises(ValueError, match="cannot merge statistics of 6-d and 3-d"):
        merged.merge(GaussianStats.from_features(rows[:, :3]))
    with pytest.raises(ValueError, match="at least 2"):
        _ = GaussianStats.from_features(rows[:1]).cov


def test_a_training_loop_fad_equals_eval_against_the_same_statistics_file(small, models_dir, tmp_path):
    from audiofidelity.evaluate import evaluate

    reference_stats = tmp_path / "ref.npz"
    assert cli.main(["stats", str(small / "reference"), "--out", str(reference_stats), "--models-dir", str(models_dir),
                     "--quiet", "--no-cache"]) == 0
    vggish = Embedder("vggish", output="frames", models_dir=models_dir)
    generated = GaussianStats()
    for name in NAMES:  # one "batch" per clip, as a training loop would feed it
        audio, rate = sf.read(small / "generated" / name, dtype="float32", always_2d=True)
        generated.update(vggish.embed(audio.T[None], rate)[0])
    fad = frechet_distance_gaussians(generated, load_gaussian(reference_stats, role="fad"))
    report = evaluate(small / "generated", reference_stats, metrics=["fad"], models_dir=models_dir, progress=False,
                      cache=False).report
    # fewer frames than dimensions: eval takes the trace term exactly from the features, the streamed statistics
    # from their singular covariance, whose square root rounds at ~1e-7 relative (metrics/frechet.py)
    assert fad == pytest.approx(report["metrics"]["frechet_audio_distance"], rel=1e-6)
    save_gaussian(generated, tmp_path / "gen.npz")
    assert load_gaussian(tmp_path / "gen.npz").count == generated.count


def _all_reduce_rank(rank: int, world: int, init_file: str, rows: np.ndarray, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    stats = GaussianStats.from_features(np.array_split(rows, world)[rank]).all_reduce()
    np.savez(f"{out}.{rank}.npz", mean=stats.mean, cov=stats.cov, count=stats.count)
    dist.destroy_process_group()


@pytest.mark.parity  # two spawned processes with torch: CI's parity tier
def test_all_reduce_over_two_gloo_processes_equals_one_process(tmp_path):
    import torch.multiprocessing as mp

    rows = np.random.default_rng(5).normal(size=(301, 5))
    mp.spawn(_all_reduce_rank, args=(2, str(tmp_path / "init"), rows, str(tmp_path / "stats")), nprocs=2)
    one = GaussianStats.from_features(rows)
    for rank in range(2):
        with np.load(tmp_path / f"stats.{rank}.npz") as got:
            assert int(got["count"]) == 301
            assert np.allclose(got["mean"], one.mean, rtol=0, atol=1e-13)
            assert np.allclose(got["cov"], one.cov, rtol=1e-12, atol=1e-13)


def _clips(rate, seconds=2.0, count=2):
    t = np.arange(int(rate * seconds)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * (220 + 110 * k) * t) + 0.01 * np.cos(7 * t) for k in range(count)]
                    ).astype(np.float32)


def test_evar_adapter_is_called_as_evar_calls_a_representation(models_dir):
    import torch

    from audiofidelity.compat.evar import AR_AudioFidelity

    ar = AR_AudioFidelity({"sample_rate": 16000, "audiofidelity_model": "vggish", "models_dir": str(models_dir)})
    batch = torch.from_numpy(_clips(16000))
    ar.precompute(torch.device("cpu"), [(batch, None)])  # EVAR's first call; nothing to compute
    frames = ar.encode_frames(batch)
    pooled = ar(batch)  # nn.Module call, as EVAR's linear evaluation does
    want = Embedder("vggish", output="frames", models_dir=models_dir).embed(batch.numpy(), 16000)  # (B, T, 128)
    assert frames.shape == (2, 128, want.shape[1]) and np.array_equal(frames.numpy(), want.transpose(0, 2, 1))
    assert pooled.shape == (2, 128) and torch.allclose(pooled, frames.mean(dim=2))
    clip_level = AR_AudioFidelity({"sample_rate": 16000, "audiofidelity_model": "cnn14-16k",
                                   "models_dir": str(models_dir)})
    assert clip_level.encode_frames(batch).shape == (2, 2048, 1)


def test_hear_api_gives_timestamped_and_scene_embeddings(models_dir):
    import torch

    from audiofidelity.compat import hear

    model = hear.load_model("", model="vggish", models_dir=str(models_dir))
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (16000, 128, 128)
    audio = torch.from_numpy(_clips(model.sample_rate, seconds=3.0))
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (2, 3, 128) and embeddings.dtype == torch.float32
    assert timestamps.shape == (2, 3) and torch.allclose(timestamps[0], torch.tensor([480.0, 1440.0, 2400.0]))
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (2, 128) and torch.allclose(scene, embeddings.mean(dim=1))


def test_stats_file_carries_fadtk_keys_that_fadtk_load_stats_reads(small, models_dir, tmp_path):
    out = tmp_path / "ref.npz"
    assert cli.main(["stats", str(small / "reference"), "--out", str(out), "--models-dir", str(models_dir), "--quiet",
                     "--no-cache", "--fadtk-name", "vggish"]) == 0
    with np.load(out) as data:  # fadtk's FrechetAudioDistance.load_stats, transcribed
        mu, cov = data["vggish.mu"], data["vggish.cov"]
    ours = load_gaussian(out, role="fad")
    assert np.array_equal(mu, ours.mean) and np.allclose(cov, ours.cov, rtol=1e-15, atol=0)
