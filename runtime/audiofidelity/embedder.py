"""``Embedder``: any artifact's embeddings from arrays, tensors, files or folders, on ``eval``'s own pipeline.

    from audiofidelity import Embedder
    vggish = Embedder("vggish", output="frames")
    rows = vggish.embed(waveform, 44100)          # (frames, 128), conditioned as eval conditions it
    result = vggish.embed_folder("generated/")    # .arrays by file name, .problems for the files skipped
    text = Embedder("clap-630k-audioset", output="text").embed_text(["a dog barks"])   # (1, 512)

Each model is fed as ``eval`` feeds it (``features.backbone_stage`` for a classifier: audioldm_eval's
conditioning at ``sample_rate``, default the model's first evaluation rate; ``features.fad_stage`` for an
embedding model: its FAD toolkit's conditioning at the model's own rate), so ``Embedder`` and
``eval --save-features`` give identical arrays. ``output`` picks the manifest role returned (``OUTPUTS``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .artifacts import load
from .audio import Conditioning, validate_audio
from .cache import FeatureCache
from .errors import InvalidAudioError
from .features import Feature, SideFeatures, backbone_stage, extract_features, fad_stage
from .registry import entries, fad_models, registry_entry
from .runner import DEFAULT_BATCH_SIZE
from .settings import EvaluationSettings
from .text_tower import TextTower

OUTPUTS = {"embedding": "embedding", "frames": "fad", "logits": "logits", "layers": "layers"}
"""``output=`` -> the manifest role it reads; ``"layer:N"`` reads hidden layer N of ``hidden_states`` (MERT);
``"text"``: the caption embeddings of the model's text tower (CLAP), through ``embed_text``."""
TEXT = "text"
DEFAULT_OUTPUTS = ("embedding", "frames")
"""What ``output=None`` reads: the first of these the model offers."""
EMBEDDING_ROLES = ("classifier", "embedding")
"""The registry roles an Embedder serves (besides text towers); quality scorers and benchmarks have none."""


@dataclass(frozen=True)
class EmbedderInfo:
    """What an ``Embedder`` returns and from which bytes."""

    model: str
    output: str
    sample_rate: int
    """The rate the network takes; audio at any rate is conditioned to it."""
    conditioning_rate: int
    channels: int
    shape: tuple
    """Per-clip shape of what ``embed`` returns (``"frames"``: any count)."""
    rows: str
    frame_seconds: float
    """Hop between rows of a frame-level output, in seconds (0 for one row per clip)."""
    sha256: str
    outputs: tuple[str, ...]
    """Every ``output=`` this model offers."""


