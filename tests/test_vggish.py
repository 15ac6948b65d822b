"""VGGish frontend, FAD invariants, short clips, the optional PCA post-processing, and the export checks."""
import json
import shutil

import numpy as np
import pytest
import torch

from audiofidelity import artifacts, cli, evaluate
from audiofidelity.audio import Conditioning, load_conditioned
from audiofidelity.errors import ChecksumMismatchError, ManifestError
from audiofidelity.models import apply_frontend
from audiofidelity.models.vggish import htk_mel_matrix, vggish_pca
from conftest import GOLDEN, run_export
from fixtures import checkpoints

EXAMPLES = np.load(GOLDEN / "cnn14_16k_paired" / "vggish.npz")


@pytest.fixture(scope="module")
def frontend(models_dir):
    return json.loads((models_dir / "vggish.json").read_text())["frontend"]


def test_frontend_equals_torchvggish_on_the_same_waveform(recordings_dir, frontend):
    vggish_input = pytest.importorskip("torchvggish.vggish_input", reason="needs the verify extra")
    for clip in ("reference/clip_03.wav", "generated/clip_14.wav", "unpaired/other_04.wav"):
        wave = load_conditioned(recordings_dir / clip, 16000, Conditioning())
        theirs = vggish_input.waveform_to_examples(wave, 16000).detach().numpy()
        ours = apply_frontend(wave, frontend)
        assert ours.shape == theirs.shape
        assert np.max(np.abs(ours - theirs)) <= 1e-6


def test_mel_matrix_equals_torchvggish():
    mel_features = pytest.importorskip("torchvggish.mel_features", reason="needs the verify extra")
    want = mel_features.spectrogram_to_mel_matrix(num_mel_bins=64, num_spectrogram_bins=257, audio_sample_rate=16000,
                                                  lower_edge_hertz=125, upper_edge_hertz=7500)
    assert np.array_equal(htk_mel_matrix(64, 257, 16000, 125.0, 7500.0), want)


@pytest.mark.parametrize("clip", sorted({k.split("/")[-1] for k in EXAMPLES.files if "/examples/" in k}))
def test_examples_through_the_whole_pipeline_match_the_original(recordings_dir, frontend, clip):
    want = EXAMPLES[f"ref/examples/{clip}"]
    path = recordings_dir / "reference" / clip
    got = apply_frontend(load_conditioned(path, 16000, Conditioning()), frontend)
    assert got.shape == want.shape
    # Same waveform -> same examples (test above), and the resampler is torchaudio's own float32 ops; what is
    # left is the clip's mean, taken in float64 where the original's float32 torch mean depends on torch's
    # thread count: it rounds one ulp apart on some clips (here the native 16 kHz one, 4.8e-7 off)
    assert np.max(np.abs(got - want)) <= 1e-6


@pytest.fixture(scope="module")
def fad_of(recordings_dir, models_dir):
    def fad(generated, reference, **kwargs):
        report = evaluate(recordings_dir / generated, recordings_dir / reference, metrics=["fad"],
                          models_dir=models_dir, progress=False, **kwargs).report
        return report["metrics"]["frechet_audio_distance"], report
    return fad


def test_fad_of_a_folder_with_itself_is_zero_and_fad_is_symmetric(fad_of):
    assert abs(fad_of("reference", "reference")[0]) < 1e-6
    forward, backward = fad_of("unpaired", "reference")[0], fad_of("reference", "unpaired")[0]
    assert forward == pytest.approx(backward, rel=1e-9) and forward > 1


