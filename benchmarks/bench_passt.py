#!/usr/bin/env python3
"""Seconds per 10-s clip of PaSST-S next to CNN14, MERT and CLAP's HTSAT, and the fraction of this machine's matmul
roofline PaSST reaches, fp32 and bf16 (issue #31). Run by hand; not part of the tests.

    python benchmarks/bench_passt.py --models-dir DIR [--models-dir DIR2]   # folders holding the three artifacts
    python benchmarks/bench_passt.py --models-dir DIR --only passt-s --baseline DIR0  # against an earlier export

Per model: the forward pass of one 10-s clip's input (frontend output precomputed, as ``eval`` feeds it: CNN14 at
16 kHz, MERT at 24 kHz, PaSST's one 1000-frame window at 32 kHz), batch 1 and 4, median of 3 after a warm-up. The
baseline, measured in the same run: a matmul of PaSST's MLP shape ((4 x 1190) x 768 @ 768 x 3072) in fp32 and in
bf16, whose GFLOP/s is the roofline PaSST's matmuls can reach here. PaSST-S's work per 10-s window, from its layers
(``passt_gmac``): 127.4 GMAC (254.8 GFLOP).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench_fad_models import median_seconds
from bench_pipeline import machine

CNN14_GFLOP_PER_10S = 40.08


def passt_gmac(frames: int = 1000, mel_bins: int = 128, patch: int = 16, stride: int = 10, dim: int = 768,
               depth: int = 12, mlp: int = 3072, classes: int = 527) -> float:
    """PaSST-S's multiply-accumulates for one mel of ``frames`` (patchout off): the patch embedding, then per block
    the qkv and output projections, the attention's two products and the MLP, over ``12 x T + 2`` tokens (frequency
    and time patches at stride 10, the CLS and distillation tokens), and the head."""
    tokens = ((mel_bins - patch) // stride + 1) * ((frames - patch) // stride + 1) + 2
    embed = (tokens - 2) * dim * patch * patch
    block = 4 * tokens * dim * dim + 2 * tokens * tokens * dim + 2 * tokens * dim * mlp
    return (embed + depth * block + dim * classes) / 1e9


def matmul_roofline(dtype) -> float:
    """GFLOP/s of PaSST's MLP matmul at batch 4 in ``dtype``."""
    import torch

    a, b = torch.randn(4 * 1190, 768, dtype=dtype), torch.randn(768, 3072, dtype=dtype)
    return 2 * a.shape[0] * 768 * 3072 / median_seconds(lambda: a @ b, repeats=5) / 1e9


def find(name: str, folders: list[Path]) -> Path:
    for folder in folders:
        if (folder / f"{name}.pt2").is_file():
            return folder
    raise SystemExit(f"no {name}.pt2 in {', '.join(map(str, folders))}")


def main() -> None:
    import torch

    from audiofidelity.artifacts import load
    from audiofidelity.models import apply_frontend
    from audiofidelity.runner import _precision

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, action="append", required=True)
    parser.add_argument("--only", help="time this artifact only")
    parser.add_argument("--baseline", type=Path, help="a folder with an earlier export of the same artifacts, timed "
                        "beside them in the same run (rows marked 'baseline')")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"machine: {machine()}")
    roof = {"fp32": matmul_roofline(torch.float32), "bf16": matmul_roofline(torch.bfloat16)}
    print(f"matmul roofline ((4x1190)x768 @ 768x3072): fp32 {roof['fp32']:.0f} GFLOP/s, bf16 {roof['bf16']:.0f}")
    gflop = {"passt-s": 2 * passt_gmac(), "cnn14-16k": CNN14_GFLOP_PER_10S}
    extra = {"passt-s": {"samples": 320000}}
    print("| model | precision | batch | s per 10-s clip | GFLOP/s | of the matmul roofline |")
    print("|---|---|---|---|---|---|")
    models = (("cnn14-16k", 16000), ("mert-v1-95m", 24000), ("passt-s", 32000), ("clap-630k-audioset", 48000))
    for name, rate in models:
        if args.only and name != args.only:
            continue
        folders = [("", find(name, args.models_dir))] + ([(" (baseline)", args.baseline)] if args.baseline else [])
        artifacts = [(label, load(name, directory=folder)) for label, folder in folders]
        wave = (0.1 * rng.standard_normal(10 * rate)).astype(np.float32)
        clip = np.asarray(apply_frontend(wave, {**artifacts[0][1].manifest.frontend, **extra.get(name, {})}))
        for precision in ("fp32", "bf16"):
            for batch in (1, 4):
                for label, artifact in artifacts:
                    x = torch.from_numpy(np.repeat(clip, batch, axis=0))
                    with torch.inference_mode(), _precision(precision, "cpu"):
                        per_clip = median_seconds(lambda x=x, run=artifact.program: run(x), repeats=3) / batch
                    rate_of = gflop.get(name)
                    flops = f"{rate_of / per_clip:.0f}" if rate_of else "–"
                    share = f"{rate_of / per_clip / roof[precision]:.0%}" if name == "passt-s" and rate_of else "–"
                    print(f"| {name}{label} | {precision} | {batch} | {per_clip:.3f} | {flops} | {share} |", flush=True)


if __name__ == "__main__":
    main()
