"""Evaluate a folder of generated audio against a folder of reference audio, as audioldm_eval does.

Flow: list both folders (sorted; ``limit`` keeps the first N of each) -> decide paired mode
(file-name intersection > 99% of both folders, as audioldm_eval) -> per folder: features of the models the
selected metrics need (``features.py``: cache, else decode, condition, frontend, batched model run) -> per
pair: signal metrics (``paired.py``) -> metrics (``metric_table.py``) -> a JSON-ready report with every skipped file
and its reason, and the provenance of each number.

``Evaluator`` loads the models once and evaluates many folders (``eval-logs``, the compat helpers);
the reference may also be a statistics file (``stats.py``).
"""
from __future__ import annotations

import dataclasses
import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from scipy.special import softmax

from . import diagnostics, models
from ._version import __version__
from . import features as pipeline
from .artifacts import LoadedArtifact, check_device, load_all, torch_version
from .cache import FeatureCache, content_identity
from .captions import Captions, read_captions
from .errors import (BadFilesError, IncompleteResultError, InputFolderError, ManifestError, MetricUnavailableError,
                     ReferenceProbabilitiesError, literal)
from .features import (TOO_LONG_ADVICE, ModelStage, Progress, RunSettings, SideFeatures, Watch, backbone_stage,
                       extract_features, fad_stage, scorer_stage, timed)
from .frontends import PAIRED_MEL
from .metric_table import (BACKBONE_METRICS, BOOTSTRAP_METRICS, METRICS, OPT_IN_METRICS, EvaluationData,
                           bootstrap_intervals, check_reference_free, compute_metrics, resolve_metrics)
from .metrics import frechet
from .outputs import atomic_write, npz
from .models import DEFAULTS
from .registry import artifact_for, export_command, registry_entry
from .stats import ReferenceStats, role_accumulators, settings_differences
from .paired import PairValues, compute_pairs
from .probabilities import ReferenceProbabilities, is_probabilities_file, read_reference_probabilities
from .runner import InputSpec
from .settings import EvaluationSettings, check_captions
from .text_tower import TextTower
from .validation import check_int, check_optional

log = logging.getLogger(__name__)

PAIRING_THRESHOLD = 0.99
SIDES = ("generated", "reference")


@dataclass
class EvaluationResult:
    """The report (JSON-ready dict) and the per-side features behind it."""

    report: dict
    sides: dict[str, SideFeatures]

    def save_features(self, path: str | Path, *, option: str = "features file") -> None:
        """Write ``<gen|ref>/<feature>/<file name>`` arrays and ``<gen|ref>/files`` to an ``.npz`` (atomically, under
        exactly this name; ``OutputPathError`` naming ``option`` when it cannot be written)."""
        arrays = {}
        for side, data in self.sides.items():
            short = side[:3]
            arrays[f"{short}/files"] = np.array(data.files)
            for output, values in data.per_file.items():
                for name, value in zip(data.files, values):
                    arrays[f"{short}/{output}/{name}"] = value
        atomic_write(path, npz(arrays, compressed=True), option=option)


def list_folder(folder: str | Path, *, limit: int | None = None) -> list[str]:
    """Sorted entry names of ``folder`` (first ``limit`` of them), as audioldm_eval lists it.

    Raises
    ------
    InputFolderError
        If the folder is missing, not a directory, or empty.
    ValueError
        If ``limit`` is not an integer >= 1.
    """
    limit = check_optional(check_int, limit, "limit", minimum=1)
    path = Path(folder)
    if not path.exists():
        raise InputFolderError("folder not found: {folder}", folder=path)
    if not path.is_dir():
        raise InputFolderError("not a folder: {folder} (pass the folder that holds the audio files)", folder=path)
    names = sorted(p.name for p in path.iterdir())
    if not names:
        raise InputFolderError("folder is empty: {folder}", folder=path)
    return names[:limit] if limit is not None else names


def is_paired(generated: Sequence[str], reference: Sequence[str], threshold: float = PAIRING_THRESHOLD) -> bool:
    """audioldm_eval's rule: paired when the shared names exceed ``threshold`` of both folders."""
    shared = len(set(generated) & set(reference))
    return shared / len(set(generated)) > threshold and shared / len(set(reference)) > threshold


def _usable_pairs(gen: SideFeatures, ref: SideFeatures) -> list[str]:
    """Names listed in both folders whose files neither side has skipped, sorted."""
    skipped = {p["file"] for side in (gen, ref) for p in side.problems}
    return sorted(set(gen.listed) & set(ref.listed) - skipped)


