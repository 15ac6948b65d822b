"""The feature pipeline: decode -> condition -> frontend -> batched model -> cache, for a folder of audio.

One ``ModelStage`` per artifact a run needs (the backbone's, the FAD model's): ``StageInput`` makes its model
input from a decoded clip (in worker processes with ``--workers``), ``EmbeddingRunner`` batches it through the
program, ``ModelStage.select`` keeps the features the metrics read, and the feature cache keeps them by
content. ``extract_features`` fills a folder's ``SideFeatures``; ``evaluate.Evaluator`` decides which stages a
run needs and what the metrics do with them.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import sys
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .artifacts import LoadedArtifact, load_postprocess
from .audio import (Conditioning, FileIdentity, channels_read, check_memory, check_sample_rate, condition,
                    condition_stereo, conditioning_bytes, file_problem, load_audio, mono_length, read_header,
                    validate_audio)
from .cache import FeatureCache
from .errors import InvalidAudioError, ManifestError, TooLongForMemoryError, UnreadableFileError
from .heap import return_free_heap
from .models import (Adjustment, FadModel, Scorer, apply_frontend, frontend_bytes, frontend_fitting, fits,
                     nominal_item_shape, nominal_pass_scale, postprocessor)
from .registry import export_command
from .resample import resample, resample_bytes, resampled_length
from .runner import DEFAULT_BATCH_SIZE, EmbeddingRunner, InputSpec, Items

log = logging.getLogger(__name__)

CHUNK_FILES = 16
"""Files decoded before each model pass: bounds memory to one chunk of model inputs."""
LOOKAHEAD_CHUNKS = 2
"""Chunks whose decoding may run ahead of the models with ``--workers`` (bounds the inputs held in memory)."""


@dataclass
class SideFeatures:
    """Model outputs for the usable files of one folder: per output, one array per file in ``files`` order."""

    folder: Path
    listed: list[str]
    files: list[str] = field(default_factory=list)
    per_file: dict[str, list[np.ndarray]] = field(default_factory=dict)
    problems: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        """A name that is not valid UTF-8 cannot be reported faithfully (JSON, CSV, logs): it is listed in its
        escaped form (``a\\xff.wav``) and skipped with the reason."""
        for index, name in enumerate(self.listed):
            shown = escaped_name(name)
            if shown != name:
                self.listed[index] = shown
                self.add_problem(shown, "its name is not valid UTF-8 (shown with escapes); rename the file")

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


def window_counts(side: SideFeatures, stages: Sequence[ModelStage], conditioning: Conditioning) -> dict[str, dict]:
    """For each stage whose frontend pads or cuts clips to its model's window (``models.fits``): how many of the
    side's used files it padded and cut, by artifact name, from the files' headers (``unreadable``: files whose
    header could not be read again, not counted either way)."""
    out: dict[str, dict] = {}
    for stage in (s for s in stages if fits(s.input.frontend)):
        counts = {"padded": 0, "cut": 0}
        for name in side.files:
            try:
                frames, rate = read_header(side.folder / name)
            except InvalidAudioError:
                counts["unreadable"] = counts.get("unreadable", 0) + 1
                continue
            what = stage.input.fitting(frames, rate, conditioning)
            if what is not None:
                counts[what] += 1
        out[stage.manifest.name] = counts
    return out


def escaped_name(name: str) -> str:
    """A file name as valid UTF-8: itself, or with its undecodable bytes as ``\\xNN`` escapes."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


@contextlib.contextmanager
def timed(phase: str):
    """Log (INFO, ``--verbose``) how long one phase of a run took, so slow runs can be explained."""
    start = time.perf_counter()
    yield
    log.info("%s took %.1f s", phase, time.perf_counter() - start)


Watch = Callable[[str, int, int], None]
"""``watch(phase, done, total)``, called after each chunk of files or pair; it may raise to stop the run."""


class Progress:
    """A tqdm bar (shown when ``enabled``) that also tells ``watch`` how far a phase has got."""

    def __init__(self, total: int, desc: str, enabled: bool, watch: Watch | None = None) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="clip", file=sys.stderr, disable=not enabled, leave=False)
        self.desc, self.total, self.done, self.watch = desc, total, 0, watch

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        self.done += n
        if self.watch is not None:
            self.watch(self.desc, self.done, self.total)

    def __enter__(self) -> "Progress":
        if self.watch is not None:
            self.watch(self.desc, 0, self.total)
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()


