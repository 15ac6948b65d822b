#!/usr/bin/env python3
"""audiofidelity against the other evaluation packages, on the same audio and the same weights, in one run (issue 34).

    python benchmarks/compare_peers.py --checkpoints CKPT --models-dir DIR --audioldm-eval-source GIT \
        --torchvggish-source GIT --clips 60 --out results.json --chart peers.svg  # builds the virtualenvs on first use
    python benchmarks/compare_peers.py ... --build-only                  # only build (or check) the virtualenvs

Each row is one fresh process on hard-linked copies of the same folders (``--clips`` pairs of 10-s clips at
44.1 kHz, written by ``bench_signal.write_pairs``), run one after another:

- ``audiofidelity (audioldm_eval set)``: ``python -m audiofidelity eval GEN REF --no-cache --sr 16000`` with the
  metrics audioldm_eval computes below (FAD, FD, KL, KL-sigmoid, IS, PSNR, SSIM), in this interpreter; then the
  same with ``--precision bf16``;
- ``audioldm_eval``: the original at the commit this project's parity tests pin (8dc07ee, from a local git
  snapshot: the index's ``audioldm_eval`` 0.0.3 is an older release), CNN14 16 kHz, ``calculate_metrics`` with
  PSNR/SSIM and ``recalculate=True`` (its ``main`` would reuse feature caches written beside the folders);
- ``audiofidelity (FAD only)``: the same command with ``--metrics fad``;
- ``frechet_audio_distance``: ``FrechetAudioDistance(model_name="vggish")``, its ``score``;
- ``fadtk``: ``fadtk vggish`` as its command line does it (embeddings in ``--fadtk-workers`` spawned processes,
  default 8 as its ``-w``, each loading VGGish).

Per row: whole-process wall seconds (interpreter start to exit: imports, model loading and evaluation, as a user
waits for it) and clips per second (generated + reference files over that wall); the seconds after the imports
(model construction and evaluation: the runners' own split in ``benchmarks/peers/*_run.py``, audiofidelity's
``--verbose`` phases, where the artifacts load within the first); peak RSS of the largest single process
(``os.wait4``'s ``ru_maxrss``, which covers waited-for descendants one at a time) and the sampled (0.2 s) peak of
the whole process tree's summed PSS (workers included; a page they share counts once in all); the 1-minute load
average just before the run; the values computed; ``pip freeze`` of the environment.

Virtualenvs: one per peer under ``~/.cache/audiofidelity-bench/<name>-<pins>``, built once per machine from the
package index into ``<dir>.partial`` and renamed when the import check passes; a peer whose build fails is a
skipped row with the reason. All peers get torch 2.8.0 + torchaudio 2.8.0 (CUDA wheels from the index: about
7 GB per virtualenv, 6 GB of it, torch, the CUDA libraries and triton, hard-linked between the virtualenvs where
util-linux's ``hardlink`` is installed): the pair the golden audioldm_eval runs used, and the last torchaudio whose
``load`` and ``save`` still go through soundfile (from 2.9 they need torchcodec and FFmpeg's shared libraries,
which audioldm_eval and fadtk would then need too). audiofidelity runs in this interpreter's environment.

Weights, offline: every peer runs on the stand-in checkpoints (``--checkpoints``) that the test suite generates,
the same files the exported artifacts in ``--models-dir`` were made from. Each run gets a temporary HOME and
TORCH_HOME holding symbolic links to them where the peer looks:

- audioldm_eval: ``$HOME/.cache/audioldm_eval/ckpt/Cnn14_16k_mAP=0.438.pth`` and ``Cnn14_mAP=0.431.pth`` (read by
  ``feature_extractors/panns/models.py``; the second is only tested for existence, else it runs ``wget``);
- VGGish (all three peers call ``torch.hub.load("harritaylor/torchvggish", "vggish")``):
  ``$TORCH_HOME/hub/harritaylor_torchvggish_master`` is an export of a local git snapshot of that repository
  (``--torchvggish-source``; the PyPI ``torchvggish`` 0.2 is an older, incompatible API), which torch.hub uses as
  its cached checkout when it cannot reach GitHub (its look-up of the default branch fails at once offline, and a
  cached ``master`` checkout is then used; it never updates a cached checkout); the weights are
  ``$TORCH_HOME/hub/checkpoints/vggish-10086976.pth`` and ``vggish_pca_params-970ea276.pth``, where
  ``load_state_dict_from_url`` finds them;
- ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1``: nothing of the Hub is used with these settings.

Run by hand; not part of the tests. The machine is shared and noisy: compare rows of one run, repeat with
``--repeats`` and read the medians.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench_signal import write_pairs

HERE = Path(__file__).resolve().parent
CACHE_ROOT = Path.home() / ".cache" / "audiofidelity-bench"
STAND_INS = Path.home() / ".cache" / "audiofidelity-tests"
AUDIOLDM_EVAL_COMMIT = "8dc07ee"
"""The commit of audioldm_eval that the golden data and the parity tests pin."""
TORCH = ("torch==2.8.0", "torchaudio==2.8.0")
RATE, SECONDS = 44100, 10.0
EVAL_RATE = 16000
AUDIOLDM_EVAL_METRICS = "fad,fd,kl,kl_sigmoid,isc,psnr,ssim"
"""What audioldm_eval's ``calculate_metrics(..., calculate_psnr_ssim=True)`` computes (its KID is commented out)."""
VGGISH_FILES = ("vggish-10086976.pth", "vggish_pca_params-970ea276.pth")
CNN14_FILES = ("Cnn14_16k_mAP=0.438.pth", "Cnn14_mAP=0.431.pth")
PIP_TIMEOUT_S = 1800
PHASE = re.compile(r"audiofidelity: ([^\r\n]+?) took ([0-9.]+) s$", re.MULTILINE)
MIN_FREE_GB = 8


