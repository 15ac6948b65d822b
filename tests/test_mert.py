"""MERT-v1-95M: conditioning, the exported encoder, the compatible metrics and per-layer FD against the original."""
import json

import numpy as np
import pytest
import torch

from audiofidelity import artifacts, cli
from audiofidelity.audio import Conditioning, load_conditioned
from audiofidelity.models import apply_frontend
from audiofidelity.metrics.frechet import frechet_distance_from_features, frechet_distance_per_layer
from audiofidelity.resample import resample
from audiofidelity.runner import EmbeddingRunner
from conftest import GOLDEN, LazyRuns, eval_cli, run_export
from fixtures import checkpoints

from audiofidelity.exporters import mert

RUNS = {"mert_16k_paired": (16000, "generated"), "mert_16k_unpaired": (16000, "unpaired"),
        "mert_32k_paired": (32000, "generated")}
FAST_RUN = ("mert_16k_paired", 4)
"""The fast tier's end-to-end golden path: the first 4 pairs of one run (a golden file on each side), per file (MERT
is the slowest model)."""
FULL_RUNS = [pytest.param((run, None), marks=pytest.mark.parity, id=run) for run in sorted(RUNS)]
PER_FILE_RUNS = [pytest.param(FAST_RUN, id="mert_16k_paired-first4"), *FULL_RUNS]
WAVES = np.load(GOLDEN / "mert_16k_paired" / "mert.npz")


def _windows(wave):
    mid = len(wave) // 2
    return {"head": wave[:2048], "middle": wave[mid - 1024: mid + 1024], "tail": wave[-2048:]}


@pytest.fixture(scope="module")
def mert_artifact(models_dir):
    return artifacts.load("mert-v1-95m", directory=models_dir)


@pytest.mark.parametrize("clip", sorted({k.split("/")[2] for k in WAVES.files if "/wave24k/" in k}))
def test_24k_waveform_and_normalised_input_match_the_original(recordings_dir, mert_artifact, clip):
    # audioldm_eval's MERT path: file -> 16 kHz (padded to 32000) -> 24 kHz -> Wav2Vec2FeatureExtractor
    wave16 = load_conditioned(recordings_dir / "reference" / clip, 16000, Conditioning())
    # torchaudio.transforms.Resample's float64-built kernel and the extractor's float32 normalisation: the same bits
    wave24 = resample(wave16, 16000, 24000, api="transforms")
    values = apply_frontend(wave24, mert_artifact.manifest.frontend)[0]
    for name, got in (("wave24k", wave24), ("input_values", values)):
        assert len(got) == int(WAVES[f"ref/{name}/{clip}/length"])
        for part, window in _windows(got).items():
            np.testing.assert_array_equal(window, WAVES[f"ref/{name}/{clip}/{part}"], err_msg=f"{name} {part}")


@pytest.fixture(scope="module")
def cli_runs(recordings_dir, models_dir, tmp_path_factory):
    def run(key):
        name, limit = key
        return eval_cli(recordings_dir / RUNS[name][1], recordings_dir / "reference", tmp_path_factory.mktemp(name),
                        "--backbone", "mert", "--sr", str(RUNS[name][0]), "--metrics",
                        "fd,kl,kl_sigmoid,isc,kid,fd_layers", "--models-dir", str(models_dir),
                        *(("--limit", str(limit)) if limit else ()))
    return LazyRuns(run)


@pytest.mark.parametrize("run", PER_FILE_RUNS)
def test_per_file_layer_means_within_1e3_of_max(cli_runs, run):
    _, features = cli_runs[run]
    want = np.load(GOLDEN / run[0] / "mert.npz")
    kept = [k for k in want.files if "/layer_time_mean/" in k]  # the golden data keeps a few files per run
    keys = [k for k in kept if k.split("/")[2] in features[f"{k.split('/')[0]}/files"]]
    assert keys and (run[1] is not None or keys == kept)  # a full run compares every kept file
    for key in keys:
        side, _, name = key.split("/")
        got = features[f"{side}/layer_time_mean/{name}"]
        assert got.shape == (13, 768)
        assert np.max(np.abs(got - want[key])) <= 1e-3 * np.max(np.abs(want[key])), key


@pytest.mark.parametrize("run", FULL_RUNS)
def test_compatible_metrics_match_the_original(cli_runs, run):
    report, _ = cli_runs[run]
    golden = json.loads((GOLDEN / run[0] / "metrics.json").read_text())
    want, kid = golden["metrics"], golden["kid_reference"]
    got = report["metrics"]
    assert got["frechet_distance"] == pytest.approx(want["frechet_distance"], rel=1e-3)
    assert got["kernel_inception_distance_mean"] == pytest.approx(kid["kernel_inception_distance_mean"], rel=1e-3)
    # paired: every KID subset is the whole set, so the original's std is float32 noise (see test_golden.py)
    scale = max(kid["kernel_inception_distance_std"], abs(kid["kernel_inception_distance_mean"]))
    assert abs(got["kernel_inception_distance_std"] - kid["kernel_inception_distance_std"]) <= 1e-3 * scale
    for key in ("inception_score_mean", "inception_score_std"):
        assert got[key] == pytest.approx(want[key], abs=1e-4)
    for key in ("kullback_leibler_divergence_softmax", "kullback_leibler_divergence_sigmoid"):
        if want[key] == -1:
            assert got[key] is None
        else:  # includes the original's pairing of N names with the first N of the 13N rows
            assert got[key] == pytest.approx(want[key], abs=1e-4)


