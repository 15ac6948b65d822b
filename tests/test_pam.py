"""PAM (Deshmukh et al. 2024, github soham97/PAM): Microsoft CLAP 2023 prompted with two sentences on audio quality.
The stand-in checkpoint against msclap 1.3.4's constructed ``CLAP``, whose model code PAM's is (parity tier: the
package is the reference; ``verify_scripts/pam_original.py`` runs PAM's feeding and scoring on it)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fixtures.pam import END_OF_TEXT, FILE, PAM_PROMPTS, pam_state_dict, write_gpt2_tokenizer, write_pam

INSTALL = "pip install --no-deps msclap==1.3.4"
"""Its model code needs only torch, torchlibrosa and transformers; ``--no-deps`` keeps its pins (transformers < 5,
torchaudio, numpy < 2) from replacing the runtime's."""


def msclap_model():
    """msclap's ``CLAP`` built as PAM builds it (``pam_original.constructed_model``), or a skip that says how to
    install msclap."""
    from pam_original import constructed_model, msclap_models

    try:
        msclap_models()
    except ImportError as exc:
        pytest.skip(f"msclap's model code is not importable ({exc}); {INSTALL}")
    return constructed_model()


STAND_IN_SHA256 = "fde0402cb1aff3f9d694652d80a1f3db1824b850df5e435c5676e2bfa8bd9a8d"
"""sha256 over every key and its tensor's sha256 (``stand_in.tensor_sha256``), in order."""


@pytest.mark.parity  # 160M values drawn (7 s)
def test_the_stand_in_is_the_same_on_every_machine():
    """Its values come from NumPy's frozen legacy RandomState, seeded per tensor, and torchlibrosa's buffers: pinned
    here."""
    from fixtures.stand_in import state_dict_sha256

    assert state_dict_sha256(pam_state_dict()) == STAND_IN_SHA256


@pytest.mark.parity
def test_stand_in_has_the_packages_keys_and_shapes(tmp_path):
    """``PAM.load_clap``'s load, transcribed: the file read with ``torch.load`` (weights only, torch's default), its
    ``model`` entry; every key of msclap's ``CLAP`` with PAM's configuration (GPT-2 built offline), in order, with
    its shape and dtype; the buffers that are not drawn (torchlibrosa's DFT and mel bank, Swin's position indices and
    masks) value for value; and a strict ``load_state_dict`` (PAM's is not strict)."""
    model = msclap_model()
    path = write_pam(tmp_path)
    assert path.name == FILE
    checkpoint = torch.load(path, map_location="cpu")
    assert set(checkpoint) == {"model"}
    state = checkpoint["model"]
    want = model.state_dict()
    assert [(k, tuple(v.shape), v.dtype) for k, v in state.items()] == \
        [(k, tuple(v.shape), v.dtype) for k, v in want.items()]
    assert len(state) == 357
    fixed = ("conv_real.weight", "conv_imag.weight", "melW", "relative_position_index", "attn_mask")
    for key, value in want.items():
        if key.endswith(fixed):
            assert torch.equal(state[key], value), key
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


@pytest.mark.parity
def test_the_stand_in_tokenizer_splits_the_prompts_into_words(tmp_path):
    """``AutoTokenizer.from_pretrained`` reads the folder as a ``GPT2Tokenizer``; PAM's pad token ``!`` is id 0, so
    ``TextEncoder``'s count of non-zero ids lands on ``<|endoftext|>``."""
    from transformers import AutoTokenizer

    vocab, merges = write_gpt2_tokenizer(tmp_path)
    assert (vocab.read_bytes(), merges.read_bytes()) == tuple(p.read_bytes() for p in write_gpt2_tokenizer(
        tmp_path / "again"))
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert type(tokenizer).__name__ == "GPT2Tokenizer"
    tokenizer.add_special_tokens({"pad_token": "!"})
    assert tokenizer.pad_token_id == 0 and tokenizer.convert_tokens_to_ids(["Ġ"]) == [220]
    words = [["the", "Ġsound", "Ġis", "Ġclear", "Ġand", "Ġclean", ".", "Ġ", END_OF_TEXT],
             ["the", "Ġsound", "Ġis", "Ġnoisy", "Ġand", "Ġwith", "Ġartifacts", ".", "Ġ", END_OF_TEXT]]
    for prompt, want in zip(PAM_PROMPTS, words):
        ids = tokenizer(prompt + " " + END_OF_TEXT, max_length=77, padding="max_length")["input_ids"]
        count = int(np.count_nonzero(ids))
        assert len(ids) == 77 and tokenizer.convert_ids_to_tokens(ids[:count]) == want and not any(ids[count:])
        assert max(ids) < 50257


# -- the feeding, transcribed from PAM's dataset.py (fast tier) ----------------------------------------------------

def process_audio(audio: np.ndarray, samples: int) -> np.ndarray:
    """PAM's ``AudioDataset.process_audio`` (``repro=False``) with NumPy: tile to fill a short clip, else the whole
    chunks and the last ``samples`` when some remain."""
    if samples >= len(audio):
        return np.tile(audio, int(np.ceil(samples / len(audio))))[:samples]
    cutoff = len(audio) // samples
    remaining = audio[cutoff * samples:]
    return np.concatenate([audio[:cutoff * samples], audio[-samples:]]) if len(remaining) else audio[:cutoff * samples]


