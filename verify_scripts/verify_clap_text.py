#!/usr/bin/env python3
"""Prove an exported LAION-CLAP text artifact and audiofidelity's tokenizer give what laion_clap and transformers give.

    python verify_scripts/verify_clap_text.py clap-630k-audioset --source 630k-audioset-best.pt --models-dir models/ \
        --captions captions.json [--audio generated/ --audio-captions captions.csv --feeding stable-audio-metrics]
    # audioldm_eval's CLAP score (its audio side needs torchaudio: a side virtualenv, clap_original.py)
    ... --feeding audioldm_eval --original-python SIDE/bin/python

The original is laion_clap 1.1.7's own ``CLAP`` (the checkpoint's audio model, ``text_cfg`` roberta) with its
``text_branch`` built by transformers from roberta-base's configuration (``ROBERTA_BASE``: offline, the same module
``RobertaModel.from_pretrained("roberta-base")`` gives), the whole checkpoint loaded through laion_clap's
``load_state_dict``, and ``CLAP_Module.get_text_embedding`` called with transformers' ``RobertaTokenizer`` built on
the artifact's own ``vocab.json`` and ``merges.txt``. Checked, for every caption of ``--captions`` (a JSON list):

- token ids and attention masks identical to transformers' (77 per caption, padded and truncated; see
  ``MASK_DIFFERS``);
- text embeddings within ``--tolerance`` x max |value| (the original fed the same ids).

With ``--audio``: each file's CLAP score (cosine of its audio embedding with its caption's text embedding, the
caption found by file name without extension in ``--audio-captions``, read by ``audiofidelity.captions``), by the
original as the toolkit of ``--feeding`` computes it (``original_clap_score``: ``librosa.load(sr=48000)``, peak to
-1 dBFS for stable-audio-metrics, the int16 round trip, ``get_audio_embedding_from_data``; a clip over 10 s as the
mean of the windows the FAD model takes; for audioldm_eval, its branch's reading and 512-token captions,
``clap_original.py audioldm_eval``), against ``audiofidelity eval --metrics clap_score``: within 1e-5 absolute.
"""
from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

from audiofidelity import artifacts
from audiofidelity.text_tower import TextTower
from common import audio_files, relative_error, verdict
from common import clap_module
from verify_clap import (AUDIO_MODELS, FUSION_TOWERS, amodel, clap_model, laion_clap_package, original_embedding,
                         run_clap_original)

ROBERTA_BASE = dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                    pad_token_id=1, bos_token_id=0, eos_token_id=2, hidden_act="gelu",
                    hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
"""roberta-base's ``config.json``, as the Hub serves it."""
SCORE_TOLERANCE = 1e-5
MASK_DIFFERS = int(__import__("transformers").__version__.split(".")[0]) >= 5
"""transformers >= 5 has only the ``tokenizers``-backed ``RobertaTokenizer``, which keeps the whitespace before a
literal ``<mask>`` in the text as a token; the slow one of transformers 4 (LAION-CLAP's, reproduced here) strips it
(``lstrip``). Captions holding ``<mask>`` are then left out of the id comparison (``tests/test_tokenizer.py``
compares them with the slow tokenizer's recorded output)."""
PEAK_DBFS = -1.0
AUDIOLDM_EVAL_TOKENS = 512
"""audioldm_eval's ``CLAPAudioEmbeddingClassifierFreev2.tokenizer``: ``max_length=512``."""


def _roberta_base(name: str, *args, **kwargs):
    """Stands in for ``RobertaModel.from_pretrained("roberta-base")``: the same architecture, built offline (the
    checkpoint's weights are loaded over it)."""
    from transformers import RobertaConfig, RobertaModel

    assert name == "roberta-base", name
    return RobertaModel(RobertaConfig(**ROBERTA_BASE))


def constructed_model(name: str) -> torch.nn.Module:
    """laion_clap's ``CLAP`` for audio model ``name`` with its RoBERTa text tower (randomly initialised)."""
    laion_clap_package()
    factory, model = sys.modules["clap_module.factory"], sys.modules["clap_module.model"]
    text_cfg = {**factory._MODEL_CONFIGS["HTSAT-tiny"]["text_cfg"], "model_type": "roberta"}
    roberta = model.RobertaModel
    model.RobertaModel = types.SimpleNamespace(from_pretrained=_roberta_base)
    try:
        return clap_model(name, text_cfg)
    finally:
        model.RobertaModel = roberta


