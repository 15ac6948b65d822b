"""Evaluate a folder of generated audio against a folder of reference audio, as audioldm_eval does.

Flow: list both folders (sorted; ``limit`` keeps the first N of each) -> decide paired mode
(file-name intersection > 99% of both folders, as audioldm_eval) -> per file: decode, validate,
condition, frontend -> batched model run (only when a selected metric needs the backbone) ->
per pair: signal metrics (``paired.py``) -> metrics (``METRICS``) -> a JSON-ready report with
every skipped file and its reason, and the provenance of each number.
"""
from __future__ import annotations

import functools
import logging
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import __version__
from .artifacts import LoadedArtifact, load, load_postprocess
from .registry import artifact_for, registry_entry
from .audio import Conditioning, condition, load_validated
from .resample import resample
from .errors import BadFilesError, InputFolderError, InvalidAudioError
from .frontends import PAIRED_MEL, apply_frontend
from .metrics import frechet, inception, kernel, kl, signal
from .paired import PairValues, compute_pairs
from .runner import DEFAULT_BATCH_SIZE, POSTPROCESSORS, EmbeddingRunner

log = logging.getLogger(__name__)

PAIRING_THRESHOLD = 0.99
SIDES = ("generated", "reference")
CHUNK_FILES = 16
"""Files decoded before each model pass: bounds memory to one chunk of model inputs."""
FAD_ARTIFACT = "vggish"


@dataclass
class SideFeatures:
    """Model outputs for the usable files of one folder: per output, one array per file in ``files`` order."""

    folder: Path
    listed: list[str]
    files: list[str] = field(default_factory=list)
    per_file: dict[str, list[np.ndarray]] = field(default_factory=dict)
    problems: list[dict] = field(default_factory=list)

    def add_problem(self, file: str, reason: str) -> None:
        """Record a skipped file once, whichever stage found it first."""
        if file not in {p["file"] for p in self.problems}:
            self.problems.append({"file": file, "reason": reason, "action": "skipped"})

    def matrix(self, output: str) -> np.ndarray:
        """All rows of ``output``: one per file (CNN14) or every example of every file (VGGish)."""
        arrays = self.per_file.get(output, [])
        if not arrays:
            return np.zeros((0, 0))
        return np.concatenate([np.atleast_2d(a) for a in arrays])