@dataclass(frozen=True)
class StageInput:
    """How one artifact's input is made from a decoded clip (picklable: it runs in worker processes).

    Audio is conditioned at ``conditioning_rate`` (the evaluation rate, or the FAD model's own),
    resampled to ``model_rate`` where that differs (MERT: evaluation rate -> 24 kHz, as audioldm_eval
    does with ``torchaudio.transforms.Resample``), and put through the frontend. ``conditioning``: this
    stage's own (a FAD model's toolkit's), None for the run's; ``channels``: 2 for a stereo model.
    """

    conditioning_rate: int
    model_rate: int
    frontend: dict
    spec: InputSpec
    batch_size: int = DEFAULT_BATCH_SIZE
    memory_budget: int | None = None
    """Bytes one model pass may use (None: no guard)."""
    too_long_advice: str = "split the file, or raise --max-memory"
    conditioning: Conditioning | None = None
    channels: int = 1
    resample_api: str = "transforms"
    """torchaudio's entry point the step from ``conditioning_rate`` to ``model_rate`` reproduces
    (``TORCHAUDIO_APIS``)."""
    model_resampler: str | None = None
    """The resampler of that step (None: the conditioning's)."""

    def model_input(self, audio: np.ndarray, rate: int, conditioning: Conditioning,
                    conditioned: dict[tuple, np.ndarray]) -> Items:
        """Frontend output for one decoded clip, (channels, n) at ``rate`` (``conditioned``: waveforms already
        conditioned, by rate, conditioning and channels, shared by the stages).

        Raises ``InvalidAudioError`` for a clip the model cannot take (``TooLongForMemoryError`` when its
        pass would not fit the memory budget)."""
        mine = self.conditioning or conditioning
        key = (self.conditioning_rate, mine, self.channels)
        if key not in conditioned:
            check_sample_rate(rate)
            validate_audio(channels_read(audio, mine.channel, self.channels), rate, min_duration=mine.min_duration)
            frames = mono_length(audio.shape[-1], audio.shape[0], mine.channel)
            check_memory(self.peak_bytes(frames, rate, conditioning), self.memory_budget,
                         f"conditioning and the {self.frontend.get('kind')} frontend of {frames} samples at {rate} Hz")
            make = condition if self.channels == 1 else condition_stereo
            conditioned[key] = make(audio, rate, self.conditioning_rate, mine)
        wave = resample(conditioned[key], self.conditioning_rate, self.model_rate,
                        method=self.model_resampler or mine.resampler,
                        api=self.resample_api)  # the input itself when the rates agree
        x = apply_frontend(wave, self.frontend)
        self.spec.check(x)
        if not all(np.all(np.isfinite(item)) for item in (x if isinstance(x, list) else [x])):
            raise InvalidAudioError(f"the {self.frontend.get('kind')} frontend's output is not finite")
        self.spec.check_memory(x, self.batch_size, self.memory_budget, self.too_long_advice)
        return x

    def fitting(self, frames: int, rate: int, conditioning: Conditioning) -> str | None:
        """What the frontend does to a clip of ``frames`` samples at ``rate`` to fit the model's window
        (``"padded"``, ``"cut"`` or None), from its length alone: the lengths conditioning gives it, then
        ``models.frontend_fitting``."""
        mine = self.conditioning or conditioning
        n = max(resampled_length(frames, rate, self.conditioning_rate, method=mine.resampler), mine.min_samples)
        return frontend_fitting(resampled_length(n, self.conditioning_rate, self.model_rate,
                                                 method=self.model_resampler or mine.resampler), self.frontend)

    def peak_bytes(self, frames: int, rate: int, conditioning: Conditioning) -> float:
        """Bytes this stage allocates for a clip of ``frames`` samples at ``rate`` before its model pass
        (conditioning, the second resampling, the frontend), known before any of it runs."""
        mine = self.conditioning or conditioning
        conditioned = max(math.ceil(frames * self.conditioning_rate / rate), mine.min_samples)
        at_model = math.ceil(conditioned * self.model_rate / self.conditioning_rate)
        return (conditioning_bytes(frames, rate, self.conditioning_rate, mine, self.channels)
                + self.channels * resample_bytes(conditioned, self.conditioning_rate, self.model_rate,
                                                 method=self.model_resampler or mine.resampler)
                + frontend_bytes(at_model, self.frontend))


@dataclass(frozen=True)
class Feature:
    """A per-file feature a stage keeps: artifact output ``output`` (hidden layer ``layer`` of it, if set),
    stored and cached as ``name``."""

    name: str
    output: str
    layer: int | None = None


