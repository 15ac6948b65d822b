"""``from audiofidelity.compat.frechet_audio_distance import FrechetAudioDistance`` in place of the
``frechet_audio_distance`` package's class (0.3.x), for its VGGish, PANN (CNN14 8/16/32 kHz), EnCodec
(24/48 kHz) and LAION-CLAP (``630k-audioset``, ``music_audioset``, ``music_speech``, ``music_speech_audioset``;
non-fusion) models; and its ``CLAPScore`` (see there).

Same constructor arguments, ``score(background_dir, eval_dir, background_embds_path=None,
eval_embds_path=None, dtype="float32")`` -> float, ``get_embeddings``, ``calculate_embd_statistics``,
``calculate_frechet_distance`` and the ``.npy`` embedding files ``score`` reads when they exist and writes
when they do not. Audio is conditioned as that package conditions it (``FAD_CONDITIONING``: channels
averaged, resampy to the model's rate, no mean removal or padding; the 48 kHz EnCodec takes two channels
and the whole clip), so ``score`` equals ``audiofidelity eval --fad-model ... --channel mean --resampler
resampy`` run through ``evaluate(..., conditioning=FAD_CONDITIONING)``. What differs, on purpose: PANN
embeddings are 2-D (n, 2048) arrays (the original's 1-D PANN output is a bug), a stereo file for the 48 kHz
EnCodec is resampled channel by channel (the original resamples along the channel axis), a clip over 10 s
gives CLAP the mean over its 10-s windows (the original crops 10 s at random, unseeded, so no tool reproduces
it there), failures raise a clear error instead of returning -1, and the models are ``torch.export``
artifacts. CLAP is fed as that package feeds it: tensors, so without laion_clap's int16 round trip.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path

import numpy as np

from ..audio import Conditioning
from ..evaluate import Evaluator, list_folder
from ..metrics import clap_score, frechet
from ..outputs import atomic_write
from ..models import DEFAULTS, PackageModel, package_models, postprocessor
from ..registry import fad_model

log = logging.getLogger(__name__)

PACKAGE = "frechet_audio_distance"
FAD_CONDITIONING = Conditioning(channel="mean", remove_dc=False, resampler="resampy", min_samples=0)
"""frechet_audio_distance's ``load_audio_task``: ``np.mean`` over channels, ``resampy.resample`` (kaiser_best)."""


def _package_models() -> dict[str, dict[int, list[PackageModel]]]:
    """The package's ``model_name`` -> sample rate -> its models there (several by ``submodel_name``), as the
    model families declare them."""
    out: dict[str, dict[int, list[PackageModel]]] = {}
    for model in package_models(PACKAGE):
        out.setdefault(model.model_name, {}).setdefault(model.sample_rate, []).append(model)
    return out


def find_package_model(model_name: str, sample_rate: int, submodel_name: str | None = None) -> PackageModel:
    """The FAD model the package's ``model_name``, ``sample_rate`` and ``submodel_name`` select, or a ValueError
    with the choices."""
    known = _package_models()
    if model_name not in known:
        raise ValueError(f"model_name {model_name!r} is not available in audiofidelity; choose from {', '.join(known)}")
    if sample_rate not in known[model_name]:
        raise ValueError(f"{model_name} runs at {', '.join(map(str, known[model_name]))} Hz, not {sample_rate}")
    choices = known[model_name][sample_rate]
    if submodel_name is None:
        return choices[0]
    for model in choices:
        if model.submodel == submodel_name:
            return model
    named = [m.submodel for m in choices if m.submodel]
    raise ValueError(f"{model_name} submodel {submodel_name!r} is not exported; choose submodel_name from "
                     f"{', '.join(named) or '(none)'}")


def package_fad_model(name: str):
    """The FAD model as frechet_audio_distance runs it: its own conditioning, and the frontend changes its feeding
    makes (declared by the family: EnCodec 48 kHz on the whole clip; CLAP without the int16 round trip)."""
    model = fad_model(name)
    declared = next((p for p in package_models(PACKAGE) if p.fad_model == name), None)
    return dataclasses.replace(model, toolkit=PACKAGE, conditioning=(),
                               frontend=declared.frontend if declared else ())


