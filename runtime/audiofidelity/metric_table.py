"""The metrics: what each one reads from the features and computes, which are selected, and their bootstrap.

``METRICS`` maps every ``--metrics`` name to a ``MetricSpec`` (result keys, the model and feature role it reads,
its computation on ``EvaluationData``); ``BACKBONE_METRICS`` lists audioldm_eval's per backbone (the default
selection) and ``OPT_IN_METRICS`` those computed only when named. The math itself lives in ``metrics/``, one
module per family; ``evaluate.py`` gathers the features and calls ``compute_metrics``.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal, Mapping, Sequence, overload

import numpy as np

from .features import SideFeatures
from .models import AUDIOLDM_EVAL_KL, KLDefinition, Scorer, builtin_entries, scorers
from .metrics import chroma, clap_score, frechet, inception, kad, kernel, kl, prdc, signal
from .metrics.bootstrap import DEFAULT_SEED, bootstrap_interval, stack_files
from .metrics.extrapolation import extrapolate
from .metrics.options import MetricOptions
from .paired import PairValues
from .probabilities import ReferenceProbabilities
from .stats import ReferenceStats
from .errors import MetricUnavailableError

log = logging.getLogger(__name__)


@dataclass
class EvaluationData:
    """What the metrics read: both sides' features, the KL pairs, and the per-pair signal values.

    ``roles`` maps a feature role (``embedding``, ``logits``, ``layers``, ``fad``) to the artifact output
    that plays it, as the manifests declare. With ``reference_stats`` the reference side is a statistics
    file instead of features. ``options``: how the metrics beyond audioldm_eval's are computed; ``kl_definition``:
    which toolkit's KL the ``kl`` metrics compute; the metrics
    write what a reader needs to trust a value (bandwidth, clipping, fit) into ``details``, by result key.
    """

    generated: SideFeatures
    reference: SideFeatures
    pairs: list[str]
    roles: dict[str, str] = field(default_factory=dict)
    signal: PairValues | None = None
    reference_stats: ReferenceStats | None = None
    options: MetricOptions = field(default_factory=MetricOptions)
    details: dict[str, dict] = field(default_factory=dict)
    kl_definition: KLDefinition = AUDIOLDM_EVAL_KL
    """The KL the chosen feeding's toolkit reports (a model option's ``Adjustment.kl``)."""
    reference_probabilities: ReferenceProbabilities | None = None
    """The reference as class probabilities per id (a reference-probabilities file): KL only."""
    captions: Mapping[str, np.ndarray] | None = None
    """Each generated file's caption embedding (text tower), for the files that have a caption: CLAP score."""
    reference_captions: Mapping[str, np.ndarray] | None = None
    """The same for the reference folder's files (CLAP score's sanity figures)."""
    output_transforms: dict[str, dict] = field(default_factory=dict)
    """How an output role's values map to the units reported (a manifest's ``output_transforms``), by role."""
    per_file: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per-file values a metric computes on the way (file -> key -> value), for ``--per-file``."""

    def output(self, role: str) -> str:
        """The artifact output that plays ``role``."""
        if role not in self.roles:
            raise MetricUnavailableError(f"no loaded model provides {role!r} features")
        return self.roles[role]

    def _no_features(self, role: str) -> None:
        if self.reference_probabilities is not None:
            raise MetricUnavailableError(f"the reference is a class-probabilities file: it holds no {role} features")

    @overload
    def reference_files(self, role: str, *, required: Literal[True] = ...) -> list[np.ndarray]: ...
    @overload
    def reference_files(self, role: str, *, required: bool) -> list[np.ndarray] | None: ...

    def reference_files(self, role: str, *, required: bool = True) -> list[np.ndarray] | None:
        """The reference's per-file arrays of ``role``. From a statistics file without them: ValueError
        (``required``) or None."""
        self._no_features(role)
        if self.reference_stats is None:
            return self.reference.per_file[self.output(role)]
        return self.reference_stats.per_file(role) if required else self.reference_stats.role(role).per_file

    def reference_rows(self, role: str) -> np.ndarray:
        """The reference's stacked rows of ``role`` (a statistics file's stored features)."""
        self._no_features(role)
        if self.reference_stats is not None:
            return self.reference_stats.features(role)
        return self.reference.matrix(self.output(role))

    def both(self, role: str) -> tuple[np.ndarray, np.ndarray]:
        """Stacked rows of ``role`` for (generated, reference), in the original's row order."""
        return self.generated.matrix(self.output(role)), self.reference_rows(role)

    def frechet_of(self, role: str, generated: np.ndarray) -> tuple[float, dict]:
        """FD of generated rows against the reference's ``role`` (its statistics file's Gaussian when there is
        one and the covariance is the originals'), with its details (``frechet.frechet_distance_checked``)."""
        if self.reference_stats is not None and self.options.covariance == "mle":
            return self.reference_stats.frechet_distance_checked(role, generated)
        reference = self.reference_rows(role)
        return frechet.frechet_distance_checked(generated, reference, covariance=self.options.covariance)

    def frechet(self, role: str, key: str) -> float:
        """FD of ``role`` between the sides; its details go under ``key``."""
        value, self.details[key] = self.frechet_of(role, self.generated.matrix(self.output(role)))
        return value

    def kad(self) -> float:
        """KAD between the sides' ``fad`` rows (the bandwidth and row counts under its key)."""
        generated, reference = self.both("fad")
        value, used = kad.kernel_audio_distance(generated, reference, bandwidth=self.options.kad_bandwidth,
                                                seed=self.options.seed)
        self.details[kad.KEY_KAD] = {"bandwidth": used.as_dict(), "rows": [len(generated), len(reference)]}
        return value

    def extrapolated(self, role: str, key: str, score: Callable[[np.ndarray], float]) -> float:
        """``score`` of generated rows extrapolated to infinitely many (``extrapolation.py``), drawn by frames or
        clips as ``options.inf_draw`` says; the fit goes into ``details[key]``."""
        files = self.generated.per_file[self.output(role)]
        if self.options.inf_draw == "clips":
            units, draw = len(files), lambda idx: stack_files(files, idx)
        else:
            rows = self.generated.matrix(self.output(role))
            units, draw = len(rows), lambda idx: rows[idx]
        fit = extrapolate(lambda idx: score(draw(idx)), units,
                          unit=self.options.inf_draw, minimum=self.options.inf_min, steps=self.options.inf_steps,
                          seed=self.options.seed)
        self.details[key] = {k: v for k, v in fit.items() if k != "value"}
        return fit["value"]

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

    def segment_rows(self, role: str) -> tuple[np.ndarray, np.ndarray, list[dict]]:
        """Rows for a per-segment KL (audiocraft): each pair's rows, one per segment, row i of the generated file
        with row i of the reference; a pair whose files have different numbers of segments is left out (audiocraft
        only compares clips of one length) and named. Returns (generated, reference, left out)."""
        output = self.output(role)
        sides = [dict(zip(side.files, side.per_file[output])) for side in (self.generated, self.reference)]
        kept: list[tuple[np.ndarray, np.ndarray]] = []
        left_out = []
        for name in self.pairs:
            g, r = (np.atleast_2d(side[name]) for side in sides)
            if len(g) == len(r):
                kept.append((g, r))
            else:
                left_out.append({"file": name, "segments": [len(g), len(r)],
                                 "reason": "the generated and reference files have different numbers of segments"})
        if not kept:
            raise MetricUnavailableError("no pair's files have the same number of segments")
        return np.concatenate([g for g, _ in kept]), np.concatenate([r for _, r in kept]), left_out


