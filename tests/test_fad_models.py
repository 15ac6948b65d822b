"""``--fad-model``: every embedding the FAD toolkits use, against the original networks run in the test.

The independent side of each comparison reads the files with soundfile and runs the original package's
network (panns_inference's Cnn14, encodec's encoder, transformers' HubertModel, torchvggish's VGG) on them,
pools the rows as fadtk and frechet_audio_distance do, and computes FAD with the original formula
(``scipy.linalg.sqrtm``). Needs the verify extra and ``verify_scripts/requirements-nodeps.txt``; CI's parity tier.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofidelity.compat.frechet_audio_distance import FAD_CONDITIONING, FrechetAudioDistance, package_fad_model
from audiofidelity.evaluate import evaluate
from conftest import ROOT, eval_cli
from fixtures import checkpoints

pytestmark = pytest.mark.parity


def write_clips(folder, rate, seconds, *, channels=1, seed=0):
    """Noisy tones at ``rate``, 16-bit (what the toolkits read), one file per duration."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, duration in enumerate(seconds):
        n = max(int(round(duration * rate)), 1)
        t = np.arange(n) / rate
        tone = 0.3 * np.sin(2 * np.pi * (180 + 90 * i + 40 * seed) * t)
        x = tone[:, None] * np.linspace(1.0, 0.6, channels) + 0.08 * rng.standard_normal((n, channels))
        sf.write(folder / f"clip_{i:02d}.wav", x.astype(np.float32), rate, subtype="PCM_16")
    return folder


def read(path, channels="first"):
    """(channels, n) float32 as soundfile decodes 16-bit PCM; ``first``/``mean`` -> (n,)."""
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    if channels == "both":
        return np.ascontiguousarray(data.T), rate
    return (data[:, 0] if channels == "first" else data.mean(axis=1, dtype=np.float64).astype(np.float32)), rate


def need_encodec():
    """Skip where the encodec package is absent (CI's parity tier installs it; see .ci/run)."""
    from verify_encodec import encodec_package

    try:
        encodec_package()
    except SystemExit as exc:
        pytest.skip(str(exc))


def need_laion_clap():
    """Skip where laion_clap is absent (CI's parity tier installs it; see .ci/run)."""
    from verify_clap import laion_clap_package

    try:
        laion_clap_package()
    except SystemExit as exc:
        pytest.skip(str(exc))


def original_fad(a, b):
    from common import original_fad as formula  # verify_scripts/common.py: the toolkits' formula, transcribed

    return formula(a, b)


# ---- the original networks, built offline from the stand-in checkpoints ----------------------------------

def panns_rows(all_checkpoints_dir, name, clips):
    from verify_cnn14 import original_cnn14_class

    spec = checkpoints.CNN14[name]
    model = original_cnn14_class()(sample_rate=spec["sr"], window_size=spec["n_fft"], hop_size=spec["sr"] // 100,
                                   mel_bins=64, fmin=spec["fmin"], fmax=spec["fmax"], classes_num=527)
    model.load_state_dict(torch.load(all_checkpoints_dir / spec["file"], weights_only=True)["model"])
    with torch.inference_mode():
        return np.stack([model.eval()(torch.from_numpy(x)[None])["embedding"][0].numpy() for x in clips])


def encodec_rows(all_checkpoints_dir, name, clips, *, segmented=True):
    from verify_encodec import load_original

    model = load_original(name, all_checkpoints_dir / checkpoints.ENCODEC[name]["file"])
    rows = []
    for x in clips:
        x = torch.from_numpy(x.reshape(model.channels, -1))[None]
        step = model.segment_length if segmented and model.segment_length else x.shape[-1]
        with torch.inference_mode():
            rows += [model.encoder(x[:, :, s:s + step])[0].T.numpy() for s in range(0, x.shape[-1], step)]
    return np.concatenate(rows)


CLAP_WINDOW = 480000


