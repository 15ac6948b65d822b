#!/usr/bin/env python3
"""CLAP score's cost: seconds per 1000 captions through the text tower (tokenizer included) and per 10-s clip through
the audio tower (frontend included), fp32 (issue #32). Run by hand; not part of the tests.

    python benchmarks/bench_clap_score.py --models-dir DIR [--model clap-630k-audioset]

The captions: 96 in the style of AudioCaps and MusicCaps (the tokenizer fixture's corpus), embedded in passes of 8;
the baseline in the same run is the tokenizer alone on the same captions. The clip: one 10-s noisy tone at 48 kHz
through ``Embedder`` (the int16 round trip, the log-mel, one window). Median of 3 after a warm-up.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench_fad_models import median_seconds
from bench_pipeline import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--model", default="clap-630k-audioset")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from audiofidelity import Embedder
    from fixtures.roberta_vocab import captions

    corpus = [c for c in captions() if c.isascii() and len(c) > 20][:96]
    text = Embedder(args.model, output="text", models_dir=args.models_dir)
    tokenize = median_seconds(lambda: text.text.tokenizer.encode_batch(corpus), args.repeats)  # type: ignore[union-attr]
    embed = median_seconds(lambda: text.embed_text(corpus), args.repeats)
    audio = Embedder(args.model, models_dir=args.models_dir, cache=False)
    rng = np.random.default_rng(0)
    t = np.arange(480000) / 48000
    clip = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    window = median_seconds(lambda: audio.embed(clip, 48000), args.repeats)
    print(f"machine: {machine()}")
    print(f"{args.model}: tokenizer {1000 * tokenize / len(corpus):.2f} s per 1000 captions; text tower with the "
          f"tokenizer {1000 * embed / len(corpus):.1f} s per 1000 captions; audio tower {window:.3f} s per 10-s clip")


if __name__ == "__main__":
    main()
