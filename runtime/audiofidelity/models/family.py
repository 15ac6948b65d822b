"""What a model family declares: its artifacts, FAD embeddings, frontends, post-processing and options.

A model family is everything the runtime knows about one kind of network and how audio is fed to it, in one
module under ``audiofidelity/models/`` (``cnn14.py``, ``vggish.py``, ...), as torch-fidelity's feature
extractors declare what they provide. The generic core (pipeline, evaluation, metrics, CLI, service, compat)
reads families only through ``audiofidelity.models``; it names no model.

A family declares:

- ``artifacts``: its registry entries (name, rates, licence, upstream source and sha256, Hub pin);
- ``fad_models``: the ``--fad-model`` embeddings it offers and the toolkit whose feeding each follows;
- ``frontends``: the frontend kinds its manifests name, each with its peak-memory estimate;
- ``postprocessors``: post-processing kinds its manifests carry data for (VGGish's PCA);
- ``options``: its model-specific settings (``--mert-chunk``, ``--fad-pca``) with their validation, and how
  each changes a stage (``Adjustment``);
- ``package_models``: how a reference package (frechet_audio_distance) names its models;
- ``scorers``: the reference-free per-file scores its artifacts give (``Scorer``).

Which outputs a family's artifacts provide to which metric is declared in each artifact's manifest (output
``roles``), written by the family's export module.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class HubPin:
    """Where a published artifact lives on the Hugging Face Hub, pinned to one commit and its bytes."""

    repo_id: str
    revision: str
    sha256: str
    manifest_sha256: str
    size: int


@dataclass(frozen=True)
class ArtifactEntry:
    """One exportable model: what it serves, where its original checkpoint comes from, where it is published.

    ``role``: ``"classifier"`` artifacts are backbones (embedding + logits for FD/KL/IS/KID);
    ``"embedding"`` artifacts (VGGish, EnCodec, CLAP) only embed, for FAD; ``"text"`` artifacts embed captions
    (CLAP's text towers); ``"quality"`` artifacts score each file without a reference (audiobox-aesthetics);
    the ``"benchmark"`` artifact (SC09's classifier) serves its benchmark's metrics.
    ``rates``: the evaluation sample rates a backbone serves (the model's own input rate is in its manifest).
    """

    name: str
    role: str
    backbone: str
    rates: tuple[int, ...]
    architecture: str
    source_file: str
    source_url: str
    license: str
    hub: HubPin | None = None
    source_sha256: str | None = None
    """sha256 of the upstream checkpoint when known; ``export.py --download`` checks it and always records it."""
    source_revision: str | None = None
    """For a Hugging Face source (MERT): the upstream commit to download."""
    origin: str = ""
    """Where the original checkpoint is published, in words (for error messages and ``models list``)."""
    extra_sources: tuple[str, ...] = ()
    """Export options naming further upstream files (VGGish's ``--pca``), as ``OPTION FILE``."""
    model_rate: int = 0
    """The rate the network itself takes (its manifest's ``sample_rate``), for ``models list``."""
    channels: int = 1
    dimension: int = 0
    """Width of the embedding rows FAD reads."""
    frames: str = ""
    """How many rows a clip gives, in words (``models list``)."""
    frame_seconds: float = 0.0
    """Hop between a frame-level output's rows in seconds (0: one row per clip), for timestamps (HEAR)."""
    description: str = ""
    """One line for people: the service's model list and ``models list``."""
    adapter_output: str = "embedding"
    """The ``Embedder`` output the HEAR and EVAR adapters read by default (frame rows where the model has them)."""
    provides: tuple[str, ...] = ("embedding", "logits")
    """A classifier's feature roles (its manifest's output roles), which decide the metrics its backbone offers."""
    extra_urls: tuple[str, ...] = ()
    """Where ``export.py --download`` fetches each of ``extra_sources`` (a text tower's tokenizer files)."""
    text_tower: str = ""
    """The artifact holding the text tower of the same checkpoint (a CLAP audio tower's pair), or empty."""

    @property
    def published(self) -> bool:
        return self.hub is not None


@dataclass(frozen=True)
class FadModel:
    """An embedding ``--fad-model`` accepts: which artifact output's rows enter FAD, and how audio is prepared.

    ``role``: the manifest role of the output whose rows FAD reads (``fad``: frame rows, ``embedding``: one row
    per clip, ``hidden_states``: MERT's frame rows of every layer, of which ``layer`` is taken).
    ``toolkit``: the reference whose feeding it follows; ``conditioning``: the ``Conditioning`` fields that
    toolkit sets differently from audioldm_eval's (VGGish keeps audioldm_eval's: its FAD is audioldm_eval's).
    """

    name: str
    artifact: str
    role: str
    toolkit: str
    layer: int | None = None
    conditioning: tuple[tuple[str, Any], ...] = (("remove_dc", False), ("min_samples", 0))
    frontend: tuple[tuple[str, object], ...] = ()
    """Frontend parameters set differently from the manifest's (a toolkit's other feeding of the model)."""
    collect: str | None = None
    """How a clip's items become its rows (``COLLECTS``): CLAP's 10-s windows of a longer clip, averaged."""
    rate: int | None = None
    """The rate the toolkit conditions audio at before the model's own (None: the model's), where the stage's second
    resampling, with ``model_resampler``, takes it (stable-audio-metrics' OpenL3: soxr to 44.1 kHz, then openl3's
    resampy to 48 kHz)."""
    model_resampler: str | None = None
    """The resampler of that second step (None: the conditioning's)."""
    channels: int = 0
    """Channels fed to the frontend (0: the manifest's): 2 gives a mono model both channels of a clip (a mono clip's
    one twice), each its own items, for ``rows`` to join."""
    rows: Callable[[np.ndarray], np.ndarray] | None = None
    """How a clip's rows become the rows FAD reads (OpenL3's stereo: left and right joined per window), applied
    after the cache (which keeps the model's own rows)."""



@dataclass(frozen=True)
class Scorer:
    """A reference-free per-file score a family's artifact gives (audiobox-aesthetics): the metric ``name`` that
    reports it, the ``artifact``, the output ``roles`` its stage keeps (each row per item: a clip's windows), and
    the ``Conditioning`` fields its toolkit's reading of a file sets."""

    name: str
    artifact: str
    roles: tuple[str, ...]
    keys: tuple[str, ...]
    """The result keys, one per value ``clip_values`` gives."""
    clip_values: Callable[[dict[str, np.ndarray], dict[str, Any]], np.ndarray]
    """``(rows by role, output transforms by role) -> one value per key`` for one clip."""
    description: str = ""
    conditioning: tuple[tuple[str, Any], ...] = ()


TYPICAL_CLIP_SECONDS = 10
"""The clip length evaluation sets use (AudioCaps, MusicCaps, audioldm_eval's and most generators' outputs): a
whole-clip frontend's nominal items are those of a clip this long (``Frontend.nominal_samples``)."""


@dataclass(frozen=True)
class Frontend:
    """A frontend kind a manifest may name: ``compute(wave, **parameters) -> model input`` (items first),
    ``peak_bytes(n, **parameters) -> bytes`` it allocates for ``n`` samples, known before it runs, and what it
    does to a clip's length (``fitting``)."""

    kind: str
    compute: Callable[..., Any]
    peak_bytes: Callable[..., float]
    fitting: Callable[..., str | None] | None = None
    """``fitting(n, **parameters)``: ``"padded"`` or ``"cut"`` when the frontend zero-pads or drops samples of a
    clip of ``n`` samples to fit the model's window (counted in the report), None when it feeds them all as they
    are; None: it never does."""
    nominal_samples: Callable[..., int | None] | None = None
    """``nominal_samples(**parameters)``: a clip length (at the model's rate) whose items all have the frontend's
    usual shape (its window's), or None when item shapes follow the clip's length (CNN14's frames, MERT's samples).
    Items of that shape run in full passes across clips (``runner``); others one clip at a time."""
    pass_scale: int = 1
    """A full pass holds ``pass_scale`` times the run's batch size of nominal items (within the runner's memory
    bound): more where one item is a small part of a clip and a pass of a batch size's worth leaves the CPU's
    matrix units idle (VGGish's 0.96-s examples)."""


COLLECTS = ("mean", "max", "each")
"""How a clip's items (windows) become its rows: one row, their mean or each column's largest value
(stable-audio-metrics' ``collect="max"``), or one row per item even where the manifest's own feeding gives one
item per clip (audiocraft's segments); ``None``: as the manifest says."""


@dataclass(frozen=True)
class KLDefinition:
    """Which KL a toolkit reports under audioldm_eval's name: ``reverse`` False is KL(reference || generated)
    (audioldm_eval, av-benchmark, audiocraft's ``kld``), True KL(generated || reference) (stable-audio-metrics);
    ``epsilon`` is added inside the log to the distribution in second place (0: none, av-benchmark's logs of the
    logits); ``per_segment``: each of a clip's rows (segments) is paired with the same row of the other file and
    the mean is over segments (audiocraft); ``both_directions``: the reverse KL and the sum of the two go into the
    details (audiocraft's ``kld_qp`` and ``kld_both``). ``metrics.kl.kl_divergence`` computes it."""

    toolkit: str = "audioldm_eval"
    reverse: bool = False
    epsilon: float = 1e-6
    per_segment: bool = False
    both_directions: bool = False

    def describe(self) -> str:
        first, second = ("generated", "reference") if self.reverse else ("reference", "generated")
        where = f"{self.epsilon:g} added to the {second} probabilities inside the log" if self.epsilon else "no epsilon"
        unit = "segment" if self.per_segment else "pair"
        return (f"KL({first} || {second}) per {unit}, summed over classes, mean over {unit}s; {where} "
                f"({self.toolkit})")


AUDIOLDM_EVAL_KL = KLDefinition()


@dataclass(frozen=True)
class Adjustment:
    """How a model option changes one stage: frontend parameters set, ``Conditioning`` fields set (a toolkit's
    reading of a file), how a clip's items become its rows (``COLLECTS``), post-processing applied (a manifest
    post-processing kind), and the KL the ``kl`` metrics compute on its logits (a toolkit's definition).

    ``rate``: condition audio at this rate instead of the model's own, then resample to the model's rate with
    torchaudio's ``resample_api`` entry point (audioldm_eval's CLAP score: 32 kHz, padded there, then 48 kHz);
    ``caption_tokens``: the length captions are padded and truncated to for the stage's text tower (audioldm_eval's
    CLAP score: 512)."""

    frontend: dict[str, Any] = field(default_factory=dict)
    collect: str | None = None
    postprocess: bool = False
    conditioning: dict[str, Any] = field(default_factory=dict)
    kl: KLDefinition | None = None
    rate: int | None = None
    resample_api: str | None = None
    caption_tokens: int | None = None


@dataclass(frozen=True)
class ModelOption:
    """A setting one family adds to the run (``--mert-chunk``, ``--fad-pca``), declared once.

    ``name``: the keyword of the Python API and the settings object (the flag is ``--`` + dashes);
    ``stage``: ``"backbone"`` or ``"fad"``, the stage it changes when the chosen model belongs to the family;
    ``parse``: the command line's type; ``check(value) -> value``: validation (raises ``ValueError``) shared by
    every entry point; ``adjust(value, model_rate) -> Adjustment``: what it does; ``flag_only``: a switch.
    """

    name: str
    stage: str
    help: str
    adjust: Callable[[Any, int], Adjustment]
    parse: Callable[[str], Any] | None = None
    check: Callable[[Any], Any] = lambda value: value
    flag_only: bool = False
    metavar: str | None = None
    provenance: str | None = None
    """The report's provenance key for its value (``None``: the option's name)."""
    refuse: Callable[[Any, str], str | None] | None = None
    """``refuse(value, model) -> reason`` when a valid value cannot serve the chosen model of the family (a feeding
    its toolkit never gives that model), else None."""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class PackageModel:
    """How a reference package names one of this family's FAD models (frechet_audio_distance's ``model_name``,
    ``sample_rate``, ``submodel_name``), and what its feeding changes in the frontend."""

    package: str
    model_name: str
    sample_rate: int
    fad_model: str
    submodel: str | None = None
    channels: int = 1
    frontend: tuple[tuple[str, object], ...] = ()
    options: tuple[str, ...] = ()
    """The package's model-specific keyword arguments (``use_pca``) this model accepts."""


@dataclass(frozen=True)
class ModelFamily:
    """Everything the runtime knows about one model family (see the module docstring)."""

    name: str
    artifacts: tuple[ArtifactEntry, ...]
    fad_models: tuple[FadModel, ...] = ()
    frontends: tuple[Frontend, ...] = ()
    postprocessors: dict[str, Callable[..., np.ndarray]] = field(default_factory=dict)
    options: tuple[ModelOption, ...] = ()
    package_models: tuple[PackageModel, ...] = ()
    scorers: tuple[Scorer, ...] = ()
    too_long_advice: Callable[[Any, int, int, int, Any], str] | None = None
    """``(memory model, model rate, budget, batch size, options) -> advice`` for a clip too long for the memory
    budget (MERT: the ``--mert-chunk`` that would fit), or None for the generic advice."""