@dataclass(frozen=True)
class MetricSpec:
    """A selectable metric: the result keys it fills and how it is computed from ``EvaluationData``."""

    keys: tuple[str, ...]
    compute: Callable[[EvaluationData], Mapping[str, float | list[float]]]
    """Its values by result key (a list: one value per layer)."""
    paired_only: bool = False
    needs: str | None = "classifier"
    """The model the metric reads (``classifier``: the backbone, ``fad``: the FAD model, ``scorer``: the artifact of
    the family's ``Scorer`` of the metric's name), or None."""
    reference_free: bool = False
    """Computed from the generated files alone (a reference, when given, is scored the same way for comparison)."""
    role: str | None = None
    """The feature role it reads (``embedding``, ``logits``, ``layers``, ``fad``), which a manifest must declare."""
    description: str = ""
    better: str = "lower"
    """Which direction is better for the first key (``lower`` or ``higher``); later keys are spreads, except for a
    reference-free score, whose keys are all scores."""
    api_name: str = ""
    """audioldm_eval's service name for the metric (``ISc``, ``KL_Sigmoid``); empty: the ``--metrics`` name in upper
    case. ``api_names()`` gives them all."""

    @property
    def help(self) -> str:
        return f"{self.description} ({self.better} is better)"


def _kl_to_probabilities(data: EvaluationData, probabilities: ReferenceProbabilities, mode: str,
                         key: str) -> dict[str, float]:
    """KL against a reference-probabilities file: each generated file paired with its id (``match``), the file's
    probabilities as the reference side; the files and ids left unpaired named in the details."""
    definition = data.kl_definition
    if mode != "softmax":
        raise MetricUnavailableError("a class-probabilities file holds softmax probabilities: no sigmoid KL")
    if definition.per_segment:
        raise MetricUnavailableError(f"{definition.toolkit}'s KL pairs segments; a class-probabilities file holds "
                                     f"one row per id")
    pairs, unmatched, unused = probabilities.match(data.generated.files)
    if not pairs:
        raise MetricUnavailableError("no generated file's name (without its extension) is an id of the "
                                     "class-probabilities file")
    generated = data.generated.matrix(data.output("logits"))
    if generated.shape[1] != probabilities.classes:
        raise MetricUnavailableError(f"the class-probabilities file has {probabilities.classes} classes, the "
                                     f"model's logits {generated.shape[1]}")
    position = {n: i for i, n in enumerate(data.generated.files)}
    value = kl.kl_divergence_to_probabilities(generated[[position[n] for n, _ in pairs]],
                                              probabilities.probabilities[[row for _, row in pairs]],
                                              reverse=definition.reverse, epsilon=definition.epsilon)
    data.details[key] = {"definition": definition.describe(), "reference": "class-probabilities file",
                         "pairs": len(pairs), "generated_without_id": unmatched, "ids_without_file": unused}
    return {key: value}


