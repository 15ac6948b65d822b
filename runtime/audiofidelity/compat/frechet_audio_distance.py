"""``from audiofidelity.compat.frechet_audio_distance import FrechetAudioDistance`` in place of the
``frechet_audio_distance`` package's class, for its VGGish and PANN (CNN14) models.

Same constructor arguments, ``score(background_dir, eval_dir, background_embds_path=None,
eval_embds_path=None, dtype="float32")`` -> float, ``get_embeddings``, ``calculate_embd_statistics``,
``calculate_frechet_distance`` and the ``.npy`` embedding files ``score`` reads when they exist and writes
when they do not. Audio is conditioned as ``audiofidelity eval`` conditions it (so ``score`` equals the
``frechet_audio_distance`` of ``eval`` on the same folders). What differs, on purpose: PANN embeddings
are 2-D (n, 2048) arrays (the original's 1-D PANN output is a bug), failures raise a clear error
instead of returning -1, and the models are ``torch.export`` artifacts.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from ..evaluate import Evaluator, list_folder
from ..metrics import frechet
from ..runner import vggish_pca

log = logging.getLogger(__name__)

MODELS = {"vggish": {16000: ("fad", "fad")}, "pann": {16000: ("fd", "embedding"), 32000: ("fd", "embedding")}}
"""model_name -> sample rate -> (the ``eval`` metric whose model it is, the feature role used)."""


class FrechetAudioDistance:
    """Fréchet audio distance between two folders with VGGish or PANN CNN14 embeddings.

    Parameters
    ----------
    ckpt_dir : ignored
        Kept for signature compatibility; artifacts come from ``models_dir`` or the Hub pins.
    model_name : str
        ``"vggish"`` (16 kHz) or ``"pann"`` (CNN14 at 16 or 32 kHz).
    sample_rate : int
    channels : int
        1 (mono) only, as the models take.
    use_pca, use_activation : bool
        VGGish only: AudioSet's PCA + quantisation, and the final ReLU (both off by default, as the original).
    verbose : bool
        Show progress bars.
    models_dir, device, cache :
        As ``audiofidelity.evaluate``.
    """

    def __init__(self, ckpt_dir=None, model_name: str = "vggish", submodel_name=None, sample_rate: int = 16000,
                 channels: int = 1, use_pca: bool = False, use_activation: bool = False, verbose: bool = False,
                 audio_load_worker: int = 8, enable_fusion: bool = False, *, models_dir=None, device: str = "cpu",
                 cache: bool = True) -> None:
        if model_name not in MODELS:
            raise ValueError(f"model_name {model_name!r} is not available in audiofidelity; choose from "
                             f"{', '.join(MODELS)}")
        if sample_rate not in MODELS[model_name]:
            raise ValueError(f"{model_name} runs at {', '.join(map(str, MODELS[model_name]))} Hz, not {sample_rate}")
        if channels != 1:
            raise ValueError("only channels=1 is supported (the models take mono audio)")
        if (use_pca or use_activation) and model_name != "vggish":
            raise ValueError("use_pca and use_activation apply to the vggish model only")
        self.model_name, self.sample_rate, self.verbose = model_name, sample_rate, verbose
        self.use_pca, self.use_activation = use_pca, use_activation
        metric, self._role = MODELS[model_name][sample_rate]
        self._evaluator = Evaluator(backbone="cnn14", sample_rate=sample_rate, metrics=[metric],
                                    models_dir=models_dir, device=device, cache=cache, progress=verbose)
        self._stage = self._evaluator.stages[0]
        self._pca = None
        if use_pca:
            from ..artifacts import load_postprocess

            data = load_postprocess(self._stage.runner.artifact)
            self._pca = functools.partial(vggish_pca, eigen_vectors=data["eigen_vectors"], means=data["means"])

    def _finish(self, per_file: list[np.ndarray]) -> np.ndarray:
        """Stack per-file outputs into (rows, d), applying the optional ReLU and PCA (in torchvggish's order)."""
        if not per_file:
            return np.zeros((0, 0), dtype=np.float32)
        rows = np.concatenate([np.atleast_2d(a) for a in per_file])
        if self.use_activation:
            rows = np.maximum(rows, 0.0)
        return self._pca(rows) if self._pca is not None else rows

    def get_embeddings(self, x: list[np.ndarray], sr: int = 16000) -> np.ndarray:
        """Embeddings of in-memory clips (1-D float arrays at rate ``sr``): (frames or clips, d)."""
        conditioning = self._evaluator.conditioning
        inputs = [self._stage.input.model_input(np.asarray(a, dtype=np.float32).reshape(-1), sr, conditioning, {})
                  for a in x]
        output = self._evaluator.roles[self._role]
        return self._finish(self._stage.runner.run(inputs)[output] if inputs else [])

    def _folder_embeddings(self, folder: str | Path) -> np.ndarray:
        side = self._evaluator.side_features(Path(folder), list_folder(folder), Path(folder).name)
        for problem in side.problems:
            log.warning("%s/%s: %s (skipped)", folder, problem["file"], problem["reason"])
        return self._finish(side.per_file[self._evaluator.roles[self._role]])

    def _embeddings(self, folder: str | Path, path: str | Path | None) -> np.ndarray:
        if path is not None and Path(path).is_file():
            log.info("reading embeddings from %s", path)
            return np.load(path)
        embeddings = self._folder_embeddings(folder)
        if path is not None:
            np.save(path, embeddings)
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


__all__ = ["FrechetAudioDistance"]
