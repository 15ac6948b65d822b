"""FAD, KAD, FD and CLAP score as ``torchmetrics.Metric``s, for a training loop: ``update`` per batch, ``compute`` at
the end, the states reduced across ``torch.distributed`` ranks (DDP) by torchmetrics.

    from audiofidelity.compat.torchmetrics import FrechetAudioDistance
    fad = FrechetAudioDistance("vggish", models_dir="models", reset_real_features=False)
    for reference in reference_batches:                     # (batch, samples) or (batch, channels, samples)
        fad.update(reference, 48000, real=True)             # once: reset() keeps the real side
    for epoch in range(epochs):
        for generated in generate(model):
            fad.update(generated, 48000, real=False)
        log(fad.compute())                                  # = eval GEN REF --metrics fad on the same clips
        fad.reset()                                         # the generated side only

Each clip is embedded by the stage ``eval`` itself builds (``Evaluator``: the FAD model's reference-toolkit
conditioning at its own rate for ``--fad-model MODEL``, the backbone's audioldm_eval conditioning at the
evaluation rate for FD), one clip per pass, so a clip's rows are bit for bit those of ``eval --save-features``.
``Embedder`` is not used: its default output equals eval's FAD rows for the FAD models on embedding artifacts
(``vggish``, ``encodec-*``, ``clap-*``, ``cnn14-8k``), but for those on classifier artifacts (``cnn14-16k``,
``cnn14-32k``, ``passt-s``, ``mert-v1-95m-N``) it feeds the model as a classifier (mean removal and padding, the
clip embedding), which is not what ``eval --fad-model`` reads.

States, per side (``real``: the reference, ``fake``: the generated audio):

- ``<side>_gaussian``: the rows' ``GaussianStats`` (count, float64 mean and centred co-moment) packed in one
  (d + 2, d) float64 tensor, reduced across ranks by ``merge_gaussians`` (Chan et al.'s pairwise merge, in rank
  order). Sums of rows and of their outer products reduced with ``"sum"`` (torchmetrics' FID) lose
  eps * (mean / std)^2 of the covariance to cancellation: 1e-12 relative in FD at mean/std = 100 and 1e-10 at
  1000, against 1e-13 for the centred co-moment whatever the offset (``GaussianStats`` is also what every FD of
  ``eval`` is computed from). The reducer sees the three statistics together, which ``"sum"`` on three separate
  states cannot.
- ``<side>_rows``: the rows themselves (float32, flattened, ``"cat"``), kept while a rank holds no more than
  ``keep_rows`` of them (default d, the embedding width), then dropped. With no more rows than dimensions the
  covariance is singular and ``eval`` takes the trace term exactly from the rows; from statistics alone it is off
  by 2e-8 to 5e-8 relative (VGGish, 8 to 24 rows) and 2e-7 to 4e-7 (CNN14, 6 to 8 clips), measured. When every
  rank still holds its rows, ``compute`` calls eval's own ``frechet_distance_checked`` on them (the same number
  as ``eval``); when one side's rows are complete, ``frechet_distance_to_statistics_checked`` (exact for that
  side); else the Fréchet distance of the two Gaussians (as eval for more rows than dimensions), a negative
  total from rounding returned as 0 as eval does.
  ``KernelAudioDistance`` keeps every row (an MMD needs them) and no Gaussian.

``compute`` returns a 0-d float64 tensor; ``details`` then holds what ``eval`` reports under the metric's key
(rows, dimensions, warnings; KAD's bandwidth). ``forward`` is refused (a Fréchet distance has no per-batch value).

audiocraft's metrics (``audiocraft/metrics/fad.py``, ``kld.py``) are called by its solvers as
``update(preds, targets, sizes, sample_rates)`` (``musicgen.py``: the generated and the ground-truth batch, each
item's length without padding and its rate) and ``compute()``; ``update`` takes that form too (the second argument
is then float audio, not a rate): ``preds`` go to the fake side, ``targets`` to the real side, each trimmed to its
size. audiocraft's FAD writes the clips to files (mono by channel mean, resampled with julius, peak-normalised) for
the TensorFlow VGGish; here the clips are conditioned as ``eval`` conditions them (``conditioning=`` changes that).

``CLAPScore`` (audiocraft's ``text_consistency``) folds each clip's cosine with its caption into a sum and a count.
Not here: KID (needs the backbone's rows; use ``eval``), the ``ledoit-wolf``/``oas`` covariances and the ``*_inf``
extrapolations are not offered.

References: Kilgour et al., "Fréchet Audio Distance", Interspeech 2019; Chung et al., "KAD: No More FAD!", 2025;
Chan, Golub, LeVeque, STAN-CS-79-773 (1979); torchmetrics ``image/fid.py`` (``reset_real_features``);
audiocraft ``audiocraft/metrics/fad.py`` and ``solvers/musicgen.py`` (the update signature).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ..audio import Conditioning, check_sample_rate
from ..errors import InvalidAudioError, MetricUnavailableError, StatsFileError, literal
from ..evaluate import Evaluator
from ..metrics import clap_score, frechet, kad
from ..metrics.gaussian import GaussianStats
from ..metrics.options import MetricOptions
from ..models import DEFAULTS, model_options as declared_options
from ..stats import ReferenceStats, settings_differences

SIDES = ("real", "fake")
SIDE_NAMES = {"real": "reference", "fake": "generated"}


def pack_gaussian(stats: GaussianStats, dim: int) -> torch.Tensor:
    """``stats`` as one (dim + 2, dim) float64 tensor: [0, 0] the count, row 1 the mean, rows 2: the co-moment."""
    packed = torch.zeros(dim + 2, dim, dtype=torch.float64)
    if stats.count:
        packed[0, 0] = float(stats.count)
        packed[1] = torch.from_numpy(np.asarray(stats.mean, np.float64))
        packed[2:] = torch.from_numpy(np.asarray(stats.comoment, np.float64))
    return packed


def unpack_gaussian(packed: torch.Tensor) -> GaussianStats:
    """The ``GaussianStats`` a ``pack_gaussian`` tensor holds (on any device)."""
    array = packed.detach().cpu().numpy()
    count = int(round(float(array[0, 0])))
    return GaussianStats(count, array[1].copy(), array[2:].copy()) if count else GaussianStats()


def merge_gaussians(stacked: torch.Tensor) -> torch.Tensor:
    """``dist_reduce_fx`` of a packed Gaussian state: (ranks, d + 2, d) -> (d + 2, d), the ranks' statistics merged
    in rank order (``GaussianStats.merge``)."""
    merged = GaussianStats()
    for packed in stacked:
        merged = merged.merge(unpack_gaussian(packed))
    return pack_gaussian(merged, stacked.shape[-1]).to(stacked.device)


@dataclass
class _Side:
    """One side at ``compute``: its row count, its rows when all are kept, and its Gaussian (None for KAD)."""

    count: int
    rows: np.ndarray | None
    gaussian: GaussianStats | None


def _is_clip_data(value: Any) -> bool:
    """Whether ``value`` is audio (float samples: a tensor, an array, or a list of them) rather than sample rates."""
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_is_clip_data(v) for v in value)
    if isinstance(value, torch.Tensor):
        return value.ndim >= 1 and value.is_floating_point()
    if isinstance(value, np.ndarray):
        return value.ndim >= 1 and value.dtype.kind == "f"
    return False


def _clips(audio: Any, what: str) -> list[np.ndarray]:
    """``audio`` as float32 (channels, n) arrays: a (batch, samples) or (batch, channels, samples) tensor or array,
    or a list of (samples,) or (channels, samples) clips; ``InvalidAudioError`` naming what was received."""
    shape_hint = "a (batch, samples) or (batch, channels, samples) tensor, or a list of (samples,) or " \
                 "(channels, samples) tensors"
    if isinstance(audio, (list, tuple)):
        items = [_array(a, f"{what} clip {i}") for i, a in enumerate(audio)]
        if not items:
            raise InvalidAudioError(f"{what}: an empty list of clips; pass {shape_hint}")
        for i, a in enumerate(items):
            if a.ndim not in (1, 2):
                raise InvalidAudioError(f"{what} clip {i} has shape {a.shape}; a clip in a list is (samples,) or "
                                        f"(channels, samples)")
        return [a[None] if a.ndim == 1 else a for a in items]
    array = _array(audio, what)
    if array.ndim not in (2, 3):
        extra = " (one clip: pass audio[None])" if array.ndim == 1 else ""
        raise InvalidAudioError(f"{what} has shape {tuple(array.shape)}; pass {shape_hint}{extra}")
    return [a[None] if array.ndim == 2 else a for a in array]


def _array(audio: Any, what: str) -> np.ndarray:
    if isinstance(audio, torch.Tensor):
        tensor = audio.detach().cpu()
        if not tensor.is_floating_point():
            raise InvalidAudioError(f"{what} has dtype {tensor.dtype}; pass float samples in [-1, 1] (scale integer "
                                    f"PCM first)")
        audio = tensor.float().numpy()  # float16 and bfloat16 widen exactly
    array = np.asarray(audio)
    if array.dtype.kind != "f":
        raise InvalidAudioError(f"{what} has dtype {array.dtype}; pass float samples in [-1, 1] (scale integer PCM "
                                f"first)")
    if array.size == 0:
        raise InvalidAudioError(f"{what} is empty (shape {array.shape})")
    return np.ascontiguousarray(array, dtype=np.float32)


def _integers(values: Any, count: int, what: str, unit: str) -> list[int]:
    """One integer per clip from an int, or a sequence / 1-D tensor of ``count`` integers."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().reshape(-1).tolist() if values.ndim else values.item()
    elif isinstance(values, np.ndarray):
        values = values.reshape(-1).tolist() if values.ndim else values.item()
    items = list(values) if isinstance(values, (list, tuple)) else [values] * count
    if len(items) != count:
        raise ValueError(f"{what} has {len(items)} values for {count} clips; pass one per clip")
    out = []
    for value in items:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)) \
                or not math.isfinite(value) or value != int(value):
            raise InvalidAudioError(f"{what} must be whole numbers of {unit}, got {value!r}")
        out.append(int(value))
    return out