@dataclass(frozen=True)
class Peer:
    """A package evaluated in its own virtualenv.

    ``requirements`` go to one ``pip install`` (``{source}`` stands for a local copy of the package's source),
    ``no_deps`` to a second one with ``--no-deps``; ``check`` is imported to accept the build; ``runner`` is the
    script (``benchmarks/peers/``) run in it.
    """

    name: str
    requirements: tuple[str, ...]
    check: str
    runner: str
    no_deps: tuple[str, ...] = ()


PEERS = (
    Peer("audioldm_eval", (*TORCH, "transformers==4.57.6", "scipy==1.15.3", "scikit-image==0.26.0",
                           "torchlibrosa==0.1.0", "librosa==0.11.0", "resampy", "soundfile", "absl-py", "tqdm"),
         "audioldm_eval", "audioldm_eval_run.py",
         # ssr_eval declares the index's "wave" package, which pulls in mysql-python (Python 2 only): its own
         # imports (torch, librosa, soundfile, scikit-image, torchlibrosa) are above, and so is audioldm_eval's
         no_deps=("ssr_eval==0.0.7", "{source}")),
    Peer("frechet_audio_distance", (*TORCH, "frechet_audio_distance==0.3.4", "resampy", "soundfile"),
         "frechet_audio_distance", "frechet_audio_distance_run.py"),
    Peer("fadtk", (*TORCH, "torchvision==0.23.0", "fadtk==1.1.0", "resampy", "soundfile"), "fadtk",
         "fadtk_run.py"),
)