class FrechetAudioDistance:
    """Fréchet audio distance between two folders with VGGish, PANN CNN14, EnCodec or LAION-CLAP embeddings.

    Parameters
    ----------
    ckpt_dir : ignored
        Kept for signature compatibility; artifacts come from ``models_dir`` or the Hub pins.
    model_name : str
        ``"vggish"`` (16 kHz), ``"pann"`` (CNN14 at 8, 16 or 32 kHz), ``"encodec"`` (24 or 48 kHz) or ``"clap"``
        (48 kHz).
    submodel_name : str
        ``clap`` only: ``"630k-audioset"`` (default, HTSAT-tiny) or ``"music_audioset"`` (HTSAT-base).
    sample_rate : int
    channels : int
        1, or 2 for the 48 kHz EnCodec (as the original asserts).
    use_pca, use_activation : bool
        VGGish only: AudioSet's PCA + quantisation, and the final ReLU (both off by default, as the original).
    enable_fusion : bool
        ``clap`` only; fusion checkpoints are not exported, so only False.
    verbose : bool
        Show progress bars.
    models_dir, device, cache :
        As ``audiofidelity.evaluate``.
    """

    def __init__(self, ckpt_dir=None, model_name: str | None = None, submodel_name=None, sample_rate: int = 16000,
                 channels: int = 1, use_pca: bool = False, use_activation: bool = False, verbose: bool = False,
                 audio_load_worker: int = 8, enable_fusion: bool = False, *, models_dir=None, device: str = "cpu",
                 cache: bool = True) -> None:
        if model_name is None:  # the package's default: audioldm_eval's FAD model
            model_name = next(p.model_name for p in package_models(PACKAGE) if p.fad_model == DEFAULTS.fad_model)
        chosen = find_package_model(model_name, sample_rate, submodel_name)
        if enable_fusion:  # no fusion checkpoint is exported
            named = [m.submodel for m in package_models(PACKAGE) if m.model_name == model_name and m.submodel]
            raise ValueError(f"{model_name} submodel {chosen.submodel or submodel_name!r} with fusion is not exported; "
                             f"choose submodel_name from {', '.join(named) or '(none)'}, enable_fusion=False")
        name = chosen.fad_model
        if channels != chosen.channels:
            raise ValueError(f"{model_name} at {sample_rate} Hz takes channels={chosen.channels}, not {channels}")
        given = [option for option, on in (("use_pca", use_pca), ("use_activation", use_activation)) if on]
        if any(option not in chosen.options for option in given):
            allowed = sorted({m.model_name for m in package_models(PACKAGE) if set(given) <= set(m.options)})
            raise ValueError(f"{' and '.join(given)} apply to the {', '.join(allowed)} model only")
        self.model_name, self.sample_rate, self.channels, self.verbose = model_name, sample_rate, channels, verbose
        self.use_pca, self.use_activation = use_pca, use_activation
        self._evaluator = Evaluator(metrics=["fad"], fad_model=package_fad_model(name), conditioning=FAD_CONDITIONING,
                                    models_dir=models_dir, device=device, cache=cache, progress=verbose)
        self._stage = self._evaluator.stages[0]
        self._pca = None
        if use_pca:
            from ..artifacts import load_postprocess

            data = load_postprocess(self._stage.runner.artifact)
            self._pca = functools.partial(postprocessor(data.pop("kind")), **data)

    def _finish(self, per_file: list[np.ndarray]) -> np.ndarray:
        """Stack per-file outputs into (rows, d), applying the optional ReLU and PCA (in torchvggish's order)."""
        if not per_file:
            return np.zeros((0, 0), dtype=np.float32)
        rows = np.concatenate([np.atleast_2d(a) for a in per_file])
        if self.use_activation:
            rows = np.maximum(rows, 0.0)
        return self._pca(rows) if self._pca is not None else rows

    def get_embeddings(self, x: list[np.ndarray], sr: int = 16000) -> np.ndarray:
        """Embeddings of in-memory clips (float arrays at rate ``sr``, (n,) or (n, channels) as soundfile reads
        them): (frames or clips, d)."""
        conditioning = self._evaluator.conditioning
        clips = [np.asarray(a, dtype=np.float32) for a in x]
        inputs = [self._stage.input.model_input(a[None] if a.ndim == 1 else a.T, sr, conditioning, {}) for a in clips]
        outputs = self._stage.runner.run(inputs, self._stage.outputs) if inputs else {}
        feature = self._stage.features[0]
        return self._finish([self._stage.select({feature.output: per_clip})[feature.name]
                             for per_clip in outputs.get(feature.output, [])])

    def _folder_embeddings(self, folder: str | Path) -> np.ndarray:
        side = self._evaluator.side_features(Path(folder), list_folder(folder), Path(folder).name)
        for problem in side.problems:
            log.warning("%s/%s: %s (skipped)", folder, problem["file"], problem["reason"])
        return self._finish(side.per_file[self._evaluator.roles["fad"]])

    def _embeddings(self, folder: str | Path, path: str | Path | None) -> np.ndarray:
        if path is not None and Path(path).is_file():
            log.info("reading embeddings from %s", path)
            return np.load(path)
        embeddings = self._folder_embeddings(folder)
        if path is not None:
            atomic_write(path, lambda f: np.save(f, embeddings), option="embeddings file")  # the name as given
        return embeddings

    @staticmethod
    def calculate_embd_statistics(embd_lst) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance (float64) of an (n, d) embedding matrix."""
        return frechet.gaussian_statistics(np.asarray(embd_lst))

    @staticmethod
    def calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
        """Fréchet distance between two Gaussians (``eps`` is accepted for compatibility; the
        eigendecomposition used needs no diagonal offset)."""
        return frechet.frechet_distance(mu1, sigma1, mu2, sigma2)

    def score(self, background_dir, eval_dir, background_embds_path=None, eval_embds_path=None,
              dtype: str = "float32") -> float:
        """FAD between the background (reference) and eval (generated) folders.

        ``dtype`` is accepted for compatibility: files are always decoded to float32, which is exact for
        16- and 24-bit PCM.

        Raises
        ------
        InputFolderError, ValueError
            Instead of the original's silent ``-1``: missing or empty folders, no usable file.
        """
        if dtype not in ("float64", "float32", "int32", "int16"):
            raise ValueError(f"dtype not supported: {dtype}")
        background = self._embeddings(background_dir, background_embds_path)
        evaluated = self._embeddings(eval_dir, eval_embds_path)
        for name, rows in (("background", background), ("eval", evaluated)):
            if len(rows) < 2:
                raise ValueError(f"the {name} set gave {len(rows)} embedding(s); FAD needs at least 2")
        return frechet.frechet_distance_from_features(evaluated, background)  # the order eval uses


class CLAPScore:
    """frechet_audio_distance's ``CLAPScore``: the mean (and spread) of the cosines between each audio file's CLAP
    embedding and its caption's.

    Same constructor arguments and ``score(text_path, audio_dir, text_column="caption", text_embds_path=None,
    audio_embds_path=None, batch_size=10, dtype="float32")`` -> ``(mean, std)``; audio read as the package reads it
    (``FAD_CONDITIONING``, tensors: no int16 round trip). What differs, on purpose: the original pairs the CSV's
    rows, in order, with the folder's files in ``os.listdir`` order, which is arbitrary (file-system order), so its
    pairs can be wrong; here a CSV with an id column (``captions.ID_COLUMNS``: ``file``, ``id``, ``ytid``, ...) pairs
    each file with its id's caption (by name, or name without extension), and one without pairs row i with the i-th
    file in sorted order, refusing unequal counts. Files or captions left unpaired, and every failure, raise or are
    named instead of the original's printed ``-1``.

    Parameters
    ----------
    ckpt_dir : ignored
        Kept for signature compatibility.
    submodel_name : str
        ``"630k-audioset"`` (default), ``"music_audioset"``, ``"music_speech"`` or ``"music_speech_audioset"``.
    enable_fusion : bool
        Fusion checkpoints are not exported: False only.
    models_dir, device, cache :
        As ``audiofidelity.evaluate``.
    """

    def __init__(self, ckpt_dir=None, submodel_name: str = "630k-audioset", verbose: bool = False,
                 audio_load_worker: int = 8, enable_fusion: bool = False, *, models_dir=None, device: str = "cpu",
                 cache: bool = True) -> None:
        from ..artifacts import load
        from ..registry import registry_entry
        from ..text_tower import TextTower

        # the package's model with a text tower (its CLAP), as the families declare it
        package = next(p for p in package_models(PACKAGE) if registry_entry(p.fad_model).text_tower)
        self._fad = FrechetAudioDistance(model_name=package.model_name, submodel_name=submodel_name,
                                         sample_rate=package.sample_rate, enable_fusion=enable_fusion,
                                         verbose=verbose, models_dir=models_dir, device=device, cache=cache)

        name = self._fad._evaluator.fad.artifact
        self._text = TextTower(load(registry_entry(name).text_tower, directory=models_dir, device=device, lazy=True))
        self.submodel_name, self.verbose = submodel_name, verbose

    def get_text_embeddings(self, text_data: list[str]) -> np.ndarray:
        """(n, 512) caption embeddings."""
        return self._text.embed(list(text_data), progress=self.verbose)

    def get_audio_embeddings(self, x: list[np.ndarray], sr: int = 48000) -> np.ndarray:
        """(n, 512) embeddings of in-memory clips at rate ``sr``."""
        return self._fad.get_embeddings(x, sr)

    def _pairs(self, text_path: str | Path, audio_dir: str | Path, text_column: str) -> tuple[list[str], list[str]]:
        """(audio file names, their captions), paired by id or by sorted position (see the class docstring)."""
        import csv

        from ..captions import ID_COLUMNS, read_captions

        names = list_folder(audio_dir)
        with open(text_path, newline="", encoding="utf-8-sig") as f:
            header = [h.strip() for h in next(csv.reader(f), [])]
        if text_column not in header:
            raise ValueError(f"{text_path}: no column {text_column!r} (its columns: {', '.join(header)})")
        if any(h.lower() in ID_COLUMNS for h in header):
            captions = read_captions(text_path)
            for problem in captions.problems:
                log.warning("%s: %s (%s)", text_path, problem["reason"], problem["action"])
            unpaired = [n for n in names if captions.caption_for(n) is None]
            if unpaired:
                raise ValueError(f"{len(unpaired)} audio file(s) have no caption in {text_path}: {unpaired[:10]}")
            return names, [str(captions.caption_for(n)) for n in names]
        with open(text_path, newline="", encoding="utf-8-sig") as f:
            texts = [row[text_column] for row in csv.DictReader(f)]
        if len(texts) != len(names):
            raise ValueError(f"{text_path} has {len(texts)} captions and {audio_dir} {len(names)} files; without an "
                             f"id column ({', '.join(ID_COLUMNS)}) they are paired by sorted position")
        return names, texts

    def score(self, text_path, audio_dir, text_column: str = "caption", text_embds_path=None, audio_embds_path=None,
              batch_size: int = 10, dtype: str = "float32") -> tuple[float, float]:
        """CLAP score of ``audio_dir`` against the captions of ``text_path``: (mean, population std) over files.

        Embedding files are read when they exist and written when they do not, as the original does.

        Raises
        ------
        InputFolderError, ValueError
            A missing folder or column, unpaired files, a bad file (named), embeddings of different shapes.
        """
        if dtype not in ("float64", "float32", "int32", "int16"):
            raise ValueError(f"dtype not supported: {dtype}")
        names, texts = self._pairs(text_path, audio_dir, text_column)
        text = self._cached(text_embds_path, lambda: self.get_text_embeddings(texts))
        audio = self._cached(audio_embds_path, lambda: self._audio_rows(audio_dir, names))
        if text.shape != audio.shape:
            raise ValueError(f"text embeddings {text.shape} and audio embeddings {audio.shape} differ in shape")
        values = np.array([clap_score.cosine(a, t) for a, t in zip(audio, text)])
        return float(values.mean()), float(values.std())

    def _audio_rows(self, audio_dir, names: list[str]) -> np.ndarray:
        side = self._fad._evaluator.side_features(Path(audio_dir), names, Path(audio_dir).name)
        if side.problems:
            raise ValueError(f"{len(side.problems)} audio file(s) could not be used: " + "; ".join(
                f"{p['file']}: {p['reason']}" for p in side.problems))
        return np.concatenate([np.atleast_2d(a) for a in side.per_file[self._fad._evaluator.roles["fad"]]])

    @staticmethod
    def _cached(path, compute) -> np.ndarray:
        if path is not None and Path(path).is_file():
            return np.load(path)
        rows = compute()
        if path is not None:
            atomic_write(path, lambda f: np.save(f, rows), option="embeddings file")
        return rows


__all__ = ["CLAPScore", "FrechetAudioDistance"]
