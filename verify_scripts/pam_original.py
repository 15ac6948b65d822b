#!/usr/bin/env python3
"""Compute PAM scores as PAM's own code does and save them, for the project's side to compare (no project import).

PAM (Deshmukh et al. 2024, "PAM: Prompting Audio-Language Models for Audio Quality Assessment", github soham97/PAM)
prompts Microsoft CLAP 2023 with ``PAM_PROMPTS``; a chunk's score is the softmax probability of the first prompt.
Its model code (``PAM/models/``) is msclap 1.3.4's with the Cnn14 encoder, the CLIP and BERT text branches and the
captioning mapper left out; for this model (HTSAT audio, ``gpt2`` text) the two compute the same, and
``PAM/config.yml`` is byte for byte msclap's ``configs/config_2023.yml``. So the model here is msclap's, built as
``PAM.load_clap`` builds it, and the feeding and scoring are PAM's, transcribed from ``PAM/PAM.py``, ``dataset.py``
(``AudioDataset``, ``repro=False``) and ``run.py``:

    PYTHON -m pip install --no-deps msclap==1.3.4       # into a virtualenv with torch, torchaudio, torchlibrosa,
                                                        # transformers and soundfile
    PYTHON pam_original.py CKPT VOCAB MERGES OUT.npz FILE...

- the model: msclap's ``CLAP`` with PAM's configuration, its GPT-2 built from ``GPT2Config()`` offline instead of
  ``AutoModel.from_pretrained("gpt2")`` (the weights come from CKPT), loaded as PAM loads it
  (``torch.load(CKPT)["model"]``, ``load_state_dict(strict=False)``; here a missing key is an error), in eval mode,
  on the CPU (PAM uses CUDA where it is available). Only ``msclap.models`` is imported: the package's
  ``__init__`` imports ``CLAPWrapper`` (torchaudio, the Hugging Face hub, the captioning mapper), none of which this
  needs.
- the text side: ``AutoTokenizer.from_pretrained`` on a folder holding VOCAB and MERGES (and a
  ``tokenizer_config.json`` naming ``GPT2Tokenizer``, which ``AutoTokenizer`` needs to pick the class; the hub's
  ``gpt2`` folder says it through its ``config.json``), ``add_special_tokens({"pad_token": "!"})``; each prompt plus
  ``" <|endoftext|>"`` encoded to 77 ids, padded at the end with ``!`` (id 0). transformers 5 has no
  ``encode_plus``; calling the tokenizer on one text with the same arguments is what ``encode_plus`` did. Then
  ``caption_encoder``, which reads GPT-2's state at the last id that is not 0.
- the audio side, per file: decoded to float32 (channels, samples); ``torchaudio.transforms.Resample(rate, 44100)``
  where the rate differs; ``reshape(-1)`` (a stereo file's channels are concatenated, one after the other, as PAM
  does); ``process_audio``: a clip of 7 s or less is repeated and cut to 7 s, a longer one becomes its whole 7-s
  chunks plus the last 7 s when samples remain; files taken ``BATCH_SIZE`` at a time (``run.py``'s default), their
  chunks stacked as ``collate`` does and embedded in one pass (``audio_encoder(x)[0]``); ``compute_similarity``
  (cosines times ``exp(logit_scale)``), softmax over the two prompts, the first column; a file's score is
  ``sum(chunk_scores).item() / len(chunk_scores)`` as ``evaluate`` computes it.
- decoding: ``torchaudio.load`` in torchaudio 2.11 needs torchcodec, which is not installed here; for PCM WAV,
  soundfile's float32 is the same as torchaudio's (sample / 32768 for 16-bit), (channels, samples) after a transpose.

OUT.npz: ``clip<i>`` the i-th FILE's PAM score (float64 scalar), ``chunks<i>`` its chunk scores (float32, one per 7-s
chunk), ``text`` the two prompts' text embeddings (2, 1024) float32 (``caption_encoder``'s output, not normalised),
``logit_scale`` the checkpoint's ``logit_scale`` parameter (float32 scalar; the similarities are scaled by its
``exp``), ``token_ids`` (2, 77) the prompts' ids.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

INSTALL_HINT = "pip install --no-deps msclap==1.3.4 (its model code needs torch, torchlibrosa and transformers)"
PAM_PROMPTS = ["the sound is clear and clean.", "the sound is noisy and with artifacts."]
PAM_CONFIG = dict(audioenc_name="HTSAT", sample_rate=44100, window_size=1024, hop_size=320, mel_bins=64, fmin=50,
                  fmax=8000, classes_num=527, out_emb=768, text_model="gpt2", transformer_embed_dim=768, d_proj=1024)
"""``PAM/config.yml`` as ``load_clap`` passes it to ``CLAP`` (``sampling_rate`` as ``sample_rate``, ``num_classes``
as ``classes_num``)."""
TEXT_LEN = 77
RESAMPLE_RATE = 44100
SAMPLES = RESAMPLE_RATE * 7
BATCH_SIZE = 10
"""``run.py``'s ``--batch_size`` default: files per ``evaluate`` call, whose chunks go through the model together."""