def git_commit(git_dir: Path) -> str | None:
    """The short HEAD commit of a (bare) git directory, or None where there is none."""
    done = subprocess.run(["git", "--git-dir", str(git_dir), "rev-parse", "--short=7", "HEAD"],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def export_git(git_dir: Path, into: Path) -> None:
    """``git archive HEAD`` of ``git_dir`` unpacked into ``into`` (created)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "--git-dir", str(git_dir), "archive", "HEAD"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)


def cache_key(peer: Peer, source: str | None) -> str:
    """The virtualenv's folder name: the peer, its source commit (if installed from one) and every pin."""
    pins = [r.replace("==", "") for r in (*peer.requirements, *peer.no_deps) if "==" in r]
    return "-".join([peer.name, *([f"src{source}"] if source else []), *pins])


def pip(python: Path, *args: str, timeout: int = PIP_TIMEOUT_S) -> None:
    subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args], check=True, timeout=timeout,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def build_venv(peer: Peer, cache_root: Path, audioldm_eval_source: Path) -> tuple[Path | None, str]:
    """The peer's interpreter (built on first use) and a note, or None and why it could not be built."""
    source = None
    if "{source}" in (*peer.requirements, *peer.no_deps):
        source = git_commit(audioldm_eval_source)
        if source is None:
            return None, (f"no git snapshot of {peer.name} at {audioldm_eval_source} (give --audioldm-eval-source; "
                          f"the index's audioldm_eval 0.0.3 predates commit {AUDIOLDM_EVAL_COMMIT})")
    venv = cache_root / cache_key(peer, source)
    python = venv / "bin" / "python"
    if python.exists():
        return python, f"reused {venv}"
    cache_root.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(cache_root).free / 2**30
    if free_gb < MIN_FREE_GB:
        return None, f"{free_gb:.1f} GB free under {cache_root}; a virtualenv needs about {MIN_FREE_GB} GB"
    partial = venv.with_name(venv.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"building {venv} (torch's CUDA wheels: several minutes and about 5 GB)", file=sys.stderr)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if source is not None:
                export_git(audioldm_eval_source, Path(tmp) / peer.name)
            requirements, no_deps = ([str(Path(tmp) / peer.name) if r == "{source}" else r for r in rs]
                                     for rs in (peer.requirements, peer.no_deps))
            subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(partial)], check=True)
            pip(partial / "bin" / "python", "install", "-q", *requirements)
            if no_deps:
                pip(partial / "bin" / "python", "install", "-q", "--no-deps", *no_deps)
        subprocess.run([str(partial / "bin" / "python"), "-c", f"import {peer.check}"], check=True, timeout=300,
                       capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    except subprocess.CalledProcessError as e:
        return None, f"could not build its virtualenv: {' '.join(map(str, e.cmd[:4]))}... failed: {tail(e.stderr)}"
    except subprocess.TimeoutExpired as e:
        return None, f"could not build its virtualenv: {' '.join(map(str, e.cmd[:4]))}... timed out after {e.timeout} s"
    partial.rename(venv)
    return python, f"built {venv}{share_identical_files(venv, cache_root)}"


def share_identical_files(venv: Path, cache_root: Path) -> str:
    """Hard-link the new virtualenv's files of 1 MB or more that are byte-identical to the other virtualenvs' (the
    same torch, CUDA and triton wheels: about 6 GB each), with util-linux's ``hardlink``; a note of what happened."""
    others = [d / "lib" for d in cache_root.iterdir() if d != venv and (d / "bin" / "python").exists()]
    if not others or shutil.which("hardlink") is None:
        return ""
    try:
        subprocess.run(["hardlink", "--content", "--respect-name", "--minimum-size", "1M", "--quiet",
                        str(venv / "lib"), *map(str, others)], check=True, timeout=900, capture_output=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        return f" (identical files not shared: {e})"
    return " (files identical to the other virtualenvs' hard-linked)"


def tail(text: str | bytes | None, lines: int = 2) -> str:
    """The last error lines of a command's output (pip's last lines only say "see above"), else its last lines."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    text_lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    errors = [line for line in text_lines if "Error" in line or line.startswith("ERROR")]
    return " | ".join((errors or text_lines)[-lines:])


def freeze(python: Path) -> list[str]:
    done = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "freeze", "--all"],
                          capture_output=True, text=True, timeout=120)
    return done.stdout.splitlines()


def offline_home(root: Path, checkpoints: Path, torchvggish_source: Path) -> tuple[dict[str, str], str | None]:
    """A HOME and TORCH_HOME under ``root`` with the stand-in weights where the peers look for them (see the module
    docstring), as environment variables, and why not where something is missing."""
    missing = [name for name in (*CNN14_FILES, *VGGISH_FILES) if not (checkpoints / name).is_file()]
    if missing:
        return {}, f"stand-in checkpoints {', '.join(missing)} not in {checkpoints} (give --checkpoints)"
    if git_commit(torchvggish_source) is None:
        return {}, (f"no git snapshot of harritaylor/torchvggish at {torchvggish_source}: torch.hub needs its code "
                    "(hubconf.py), which no package on the index carries (give --torchvggish-source)")
    home, torch_home = root / "home", root / "torch"
    ckpt = home / ".cache" / "audioldm_eval" / "ckpt"
    ckpt.mkdir(parents=True)
    for name in CNN14_FILES:
        (ckpt / name).symlink_to(checkpoints / name)
    hub = torch_home / "hub"
    export_git(torchvggish_source, hub / "harritaylor_torchvggish_master")
    (hub / "checkpoints").mkdir()
    for name in VGGISH_FILES:
        (hub / "checkpoints" / name).symlink_to(checkpoints / name)
    (hub / "trusted_list").write_text("harritaylor_torchvggish\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(HOME=str(home), TORCH_HOME=str(torch_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env, None


def link_folders(folders: list[Path], into: Path) -> list[Path]:
    """Hard-linked copies of ``folders`` under ``into`` (same bytes, nothing copied), so what one tool writes beside
    or inside them (caches, converted audio, reports) never reaches the next."""
    copies = []
    for folder in folders:
        copy = into / folder.name
        copy.mkdir(parents=True)
        for path in sorted(folder.iterdir()):
            os.link(path, copy / path.name)
        copies.append(copy)
    return copies


def tree_pss(root: int) -> int:
    """Bytes of memory ``root`` and its descendants hold now: the sum of their proportional set sizes (from /proc;
    a page shared by forked workers counts once in all, where summed RSS would count it in every process)."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    parents[int(entry.name)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid and child not in tree]
        tree.update(children)
        frontier += children
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                total += next(int(line.split()[1]) for line in rollup if line.startswith("Pss:")) * 1024
        except (OSError, IndexError, ValueError, StopIteration):
            continue
    return total


def measure(command: list[str], env: dict[str, str], cwd: Path, timeout_s: float) -> dict:
    """Run ``command`` once: wall seconds, the largest process's peak RSS, the tree's sampled peak PSS, the load
    average before, the exit status, and its last JSON line on stdout (the runners' report), if any."""
    load = os.getloadavg()[0]
    peak_tree = [0]
    stop = threading.Event()
    with open(cwd / "stdout.txt", "w") as out, open(cwd / "stderr.txt", "w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=cwd, start_new_session=True)

        def sample() -> None:
            while not stop.wait(0.2):
                peak_tree[0] = max(peak_tree[0], tree_pss(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        killer = threading.Timer(timeout_s, lambda: os.killpg(proc.pid, 9))
        killer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        killer.cancel()
        stop.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    report = None
    for line in reversed((cwd / "stdout.txt").read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            try:
                report = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
    return {"returncode": proc.returncode, "wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024,
            "peak_tree_pss_mb": peak_tree[0] / 2**20, "load_before": round(load, 2), "report": report,
            "stderr_tail": tail((cwd / "stderr.txt").read_text(errors="replace"), 3) if proc.returncode else None}


def finite(values: dict) -> dict:
    """NaN/inf as None (JSON has no NaN)."""
    return {k: (v if not isinstance(v, float) or v == v and abs(v) != float("inf") else None)
            for k, v in values.items()}


@dataclass
class Row:
    """One line of the table: how to run it (``command`` with GEN and REF placeholders), or why it cannot run."""

    name: str
    python: Path | None
    command: list[str]
    note: str
    values_from: str  # "runner": the runner's JSON line; "report": audiofidelity's --json file
    skipped: str | None = None


def audiofidelity_row(name: str, metrics: str, models_dir: Path, *extra: str) -> Row:
    command = [sys.executable, "-m", "audiofidelity", "eval", "GEN", "REF", "--json", "REPORT", "--no-cache", "-v",
               "--sr", str(EVAL_RATE), "--models-dir", str(models_dir), "--metrics", metrics, *extra]
    return Row(name, Path(sys.executable), command, f"this interpreter ({sys.executable})", "report")


def peer_row(peer: Peer, args: argparse.Namespace) -> Row:
    python, note = build_venv(peer, args.cache_root, args.audioldm_eval_source)
    if python is None:
        return Row(peer.name, None, [], note, "runner", skipped=note)
    extra = ["--workers", str(args.fadtk_workers)] if peer.name == "fadtk" else []
    return Row(peer.name, python, [str(python), str(HERE / "peers" / peer.runner), "GEN", "REF", *extra], note,
               "runner")


def run_row(row: Row, folders: list[Path], env: dict[str, str], work: Path, timeout_s: float) -> dict:
    """One run of ``row`` on fresh hard-linked copies of ``folders``."""
    work.mkdir(parents=True)
    gen, ref = link_folders(folders, work)
    report_path = work / "report.json"
    command = [str(gen) if a == "GEN" else str(ref) if a == "REF" else str(report_path) if a == "REPORT" else a
               for a in row.command]
    run = measure(command, env, work, timeout_s)
    runner = run.pop("report")
    if row.values_from == "report" and report_path.exists():
        run["values"] = finite(json.loads(report_path.read_text())["metrics"])
        # --verbose logs each phase ("generated features (N files) took S s"; the artifacts load in the first)
        phases = {m[1]: float(m[2]) for m in PHASE.finditer((work / "stderr.txt").read_text(errors="replace"))}
        run["runner"] = {"phases_s": phases, "after_imports_s": sum(phases.values()) if phases else None}
    elif runner is not None:
        run["values"] = finite(runner.pop("values"))
        run["runner"] = {**runner, "after_imports_s": (runner.get("model_s") or 0.0) + runner["eval_s"]}
    if run["returncode"] != 0 or "values" not in run:
        run["error"] = (f"exit status {run['returncode']}: {run.pop('stderr_tail') or 'no values reported'}"
                        if run["returncode"] else "no values reported")
    run.pop("stderr_tail", None)
    return run


def summarise(runs: list[dict], clips: int) -> dict:
    """Medians over the row's successful runs."""
    good = [r for r in runs if "error" not in r]
    if not good:
        return {"status": "failed", "reason": runs[-1]["error"]}
    wall = statistics.median(r["wall_s"] for r in good)
    inner = [r["runner"]["after_imports_s"] for r in good if (r.get("runner") or {}).get("after_imports_s")]
    return {"status": "ok", "wall_s": wall, "clips_per_s": 2 * clips / wall,
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in good),
            "peak_tree_pss_mb": statistics.median(r["peak_tree_pss_mb"] for r in good),
            "load_before": [r["load_before"] for r in runs],
            "after_imports_s": statistics.median(inner) if inner else None,
            "values": good[-1]["values"]}


SHOWN = {"frechet_audio_distance": "FAD", "frechet_distance": "FD", "fad": "FAD", "fd": "FD",
         "kullback_leibler_divergence_softmax": "KL", "kullback_leibler_divergence_sigmoid": "KL-sig",
         "kl": "KL", "kl_sigmoid": "KL-sig", "inception_score_mean": "IS", "isc": "IS", "psnr": "PSNR",
         "ssim": "SSIM"}


def values_text(values: dict) -> str:
    shown = {}
    for key, value in values.items():
        label = SHOWN.get(key)
        if label and label not in shown and isinstance(value, (int, float)):
            shown[label] = f"{label} {value:.6g}"
    return ", ".join(shown.values())


def table(rows: dict[str, dict]) -> str:
    lines = ["| row | wall s | clips/s | after imports s | peak RSS MB (largest process) | peak PSS MB (tree) | "
             "load before | values |", "|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        if row["status"] != "ok":
            lines.append(f"| {name} | {row['status']}: {row['reason']} | | | | | | |")
            continue
        inner = f"{row['after_imports_s']:.1f}" if row["after_imports_s"] is not None else "—"
        lines.append(f"| {name} | {row['wall_s']:.1f} | {row['clips_per_s']:.2f} | {inner} | "
                     f"{row['peak_rss_mb']:.0f} | {row['peak_tree_pss_mb']:.0f} | "
                     f"{', '.join(f'{x:.2f}' for x in row['load_before'])} | {values_text(row['values'])} |")
    return "\n".join(lines)


def machine() -> dict:
    return {"processor": platform.processor() or platform.machine(), "cores": len(os.sched_getaffinity(0)),
            "python": platform.python_version(), "platform": platform.platform()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=60, help="pairs of 10-s 44.1 kHz clips (default 60)")
    parser.add_argument("--out", type=Path, help="write every run and the summary as JSON here")
    parser.add_argument("--checkpoints", type=Path, required=True,
                        help="the checkpoints in their upstream file names (the test suite's stand-ins: "
                             f"{STAND_INS}/checkpoints-<key>)")
    parser.add_argument("--models-dir", type=Path, required=True,
                        help="audiofidelity's exported artifacts, made from those checkpoints")
    parser.add_argument("--audioldm-eval-source", type=Path, required=True,
                        help="git directory of a clone of haoheliu/audioldm_eval (installed from its HEAD)")
    parser.add_argument("--torchvggish-source", type=Path, required=True,
                        help="git directory of a clone of harritaylor/torchvggish (torch.hub's code for VGGish)")
    parser.add_argument("--chart", type=Path, help="also draw clips per second and peak memory per row (.svg or .png)")
    parser.add_argument("--cache-root", type=Path, default=CACHE_ROOT, help="where the peers' virtualenvs are kept")
    parser.add_argument("--peers", default=",".join(p.name for p in PEERS),
                        help="comma-separated subset of the peers (default: all)")
    parser.add_argument("--fadtk-workers", type=int, default=8, help="fadtk's -w (default 8, its own)")
    parser.add_argument("--repeats", type=int, default=1, help="run every row this many times, in rounds")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds to wait before each run")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one run may take")
    parser.add_argument("--build-only", action="store_true", help="build (or find) the virtualenvs and stop")
    args = parser.parse_args()
    names = args.peers.split(",")
    unknown = sorted(set(names) - {p.name for p in PEERS})
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(p.name for p in PEERS)}")
    peers = [p for p in PEERS if p.name in names]
    if args.build_only:
        for peer in peers:
            python, note = build_venv(peer, args.cache_root, args.audioldm_eval_source)
            print(f"{peer.name}: {'ok' if python else 'not built'}: {note}")
        return
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = [audiofidelity_row("audiofidelity (audioldm_eval set)", AUDIOLDM_EVAL_METRICS, args.models_dir)]
    rows += [audiofidelity_row("audiofidelity (audioldm_eval set, bf16)", AUDIOLDM_EVAL_METRICS, args.models_dir,
                               "--precision", "bf16")]
    rows += [peer_row(p, args) for p in peers if p.name == "audioldm_eval"]
    rows += [audiofidelity_row("audiofidelity (FAD only)", "fad", args.models_dir)]
    rows += [peer_row(p, args) for p in peers if p.name != "audioldm_eval"]
    with tempfile.TemporaryDirectory() as tmp:
        env, missing = offline_home(Path(tmp), args.checkpoints, args.torchvggish_source)
        for row in rows:
            if missing and row.python != Path(sys.executable) and not row.skipped:
                row.skipped = f"not runnable offline: {missing}"
        audio = Path(tmp) / "audio"
        audio.mkdir()
        print(f"writing {args.clips} pairs of {SECONDS:.0f}-s clips at {RATE} Hz", file=sys.stderr)
        folders = list(write_pairs(audio, args.clips, seconds=SECONDS, rate=RATE))
        runs: dict[str, list[dict]] = {row.name: [] for row in rows}
        env = env or {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        for repeat in range(args.repeats):
            for i, row in enumerate(rows):
                if row.skipped:
                    continue
                time.sleep(args.pause)
                print(f"run {repeat + 1}/{args.repeats}: {row.name}", file=sys.stderr)
                runs[row.name].append(run_row(row, folders, env, Path(tmp) / "runs" / f"{repeat}-{i}", args.timeout))
    summary = {row.name: ({"status": "skipped", "reason": row.skipped} if row.skipped
                          else summarise(runs[row.name], args.clips)) for row in rows}
    print(f"{args.clips} pairs of {SECONDS:.0f}-s clips at {RATE} Hz, evaluated at {EVAL_RATE} Hz; "
          f"{machine()['processor']}, {machine()['cores']} cores; medians of {args.repeats} run(s)\n")
    print(table(summary))
    if args.out is not None:
        result = {"clips": args.clips, "seconds": SECONDS, "rate": RATE, "machine": machine(),
                  "checkpoints": str(args.checkpoints), "models_dir": str(args.models_dir),
                  "rows": {row.name: {**summary[row.name], "command": row.command, "environment": row.note,
                                      "runs": runs[row.name],
                                      "pip_freeze": freeze(row.python) if row.python else None}
                           for row in rows}}
        tmp_out = args.out.with_name(args.out.name + ".tmp")
        tmp_out.write_text(json.dumps(result, indent=1) + "\n")
        tmp_out.replace(args.out)
    if args.chart is not None:
        chart(summary, args.clips, args.chart, args.repeats)


def chart(rows: dict[str, dict], clips: int, path: Path, repeats: int = 1) -> None:
    """Two panels, one bar per row that ran: clips per second (whole process) and peak memory (the tree's PSS)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ran = {name: row for name, row in rows.items() if row["status"] == "ok"}
    names = list(ran)[::-1]  # the first row on top
    ours = ["#1f77b4" if name.startswith("audiofidelity") else "#9e9e9e" for name in names]
    fig, (speed, memory) = plt.subplots(1, 2, figsize=(10, 0.5 * len(names) + 1.4), sharey=True)
    speed.barh(names, [ran[n]["clips_per_s"] for n in names], color=ours)
    memory.barh(names, [ran[n]["peak_tree_pss_mb"] / 1024 for n in names], color=ours)
    for axis, key, fmt in ((speed, "clips_per_s", "{:.2f}"), (memory, "peak_tree_pss_mb", "{:.1f} GB")):
        for y, name in enumerate(names):
            value = ran[name][key] / (1024 if key == "peak_tree_pss_mb" else 1)
            axis.annotate(fmt.format(value), (value, y), xytext=(3, 0), textcoords="offset points", va="center",
                          fontsize=8)
        axis.spines[["top", "right"]].set_visible(False)
        axis.margins(x=0.2)
    speed.set_xlabel("clips per second (higher is better)")
    memory.set_xlabel("peak memory, process tree PSS (lower is better)")
    runs = "one run" if repeats == 1 else f"medians of {repeats} runs"
    fig.suptitle(f"{clips} + {clips} ten-second clips at 44.1 kHz, {runs}, same weights", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
