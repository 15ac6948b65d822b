"""Audiobox Aesthetics (``audiobox_aesthetics`` 0.0.4, ``facebook/audiobox-aesthetics``): its windows and score
weighting transcribed (fast tier); the stand-in checkpoint, the exported artifact's scores and the reference-free
runs against the package itself (parity tier: the package is the reference; its audio path needs torchaudio, so it
runs in the side virtualenv, ``$PASST_ORIGINAL_PYTHON``, as ``.ci/run`` builds it)."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofidelity import cli
from audiofidelity.models.aesthetics import aesthetics_fitting, aesthetics_windows, clip_scores
from conftest import ROOT
from fixtures.aesthetics import FILE, MODEL_CFG, TARGET_TRANSFORM, write_aesthetics
from test_fad_models import write_clips

MODEL = "audiobox-aesthetics"
INSTALL = "pip install --no-deps audiobox_aesthetics==0.0.4"
"""Its model needs only torch and huggingface_hub; ``--no-deps`` keeps its torchaudio requirement from pulling a
torch of another version into the runtime's virtualenv (``infer.py``, which imports torchaudio, is not needed here)."""


def aes_package():
    """``audiobox_aesthetics.model.aes``, or a skip that says how to install it."""
    try:
        from audiobox_aesthetics.model import aes
    except ImportError as exc:
        pytest.skip(f"audiobox_aesthetics is not importable ({exc}); {INSTALL}")
    return aes


STAND_IN_SHA256 = "bf0c1b7166d353a9d61ee96d9dba7e74dd7af7fb1aa44c5e73ff61d6e654af32"
"""sha256 over every key and its tensor's sha256 (``stand_in.tensor_sha256``), in order."""


@pytest.mark.parity  # 104M values drawn (5 s)
def test_the_stand_in_is_the_same_on_every_machine():
    """Its values come from NumPy's frozen legacy RandomState, seeded per tensor: pinned here."""
    from fixtures.aesthetics import aesthetics_state_dict
    from fixtures.stand_in import state_dict_sha256

    assert state_dict_sha256(aesthetics_state_dict()) == STAND_IN_SHA256


@pytest.mark.parity
def test_stand_in_has_the_packages_keys_and_shapes(tmp_path):
    """``AesPredictor.setup_model``'s load, transcribed: the file read with ``torch.load`` (weights only, torch's
    default), the ``model.`` prefix stripped, ``AesMultiOutput`` built from the nine ``model_cfg`` keys and the
    ``target_transform``; every key, in order, with its shape and dtype, and the strict ``load_state_dict``."""
    import torch

    aes = aes_package()
    path = write_aesthetics(tmp_path)
    assert path.name == FILE
    checkpoint = torch.load(path, map_location="cpu")
    assert set(checkpoint) == {"state_dict", "model_cfg", "target_transform"}
    assert checkpoint["model_cfg"] == MODEL_CFG and checkpoint["target_transform"] == TARGET_TRANSFORM
    state = {re.sub("^model.", "", k): v for k, v in checkpoint["state_dict"].items()}
    model = aes.AesMultiOutput(**{k: checkpoint["model_cfg"][k] for k in MODEL_CFG},
                               target_transform=checkpoint["target_transform"])
    want = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    got = {k: (tuple(v.shape), v.dtype) for k, v in state.items()}
    assert list(got) == list(want) and got == want
    assert len(got) == 324  # the release file's tensor count
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def make_inference_batch(wav, hop, window):
    """audiobox_aesthetics' ``make_inference_batch`` for one mono clip, transcribed with NumPy (windows, masks,
    weights)."""
    wavs, masks, weights = [], [], []
    for start in range(0, len(wav), hop):
        piece = wav[start:start + window]
        masks.append(np.arange(window) < len(piece))
        weights.append(len(piece) / window)
        wavs.append(np.pad(piece, (0, window - len(piece))))
    return wavs, masks, weights


@pytest.mark.parametrize("n", [1, 7, 160000, 160001, 345678])
def test_windows_and_masks_are_the_packages(n):
    wave = np.random.default_rng(n).uniform(-1, 1, n).astype(np.float32)
    items = aesthetics_windows(wave, window=160000, hop=160000)
    wavs, masks, weights = make_inference_batch(wave, 160000, 160000)
    assert items.shape == (len(wavs), 2, 160000) and items.dtype == np.float32
    assert np.array_equal(items[:, 0], np.stack(wavs)) and np.array_equal(items[:, 1] > 0.5, np.stack(masks))
    assert aesthetics_fitting(n, window=160000, hop=160000) == (None if n % 160000 == 0 else "padded")
    assert aesthetics_windows(np.zeros(0, np.float32), window=160000, hop=160000).shape == (0, 2, 160000)