def _kl(mode: str, key: str) -> Callable[[EvaluationData], dict[str, float]]:
    def compute(data: EvaluationData) -> dict[str, float]:
        if data.reference_probabilities is not None:
            return _kl_to_probabilities(data, data.reference_probabilities, mode, key)
        if not data.pairs:
            raise MetricUnavailableError("no file name appears in both folders among the usable files")
        definition = data.kl_definition
        details: dict = {}
        if definition.per_segment:
            generated, reference, left_out = data.segment_rows("logits")
            details.update(segments=len(generated), **({"left_out": left_out} if left_out else {}))
        else:
            generated, reference = data.pair_rows("logits")
        value = kl.kl_divergence(generated, reference, mode=mode, reverse=definition.reverse,
                                 epsilon=definition.epsilon)
        if definition.both_directions:  # audiocraft's kld_qp and kld_both
            other = kl.kl_divergence(generated, reference, mode=mode, reverse=not definition.reverse,
                                     epsilon=definition.epsilon)
            details.update(reverse=other, both=value + other)
        if definition != AUDIOLDM_EVAL_KL:  # another toolkit's KL under the same key: say which
            data.details[key] = {"definition": definition.describe(), **details}
        return {key: value}
    return compute


KEY_FAD_INF, KEY_KAD_INF, KEY_FD_INF = (f"{frechet.KEY_FRECHET_AUDIO_DISTANCE}_inf", f"{kad.KEY_KAD}_inf",
                                       f"{frechet.KEY_FRECHET_DISTANCE}_inf")


def _kad_inf(data: EvaluationData) -> float:
    """KAD∞ with the bandwidth chosen once from the whole sets (every draw is scored with the same kernel)."""
    generated, reference = data.both("fad")
    used = kad.choose_bandwidth(generated, reference, data.options.kad_bandwidth, seed=data.options.seed)
    value = data.extrapolated("fad", KEY_KAD_INF, kad.kad_against(reference, used.sigma))
    data.details[KEY_KAD_INF]["bandwidth"] = used.as_dict()
    return value


def _signal_mean(key: str, description: str, better: str = "lower") -> MetricSpec:
    def compute(data: EvaluationData) -> dict[str, float]:
        if data.signal is None:  # paired, yet no reference audio: a class-probabilities file
            raise MetricUnavailableError("the reference is a class-probabilities file: no reference audio")
        return {key: data.signal.mean(key)}
    return MetricSpec((key,), compute, paired_only=True, needs=None, description=description, better=better)


