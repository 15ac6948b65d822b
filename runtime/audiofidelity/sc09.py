"""The SC09 benchmark (SaShiMi): FID, IS, mIS, AM and NDB of generated spoken digits, from the exported classifier.

Flow, as ``test_speech_commands.py`` runs it: the training set is ``TRAIN/<zero..nine>/*.wav`` in class order,
each folder in natural order; the generated set is ``GEN/*.wav`` in natural order. Each file is decoded,
mixed to mono and resampled to 16 kHz with resampy's ``kaiser_best`` (``librosa.load(path, 16000)``), cut or
zero-padded at the end to 1 s, turned into the 32x32 mel (``models.sc09.sc09_mel``), and classified in batches of
128 in that order (the original's ``DataLoader``: the same batches, so the same float32 sums). Metrics:
``metrics/sc09.py``. ``save_training`` keeps what they need from the training set (probabilities, activations,
file order, the artifact's sha256) so ``sc09 GEN --train train.npz`` skips the training clips.

``threshold=True`` is the benchmark's option for autoregressive models whose samples are saved in likelihood
order: its search over (lower, upper) keeps, through a bug in its loop, the last pair it tries, so it ends up
dropping the first 40% and the last 5% of the files in that order. Here that cut is applied to the whole
generated set (the original applies it to a random, unseeded half).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .artifacts import LoadedArtifact, load
from .audio import Conditioning, condition, conditioning_bytes, load_audio, validate_audio
from .memory import default_budget
from .errors import InputFolderError, InvalidAudioError, MetricUnavailableError, StatsFileError, literal
from .models import apply_frontend, nominal_item_shape, nominal_pass_scale
from .metrics import sc09 as metrics
from .outputs import atomic_write, npz
from .runner import EmbeddingRunner
from .stats import read_arrays

ARTIFACT = "sc09-resnext"
CLASSES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CONDITIONING = Conditioning(channel="mean", remove_dc=False, resampler="resampy", min_samples=0, min_duration=0.0)
"""``librosa.load(path, 16000)``: channel mean, resampy ``kaiser_best``, nothing removed or padded."""
BATCH = 128
THRESHOLD = (0.4, 0.95)
STATS_FORMAT = 1


def natural_key(name: str) -> list:
    """``natsort``'s order for plain file names: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def training_files(folder: Path) -> list[Path]:
    """``TRAIN/<class>/*.wav`` in class order, natural order inside each class folder."""
    missing = [c for c in CLASSES if not (folder / c).is_dir()]
    if missing:
        raise InputFolderError(f"{folder} is not an SC09 training folder: no class folder(s) {', '.join(missing)} "
                               f"(expected {folder}/zero ... {folder}/nine holding .wav files)")
    return [p for c in CLASSES for p in sorted((folder / c).glob("*.wav"), key=lambda p: natural_key(p.name))]


def generated_files(folder: Path) -> list[Path]:
    """``GEN/*.wav`` in natural order."""
    if not folder.is_dir():
        raise InputFolderError(f"generated folder {folder} does not exist or is not a folder")
    files = sorted(folder.glob("*.wav"), key=lambda p: natural_key(p.name))
    if not files:
        raise InputFolderError(f"no .wav files in {folder}")
    return files


@dataclass
class Classified:
    """One set's classifier outputs in file order, and the files skipped or cut/padded to 1 s."""

    files: list[str] = field(default_factory=list)
    probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 10), np.float32))
    activations: np.ndarray = field(default_factory=lambda: np.zeros((0, 1024), np.float32))
    problems: list[dict] = field(default_factory=list)
    fixed_length: dict[str, int] = field(default_factory=lambda: {"cut": 0, "padded": 0})


def classify(files: list[Path], root: Path, artifact: LoadedArtifact) -> Classified:
    """Decode, condition, frontend and classify ``files`` (names relative to ``root``) in batches of 128. An empty,
    unreadable or non-finite file is skipped and named; a silent one is classified, as the benchmark does."""
    out = Classified()
    inputs = []
    samples = artifact.manifest.frontend["samples"]
    budget = default_budget()
    for path in files:
        name = path.relative_to(root).as_posix()
        try:
            audio, rate = load_audio(path, memory_budget=budget, cost=lambda frames, channels, rate: conditioning_bytes(
                frames, rate, artifact.manifest.sample_rate, CONDITIONING))
            validate_audio(audio, rate, allow_silent=True)  # a silent clip is a sample, as in the benchmark
            wave = condition(audio, rate, artifact.manifest.sample_rate, CONDITIONING)
        except InvalidAudioError as exc:
            out.problems.append({"file": name, "reason": str(exc), "action": "skipped"})
            continue
        if len(wave) != samples:
            out.fixed_length["cut" if len(wave) > samples else "padded"] += 1
        inputs.append(apply_frontend(wave, artifact.manifest.frontend))
        out.files.append(name)
    if inputs:
        import torch  # on first use: importing the CLI loads no torch

        nominal = nominal_item_shape(artifact.manifest.frontend)
        runner = EmbeddingRunner(artifact, batch_size=BATCH, nominal_shape=nominal,
                                 nominal_scale=nominal_pass_scale(artifact.manifest.frontend))
        result = runner.run(inputs, ("logits", "1024"))
        out.probs = torch.softmax(torch.from_numpy(np.stack(result["logits"])), dim=1).numpy()  # as the original
        out.activations = np.stack(result["1024"])
    return out