def transformers_tokenizer(vocab: Path, merges: Path):
    """transformers' ``RobertaTokenizer`` on these files, built as ``from_pretrained("roberta-base")`` builds it (from
    a folder holding ``vocab.json`` and ``merges.txt``)."""
    import shutil
    import tempfile

    from transformers import RobertaTokenizer

    with tempfile.TemporaryDirectory() as folder:
        shutil.copyfile(vocab, Path(folder) / "vocab.json")
        shutil.copyfile(merges, Path(folder) / "merges.txt")
        return RobertaTokenizer.from_pretrained(folder)


def load_original(name: str, source: Path, vocab: Path, merges: Path):
    """A ``CLAP_Module`` holding laion_clap's whole model loaded from ``source`` and transformers' tokenizer."""
    package = laion_clap_package()
    model = constructed_model(name)
    model.load_state_dict(sys.modules["clap_module.factory"].load_state_dict(str(source)), strict=True)
    module = clap_module(package, model, *amodel(name))
    module.tokenize = transformers_tokenizer(vocab, merges)
    return module


def original_audio(path: Path, feeding: str) -> np.ndarray:
    """A file as the toolkit's CLAP score reads it: ``librosa.load(sr=48000, mono=True)``, then (stable-audio-metrics)
    pyloudnorm's ``normalize.peak`` to -1 dBFS (``gain = 10 ** (target / 20) / max |x|``), then the int16 round trip
    (``int16_to_float32(float32_to_int16(x))``)."""
    import librosa

    audio, _ = librosa.load(path, sr=48000, mono=True)
    if feeding == "stable-audio-metrics":
        audio = np.power(10.0, PEAK_DBFS / 20.0) / np.max(np.abs(audio)) * audio
    return ((np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16) / 32767.0).astype(np.float32)