SPECTROGRAM = dict(n_fft=1024, hop_length=320, win_length=1024, n_mels=64, fmin=50, fmax=14000)


@pytest.mark.parametrize("n", [1, 1000, 7000, 7001, 21000, 23456])
def test_chunks_are_pams_process_audio_and_collate(n):
    from audiofidelity.frontends import log_mel
    from audiofidelity.models.pam import pam_chunks

    wave = np.random.default_rng(n).uniform(-0.5, 0.5, n).astype(np.float32)
    chunks = pam_chunks(wave, sample_rate=44100, chunk_samples=7000, mel_sample_rate=32000, **SPECTROGRAM)
    want = process_audio(wave, 7000).reshape(-1, 7000)
    assert chunks.shape == (len(want), 1, 7000 // 320 + 1, 64)
    for got, chunk in zip(chunks, want):
        assert np.array_equal(got[None], log_mel(chunk, sample_rate=32000, **SPECTROGRAM))


def test_a_files_pam_is_its_chunks_float32_sum_over_their_count():
    from audiofidelity.models.pam import clip_value

    chunks = np.array([0.2221, 0.2496, 0.2778], np.float32)
    assert clip_value({"pam": chunks}, {}) == pytest.approx(torch.tensor(chunks).sum().item() / 3, abs=0)


def test_pams_reading_joins_channels_and_resamples_as_transforms_resample():
    from audiofidelity.audio import Conditioning, condition
    from audiofidelity.resample import resample

    stereo = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 4410)).astype(np.float32)
    reading = Conditioning(channel="concatenate", remove_dc=False, resampler="torchaudio",
                           resample_api="transforms", min_samples=0, min_duration=0.0)
    joined = np.concatenate([stereo[0], stereo[1]])  # torch's reshape(-1) of (channels, n)
    assert np.array_equal(condition(stereo, 44100, 44100, reading), joined)
    resampled = condition(stereo, 22050, 44100, reading)
    assert np.array_equal(resampled, resample(joined, 22050, 44100, api="transforms"))
    assert not np.array_equal(resampled, resample(joined, 22050, 44100, api="functional"))
    with pytest.raises(ValueError, match="resample_api must be one of"):
        Conditioning(resample_api="sox")


# -- the artifact against PAM's own steps on msclap (parity tier) ---------------------------------------------------

@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """0.05-16.5 s at 16, 44.1 and 48 kHz, mono and stereo: one chunk filled by repetition, exactly 7 s, 7 s plus a
    sample, several chunks with an overlapping last one."""
    from test_fad_models import write_clips

    root = tmp_path_factory.mktemp("pam")
    write_clips(root / "gen", 44100, [0.05, 7.0, 7.0 + 1 / 44100, 16.5], seed=51)
    for i, (rate, channels, seconds) in enumerate([(44100, 2, 3.0), (16000, 1, 9.5), (48000, 2, 7.5)]):
        write_clips(root / f"tmp{i}", rate, [seconds], channels=channels, seed=52 + i)
        (root / f"tmp{i}" / "clip_00.wav").rename(root / "gen" / f"other_{i}.wav")
    return root


@pytest.mark.parity
def test_verify_pam_matches_pams_own_steps_on_every_file(all_models_dir, all_checkpoints_dir, clips):
    import subprocess
    import sys

    from conftest import ROOT
    from test_clap_fusion import side_python

    python = side_python()
    probe = subprocess.run([str(python), "-c", "import importlib.util as u; assert u.find_spec('msclap')"],
                           capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"msclap is not installed in {python} ({INSTALL}; .ci/run adds it)")
    done = subprocess.run([sys.executable, str(ROOT / "verify_scripts" / "verify_pam.py"), "--source",
                           str(all_checkpoints_dir / FILE), "--vocab", str(all_checkpoints_dir / "gpt2" / "vocab.json"),
                           "--merges", str(all_checkpoints_dir / "gpt2" / "merges.txt"), "--models-dir",
                           str(all_models_dir), "--audio", str(clips / "gen"), "--original-python", str(python)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: 7 files' PAM within 0.0001 of PAM's own code" in done.stdout


@pytest.mark.parity
def test_pam_and_aesthetics_run_together_without_a_reference(all_models_dir, clips):
    from audiofidelity.evaluate import evaluate

    report = evaluate(clips / "gen", metrics=["pam", "aesthetics"], per_file=True, models_dir=all_models_dir,
                      progress=False, cache=False).report
    assert report["mode"] == "reference-free" and report["files"]["generated"]["used"] == 7
    per_file = {name: row["pam"] for name, row in report["per_file"].items()}
    assert all(0.0 < v < 1.0 for v in per_file.values()) and len(set(per_file.values())) == 7
    assert report["metrics"]["pam"] == pytest.approx(np.mean(list(per_file.values())), rel=1e-9)
    assert {"aesthetics_ce", "aesthetics_pq"} <= set(report["metrics"])
    manifest = json.loads((all_models_dir / "pam.json").read_text())
    assert set(manifest["source"]["read"]) == {"vocab", "merges"}  # the tokenizer the prompts were embedded with
