"""The model families: the one place the runtime learns what models exist and how each is fed.

Each family is one module here (``cnn14``, ``vggish``, ``mert``, ``encodec``, ``clap``, ``passt``, ``sc09``,
``aesthetics``, ``pam``) declaring a ``FAMILY`` (see ``family.py``); this collection gathers them and answers every
question the generic core asks: which artifacts, FAD embeddings and reference-free scores exist, which frontend a
manifest's ``kind`` names, which post-processing, which model options a run may carry, and the defaults. Nothing
outside ``models/`` names a model.

``register(family)`` adds a family at run time (a plug-in, a test's toy model); every lookup reads the current
list, so the command line, the service and the pipeline see it at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import ManifestError
from . import aesthetics, clap, cnn14, encodec, mert, openl3, pam, passt, sc09, vggish
from .family import (AUDIOLDM_EVAL_KL, Adjustment, ArtifactEntry, FadModel, Frontend, HubPin, KLDefinition,
                     ModelFamily, ModelOption, PackageModel, Scorer)

_FAMILIES: list[ModelFamily] = [cnn14.FAMILY, vggish.FAMILY, mert.FAMILY, encodec.FAMILY, clap.FAMILY, passt.FAMILY,
                                 sc09.FAMILY, aesthetics.FAMILY, pam.FAMILY, openl3.FAMILY]


@dataclass(frozen=True)
class Defaults:
    """What a run uses when nothing is chosen: audioldm_eval's own defaults."""

    backbone: str = "cnn14"
    sample_rate: int = 16000
    fad_model: str = "vggish"
    clap_score_model: str = "clap-630k-audioset"
    """The model CLAP score reads where none is named (the Python metrics; ``eval`` asks for one)."""


DEFAULTS = Defaults()


def families() -> tuple[ModelFamily, ...]:
    """Every family, built-in and registered."""
    return tuple(_FAMILIES)


def register(family: ModelFamily) -> None:
    """Add a family (its names must be new); ``unregister`` takes it away again."""
    taken = {a.name for f in _FAMILIES for a in f.artifacts} | {m.name for f in _FAMILIES for m in f.fad_models}
    clash = sorted(taken & ({a.name for a in family.artifacts} | {m.name for m in family.fad_models}))
    if family.name in {f.name for f in _FAMILIES} or clash:
        raise ValueError(f"model family {family.name!r} clashes with a registered one ({', '.join(clash) or 'name'})")
    _FAMILIES.append(family)


def unregister(name: str) -> None:
    _FAMILIES[:] = [f for f in _FAMILIES if f.name != name]


ROLE_ORDER = ("classifier", "embedding", "text", "quality", "benchmark")


def builtin_entries() -> tuple[ArtifactEntry, ...]:
    """Every family's artifacts, unpinned (``registry.entries`` applies the pins in force): the backbones first, then
    the embeddings, then the benchmark classifiers, each in family order (the order every listing shows)."""
    found = [a for f in _FAMILIES for a in f.artifacts]
    return tuple(sorted(found, key=lambda a: ROLE_ORDER.index(a.role) if a.role in ROLE_ORDER else len(ROLE_ORDER)))


def all_fad_models() -> tuple[FadModel, ...]:
    """Every family's FAD models: the default first, then those reading a whole output in family order, then those
    reading one layer of it."""
    found = [m for f in _FAMILIES for m in f.fad_models]
    return tuple(sorted(found, key=lambda m: (m.name != DEFAULTS.fad_model, m.layer is not None)))


def family_of(artifact: str) -> ModelFamily:
    """The family an artifact (or a FAD model) belongs to."""
    for family in _FAMILIES:
        if artifact in {a.name for a in family.artifacts} | {m.name for m in family.fad_models}:
            return family
    raise KeyError(f"no model family has {artifact!r}")


def _frontends() -> dict[str, Frontend]:
    return {fe.kind: fe for f in _FAMILIES for fe in f.frontends}


