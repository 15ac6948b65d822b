"""One settings object for an evaluation, validated in one place.

``EvaluationSettings`` holds everything ``Evaluator`` needs: which backbone and rate, which metrics, the FAD
model, how models run, how audio is conditioned, and the model families' own options (``model_options``, as each
family declares them: ``--mert-chunk``, ``--fad-pca``). The command line, the service, ``evaluate()`` and the
compat layers build it the same way (``from_keywords``), and the ``Embedder`` the part that says how models run
(``run_settings``); every value is checked here, once.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .audio import Conditioning
from .cache import FeatureCache
from .features import RunSettings
from .memory import default_budget
from .metric_table import resolve_metrics
from .metrics import signal
from .metrics.options import MetricOptions
from .models import DEFAULTS, FadModel, check_model_options, model_options
from .registry import artifact_for, fad_model as find_fad_model, fad_models, registry_entry
from .runner import DEFAULT_BATCH_SIZE, PRECISIONS
from .validation import check_int, check_optional


OPTION_NAMES = {"captions": "--captions FILE (captions=)", "fad_model": "--fad-model", "metrics": "--metrics"}
"""How ``check_captions`` names the settings (the command line's and the API's; the service names its fields)."""


def check_captions(metrics: Sequence[str], captions: str | Path | None, fad: FadModel, *, required: bool = True,
                   names: Mapping[str, str] = OPTION_NAMES) -> None:
    """CLAP score needs a FAD model with a text tower and (``required``) a captions file; a captions file needs CLAP
    score (``ValueError`` naming what to pass, as ``names`` spells the settings). Settings may leave the captions to
    each ``Evaluator.evaluate`` call (the service's jobs), so they check with ``required=False``."""
    scored = "clap_score" in metrics
    if scored and captions is None and required:
        raise ValueError(f"metric clap_score needs the captions the files were generated from: {names['captions']}")
    if captions is not None and not scored:
        raise ValueError(f"the captions are read by metric clap_score only; add it to {names['metrics']}")
    if scored and not registry_entry(fad.artifact).text_tower:
        towers = [m.name for m in fad_models().values() if registry_entry(m.artifact).text_tower]
        raise ValueError(f"metric clap_score needs a CLAP {names['fad_model']} (one with a text tower): "
                         f"{', '.join(towers)}; got {fad.name!r}")


@dataclass(frozen=True)
class EvaluationSettings:
    """An evaluation's settings (see ``evaluate`` for each); ``__post_init__`` validates and normalises them.

    ``model_options``: the families' options by name (``{"mert_chunk": 10.0}``), each checked by its family and
    allowed only when the run uses a model of that family; unset options are dropped. ``metrics`` (None: the
    backbone's defaults) becomes a tuple of names and ``fad_model`` (a name) its ``FadModel``; read them with those
    types as ``selected_metrics`` and ``fad``. ``captions``: the captions file CLAP score reads (``captions.py``), or
None to give one to each ``Evaluator.evaluate`` call.
    """

    backbone: str = DEFAULTS.backbone
    sample_rate: int = DEFAULTS.sample_rate
    metrics: Sequence[str] | None = None
    fad_model: str | FadModel = DEFAULTS.fad_model
    models_dir: str | Path | None = None
    device: str = "cpu"
    batch_size: int = DEFAULT_BATCH_SIZE
    conditioning: Conditioning = field(default_factory=Conditioning)
    strict: bool = False
    lsd_offset: int = signal.HIFIGAN_OFFSET
    require_pinned: bool = False
    progress: bool = True
    cache: bool | FeatureCache | None = True
    workers: int = 0
    precision: str = "fp32"
    max_memory: int | None = None
    batch_across_clips: bool = False
    metric_options: MetricOptions = field(default_factory=MetricOptions)
    model_options: Mapping[str, Any] = field(default_factory=dict)
    captions: str | Path | None = None

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("batch_size", check_int(self.batch_size, "batch_size", minimum=1))
        put("workers", check_int(self.workers, "workers", minimum=0))
        put("lsd_offset", check_int(self.lsd_offset, "lsd_offset", minimum=0))
        put("max_memory", check_optional(check_int, self.max_memory, "max_memory", minimum=1))
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        put("conditioning", self.conditioning or Conditioning())
        put("metric_options", self.metric_options or MetricOptions())
        artifact_for(self.backbone, self.sample_rate)  # names the choices when there is none
        put("metrics", tuple(resolve_metrics(self.backbone, self.metrics)))
        put("fad_model", find_fad_model(self.fad_model) if isinstance(self.fad_model, str) else self.fad_model)
        put("model_options", check_model_options(dict(self.model_options), backbone=self.backbone,
                                                 fad_model=self.fad.artifact))
        if self.captions is not None and not isinstance(self.captions, (str, Path)):
            raise TypeError(f"captions must be a path, got {type(self.captions).__name__}")
        check_captions(self.selected_metrics, self.captions, self.fad, required=False)

    @property
    def selected_metrics(self) -> tuple[str, ...]:
        """The metrics to compute, resolved (``metrics`` as ``__post_init__`` left it)."""
        assert isinstance(self.metrics, tuple)  # __post_init__ resolved them
        return self.metrics

    @property
    def fad(self) -> FadModel:
        """The FAD model's entry (``fad_model`` as ``__post_init__`` left it)."""
        assert isinstance(self.fad_model, FadModel)  # __post_init__ looked the name up
        return self.fad_model

    @classmethod
    def from_keywords(cls, **keywords: Any) -> "EvaluationSettings":
        """Settings from ``evaluate()``'s keywords: the families' options may be given by name among them
        (``mert_chunk=10``); an unknown keyword is a ``TypeError`` naming it."""
        fields = {f.name for f in dataclasses.fields(cls)}
        options = dict(keywords.pop("model_options", None) or {})
        for name in list(keywords):
            if name not in fields:
                if name not in model_options():
                    raise TypeError(f"unknown setting {name!r}")
                options[name] = keywords.pop(name)
        if keywords.get("metrics") is not None:
            keywords["metrics"] = tuple(keywords["metrics"])
        return cls(**keywords, model_options=options)

    def run_settings(self) -> RunSettings:
        """How the models run (shared by every stage of an evaluation and by the ``Embedder``): the memory budget is
        ``max_memory``, else half of what the process can still get now."""
        budget = self.max_memory if self.max_memory is not None else default_budget()
        return RunSettings(self.conditioning, self.device, self.precision, self.batch_size, self.batch_across_clips,
                           budget)

    def option_record(self) -> dict[str, Any]:
        """Every declared option's value in force (unset: None, or False for a switch), for the statistics
        files' settings and the report's provenance."""
        return {o.name: self.model_options.get(o.name, False if o.flag_only else None)
                for o in model_options().values()}