def clap_rows(all_checkpoints_dir, name, clips, *, use_tensor=False):
    """laion_clap's ``CLAP_Module.get_audio_embedding_from_data`` on each clip (``use_tensor``: as
    frechet_audio_distance calls it, a tensor, which skips the int16 round trip). A clip over 10 s, which
    laion_clap crops at random, is given as consecutive 10-s windows plus one ending at its end, and the
    window embeddings averaged: the rule ``--fad-model`` documents."""
    from verify_clap import load_original

    model = load_original(name, all_checkpoints_dir / checkpoints.CLAP[name]["file"])
    rows = []
    for x in clips:
        starts = list(range(0, len(x) - CLAP_WINDOW + 1, CLAP_WINDOW)) if len(x) > CLAP_WINDOW else [0]
        if len(x) > CLAP_WINDOW and starts[-1] + CLAP_WINDOW < len(x):
            starts.append(len(x) - CLAP_WINDOW)
        windows = [x[s:s + CLAP_WINDOW] for s in starts]
        with torch.inference_mode():
            embedded = [model.get_audio_embedding_from_data(torch.from_numpy(w)[None] if use_tensor else w[None],
                                                            use_tensor=use_tensor)[0] for w in windows]
        rows.append(np.mean([np.asarray(e) for e in embedded], axis=0))
    return np.stack(rows)


def mert_rows(all_checkpoints_dir, layer, clips):
    from transformers import Wav2Vec2FeatureExtractor
    from verify_mert import load_reference

    model = load_reference(all_checkpoints_dir / checkpoints.MERT_DIR)
    processor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=24000, do_normalize=True)
    rows = []
    for x in clips:  # fadtk's MERTModel._get_embedding
        inputs = processor(x, sampling_rate=24000, return_tensors="pt")
        with torch.inference_mode():
            rows.append(model(inputs["input_values"], output_hidden_states=True).hidden_states[layer][0].numpy())
    return np.concatenate(rows)


# ---- eval --fad-model against the originals --------------------------------------------------------------

CASES = {  # fad model -> (rate, channels read, durations of generated / reference clips)
    "cnn14-8k": (8000, "first", [0.7, 1.5, 2.2, 3.1], [1.0, 1.8, 2.6, 3.3]),
    "encodec-24k": (24000, "first", [0.1, 0.75, 1.5], [0.4, 1.2, 2.0]),
    "encodec-48k": (48000, "both", [0.1, 1.0, 2.02], [0.5, 1.5, 1.03]),
    "mert-v1-95m-7": (24000, "first", [1.0, 1.6], [1.2, 2.0]),
    "clap-630k-audioset": (48000, "first", [0.3, 2.5, 10.0, 13.7], [1.0, 4.2, 21.0]),
    "clap-music": (48000, "first", [0.7, 3.0], [1.5, 2.2]),
}


def independent_rows(all_checkpoints_dir, model, clips):
    if model.startswith("cnn14"):
        return panns_rows(all_checkpoints_dir, model, clips)
    if model.startswith("encodec"):
        return encodec_rows(all_checkpoints_dir, model, clips)
    if model.startswith("clap"):
        return clap_rows(all_checkpoints_dir, model, clips)
    return mert_rows(all_checkpoints_dir, int(model.rsplit("-", 1)[1]), clips)


@pytest.mark.parametrize("model", sorted(CASES))
def test_eval_fad_model_equals_the_original_network_pooled_as_the_toolkits_do(model, all_models_dir, all_checkpoints_dir,
                                                                               tmp_path):
    if model.startswith("encodec"):
        need_encodec()
    if model.startswith("clap"):
        need_laion_clap()
    rate, channels, gen_seconds, ref_seconds = CASES[model]
    width = 2 if channels == "both" else 1
    gen = write_clips(tmp_path / "gen", rate, gen_seconds, channels=width, seed=1)
    ref = write_clips(tmp_path / "ref", rate, ref_seconds, channels=width, seed=2)
    report, features = eval_cli(gen, ref, tmp_path, "--models-dir", str(all_models_dir), "--metrics", "fad",
                                "--fad-model", model, "--no-cache")
    rows = {side: independent_rows(all_checkpoints_dir, model, [read(p, channels)[0] for p in sorted(folder.iterdir())])
            for side, folder in (("gen", gen), ("ref", ref))}
    ours = {side: np.concatenate([np.atleast_2d(features[f"{side}/{model}/{p.name}"])
                                  for p in sorted(folder.iterdir())]) for side, folder in (("gen", gen), ("ref", ref))}
    for side in ours:
        assert ours[side].shape == rows[side].shape
        assert np.max(np.abs(ours[side] - rows[side])) <= 1e-4 * np.max(np.abs(rows[side]))
    want = original_fad(rows["gen"], rows["ref"])
    assert report["metrics"]["frechet_audio_distance"] == pytest.approx(want, rel=1e-4)
    provenance = report["provenance"]
    assert provenance["fad_model"]["name"] == model and not report["problems"]
    assert provenance["artifacts"][0]["conditioning"]["remove_dc"] is False  # the toolkits' feeding, recorded