def _chroma_similarity(data: EvaluationData) -> dict[str, float]:
    """audiocraft's corpus value (frames pooled over pairs), the frames compared and the generated files padded to
    their reference's length in the details."""
    key = chroma.KEY_CHROMA_SIMILARITY
    if data.signal is None:
        raise MetricUnavailableError("the reference is a class-probabilities file: no reference audio")
    value = data.signal.mean(key)
    padded = data.signal.padded.get(key, [])
    data.details[key] = {"frames": int(sum(data.signal.weights.get(key, {}).values())),
                         "definition": "audiocraft's ChromaCosineSimilarityMetric (MusicGen's: 32 kHz, 12 bins, "
                                       "16384-point window every 4096 samples, argmax), frames pooled over pairs",
                         **({"padded_to_reference": padded} if padded else {})}
    return {key: value}


def _clap_score(data: EvaluationData) -> dict[str, float]:
    """The mean cosine of each captioned file's audio embedding (the CLAP ``--fad-model``'s rows) with its caption's
    text embedding; per file into ``per_file``, how many files into the details."""
    key = clap_score.KEY_CLAP_SCORE
    if data.captions is None:
        raise MetricUnavailableError("no captions were given (--captions FILE)")
    audio = dict(zip(data.generated.files, data.generated.per_file[data.output("fad")]))
    scores = clap_score.clap_scores(audio, data.captions)
    if not scores:
        raise MetricUnavailableError("no usable generated file has a caption in the captions file")
    for name, value in scores.items():
        data.per_file.setdefault(name, {})[key] = value
    details: dict = {"files": len(scores), "without_caption": len(audio) - len(scores),
                     "definition": "mean over captioned files of cos(audio embedding, caption embedding)",
                     "sanity": _clap_sanity(data, audio)}
    data.details[key] = details
    return {key: clap_score.clap_score(scores)}


def _clap_sanity(data: EvaluationData, audio: Mapping[str, np.ndarray]) -> dict:
    """Each side's score against its own captions and against shuffled ones (``clap_score.floor``), and a warning
    for a side whose score is within noise of its floor."""
    sides = {"generated": (audio, data.captions or {})}
    if data.reference_captions:
        reference = dict(zip(data.reference.files, data.reference.per_file[data.output("fad")]))
        sides["reference"] = (reference, data.reference_captions)
    out: dict = {"definition": f"each file's caption against a caption of another file (a seeded derangement, "
                               f"seed {clap_score.SHUFFLE_SEED}); within noise: margin <= "
                               f"{clap_score.NOISE_STANDARD_ERRORS:g} standard errors"}
    warnings = []
    for side, (rows, text) in sides.items():
        found = clap_score.floor(rows, text)
        if found is None:
            out[side] = {"files": len([n for n in rows if n in text]),
                         "reason": "fewer than two different captions: no floor to compare with"}
            continue
        out[side] = found.as_dict()
        if found.within_noise:
            warnings.append(f"the {side} audio scores {found.score:.4f} against its captions and {found.floor:.4f} "
                            f"against shuffled ones (margin {found.margin:.4f} +- {found.standard_error:.4f}): within "
                            f"noise, so the audio does not follow its captions or the pipeline is broken (the "
                            f"checkpoint, or captions not matched to their files)")
    if warnings:
        out["warnings"] = warnings
        for warning in warnings:
            log.warning("clap_score: %s", warning)
    return out


