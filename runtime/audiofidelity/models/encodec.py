"""EnCodec (Défossez et al. 2022) encoders at 24 and 48 kHz: fadtk's ``encodec-emb`` FAD embeddings, 128-d frames.

Frontend ``waveform_segments`` (the waveform, whole or in fadtk's 1-s segments). Export:
``export_scripts/encodec_encoder.py``; verify: ``verify_scripts/verify_encodec.py``; cards
``model_cards/encodec-*.md``; stand-ins ``tests/fixtures/checkpoints.py``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .family import TYPICAL_CLIP_SECONDS, ArtifactEntry, FadModel, Frontend, ModelFamily, PackageModel

RELEASE = "https://dl.fbaipublicfiles.com/encodec/v0/"
ORIGIN = "facebookresearch/encodec, dl.fbaipublicfiles.com"
SHA256_24K = "d7cc33bcf1aad7f2dad9836f36431530744abeace3ca033005e3290ed4fa47bf"
"""The 24 kHz checkpoint's sha256 as public projects pin it (torch.hub's name carries its first 8 digits); the 48 kHz
one has no published digest beyond its name's prefix."""


def waveform_segments(wave: np.ndarray, *, sample_rate: int, channels: int,
                      segment_samples: int | None = None) -> np.ndarray | list[np.ndarray]:
    """A waveform model's input (EnCodec): the conditioned clip as (channels, samples) items.

    ``wave``: (n,) mono or (channels, n). The whole clip is one item; with ``segment_samples`` (fadtk's feeding
    of the 48 kHz model, one second each) consecutive segments from the start, the last one shorter: a list,
    as the items differ in length. ``sample_rate`` is the rate the audio was conditioned at (recorded only).
    """
    x = np.ascontiguousarray(np.asarray(wave, dtype=np.float32).reshape(channels, -1))
    if segment_samples is None or x.shape[1] <= segment_samples:
        return x[None]
    return [x[:, start:start + segment_samples] for start in range(0, x.shape[1], segment_samples)]


def waveform_segments_bytes(n: int, *, channels: int = 1, **_: Any) -> float:
    """``waveform_segments``' peak bytes for ``n`` samples per channel: its contiguous copies."""
    return 4.0 * 4 * channels * n


FAMILY = ModelFamily(
    "encodec",
    artifacts=(
        ArtifactEntry("encodec-24k", "embedding", "encodec", (), "encodec", "encodec_24khz-d7cc33bc.th",
                      RELEASE + "encodec_24khz-d7cc33bc.th", "MIT", origin=ORIGIN, source_sha256=SHA256_24K,
                      model_rate=24000, dimension=128,
                      frames="75 per s", frame_seconds=320 / 24000,
                      description="EnCodec 24 kHz encoder, 128-d frames (fadtk's encodec-emb)",
                      adapter_output="frames"),
        ArtifactEntry("encodec-48k", "embedding", "encodec", (), "encodec", "encodec_48khz-7e698e3e.th",
                      RELEASE + "encodec_48khz-7e698e3e.th", "MIT", origin=ORIGIN, model_rate=48000, channels=2,
                      dimension=128, frames="150 per s", frame_seconds=320 / 48000,
                      description="EnCodec 48 kHz stereo encoder, 128-d frames (fadtk's encodec-emb-48k)",
                      adapter_output="frames"),
    ),
    fad_models=(FadModel("encodec-24k", "encodec-24k", "fad", "fadtk"),
                FadModel("encodec-48k", "encodec-48k", "fad", "fadtk")),
    frontends=(Frontend("waveform_segments", waveform_segments, waveform_segments_bytes,
                        nominal_samples=lambda sample_rate, segment_samples=None, **_:
                        segment_samples or TYPICAL_CLIP_SECONDS * sample_rate),),
    package_models=(PackageModel("frechet_audio_distance", "encodec", 24000, "encodec-24k"),
                    PackageModel("frechet_audio_distance", "encodec", 48000, "encodec-48k", channels=2,
                                 frontend=(("segment_samples", None),))),
)