def test_a_clip_too_short_for_the_fad_model_is_skipped_naming_the_minimum(all_models_dir, tmp_path):
    gen = write_clips(tmp_path / "gen", 8000, [0.3, 1.0, 1.5], seed=1)
    ref = write_clips(tmp_path / "ref", 8000, [1.0, 1.4, 2.0], seed=2)
    report, _ = eval_cli(gen, ref, tmp_path, "--models-dir", str(all_models_dir), "--metrics", "fad",
                         "--fad-model", "cnn14-8k", "--no-cache")
    assert [(p["side"], p["file"]) for p in report["problems"]] == [("generated", "clip_00.wav")]
    assert "too short for cnn14-8k" in report["problems"][0]["reason"]
    assert "at least 32" in report["problems"][0]["reason"]
    assert report["metrics"]["frechet_audio_distance"] is not None


def test_stereo_into_a_mono_fad_model_follows_channel(all_models_dir, all_checkpoints_dir, tmp_path):
    need_encodec()
    gen = write_clips(tmp_path / "gen", 24000, [0.5, 1.0], channels=2, seed=3)
    ref = write_clips(tmp_path / "ref", 24000, [0.7, 1.1], channels=2, seed=4)
    scores = {}
    for mode in ("first", "mean"):
        out = tmp_path / mode
        out.mkdir()
        report, _ = eval_cli(gen, ref, out, "--models-dir", str(all_models_dir), "--metrics", "fad",
                             "--fad-model", "encodec-24k", "--channel", mode, "--no-cache")
        scores[mode] = report["metrics"]["frechet_audio_distance"]
    rows = [encodec_rows(all_checkpoints_dir, "encodec-24k", [read(p, "mean")[0] for p in sorted(f.iterdir())])
            for f in (gen, ref)]
    assert scores["mean"] == pytest.approx(original_fad(*rows), rel=1e-4)
    assert scores["first"] != pytest.approx(scores["mean"], rel=1e-3)


# ---- the frechet_audio_distance drop-in ------------------------------------------------------------------

PACKAGE_CASES = [("pann", 8000, "cnn14-8k", 1), ("pann", 32000, "cnn14-32k", 1), ("encodec", 24000, "encodec-24k", 1),
                 ("encodec", 48000, "encodec-48k", 2), ("vggish", 16000, "vggish", 1),
                 ("clap", 48000, "clap-630k-audioset", 1)]


def package_rows(all_checkpoints_dir, name, folder, rate):
    """frechet_audio_distance's ``load_audio_task`` (float32, channel mean unless the model takes two, resampy
    to the model's rate, per channel) then the original network, one clip at a time, rows as it stacks them
    (its 1-D PANN bug aside)."""
    import resampy

    clips = []
    for path in sorted(folder.iterdir()):
        x, sr = read(path, "both" if name == "encodec-48k" else "mean")
        clips.append(resampy.resample(x, sr, rate, axis=-1).astype(np.float32))
    if name.startswith("cnn14"):
        return panns_rows(all_checkpoints_dir, name, clips)
    if name.startswith("encodec"):
        return encodec_rows(all_checkpoints_dir, name, clips, segmented=False)  # the package: the whole clip
    if name.startswith("clap"):
        return clap_rows(all_checkpoints_dir, name, clips, use_tensor=True)
    from torchvggish import vggish_input
    from verify_vggish import load_original

    model = load_original(all_checkpoints_dir / checkpoints.VGGISH_FILE)
    with torch.inference_mode():
        return np.concatenate([model(vggish_input.waveform_to_examples(x, rate)).numpy() for x in clips])


