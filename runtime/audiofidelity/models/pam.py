"""PAM (Deshmukh et al. 2024): an audio-language model prompted for quality, without a reference. Microsoft CLAP 2023's
audio tower (HTS-AT + projection) scores each 7-s chunk by how much closer it lies to "the sound is clear and clean."
than to "the sound is noisy and with artifacts." (a softmax over the two cosines scaled by CLAP's temperature); a
file's PAM is its chunks' mean, in [0, 1], higher is better.

Fed as PAM's own code feeds it (``dataset.py``, ``PAM.py``): the channels one after the other (its
``audio.reshape(-1)``: a stereo file becomes twice as long, a quirk kept), torchaudio's ``transforms.Resample`` to
44.1 kHz, then 7-s chunks (``pam_chunks``): a clip up to 7 s repeated to fill 7 s, a longer one cut into 7-s chunks
plus one holding its last 7 s. The two prompts' text embeddings were computed at export and are constants of the
exported graph: no text tower or tokenizer at run time. Export: ``export_scripts/pam.py``; stand-in
``tests/fixtures/pam.py``; parity against msclap with PAM's feeding: ``verify_scripts/verify_pam.py``,
``tests/test_pam.py``; card ``model_cards/pam.md``.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..frontends import log_mel, stft_bytes
from .family import ArtifactEntry, Frontend, ModelFamily, Scorer

SOURCE_FILE = "CLAP_weights_2023.pth"
SOURCE_URL = "https://huggingface.co/microsoft/msclap/resolve/main/CLAP_weights_2023.pth"
"""What ``PAM()`` downloads (``hf_hub_download("microsoft/msclap", "CLAP_weights_2023.pth")``)."""
SOURCE_SHA256 = "2cef4016d47d00eb28d153d522f397222057f95000e9bad6b9583c631284a1e6"
"""That file's sha256 (689,950,036 bytes) as public projects pin it (not measured here: no network)."""


def pam_chunks(wave: np.ndarray, *, sample_rate: int, chunk_samples: int, mel_sample_rate: int,
               **spectrogram: Any) -> np.ndarray:
    """PAM's ``process_audio`` and ``collate`` of one clip at ``sample_rate``, then each chunk's log-mel (HTS-AT's
    torchlibrosa frontend, whose mel filters msclap builds for ``mel_sample_rate``: its ``models/config.py`` says
    32000 Hz while PAM feeds 44.1 kHz audio, a quirk kept).

    A clip of at most ``chunk_samples`` is tiled ``ceil(chunk / n)`` times and cut to ``chunk_samples``; a longer one
    keeps its whole chunks and, when samples remain, ends with its last ``chunk_samples`` (overlapping the one before).

    Returns
    -------
    np.ndarray, shape (chunks, 1, frames, n_mels), float32

    See Also: PAM ``dataset.py`` ``AudioDataset.process_audio`` (``repro=False``) and ``collate``.
    """
    x = np.asarray(wave, dtype=np.float32)
    n = len(x)
    if n == 0:
        return np.zeros((0, 1, 0, spectrogram.get("n_mels", 64)), np.float32)
    if chunk_samples >= n:
        x = np.tile(x, -(-chunk_samples // n))[:chunk_samples]
    else:
        whole = n // chunk_samples * chunk_samples
        x = np.concatenate([x[:whole], x[-chunk_samples:]]) if whole < n else x[:whole]
    return np.concatenate([log_mel(x[s:s + chunk_samples], sample_rate=mel_sample_rate, **spectrogram)
                           for s in range(0, len(x), chunk_samples)])


def pam_chunks_bytes(n: int, *, chunk_samples: int, n_fft: int, hop_length: int, **_: Any) -> float:
    """The filled or cut copy, one chunk's STFT at a time, and every chunk's log-mel."""
    chunks = 1 + max(n, 1) // chunk_samples
    return 4.0 * 2 * max(n, chunk_samples) + stft_bytes(chunk_samples, n_fft, hop_length) \
        + chunks * stft_bytes(chunk_samples, n_fft, hop_length) / 8


def clip_value(rows: Mapping[str, np.ndarray], transforms: Mapping[str, Any]) -> np.ndarray:
    """``Scorer.clip_values``: the mean of a clip's chunk scores as PAM's ``evaluate`` takes it (the float32 sum,
    then divided by the number of chunks)."""
    chunks = np.asarray(rows["pam"], np.float32).reshape(-1)
    return np.array([float(chunks.sum(dtype=np.float32)) / len(chunks)])


FAMILY = ModelFamily(
    "pam",
    artifacts=(ArtifactEntry("pam", "quality", "pam", (), "msclap_htsat_pam", SOURCE_FILE, SOURCE_URL, "MIT",
                             source_sha256=SOURCE_SHA256,
                             origin="Microsoft CLAP 2023, Hugging Face microsoft/msclap; prompts of PAM "
                                    "(github.com/soham97/PAM)",
                             extra_sources=("--vocab vocab.json", "--merges merges.txt"),
                             extra_urls=("https://huggingface.co/openai-community/gpt2/resolve/main/vocab.json",
                                         "https://huggingface.co/openai-community/gpt2/resolve/main/merges.txt"),
                             model_rate=44100, dimension=1, frames="1 score per clip (7-s chunks averaged)",
                             description="PAM: Microsoft CLAP 2023 audio tower prompted for quality, 0-1 per clip",
                             provides=("pam",)),),
    frontends=(Frontend("pam_chunks", pam_chunks, pam_chunks_bytes,
                        nominal_samples=lambda chunk_samples, **_: chunk_samples),),
    scorers=(Scorer("pam", "pam", ("pam",), ("pam",), clip_value,
                    description="PAM (Microsoft CLAP 2023 prompted for quality), 0-1, mean over files; no reference "
                                "needed",
                    conditioning=(("channel", "concatenate"), ("remove_dc", False), ("resampler", "torchaudio"),
                                  ("resample_api", "transforms"), ("min_samples", 0), ("min_duration", 0.0))),),
)