def _scorer_means(scorer: Scorer, data: EvaluationData) -> dict[str, float]:
    """A reference-free score (``Scorer``): each generated file's values (``per_file``), their means; the
    reference folder's means in the details when one was scored. A file whose values are not finite is named in the
    details and left out of the means."""
    def side_values(side: SideFeatures) -> tuple[dict[str, np.ndarray], list[str]]:
        outputs = {role: side.per_file[data.output(role)] for role in scorer.roles}
        values = {name: scorer.clip_values({role: rows[i] for role, rows in outputs.items()}, data.output_transforms)
                  for i, name in enumerate(side.files)}
        return {n: v for n, v in values.items() if np.all(np.isfinite(v))}, \
            [n for n, v in values.items() if not np.all(np.isfinite(v))]

    values, not_finite = side_values(data.generated)
    if not values:
        raise MetricUnavailableError("no generated file gave finite scores")
    for name, row in values.items():
        data.per_file.setdefault(name, {}).update(zip(scorer.keys, map(float, row)))
    means = np.mean(np.stack(list(values.values())), axis=0)
    details: dict = {"files": len(values), "definition": "mean over generated files of each file's score"}
    if not_finite:
        details["not_finite"] = {"files": not_finite, "action": "left out of the means"}
    if data.reference.files and data.reference_stats is None:
        reference, bad = side_values(data.reference)
        if reference:
            details["reference"] = {"files": len(reference), **dict(zip(scorer.keys, map(float, np.mean(
                np.stack(list(reference.values())), axis=0))))}
        if bad:
            details["reference_not_finite"] = bad
    data.details[scorer.keys[0]] = details
    return dict(zip(scorer.keys, map(float, means)))


METRICS: dict[str, MetricSpec] = {
    "fd": MetricSpec(
        (frechet.KEY_FRECHET_DISTANCE,),
        lambda d: {frechet.KEY_FRECHET_DISTANCE: d.frechet("embedding", frechet.KEY_FRECHET_DISTANCE)},
        role="embedding",
        description="Fréchet distance between the backbone's embeddings"),
    "fd_layers": MetricSpec(
        (frechet.KEY_FRECHET_DISTANCE_LAYERS,),
        lambda d: {frechet.KEY_FRECHET_DISTANCE_LAYERS: frechet.frechet_distance_per_layer(
            np.stack(d.generated.per_file[d.output("layers")]), np.stack(d.reference_files("layers")))},
        role="layers", description="MERT only: one Fréchet distance per hidden layer between per-file time means",
        api_name="FD_layers"),
    "fad": MetricSpec(
        (frechet.KEY_FRECHET_AUDIO_DISTANCE,),
        lambda d: {frechet.KEY_FRECHET_AUDIO_DISTANCE: d.frechet("fad", frechet.KEY_FRECHET_AUDIO_DISTANCE)},
        needs="fad", role="fad",
        description="Fréchet audio distance between all embedding rows of each folder (--fad-model; VGGish frames)"),
    "kad": MetricSpec(
        (kad.KEY_KAD,), lambda d: {kad.KEY_KAD: d.kad()}, needs="fad", role="fad",
        description="kernel audio distance (unbiased RBF MMD^2 x100) between the --fad-model rows of each folder"),
    "prdc": MetricSpec(
        prdc.KEYS, lambda d: prdc.prdc(*d.both("fad")), needs="fad", role="fad",
        description="precision, recall, density, coverage (k=5) of the --fad-model rows", better="higher"),
    "fad_inf": MetricSpec(
        (KEY_FAD_INF,), lambda d: {KEY_FAD_INF: d.extrapolated(
            "fad", KEY_FAD_INF, lambda rows: d.frechet_of("fad", rows)[0])}, needs="fad", role="fad",
        description="FAD extrapolated to infinitely many generated samples (fadtk's FAD-inf)", api_name="FAD_inf"),
    "kad_inf": MetricSpec(
        (KEY_KAD_INF,), lambda d: {KEY_KAD_INF: _kad_inf(d)}, needs="fad", role="fad",
        description="KAD extrapolated to infinitely many generated samples", api_name="KAD_inf"),
    "fd_inf": MetricSpec(
        (KEY_FD_INF,), lambda d: {KEY_FD_INF: d.extrapolated(
            "embedding", KEY_FD_INF, lambda rows: d.frechet_of("embedding", rows)[0])}, role="embedding",
        description="FD extrapolated to infinitely many generated samples", api_name="FD_inf"),
    "kl": MetricSpec((kl.KEY_KL_SOFTMAX,), _kl("softmax", kl.KEY_KL_SOFTMAX), paired_only=True, role="logits",
                     description="KL(reference || generated) of softmax class probabilities per pair (a model "
                                 "option's toolkit may set another direction and epsilon: see the report's details)"),
    "kl_sigmoid": MetricSpec((kl.KEY_KL_SIGMOID,), _kl("sigmoid", kl.KEY_KL_SIGMOID), paired_only=True,
                             role="logits", description="the same with per-class sigmoid probabilities",
                             api_name="KL_Sigmoid"),
    "isc": MetricSpec(
        (inception.KEY_IS_MEAN, inception.KEY_IS_STD),
        lambda d: inception.inception_score(d.generated.matrix(d.output("logits"))), role="logits",
        description="inception score of the generated clips", better="higher", api_name="ISc"),
    "kid": MetricSpec(
        (kernel.KEY_KID_MEAN, kernel.KEY_KID_STD),
        lambda d: kernel.kernel_inception_distance(*d.both("embedding")), role="embedding",
        description="kernel inception distance between the embeddings"),
    "psnr": _signal_mean(signal.KEY_PSNR, "PSNR of the pairs' mel spectrograms in dB", better="higher"),
    "ssim": _signal_mean(signal.KEY_SSIM, "SSIM of the pairs' mel spectrograms", better="higher"),
    "lsd": _signal_mean(signal.KEY_LSD, "log-spectral distance of the pairs' waveforms"),
    "chroma_similarity": MetricSpec(
        (chroma.KEY_CHROMA_SIMILARITY,), _chroma_similarity, paired_only=True, needs=None, better="higher",
        description="chroma cosine similarity of each generated clip to its same-named reference (the melody), "
                    "as audiocraft's MusicGen evaluation computes it"),
    "clap_score": MetricSpec(
        (clap_score.KEY_CLAP_SCORE,), _clap_score, needs="fad", role="fad", better="higher",
        description="CLAP score: mean cosine of each generated clip's audio embedding (a --fad-model with a text "
                    "tower) with its caption's text embedding (--captions)"),
    **{scorer.name: MetricSpec(scorer.keys, functools.partial(_scorer_means, scorer), needs="scorer",
                               role=scorer.roles[0], better="higher", description=scorer.description,
                               reference_free=True)
       for scorer in scorers().values()},
}
"""Every metric, by its ``--metrics`` name."""


