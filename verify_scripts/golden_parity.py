"""Print how far audiofidelity is from the original audioldm_eval's golden outputs (the README's parity figures).

    python verify_scripts/golden_parity.py --golden ../shared/golden --audio ../shared/fixtures/audio \
        --models-dir MODELS

``--golden`` holds the original's runs on ``--audio`` (``generated/``, ``reference/``, ``unpaired/``) with the
weights ``--models-dir`` was exported from (see ``../shared/golden/README.md`` for the layout). Every figure is
a maximum over files: "rel" is max |ours - theirs| / max |theirs| per file, "abs" an absolute difference.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from common import relative_error

from audiofidelity import evaluate
from audiofidelity.audio import Conditioning, load_conditioned
from audiofidelity.frontends import PAIRED_MEL, fourier_basis, normalised_mel, paired_mel

RUNS = {  # golden run -> (backbone, rate, generated folder)
    "cnn14_16k_paired": ("cnn14", 16000, "generated"), "cnn14_16k_unpaired": ("cnn14", 16000, "unpaired"),
    "cnn14_32k_paired": ("cnn14", 32000, "generated"), "cnn14_32k_unpaired": ("cnn14", 32000, "unpaired"),
    "mert_16k_paired": ("mert", 16000, "generated"), "mert_16k_unpaired": ("mert", 16000, "unpaired"),
    "mert_32k_paired": ("mert", 32000, "generated"),
}
FEATURES = {"cnn14": ("classifier.npz", {"2048": "{side}/2048/{name}", "logits": "{side}/logits/{name}"}),
            "mert": ("mert.npz", {"layer_time_mean": "{side}/layer_time_mean/{name}"})}


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def per_file(features: dict, golden: np.lib.npyio.NpzFile, pattern: str, output: str) -> float:
    """Largest per-file relative error of one output over both sides."""
    worst = 0.0
    for side, data in features.items():
        for name, value in zip(data.files, data.per_file[output]):
            key = pattern.format(side=side[:3], name=name)
            if key in golden.files:
                worst = max(worst, relative_error(value, golden[key]))
    return worst


def model_runs(args) -> None:
    for run, (backbone, rate, folder) in RUNS.items():
        meta = json.loads((args.golden / run / "metrics.json").read_text())
        result = evaluate(args.audio / folder, args.audio / "reference", backbone=backbone, sample_rate=rate,
                          models_dir=args.models_dir, cache=False, progress=False)
        got, want, kid = result.report["metrics"], meta["metrics"], meta["kid_reference"]
        archive, outputs = FEATURES[backbone]
        golden = np.load(args.golden / run / archive)
        line = [f"{output} {per_file(result.sides, golden, pattern, output):.1e}" for output, pattern in outputs.items()]
        line += [f"FD {rel(got['frechet_distance'], want['frechet_distance']):.1e}",
                 f"KID {rel(got['kernel_inception_distance_mean'], kid['kernel_inception_distance_mean']):.1e}",
                 f"IS {abs(got['inception_score_mean'] - want['inception_score_mean']):.1e}"]
        for key, short in (("kullback_leibler_divergence_softmax", "KL"), ("kullback_leibler_divergence_sigmoid", "KLs")):
            if want[key] != -1:
                line.append(f"{short} {abs(got[key] - want[key]):.1e}")
        if "frechet_audio_distance" in got and (args.golden / run / "fad_vggish.npz").exists():
            vggish = np.load(args.golden / run / "fad_vggish.npz")
            line += [f"FAD {rel(got['frechet_audio_distance'], want['frechet_audio_distance']):.1e}",
                     f"vggish {per_file(result.sides, vggish, '{side}/emb/{name}', 'vggish'):.1e}"]
        print(f"{run}: " + ", ".join(line))


def waveforms(args) -> None:
    """Conditioned classifier inputs (and MERT's 24 kHz hop) against the original's, sample for sample."""
    from audiofidelity.resample import resample

    equal = total = 0
    worst = 0.0
    for run in ("cnn14_16k_paired", "cnn14_32k_paired"):
        rate = RUNS[run][1]
        z = np.load(args.golden / run / "classifier.npz")
        for key in (k for k in z.files if "/wave/" in k):
            side, _, name = key.split("/")
            ours = load_conditioned(args.audio / ("generated" if side == "gen" else "reference") / name, rate,
                                    Conditioning())
            theirs = z[key].reshape(-1)
            equal += bool(np.array_equal(ours, theirs))
            total += 1
            worst = max(worst, float(np.max(np.abs(ours - theirs))))
    print(f"conditioned waveforms: {equal}/{total} bit-equal, max abs {worst:.1e}")
    z = np.load(args.golden / "mert_16k_paired" / "mert_wave24k.npz")
    worst = 0.0
    for key in z.files:
        wave16 = load_conditioned(args.audio / "reference" / key.split("/")[-1], 16000, Conditioning())
        worst = max(worst, float(np.max(np.abs(resample(wave16, 16000, 24000, api="transforms") - z[key].reshape(-1)))))
    print(f"MERT 24 kHz waveforms: max abs {worst:.1e}")


def float64_paired_mel(wave: np.ndarray, rate: int) -> np.ndarray:
    """``paired_mel`` with its float32 convolution done in float64: the float32 noise floor of both sides."""
    p = PAIRED_MEL[rate]
    n_fft = p["n_fft"]
    padded = np.pad(np.clip(wave, -1.0, 1.0).astype(np.float64), n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::p["hop_length"]]
    spec = fourier_basis(n_fft, p["win_length"])[:, 0].numpy().astype(np.float64) @ frames.T
    return normalised_mel(np.hypot(spec[:n_fft // 2 + 1], spec[n_fft // 2 + 1:]), sample_rate=rate, n_fft=n_fft,
                          n_mels=p["n_mels"], fmin=p["fmin"], fmax=p["fmax"])


def signal_metrics(args) -> None:
    unpadded = Conditioning(min_samples=0)
    for run in ("cnn14_16k_paired", "cnn14_32k_paired"):
        rate = RUNS[run][1]
        meta = json.loads((args.golden / run / "metrics.json").read_text())
        report = evaluate(args.audio / "generated", args.audio / "reference", sample_rate=rate,
                          metrics=["psnr", "ssim", "lsd"], per_file=True, cache=False, progress=False).report
        values = report["per_file"]
        psnr = max(abs(values[n]["psnr"] - v) for n, v in meta["meta"]["per_file_psnr"].items())
        ssim = max(abs(values[n]["ssim"] - v) for n, v in meta["meta"]["per_file_ssim"].items())
        lsd_ref = meta["lsd_reference"]
        lsd = max(rel(values[n]["lsd"], v["lsd"]) for n, v in lsd_ref["per_file"].items())
        mels = np.load(args.golden / run / "psnr_ssim.npz")
        mel, where, worst = 0.0, "", None
        for key in (k for k in mels.files if k.startswith(("mel_gen/", "mel_target/"))):
            folder = "generated" if key.startswith("mel_gen/") else "reference"
            name = key.split("/", 1)[1]
            want = mels[key]
            wave = load_conditioned(args.audio / folder / name, rate, unpadded)
            ours = paired_mel(wave, sample_rate=rate, **PAIRED_MEL[rate])[:, :want.shape[1]]
            err = float(np.max(np.abs(ours - want)))
            if err > mel:
                mel, where, worst = err, f"{folder}/{name}", (wave, ours, want)
        wave, ours, want = worst
        exact = float64_paired_mel(wave, rate)[:, :want.shape[1]]
        print(f"{run} signal: PSNR per file {psnr:.1e}, SSIM per file {ssim:.1e}, "
              f"means {abs(report['metrics']['psnr'] - meta['metrics']['psnr']):.1e} / "
              f"{abs(report['metrics']['ssim'] - meta['metrics']['ssim']):.1e}; "
              f"LSD per file {lsd:.1e} rel, mean {rel(report['metrics']['lsd'], lsd_ref['lsd']):.1e} rel; "
              f"mel max abs {mel:.1e} ({where}; against a float64 STFT there, "
              f"theirs {np.max(np.abs(want - exact)):.1e}, ours {np.max(np.abs(ours - exact)):.1e})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--golden", type=Path, required=True, help="the original's outputs (../shared/golden)")
    parser.add_argument("--audio", type=Path, required=True, help="the recordings it ran on")
    parser.add_argument("--models-dir", type=Path, required=True, help="artifacts exported from the same weights")
    args = parser.parse_args(argv)
    waveforms(args)
    signal_metrics(args)
    model_runs(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