@dataclass
class EmbeddedFiles:
    """``embed_files`` / ``embed_folder``: arrays by file name (in listing order) and the files skipped, with why."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    problems: list[dict] = field(default_factory=list)


def _outputs(manifest) -> tuple[str, ...]:
    roles = manifest.roles()
    offered = [name for name, role in OUTPUTS.items() if role in roles]
    if "hidden_states" in roles:
        layers = manifest.output(roles["hidden_states"]).per_item[0]
        offered += [f"layer:{n}" for n in range(layers)]
    return tuple(offered)


class Embedder:
    """One artifact's embeddings, conditioned as ``eval`` conditions audio for it.

    Parameters
    ----------
    model : str
        An artifact name (``audiofidelity models list``): ``cnn14-8k``/``16k``/``32k``, ``vggish``, ``mert-v1-95m``,
        ``encodec-24k``/``48k``, ``clap-630k-audioset``, ``clap-music``, or any added through a manifest.
    output : str, optional
        ``"embedding"`` (the clip embedding), ``"frames"`` (per-frame rows: VGGish, EnCodec), ``"logits"``,
        ``"layers"`` (MERT's 13 layer means), ``"layer:N"`` (MERT's hidden layer N, frame by frame) or ``"text"``
        (a CLAP model's text tower: ``embed_text`` only; also what a ``*-text`` artifact gives). Default:
        ``"embedding"`` where the model has a clip embedding (CNN14, MERT, CLAP), else ``"frames"`` (VGGish,
        EnCodec), so the default works for every embedding model of the registry (``DEFAULT_OUTPUTS``).
    pooling : str
        ``"none"``, or ``"mean"`` over a clip's rows (one row per clip from a frame-level output).
    sample_rate : int, optional
        Classifiers only: the evaluation rate audio is conditioned at (as ``eval --sr``); default the first
        the registry lists.
    device, precision, batch_size, models_dir, conditioning, cache, max_memory :
        As ``evaluate``; the feature cache serves ``embed_files`` / ``embed_folder`` (arrays are not cached). A
        tensor on another device is copied to the CPU first (the program runs on ``device``).

    Raises
    ------
    ValueError
        An output the model does not offer, a rate it does not evaluate at, a nonsense batch size or memory
        budget, or the SC09 benchmark's classifier (``sc09-resnext``: ``audiofidelity sc09`` runs it).
    """

    def __init__(self, model: str, *, output: str | None = None, pooling: str = "none", sample_rate: int | None = None,
                 device: str = "cpu", precision: str = "fp32", batch_size: int = DEFAULT_BATCH_SIZE,
                 models_dir: str | Path | None = None, conditioning: Conditioning | None = None,
                 cache: bool | FeatureCache | None = True, max_memory: int | None = None) -> None:
        if pooling not in ("none", "mean"):
            raise ValueError(f"pooling must be 'none' or 'mean', got {pooling!r}")
        settings = EvaluationSettings(device=device, precision=precision, batch_size=batch_size, models_dir=models_dir,
                                      conditioning=conditioning or Conditioning(), cache=cache, max_memory=max_memory,
                                      metrics=())  # validated as eval's; no metric: only how models run
        entry = registry_entry(model)
        if entry.role == "text" or output == TEXT:
            self._init_text(model, entry, output, pooling, sample_rate, device, models_dir)
            return
        self.text: TextTower | None = None
        if entry.role not in EMBEDDING_ROLES:
            raise ValueError(f"{model} is not an embedding model (its role is {entry.role!r}); "
                             + (f"audiofidelity {entry.backbone} runs it" if entry.role == "benchmark"
                                else "it has no Embedder"))
        self.artifact = load(model, directory=models_dir, device=device, lazy=True)  # the program loads on first use
        manifest = self.artifact.manifest
        offered = _outputs(manifest)
        if output is None:
            output = next((o for o in DEFAULT_OUTPUTS if o in offered), offered[0] if offered else "embedding")
        if output not in offered:
            raise ValueError(f"{model} offers output {', '.join(offered)}; not {output!r}")
        self.conditioning = settings.conditioning
        run = settings.run_settings()
        self.cache = FeatureCache() if cache is True else cache or None
        self.pooling = pooling
        role = OUTPUTS.get(output, "hidden_states")
        layer = int(output.split(":")[1]) if output.startswith("layer:") else None
        feature = Feature(output, manifest.roles()[role], layer)
        if entry.role == "classifier":
            rate = sample_rate or entry.rates[0]
            if rate not in entry.rates:
                raise ValueError(f"{model} evaluates at {', '.join(map(str, entry.rates))} Hz, not {sample_rate}")
            self.stage, _ = backbone_stage(self.artifact, run, rate=rate, keep=(feature,))
        else:
            if sample_rate is not None:
                classifiers = ", ".join(e.name for e in entries() if e.role == "classifier")
                raise ValueError(f"{model} takes audio at its own {manifest.sample_rate} Hz; sample_rate applies "
                                 f"to the classifiers ({classifiers})")
            fad = next(m for m in fad_models().values() if m.artifact == model and m.layer is None)
            self.stage, _ = fad_stage(self.artifact, run, fad, keep=(feature,))
        per_item = manifest.output(feature.output).per_item_of(layer)
        frames = bool(per_item) and isinstance(per_item[0], str)
        one_item = self.stage.runner.one_item or self.stage.runner.collect in ("mean", "max")  # CLAP: windows averaged
        shape = tuple(per_item) if one_item or frames else ("frames", *per_item)
        if pooling == "mean" and len(shape) > 1:
            shape = shape[1:]
        self.info = EmbedderInfo(model, output, manifest.sample_rate, self.stage.input.conditioning_rate,
                                 manifest.input.channels, shape, entry.frames,
                                 entry.frame_seconds if frames or not one_item else 0.0, manifest.sha256,
                                 offered + ((TEXT,) if entry.text_tower else ()))

    def _init_text(self, model: str, entry, output: str | None, pooling: str, sample_rate: int | None, device: str,
                   models_dir: str | Path | None) -> None:
        """``output="text"``: the text tower of ``model`` (a CLAP audio model's pair, or a ``*-text`` artifact)."""
        tower = model if entry.role == "text" else entry.text_tower
        if not tower:
            raise ValueError(f"{model} has no text tower; output 'text' is offered by "
                             f"{', '.join(e.name for e in entries() if e.text_tower)}")
        if output not in (None, TEXT) or pooling != "none" or sample_rate is not None:
            raise ValueError(f"{tower} embeds captions: output 'text' only, no pooling or sample_rate")
        self.text = TextTower(load(tower, directory=models_dir, device=device, lazy=True))
        manifest = self.text.artifact.manifest
        self.artifact, self.pooling = self.text.artifact, pooling
        self.info = EmbedderInfo(model, TEXT, 0, 0, 0, (self.text.dimension,), "1 per caption", 0.0, manifest.sha256,
                                 (TEXT,))

    def embed_text(self, captions: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Each caption's embedding from the text tower (``output="text"``), as CLAP score uses them.

        Parameters
        ----------
        captions : sequence of str, length n
        progress : bool

        Returns
        -------
        np.ndarray, shape (n, dimension), float32, L2-normalised rows

        Raises
        ------
        ValueError
            If this ``Embedder`` reads audio (build it with ``output="text"``).
        """
        if self.text is None:
            raise ValueError(f"this Embedder reads audio ({self.info.output}); Embedder({self.info.model!r}, "
                             f"output='text') embeds captions")
        return self.text.embed(captions, progress=progress)

    def _audio_only(self) -> None:
        if self.text is not None:
            raise ValueError(f"Embedder({self.info.model!r}, output='text') embeds captions (embed_text); build one "
                             f"without output='text' for audio")

    def _finish(self, array: np.ndarray) -> np.ndarray:
        return array.mean(axis=0) if self.pooling == "mean" and array.ndim > 1 else array

    def embed(self, audio: Any, sample_rate: int, *, channel: str | None = None) -> np.ndarray:
        """Embeddings of one clip ((n,) or (channels, n)... see below) or of a batch of equal-length clips.

        ``audio``: a NumPy array or torch tensor, (n,) one mono clip, (clips, n) a batch of mono clips, or
        (clips, channels, n) a batch of multichannel clips, float samples; float16, bfloat16 and float64 are
        converted to float32 (exactly for float16 and bfloat16); ``channel``: ``"first"`` or ``"mean"`` for a mono
        model (default: the conditioning's). Returns the clip's array, or the batch's stacked.

        Raises
        ------
        ValueError
            A wrong sample rate, an empty array, NaN/inf, silence, or a clip the model cannot take (too short,
            too long for memory), named.
        """
        self._audio_only()
        if not isinstance(sample_rate, (int, np.integer)) or isinstance(sample_rate, bool) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
        array = _to_numpy(audio)
        if array.ndim not in (1, 2, 3):
            raise ValueError(f"audio must be (n,), (clips, n) or (clips, channels, n), got shape {array.shape}")
        clips = [array[None]] if array.ndim == 1 else [a[None] for a in array] if array.ndim == 2 else list(array)
        conditioning = replace(self.conditioning, channel=channel) if channel else self.conditioning
        inputs = []
        for index, clip in enumerate(clips):
            where = "" if array.ndim == 1 else f"clip {index}: "
            try:
                validate_audio(clip, int(sample_rate), min_duration=conditioning.min_duration)
                inputs.append(self.stage.input.model_input(clip, int(sample_rate), conditioning, {}))
            except InvalidAudioError as exc:
                raise ValueError(f"{where}{exc}") from None
        outputs = self.stage.runner.run(inputs, self.stage.outputs)[self.stage.features[0].output]
        rows = [self._finish(self.stage.select({self.stage.features[0].output: o})[self.info.output]) for o in outputs]
        return rows[0] if array.ndim == 1 else np.stack(rows)

    def embed_folder(self, folder: str | Path, *, limit: int | None = None, progress: bool = False) -> EmbeddedFiles:
        """Every file of ``folder`` (sorted, not recursive; ``limit``: the first N), as ``eval`` reads them."""
        from .evaluate import list_folder

        return self._embed(Path(folder), list_folder(folder, limit=limit), progress)

    def embed_files(self, paths: Sequence[str | Path], *, progress: bool = False) -> EmbeddedFiles:
        """The files named; arrays are keyed by the path as given."""
        out = EmbeddedFiles()
        for path in map(Path, paths):
            done = self._embed(path.parent, [path.name], progress)
            out.arrays.update({str(path): a for a in done.arrays.values()})
            out.problems += [{**p, "file": str(path)} for p in done.problems]
        return out

    def _embed(self, folder: Path, names: list[str], progress: bool) -> EmbeddedFiles:
        self._audio_only()
        side = extract_features(SideFeatures(folder, names), [self.stage], self.conditioning, cache=self.cache,
                                progress=progress, label=folder.name)
        arrays = side.per_file[self.info.output]
        return EmbeddedFiles({name: self._finish(a) for name, a in zip(side.files, arrays)}, side.problems)


def _to_numpy(audio: Any) -> np.ndarray:
    """A float32 NumPy copy of an array or a torch tensor (on any device, bfloat16 included: converted to float32,
    which holds every bfloat16 value exactly; NumPy has no bfloat16), or a ValueError."""
    if hasattr(audio, "detach") and hasattr(audio, "cpu"):
        tensor = audio.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.float()  # float16 and bfloat16 widen exactly (NumPy cannot take bfloat16)
        audio = tensor.numpy()
    array = np.asarray(audio)
    if array.dtype.kind != "f":
        raise ValueError(f"audio must be float samples in [-1, 1], got dtype {array.dtype} (scale integer PCM first)")
    if array.size == 0:
        raise ValueError(f"audio is empty (shape {array.shape})")
    return np.ascontiguousarray(array, dtype=np.float32)