@dataclass
class EvaluationData:
    """What the metrics read: both sides' features, the KL pairs, and the per-pair signal values.

    ``roles`` maps a feature role (``embedding``, ``logits``, ``layers``, ``fad``) to the artifact output
    that plays it, as the manifests declare.
    """

    generated: SideFeatures
    reference: SideFeatures
    pairs: list[str]
    roles: dict[str, str] = field(default_factory=dict)
    signal: PairValues | None = None

    def both(self, role: str) -> tuple[np.ndarray, np.ndarray]:
        """Stacked rows of ``role`` for (generated, reference), in the original's row order."""
        if role not in self.roles:
            raise ValueError(f"no loaded model provides {role!r} features")
        return self.generated.matrix(self.roles[role]), self.reference.matrix(self.roles[role])

    def pair_rows(self, role: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows for KL: each paired name takes the row at its file position in each side's stacked matrix.

        For one row per file that is the file's own row; for MERT (13 rows per file) it is audioldm_eval's
        pairing of names with the first rows (its row-pairing quirk, kept for compatibility).
        """
        rows = []
        for side, matrix in zip((self.generated, self.reference), self.both(role)):
            position = {n: i for i, n in enumerate(side.files)}
            rows.append(matrix[[position[n] for n in self.pairs]])
        return rows[0], rows[1]


@dataclass(frozen=True)
class MetricSpec:
    """A selectable metric: the result keys it fills and how it is computed from ``EvaluationData``."""

    keys: tuple[str, ...]
    compute: Callable[[EvaluationData], dict[str, float]]
    paired_only: bool = False
    needs: str | None = "classifier"
    """The artifact role the metric reads (``classifier``: the backbone, ``fad``: VGGish), or None."""
    description: str = ""


def _kl(mode: str, key: str) -> Callable[[EvaluationData], dict[str, float]]:
    def compute(data: EvaluationData) -> dict[str, float]:
        if not data.pairs:
            raise ValueError("no file name appears in both folders among the usable files")
        return {key: kl.kl_divergence(*data.pair_rows("logits"), mode=mode)}
    return compute


def _signal_mean(key: str, description: str) -> MetricSpec:
    return MetricSpec((key,), lambda data: {key: data.signal.mean(key)}, paired_only=True, needs=None,
                      description=description)


METRICS: dict[str, MetricSpec] = {
    "fd": MetricSpec(
        (frechet.KEY_FRECHET_DISTANCE,),
        lambda d: {frechet.KEY_FRECHET_DISTANCE: frechet.frechet_distance_from_features(*d.both("embedding"))},
        description="Fréchet distance between the backbone's embeddings (lower is better)"),
    "fd_layers": MetricSpec(
        (frechet.KEY_FRECHET_DISTANCE_LAYERS,),
        lambda d: {frechet.KEY_FRECHET_DISTANCE_LAYERS: frechet.frechet_distance_per_layer(
            np.stack(d.generated.per_file[d.roles["layers"]]), np.stack(d.reference.per_file[d.roles["layers"]]))},
        description="MERT only: one Fréchet distance per hidden layer between per-file time means (lower is better)"),
    "fad": MetricSpec(
        (frechet.KEY_FRECHET_AUDIO_DISTANCE,),
        lambda d: {frechet.KEY_FRECHET_AUDIO_DISTANCE: frechet.frechet_distance_from_features(*d.both("fad"))},
        needs="fad", description="Fréchet audio distance between all VGGish frames of each folder (lower is better)"),
    "kl": MetricSpec((kl.KEY_KL_SOFTMAX,), _kl("softmax", kl.KEY_KL_SOFTMAX), paired_only=True,
                     description="KL(reference || generated) of softmax class probabilities per pair (lower is better)"),
    "kl_sigmoid": MetricSpec((kl.KEY_KL_SIGMOID,), _kl("sigmoid", kl.KEY_KL_SIGMOID), paired_only=True,
                             description="the same with per-class sigmoid probabilities (lower is better)"),
    "isc": MetricSpec(
        (inception.KEY_IS_MEAN, inception.KEY_IS_STD),
        lambda d: inception.inception_score(d.both("logits")[0]),
        description="inception score of the generated clips (higher is better)"),
    "kid": MetricSpec(
        (kernel.KEY_KID_MEAN, kernel.KEY_KID_STD),
        lambda d: kernel.kernel_inception_distance(*d.both("embedding")),
        description="kernel inception distance between the embeddings (lower is better)"),
    "psnr": _signal_mean(signal.KEY_PSNR, "PSNR of the pairs' mel spectrograms in dB (higher is better)"),
    "ssim": _signal_mean(signal.KEY_SSIM, "SSIM of the pairs' mel spectrograms (higher is better)"),
    "lsd": _signal_mean(signal.KEY_LSD, "log-spectral distance of the pairs' waveforms (lower is better)"),
}
"""Every metric, by its ``--metrics`` name."""

SIGNAL_METRICS = ("psnr", "ssim", "lsd")
BACKBONE_METRICS = {
    "cnn14": ("fd", "fad", "kl", "kl_sigmoid", "isc", "kid", *SIGNAL_METRICS),
    "mert": ("fd", "fad", "kl", "kl_sigmoid", "isc", "kid", *SIGNAL_METRICS, "fd_layers"),
}
"""Metrics available with each backbone, in report order (FAD uses VGGish; the signal metrics need no model)."""


@dataclass
class EvaluationResult:
    """The report (JSON-ready dict) and the per-side features behind it."""

    report: dict
    sides: dict[str, SideFeatures]

    def save_features(self, path: str | Path) -> None:
        """Write ``<gen|ref>/<feature>/<file name>`` arrays and ``<gen|ref>/files`` to an ``.npz``."""
        arrays = {}
        for side, data in self.sides.items():
            short = side[:3]
            arrays[f"{short}/files"] = np.array(data.files)
            for output, values in data.per_file.items():
                for name, value in zip(data.files, values):
                    arrays[f"{short}/{output}/{name}"] = value
        np.savez_compressed(path, **arrays)


def list_folder(folder: str | Path, *, limit: int | None = None) -> list[str]:
    """Sorted entry names of ``folder`` (first ``limit`` of them), as audioldm_eval lists it.

    Raises
    ------
    InputFolderError
        If the folder is missing, not a directory, or empty.
    """
    path = Path(folder)
    if not path.exists():
        raise InputFolderError(f"folder not found: {path}")
    if not path.is_dir():
        raise InputFolderError(f"not a folder: {path} (pass the folder that holds the audio files)")
    names = sorted(p.name for p in path.iterdir())
    if not names:
        raise InputFolderError(f"folder is empty: {path}")
    return names[:limit] if limit is not None else names


def is_paired(generated: Sequence[str], reference: Sequence[str], threshold: float = PAIRING_THRESHOLD) -> bool:
    """audioldm_eval's rule: paired when the shared names exceed ``threshold`` of both folders."""
    shared = len(set(generated) & set(reference))
    return shared / len(set(generated)) > threshold and shared / len(set(reference)) > threshold


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="clip", file=sys.stderr, disable=not enabled, leave=False)


