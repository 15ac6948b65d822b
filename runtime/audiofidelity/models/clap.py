"""LAION-CLAP (Wu et al. 2023): each checkpoint's audio tower (HTSAT-tiny ``630k-audioset-best.pt``, HTSAT-base for
the music and music/speech checkpoints) + projection, 512-d per clip at 48 kHz, as FAD embeddings and for CLAP
score; and its text tower (``<name>-text``: RoBERTa-base + projection, 512-d per caption, the tokenizer files
beside it), for CLAP score and text embeddings.

Frontend ``clap_log_mel`` (the int16 round trip, repeat-padding to 10-s windows, HTS-AT's log-mel), and
``clap_fusion_mel`` for the fusion checkpoint (torchaudio's mel of the whole clip, its global and local views); the
text tower's
``roberta_bpe`` tokenizer is ``audiofidelity/tokenizer.py``. ``--clap-feeding`` reads files as a toolkit's CLAP
score does (``FEEDINGS``). Export: ``export_scripts/clap_htsat.py`` and ``clap_text.py``; verify:
``verify_scripts/verify_clap.py`` and ``verify_clap_text.py``; cards ``model_cards/clap-*.md``; stand-ins
``tests/fixtures/clap.py`` and ``clap_text.py``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..frontends import log_mel, stft_bytes, window_starts
from .family import Adjustment, ArtifactEntry, FadModel, Frontend, ModelFamily, ModelOption, PackageModel

RELEASE = "https://huggingface.co/lukewys/laion_clap/resolve/main/"
ORIGIN = "LAION-CLAP, Hugging Face repository lukewys/laion_clap"
SHA256 = {"630k-audioset-best.pt": "8053c9775516af2f4902e1e8281e356cc1bf7a85e8b761908170767b77c3f037",
          "630k-audioset-fusion-best.pt": "fb171dd9b608aebdac3d89286cd7615c5100af4cc7dc37797c7fb8d3cc15e3a5",
          "music_audioset_epoch_15_esc_90.14.pt": "fae3e9c087f2909c28a09dc31c8dfcdacbc42ba44c70e972b58c1bd1caf6dedd",
          "music_speech_audioset_epoch_15_esc_89.98.pt":
              "51c68f12f9d7ea25fdaaccf741ec7f81e93ee594455410f3bca4f47f88d8e006",
          "music_speech_epoch_15_esc_89.25.pt": "a27dfbd00d96781020d83044136f084343edab799d2657ef3cfe5c4f2222bb28"}
"""Each checkpoint's sha256: its Git LFS object id in lukewys/laion_clap, which the Hub also states on download."""
TOKENIZER_RELEASE = "https://huggingface.co/FacebookAI/roberta-base/resolve/main/"
"""roberta-base's ``vocab.json`` and ``merges.txt``: what ``RobertaTokenizer.from_pretrained("roberta-base")`` reads."""
CHECKPOINTS = (("clap-630k-audioset", "630k-audioset-best.pt", "HTSAT-tiny"),
               ("clap-music", "music_audioset_epoch_15_esc_90.14.pt", "HTSAT-base"),
               ("clap-music-speech-audioset", "music_speech_audioset_epoch_15_esc_89.98.pt", "HTSAT-base"),
               ("clap-music-speech", "music_speech_epoch_15_esc_89.25.pt", "HTSAT-base"),
               ("clap-630k-audioset-fusion", "630k-audioset-fusion-best.pt", "HTSAT-tiny-fusion"))
"""Artifact name, checkpoint, audio tower of the LAION-CLAP checkpoints papers use (music/speech/AudioSet:
audioldm_eval's CLAP score and MusicGen's; 630k-audioset: frechet_audio_distance's default; its fusion variant:
stable-audio-metrics' default, HTSAT-tiny with ``aff_2d`` feature fusion)."""
FUSION_TOWERS = ("HTSAT-tiny-fusion",)
SUBMODELS = {"630k-audioset": "clap-630k-audioset", "music_audioset": "clap-music",
             "music_speech_audioset": "clap-music-speech-audioset", "music_speech": "clap-music-speech"}
"""frechet_audio_distance's CLAP ``submodel_name`` -> the FAD model it is."""
TEXT_SUFFIX = "-text"