def _without_partner(generated: Sequence[str], reference: Sequence[str]) -> list[dict]:
    """In paired mode (over 99% of the names shared), each file whose name the other folder lacks: named, left out
    of the paired metrics (audioldm_eval skips them silently)."""
    out = []
    for side, mine, theirs in (("generated", generated, reference), ("reference", reference, generated)):
        other = set(theirs)
        out += [{"side": side, "file": name, "reason": "no file of the same name in the other folder",
                 "action": "left out of the paired metrics"} for name in mine if name not in other]
    return out


def _nothing_usable(sides: dict[str, SideFeatures], models: bool, paired: bool, usable_pairs: int) -> str | None:
    """Why no metric can be computed (a side with no usable file, or no usable pair), else None."""
    for name, side in sides.items():
        if models and not side.files:
            return f"no usable {name} files ({len(side.problems)} skipped, see problems)"
    if not models and paired and not usable_pairs:
        skipped = sum(len(side.problems) for side in sides.values())
        return f"no usable pairs ({skipped} file(s) skipped, see problems)"
    return None


def _report_problems(sides: dict[str, SideFeatures], excluded: list[dict], strict: bool) -> list[dict]:
    problems = [{"side": name, **p} for name, side in sides.items() for p in side.problems]
    for p in problems:
        log.warning("%s: %s: %s (%s)", p["side"], p["file"], p["reason"], p["action"])
    if strict and problems:
        listing = "; ".join(f"{p['side']}/{p['file']}: {p['reason']}" for p in problems)
        raise BadFilesError(f"{len(problems)} bad file(s) and --strict is set: {listing}")
    for p in excluded:
        log.warning("pair %s: %s (%s)", p["file"], p["reason"], p["action"])
    if strict and excluded:
        listing = "; ".join(f"{p['file']}: {p['reason']}" for p in excluded)
        raise IncompleteResultError(f"{len(excluded)} pair(s) left out and --strict is set: {listing}")
    return problems + excluded


def _check_complete(unavailable: dict[str, str], strict: bool) -> None:
    """Under ``strict``, a metric left unavailable is an error (``IncompleteResultError``, naming each)."""
    if strict and unavailable:
        listing = "; ".join(f"{key}: {reason}" for key, reason in unavailable.items())
        raise IncompleteResultError(f"{len(unavailable)} metric value(s) unavailable and --strict is set: {listing} "
                                    f"(choose the metrics that apply with --metrics)")