def extract_features(side: SideFeatures, models: Sequence[tuple[LoadedArtifact, int]], conditioning: Conditioning, *,
                     batch_size: int = DEFAULT_BATCH_SIZE, postprocess: Sequence[str] = (),
                     chunk_seconds: dict[str, float] | None = None, progress: bool = True,
                     label: str = "") -> SideFeatures:
    """Fill ``side`` with every artifact's outputs for the usable files; record the others as problems.

    ``models``: (artifact, conditioning rate) pairs. Each file is decoded once, conditioned (channel,
    DC, resampling, padding) once per conditioning rate, then resampled to the model's own rate where
    that differs (MERT: evaluation rate -> 24 kHz, as audioldm_eval does). A file that any artifact
    rejects (too short for it, say) is skipped for all of them, so every metric sees the same files.
    ``postprocess`` names artifacts whose manifest post-processing (VGGish PCA) is applied;
    ``chunk_seconds`` maps an artifact name to a window length: its clips are cut into windows and the
    per-window outputs averaged (``--mert-chunk``).
    """
    chunk_seconds = chunk_seconds or {}
    artifacts = [a for a, _ in models]
    runners = [(EmbeddingRunner(a, batch_size=batch_size, average_items=a.manifest.name in chunk_seconds), rate)
               for a, rate in models]
    post = {a.manifest.name: _postprocessor(a) for a in artifacts if a.manifest.name in postprocess}
    side.per_file = {name: [] for a in artifacts for name in a.manifest.output_names}
    with _progress(len(side.listed), label or side.folder.name, progress) as bar:
        for start in range(0, len(side.listed), CHUNK_FILES):
            chunk = side.listed[start:start + CHUNK_FILES]
            names: list[str] = []
            inputs: list[list[np.ndarray]] = [[] for _ in runners]
            for name in chunk:
                try:
                    model_inputs = _model_inputs(side.folder / name, runners, conditioning, chunk_seconds)
                except InvalidAudioError as exc:
                    side.add_problem(name, str(exc))
                    continue
                names.append(name)
                for i, x in enumerate(model_inputs):
                    inputs[i].append(x)
            for (runner, _), runner_inputs in zip(runners, inputs):
                transform = post.get(runner.artifact.manifest.name)
                for output, values in runner.run(runner_inputs).items():
                    side.per_file[output].extend([transform(v) for v in values] if transform else values)
            side.files.extend(names)
            bar.update(len(chunk))
    return side