def original_clap_score(original, files: list[Path], captions, feeding: str, *, model: str, source: Path,
                        side_python: Path | None) -> dict[str, float]:
    """Each file's cosine between laion_clap's audio and text embeddings (``torch.nn.functional.cosine_similarity``
    with eps 1e-8, as stable-audio-metrics and audioldm_eval), for the files ``captions`` (a ``Captions``) has a
    caption for; audioldm_eval's audio side runs in ``side_python`` (``clap_original.py audioldm_eval``)."""
    found = [p for p in files if captions.caption_for(p.name) is not None]
    texts = [captions.caption_for(p.name) for p in found]
    with torch.inference_mode():
        if feeding == "audioldm_eval":
            assert side_python is not None
            tokens = original.tokenize(texts, padding="max_length", truncation=True, max_length=AUDIOLDM_EVAL_TOKENS,
                                       return_tensors="pt")
            text = original.model.get_text_embedding({k: tokens[k] for k in ("input_ids", "attention_mask")})
            saved = run_clap_original(side_python, "audioldm_eval", str(source), amodel(model)[0], *map(str, found))
            audio_rows = [saved[f"clip{i}"] for i in range(len(found))]
        else:
            text = original.get_text_embedding(texts, use_tensor=True)
            audio_rows = [original_embedding(original, original_audio(path, feeding), 480000) for path in found]
        return {path.name: float(torch.nn.functional.cosine_similarity(torch.from_numpy(audio)[None], row[None], dim=1,
                                                                        eps=1e-8)[0])
                for path, audio, row in zip(found, audio_rows, text)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(AUDIO_MODELS), help="the audio artifact; its text tower is MODEL-text")
    parser.add_argument("--source", type=Path, required=True, help="the LAION-CLAP checkpoint (both towers)")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--captions", type=Path, required=True, help="a JSON list of captions to compare on")
    parser.add_argument("--audio", type=Path, default=None, help="generated audio for the CLAP score")
    parser.add_argument("--audio-captions", type=Path, default=None, help="captions file of --audio (CSV or JSON)")
    parser.add_argument("--feeding", default="laion_clap",
                        choices=("laion_clap", "stable-audio-metrics", "audioldm_eval"))
    parser.add_argument("--original-python", type=Path, default=None,
                        help="--feeding audioldm_eval: a Python with laion_clap and torchaudio (clap_original.py)")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args(argv)
    try:
        captions = json.loads(args.captions.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        parser.error(f"--captions {args.captions}: {exc}")
    if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
        parser.error("--captions must hold a JSON list of strings")

    tower = TextTower(artifacts.load(args.model + "-text", directory=args.models_dir))
    files = tower.artifact.manifest.frontend["files"]
    folder = tower.artifact.path.parent
    vocab, merges = folder / files["vocab"]["file"], folder / files["merges"]["file"]
    original = load_original(args.model, args.source, vocab, merges)
    failed = []

    ours_ids, ours_mask = tower.tokenizer.encode_batch(captions)
    theirs = original.tokenizer(captions)
    compared = [i for i, c in enumerate(captions) if not (MASK_DIFFERS and "<mask>" in c)]
    differ = [i for i in compared if not (np.array_equal(ours_ids[i], theirs["input_ids"][i].numpy())
                                          and np.array_equal(ours_mask[i], theirs["attention_mask"][i].numpy()))]
    print(f"token ids: {len(compared) - len(differ)} of {len(compared)} captions identical to transformers' "
          f"RobertaTokenizer" + (f" ({len(captions) - len(compared)} holding the text '<mask>' not compared: see "
                                 f"MASK_DIFFERS)" if len(compared) < len(captions) else ""))
    if differ:
        failed.append(f"token ids differ on captions {differ[:10]}")

    ours = tower.embed(captions)
    with torch.inference_mode():  # fed our ids: the tower alone is compared here, the ids above
        reference = original.get_text_embedding(captions, use_tensor=False, tokenizer=lambda texts: {
            "input_ids": torch.from_numpy(ours_ids), "attention_mask": torch.from_numpy(ours_mask)})
    error = relative_error(ours, reference)
    print(f"text embeddings: max |difference| / max |value| {error:.3g} over {len(captions)} captions")
    if error > args.tolerance:
        failed.append(f"text embeddings {error:.3g} above tolerance {args.tolerance:g}")

    if args.audio is not None:
        if args.audio_captions is None:
            parser.error("--audio needs --audio-captions")
        if AUDIO_MODELS[args.model] in FUSION_TOWERS:
            parser.error("the fusion audio tower's original needs torchaudio: verify it with verify_clap.py "
                         "--original-python; here, its text tower only (no --audio)")
        from audiofidelity.captions import read_captions
        from audiofidelity.evaluate import evaluate

        if args.feeding == "audioldm_eval" and args.original_python is None:
            parser.error("--feeding audioldm_eval needs --original-python (its audio side needs torchaudio)")
        theirs_scores = original_clap_score(original, audio_files([args.audio]), read_captions(args.audio_captions),
                                            args.feeding, model=args.model, source=args.source,
                                            side_python=args.original_python)
        result = evaluate(args.audio, args.audio, metrics=["clap_score"], fad_model=args.model, per_file=True,
                          captions=args.audio_captions, models_dir=args.models_dir, clap_feeding=args.feeding,
                          progress=False)
        per_file = {name: row["clap_score"] for name, row in result.report["per_file"].items() if "clap_score" in row}
        worst = max((abs(per_file[name] - value) for name, value in theirs_scores.items()), default=0.0)
        mean_error = abs(result.report["metrics"]["clap_score"] - float(np.mean(list(theirs_scores.values()))))
        print(f"CLAP score ({args.feeding}): ours {result.report['metrics']['clap_score']:.7f}, laion_clap "
              f"{np.mean(list(theirs_scores.values())):.7f}; worst file {worst:.3g}")
        if set(per_file) != set(theirs_scores) or max(worst, mean_error) > SCORE_TOLERANCE:
            failed.append(f"CLAP score differs by {max(worst, mean_error):.3g} (files {sorted(per_file)} vs "
                          f"{sorted(theirs_scores)})")
    return verdict(failed, f"token ids identical, text embeddings within {args.tolerance:g} of laion_clap"
                   + (f", CLAP score within {SCORE_TOLERANCE:g}" if args.audio else ""))


if __name__ == "__main__":
    sys.exit(main())