def finite_json(value):
    """``value`` with every NaN or infinite float (anywhere in nested dicts and lists, NumPy scalars included)
    replaced by None: a report is always valid JSON (the metrics' own reasons are in ``unavailable``)."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


class Evaluator:
    """audioldm_eval's metrics with the models loaded once: evaluate many folders, reuse reference features.

    Takes the settings of ``evaluate`` (see there). ``cache``: True for the default feature cache, a
    ``FeatureCache``, or False/None for none.
    """

    def __init__(self, settings: EvaluationSettings | None = None, **keywords: Any) -> None:
        if settings is None:
            settings = EvaluationSettings.from_keywords(**keywords)
        elif keywords:
            raise TypeError(f"pass either settings or keywords, not both (got {', '.join(keywords)})")
        self.config = settings
        check_device(settings.device)
        self._run = settings.run_settings()
        self.memory_budget = self._run.memory_budget
        self.backbone, self.sample_rate = settings.backbone, settings.sample_rate
        self.device, self.workers, self.batch_size = settings.device, settings.workers, settings.batch_size
        self.batch_across_clips, self.precision = settings.batch_across_clips, settings.precision
        self._pool = None
        self.conditioning = settings.conditioning
        self.selected = list(settings.selected_metrics)
        self.entry = artifact_for(settings.backbone, settings.sample_rate)
        self.strict, self.lsd_offset = settings.strict, settings.lsd_offset
        self.metric_options = settings.metric_options
        self.progress = settings.progress
        self.cache = FeatureCache() if settings.cache is True else settings.cache or None
        self.fad = settings.fad
        needed = {METRICS[m].needs for m in self.selected} - {None}
        names = [self.entry.name] * ("classifier" in needed) + [self.fad.artifact] * ("fad" in needed)
        self.captions = read_captions(settings.captions) if settings.captions is not None else None
        text_name = registry_entry(self.fad.artifact).text_tower if "clap_score" in self.selected else ""
        names += [text_name] if text_name else []
        scoring = [models.scorers()[m] for m in self.selected if METRICS[m].needs == "scorer"]
        names += [scorer.artifact for scorer in scoring]
        # lazy: a program is loaded when a file first needs it, so a fully cached run reads no .pt2
        loaded = load_all(list(dict.fromkeys(names)), directory=settings.models_dir, device=settings.device,
                          require_pinned=settings.require_pinned, lazy=True)
        self.artifacts = {a.manifest.name: a for a in loaded}
        self.stages: list[ModelStage] = []
        self.roles: dict[str, str] = {}
        self.kl_definition = models.AUDIOLDM_EVAL_KL  # the toolkit whose KL the kl metrics compute
        if "classifier" in needed:
            artifact = self.artifacts[self.entry.name]
            adjust = models.adjustment(models.backbone_family(self.backbone), "backbone", self.config.model_options,
                                       artifact.manifest.sample_rate)
            if adjust is not None and adjust.kl is not None:
                self.kl_definition = adjust.kl
            self.stages.append(self._backbone_stage(artifact, adjust))
        tokens = None
        if "fad" in needed:
            stage, tokens = self._fad_stage(self.artifacts[self.fad.artifact])
            self.stages.append(stage)
        self.text_tower = TextTower(self.artifacts[text_name], max_length=tokens) if text_name else None
        self.output_transforms: dict[str, dict] = {}
        self.scored_roles = {role for scorer in scoring for role in scorer.roles}
        self.scorer_stages: list[ModelStage] = []
        for scorer in scoring:
            artifact = self.artifacts[scorer.artifact]
            stage, roles = scorer_stage(artifact, self.run_settings(), scorer)
            self.stages.append(stage)
            self.scorer_stages.append(stage)
            self.roles.update(roles)
            transforms = artifact.manifest.raw.get("output_transforms", {})
            self.output_transforms.update({role: transforms[output] for role, output
                                           in artifact.manifest.roles().items() if output in transforms})
        self._check_roles()
        self._reference_memo: tuple[tuple[tuple[str, ...], tuple[str, ...]], SideFeatures] | None = None

    def _backbone_stage(self, artifact: LoadedArtifact, adjust: models.Adjustment | None) -> ModelStage:
        family = models.backbone_family(self.backbone)
        model_rate = artifact.manifest.sample_rate
        advice = TOO_LONG_ADVICE
        if family.too_long_advice is not None and self.memory_budget is not None:
            advice = family.too_long_advice(InputSpec.from_manifest(artifact.manifest).memory, model_rate,
                                            self.memory_budget, self.batch_size, self.config.model_options)
        stage, roles = backbone_stage(artifact, self.run_settings(), rate=self.sample_rate, adjust=adjust,
                                      too_long_advice=advice)
        self.roles.update(roles)
        return stage

    def _fad_stage(self, artifact: LoadedArtifact) -> tuple[ModelStage, int | None]:
        """The FAD model's stage and the caption length its feeding tokenises to (None: the text tower's own)."""
        adjust = models.adjustment(models.family_of(self.fad.artifact), "fad", self.config.model_options,
                                   artifact.manifest.sample_rate)
        stage, roles = fad_stage(artifact, self.run_settings(), self.fad, adjust=adjust)
        self.roles.update(roles)
        return stage, adjust.caption_tokens if adjust else None

    def run_settings(self) -> RunSettings:
        """How this evaluator runs its models (shared by every stage)."""
        return self._run

    def _check_roles(self) -> None:
        """Every selected metric's feature role must be declared by a loaded artifact's manifest."""
        for metric in self.selected:
            role = METRICS[metric].role
            if role is not None and role not in self.roles:
                owner = self.entry.name if METRICS[metric].needs == "classifier" else self.fad.artifact
                raise ManifestError(f"artifact {owner!r} declares no output with role {role!r}, which metric "
                                    f"{metric!r} needs; re-export it: {export_command(owner, force=True)}")

    def settings(self) -> dict:
        """What the features depend on: compared when a reference statistics file is used."""
        return {"backbone": self.backbone, "sample_rate": self.sample_rate, "precision": self.precision,
                "conditioning": self.conditioning.as_dict(), **self.config.option_record(),
                **({"fad_model": self.fad.name} if self.fad.name != DEFAULTS.fad_model else {}),
                "artifacts": {st.manifest.name: {"sha256": st.manifest.sha256, "frontend": st.input.frontend}
                              for st in self.stages if all(st is not x for x in self.scorer_stages)}}

    def side_features(self, folder: Path, names: list[str], label: str, watch: Watch | None = None,
                      fold: Callable[[SideFeatures], None] | None = None) -> SideFeatures:
        """Features of ``names`` in ``folder`` (empty when no selected metric needs a model); ``fold``: see
        ``features.extract_features``."""
        side = SideFeatures(folder, names)
        if self.stages:
            with timed(f"{label} features ({len(names)} files)"):
                extract_features(side, self.stages, self.conditioning, cache=self.cache, progress=self.progress,
                                 label=label, pool=self._worker_pool(len(names)), watch=watch, fold=fold)
        return side

    def _worker_pool(self, files: int) -> Callable | None:
        """A callable giving the decoding pool (``workers`` processes), which starts it on the first call (a
        fully cached run starts none) and keeps it for later runs; None without workers, or for ``files``
        that fit in one chunk (not worth starting processes for)."""
        if not self.workers or files <= pipeline.CHUNK_FILES:
            return None
        return self._started_pool

    def _started_pool(self):
        if self._pool is None:
            self._pool = pipeline.spawn_pool(self.workers)
        return self._pool

    def close(self, *, now: bool = False) -> None:
        """Stop the worker processes, if any were started (``now``: without finishing the work in flight)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pipeline.stop_pool(pool) if now else pool.shutdown()

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(now=exc_type is not None)  # Ctrl-C or an error: the workers stop at once

    def _reference_features(self, folder: Path, names: list[str], watch: Watch | None) -> SideFeatures:
        """Reference features, reused while consecutive runs list the same names with the same content.

        Keyed by each listed file's content (``cache.content_identity``: its sha256, never the folder's path),
        so a file rewritten in place, even with its mtime put back, is computed again, and an identical copy
        elsewhere is not. Only the latest reference is kept, so a long-lived evaluator (the server, the compat
        helpers) does not grow; each run gets its own copy of the problem list, and its own folder.
        """
        key = (tuple(names), tuple(content_identity(folder / name, self.cache) for name in names))
        if self._reference_memo is None or self._reference_memo[0] != key:
            self._reference_memo = (key, self.side_features(folder, names, "reference", watch))
        memo = self._reference_memo[1]
        return dataclasses.replace(memo, folder=folder, problems=list(memo.problems))

    def _selection(self, metrics: Sequence[str] | None) -> list[str]:
        """The metrics of one run: this evaluator's selection, or a subset of it."""
        if metrics is None:
            return self.selected
        chosen = resolve_metrics(self.backbone, metrics)
        outside = [m for m in chosen if m not in self.selected]
        if outside:
            raise ValueError(f"metric(s) {', '.join(outside)} were not selected when this evaluator was built "
                             f"(it has {', '.join(self.selected)})")
        return chosen

    def reference_statistics(self, folder: str | Path, *, limit: int | None = None,
                             keep_features: bool = False) -> tuple[ReferenceStats, list[dict]]:
        """Statistics of a reference folder for ``eval GEN stats.npz``, and the files skipped."""
        stats, _, problems = self.reference_set(folder, limit=limit, keep_features=keep_features)
        return stats, problems

    def reference_set(self, folder: str | Path, *, limit: int | None = None, keep_features: bool = False,
                      probabilities: bool = False) -> tuple[ReferenceStats, ReferenceProbabilities | None, list[dict]]:
        """A reference folder's statistics, and (``probabilities``) its class probabilities for ``eval GEN
        FILE.npz``'s KL (``save_reference_probabilities``), from one feature pass; and the files skipped.

        Raises ``MetricUnavailableError`` for ``probabilities`` when the backbone has no logits or its feeding gives a
        clip several rows (audiocraft's segments)."""
        names = list_folder(folder, limit=limit)
        outputs = {role: output for role, output in self.roles.items()
                   if role != "logits" and role not in self.scored_roles}  # per-file scores have no statistics
        accumulators = role_accumulators(outputs, keep_features=keep_features)
        needed = {self.roles["logits"]} if probabilities and "logits" in self.roles else set()  # per file, kept
        folded = dict.fromkeys(needed, 0)  # rows of a kept output already folded in

        def fold(side: SideFeatures) -> None:  # each chunk's rows into the statistics: memory flat in the files
            for role, output in outputs.items():
                accumulators[role].add(side.per_file[output][folded.get(output, 0):])
            for output in side.per_file:
                if output in needed:
                    folded[output] = len(side.per_file[output])
                else:
                    side.per_file[output] = []

        side = self.side_features(Path(folder), names, "reference", fold=fold)
        problems = _report_problems({"reference": side}, [], self.strict)
        if not side.files:
            raise InputFolderError("no usable audio file in {folder}", folder=Path(folder))
        for accumulator in accumulators.values():
            accumulator.all_reduce()  # torchrun: every rank's statistics (nothing in one process)
        stats = ReferenceStats.from_accumulators(accumulators, side.files, self.settings())
        return stats, self._probabilities(side) if probabilities else None, problems

    def _probabilities(self, side: SideFeatures) -> ReferenceProbabilities:
        """Each file's softmax class probabilities, by the file's name without extension (as stable-audio-metrics
        names its ids), with the settings that made them."""
        if "logits" not in self.roles or self.kl_definition.per_segment:
            raise MetricUnavailableError(f"a class-probabilities file holds one row of class probabilities per file; "
                                         f"backbone {self.backbone} with these options gives "
                                         f"{'no logits' if 'logits' not in self.roles else 'one per segment'}")
        ids = [Path(name).stem for name in side.files]
        clashes = sorted({i for i in ids if ids.count(i) > 1})
        if clashes:
            raise MetricUnavailableError(f"files share the name(s) {', '.join(clashes)} without their extension; a "
                                         f"class-probabilities file pairs by that name: rename them")
        logits = np.stack([np.asarray(row, np.float64).reshape(-1) for row in side.per_file[self.roles["logits"]]])
        return ReferenceProbabilities(tuple(ids), softmax(logits, axis=1), str(side.folder),
                                      self.probability_settings())

    def probability_settings(self) -> dict:
        """What class probabilities depend on: ``settings`` with the backbone's artifact only (a probabilities file
        serves the KL, whatever FAD model a run uses)."""
        settings = {k: v for k, v in self.settings().items() if k != "fad_model"}
        settings["artifacts"] = {name: spec for name, spec in settings["artifacts"].items() if name == self.entry.name}
        return settings

    def evaluate(self, generated: str | Path, reference: str | Path | None = None, *, limit: int | None = None,
                 per_file: bool = False, bootstrap: int = 0, metrics: Sequence[str] | None = None,
                 watch: Watch | None = None, captions: str | Path | Captions | None = None) -> "EvaluationResult":
        """Compare a folder of generated audio with a reference folder or statistics file (see ``evaluate``), or
        score it alone (``reference`` None: reference-free metrics only).

        ``metrics``: compute only these of the evaluator's metrics this time (the models stay loaded).
        ``captions``: this run's captions file for ``clap_score`` (default: the settings').
        ``watch(phase, done, total)``: told each phase's progress after every chunk of files or pair
        (phases ``generated``, ``reference``, ``pairs``, ``metrics``); raising from it stops the run.
        """
        limit = check_optional(check_int, limit, "limit", minimum=1)
        if bootstrap != 0:
            check_int(bootstrap, "bootstrap", minimum=2)  # 0: no intervals; one resampling gives no interval
        selected = self._selection(metrics)
        if captions is not None and not isinstance(captions, Captions):
            captions = read_captions(captions)
        captions = captions or self.captions
        check_captions(selected, captions.path if captions else None, self.fad)
        signal_keys = [METRICS[m].keys[0] for m in selected if METRICS[m].needs is None]
        if reference is None:
            check_reference_free(selected)
        gen_folder = Path(generated)
        ref_path = Path(reference) if reference is not None else gen_folder
        gen_names = list_folder(gen_folder)
        stats, probabilities = None, None
        ref_names: list[str] = []
        unpaired_reason: str | None = None
        if reference is None:
            paired, unpaired_reason = False, "no reference was given"
        elif ref_path.is_file() and is_probabilities_file(ref_path):
            probabilities = read_reference_probabilities(ref_path)
            differ = settings_differences(probabilities.made_with, self.probability_settings()) \
                if probabilities.made_with is not None else ""
            if differ:
                raise ReferenceProbabilitiesError(f"class probabilities {{path}} were made with other artifacts or "
                                                  f"settings ({literal(differ)}); recompute them with 'audiofidelity "
                                                  f"stats --probabilities' and the same options", path=ref_path)
            paired = False  # KL pairs names with ids; no other pair metric has a reference
        elif ref_path.is_file():
            stats = ReferenceStats.load(ref_path)
            if not all(METRICS[m].reference_free for m in selected):  # a reference-free score never reads it
                stats.check_settings(self.settings())
            paired = False
            unpaired_reason = "the reference is a statistics file"
        else:
            ref_names = list_folder(ref_path)
            paired = is_paired(gen_names, ref_names)
            unpaired_reason = None if paired else "the two folders' file names do not match; see 'mode'"
        if limit is not None:
            gen_names, ref_names = gen_names[:limit], ref_names[:limit]
        reference_file = stats is not None or probabilities is not None
        alone = reference_file or reference is None  # no reference folder to read
        gen = self.side_features(gen_folder, gen_names, "generated", watch)
        ref = SideFeatures(ref_path, []) if alone else self._reference_features(ref_path, ref_names, watch)
        sides = {"generated": gen, "reference": ref}
        pair_values = None
        if paired and signal_keys:
            names = _usable_pairs(gen, ref)
            with Progress(len(names), "pairs", self.progress, watch) as bar, \
                    timed(f"pair metrics ({len(names)} pairs)"):
                pair_values = compute_pairs(gen.folder, ref.folder, names, sample_rate=self.sample_rate,
                                            metrics=signal_keys, conditioning=self.conditioning,
                                            lsd_offset=self.lsd_offset, progress=bar.update,
                                            pool=self._worker_pool(len(names)), cache=self.cache,
                                            memory_budget=self.memory_budget)
            for p in pair_values.bad_files:
                sides[p["side"]].add_problem(p["file"], p["reason"])
        problems = _report_problems({"generated": gen} if alone else sides,
                                    (pair_values.excluded if pair_values else [])
                                    + (_without_partner(gen_names, ref_names) if paired else []), self.strict)
        generated_names = set(gen.files)
        kl_pairs = [n for n in ref.files if n in generated_names] if paired else []
        captioned = reference_captioned = None
        if "clap_score" in selected and captions is not None:
            captioned, reference_captioned, caption_problems = self._caption_embeddings(gen, ref, captions)
            problems += caption_problems
        data = EvaluationData(gen, ref, kl_pairs, self.roles, pair_values, stats, self.metric_options,
                              kl_definition=self.kl_definition, reference_probabilities=probabilities,
                              captions=captioned, reference_captions=reference_captioned,
                              output_transforms=self.output_transforms)
        usable_pairs = len(_usable_pairs(gen, ref)) if paired else 0
        nothing_usable = _nothing_usable({"generated": gen} if alone else sides, bool(self.stages),
                                         paired, usable_pairs)
        if watch is not None:
            watch("metrics", 0, 1)
        with timed("metrics"):
            values, unavailable = compute_metrics(selected, data, unpaired_reason, nothing_usable)
        _check_complete(unavailable, self.strict)
        reported = {"generated": gen} if reference is None else sides
        files = {side: {"folder": str(s.folder), "listed": len(s.listed),
                        "used": len(s.files) if self.stages else usable_pairs, "skipped": len(s.problems)}
                 for side, s in reported.items()}
        for side, s in reported.items():  # how many clips a model's window padded or cut (PaSST's 10 s)
            counts = pipeline.window_counts(s, self.stages, self.conditioning)
            if counts:
                files[side]["windowing"] = counts
        if captioned is not None and captions is not None:
            files["captions"] = {"file": str(captions.path), "captions": len(captions.by_id),
                                 "generated_with_caption": len(captioned)}
        if stats is not None:
            files["reference"] = {"statistics": str(ref_path), "used": len(stats.files)}
        if probabilities is not None:
            files["reference"] = {"probabilities": str(ref_path), "used": len(probabilities)}
        report = {
            "metrics": values,
            "unavailable": unavailable,
            "mode": "paired" if paired else "probabilities" if probabilities is not None
            else "reference-free" if reference is None else "unpaired",
            "files": {**files, "pairs": usable_pairs},
            "problems": problems,
            "provenance": self._provenance(limit, signal_keys),
        }
        if data.details:
            report["details"] = {key: data.details[key] for key in values if key in data.details}
        if nothing_usable:
            report["error"] = nothing_usable
        if bootstrap:
            report["bootstrap"] = bootstrap_intervals(data, values, selected, bootstrap)
        if per_file:
            report["per_file"] = self._per_file(data, pair_values, bool(signal_keys))
        return EvaluationResult(finite_json(report), sides)

    def _caption_embeddings(self, gen: SideFeatures, ref: SideFeatures,
                            captions: Captions) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[dict]]:
        """Each usable generated and reference file's caption embedding (the text tower of the CLAP
        ``--fad-model``; a reference file without one is only counted), and the problems: the captions file's own,
        each generated file without a caption, the captions naming no generated file."""
        assert self.text_tower is not None
        where = captions.path.name
        problems = [{"side": "captions", "file": where, **p} for p in captions.problems]
        texts = {name: captions.caption_for(name) for name in gen.files}
        problems += [{"side": "generated", "file": name, "reason": f"no caption in {where} (by file name or by "
                      f"name without extension)", "action": "left out of clap_score"}
                     for name, text in texts.items() if text is None]
        unused = sorted(set(captions.by_id) - captions.ids_used_by(gen.listed))
        if unused:
            problems.append({"side": "captions", "file": where, "ids": unused,
                             "reason": f"{len(unused)} caption(s) name no generated file",
                             "action": "not scored against generated audio"})
        if self.strict and problems:
            raise IncompleteResultError(f"{len(problems)} captions problem(s) and --strict is set: " + "; ".join(
                f"{p['file']}: {p['reason']}" for p in problems))
        for p in problems:
            log.warning("%s: %s: %s (%s)", p["side"], p["file"], p["reason"], p["action"])
        own = {name: captions.caption_for(name) for name in ref.files}
        distinct = sorted({t for t in [*texts.values(), *own.values()] if t is not None})
        with timed(f"caption embeddings ({len(distinct)} captions)"):
            rows = dict(zip(distinct, self.text_tower.embed(distinct, progress=self.progress)))
        return ({name: rows[text] for name, text in texts.items() if text is not None},
                {name: rows[text] for name, text in own.items() if text is not None}, problems)

    def _per_file(self, data: EvaluationData, pair_values: PairValues | None, signal_rate: bool) -> dict[str, dict]:
        """Each usable generated file's pair metrics (paired mode), its FAD against the reference Gaussian and
        distance to the nearest reference file (from the ``fad`` rows, else the backbone embedding), and its audio
        facts and flags (``diagnostics.py``)."""
        out = {name: dict(values) for name, values in (pair_values.per_file if pair_values else {}).items()}
        role = next((r for r in ("fad", "embedding") if r in self.roles), None)
        generated = data.generated
        if role is not None and generated.files:
            if data.reference_stats is not None:
                stats = data.reference_stats.role(role)
                gaussian: tuple[np.ndarray, np.ndarray] | None = (stats.mean, stats.cov)
                reference_files = stats.per_file
            else:
                rows = data.reference.matrix(data.output(role))
                gaussian = frechet.gaussian_statistics(rows) if len(rows) >= 2 else None
                reference_files = data.reference.per_file.get(data.output(role))
            means = np.stack([np.atleast_2d(a).mean(axis=0, dtype=np.float64) for a in reference_files]) \
                if reference_files else None
            for name, rows in zip(generated.files, generated.per_file[data.output(role)]):
                out.setdefault(name, {}).update(diagnostics.file_scores(rows, gaussian, means))
        rates = sorted({stage.input.conditioning_rate for stage in self.stages} | ({self.sample_rate} if signal_rate
                                                                                     else set()))
        for name, values in data.per_file.items():
            out.setdefault(name, {}).update(values)
        for name in generated.files or list(out):
            out.setdefault(name, {}).update(diagnostics.audio_facts(generated.folder / name, rates,
                                                                    memory_budget=self.memory_budget))
        return out

    def _provenance(self, limit: int | None, signal_keys: list[str]) -> dict:
        import scipy

        options = self.config.option_record()
        out = {
            "audiofidelity": __version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "backbone": self.backbone,
            "sample_rate": self.sample_rate,
            "device": self.device,
            "precision": self.precision,
            "batch_across_clips": self.batch_across_clips,
            "limit": limit,
            "conditioning": self.conditioning.as_dict(),
            **{option.provenance: options[option.name]
               for option in models.model_options().values() if option.provenance},
            "fad_model": {"name": self.fad.name, "artifact": self.fad.artifact, "layer": self.fad.layer,
                          "toolkit": self.fad.toolkit},
            "metric_options": self.metric_options.as_dict(),
            "feature_cache": str(self.cache.root) if self.cache else None,
            "artifacts": [],
        }
        if self.artifacts:
            out["torch"] = torch_version()
        for stage in self.stages:
            artifact, manifest = stage.runner.artifact, stage.manifest.raw
            pin = artifact.entry.hub if artifact.entry else None
            entry = {
                "name": manifest["name"],
                "sha256": manifest["artifact"]["sha256"],
                "origin": artifact.origin,
                "hub": {"repo_id": pin.repo_id, "revision": pin.revision} if pin else None,
                "pinned": bool(pin and pin.sha256 == manifest["artifact"]["sha256"]),
                "source_sha256": manifest.get("source", {}).get("sha256"),
                "manifest_schema_version": manifest["schema_version"],
                "frontend": stage.input.frontend,
                "features": [dataclasses.asdict(f) for f in stage.features],
            }
            if stage.input.conditioning is not None:
                entry["conditioning"] = stage.input.conditioning.as_dict()
            if stage.postprocess is not None and "postprocess" in manifest:
                entry["postprocess"] = manifest["postprocess"]
            if stage.rows:
                entry["rows"] = stage.rows
            if stage.input.conditioning_rate != stage.input.model_rate:
                entry["conditioning_rate"] = stage.input.conditioning_rate
                entry["model_resampler"] = stage.input.model_resampler or (
                    stage.input.conditioning or self.conditioning).resampler
            if stage.input.channels != stage.manifest.input.channels:
                entry["channels"] = stage.input.channels
            out["artifacts"].append(entry)
        if signal_keys:
            out["signal"] = {"paired_mel": PAIRED_MEL.get(self.sample_rate), "lsd_offset": self.lsd_offset}
        return out