@dataclass(frozen=True)
class ModelStage:
    """One artifact in the feature pass: how its input is made, its runner, the features it keeps, the
    post-processing of those, and its cache settings."""

    input: StageInput
    runner: EmbeddingRunner
    postprocess: Callable[[np.ndarray], np.ndarray] | None
    cache_settings: dict
    features: tuple[Feature, ...]
    rows: str | None = None
    """The family function that joins a clip's rows after the cache (``FadModel.rows``), by name, for the report."""

    @property
    def manifest(self):
        return self.runner.artifact.manifest

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def outputs(self) -> set[str]:
        """The artifact outputs the kept features come from (the runner copies out only these)."""
        return {f.output for f in self.features}

    def select(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The kept features of one file's model outputs (what is cached)."""
        return {f.name: outputs[f.output] if f.layer is None else np.ascontiguousarray(outputs[f.output][f.layer])
                for f in self.features}

    def _expected_tail(self, feature: Feature) -> tuple:
        """The shape a kept feature has per file after its leading items axis, if any (names: any size)."""
        return self.manifest.output(feature.output).per_item_of(feature.layer)

    def valid_entry(self, entry: dict[str, np.ndarray]) -> bool:
        """Whether a cached entry holds exactly this stage's features, of their shapes, finite float32."""
        if set(entry) != set(self.names):
            return False
        for feature in self.features:
            value, tail = entry[feature.name], self._expected_tail(feature)
            one_row = self.runner.one_item or self.runner.collect in ("mean", "max")
            items_axis = 0 if one_row or (tail and isinstance(tail[0], str)) else 1
            if value.dtype != np.float32 or value.ndim != len(tail) + items_axis or not np.all(np.isfinite(value)):
                return False
            if any(isinstance(want, int) and got != want for got, want in zip(value.shape[items_axis:], tail)):
                return False
        return True


@dataclass
class _Job:
    """One file of a chunk: its cache keys, the entries found, and its model inputs (computed or pending)."""

    name: str
    keys: list = field(default_factory=list)
    entries: list = field(default_factory=list)
    work: Future | tuple | None = None
    reason: str | None = None


def compute_inputs(path: Path, inputs: Sequence[StageInput], missing: Sequence[int], conditioning: Conditioning,
                   identity: FileIdentity | None = None) -> tuple[dict[int, Items], str | None, list[int]]:
    """Decode ``path`` once and make the model inputs of the ``missing`` stages.

    Memory is checked before decoding: the decoded clip plus every missing stage's ``peak_bytes`` must fit the
    budget. ``identity``: the file's identity when its content was hashed for the cache keys; a file that
    changed since is refused uncached, so no key ever holds another content's features.

    Returns (inputs by stage index, rejection reason or None, the stages whose rejection may be cached): a
    decoding or validation failure rejects it for every missing stage, an input one stage cannot take
    (too short for it) for that stage only; a clip too long for the memory budget is rejected uncached
    (another budget may take it). Module-level so worker processes can run it.
    """
    if not missing:
        return {}, None, []
    budget = min((b for b in (inputs[i].memory_budget for i in missing) if b is not None), default=None)

    def cost(frames: int, channels: int, rate: int) -> float:  # what the stages will allocate for this clip
        return sum(inputs[i].peak_bytes(mono_length(frames, channels, (inputs[i].conditioning or conditioning).channel),
                                        rate, conditioning) for i in missing)

    try:
        audio, rate = load_audio(path, memory_budget=budget, cost=cost, expected=identity)
    except TooLongForMemoryError as exc:
        return {}, str(exc), []
    except UnreadableFileError as exc:  # says nothing about the content the keys name: not cached
        return {}, str(exc), []
    except InvalidAudioError as exc:
        return {}, str(exc), list(missing)
    made: dict[int, Items] = {}
    conditioned: dict[tuple, np.ndarray] = {}
    for i in missing:
        try:
            made[i] = inputs[i].model_input(audio, rate, conditioning, conditioned)
        except TooLongForMemoryError as exc:
            return {}, str(exc), []
        except InvalidAudioError as exc:
            return {}, str(exc), [i]
    return made, None, []


WATCH_SECONDS = 0.5


def exit_with_parent(parent: int) -> None:
    """Pool initializer: end this worker when its parent process is gone (killed with -9 included), checked
    every ``WATCH_SECONDS`` by a daemon thread, so no worker outlives the CLI or the server that started it."""
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops the workers
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked since spawn_pool started this process


def stop_pool(pool) -> None:
    """End a ``spawn_pool`` now: queued work cancelled, worker processes terminated (an interrupted run does not
    wait for the chunks in flight), then the pool shut down."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):  # no public handle on them
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def spawn_pool(workers: int):
    """A process pool for decoding and frontends (spawned: no fork of a process that has torch threads); its
    workers exit on their own when this process dies, and ignore Ctrl-C (``stop_pool`` ends them)."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    import signal

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent,
                               initargs=(os.getpid(),))
    # every worker is started now with Ctrl-C blocked (a mask survives exec), so one pressed while a worker is still
    # starting Python cannot kill it mid-import with a fatal error on stderr; its initializer ignores Ctrl-C and
    # unblocks it, and this process takes it as before
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for _ in range(workers):
            pool.submit(int)  # each submit with no idle worker starts one
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return pool