def _option_names(stage: str) -> set[str]:
    """The model families' options that change ``stage`` (``backbone`` or ``fad``)."""
    return {o.name for o in declared_options().values() if o.stage == stage}


def _embed_clips(stage: Any, feature: str, dim: int, conditioning: Conditioning, audio: Any, sample_rate: Any,
                 sizes: Any, what: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """A batch's rows (n, d) from ``stage`` (an ``Evaluator``'s, so a clip's rows are ``eval``'s bit for bit), float32,
    and the clips they came from (cut to ``sizes``)."""
    clips = _clips(audio, what)
    rates = _integers(sample_rate, len(clips), "sample_rate", "Hz")
    for rate in sorted(set(rates)):
        check_sample_rate(rate)
    if sizes is not None:
        lengths = _integers(sizes, len(clips), "sizes", "samples")
        for i, (clip, size) in enumerate(zip(clips, lengths)):
            if not 1 <= size <= clip.shape[-1]:
                raise InvalidAudioError(f"{what} clip {i}: size {size} is outside 1..{clip.shape[-1]}, the "
                                        f"clip's length in samples")
        clips = [clip[:, :size] for clip, size in zip(clips, lengths)]
    inputs = []
    for i, (clip, rate) in enumerate(zip(clips, rates)):
        try:
            inputs.append(stage.input.model_input(clip, rate, conditioning, {}))
        except InvalidAudioError as exc:
            raise type(exc)(f"{what} clip {i}: {literal(exc)}") from None
    outputs = stage.runner.run(inputs, stage.outputs)
    rows = []
    for index in range(len(inputs)):
        value = stage.select({name: values[index] for name, values in outputs.items()})[feature]
        rows.append(np.atleast_2d(stage.postprocess(value) if stage.postprocess else value))
    matrix = np.concatenate(rows).astype(np.float32, copy=False)
    if matrix.shape[1] != dim:
        raise RuntimeError(f"the model gave {matrix.shape[1]}-d rows; its manifest declares {dim}")
    return matrix, clips


class _EmbeddingDistance(Metric):
    """What the three metrics share: the model stage, the update forms, the states and the reference."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    plot_lower_bound = 0.0

    def __init__(self, role: str, settings: dict[str, Any], *, reset_real_features: bool,
                 reference_stats: str | Path | None, keep_rows: int | None, gaussian: bool,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(reset_real_features, bool):
            raise ValueError(f"reset_real_features must be True or False, got {reset_real_features!r}")
        self.reset_real_features = reset_real_features
        self.role = role
        self.evaluator = Evaluator(cache=False, progress=False, **settings)
        output = self.evaluator.roles[role]
        self._stage = next(st for st in self.evaluator.stages if output in st.names)
        feature = next(f for f in self._stage.features if f.name == output)
        self._feature = feature.name
        self.dim = int(self._stage.manifest.output(feature.output).per_item_of(feature.layer)[-1])
        if keep_rows is not None and (isinstance(keep_rows, bool) or not isinstance(keep_rows, int) or keep_rows < 0):
            raise ValueError(f"keep_rows must be a whole number >= 0 (or None for the width, {self.dim}), "
                             f"got {keep_rows!r}")
        self.keep_rows = self.dim if keep_rows is None else keep_rows
        self._gaussian = gaussian
        self.details: dict = {}
        self.reference: _Side | None = None
        if reference_stats is not None:
            self.reference = self._load_reference(reference_stats)
        for side in SIDES if self.reference is None else ("fake",):
            self.add_state(f"{side}_rows", default=[], dist_reduce_fx="cat")
            if gaussian:
                self.add_state(f"{side}_gaussian", default=pack_gaussian(GaussianStats(), self.dim),
                               dist_reduce_fx=merge_gaussians)

    # -- the reference statistics file ----------------------------------------------------------------------------

    def _irrelevant_settings(self) -> set[str]:
        """Settings of a statistics file that do not change this metric's rows."""
        if self.role == "embedding":
            return {"fad_model"} | _option_names("fad")
        return {"backbone", "sample_rate"} | _option_names("backbone")

    def _load_reference(self, path: str | Path) -> _Side:
        stats = ReferenceStats.load(path)
        mine, theirs = self.evaluator.settings(), stats.settings
        if self.role == "embedding":
            made, wanted = (theirs.get("backbone"), theirs.get("sample_rate")), (mine["backbone"], mine["sample_rate"])
            if made != wanted:
                raise StatsFileError(f"reference statistics {{path}} were made with backbone {literal(made[0])} at "
                                     f"{literal(made[1])} Hz, not {wanted[0]} at {wanted[1]} Hz; make them with "
                                     f"'audiofidelity stats REF --backbone {wanted[0]} --sr {wanted[1]} --out "
                                     f"FILE.npz'", path=Path(path))
        else:
            made_with, model = theirs.get("fad_model", DEFAULTS.fad_model), self.evaluator.fad.name
            if made_with != model:
                raise StatsFileError(f"reference statistics {{path}} were made with FAD model {literal(made_with)}, "
                                     f"not {model}; make them with 'audiofidelity stats REF --fad-model {model} "
                                     f"--out FILE.npz'", path=Path(path))
        drop = self._irrelevant_settings()
        differ = settings_differences({k: v for k, v in theirs.items() if k not in drop},
                                      {k: v for k, v in mine.items() if k not in drop})
        if differ:
            raise StatsFileError(f"reference statistics {{path}} were made with other artifacts or settings "
                                 f"({literal(differ)}); recompute them with 'audiofidelity stats' and the same "
                                 f"options", path=Path(path))
        role = stats.role(self.role)  # MetricUnavailableError when the file holds no such statistics
        # the rows when the file has them (it does for no more rows than dimensions); KAD needs them (stats
        # --features), features() says so
        rows = stats.features(self.role) if role.per_file is not None or not self._gaussian else None
        width = rows.shape[1] if rows is not None else np.shape(role.mean)[-1]
        if width != self.dim:
            raise StatsFileError(f"reference statistics {{path}} hold {width}-d rows; this model gives {self.dim}-d",
                                 path=Path(path))
        if rows is not None and not self._gaussian:
            return _Side(len(rows), rows, None)
        gaussian = GaussianStats(role.count, np.asarray(role.mean, np.float64),
                                 np.asarray(role.cov, np.float64) * (role.count - 1))
        return _Side(role.count, rows, gaussian)

    # -- update ---------------------------------------------------------------------------------------------------

    def update(self, audio: Any, sample_rate: Any, real: Any = None, sizes: Any = None,
               stems: Sequence[str] | None = None) -> None:
        """Embed a batch and fold its rows into one side.

        Two forms:

        - ``update(audio, sample_rate, real, sizes=None)``: ``audio`` a (batch, samples) or (batch, channels,
          samples) float tensor or array, or a list of (samples,) / (channels, samples) clips, samples in [-1, 1];
          ``sample_rate`` in Hz, one int or one per clip; ``real``: True for reference audio, False for generated
          audio; ``sizes``: each clip's length in samples (the rest is padding and is cut off).
        - ``update(preds, targets, sizes, sample_rates, stems=None)``, audiocraft's (recognised by a float
          ``targets`` in second place): ``preds`` to the fake side and ``targets`` to the real side, both cut to
          ``sizes``; ``stems`` (audiocraft's file names) are not used.

        A batch is folded in whole or not at all.

        Raises
        ------
        InvalidAudioError
            A tensor of the wrong rank or dtype, NaN/inf, silent or too short audio, a sample rate outside the
            accepted range, a size beyond the clip; the clip named by its index.
        ValueError
            ``real`` not a bool, ``real=True`` with ``reference_stats``, or counts of sizes or rates that differ
            from the batch's.
        """
        if _is_clip_data(sample_rate):
            preds, targets, item_sizes, rates = audio, sample_rate, real, sizes
            if rates is None:
                raise ValueError("update(preds, targets, sizes, sample_rates): sample_rates is required")
            fake = self._embed(preds, rates, item_sizes, "fake")
            reals = self._embed(targets, rates, item_sizes, "real")
            if len(fake[1]) != len(reals[1]):
                raise ValueError(f"preds has {len(fake[1])} clips and targets {len(reals[1])}; audiocraft's form "
                                 f"pairs them")
            self._add("fake", fake[0])
            self._add("real", reals[0])
            return
        if not isinstance(real, bool):
            raise ValueError(f"real must be True (reference audio) or False (generated audio), got {real!r}")
        side = "real" if real else "fake"
        self._add(side, self._embed(audio, sample_rate, sizes, side)[0])

    def _embed(self, audio: Any, sample_rate: Any, sizes: Any, side: str) -> tuple[np.ndarray, list[np.ndarray]]:
        """The batch's rows (n, d), float32 as ``eval`` keeps them, and the clips they came from."""
        if side == "real" and self.reference is not None:
            raise ValueError("the real side comes from reference_stats; pass generated audio only "
                             "(update(audio, sample_rate, real=False))")
        return _embed_clips(self._stage, self._feature, self.dim, self.evaluator.conditioning, audio, sample_rate,
                            sizes, f"{SIDE_NAMES[side]} audio")

    def _add(self, side: str, rows: np.ndarray) -> None:
        """Fold (n, d) rows into ``side``'s states (this rank's)."""
        kept_state = getattr(self, f"{side}_rows")
        kept = sum(t.numel() for t in kept_state) // self.dim
        if self._gaussian:
            stats = unpack_gaussian(getattr(self, f"{side}_gaussian"))
            before = stats.count
            stats.update(rows)
            setattr(self, f"{side}_gaussian", pack_gaussian(stats, self.dim).to(self.device))
            if kept != before or before + len(rows) > self.keep_rows:
                setattr(self, f"{side}_rows", [])  # too many for the exact path: the Gaussian serves
                return
        kept_state.append(torch.from_numpy(np.ascontiguousarray(rows).reshape(-1)).to(self.device))

    # -- compute --------------------------------------------------------------------------------------------------

    def _side(self, side: str) -> _Side:
        if side == "real" and self.reference is not None:
            return self.reference
        state = getattr(self, f"{side}_rows")
        has_rows = isinstance(state, torch.Tensor) or len(state) > 0
        rows = dim_zero_cat(state).cpu().numpy().reshape(-1, self.dim) if has_rows else np.zeros((0, self.dim),
                                                                                               np.float32)
        if not self._gaussian:
            return _Side(len(rows), rows, None)
        stats = unpack_gaussian(getattr(self, f"{side}_gaussian"))
        return _Side(stats.count, rows if len(rows) == stats.count else None, stats)

    def _sides(self) -> tuple[_Side, _Side]:
        """(fake, real), or ``MetricUnavailableError`` when a side has fewer than 2 rows."""
        fake, real = self._side("fake"), self._side("real")
        name = type(self).__name__
        if fake.count == 0 and real.count == 0:
            raise MetricUnavailableError(f"{name}.compute() before any update: call update(audio, sample_rate, "
                                         f"real=True) with reference audio and update(audio, sample_rate, real=False) "
                                         f"with generated audio first")
        for side, got in (("fake", fake), ("real", real)):
            if got.count < 2:
                raise MetricUnavailableError(f"{name} needs at least 2 embedding rows on each side; the "
                                             f"{SIDE_NAMES[side]} ({side}) side has {got.count}: update it with "
                                             f"real={side == 'real'}")
        return fake, real

    def reset(self) -> None:
        """Reset the states; with ``reset_real_features=False`` the real side is kept (torchmetrics' FID)."""
        self.details = {}
        if self.reset_real_features or self.reference is not None:
            super().reset()
            return
        kept = {name: getattr(self, name) for name in self._defaults if name.startswith("real_")}
        kept = {name: list(v) if isinstance(v, list) else v for name, v in kept.items()}  # reset() clears lists
        super().reset()
        for name, value in kept.items():
            setattr(self, name, value)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} has no per-batch value: call update(...) for each batch and "
                        f"compute() at the end")