def frontend_kinds() -> list[str]:
    return list(_frontends())


def _frontend(spec: dict[str, Any]) -> tuple[Frontend, dict[str, Any]]:
    params = dict(spec)
    kind = params.pop("kind", None)
    known = _frontends()
    if kind not in known:
        raise ManifestError(f"unknown frontend kind {kind!r}; this version supports {', '.join(known)}")
    return known[kind], params


def apply_frontend(wave: np.ndarray, spec: dict[str, Any]) -> np.ndarray | list[np.ndarray]:
    """Run the frontend a manifest's ``frontend`` section describes (``{"kind": ..., **parameters}``) on a
    conditioned waveform."""
    frontend, params = _frontend(spec)
    return frontend.compute(wave, **params)


def frontend_bytes(n: int, spec: dict[str, Any]) -> float:
    """Peak bytes the frontend a manifest describes allocates for ``n`` samples, known before it runs."""
    frontend, params = _frontend(spec)
    return frontend.peak_bytes(n, **params)


def nominal_item_shape(spec: dict[str, Any], channels: int = 1) -> tuple[int, ...] | None:
    """The shape of the items the frontend a manifest describes usually gives (``Frontend.nominal_samples``): that of
    its first item for a clip of that length (low-level noise, ``channels`` of it), or None when item shapes follow
    each clip's length."""
    frontend, params = _frontend(spec)
    samples = frontend.nominal_samples(**params) if frontend.nominal_samples else None
    if samples is None:
        return None
    noise = (1e-2 * np.random.default_rng(0).standard_normal((channels, samples) if channels == 2 else samples))
    return tuple(frontend.compute(noise.astype(np.float32), **params)[0].shape)


def nominal_pass_scale(spec: dict[str, Any]) -> int:
    """How many batch sizes of nominal items a full pass of the frontend a manifest describes holds
    (``Frontend.pass_scale``)."""
    return _frontend(spec)[0].pass_scale


def fits(spec: dict[str, Any]) -> bool:
    """Whether the frontend a manifest describes may pad or cut a clip to its model's window."""
    return _frontend(spec)[0].fitting is not None


def frontend_fitting(n: int, spec: dict[str, Any]) -> str | None:
    """``"padded"``, ``"cut"`` or None: what the frontend a manifest describes does to a clip of ``n`` samples to
    fit its model's window (``Frontend.fitting``)."""
    frontend, params = _frontend(spec)
    return frontend.fitting(n, **params) if frontend.fitting else None


def postprocessor(kind: str) -> Callable[..., np.ndarray]:
    """The post-processing a manifest's ``postprocess`` kind names (``(outputs, **data) -> outputs``)."""
    known = {k: fn for f in _FAMILIES for k, fn in f.postprocessors.items()}
    if kind not in known:
        raise ManifestError(f"unknown post-processing kind {kind!r}; this version supports {', '.join(known)}")
    return known[kind]


def model_options() -> dict[str, ModelOption]:
    """Every family's options by name."""
    return {o.name: o for f in _FAMILIES for o in f.options}


def check_model_options(values: dict[str, Any], *, backbone: str, fad_model: str) -> dict[str, Any]:
    """``values`` validated: each a declared option, of the family whose model the run uses for the stage it
    changes (``mert_chunk`` needs the MERT backbone, ``fad_pca`` the VGGish FAD model); unset ones dropped.

    Raises ``ValueError`` naming the option, the model it needs and the value."""
    known = model_options()
    out = {}
    for name, value in values.items():
        if name not in known:
            raise TypeError(f"unknown model option {name!r}; the model families declare {', '.join(known)}")
        option = known[name]
        if value is None or (option.flag_only and not value):
            continue
        model = backbone if option.stage == "backbone" else fad_model
        chosen = backbone_family(backbone) if option.stage == "backbone" else family_of(fad_model)
        if option not in chosen.options:
            raise ModelOptionError(option, owner_models(option), model)
        out[name] = option.check(value)
        reason = option.refuse(out[name], model) if option.refuse else None
        if reason:
            raise ValueError(f"{option.flag} {value}: {reason}")
    return out