def extract_features(side: SideFeatures, stages: Sequence[ModelStage], conditioning: Conditioning, *,
                     cache: FeatureCache | None = None, progress: bool = True, label: str = "",
                     pool=None, watch: Watch | None = None,
                     fold: Callable[[SideFeatures], None] | None = None) -> SideFeatures:
    """Fill ``side`` with every stage's outputs for the usable files; record the others as problems.

    Each file is looked up in ``cache`` per stage; only files with a missing entry are decoded (once,
    for all the stages that need them) and run through the models in batches, chunk by chunk. With a
    ``pool`` (``--workers``: a callable that starts the pool on first use, so a fully cached run starts no
    process), decoding and frontends of the next chunks run in worker processes while
    the models run on the current one (at most ``LOOKAHEAD_CHUNKS`` chunks ahead, so memory stays
    bounded); results are taken in listing order, so they do not depend on the worker count. A file
    that any stage rejects (too short for it, say) is skipped for all of them, so every metric sees
    the same files. ``fold``, called after each chunk, may take the rows added so far out of ``side.per_file``
    (into running statistics), so a folder's rows need not all be held at once.
    """
    side.per_file = {name: [] for st in stages for name in st.names}
    inputs = [st.input for st in stages]
    chunks = [side.listed[i:i + CHUNK_FILES] for i in range(0, len(side.listed), CHUNK_FILES)]

    def plan(chunk: list[str]) -> list[_Job]:
        jobs = []
        rejected = {p["file"]: p["reason"] for p in side.problems}
        for name in chunk:
            path = side.folder / name
            problem = rejected.get(name) or file_problem(path)
            if problem is not None:
                jobs.append(_Job(name, reason=problem))
                continue
            try:
                identity, keys = cache.keys_and_identity(path, [st.cache_settings for st in stages]) if cache \
                    else (FileIdentity.of(os.stat(path)), [None] * len(stages))
            except (InvalidAudioError, OSError) as exc:  # vanished, replaced or changed while it was hashed
                jobs.append(_Job(name, reason=str(exc) if isinstance(exc, InvalidAudioError)
                                 else f"cannot be read ({exc.strerror or exc})"))
                continue
            job = _Job(name, keys, [cache.get(k, st.valid_entry) if cache and k is not None else None
                                    for k, st in zip(keys, stages)])
            missing = [i for i, e in enumerate(job.entries) if e is None]
            if missing and not any(isinstance(e, str) for e in job.entries):
                job.work = pool().submit(compute_inputs, path, inputs, missing, conditioning, identity) if pool \
                    else compute_inputs(path, inputs, missing, conditioning, identity)
            jobs.append(job)
        return jobs

    ahead = LOOKAHEAD_CHUNKS if pool else 0
    with Progress(len(side.listed), label or side.folder.name, progress, watch) as bar:
        planned = [plan(chunk) for chunk in chunks[:ahead + 1]]
        for index, chunk in enumerate(chunks):
            if index + ahead + 1 < len(chunks):
                planned.append(plan(chunks[index + ahead + 1]))
            _run_chunk(side, stages, planned.pop(0), cache)
            if fold is not None:
                fold(side)
            return_free_heap()
            bar.update(len(chunk))
    return side