def test_a_clips_scores_are_its_windows_weighted_by_real_length_after_the_target_transform():
    rng = np.random.default_rng(1)
    scores, weights = rng.standard_normal((3, 4)).astype(np.float32), np.array([1.0, 1.0, 0.25], np.float32)
    transform = {"scale": [1.93029, 1.75669, 1.86637, 1.51466], "offset": [5.06865, 5.73633, 3.18591, 6.57505]}
    preds = torch.from_numpy(scores) * torch.tensor(transform["scale"]) + torch.tensor(transform["offset"])
    w = torch.from_numpy(weights)
    want = [((preds[:, axis] * w).sum() / w.sum()).item() for axis in range(4)]  # AesPredictor.forward's sum
    assert np.allclose(clip_scores(scores, weights, transform), want, rtol=1e-6)


def test_nan_scores_never_reach_a_mean_and_the_file_is_named():
    from audiofidelity.features import SideFeatures
    from audiofidelity.metric_table import METRICS, EvaluationData

    def side(rows):
        out = SideFeatures(ROOT, [f"f{i}.wav" for i in range(len(rows))])
        out.files = list(out.listed)
        out.per_file["s"] = [np.asarray(r, np.float32)[None] for r in rows]
        out.per_file["w"] = [np.ones(1, np.float32) for _ in rows]
        return out

    transform = {"aesthetics": {"scale": [1.0] * 4, "offset": [5.0] * 4}}
    data = EvaluationData(side([[1, 1, 1, 1], [np.nan, 0, 0, 0], [3, 3, 3, 3]]), side([[0, 0, 0, 0]]), [],
                          roles={"aesthetics": "s", "aesthetics_weight": "w"}, output_transforms=transform)
    values = METRICS["aesthetics"].compute(data)
    assert values == {"aesthetics_ce": 7.0, "aesthetics_cu": 7.0, "aesthetics_pc": 7.0, "aesthetics_pq": 7.0}
    details = data.details["aesthetics_ce"]
    assert details["files"] == 2 and details["not_finite"]["files"] == ["f1.wav"]
    assert details["reference"]["aesthetics_pq"] == 5.0 and "f1.wav" not in data.per_file


def test_eval_without_a_reference_runs_reference_free_metrics_only(tmp_path, capsys):
    write_clips(tmp_path / "gen", 16000, [1.0], seed=1)
    for metrics, message in (([], "fd, fad, kl"), (["--metrics", "aesthetics,kad"], "kad compare with a reference")):
        with pytest.raises(SystemExit) as exited:
            cli.main(["eval", str(tmp_path / "gen"), *metrics, "--quiet"])
        err = capsys.readouterr().err
        assert exited.value.code == 2 and "no reference given" in err and "--metrics aesthetics" in err
        assert message in err


def side_python():
    from test_clap_fusion import side_python as venv

    python = venv()
    done = subprocess.run([str(python), "-c", "import audiobox_aesthetics.infer"], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"audiobox_aesthetics is not installed in {python} ({INSTALL}; .ci/run adds it)")
    return python


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """0.05-25 s at 16, 44.1 and 48 kHz, mono and stereo: one window, exactly 10 s, a last window of 1 sample at
    16 kHz (10 s + 1 sample), several windows; and a silent-then-loud clip."""
    root = tmp_path_factory.mktemp("aesthetics")
    write_clips(root / "gen", 16000, [0.05, 10.0, 10.0 + 1 / 16000, 25.0], seed=41)
    for i, (rate, channels, seconds) in enumerate([(44100, 2, 3.0), (48000, 1, 12.5)]):
        write_clips(root / f"tmp{i}", rate, [seconds], channels=channels, seed=42 + i)
        (root / f"tmp{i}" / "clip_00.wav").rename(root / "gen" / f"other_{i}.wav")
    write_clips(root / "ref", 22050, [2.0, 7.0], seed=45)
    return root


@pytest.mark.parity
def test_verify_aesthetics_matches_the_package_on_every_file(all_models_dir, all_checkpoints_dir, clips):
    python = side_python()
    done = subprocess.run([sys.executable, str(ROOT / "verify_scripts" / "verify_aesthetics.py"), "--source",
                           str(all_checkpoints_dir / FILE), "--models-dir", str(all_models_dir), "--audio",
                           str(clips / "gen"), "--original-python", str(python), "--bf16", "--bf16-files", "0"],
                          capture_output=True, text=True)  # ours not in bf16: emulated here, 50 s a window
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: 6 files' scores within 0.0001 of audiobox_aesthetics" in done.stdout
    assert "the package with precision='bf16': identical to its fp32 scores" in done.stdout
    assert "bf16 vs fp32 (ours" not in done.stdout