def test_per_layer_fd_is_one_fd_per_layer_of_per_file_means(cli_runs):
    report, features = cli_runs[FAST_RUN]
    layers = report["metrics"]["frechet_distance_mert_layers"]
    gen = np.stack([features[f"gen/layer_time_mean/{n}"] for n in features["gen/files"]])
    ref = np.stack([features[f"ref/layer_time_mean/{n}"] for n in features["ref/files"]])
    assert len(layers) == 13
    assert layers == pytest.approx([frechet_distance_from_features(gen[:, i], ref[:, i]) for i in range(13)], rel=1e-9)


def test_per_layer_fd_function_on_random_layers():
    rs = np.random.RandomState(0)
    x, y = rs.standard_normal((30, 3, 4)), rs.standard_normal((20, 3, 4)) + 1
    got = frechet_distance_per_layer(x, y)
    assert got == pytest.approx([frechet_distance_from_features(x[:, i], y[:, i]) for i in range(3)])
    with pytest.raises(ValueError, match="layers"):
        frechet_distance_per_layer(x, y[:, :2])


def test_each_clip_runs_alone_whatever_the_batch_size(recordings_dir, mert_artifact):
    # 0.5-3 s clips padded to 32000 samples at 16 kHz share one length; still, no pass mixes clips
    names = ["reference/clip_07.flac", "reference/clip_09.wav", "generated/clip_07.flac", "generated/clip_09.wav"]
    inputs = [apply_frontend(resample(load_conditioned(recordings_dir / n, 16000, Conditioning()), 16000, 24000),
                             mert_artifact.manifest.frontend) for n in names]
    one = np.stack(EmbeddingRunner(mert_artifact, batch_size=1).run(inputs)["layer_time_mean"])
    many = np.stack(EmbeddingRunner(mert_artifact, batch_size=4).run(inputs)["layer_time_mean"])
    assert np.array_equal(one, many)


def test_weight_norm_folding_accepts_both_key_schemes():
    rs = np.random.RandomState(1)
    g, v = torch.from_numpy(rs.uniform(0.5, 1.5, (1, 1, 8))), torch.from_numpy(rs.standard_normal((6, 3, 8)))
    want = g * v / v.norm(dim=(0, 1), keepdim=True)
    for names in (("weight_g", "weight_v"), ("parametrizations.weight.original0", "parametrizations.weight.original1")):
        state = {f"conv.{names[0]}": g, f"conv.{names[1]}": v}
        mert.fold_weight_norm(state, "conv")
        assert set(state) == {"conv.weight"} and torch.allclose(state["conv.weight"], want)


@pytest.mark.parametrize("switch,value", [  # one export run per switch: one in the fast tier, the rest in parity's
    ("do_stable_layer_norm", True), *(pytest.param(switch, value, marks=pytest.mark.parity)
                                      for switch, value in (("feature_extractor_cqt", True), ("deepnorm", True),
                                                            ("attention_relax", 32.0)))])
def test_unsupported_config_switches_are_refused(tmp_path, switch, value):
    source = tmp_path / "MERT"
    source.mkdir()
    config = dict(checkpoints.MERT_CONFIG, **{switch: value})
    (source / "config.json").write_text(json.dumps(config))
    (source / "preprocessor_config.json").write_text(json.dumps(checkpoints.MERT_PREPROCESSOR))
    done = run_export("mert-v1-95m", source, tmp_path / "out")
    assert done.returncode != 0 and switch in done.stderr and "not supported" in done.stderr


def test_manifest_frontend_comes_from_the_preprocessor_config(models_dir):
    manifest = json.loads((models_dir / "mert-v1-95m.json").read_text())
    assert manifest["frontend"] == {"kind": "mert_waveform", "sample_rate": 24000, "do_normalize": True,
                                    "padding_value": 0.0, "variance_epsilon": 1e-7}
    assert set(manifest["source"]["sha256"]) == {"config.json", "preprocessor_config.json", "pytorch_model.bin"}
    assert manifest["license"] == "CC-BY-NC-4.0"
    assert manifest["outputs"][0]["roles"] == ["embedding", "logits", "layers"]


def test_chunked_frontend_cuts_equal_windows_ending_at_the_clip_end():
    from audiofidelity.models.mert import mert_waveform

    wave = np.random.RandomState(0).standard_normal(10 * 24000).astype(np.float32) * 0.1 + 0.05
    windows = mert_waveform(wave, sample_rate=24000, chunk_samples=4 * 24000)
    assert windows.shape == (3, 96000)  # 0-4 s, 4-8 s, 6-10 s
    assert np.allclose(windows.mean(axis=1), 0, atol=1e-5) and np.allclose(windows.std(axis=1), 1, atol=1e-4)
    short = mert_waveform(wave[:24000], sample_rate=24000, chunk_samples=4 * 24000)
    assert short.shape == (1, 24000)


def test_chunking_leaves_clips_shorter_than_a_window_unchanged(recordings_dir, mert_artifact):
    wave = resample(load_conditioned(recordings_dir / "reference" / "clip_09.wav", 16000, Conditioning()), 16000, 24000)
    plain = EmbeddingRunner(mert_artifact).run([apply_frontend(wave, mert_artifact.manifest.frontend)])
    chunked_input = apply_frontend(wave, {**mert_artifact.manifest.frontend, "chunk_samples": 10 * 24000})
    chunked = EmbeddingRunner(mert_artifact, collect="mean").run([chunked_input])
    assert np.array_equal(plain["layer_time_mean"][0], chunked["layer_time_mean"][0])


def test_mert_chunk_needs_the_mert_backbone(recordings_dir, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["eval", str(recordings_dir / "generated"), str(recordings_dir / "reference"), "--mert-chunk", "10"])
    assert info.value.code == 2 and "--mert-chunk needs --backbone mert" in capsys.readouterr().err