def _run_chunk(side: SideFeatures, stages: Sequence[ModelStage], jobs: list[_Job], cache: FeatureCache | None) -> None:
    """Collect one chunk's inputs, run the models on those not cached, cache and append the outputs."""
    pending: dict[str, dict[int, np.ndarray]] = {}
    usable: list[_Job] = []
    for job in jobs:
        reason = job.reason or next((e for e in job.entries if isinstance(e, str)), None)
        if reason is None and job.work is not None:
            made, reason, rejected = job.work.result() if isinstance(job.work, Future) else job.work
            for i in rejected:
                if cache:
                    cache.put(job.keys[i], reason)
            pending[job.name] = made
        if reason is not None:
            side.add_problem(job.name, reason)
            continue
        usable.append(job)
    for i, stage in enumerate(stages):
        todo = [job for job in usable if i in pending.get(job.name, {})]
        outputs = stage.runner.run([pending[job.name][i] for job in todo], stage.outputs) if todo else {}
        for row, job in enumerate(todo):
            job.entries[i] = stage.select({output: values[row] for output, values in outputs.items()})
            if cache:
                cache.put(job.keys[i], job.entries[i])
    for job in usable:
        for stage, entry in zip(stages, job.entries):
            for name in stage.names:
                value = entry[name]
                side.per_file[name].append(stage.postprocess(value) if stage.postprocess else value)
        side.files.append(job.name)


def bound_postprocess(artifact: LoadedArtifact) -> Callable[[np.ndarray], np.ndarray]:
    """The artifact's manifest post-processing (verified data bound in), e.g. VGGish's PCA."""
    data = load_postprocess(artifact)
    return functools.partial(postprocessor(data.pop("kind")), **data)


@dataclass(frozen=True)
class RunSettings:
    """How an evaluator runs its models, the same for every stage: part of each stage's cache key."""

    conditioning: Conditioning
    device: str
    precision: str
    batch_size: int = DEFAULT_BATCH_SIZE
    across_clips: bool = False
    memory_budget: int | None = None


def build_stage(artifact: LoadedArtifact, run: RunSettings, *, rate: int, frontend: dict, collect: str | None,
                features: tuple[Feature, ...], conditioning: Mapping[str, Any], post,
                too_long_advice: str, resample_api: str | None = None, model_resampler: str | None = None,
                channels: int = 0) -> ModelStage:
    """One artifact's stage: audio conditioned at ``rate`` (the run's ``Conditioning`` with the fields
    ``conditioning`` sets: a toolkit's reading of a file) and resampled from there to the model's rate with
    ``model_resampler`` (None: the conditioning's; torchaudio's through ``resample_api``, default ``transforms``),
    ``frontend`` (``collect``: how a clip's items become one row, MERT or CLAP windows averaged), ``channels`` fed
    (0: the manifest's), the ``features`` kept, post-processing ``post``."""
    merged = replace(run.conditioning, **conditioning)
    own = None if merged == run.conditioning else merged
    manifest = artifact.manifest
    channels = channels or manifest.input.channels
    settings = {"artifact": manifest.sha256, "frontend": frontend, "conditioning_rate": rate,
                "conditioning": merged.as_dict(), "device": run.device.split(":")[0],
                "precision": run.precision, "batch_size": run.batch_size,
                "features": [asdict(f) for f in features], **({"collect": collect} if collect else {}),
                **({"channels": channels} if channels != 1 else {}),
                **({"batch_across_clips": True} if run.across_clips else {}),
                **({"resample_api": resample_api} if resample_api else {}),
                **({"model_resampler": model_resampler} if model_resampler else {})}
    nominal = nominal_item_shape(frontend, channels)
    runner = EmbeddingRunner(artifact, batch_size=run.batch_size, collect=collect, precision=run.precision,
                             across_clips=run.across_clips, nominal_shape=nominal,
                             nominal_scale=nominal_pass_scale(frontend))
    settings["passes"] = {"nominal_shape": list(nominal) if nominal else None,  # which items run in full passes,
                          "nominal_pass": runner.nominal_pass,  # how many a pass holds,
                          "layout": runner.layout}  # and the layout of the weights (LoadedArtifact.program_for)
    stage_input = StageInput(rate, manifest.sample_rate, frontend, runner.input_spec, run.batch_size,
                             run.memory_budget, too_long_advice, own, channels, resample_api or "transforms",
                             model_resampler)
    return ModelStage(stage_input, runner, post, settings, features)


BACKBONE_ROLES = {"embedding", "logits", "layers"}
"""Feature roles the backbone's stage keeps (a FAD model's rows are kept by its own stage)."""
TOO_LONG_ADVICE = "split the file, or raise --max-memory"