def evaluate(generated: str | Path, reference: str | Path | None = None, *, limit: int | None = None,
             per_file: bool = False, bootstrap: int = 0, **settings: Any) -> EvaluationResult:
    """Compute audioldm_eval's metrics between two folders of audio.

    Parameters
    ----------
    generated : path
        Folder of audio files (not searched recursively).
    reference : path, optional
        Folder of audio files, or a statistics file from ``audiofidelity stats`` (unpaired metrics only); None
        for reference-free metrics only (``METRICS[m].reference_free``).
    **settings
        ``EvaluationSettings``' fields, by keyword (each below), and the model families' options by name
        (``models.model_options()``: ``mert_chunk``, ``fad_pca``, ...). A settings object itself may be
        passed to ``Evaluator``.
    backbone : str
        Feature network (``models.backbone_names()``; default ``models.DEFAULTS``, audioldm_eval's).
    sample_rate : int
        Evaluation rate (``registry.backbones()``); every file is resampled to it.
    metrics : sequence of str, optional
        Names from ``METRICS``; default: all the backbone supports. The model is loaded only when a
        selected metric needs it (``psnr``, ``ssim`` and ``lsd`` do not).
    limit : int, optional
        Use only the first ``limit`` files of each sorted folder listing (audioldm_eval's ``limit_num``).
    models_dir : path, optional
        Directory with the exported artifacts (default ``$AUDIOFIDELITY_MODELS``, else ``models`` in the cache
        directory).
    conditioning : Conditioning, optional
        Channel, DC, resampler, padding and minimum-duration settings (default: audioldm_eval's).
    strict : bool
        Raise ``BadFilesError`` instead of skipping bad files.
    per_file : bool
        Add ``per_file``: each pair's PSNR, SSIM and LSD.
    lsd_offset : int
        Samples dropped from each generated clip before LSD (audioldm_eval: 1120, HiFi-GAN's delay).
    fad_model : str
        The embedding FAD reads (``registry.fad_models()``; default audioldm_eval's), its audio conditioned at its
        own rate as its reference toolkit does (provenance ``fad_model``).
    fad_pca, mert_chunk, ... :
        The model families' options (see each family module in ``audiofidelity/models/``), allowed when the run
        uses a model of that family.
    require_pinned : bool
        Refuse artifacts whose sha256 is not the registry's Hub pin.
    cache : bool or FeatureCache
        Reuse per-file features from the feature cache (``cache.py``); False computes everything.
    bootstrap : int
        When > 0, add ``bootstrap``: 95% intervals for FD, FAD and KID from this many file resamplings.
    workers : int
        Processes that decode and run the frontends while the models run (0: in this process). The
        features do not depend on it.
    precision : str
        ``fp32`` (default, exact); ``bf16`` (autocast) or ``tf32`` (CUDA only) as an explicit opt-in: faster,
        and the features move (README, "Speed and scale").
    max_memory : int, optional
        Bytes one model pass may use; a clip that would need more is refused by name before it runs
        (default: half the memory available at the start).
    batch_across_clips : bool
        Batch items of several clips in one forward pass (faster on the CPU; a clip's features then move in
        their last bits with the clips that share its pass, so cached and fresh runs can differ there).
    metric_options : MetricOptions, optional
        FD/FAD covariance estimator, KAD bandwidth, and how the ``*_inf`` extrapolations draw (``MetricOptions``).
    captions : path, optional
        For metric ``clap_score`` (with a CLAP ``fad_model``; ``clap_feeding`` chooses a toolkit's reading of the
        files): a JSON object or CSV of id -> caption (``captions.py``); each generated file takes the caption of its
        name or of its name without extension; files and captions left unmatched are named in ``problems``.

    Returns
    -------
    EvaluationResult
        ``.report``: ``metrics`` (audioldm_eval's keys; ``None`` where not computable, reason in
        ``unavailable``), ``mode``, ``files``, ``problems``, ``provenance`` (and ``details``: per result key, what
        a value rests on (FD rows, clipping, warnings; KAD bandwidth; extrapolation fits); ``per_file``,
        ``bootstrap``; ``error`` when a side has no usable file at all, so no metric could be computed).

    Raises
    ------
    InputFolderError, ArtifactNotFoundError, ChecksumMismatchError, BadFilesError, StatsFileError, ValueError
    """
    list_folder(generated)  # folder errors before the models load
    chosen = EvaluationSettings.from_keywords(**settings)
    if reference is None:
        check_reference_free(chosen.selected_metrics)
    elif not Path(reference).is_file():
        list_folder(reference)
    with Evaluator(chosen) as evaluator:
        return evaluator.evaluate(generated, reference, limit=limit, per_file=per_file, bootstrap=bootstrap)


__all__ = ["evaluate", "Evaluator", "EvaluationResult", "METRICS", "BACKBONE_METRICS", "OPT_IN_METRICS",
           "BOOTSTRAP_METRICS", "check_reference_free", "resolve_metrics"]