def int16_round_trip(wave: np.ndarray) -> np.ndarray:
    """laion_clap's ``int16_to_float32(float32_to_int16(x))``: clip to [-1, 1], x 32767, truncate to int16, / 32767."""
    return ((np.clip(wave, -1.0, 1.0) * 32767.0).astype(np.int16) / 32767.0).astype(np.float32)


def repeat_pad(wave: np.ndarray, samples: int) -> np.ndarray:
    """laion_clap's ``repeatpad`` of a clip shorter than ``samples``: repeated whole as often as it fits, then
    zero-padded to ``samples``."""
    return np.pad(np.tile(wave, samples // len(wave)), (0, samples % len(wave)))


WINDOWINGS = ("repeat", "first")


def clap_log_mel(wave: np.ndarray, *, sample_rate: int, window_samples: int, quantize: bool = True,
                 windowing: str = "repeat", **spectrogram: Any) -> np.ndarray:
    """LAION-CLAP's input (``get_audio_embedding_from_data``, non-fusion): the log-mel of 10-s windows.

    ``quantize``: the int16 round trip laion_clap applies to NumPy input (clip to [-1, 1], x 32767, truncate
    to int16, / 32767); frechet_audio_distance passes tensors, which skip it. ``windowing="repeat"`` (laion_clap):
    a clip no longer than ``window_samples`` is repeated whole as often as it fits and zero-padded to the window
    (``repeatpad``); a longer one, which laion_clap crops at random, becomes consecutive windows plus one ending at
    the clip's end (``window_starts``), whose embeddings the FAD model averages. ``windowing="first"``
    (audioldm_eval's vendored ``get_audio_features``): the first ``window_samples`` only, a shorter clip as it is
    (fewer frames, which HTS-AT stretches to its 1024). ``spectrogram``: ``log_mel``'s parameters (torchlibrosa's,
    as HTS-AT sets them). Returns (windows, 1, frames, n_mels) float32.
    """
    if windowing not in WINDOWINGS:
        raise ValueError(f"windowing must be one of {WINDOWINGS}, got {windowing!r}")
    x = np.asarray(wave, dtype=np.float32)
    if quantize:
        x = int16_round_trip(x)
    if windowing == "first":
        windows = [x[:window_samples]] if len(x) else []
    elif len(x) <= window_samples:
        windows = [repeat_pad(x, window_samples)] if len(x) else []
    else:
        windows = [x[s:s + window_samples] for s in window_starts(len(x), window_samples)]
    if not windows:
        return np.zeros((0, 1, 0, spectrogram.get("n_mels", 64)), np.float32)
    return np.concatenate([log_mel(w, sample_rate=sample_rate, **spectrogram) for w in windows])


def clap_log_mel_fitting(n: int, *, window_samples: int, windowing: str = "repeat", **_: Any) -> str | None:
    """``"cut"`` when ``windowing="first"`` drops the samples after the first window; None otherwise (laion_clap's
    windows cover the whole clip)."""
    return "cut" if windowing == "first" and n > window_samples else None


def clap_log_mel_bytes(n: int, *, window_samples: int, n_fft: int, hop_length: int, **_: Any) -> float:
    """``clap_log_mel``'s peak bytes for ``n`` samples: the quantised and tiled copies, one window's log-mel at a
    time, and every window's output."""
    windows = 1 + -(-n // window_samples)
    one = stft_bytes(window_samples, n_fft, hop_length)
    return 3.0 * 4 * max(n, window_samples) + one + 2.0 * windows * one / 8


def fusion_chunk_starts(frames: int, chunk: int) -> list[int]:
    """Where the three local chunks of a clip's mel start (``frames`` rows, ``chunk`` per chunk): laion_clap splits
    the possible starts into three ranges (``np.array_split``; an empty range becomes ``[0]``) and draws one start
    from each at random, unseeded; here each range's middle start (``len // 2``), so the same clip always gives the
    same embedding."""
    ranges = [list(r) or [0] for r in np.array_split(np.arange(0, frames - chunk + 1), 3)]
    return [int(r[len(r) // 2]) for r in ranges]


def shrink_rows(mel: np.ndarray, rows: int) -> np.ndarray:
    """``torchvision.transforms.Resize([rows, n_mels])`` of a (frames, n_mels) mel as laion_clap's ``mel_shrink``:
    bilinear with antialiasing (torchvision >= 0.17's default for tensors), in torch's float32 arithmetic, whose
    rounding this reproduces (the kernel is torchvision's own op)."""
    import torch

    with torch.no_grad():
        image = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))[None, None]
        out = torch.nn.functional.interpolate(image, size=(rows, mel.shape[1]), mode="bilinear", align_corners=False,
                                              antialias=True)
    return out[0, 0].numpy()


def clap_fusion_mel(wave: np.ndarray, *, sample_rate: int, window_samples: int, quantize: bool = True,
                    **spectrogram: Any) -> np.ndarray:
    """LAION-CLAP's fusion input (``get_audio_embedding_from_data`` with ``enable_fusion``: ``get_audio_features``'
    ``data_truncating="fusion"``), the log-mel of torchaudio's ``MelSpectrogram`` (HTK mel scale, no filter
    normalisation) in dB, stacked with a flag plane the network reads instead of laion_clap's ``longer`` list.

    ``quantize``: the int16 round trip (``clap_log_mel``). A clip no longer than ``window_samples`` (or whose mel
    has exactly one window's frames) is repeat-padded (clips under the window only) and its mel stacked four times,
    flag 0: the network then reads the first only, exactly as laion_clap does. A longer clip's whole mel gives a
    global view (``shrink_rows`` to one window's frames) and three local chunks (``fusion_chunk_starts``: laion_clap
    draws them at random, so **no tool reproduces the original there**), flag 1.

    Returns
    -------
    np.ndarray, shape (1, 5, frames, n_mels), float32
        Channels: global, three local, flag.
    """
    x = np.asarray(wave, dtype=np.float32)
    if quantize:
        x = int16_round_trip(x)
    n_mels = spectrogram.get("n_mels", 64)
    if not len(x):
        return np.zeros((0, 5, 0, n_mels), np.float32)
    chunk = window_samples // spectrogram["hop_length"] + 1
    if len(x) < window_samples:
        x = repeat_pad(x, window_samples)
    mel = log_mel(x, sample_rate=sample_rate, **spectrogram)[0, 0]
    if len(mel) == chunk:
        planes, flag = [mel] * 4, 0.0
    else:
        planes = [shrink_rows(mel, chunk)] + [mel[s:s + chunk] for s in fusion_chunk_starts(len(mel), chunk)]
        flag = 1.0
    return np.stack([*planes, np.full((chunk, n_mels), flag, np.float32)])[None].astype(np.float32)


def clap_fusion_mel_bytes(n: int, *, window_samples: int, n_fft: int, hop_length: int, n_mels: int = 64,
                          **_: Any) -> float:
    """``clap_fusion_mel``'s peak bytes for ``n`` samples: the quantised copy, the whole clip's STFT and mel, the
    shrink and the five planes."""
    frames = 1 + max(n, window_samples) // hop_length
    return 3.0 * 4 * max(n, window_samples) + stft_bytes(max(n, window_samples), n_fft, hop_length) \
        + 4.0 * frames * n_mels * 3 + 4.0 * 5 * (window_samples // hop_length + 1) * n_mels


_LIBROSA_LOAD = {"channel": "mean", "remove_dc": False, "resampler": "soxr_hq", "min_samples": 0}
AUDIOLDM_EVAL_RATE = 32000
FEEDINGS: dict[str, Adjustment] = {
    "laion_clap": Adjustment(conditioning=_LIBROSA_LOAD),
    "stable-audio-metrics": Adjustment(conditioning={**_LIBROSA_LOAD, "peak_dbfs": -1.0}),
    "audioldm_eval": Adjustment(conditioning={"channel": "first", "remove_dc": True, "resampler": "torchaudio",
                                              "min_samples": AUDIOLDM_EVAL_RATE},
                                frontend={"quantize": False, "windowing": "first"}, rate=AUDIOLDM_EVAL_RATE,
                                resample_api="functional", caption_tokens=512),
}
"""How a toolkit reads files for its CLAP score (``--clap-feeding``); without it, the FAD model's feeding
(frechet_audio_distance's):

- ``laion_clap`` (``CLAP_Module.get_audio_embedding_from_file``): ``librosa.load(sr=48000)`` (channel mean,
  soxr_hq), the int16 round trip;
- ``stable-audio-metrics`` (``clap_score.py``): the same load, peak to -1 dBFS (pyloudnorm's ``normalize.peak``),
  the int16 round trip, ``get_audio_embedding_from_data``;
- ``audioldm_eval`` (its ``passt_replace_panns`` branch, ``metrics/clap_score.py``): ``WaveDataset(sr=32000)``
  (first channel, mean removed, ``torchaudio.functional.resample`` to 32 kHz, zero-padded to 32000 samples), then
  ``CLAPAudioEmbeddingClassifierFreev2`` resamples 32 -> 48 kHz (``functional.resample`` again), keeps the first
  10 s and feeds a shorter clip as it is (no repeat-padding, no int16 round trip); captions tokenised to 512 ids.

With ``laion_clap`` and ``stable-audio-metrics`` a clip over 10 s, which laion_clap crops at random, gives the
mean of its 10-s windows (``clap_log_mel``)."""


def clap_feeding(name: str) -> str:
    """``--clap-feeding``'s check: one of ``FEEDINGS``."""
    if name not in FEEDINGS:
        raise ValueError(f"clap_feeding must be one of {', '.join(FEEDINGS)}, got {name!r}")
    return name


def refuse_feeding(name: str, fad_model: str) -> str | None:
    """Why ``--clap-feeding name`` cannot feed ``fad_model``: audioldm_eval's CLAP score runs non-fusion towers
    only (its wrapper hard-codes ``enable_fusion=False``)."""
    tower = next((t for n, _, t in CHECKPOINTS if n == fad_model), None)
    if name == "audioldm_eval" and tower in FUSION_TOWERS:
        return (f"audioldm_eval's CLAP score runs non-fusion LAION-CLAP towers only; {fad_model} is a fusion model "
                f"(use laion_clap or stable-audio-metrics feeding, or another --fad-model)")
    return None


def _audio(name: str, source: str, tower: str) -> ArtifactEntry:
    frames = "1 per clip (fusion of the whole clip)" if tower in FUSION_TOWERS else "1 per clip (10-s windows averaged)"
    return ArtifactEntry(name, "embedding", "clap", (), "clap", source, RELEASE + source, "CC0-1.0", origin=ORIGIN,
                         source_sha256=SHA256[source], model_rate=48000, dimension=512, frames=frames,
                         description=f"LAION-CLAP {tower} audio tower + projection, 512-d per clip",
                         text_tower=name + TEXT_SUFFIX)


def _text(name: str, source: str) -> ArtifactEntry:
    return ArtifactEntry(name + TEXT_SUFFIX, "text", "clap", (), "clap", source, RELEASE + source, "CC0-1.0",
                         source_sha256=SHA256[source],
                         origin=ORIGIN + "; tokenizer files of FacebookAI/roberta-base (MIT)",
                         extra_sources=("--vocab vocab.json", "--merges merges.txt"),
                         extra_urls=(TOKENIZER_RELEASE + "vocab.json", TOKENIZER_RELEASE + "merges.txt"),
                         dimension=512, frames="1 per caption",
                         description=f"LAION-CLAP RoBERTa-base text tower + projection of {source}, 512-d per caption")


FAMILY = ModelFamily(
    "clap",
    artifacts=(*(_audio(*c) for c in CHECKPOINTS), *(_text(name, source) for name, source, _ in CHECKPOINTS)),
    fad_models=tuple(FadModel(name, name, "embedding", "laion_clap", collect=None if tower in FUSION_TOWERS else "mean")
                     for name, _, tower in CHECKPOINTS),
    frontends=(Frontend("clap_log_mel", clap_log_mel, clap_log_mel_bytes, clap_log_mel_fitting,
                        nominal_samples=lambda window_samples, **_: window_samples),
               Frontend("clap_fusion_mel", clap_fusion_mel, clap_fusion_mel_bytes,
                        nominal_samples=lambda window_samples, **_: window_samples)),
    options=(ModelOption("clap_feeding", "fad", "clap: read files as this toolkit's CLAP score does: "
                         + ", ".join(FEEDINGS) + " (default: the FAD model's feeding, frechet_audio_distance's)",
                         adjust=lambda name, rate: FEEDINGS[name], parse=str, check=clap_feeding, metavar="TOOLKIT",
                         provenance="clap_feeding", refuse=refuse_feeding),),
    package_models=tuple(PackageModel("frechet_audio_distance", "clap", 48000, name, submodel=submodel,
                                      frontend=(("quantize", False),)) for submodel, name in SUBMODELS.items()),
)