def _postprocessor(artifact: LoadedArtifact) -> Callable[[np.ndarray], np.ndarray]:
    """The artifact's manifest post-processing (verified data bound in), e.g. VGGish's PCA."""
    data = load_postprocess(artifact)
    return functools.partial(POSTPROCESSORS[data.pop("kind")], **data)


def _model_inputs(path: Path, runners: Sequence[tuple[EmbeddingRunner, int]], conditioning: Conditioning,
                  chunk_seconds: dict[str, float]) -> list[np.ndarray]:
    if path.is_dir():
        raise InvalidAudioError("is a folder (folders are not searched recursively)")
    mono, rate = load_validated(path, conditioning)
    conditioned: dict[int, np.ndarray] = {}
    out = []
    for runner, conditioning_rate in runners:
        manifest = runner.artifact.manifest
        if conditioning_rate not in conditioned:
            conditioned[conditioning_rate] = condition(mono[None], rate, conditioning_rate, conditioning)
        wave = resample(conditioned[conditioning_rate], conditioning_rate, manifest.sample_rate,
                        method=conditioning.resampler)  # the input itself when the rates agree
        frontend = manifest.frontend
        if manifest.name in chunk_seconds:
            frontend = {**frontend, "chunk_samples": int(round(chunk_seconds[manifest.name] * manifest.sample_rate))}
        x = apply_frontend(wave, frontend)
        runner.check_input(x)
        out.append(x)
    return out


def _usable_pairs(gen: SideFeatures, ref: SideFeatures) -> list[str]:
    """Names listed in both folders whose files neither side has skipped, sorted."""
    skipped = {p["file"] for side in (gen, ref) for p in side.problems}
    return sorted(set(gen.listed) & set(ref.listed) - skipped)


def _report_problems(sides: dict[str, SideFeatures], excluded: list[dict], strict: bool) -> list[dict]:
    problems = [{"side": name, **p} for name, side in sides.items() for p in side.problems]
    for p in problems:
        log.warning("%s: %s: %s (%s)", p["side"], p["file"], p["reason"], p["action"])
    if strict and problems:
        listing = "; ".join(f"{p['side']}/{p['file']}: {p['reason']}" for p in problems)
        raise BadFilesError(f"{len(problems)} bad file(s) and --strict is set: {listing}")
    for p in excluded:
        log.warning("pair %s: %s (%s)", p["file"], p["reason"], p["action"])
    return problems + excluded


def _compute_metrics(names: Sequence[str], data: EvaluationData, paired: bool) -> tuple[dict, dict]:
    values: dict[str, float | None] = {}
    unavailable: dict[str, str] = {}
    for name in names:
        spec = METRICS[name]
        reason = None
        if spec.paired_only and not paired:
            reason = "needs paired mode (the two folders' file names do not match; see 'mode')"
        else:
            try:
                values.update(spec.compute(data))
            except ValueError as exc:
                reason = str(exc)
        if reason is not None:
            for key in spec.keys:
                values[key] = None
                unavailable[key] = reason
    return values, unavailable


def resolve_metrics(backbone: str, metrics: Sequence[str] | None) -> list[str]:
    """The metrics to compute: all the backbone supports by default; unknown names are an error."""
    supported = BACKBONE_METRICS[backbone]
    if metrics is None:
        return list(supported)
    unknown = [m for m in metrics if m not in supported]
    if unknown:
        raise ValueError(f"metric(s) {', '.join(unknown)} not available with backbone {backbone!r}; "
                         f"choose from {', '.join(supported)}")
    return list(dict.fromkeys(metrics))