def backbone_stage(artifact: LoadedArtifact, run: RunSettings, *, rate: int, adjust: Adjustment | None = None,
                   too_long_advice: str = TOO_LONG_ADVICE,
                   keep: tuple[Feature, ...] | None = None) -> tuple[ModelStage, dict[str, str]]:
    """A classifier's stage, as audioldm_eval feeds it: audio conditioned at the evaluation ``rate`` with the
    run's conditioning, every output that plays a backbone role kept under its own name, or the features
    ``keep`` names; ``adjust``: what the family's options change (``--mert-chunk``'s windows, averaged;
    ``--passt-feeding``'s conditioning and windows). Returns
    the stage and the roles it plays (role -> feature)."""
    manifest = artifact.manifest
    kept = [o.name for o in manifest.output_specs if set(o.roles) & BACKBONE_ROLES]
    roles = {role: output for role, output in manifest.roles().items() if role in BACKBONE_ROLES}
    adjust = adjust or Adjustment()
    stage = build_stage(artifact, run, rate=rate, frontend={**manifest.frontend, **adjust.frontend},
                        collect=adjust.collect, features=keep or tuple(Feature(name, name) for name in kept),
                        conditioning=adjust.conditioning,
                        post=bound_postprocess(artifact) if adjust.postprocess else None,
                        too_long_advice=too_long_advice)
    return stage, roles


def scorer_stage(artifact: LoadedArtifact, run: RunSettings, scorer: Scorer) -> tuple[ModelStage, dict[str, str]]:
    """A reference-free score's stage (``Scorer``): audio conditioned at the model's rate as its toolkit reads files,
    the manifest's frontend, every item's rows of the outputs playing the scorer's roles kept. Returns the stage and
    its roles (role -> feature).

    Raises ``ManifestError`` (with the re-export command) when the artifact lacks one of those outputs."""
    manifest = artifact.manifest
    roles = manifest.roles()
    missing = [role for role in scorer.roles if role not in roles]
    if missing:
        raise ManifestError(f"artifact {scorer.artifact!r} declares no output with role(s) {', '.join(missing)}, "
                            f"which {scorer.name!r} needs; re-export it: {export_command(scorer.artifact, force=True)}")
    features = tuple(Feature(f"{scorer.name}.{roles[role]}", roles[role]) for role in scorer.roles)
    stage = build_stage(artifact, run, rate=manifest.sample_rate, frontend=dict(manifest.frontend), collect=None,
                        features=features, conditioning=dict(scorer.conditioning), post=None,
                        too_long_advice=TOO_LONG_ADVICE)
    return stage, {role: feature.name for role, feature in zip(scorer.roles, features)}


def fad_stage(artifact: LoadedArtifact, run: RunSettings, fad: FadModel, *, adjust: Adjustment | None = None,
              keep: tuple[Feature, ...] | None = None) -> tuple[ModelStage, dict[str, str]]:
    """A FAD model's stage: audio conditioned at the model's own rate as its reference toolkit does, the one
    output (layer) FAD reads kept under the FAD model's name, or the features ``keep`` names; ``adjust``: what the
    family's options change (``--fad-pca``'s post-processing). Returns the stage and its role.

    Raises ``ManifestError`` (with the re-export command) when the artifact lacks the output the model reads.
    """
    manifest = artifact.manifest
    output = manifest.roles().get(fad.role)
    if output is None:
        raise ManifestError(f"artifact {fad.artifact!r} declares no output with role {fad.role!r}, which FAD "
                            f"model {fad.name!r} needs; re-export it: {export_command(fad.artifact, force=True)}")
    adjust = adjust or Adjustment()
    post = bound_postprocess(artifact) if adjust.postprocess else None
    if fad.rows is not None:
        post = fad.rows if post is None else _then(post, fad.rows)
    stage = build_stage(artifact, run, rate=adjust.rate or fad.rate or manifest.sample_rate,
                        resample_api=adjust.resample_api, model_resampler=fad.model_resampler, channels=fad.channels,
                        frontend={**manifest.frontend, **dict(fad.frontend), **adjust.frontend},
                        collect=fad.collect or adjust.collect,
                        features=keep or (Feature(fad.name, output, fad.layer),),
                        conditioning={**dict(fad.conditioning), **adjust.conditioning},
                        post=post, too_long_advice=TOO_LONG_ADVICE)
    if fad.rows is not None:
        stage = replace(stage, rows=fad.rows.__name__)
    return stage, {"fad": fad.name}


def _then(first: Callable[[np.ndarray], np.ndarray],
          second: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda rows: second(first(rows))
