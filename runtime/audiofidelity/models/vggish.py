"""VGGish (Hershey et al. 2017; torchvggish's port): audioldm_eval's FAD embedding, 128-d every 0.96 s at 16 kHz.

Frontend ``vggish_examples`` (torchvggish's ``waveform_to_examples``); post-processing ``vggish_pca`` (AudioSet's
PCA + 8-bit quantisation, ``--fad-pca``). Export: ``export_scripts/vggish.py``; verify:
``verify_scripts/verify_vggish.py``; card ``model_cards/vggish.md``; stand-ins ``tests/fixtures/checkpoints.py``.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from .family import Adjustment, ArtifactEntry, FadModel, Frontend, ModelFamily, ModelOption, PackageModel

RELEASE = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/"
SHA256 = "10086976245803799d9194e9a73d9b6c1549c71d1b80106f5cade5608a561f4b"
"""``vggish-10086976.pth``'s sha256 as public projects pin it (torch.hub's name carries its first 8 digits); the PCA
file has no published digest beyond its name's prefix."""


@lru_cache(maxsize=8)
def htk_mel_matrix(n_mels: int, n_bins: int, sample_rate: int, fmin: float, fmax: float) -> np.ndarray:
    """VGGish's mel weights (``mel_features.spectrogram_to_mel_matrix``), shape (n_bins, n_mels), float64.

    Triangles on the HTK mel scale 1127 ln(1 + f/700) between ``fmin`` and ``fmax``; the DC bin gets no weight.
    """
    def to_mel(hz):
        return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)

    bins_mel = to_mel(np.linspace(0.0, sample_rate / 2.0, n_bins))
    edges = np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    weights.setflags(write=False)
    return weights


def vggish_examples(wave: np.ndarray, *, sample_rate: int, window_length: int, hop_length: int, fft_length: int,
                    n_mels: int, fmin: float, fmax: float, log_offset: float, example_frames: int,
                    example_hop: int) -> np.ndarray:
    """VGGish input patches (torchvggish ``waveform_to_examples`` on audio already at ``sample_rate``).

    Returns
    -------
    np.ndarray, shape (examples, 1, example_frames, n_mels), float32
        ``examples = 1 + (frames - example_frames) // example_hop`` (0 for audio shorter than one example).

    References: tensorflow/models ``research/audioset/vggish/mel_features.py``.
    """
    wave = np.asarray(wave)
    n_frames = 1 + (len(wave) - window_length) // hop_length
    if n_frames < example_frames:
        return np.zeros((0, 1, example_frames, n_mels), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(wave, window_length)[::hop_length][:n_frames]
    window = 0.5 - 0.5 * np.cos(2 * np.pi / window_length * np.arange(window_length))  # periodic Hann
    spectrum = np.abs(np.fft.rfft(frames * window, fft_length))
    log_mel = np.log(spectrum @ htk_mel_matrix(n_mels, spectrum.shape[1], sample_rate, fmin, fmax) + log_offset)
    n_examples = 1 + (len(log_mel) - example_frames) // example_hop
    examples = np.lib.stride_tricks.sliding_window_view(log_mel, example_frames, axis=0)[::example_hop][:n_examples]
    return np.ascontiguousarray(examples.transpose(0, 2, 1)[:, None], dtype=np.float32)


def vggish_examples_bytes(n: int, *, window_length: int, hop_length: int, fft_length: int, **_: Any) -> float:
    """``vggish_examples``' peak bytes for ``n`` samples: the windowed frames, the spectrum and its magnitude."""
    frames = 1 + max(n - window_length, 0) // hop_length
    return frames * (8.0 * window_length + 8.0 * fft_length + 16.0 * (fft_length // 2 + 1) * 2) + 8.0 * n


def vggish_pca(embeddings: np.ndarray, *, eigen_vectors: np.ndarray, means: np.ndarray) -> np.ndarray:
    """AudioSet's VGGish post-processing: PCA (with whitening), clip to [-2, 2], quantise to 0..255.

    As torchvggish's ``Postprocessor`` (float32). ``embeddings``: (n, 128) -> (n, 128) float32 integers.
    """
    pca = (embeddings.astype(np.float32) - means.astype(np.float32)) @ eigen_vectors.astype(np.float32).T
    return np.round((np.clip(pca, -2.0, 2.0) + 2.0) * np.float32(255.0 / 4.0)).astype(np.float32)


FAMILY = ModelFamily(
    "vggish",
    artifacts=(
        ArtifactEntry("vggish", "embedding", "vggish", (16000,), "vggish", "vggish-10086976.pth",
                      RELEASE + "vggish-10086976.pth", "Apache-2.0", origin="torchvggish GitHub release v0.1",
                      source_sha256=SHA256,
                      extra_sources=("--pca vggish_pca_params-970ea276.pth",), model_rate=16000, dimension=128,
                      frames="1 per 0.96 s", frame_seconds=0.96,
                      description="VGGish, 128-d per 0.96 s (audioldm_eval's FAD embedding)", adapter_output="frames"),
    ),
    fad_models=(FadModel("vggish", "vggish", "fad", "audioldm_eval", conditioning=()),),
    # passes of 32 examples (a 10-s clip gives 10): 1.2x (fp32) and 1.8x (bf16) faster per example than 8 on a
    # 2-core CPU; 64 gains more in bf16, but a lone clip would then pay for six times its own examples
    frontends=(Frontend("vggish_examples", vggish_examples, vggish_examples_bytes,
                        nominal_samples=lambda sample_rate, **_: sample_rate, pass_scale=4),),
    postprocessors={"vggish_pca": vggish_pca},
    options=(ModelOption("fad_pca", "fad", "apply AudioSet's PCA + 8-bit quantisation to VGGish embeddings before "
                         "FAD (not audioldm_eval's)", adjust=lambda on, rate: Adjustment(postprocess=bool(on)),
                         check=bool, flag_only=True),),
    package_models=(PackageModel("frechet_audio_distance", "vggish", 16000, "vggish",
                                 options=("use_pca", "use_activation")),),
)