def test_a_clip_shorter_than_one_example_is_reported_not_silently_dropped(tmp_path, recordings_dir, models_dir):
    for side in ("gen", "ref"):
        (tmp_path / side).mkdir()
        for name in ("clip_00.wav", "clip_09.wav", "clip_10.wav"):  # clip_09 lasts 0.5 s
            shutil.copy(recordings_dir / "reference" / name, tmp_path / side)
    report = evaluate(tmp_path / "gen", tmp_path / "ref", metrics=["fad"], models_dir=models_dir, progress=False,
                      conditioning=Conditioning(min_samples=0)).report  # without audioldm_eval's padding
    problems = {(p["side"], p["file"]): p["reason"] for p in report["problems"]}
    assert set(problems) == {("generated", "clip_09.wav"), ("reference", "clip_09.wav")}
    assert "too short for vggish" in problems[("generated", "clip_09.wav")]
    assert abs(report["metrics"]["frechet_audio_distance"]) < 1e-6


def test_pca_postprocessing_equals_torchvggish_postprocessor():
    rs = np.random.RandomState(0)
    embeddings = rs.standard_normal((5, 128)).astype(np.float32)
    params = checkpoints.vggish_pca()
    matrix, means = torch.from_numpy(params["pca_eigen_vectors"]), torch.from_numpy(params["pca_means"].reshape(-1, 1))
    pca = torch.mm(matrix, torch.from_numpy(embeddings).t() - means).t()  # torchvggish Postprocessor.postprocess
    want = torch.round((torch.clamp(pca, -2.0, 2.0) + 2.0) * (255.0 / 4.0)).numpy()
    got = vggish_pca(embeddings, eigen_vectors=params["pca_eigen_vectors"], means=params["pca_means"])
    assert np.array_equal(got, want)


def test_fad_pca_option_uses_the_verified_pca_file(fad_of, models_dir, tmp_path):
    plain, _ = fad_of("unpaired", "reference")
    with_pca, report = fad_of("unpaired", "reference", fad_pca=True)
    assert with_pca != pytest.approx(plain)
    vggish = report["provenance"]["artifacts"][0]
    assert vggish["postprocess"]["file"] == "vggish.pca.npz"
    tampered = tmp_path / "models"
    tampered.mkdir()
    for name in ("vggish.pt2", "vggish.json"):
        (tampered / name).symlink_to(models_dir / name)
    data = bytearray((models_dir / "vggish.pca.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the eigenvector array
    (tampered / "vggish.pca.npz").write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match="vggish.pca.npz"):
        artifacts.load_postprocess(artifacts.load("vggish", directory=tampered))


def test_fad_pca_without_pca_data_says_how_to_export_it(vggish_without_pca_dir, recordings_dir, capsys):
    out = vggish_without_pca_dir
    assert "postprocess" not in json.loads((out / "vggish.json").read_text())
    with pytest.raises(ManifestError, match="--pca"):
        artifacts.load_postprocess(artifacts.load("vggish", directory=out))
    status = cli.main(["eval", str(recordings_dir / "unpaired"), str(recordings_dir / "reference"), "--metrics", "fad",
                       "--fad-pca", "--models-dir", str(out), "--quiet"])
    assert status == 1 and "--pca" in capsys.readouterr().err


@pytest.mark.parity  # an export refusal (4 s); the fast tier keeps test_export.py's
def test_export_refuses_a_cnn14_checkpoint_as_vggish(checkpoint_dir, tmp_path):
    done = run_export("vggish", checkpoint_dir / checkpoints.CNN14["cnn14-16k"]["file"], tmp_path)
    assert done.returncode != 0 and "not a torchvggish VGGish state dict" in done.stderr


def test_vggish_manifest(models_dir, checkpoint_dir):
    manifest = json.loads((models_dir / "vggish.json").read_text())
    assert manifest["inputs"][0]["items_per_clip"] == "variable"
    assert manifest["outputs"] == [{"name": "vggish", "shape": ["batch", 128], "dtype": "float32", "roles": ["fad"]}]
    assert manifest["license"] == "Apache-2.0"
    assert manifest["postprocess"]["sha256"] == artifacts.file_sha256(models_dir / "vggish.pca.npz")
    assert manifest["postprocess"]["source"]["sha256"] == artifacts.file_sha256(
        checkpoint_dir / checkpoints.VGGISH_PCA_FILE)