def api_names() -> dict[str, str]:
    """Every metric's ``--metrics`` name -> its name in audioldm_eval's service API (``isc`` -> ``ISc``), in
    ``METRICS`` order; a metric without its own ``api_name`` is called by its name in upper case."""
    return {name: spec.api_name or name.upper() for name, spec in METRICS.items()}

SIGNAL_METRICS = ("psnr", "ssim", "lsd")
DEFAULT_METRICS = ("fd", "fad", "kl", "kl_sigmoid", "isc", "kid", *SIGNAL_METRICS, "fd_layers")
"""audioldm_eval's metrics in report order; a backbone offers those (then any other metric of ``METRICS`` that is
not opt-in) whose feature role its artifacts provide."""


class _BackboneMetrics(Mapping[str, tuple]):
    """Backbone -> the metrics available with it, in report order: every ``DEFAULT_METRICS`` entry that reads no
    backbone output, or one whose role the backbone's artifacts provide (``ArtifactEntry.provides``, declared by
    its model family; FAD uses the FAD model, the signal metrics no model). Read from the families at each
    lookup, so a registered family is offered at once."""

    def _table(self) -> dict[str, tuple]:
        provided: dict[str, set] = {}
        for entry in builtin_entries():
            if entry.role == "classifier":
                provided.setdefault(entry.backbone, set()).update(entry.provides)
        order = [*DEFAULT_METRICS, *(m for m in METRICS if m not in DEFAULT_METRICS and m not in OPT_IN_METRICS)]
        return {backbone: tuple(m for m in order if METRICS[m].needs != "classifier" or METRICS[m].role in roles)
                for backbone, roles in provided.items()}

    def __getitem__(self, backbone: str) -> tuple:
        return self._table()[backbone]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


BACKBONE_METRICS: Mapping[str, tuple] = _BackboneMetrics()
"""Metrics available with each backbone, in report order (FAD uses the FAD model; the signal metrics need no
model)."""