@pytest.mark.parametrize("model_name, rate, name, channels", PACKAGE_CASES)
def test_frechet_audio_distance_dropin_equals_the_package_computation(model_name, rate, name, channels,
                                                                       all_models_dir, all_checkpoints_dir, tmp_path):
    if name.startswith("encodec"):
        need_encodec()
    if name.startswith("clap"):
        need_laion_clap()
    background = write_clips(tmp_path / "bg", 44100, [1.0, 1.6, 2.3], channels=2, seed=5)
    evaluated = write_clips(tmp_path / "ev", 44100, [1.2, 1.9, 2.1], channels=2, seed=6)
    fad = FrechetAudioDistance(model_name=model_name, sample_rate=rate, channels=channels, models_dir=all_models_dir,
                               cache=False)
    score = fad.score(str(background), str(evaluated))
    rows = [package_rows(all_checkpoints_dir, name, folder, rate) for folder in (evaluated, background)]
    assert score == pytest.approx(original_fad(*rows), rel=1e-4)
    report = evaluate(evaluated, background, metrics=["fad"], fad_model=package_fad_model(name),
                      conditioning=FAD_CONDITIONING, models_dir=all_models_dir, progress=False, cache=False).report
    assert score == pytest.approx(report["metrics"]["frechet_audio_distance"], rel=1e-12)


# ---- the stand-ins and the verify script -----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(checkpoints.ENCODEC))
def test_encodec_stand_in_has_the_packages_keys_and_shapes(name):
    need_encodec()
    from verify_encodec import CONSTRUCTORS, encodec_package

    want = getattr(encodec_package().EncodecModel, CONSTRUCTORS[name])(pretrained=False).state_dict()
    got = checkpoints.encodec_state_dict(name)
    assert {k: tuple(v.shape) for k, v in got.items()} == {k: tuple(v.shape) for k, v in want.items()}


