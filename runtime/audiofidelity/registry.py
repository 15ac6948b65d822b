"""The artifact registry: every model this version knows, what it serves, its upstream source, and its Hub pin.

A Hub pin names the exact bytes: repository, commit (revision) and the sha256 of the ``.pt2`` and of
its manifest. Entries not yet published have ``hub=None`` and say so; nothing pretends.
``AUDIOFIDELITY_REGISTRY=path.json`` overrides pins and upstream locations (mirrors, tests)::

    {"artifacts": {"cnn14-16k": {"hub": {"repo_id": "org/name", "revision": "<40 hex>",
                                         "sha256": "...", "manifest_sha256": "...", "size": 123},
                                 "source_url": "...", "source_sha256": "...", "source_revision": "..."}}}
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ManifestError

REGISTRY_ENV = "AUDIOFIDELITY_REGISTRY"


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
    ``"embedding"`` artifacts (VGGish, EnCodec, CLAP) only embed, for FAD; the ``"benchmark"`` artifact (SC09's
    classifier) serves its benchmark's metrics. ``rates``: the evaluation sample
    rates a backbone serves (the model's own input rate is in its manifest).
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

    @property
    def published(self) -> bool:
        return self.hub is not None


VGGISH_RELEASE = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/"
ENCODEC_RELEASE = "https://dl.fbaipublicfiles.com/encodec/v0/"
CLAP_RELEASE = "https://huggingface.co/lukewys/laion_clap/resolve/main/"
_BUILTIN: tuple[ArtifactEntry, ...] = (
    # hub=None: not yet published (nothing can be uploaded from the build machines); build them locally
    ArtifactEntry("cnn14-16k", "classifier", "cnn14", (16000,), "cnn14", "Cnn14_16k_mAP=0.438.pth",
                  "https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth", "CC-BY-4.0",
                  origin="PANNs, Zenodo record 3987831", model_rate=16000, dimension=2048, frames="1 per clip"),
    ArtifactEntry("cnn14-32k", "classifier", "cnn14", (32000,), "cnn14", "Cnn14_mAP=0.431.pth",
                  "https://zenodo.org/record/3576403/files/Cnn14_mAP%3D0.431.pth", "CC-BY-4.0",
                  origin="PANNs, Zenodo record 3576403", model_rate=32000, dimension=2048, frames="1 per clip"),
    ArtifactEntry("mert-v1-95m", "classifier", "mert", (16000, 32000), "mert", "MERT-v1-95M",
                  "https://huggingface.co/m-a-p/MERT-v1-95M", "CC-BY-NC-4.0",
                  origin="Hugging Face repository m-a-p/MERT-v1-95M (a folder)", model_rate=24000, dimension=768,
                  frames="75 per s per layer", frame_seconds=320 / 24000),
    ArtifactEntry("cnn14-8k", "embedding", "cnn14", (), "cnn14", "Cnn14_8k_mAP=0.416.pth",
                  "https://zenodo.org/record/3987831/files/Cnn14_8k_mAP%3D0.416.pth", "CC-BY-4.0",
                  origin="PANNs, Zenodo record 3987831", model_rate=8000, dimension=2048, frames="1 per clip"),
    ArtifactEntry("vggish", "embedding", "vggish", (16000,), "vggish", "vggish-10086976.pth",
                  VGGISH_RELEASE + "vggish-10086976.pth", "Apache-2.0",
                  origin="torchvggish GitHub release v0.1", extra_sources=("--pca vggish_pca_params-970ea276.pth",),
                  model_rate=16000, dimension=128, frames="1 per 0.96 s", frame_seconds=0.96),
    ArtifactEntry("encodec-24k", "embedding", "encodec", (), "encodec", "encodec_24khz-d7cc33bc.th",
                  ENCODEC_RELEASE + "encodec_24khz-d7cc33bc.th", "MIT",
                  origin="facebookresearch/encodec, dl.fbaipublicfiles.com", model_rate=24000, dimension=128,
                  frames="75 per s", frame_seconds=320 / 24000),
    ArtifactEntry("encodec-48k", "embedding", "encodec", (), "encodec", "encodec_48khz-7e698e3e.th",
                  ENCODEC_RELEASE + "encodec_48khz-7e698e3e.th", "MIT",
                  origin="facebookresearch/encodec, dl.fbaipublicfiles.com", model_rate=48000, channels=2,
                  dimension=128, frames="150 per s", frame_seconds=320 / 48000),
    ArtifactEntry("clap-630k-audioset", "embedding", "clap", (), "clap", "630k-audioset-best.pt",
                  CLAP_RELEASE + "630k-audioset-best.pt", "CC0-1.0",
                  origin="LAION-CLAP, Hugging Face repository lukewys/laion_clap", model_rate=48000, dimension=512,
                  frames="1 per clip (10-s windows averaged)"),
    ArtifactEntry("clap-music", "embedding", "clap", (), "clap", "music_audioset_epoch_15_esc_90.14.pt",
                  CLAP_RELEASE + "music_audioset_epoch_15_esc_90.14.pt", "CC0-1.0",
                  origin="LAION-CLAP, Hugging Face repository lukewys/laion_clap", model_rate=48000, dimension=512,
                  frames="1 per clip (10-s windows averaged)"),
    ArtifactEntry("sc09-resnext", "benchmark", "sc09", (), "sc09", "resnext.pth",
                  "https://huggingface.co/krandiash/sashimi-release/resolve/main/sc09_classifier/resnext.pth",
                  "Apache-2.0", origin="SaShiMi release, Hugging Face repository krandiash/sashimi-release",
                  model_rate=16000, dimension=1024, frames="1 per 1-s clip"),
)


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
    conditioning: tuple[tuple[str, object], ...] = (("remove_dc", False), ("min_samples", 0))
    frontend: tuple[tuple[str, object], ...] = ()
    """Frontend parameters set differently from the manifest's (a toolkit's other feeding of the model)."""
    average_items: bool = False
    """One row per clip: the mean over the clip's items (CLAP's 10-s windows of a longer clip)."""


MERT_LAYERS = range(1, 13)
_FAD_MODELS: tuple[FadModel, ...] = (
    FadModel("vggish", "vggish", "fad", "audioldm_eval", conditioning=()),
    *(FadModel(name, name, "embedding", "frechet_audio_distance") for name in ("cnn14-8k", "cnn14-16k", "cnn14-32k")),
    FadModel("encodec-24k", "encodec-24k", "fad", "fadtk"),
    FadModel("encodec-48k", "encodec-48k", "fad", "fadtk"),
    *(FadModel(name, name, "embedding", "laion_clap", average_items=True) for name in ("clap-630k-audioset",
                                                                                      "clap-music")),
    *(FadModel(f"mert-v1-95m-{layer}", "mert-v1-95m", "hidden_states", "fadtk", layer=layer) for layer in MERT_LAYERS),
)


def fad_models() -> dict[str, FadModel]:
    """Every ``--fad-model`` name -> what it reads."""
    return {m.name: m for m in _FAD_MODELS}


def fad_model(name: str) -> FadModel:
    try:
        return fad_models()[name]
    except KeyError:
        raise ValueError(f"unknown FAD model {name!r}; choose from {', '.join(fad_models())}") from None


def _overrides() -> dict[str, dict]:
    path = os.environ.get(REGISTRY_ENV)
    if not path:
        return {}
    try:
        return json.loads(Path(path).read_text())["artifacts"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ManifestError(f"cannot read registry override {path} ({REGISTRY_ENV}): {exc}; expected "
                            f'{{"artifacts": {{"<name>": {{"hub": {{...}}}}}}}}') from exc


def entries() -> tuple[ArtifactEntry, ...]:
    """The registry in force: built-in entries with ``$AUDIOFIDELITY_REGISTRY`` pins applied."""
    overrides = _overrides()
    unknown = sorted(set(overrides) - {e.name for e in _BUILTIN})
    if unknown:
        raise ManifestError(f"registry override names unknown artifact(s) {unknown}; known: "
                            f"{', '.join(e.name for e in _BUILTIN)}")
    out = []
    for entry in _BUILTIN:
        fields = dict(overrides.get(entry.name, {}))
        if fields.get("hub"):
            fields["hub"] = HubPin(**fields["hub"])
        allowed = {"hub", "source_url", "source_sha256", "source_revision"}
        if set(fields) - allowed:
            raise ManifestError(f"registry override for {entry.name} sets {sorted(set(fields) - allowed)}; "
                                f"only {sorted(allowed)} can be overridden")
        out.append(dataclasses.replace(entry, **fields))
    return tuple(out)


def registry_entry(name: str) -> ArtifactEntry:
    for entry in entries():
        if entry.name == name:
            return entry
    raise KeyError(f"unknown artifact {name!r}; known: {', '.join(e.name for e in entries())}")


def names() -> list[str]:
    return [e.name for e in _BUILTIN]


def backbones() -> dict[str, tuple[int, ...]]:
    """Backbone name -> the evaluation sample rates it has artifacts for."""
    out: dict[str, tuple[int, ...]] = {}
    for entry in _BUILTIN:
        if entry.role == "classifier":
            out[entry.backbone] = out.get(entry.backbone, ()) + entry.rates
    return out


def artifact_for(backbone: str, sample_rate: int) -> ArtifactEntry:
    """The registry entry serving ``backbone`` at ``sample_rate``."""
    for entry in entries():
        if entry.role == "classifier" and entry.backbone == backbone and sample_rate in entry.rates:
            return entry
    choices = "; ".join(f"{b}: {', '.join(map(str, r))} Hz" for b, r in backbones().items())
    raise ValueError(f"no artifact for backbone {backbone!r} at {sample_rate} Hz; available: {choices}")


def export_command(name: str, out: str = "MODELS_DIR") -> str:
    """The command that builds artifact ``name`` from its original checkpoint."""
    entry = registry_entry(name)
    extra = "".join(f" {option}" for option in entry.extra_sources)
    return f"python export_scripts/export.py {name} --source {entry.source_file}{extra} --out {out}"


def build_instructions(missing: list[str], out: str = "MODELS_DIR") -> str:
    """How to build every artifact in ``missing``: where each original comes from and the two commands
    (fetch it, or use a copy you have), for one error message that names them all."""
    lines = []
    for name in missing:
        entry = registry_entry(name)
        files = " + ".join([entry.source_file, *(o.split()[-1] for o in entry.extra_sources)])
        lines += [f"  {name}: {files} from {entry.origin} ({entry.license})",
                  f"    python export_scripts/export.py {name} --download --out {out}",
                  f"    or, with the file at hand: {export_command(name, out)}"]
    return "\n".join(["Build them once from the original checkpoints with the export scripts (they come with the "
                      "audiofidelity source repository, not with the installed package; the export needs the "
                      "'export' extra for MERT), then pass --models-dir " + out + ":", *lines])
