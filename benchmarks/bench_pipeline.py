#!/usr/bin/env python3
"""Speed and memory of the evaluation pipeline (issue 8's benchmarks). Run by hand; not part of the tests.

    python benchmarks/bench_pipeline.py model --models-dir DIR          # (a) CNN14 vs FLOPs and a conv roofline
    python benchmarks/bench_pipeline.py e2e --models-dir DIR --clips 500 # (b) eval, all metrics, wall + peak RSS
    python benchmarks/bench_pipeline.py cold --models-dir DIR           # (c) import and tiny-eval time
    python benchmarks/bench_pipeline.py cached --models-dir DIR         # (d) re-runs with everything cached
    python benchmarks/bench_pipeline.py batching --models-dir DIR       # (e) one clip per pass vs clips batched

Every ratio is against a baseline measured in the same run: (a) a large 3x3 convolution in torch
(the conv roofline) and CNN14's 40.08 GFLOP per 10-s clip; (b) the model stages alone on the same
clips (the inputs precomputed), so the ratio is what decoding, preprocessing and the metrics add;
(c) ``import torch`` alone, the artifact load time and the clips' forward passes; (d) ``import audiofidelity``
and the metric phase of the same run; (e) the same clips run in cross-clip batches. The machine is shared and noisy: medians.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_signal import write_pairs

CNN14_GFLOP_PER_10S = 40.08


def machine() -> str:
    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def conv_roofline(repeats: int = 5) -> float:
    """GFLOP/s of a large 3x3 convolution (batch 8, 128 -> 128 channels, 128 x 64), the shape of CNN14's body."""
    import torch

    x, conv = torch.randn(8, 128, 128, 64), torch.nn.Conv2d(128, 128, 3, padding=1, bias=False)
    flops = 2 * 8 * 128 * 128 * 9 * 128 * 64
    with torch.inference_mode():
        conv(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            conv(x)
            times.append(time.perf_counter() - start)
    return flops / statistics.median(times) / 1e9


def model_stage(models_dir: Path, batch_sizes=(1, 4, 8, 16), repeats: int = 3, bf16: bool = False) -> None:
    import torch

    from audiofidelity.artifacts import load
    from audiofidelity.models import apply_frontend

    artifact = load("cnn14-16k", directory=models_dir)
    rng = np.random.default_rng(0)
    clip = apply_frontend((0.1 * rng.standard_normal(160000)).astype(np.float32), artifact.manifest.frontend)
    roof = conv_roofline()
    print(f"machine: {machine()}")
    print(f"conv roofline (3x3, 128ch): {roof:.0f} GFLOP/s")
    from audiofidelity.runner import _precision

    fp32 = {}
    for precision in ("fp32",) + (("bf16",) if bf16 else ()):
        with torch.inference_mode(), _precision(precision, "cpu"):
            for batch in batch_sizes:
                x = torch.from_numpy(np.repeat(clip, batch, axis=0))
                artifact.program(x)
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    artifact.program(x)
                    times.append(time.perf_counter() - start)
                per_clip = statistics.median(times) / batch
                rate = CNN14_GFLOP_PER_10S / per_clip
                fp32.setdefault(batch, per_clip)
                print(f"{precision} batch {batch:2d}: {per_clip:.3f} s per 10-s clip, {rate:.0f} GFLOP/s = "
                      f"{rate / roof:.0%} of the conv roofline; {fp32[batch] / per_clip:.2f}x fp32")


def end_to_end(models_dir: Path, clips: int, workers: int, baseline: bool = True, rate: int | None = None,
               metrics: str | None = None) -> None:
    """``eval`` (default: FAD + FD/KL/IS/KID + PSNR/SSIM/LSD; ``metrics``: a comma-separated selection) on ``clips``
    paired 10-s clips (at ``rate``, default mixed rates), in a fresh process (peak RSS is the process's own),
    against the model stages alone and the pair metrics alone on the same clips, in the same run
    (``baseline=False`` skips those: for peak-RSS runs at large N)."""
    with tempfile.TemporaryDirectory() as tmp:
        gen, ref = write_pairs(Path(tmp), clips, rate=rate)
        done = subprocess.run([sys.executable, __file__, "e2e-run", str(gen), str(ref), "--models-dir",
                               str(models_dir), "--workers", str(workers), *(["--metrics", metrics] if metrics else [])],
                              capture_output=True, text=True, check=True)
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        models = model_stages_alone(models_dir, [gen, ref]) if baseline else None
        pairs = pair_metrics_alone(gen, ref, measured["pair_metrics"]) if baseline and measured["pair_metrics"] \
            else None
    print(f"machine: {machine()}, load average before the run {measured['load']}")
    print(f"{clips} pairs of 10-s clips at {rate or 'mixed rates'}, metrics {metrics or 'default'}, workers {workers}: "
          f"eval {measured['wall']:.1f} s ({measured['wall'] / (2 * clips):.3f} s per clip), "
          f"peak RSS {measured['rss_mb']:.0f} MB")
    for phase in measured["phases"]:
        heap = (f"; at its end the heap holds {phase['heap_used_mb']:.0f} MB in use, {phase['heap_free_mb']:.0f} MB "
                f"free, {phase['mmapped_mb']:.0f} MB mmapped") if "heap_used_mb" in phase else ""
        print(f"  {phase['phase']:<45} peak RSS in this phase {phase['rss_mb']:6.0f} MB{heap}")
    if models is not None:
        print(f"model stages alone (CNN14 + VGGish on precomputed inputs): {models:.1f} s; "
              f"eval / models = {measured['wall'] / models:.2f}")
    if pairs is not None and models is not None:
        print(f"pair metrics alone ({', '.join(measured['pair_metrics'])}, serial): {pairs:.1f} s; "
              f"eval / (models + pairs) = {measured['wall'] / (models + pairs):.2f}")


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2``."""

    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


def heap_mb() -> dict[str, float]:
    """glibc's heap in MB (all arenas): in use, free but held (fragmentation), and mmapped blocks; {} elsewhere."""
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return {}
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return {"heap_used_mb": info.uordblks / 2**20, "heap_free_mb": info.fordblks / 2**20,
            "mmapped_mb": info.hblkhd / 2**20}


def run_and_sample(generated: Path, reference: Path, models_dir: Path, workers: int, metrics: str | None) -> None:
    """One ``evaluate`` in this process; print JSON with its wall time, peak RSS, and each logged phase
    (``... took N s``) with the highest RSS sampled (every 50 ms) since the previous phase ended."""
    import logging
    import resource
    import threading

    from audiofidelity import evaluate

    page = os.sysconf("SC_PAGE_SIZE")
    peak = [0]
    phases: list[dict] = []
    stop = threading.Event()

    def sample() -> None:
        with open("/proc/self/statm") as statm:
            peak[0] = max(peak[0], int(statm.read().split()[1]) * page)

    def keep_sampling() -> None:
        while not stop.wait(0.05):
            sample()

    class PhaseLog(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if " took " in record.getMessage():
                sample()  # a phase shorter than the sampling interval still gets its RSS
                phases.append({"phase": record.getMessage(), "rss_mb": peak[0] / 2**20, **heap_mb()})
                peak[0] = 0

    logger = logging.getLogger("audiofidelity")
    logger.setLevel(logging.INFO)
    logger.addHandler(PhaseLog())
    threading.Thread(target=keep_sampling, daemon=True).start()
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = evaluate(generated, reference, models_dir=models_dir, cache=False, progress=False, workers=workers,
                      metrics=metrics.split(",") if metrics else None)
    wall = time.perf_counter() - start
    stop.set()
    pair_metrics = [m for m in ("psnr", "ssim", "lsd") if m in result.report["metrics"]]
    print(json.dumps({"wall": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "phases": phases, "load": round(load, 2), "pair_metrics": pair_metrics}))


def model_stages_alone(models_dir: Path, folders: list[Path]) -> float:
    """Seconds the CNN14 and VGGish programs take on every clip's inputs, computed beforehand."""
    from audiofidelity.audio import Conditioning
    from audiofidelity.evaluate import Evaluator
    from audiofidelity.features import compute_inputs

    evaluator = Evaluator(metrics=["fd", "fad"], models_dir=models_dir, cache=False, progress=False)
    inputs = [st.input for st in evaluator.stages]
    per_stage: list[list[np.ndarray]] = [[] for _ in evaluator.stages]
    for folder in folders:
        for path in sorted(folder.iterdir()):
            made, _, _ = compute_inputs(path, inputs, range(len(inputs)), Conditioning())
            for i, x in made.items():
                per_stage[i].append(x)
    start = time.perf_counter()
    for stage, xs in zip(evaluator.stages, per_stage):
        for k in range(0, len(xs), 16):
            stage.runner.run(xs[k:k + 16])
    return time.perf_counter() - start


def pair_metrics_alone(generated: Path, reference: Path, metrics: list[str]) -> float:
    """Seconds ``compute_pairs`` takes on the folders' pairs (decoding both sides included), in this process."""
    from audiofidelity.audio import Conditioning
    from audiofidelity.paired import compute_pairs

    names = sorted(p.name for p in generated.iterdir())
    compute_pairs(generated, reference, names[:1], sample_rate=16000, metrics=metrics, conditioning=Conditioning())
    start = time.perf_counter()
    compute_pairs(generated, reference, names, sample_rate=16000, metrics=metrics, conditioning=Conditioning())
    return time.perf_counter() - start


def cold_start(models_dir: Path) -> None:
    def seconds(code: str) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    torch_import = seconds("import torch")
    package_import = seconds("import audiofidelity")
    load = seconds(f"from audiofidelity.artifacts import load\n"
                   f"load('cnn14-16k', directory={str(models_dir)!r}); load('vggish', directory={str(models_dir)!r})")
    with tempfile.TemporaryDirectory() as tmp:
        gen, ref = write_pairs(Path(tmp), 2)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "audiofidelity", "eval", str(gen), str(ref), "--models-dir",
                            str(models_dir), "--quiet", "--no-cache"], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        tiny = statistics.median(times)
        compute = statistics.median(model_stages_alone(models_dir, [gen, ref]) for _ in range(3))
    print(f"machine: {machine()}")
    print(f"import torch {torch_import:.2f} s; import audiofidelity {package_import:.2f} s "
          f"({package_import / torch_import:.2f}x torch)")
    print(f"load cnn14-16k + vggish (fresh process, incl. import torch) {load:.2f} s; eval on two 2-clip folders "
          f"{tiny:.2f} s ({tiny - load:+.2f} s over loading, of which the 4 clips' forward passes alone take "
          f"{compute:.2f} s: {tiny - load - compute:+.2f} s beyond loading and model compute)")


def _median_run(args: list[str], env: dict[str, str], repeats: int = 3) -> tuple[float, str]:
    """Median wall seconds of ``args`` in a fresh process, and the stderr of the last run."""
    times, err = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(args, check=True, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - start)
        err = done.stderr
    return statistics.median(times), err


def cached_reruns(models_dir: Path) -> None:
    """A default eval on 24 + 24 clips with every feature and pair value cached, against ``import
    audiofidelity`` and the run's own metric phase; and ``eval-logs`` on 10 unchanged folders."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        gen, ref = write_pairs(root, 24, seconds=5.0)
        env = {**os.environ, "AUDIOFIDELITY_CACHE": str(root / "cache")}
        run = [sys.executable, "-m", "audiofidelity", "eval", str(gen), str(ref), "--models-dir", str(models_dir),
               "--json", str(root / "r.json"), "-v"]
        subprocess.run(run, check=True, capture_output=True, env=env)  # fills the cache
        rerun, log = _median_run(run, env)
        metric_phase = sum(float(line.split(" took ")[1].split()[0]) for line in log.splitlines()
                           if " took " in line and (line.split(": ", 1)[1].startswith(("metrics", "pair metrics"))))
        package_import, _ = _median_run([sys.executable, "-c", "import audiofidelity"], env)
        logs = root / "logs"
        for step in range(10):
            folder = logs / f"val_{(step + 1) * 1000}"
            folder.mkdir(parents=True)
            for path in sorted(gen.iterdir())[step * 2:step * 2 + 4]:
                os.link(path, folder / path.name)
        eval_logs = [sys.executable, "-m", "audiofidelity", "eval-logs", str(logs), "--reference", str(ref),
                     "--models-dir", str(models_dir), "--quiet"]
        subprocess.run(eval_logs, check=True, capture_output=True, env=env)
        unchanged, _ = _median_run(eval_logs, env)
    print(f"machine: {machine()}")
    print(f"cached default eval, 24 + 24 clips: {rerun:.2f} s; import audiofidelity {package_import:.2f} s; its "
          f"metric and pair phases {metric_phase:.1f} s; overhead {rerun - package_import - metric_phase:+.2f} s")
    print(f"eval-logs, 10 unchanged folders: {unchanged:.2f} s")


def batching_cost(models_dir: Path, clips: int = 8, repeats: int = 3) -> None:
    """One clip per forward pass (what the runner does) against the same clips batched across clips."""
    import torch

    from audiofidelity.artifacts import load
    from audiofidelity.models import apply_frontend

    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(160000)).astype(np.float32) for _ in range(clips)]
    print(f"machine: {machine()}")
    for name in ("cnn14-16k", "vggish"):
        artifact = load(name, directory=models_dir)
        inputs = [apply_frontend(w, artifact.manifest.frontend) for w in waves]
        items = np.concatenate(inputs)
        with torch.inference_mode():
            def per_clip():
                for x in inputs:
                    for k in range(0, len(x), 8):
                        artifact.program(torch.from_numpy(x[k:k + 8]))

            def batched():
                for k in range(0, len(items), 8):
                    artifact.program(torch.from_numpy(items[k:k + 8]))
            per_clip(), batched()
            timing = {}
            for label, fn in (("one clip per pass", per_clip), ("batched across clips", batched)):
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - start)
                timing[label] = statistics.median(times) / clips
        ratio = timing["one clip per pass"] / timing["batched across clips"]
        print(f"{name}: {', '.join(f'{k} {v:.3f} s' for k, v in timing.items())} per 10-s clip "
              f"(batch 8); ratio {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("model", "e2e", "cold", "cached", "batching", "e2e-run"))
    parser.add_argument("folders", nargs="*", type=Path, help="e2e-run (internal): the generated and reference folders")
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--clips", type=int, default=50, help="e2e: pairs of clips")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="e2e: worker processes")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="model: bf16 also times bf16 autocast against fp32, in the same run")
    parser.add_argument("--rate", type=int, help="e2e: every clip at this rate (default: mixed rates)")
    parser.add_argument("--metrics", help="e2e: eval's --metrics (default: its default set)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="e2e: skip timing the model stages alone (peak-RSS runs at large N)")
    args = parser.parse_args()
    if args.what == "model":
        model_stage(args.models_dir, bf16=args.precision == "bf16")
    elif args.what == "e2e-run":
        run_and_sample(*args.folders, args.models_dir, args.workers, args.metrics)
    elif args.what == "e2e":
        end_to_end(args.models_dir, args.clips, args.workers, baseline=not args.no_baseline, rate=args.rate,
                   metrics=args.metrics)
    elif args.what == "cached":
        cached_reruns(args.models_dir)
    elif args.what == "batching":
        batching_cost(args.models_dir)
    else:
        cold_start(args.models_dir)


if __name__ == "__main__":
    main()