def owner_models(option: ModelOption) -> list[str]:
    """The models ``option`` applies to: its family's backbones, or its family's FAD models."""
    owner = next(f for f in _FAMILIES if option in f.options)
    if option.stage == "backbone":
        return list(dict.fromkeys(a.backbone for a in owner.artifacts if a.role == "classifier"))
    return [m.name for m in owner.fad_models]


class ModelOptionError(ValueError):
    """A family's option given for a run that uses no model of that family."""

    def __init__(self, option: ModelOption, needs: list[str], got: str) -> None:
        self.option, self.needs, self.got = option, needs, got
        chosen = "backbone" if option.stage == "backbone" else "fad_model"
        super().__init__(f"{option.name} needs {chosen} {' or '.join(needs)}, not {got!r}")

    def command_line(self) -> str:
        """The same in the command line's words."""
        chosen = "--backbone" if self.option.stage == "backbone" else "--fad-model"
        return f"{self.option.flag} needs {chosen} {' or '.join(self.needs)}, not {self.got}"


def adjustment(family: ModelFamily, stage: str, values: Mapping[str, Any], model_rate: int) -> Adjustment | None:
    """What ``family``'s options set in ``values`` change in its ``stage`` (``backbone`` or ``fad``), or None."""
    found = [o.adjust(values[o.name], model_rate) for o in family.options if o.stage == stage and o.name in values]
    if not found:
        return None
    return Adjustment(frontend={k: v for a in found for k, v in a.frontend.items()},
                      collect=next((a.collect for a in found if a.collect), None),
                      postprocess=any(a.postprocess for a in found),
                      conditioning={k: v for a in found for k, v in a.conditioning.items()},
                      kl=next((a.kl for a in found if a.kl is not None), None),
                      rate=next((a.rate for a in found if a.rate), None),
                      resample_api=next((a.resample_api for a in found if a.resample_api), None),
                      caption_tokens=next((a.caption_tokens for a in found if a.caption_tokens), None))


def scorers() -> dict[str, Scorer]:
    """Every family's reference-free scores, by metric name."""
    return {s.name: s for f in _FAMILIES for s in f.scorers}


def backbone_family(backbone: str) -> ModelFamily:
    """The family whose classifier artifacts serve ``backbone``."""
    for family in _FAMILIES:
        if any(a.role == "classifier" and a.backbone == backbone for a in family.artifacts):
            return family
    raise ValueError(f"unknown backbone {backbone!r}; choose from {', '.join(backbone_names())}")


def backbone_names() -> list[str]:
    return list(dict.fromkeys(a.backbone for a in builtin_entries() if a.role == "classifier"))


def package_models(package: str) -> tuple[PackageModel, ...]:
    """How a reference package names the FAD models (frechet_audio_distance's ``model_name`` and rates)."""
    return tuple(p for f in _FAMILIES for p in f.package_models if p.package == package)


__all__ = ["AUDIOLDM_EVAL_KL", "Adjustment", "ArtifactEntry", "DEFAULTS", "Defaults", "FadModel", "Frontend", "HubPin",
           "KLDefinition", "ModelFamily", "ModelOption", "ModelOptionError", "PackageModel", "Scorer", "adjustment",
           "all_fad_models", "apply_frontend", "backbone_family", "backbone_names", "builtin_entries",
           "check_model_options", "families", "family_of", "fits", "frontend_bytes", "frontend_fitting",
           "frontend_kinds", "model_options", "nominal_item_shape", "nominal_pass_scale", "owner_models",
           "package_models", "postprocessor", "register", "scorers", "unregister"]