def _settings(artifact: LoadedArtifact) -> dict:
    """What a training file's numbers depend on: the artifact's bytes, its frontend, the conditioning."""
    return {"format": STATS_FORMAT, "artifact": artifact.manifest.sha256, "frontend": artifact.manifest.frontend,
            "conditioning": CONDITIONING.as_dict()}


def save_training(path: Path, train: Classified, artifact: LoadedArtifact, *, option: str = "SC09 training file"
                  ) -> None:
    """What the metrics need from the training set, with the artifact's sha256 and the files used (written
    atomically, under exactly this name)."""
    atomic_write(path, npz({"probs": train.probs, "activations": train.activations, "files": np.array(train.files),
                            "settings": np.array(json.dumps(_settings(artifact)))}), option=option)


def load_training(path: Path, artifact: LoadedArtifact) -> Classified:
    """A training-set file from ``save_training``; refused when made with other bytes or settings."""
    what = "an SC09 training file from 'audiofidelity sc09-stats'"
    data = read_arrays(path, what)
    try:
        settings = json.loads(str(data["settings"]))
        train = Classified(list(map(str, data["files"])), data["probs"], data["activations"])
    except (KeyError, ValueError) as exc:
        raise StatsFileError(f"{{path}} is not {literal(what)} (no {literal(exc)})", path=path) from None
    want = _settings(artifact)
    if settings != want:
        changed = sorted(k for k in want if settings.get(k) != want[k])
        raise StatsFileError(f"{{path}} was made with another {', '.join(changed)}; recompute it with "
                             f"'audiofidelity sc09-stats'", path=path)
    return train


def evaluate_sc09(generated: Path, train: Path, *, models_dir: Path | None = None, device: str = "cpu",
                  threshold: bool = False) -> dict:
    """The benchmark's metrics of the ``generated`` folder against ``train`` (a training folder or a file from
    ``save_training``), as a JSON-ready report (``metrics``, ``unavailable``, ``details``, ``files``, ``problems``,
    ``provenance``)."""
    artifact = load(ARTIFACT, directory=models_dir, device=device)
    gen_files = generated_files(Path(generated))
    reference = load_training(Path(train), artifact) if Path(train).is_file() \
        else classify(training_files(Path(train)), Path(train), artifact)
    gen = classify(gen_files, Path(generated), artifact)
    if threshold:
        low, high = (int(fraction * len(gen.files)) for fraction in THRESHOLD)
        gen = Classified(gen.files[low:high], gen.probs[low:high], gen.activations[low:high], gen.problems,
                         gen.fixed_length)
    values: dict = {}
    unavailable: dict[str, str] = {}
    details: dict = {}

    def attempt(keys: tuple[str, ...], compute) -> None:
        try:
            values.update(compute())
        except MetricUnavailableError as exc:  # not enough data; a defect propagates
            for key in keys:
                values[key], unavailable[key] = None, str(exc)

    def fid() -> dict:
        value, details["fid"] = metrics.fid(reference.activations, gen.activations)
        return {"fid": value}

    def ndb() -> dict:
        result = metrics.ndb(reference.activations, gen.activations)
        details["ndb"] = {k: v for k, v in result.items() if k not in ("ndb_over_k", "js_divergence")}
        return {"ndb_over_k": result["ndb_over_k"], "ndb_js_divergence": result["js_divergence"]}

    attempt(("fid",), fid)
    attempt(("inception_score",), lambda: {"inception_score": metrics.inception_score(gen.probs)})
    attempt(("textbook_inception_score",),
            lambda: {"textbook_inception_score": metrics.textbook_inception_score(gen.probs)})
    attempt(("modified_inception_score",),
            lambda: {"modified_inception_score": metrics.modified_inception_score(gen.probs)})
    attempt(("am_score",), lambda: {"am_score": metrics.am_score(reference.probs, gen.probs)})
    attempt(("ndb_over_k", "ndb_js_divergence"), ndb)
    return {"metrics": values, "unavailable": unavailable, "details": details,
            "files": {"generated": {"listed": len(gen_files), "used": len(gen.files), **gen.fixed_length,
                                    **({"threshold": list(THRESHOLD)} if threshold else {})},
                      "train": {"used": len(reference.files)}},
            "problems": [{"side": "generated", **p} for p in gen.problems]
            + [{"side": "train", **p} for p in reference.problems],
            "provenance": {"artifact": {"name": ARTIFACT, "sha256": artifact.manifest.sha256},
                           "frontend": artifact.manifest.frontend, "conditioning": CONDITIONING.as_dict(),
                           "batch_size": BATCH, "kmeans": dict(metrics.KMEANS)}}