def compute_metrics(names: Sequence[str], data: EvaluationData, unpaired_reason: str | None,
                     nothing_usable: str | None = None) -> tuple[dict, dict]:
    """Every selected metric's values, and the reason for each one left ``None`` (``nothing_usable``: why
    no metric can be computed at all)."""
    values: dict[str, float | list[float] | None] = {}
    unavailable: dict[str, str] = {}
    for name in names:
        spec = METRICS[name]
        reason = None
        if nothing_usable:
            reason = nothing_usable
        elif spec.paired_only and unpaired_reason:
            reason = f"needs paired mode ({unpaired_reason})"
        else:
            try:
                computed = spec.compute(data)
                reason = _not_finite(computed)
                values.update(computed)
            except MetricUnavailableError as exc:  # not enough data; anything else is a defect and propagates
                reason = str(exc)
        if reason is not None:
            for key in spec.keys:
                values[key] = None
                unavailable[key] = reason
    return values, unavailable


def _not_finite(values: Mapping[str, object]) -> str | None:
    """Why a metric's values cannot be reported (one is NaN or infinite: a JSON report has no such number), or
    None."""
    bad = [key for key, value in values.items()
           if value is not None and not np.all(np.isfinite(np.asarray(value, dtype=np.float64)))]
    return f"not finite ({', '.join(bad)} came out NaN or infinite from these features)" if bad else None


OPT_IN_METRICS = ("kad", "prdc", "fad_inf", "kad_inf", "fd_inf", "chroma_similarity", "clap_score",
                  *scorers())
"""Metrics beyond audioldm_eval's, with either backbone, computed only when asked for (``--metrics``, ``--inf``)."""


def check_reference_free(metrics: Sequence[str]) -> None:
    """A run without a reference computes reference-free metrics only: ``ValueError`` naming the others."""
    compared = [m for m in metrics if not METRICS[m].reference_free]
    if compared:
        free = ", ".join(m for m in METRICS if METRICS[m].reference_free)
        raise ValueError(f"no reference given: only reference-free metrics run without one (--metrics {free}); "
                         f"{', '.join(compared)} compare with a reference")


def resolve_metrics(backbone: str, metrics: Sequence[str] | None) -> list[str]:
    """The metrics to compute: all audioldm_eval's the backbone supports by default, ``OPT_IN_METRICS`` when
    named; unknown names are an error."""
    if metrics is None:
        return list(BACKBONE_METRICS[backbone])
    supported = BACKBONE_METRICS[backbone] + OPT_IN_METRICS
    unknown = [m for m in metrics if m not in supported]
    if unknown:
        raise ValueError(f"metric(s) {', '.join(unknown)} not available with backbone {backbone!r}; "
                         f"choose from {', '.join(supported)}")
    return list(dict.fromkeys(metrics))


BOOTSTRAP_METRICS = {"fd": "embedding", "fad": "fad", "kid": "embedding"}
"""Metrics ``--bootstrap`` gives an interval for, and the feature role each resamples."""


def _bootstrap_statistic(metric: str, role: str, data: EvaluationData, gen_files: list[np.ndarray],
                         ref_files: list[np.ndarray] | None) -> Callable:
    """The metric on resampled files; ``ref_idx`` None (statistics-only reference, FD/FAD) keeps it fixed."""
    def statistic(gen_idx: np.ndarray, ref_idx: np.ndarray | None) -> float:
        gen = stack_files(gen_files, gen_idx)
        if ref_idx is None:  # drawn only without reference files, so from a statistics file
            assert data.reference_stats is not None
            return data.reference_stats.frechet_distance(role, gen)
        assert ref_files is not None  # ref_idx is drawn only with reference files
        ref = stack_files(ref_files, ref_idx)
        if metric == "kid":
            return kernel.kernel_inception_distance(gen, ref)[kernel.KEY_KID_MEAN]
        return frechet.frechet_distance_from_features(gen, ref)
    return statistic


def bootstrap_intervals(data: EvaluationData, values: dict, selected: Sequence[str], replicates: int,
                        seed: int = DEFAULT_SEED) -> dict[str, dict]:
    """95% percentile intervals for the computed FD, FAD and KID, keyed like ``metrics``."""
    out = {}
    for metric, role in BOOTSTRAP_METRICS.items():
        key = METRICS[metric].keys[0]
        if metric not in selected or values.get(key) is None:
            continue
        gen_files = data.generated.per_file[data.output(role)]
        ref_files = data.reference_files(role, required=False)  # KID without them was not computed
        out[key] = bootstrap_interval(_bootstrap_statistic(metric, role, data, gen_files, ref_files), len(gen_files),
                                      len(ref_files) if ref_files is not None else None, replicates, seed=seed)
    return out
