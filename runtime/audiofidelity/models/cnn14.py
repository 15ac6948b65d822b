"""PANNs CNN14 (Kong et al. 2020): audioldm_eval's classifier backbone at 16 and 32 kHz, and a FAD embedding at 8,
16 and 32 kHz as frechet_audio_distance's ``pann`` model feeds it.

Frontend ``log_mel`` (torchlibrosa's, ``frontends.log_mel``); outputs the 2048-d clip embedding and 527 AudioSet
logits. Export: ``export_scripts/cnn14.py``; verify: ``verify_scripts/verify_cnn14.py``; cards
``model_cards/cnn14-*.md``; stand-ins ``tests/fixtures/checkpoints.py``.
"""
from __future__ import annotations

from ..frontends import log_mel, log_mel_bytes
from .family import TYPICAL_CLIP_SECONDS, ArtifactEntry, FadModel, Frontend, ModelFamily, PackageModel

ZENODO = "https://zenodo.org/record/"
# The files' sha256 as public projects pin them after checking Zenodo's published md5 (not measured here: no
# network); the 8 kHz checkpoint has no published digest, so its download records the sha256 it gets.
SHA256 = {"cnn14-16k": "e2ee543a27919542c2ea03eabaa70b24dcd4e6c8e05621de6b67a94e4c5058e6",
          "cnn14-32k": "0dc499e40e9761ef5ea061ffc77697697f277f6a960894903df3ada000e34b31"}
RATES = {"cnn14-8k": 8000, "cnn14-16k": 16000, "cnn14-32k": 32000}

FAMILY = ModelFamily(
    "cnn14",
    artifacts=(
        ArtifactEntry("cnn14-16k", "classifier", "cnn14", (16000,), "cnn14", "Cnn14_16k_mAP=0.438.pth",
                      ZENODO + "3987831/files/Cnn14_16k_mAP%3D0.438.pth", "CC-BY-4.0",
                      source_sha256=SHA256["cnn14-16k"], origin="PANNs, Zenodo record 3987831", model_rate=16000,
                      dimension=2048, frames="1 per clip",
                      description="PANNs CNN14 (AudioSet tagging), 2048-d embedding + 527 logits"),
        ArtifactEntry("cnn14-32k", "classifier", "cnn14", (32000,), "cnn14", "Cnn14_mAP=0.431.pth",
                      ZENODO + "3987831/files/Cnn14_mAP%3D0.431.pth", "CC-BY-4.0",
                      source_sha256=SHA256["cnn14-32k"], origin="PANNs, Zenodo record 3987831", model_rate=32000,
                      dimension=2048, frames="1 per clip",
                      description="PANNs CNN14 (AudioSet tagging), 2048-d embedding + 527 logits"),
        ArtifactEntry("cnn14-8k", "embedding", "cnn14", (), "cnn14", "Cnn14_8k_mAP=0.416.pth",
                      ZENODO + "3987831/files/Cnn14_8k_mAP%3D0.416.pth", "CC-BY-4.0",
                      origin="PANNs, Zenodo record 3987831", model_rate=8000, dimension=2048, frames="1 per clip",
                      description="PANNs CNN14 at 8 kHz (frechet_audio_distance's pann)"),
    ),
    fad_models=tuple(FadModel(name, name, "embedding", "frechet_audio_distance") for name in RATES),
    frontends=(Frontend("log_mel", log_mel, log_mel_bytes,
                        nominal_samples=lambda sample_rate, **_: TYPICAL_CLIP_SECONDS * sample_rate),),
    package_models=tuple(PackageModel("frechet_audio_distance", "pann", rate, name) for name, rate in RATES.items()),
)