def msclap_models() -> types.ModuleType:
    """``msclap.models.clap``, imported without running ``msclap/__init__.py`` (which imports ``CLAPWrapper``): an
    unexecuted ``msclap`` package stands in while the subpackage loads and is removed afterwards, so a later
    ``import msclap`` is the real one; the other ``msclap.models`` modules are in ``sys.modules`` (an ``import``
    statement naming them would run ``msclap/__init__.py``)."""
    if "msclap.models.clap" in sys.modules:
        return sys.modules["msclap.models.clap"]
    spec = importlib.util.find_spec("msclap")
    if spec is None:
        raise ImportError(f"msclap is not installed: {INSTALL_HINT}")
    stand_in = "msclap" not in sys.modules
    if stand_in:
        sys.modules["msclap"] = importlib.util.module_from_spec(spec)
    try:
        return importlib.import_module("msclap.models.clap")
    finally:
        if stand_in:
            del sys.modules["msclap"]


def constructed_model() -> torch.nn.Module:
    """msclap's ``CLAP`` with PAM's configuration, randomly initialised, GPT-2 built offline from ``GPT2Config()``,
    in eval mode."""
    from transformers import GPT2Config, GPT2Model

    clap = msclap_models()
    auto_model = clap.AutoModel
    clap.AutoModel = types.SimpleNamespace(from_pretrained=lambda name: GPT2Model(GPT2Config()))
    try:
        return clap.CLAP(**PAM_CONFIG).eval()
    finally:
        clap.AutoModel = auto_model


def load_pam(checkpoint: Path) -> torch.nn.Module:
    """The model with CKPT's weights, as ``PAM.load_clap`` loads them (``strict=False``); a missing key is an error
    here, since it would leave a random tensor in place."""
    model = constructed_model()
    state = torch.load(checkpoint, map_location=torch.device("cpu"))["model"]
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise SystemExit(f"{checkpoint} lacks {len(result.missing_keys)} of the model's keys: "
                         f"{result.missing_keys[:5]}")
    if result.unexpected_keys:
        print(f"ignored, as PAM's strict=False load ignores them: {result.unexpected_keys[:5]}", file=sys.stderr)
    return model.eval()