@pytest.mark.parametrize("skips", [False, True])
def test_verify_aesthetics_runs_ours_in_bf16_on_the_first_files_and_fails_on_one_it_skips(skips, tmp_path,
                                                                                       monkeypatch, capsys):
    """The script's bf16 steps, with both sides' scores written here (the tier runs it with ``--bf16-files 0``: ours
    in bf16 is emulated on CPUs without bf16 instructions, 50 s a window)."""
    import verify_aesthetics

    names = ["a.wav", "b.wav", "c.wav"]
    for name in names:
        sf.write(tmp_path / name, np.zeros(160, np.float32), 16000)
    scores = {name: np.array([5.0, 6.0, 7.0, 8.0]) + i for i, name in enumerate(names)}
    seen = []

    def ours(folder, models_dir, precision):
        listed = sorted(path.name for path in folder.iterdir())
        seen.append((precision, listed))
        kept = listed[1:] if skips and precision == "bf16" else listed
        return {name: scores[name] * (1.001 if precision == "bf16" else 1.0) for name in kept}, {"problems": []}

    monkeypatch.setattr(verify_aesthetics, "our_scores", ours)
    monkeypatch.setattr(verify_aesthetics, "original_scores",
                        lambda python, source, files, precision: {path.name: scores[path.name] for path in files})
    status = verify_aesthetics.main(["--source", "x.pt", "--audio", str(tmp_path), "--original-python", "python",
                                     "--bf16", "--bf16-files", "2"])
    printed = capsys.readouterr()
    assert seen == [("fp32", names), ("bf16", names[:2])]
    if skips:
        assert status == 1 and "ours in bf16 scored ['b.wav'], in fp32 ['a.wav', 'b.wav']" in printed.err
    else:
        assert status == 0
        assert "bf16 vs fp32 (ours, 2 of 3 files): largest change of a file's score 0.009" in printed.out


@pytest.mark.parametrize("options", [("--bf16-files", "-1", "--bf16"), ("--bf16-files", "1")])
def test_verify_aesthetics_refuses_a_bf16_file_count_below_0_or_without_bf16(options, capsys):
    import verify_aesthetics

    with pytest.raises(SystemExit) as exit_:
        verify_aesthetics.main(["--source", "x.pt", "--audio", ".", "--original-python", "python", *options])
    assert exit_.value.code == 2
    assert "--bf16-files takes a number of files of 0 or more, with --bf16" in capsys.readouterr().err


@pytest.mark.parity
def test_eval_scores_without_a_reference_and_gives_the_references_means_beside(all_models_dir, clips, tmp_path):
    out = tmp_path / "report.json"
    assert cli.main(["eval", str(clips / "gen"), "--metrics", "aesthetics", "--models-dir", str(all_models_dir),
                     "--per-file", "--quiet", "--no-cache", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["mode"] == "reference-free" and "reference" not in report["files"]
    assert report["files"]["generated"]["used"] == 6
    assert report["files"]["generated"]["windowing"] == {MODEL: {"padded": 5, "cut": 0}}  # all but the 10-s clip
    per_file = {name: [row[f"aesthetics_{a}"] for a in ("ce", "cu", "pc", "pq")]
                for name, row in report["per_file"].items()}
    assert set(per_file) == {"clip_00.wav", "clip_01.wav", "clip_02.wav", "clip_03.wav", "other_0.wav",
                             "other_1.wav"}
    assert report["metrics"]["aesthetics_pq"] == pytest.approx(np.mean([v[3] for v in per_file.values()]), rel=1e-6)
    assert all(1.0 < v < 10.0 for row in per_file.values() for v in row)  # the stand-in's scores on the 1-10 scale
    from audiofidelity.evaluate import evaluate

    both = evaluate(clips / "gen", clips / "ref", metrics=["aesthetics"], models_dir=all_models_dir, progress=False)
    assert both.report["metrics"] == report["metrics"] and both.report["mode"] == "unpaired"
    assert both.report["details"]["aesthetics_ce"]["reference"]["files"] == 2
    with pytest.raises(ValueError, match="fad compare with a reference"):
        evaluate(clips / "gen", metrics=["aesthetics", "fad"], models_dir=all_models_dir, progress=False)


@pytest.mark.parity
def test_the_service_scores_a_job_with_generated_files_only(all_models_dir, clips, tmp_path):
    pytest.importorskip("fastapi")
    from audiofidelity.evaluate import evaluate
    from test_server import make_client, wait_finished

    gen = clips / "gen"
    files = [("generated_files", (p.name, p.read_bytes())) for p in sorted(gen.iterdir())]
    with make_client(tmp_path, all_models_dir) as client:
        refused = client.post("/evaluate", files=files, data={"metrics": "FAD"})
        assert refused.status_code == 400 and "No reference files provided" in refused.json()["error"]
        posted = client.post("/evaluate", files=files, data={"metrics": "AESTHETICS"})
        assert posted.status_code == 202, posted.json()
        assert posted.json()["evaluation_mode"] == "reference-free" and posted.json()["files"]["reference"] == 0
        job = wait_finished(client, posted.json()["job_id"], seconds=600)
    assert job["status"] == "completed", job
    direct = evaluate(gen, metrics=["aesthetics"], models_dir=all_models_dir, progress=False)
    assert job["metrics"] == direct.report["metrics"]