def evaluate(generated: str | Path, reference: str | Path, *, backbone: str = "cnn14", sample_rate: int = 16000,
             metrics: Sequence[str] | None = None, limit: int | None = None, models_dir: str | Path | None = None,
             device: str = "cpu", batch_size: int = DEFAULT_BATCH_SIZE, conditioning: Conditioning | None = None,
             strict: bool = False, per_file: bool = False, lsd_offset: int = signal.HIFIGAN_OFFSET,
             fad_pca: bool = False, mert_chunk: float | None = None, require_pinned: bool = False,
             progress: bool = True) -> EvaluationResult:
    """Compute audioldm_eval's metrics between two folders of audio.

    Parameters
    ----------
    generated, reference : path
        Folders of audio files (not searched recursively).
    backbone : str
        Feature network (``"cnn14"``).
    sample_rate : int
        Evaluation rate, 16000 or 32000 for CNN14; every file is resampled to it.
    metrics : sequence of str, optional
        Names from ``METRICS``; default: all the backbone supports. The model is loaded only when a
        selected metric needs it (``psnr``, ``ssim`` and ``lsd`` do not).
    limit : int, optional
        Use only the first ``limit`` files of each sorted folder listing (audioldm_eval's ``limit_num``).
    models_dir : path, optional
        Directory with the exported artifacts (default ``$AUDIOFIDELITY_MODELS``).
    conditioning : Conditioning, optional
        Channel, DC, resampler, padding and minimum-duration settings (default: audioldm_eval's).
    strict : bool
        Raise ``BadFilesError`` instead of skipping bad files.
    per_file : bool
        Add ``per_file``: each pair's PSNR, SSIM and LSD.
    lsd_offset : int
        Samples dropped from each generated clip before LSD (audioldm_eval: 1120, HiFi-GAN's delay).
    fad_pca : bool
        Apply AudioSet's PCA + 8-bit quantisation to the VGGish embeddings before FAD (torchvggish's
        ``postprocess``; audioldm_eval does not). Needs a VGGish artifact exported with ``--pca``.
    mert_chunk : float, optional
        MERT only: cut clips longer than this many seconds into windows and average the per-window
        layer means (bounds attention's quadratic cost on long audio; not audioldm_eval-compatible).
    require_pinned : bool
        Refuse artifacts whose sha256 is not the registry's Hub pin.

    Returns
    -------
    EvaluationResult
        ``.report``: ``metrics`` (audioldm_eval's keys; ``None`` where not computable, reason in
        ``unavailable``), ``mode``, ``files``, ``problems``, ``provenance`` (and ``per_file``).

    Raises
    ------
    InputFolderError, ArtifactNotFoundError, ChecksumMismatchError, BadFilesError, ValueError
    """
    conditioning = conditioning or Conditioning()
    selected = resolve_metrics(backbone, metrics)
    entry = artifact_for(backbone, sample_rate)
    if mert_chunk is not None and (entry.architecture != "mert" or mert_chunk <= 0):
        raise ValueError(f"mert_chunk needs the mert backbone and a positive length, got {backbone!r}, {mert_chunk}")
    folders = {"generated": Path(generated), "reference": Path(reference)}
    full = {side: list_folder(folder) for side, folder in folders.items()}
    paired = is_paired(full["generated"], full["reference"])
    sides = {side: SideFeatures(folders[side], full[side][:limit] if limit is not None else full[side])
             for side in SIDES}
    needed = {METRICS[m].needs for m in selected} - {None}
    names = [entry.name] * ("classifier" in needed) + [registry_entry(FAD_ARTIFACT).name] * ("fad" in needed)
    artifacts = [load(name, directory=models_dir, device=device, require_pinned=require_pinned) for name in names]
    # classifiers see audio conditioned at the evaluation rate; VGGish at its own 16 kHz (audioldm_eval's FAD)
    models = [(a, sample_rate if a.manifest.name == entry.name else a.manifest.sample_rate) for a in artifacts]
    if artifacts:
        for side in SIDES:
            extract_features(sides[side], models, conditioning, batch_size=batch_size, progress=progress,
                             postprocess=[FAD_ARTIFACT] if fad_pca else [],
                             chunk_seconds={entry.name: mert_chunk} if mert_chunk else None, label=side)
    gen, ref = sides["generated"], sides["reference"]
    signal_keys = [METRICS[m].keys[0] for m in selected if METRICS[m].needs is None]
    pair_values = None
    if paired and signal_keys:
        names = _usable_pairs(gen, ref)
        with _progress(len(names), "pairs", progress) as bar:
            pair_values = compute_pairs(gen.folder, ref.folder, names, sample_rate=sample_rate, metrics=signal_keys,
                                        conditioning=conditioning, lsd_offset=lsd_offset, progress=bar.update)
        for p in pair_values.bad_files:
            sides[p["side"]].add_problem(p["file"], p["reason"])
    problems = _report_problems(sides, pair_values.excluded if pair_values else [], strict)
    kl_pairs = [n for n in ref.files if n in set(gen.files)] if paired else []
    roles = {role: output for a in artifacts for role, output in a.manifest.roles().items()}
    data = EvaluationData(gen, ref, kl_pairs, roles, pair_values)
    values, unavailable = _compute_metrics(selected, data, paired)
    usable_pairs = len(_usable_pairs(gen, ref)) if paired else 0
    report = {
        "metrics": values,
        "unavailable": unavailable,
        "mode": "paired" if paired else "unpaired",
        "files": {
            **{side: {"folder": str(s.folder), "listed": len(s.listed),
                      "used": len(s.files) if artifacts else usable_pairs,
                      "skipped": len(s.problems)} for side, s in sides.items()},
            "pairs": usable_pairs,
        },
        "problems": problems,
        "provenance": _provenance(artifacts, backbone, sample_rate, conditioning, device, limit,
                                  signal_keys, lsd_offset, fad_pca, mert_chunk),
    }
    if per_file:
        report["per_file"] = pair_values.per_file if pair_values else {}
    return EvaluationResult(report, sides)


