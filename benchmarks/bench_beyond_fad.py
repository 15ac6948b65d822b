#!/usr/bin/env python3
"""KAD and PRDC cost at scale, and FAD vs KAD vs FAD∞ as the number of clips grows.

    python benchmarks/bench_beyond_fad.py cost [--rows 10000 100000]
    python benchmarks/bench_beyond_fad.py growth --models-dir DIR [--svg benchmarks/fad_kad_growth.svg]

``cost``: for each row count, KAD and PRDC between two random (rows, 128) float32 sets (VGGish's width), each in
a fresh process so its peak RSS (``ru_maxrss``) is its own; prints seconds and peak RSS, with a NumPy baseline
(one 128-d matrix product of the same rows) timed in the same run.

``growth``: 400 generated and 400 reference 10-s clips (noisy tones; the generated ones shifted in pitch and
noisier), VGGish frames from ``--models-dir`` through ``Embedder``; then FAD, KAD and FAD∞ (frames, 25 sizes) of
the first n generated clips against all reference clips for growing n, written as a table and an SVG plot.
Run by hand; results go to ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ONE = """
import json, resource, sys, time
import numpy as np
from audiofidelity.metrics import kad, prdc
rows, what = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
x = rng.standard_normal((rows, 128), dtype=np.float32)
y = (rng.standard_normal((rows, 128), dtype=np.float32) * 1.1 + 0.1).astype(np.float32)
start = time.perf_counter()
if what == "kad":
    kad.kernel_audio_distance(x, y)
elif what == "prdc":
    prdc.prdc(x, y)
else:
    (x.astype(np.float64) @ y.astype(np.float64).T[:, :1000]).sum()
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def cost(rows_list: list[int]) -> None:
    print("| rows per side | what | seconds | peak RSS (MB) |\n|---|---|---|---|")
    for rows in rows_list:
        for what in ("baseline", "kad", "prdc"):
            done = subprocess.run([sys.executable, "-c", ONE, str(rows), what], capture_output=True, text=True,
                                  check=True)
            result = json.loads(done.stdout)
            print(f"| {rows} | {what} | {result['seconds']:.1f} | {result['peak_rss_mb']:.0f} |", flush=True)


def write_clips(folder: Path, count: int, *, shift: float, noise: float, seed: int) -> None:
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(10 * 16000) / 16000
    for i in range(count):
        f0 = rng.uniform(150, 900) * shift
        x = 0.3 * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 3) * t))
        x += 0.2 * np.sin(2 * np.pi * 2 * f0 * t + rng.uniform(0, 6)) + noise * rng.standard_normal(len(t))
        sf.write(folder / f"clip_{i:03d}.wav", (0.5 * x / np.max(np.abs(x))).astype(np.float32), 16000,
                 subtype="PCM_16")


def svg_plot(sizes: list[int], series: dict[str, list[float]], path: Path) -> None:
    """A small line plot of each series relative to its value at the largest size, as plain SVG."""
    width, height, pad = 640, 360, 50
    colours = ["#1f77b4", "#d62728", "#2ca02c"]
    relative = {name: [v / values[-1] for v in values] for name, values in series.items()}
    low = min(min(v) for v in relative.values())
    high = max(max(v) for v in relative.values())
    low, high = min(low, 0.9), max(high, 1.1)

    def xy(i: int, value: float) -> tuple[float, float]:
        x = pad + (np.log(sizes[i]) - np.log(sizes[0])) / (np.log(sizes[-1]) - np.log(sizes[0])) * (width - 2 * pad)
        return x, height - pad - (value - low) / (high - low) * (height - 2 * pad)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="12"><rect width="100%" height="100%" fill="white"/>',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="black"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>',
             f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle">generated clips (log scale)</text>',
             f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" text-anchor="middle">'
             f'value / value at {sizes[-1]} clips</text>']
    for i, n in enumerate(sizes):
        x, _ = xy(i, low)
        parts.append(f'<text x="{x:.1f}" y="{height - pad + 16}" text-anchor="middle">{n}</text>')
    for tick in np.arange(np.ceil(low / 0.05) * 0.05, high + 1e-9, 0.05):  # round values, a faint grid, 1 dashed
        _, y = xy(0, tick)
        dash = ' stroke-dasharray="4 3"' if abs(tick - 1) < 1e-9 else ""
        parts.append(f'<line x1="{pad}" y1="{y:.1f}" x2="{width - pad}" y2="{y:.1f}" stroke="#ccc"{dash}/>')
        parts.append(f'<text x="{pad - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.2f}</text>')
    for k, (name, values) in enumerate(relative.items()):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in enumerate(values)))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colours[k]}" stroke-width="2"/>')
        parts.append(f'<text x="{width - pad - 120}" y="{pad + 16 * k}" fill="{colours[k]}">{name}</text>')
    path.write_text("\n".join(parts + ["</svg>"]) + "\n")


def growth(models_dir: Path, svg: Path) -> None:
    from audiofidelity import Embedder
    from audiofidelity.metrics import frechet, kad
    from audiofidelity.metrics.extrapolation import extrapolate

    with tempfile.TemporaryDirectory() as tmp:
        write_clips(Path(tmp) / "gen", 400, shift=1.15, noise=0.08, seed=1)
        write_clips(Path(tmp) / "ref", 400, shift=1.0, noise=0.04, seed=2)
        vggish = Embedder("vggish", output="frames", models_dir=models_dir, cache=False)
        start = time.perf_counter()
        frames = {}
        for side in ("gen", "ref"):
            arrays = vggish.embed_folder(Path(tmp) / side).arrays
            frames[side] = [arrays[name] for name in sorted(arrays)]
        print(f"embedding 800 clips: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    reference = np.concatenate(frames["ref"])
    sizes = [60, 100, 200, 400]
    series: dict[str, list[float]] = {"FAD": [], "KAD": [], "FAD∞": []}
    print("| generated clips (frames) | FAD | KAD | FAD∞ (R²) | seconds FAD / KAD / FAD∞ |\n|---|---|---|---|---|")
    for n in sizes:
        rows = np.concatenate(frames["gen"][:n])
        t0 = time.perf_counter()
        fad = frechet.frechet_distance_checked(rows, reference)[0]
        t1 = time.perf_counter()
        kad_value = kad.kernel_audio_distance(rows, reference)[0]
        t2 = time.perf_counter()
        fit = extrapolate(lambda idx: frechet.frechet_distance_checked(rows[idx], reference)[0], len(rows),
                          unit="frames")
        t3 = time.perf_counter()
        for name, value in (("FAD", fad), ("KAD", kad_value), ("FAD∞", fit["value"])):
            series[name].append(value)
        print(f"| {n} ({len(rows)}) | {fad:.4f} | {kad_value:.4f} | {fit['value']:.4f} ({fit['r2']:.3f}) | "
              f"{t1 - t0:.2f} / {t2 - t1:.2f} / {t3 - t2:.2f} |", flush=True)
    svg_plot(sizes, series, svg)
    print(f"plot: {svg}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("cost")
    c.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    g = commands.add_parser("growth")
    g.add_argument("--models-dir", type=Path, required=True)
    g.add_argument("--svg", type=Path, default=Path(__file__).parent / "fad_kad_growth.svg")
    args = parser.parse_args()
    if args.command == "cost":
        cost(args.rows)
    else:
        growth(args.models_dir, args.svg)


if __name__ == "__main__":
    main()