@pytest.mark.parametrize("name", sorted(checkpoints.ENCODEC))
def test_verify_encodec_passes_on_every_length_down_to_one_sample(name, all_models_dir, all_checkpoints_dir, tmp_path):
    need_encodec()
    rate = 24000 if name == "encodec-24k" else 48000
    lengths = [1 / rate, 320 / rate, 321 / rate, 0.1, 1.0, 2.02]
    audio = write_clips(tmp_path / "a", rate, lengths, channels=2 if rate == 48000 else 1, seed=7)
    reference = write_clips(tmp_path / "r", rate, [0.3, 1.1, 1.7], channels=1, seed=8)
    done = subprocess.run([sys.executable, str(ROOT / "verify_scripts" / "verify_encodec.py"), name, "--source",
                           str(all_checkpoints_dir / checkpoints.ENCODEC[name]["file"]), "--models-dir", str(all_models_dir),
                           "--audio", str(audio), "--reference", str(reference)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: frames and FAD within 0.0001" in done.stdout


@pytest.mark.parametrize("name", sorted(checkpoints.CLAP))
def test_clap_stand_in_has_the_packages_audio_keys_shapes_and_buffers(name):
    need_laion_clap()
    from common import AUDIO_KEYS
    from verify_clap import constructed_model

    want = {k: v for k, v in constructed_model(name).state_dict().items() if k.startswith(AUDIO_KEYS)}
    got = {k: v for k, v in checkpoints.clap_state_dict(name).items() if k.startswith(AUDIO_KEYS)}
    assert {k: (tuple(v.shape), str(v.dtype)) for k, v in got.items()} == \
        {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in want.items()}
    for key in want:  # the registered buffers are the package's own, value for value
        if key.endswith(("relative_position_index", "attn_mask")):
            assert np.array_equal(got[key], want[key].numpy()), key


def test_verify_clap_passes(all_models_dir, all_checkpoints_dir, tmp_path):
    need_laion_clap()
    audio = write_clips(tmp_path / "a", 48000, [0.05, 1.0, 10.0, 10.5], seed=11)
    reference = write_clips(tmp_path / "r", 44100, [0.4, 2.0, 3.3], channels=2, seed=12)
    done = subprocess.run([sys.executable, str(ROOT / "verify_scripts" / "verify_clap.py"), "clap-630k-audioset",
                           "--source", str(all_checkpoints_dir / checkpoints.CLAP["clap-630k-audioset"]["file"]),
                           "--models-dir", str(all_models_dir), "--audio", str(audio), "--reference", str(reference)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: embeddings and FAD within 0.0001 of laion_clap" in done.stdout


def test_statistics_bootstrap_and_eval_logs_take_a_fad_model(all_models_dir, tmp_path):
    from audiofidelity import cli
    from audiofidelity.errors import StatsFileError

    gen = write_clips(tmp_path / "gen", 24000, [0.6, 1.0, 1.4], seed=1)
    ref = write_clips(tmp_path / "ref", 24000, [0.8, 1.2, 1.6], seed=2)
    options = ["--models-dir", str(all_models_dir), "--fad-model", "encodec-24k", "--quiet"]
    assert cli.main(["stats", str(ref), "--out", str(tmp_path / "ref.npz"), *options]) == 0
    common = dict(metrics=["fad"], models_dir=all_models_dir, progress=False, fad_model="encodec-24k")
    folder = evaluate(gen, ref, bootstrap=20, **common).report
    stats = evaluate(gen, tmp_path / "ref.npz", **common).report
    assert stats["metrics"]["frechet_audio_distance"] == pytest.approx(folder["metrics"]["frechet_audio_distance"],
                                                                       rel=1e-9)
    interval = folder["bootstrap"]["frechet_audio_distance"]
    assert interval["low"] <= interval["high"]
    with pytest.raises(StatsFileError, match="fad_model"):  # made with another embedding: refused, by name
        evaluate(gen, tmp_path / "ref.npz", metrics=["fad"], models_dir=all_models_dir, progress=False)
    logs = tmp_path / "logs"
    (logs / "val_1").mkdir(parents=True)
    for path in gen.iterdir():
        (logs / "val_1" / path.name).symlink_to(path)
    assert cli.main(["eval-logs", str(logs), "--reference", str(ref), "--metrics", "fad", *options]) == 0
    written = json.loads((logs / "audiofidelity-results" / "val_1.json").read_text())["report"]
    assert written["metrics"]["frechet_audio_distance"] == pytest.approx(folder["metrics"]["frechet_audio_distance"])
    assert written["provenance"]["fad_model"]["name"] == "encodec-24k"


@pytest.mark.parametrize("model, output, args, key", [
    ("cnn14-32k", "embedding", ["--sr", "32000", "--metrics", "fd"], "2048"),
    ("mert-v1-95m", "layers", ["--backbone", "mert", "--metrics", "fd"], "layer_time_mean"),
    ("cnn14-8k", "embedding", ["--metrics", "fad", "--fad-model", "cnn14-8k"], "cnn14-8k"),
    ("encodec-24k", "frames", ["--metrics", "fad", "--fad-model", "encodec-24k"], "encodec-24k"),
    ("encodec-48k", "frames", ["--metrics", "fad", "--fad-model", "encodec-48k"], "encodec-48k"),
    ("clap-630k-audioset", "embedding", ["--metrics", "fad", "--fad-model", "clap-630k-audioset"],
     "clap-630k-audioset"),
])
def test_embedder_gives_eval_save_features_arrays_for_every_model(model, output, args, key, all_models_dir, tmp_path):
    from audiofidelity import Embedder

    gen = write_clips(tmp_path / "gen", 44100, [0.8, 1.3], channels=2, seed=9)
    ref = write_clips(tmp_path / "ref", 22050, [1.1, 0.9], channels=1, seed=10)
    _, features = eval_cli(gen, ref, tmp_path, "--models-dir", str(all_models_dir), "--no-cache", *args)
    embedder = Embedder(model, output=output, models_dir=all_models_dir)
    for side, folder in (("gen", gen), ("ref", ref)):
        files = embedder.embed_folder(folder)
        for path in sorted(folder.iterdir()):
            want = features[f"{side}/{key}/{path.name}"]
            assert np.array_equal(files.arrays[path.name], want), (side, path.name)
            audio, rate = sf.read(path, dtype="float32", always_2d=True)
            assert np.array_equal(embedder.embed(audio.T[None], rate)[0], want), (side, path.name)