def _provenance(artifacts: Sequence[LoadedArtifact], backbone: str, sample_rate: int, conditioning: Conditioning,
                device: str, limit: int | None, signal_keys: Sequence[str], lsd_offset: int, fad_pca: bool,
                mert_chunk: float | None) -> dict:
    import scipy

    out = {
        "audiofidelity": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "backbone": backbone,
        "sample_rate": sample_rate,
        "device": device,
        "limit": limit,
        "conditioning": conditioning.as_dict(),
        "mert_chunk_seconds": mert_chunk,
        "artifacts": [],
    }
    if artifacts:
        import torch

        out["torch"] = torch.__version__
    for artifact in artifacts:
        manifest = artifact.manifest.raw
        pin = artifact.entry.hub if artifact.entry else None
        entry = {
            "name": manifest["name"],
            "sha256": manifest["artifact"]["sha256"],
            "origin": artifact.origin,
            "hub": {"repo_id": pin.repo_id, "revision": pin.revision} if pin else None,
            "pinned": bool(pin and pin.sha256 == manifest["artifact"]["sha256"]),
            "source_sha256": manifest.get("source", {}).get("sha256"),
            "manifest_schema_version": manifest["schema_version"],
            "frontend": manifest["frontend"],
        }
        if fad_pca and manifest["name"] == FAD_ARTIFACT:
            entry["postprocess"] = manifest["postprocess"]
        out["artifacts"].append(entry)
    if signal_keys:
        out["signal"] = {"paired_mel": PAIRED_MEL.get(sample_rate), "lsd_offset": lsd_offset}
    return out


__all__ = ["evaluate", "EvaluationResult", "METRICS", "BACKBONE_METRICS"]