def load_tokenizer(vocab: Path, merges: Path):
    """``AutoTokenizer.from_pretrained`` on a folder holding the two files, then PAM's pad token."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as folder:
        shutil.copyfile(vocab, Path(folder) / "vocab.json")
        shutil.copyfile(merges, Path(folder) / "merges.txt")
        (Path(folder) / "tokenizer_config.json").write_text(
            json.dumps({"tokenizer_class": "GPT2Tokenizer", "model_max_length": 1024}), encoding="utf-8")
        tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.add_special_tokens({"pad_token": "!"})
    return tokenizer


def preprocess_text(tokenizer, text_queries: list[str]) -> dict[str, torch.Tensor]:
    """``PAM.preprocess_text`` for ``text_model="gpt2"`` (``encode_plus`` spelt as the tokenizer's call)."""
    tokenized_texts = []
    for ttext in text_queries:
        ttext = ttext + " <|endoftext|>"
        tok = tokenizer(text=ttext, add_special_tokens=True, max_length=TEXT_LEN, padding="max_length",
                        return_tensors="pt")
        for key in ("input_ids", "attention_mask"):
            tok[key] = tok[key].reshape(-1)
        tokenized_texts.append(tok)
    return {key: torch.cat([d[key].reshape(1, -1) for d in tokenized_texts]) for key in tokenized_texts[0]}


def read_audio(path: Path) -> torch.Tensor:
    """``torchaudio.load`` (float32, (channels, samples)) by soundfile, then ``readaudio``: resampled to 44.1 kHz
    where the rate differs, and ``process_audio`` (``repro=False``)."""
    import soundfile
    import torchaudio.transforms as T

    data, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    audio = torch.from_numpy(np.ascontiguousarray(data.T))
    if RESAMPLE_RATE != sample_rate:
        audio = T.Resample(sample_rate, RESAMPLE_RATE)(audio)
    return process_audio(audio)


def process_audio(audio: torch.Tensor) -> torch.Tensor:
    """``AudioDataset.process_audio`` with ``repro=False``: a whole number of 7-s chunks."""
    audio = audio.reshape(-1)
    if SAMPLES >= audio.shape[0]:
        repeat_factor = int(np.ceil(SAMPLES / audio.shape[0]))
        audio = audio.repeat(repeat_factor)[0:SAMPLES]
    else:
        cutoff = int(np.floor(audio.shape[0] / SAMPLES))
        initial_audio_series = audio[0:cutoff * SAMPLES]
        remaining = audio[cutoff * SAMPLES:]
        if remaining.shape[0] != 0:
            audio = torch.cat([initial_audio_series, audio[-SAMPLES:]])
        else:
            audio = initial_audio_series
    return audio


def collate(batch: list[torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
    """``AudioDataset.collate``: the chunks of a batch's files stacked (chunks, 308700), and where each file's start."""
    sample_len = [0] + [int(len(x) / SAMPLES) for x in batch]
    sample_index = [sum(sample_len[0:i + 1]) for i in range(len(sample_len))]
    joined = torch.cat(batch)
    chunks = [joined[SAMPLES * i:SAMPLES * i + SAMPLES].reshape(1, -1) for i in range(int(joined.shape[0] / SAMPLES))]
    return torch.cat(chunks, axis=0), sample_index


def evaluate(model, text_embeddings, audio_tensors, sample_index):
    """``PAM.evaluate``: per file, the mean of its chunks' scores, and the chunk scores."""
    with torch.no_grad():
        audio_embeddings = model.audio_encoder(audio_tensors)[0]
        audio_embeddings = audio_embeddings / torch.norm(audio_embeddings, dim=-1, keepdim=True)
        text = text_embeddings / torch.norm(text_embeddings, dim=-1, keepdim=True)
        similarity = (model.logit_scale.exp() * text @ audio_embeddings.T).T
        pam_score = torch.nn.functional.softmax(similarity, dim=1)[:, 0].detach().cpu()
    per_file = [pam_score[sample_index[i]:sample_index[i + 1]] for i in range(len(sample_index) - 1)]
    return [sum(x).item() / len(x) for x in per_file], per_file


def main(argv: list[str]) -> int:
    if len(argv) < 5:
        raise SystemExit("usage: pam_original.py CKPT VOCAB MERGES OUT.npz FILE... (see the module docstring)")
    checkpoint, vocab, merges, out = (Path(a) for a in argv[:4])
    files = [Path(a) for a in argv[4:]]
    started = time.perf_counter()
    model = load_pam(checkpoint)
    tokenizer = load_tokenizer(vocab, merges)
    tokens = preprocess_text(tokenizer, PAM_PROMPTS)
    with torch.no_grad():
        text_embeddings = model.caption_encoder(tokens)
    loaded = time.perf_counter()
    result = {"text": text_embeddings.numpy().astype(np.float32), "token_ids": tokens["input_ids"].numpy(),
              "logit_scale": model.logit_scale.detach().numpy().astype(np.float32)}
    for first in range(0, len(files), BATCH_SIZE):
        batch = files[first:first + BATCH_SIZE]
        audio_tensors, sample_index = collate([read_audio(f) for f in batch])
        scores, chunks = evaluate(model, text_embeddings, audio_tensors, sample_index)
        for i, (score, chunk) in enumerate(zip(scores, chunks), start=first):
            result[f"clip{i}"] = np.array(score, dtype=np.float64)
            result[f"chunks{i}"] = chunk.numpy().astype(np.float32)
            print(f"{files[i].name}: PAM {score:.6f} over {len(chunk)} chunk(s)")
    np.savez(out, **result)
    done = time.perf_counter()
    print(f"model and text {loaded - started:.1f} s, audio {done - loaded:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