class _FrechetMetric(_EmbeddingDistance):
    """A Fréchet distance over one role's rows (``fad`` or ``embedding``)."""

    def compute(self) -> torch.Tensor:
        fake, real = self._sides()
        value, self.details = _frechet(fake, real)
        return torch.tensor(value, dtype=torch.float64, device=self.device)


class FrechetAudioDistance(_FrechetMetric):
    """Fréchet audio distance between the real and the generated clips, as ``eval --metrics fad --fad-model MODEL``.

    Parameters
    ----------
    model : str
        The FAD model (``eval --fad-model``: ``registry.fad_models()``; default audioldm_eval's, ``vggish``).
    models_dir : path, optional
        Where the exported artifacts are
        (default ``$AUDIOFIDELITY_MODELS``, else ``models`` in the cache directory, then the Hub pins).
    reset_real_features : bool
        False: ``reset()`` keeps the real side (compute the reference once, compare every epoch's generations).
    reference_stats : path, optional
        A statistics file (``audiofidelity stats REF --out FILE.npz``) as the real side; refused when it was made
        with another FAD model, other artifacts or other settings (``StatsFileError``), or holds no ``fad``
        statistics. Then ``update`` takes generated audio only.
    keep_rows : int, optional
        Rows per side a rank keeps for the exact small-set formula (default: the embedding width; 0: statistics
        only).
    device, precision, conditioning, max_memory, model_options :
        As ``evaluate`` (``device``: where the model runs; the states follow ``.to()``); ``model_options`` the FAD
        family's options by name (``{"fad_pca": True}``).
    **kwargs
        ``torchmetrics.Metric``'s (``sync_on_compute``, ``process_group``, ``dist_sync_fn``...).

    ``compute()`` -> 0-d float64 tensor; ``details``: rows, dimensions and warnings, as eval's report.

    Raises
    ------
    ValueError, ArtifactNotFoundError, StatsFileError
    """

    def __init__(self, model: str = DEFAULTS.fad_model, *, models_dir: str | Path | None = None,
                 reset_real_features: bool = True, reference_stats: str | Path | None = None,
                 keep_rows: int | None = None, device: str = "cpu", precision: str = "fp32",
                 conditioning: Conditioning | None = None, max_memory: int | None = None,
                 model_options: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        settings = dict(metrics=["fad"], fad_model=model, models_dir=models_dir, device=device, precision=precision,
                        conditioning=conditioning, max_memory=max_memory,
                        model_options=dict(model_options or {}))
        super().__init__("fad", settings, reset_real_features=reset_real_features, reference_stats=reference_stats,
                         keep_rows=keep_rows, gaussian=True, **kwargs)


class FrechetDistance(_FrechetMetric):
    """Fréchet distance on a backbone's clip embeddings, as ``eval --metrics fd --backbone B --sr RATE``
    (``frechet_distance``: CNN14's 2048-d embedding at 16 or 32 kHz, audioldm_eval's FD).

    Parameters as ``FrechetAudioDistance``, with ``backbone`` and ``sample_rate`` (the evaluation rate every clip
    is resampled to) in place of ``model``; ``reference_stats`` must have been made with the same backbone and
    rate; ``model_options``: the backbone family's (``{"mert_chunk": 10.0}``).
    """

    def __init__(self, backbone: str = DEFAULTS.backbone, sample_rate: int = DEFAULTS.sample_rate, *,
                 models_dir: str | Path | None = None, reset_real_features: bool = True,
                 reference_stats: str | Path | None = None, keep_rows: int | None = None, device: str = "cpu",
                 precision: str = "fp32", conditioning: Conditioning | None = None, max_memory: int | None = None,
                 model_options: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        settings = dict(metrics=["fd"], backbone=backbone, sample_rate=sample_rate, models_dir=models_dir,
                        device=device, precision=precision, conditioning=conditioning,
                        max_memory=max_memory, model_options=dict(model_options or {}))
        super().__init__("embedding", settings, reset_real_features=reset_real_features,
                         reference_stats=reference_stats, keep_rows=keep_rows, gaussian=True, **kwargs)


class KernelAudioDistance(_EmbeddingDistance):
    """Kernel audio distance (unbiased RBF MMD² × 100) between the real and generated rows of a FAD model, as
    ``eval --metrics kad --fad-model MODEL``: the rows are the state (``"cat"``), the bandwidth the median
    heuristic on the reference rows (eval's default).

    Parameters as ``FrechetAudioDistance``, plus ``bandwidth`` (``"reference"``, ``"generated"`` or a number) and
    ``seed`` (the median's subsample above 2 million pairs); ``reference_stats`` must hold the rows
    (``audiofidelity stats REF --features``). ``details``: the bandwidth used and the row counts.
    """

    def __init__(self, model: str = DEFAULTS.fad_model, *, models_dir: str | Path | None = None,
                 reset_real_features: bool = True, reference_stats: str | Path | None = None,
                 bandwidth: str | float = MetricOptions().kad_bandwidth, seed: int = MetricOptions().seed,
                 device: str = "cpu", precision: str = "fp32", conditioning: Conditioning | None = None,
                 max_memory: int | None = None, model_options: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:
        options = MetricOptions(kad_bandwidth=bandwidth, seed=seed)  # validated as eval's
        settings = dict(metrics=["kad"], fad_model=model, models_dir=models_dir, device=device, precision=precision,
                        conditioning=conditioning, max_memory=max_memory,
                        model_options=dict(model_options or {}))
        super().__init__("fad", settings, reset_real_features=reset_real_features, reference_stats=reference_stats,
                         keep_rows=None, gaussian=False, **kwargs)
        self.bandwidth, self.seed = options.kad_bandwidth, options.seed

    def compute(self) -> torch.Tensor:
        fake, real = self._sides()
        assert fake.rows is not None and real.rows is not None  # KAD keeps every row
        value, used = kad.kernel_audio_distance(fake.rows, real.rows, bandwidth=self.bandwidth, seed=self.seed)
        self.details = {"bandwidth": used.as_dict(), "rows": [fake.count, real.count]}
        return torch.tensor(value, dtype=torch.float64, device=self.device)


def _frechet(fake: _Side, real: _Side) -> tuple[float, dict]:
    """FD (generated first, as ``eval``) from the rows where a side has them all, else from its Gaussian."""
    if fake.rows is not None and real.rows is not None:
        return frechet.frechet_distance_checked(fake.rows, real.rows)
    if fake.rows is not None:
        assert real.gaussian is not None and real.gaussian.mean is not None
        return frechet.frechet_distance_to_statistics_checked(fake.rows, real.gaussian.mean, real.gaussian.cov,
                                                              real.count)
    assert fake.gaussian is not None and fake.gaussian.mean is not None
    if real.rows is not None:
        return frechet.frechet_distance_to_statistics_checked(real.rows, fake.gaussian.mean, fake.gaussian.cov,
                                                              fake.count, names=("reference", "generated"))
    assert real.gaussian is not None and real.gaussian.mean is not None
    trace_sqrt, clipped = frechet.trace_sqrt_product_checked(fake.gaussian.cov, real.gaussian.cov)
    diff = fake.gaussian.mean - real.gaussian.mean
    value = float(diff @ diff + np.trace(fake.gaussian.cov) + np.trace(real.gaussian.cov) - 2.0 * trace_sqrt)
    details: dict = {"covariance": "mle", "rows": [fake.count, real.count], "dimensions": len(diff)}
    if clipped > frechet.CLIP_REPORT:
        details["clipped_eigenvalues"] = clipped
    if value < 0:  # rounding: the Gaussians coincide (eval reports 0)
        details["negative_total_clamped"] = value
        value = 0.0
    return value, details


class CLAPScore(Metric):
    """CLAP score (the mean cosine of each clip's audio embedding with its caption's text embedding) as ``eval
    --metrics clap_score --fad-model MODEL`` computes it, per batch in a training loop.

    States: the sum of the cosines (float64) and their count, reduced across ranks with ``"sum"`` (a mean of means
    would weight ranks, not clips). ``update(audio, sample_rate, captions, sizes=None)``, or audiocraft's
    ``CLAPTextConsistencyMetric`` form ``update(audio, text, sizes, sample_rates)`` (recognised by the text in second
    place); ``compute()`` -> 0-d float64 tensor; ``reset()`` clears both.

    Parameters
    ----------
    model : str
        A ``--fad-model`` with a text tower (``clap-630k-audioset``, ``clap-music-speech-audioset``, ...).
    models_dir, device, precision, conditioning, max_memory, model_options :
        As ``FrechetAudioDistance`` (``model_options={"clap_feeding": "stable-audio-metrics"}`` reads as that toolkit).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    score_sum: torch.Tensor
    count: torch.Tensor

    def __init__(self, model: str = DEFAULTS.clap_score_model, *, models_dir: str | Path | None = None,
                 device: str = "cpu", precision: str = "fp32", conditioning: Conditioning | None = None,
                 max_memory: int | None = None, model_options: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.evaluator = Evaluator(cache=False, progress=False, metrics=["clap_score"], fad_model=model,
                                   models_dir=models_dir, device=device, precision=precision,
                                   conditioning=conditioning, max_memory=max_memory,
                                   model_options=dict(model_options or {}))
        output = self.evaluator.roles["fad"]
        self._stage = next(st for st in self.evaluator.stages if output in st.names)
        feature = next(f for f in self._stage.features if f.name == output)
        self._feature = feature.name
        self.dim = int(self._stage.manifest.output(feature.output).per_item_of(feature.layer)[-1])
        self.add_state("score_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, audio: Any, sample_rate: Any, captions: Any = None, sizes: Any = None) -> None:
        """Fold a batch of clips and their captions in (whole or not at all).

        Raises
        ------
        InvalidAudioError
            As ``FrechetAudioDistance.update``.
        ValueError
            Captions that are not one str per clip, or empty.
        """
        if isinstance(sample_rate, (list, tuple)) and sample_rate and all(isinstance(t, str) for t in sample_rate):
            audio, captions, sizes, sample_rate = audio, sample_rate, captions, sizes  # audiocraft's order
            if sample_rate is None:
                raise ValueError("update(audio, text, sizes, sample_rates): sample_rates is required")
        if isinstance(captions, str) or not isinstance(captions, (list, tuple)) \
                or not all(isinstance(c, str) and c.strip() for c in captions):
            raise ValueError("captions must be a list of non-empty str, one per clip")
        rows, clips = _embed_clips(self._stage, self._feature, self.dim, self.evaluator.conditioning, audio,
                                   sample_rate, sizes, "audio")
        if len(captions) != len(clips):
            raise ValueError(f"{len(captions)} captions for {len(clips)} clips; pass one per clip")
        assert self.evaluator.text_tower is not None  # clap_score selected: the evaluator loaded it
        text = self.evaluator.text_tower.embed(list(captions))
        scores = [clap_score.cosine(a, t) for a, t in zip(rows, text)]
        self.score_sum = self.score_sum + torch.tensor(math.fsum(scores), dtype=torch.float64, device=self.device)
        self.count = self.count + len(scores)

    def compute(self) -> torch.Tensor:
        if int(self.count) == 0:
            raise MetricUnavailableError("CLAPScore.compute() before any update: call update(audio, sample_rate, "
                                         "captions) first")
        return (self.score_sum / self.count).to(torch.float64)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("CLAPScore: call update(...) for each batch and compute() at the end")


__all__ = ["CLAPScore", "FrechetAudioDistance", "FrechetDistance", "KernelAudioDistance", "merge_gaussians",
           "pack_gaussian", "unpack_gaussian"]
