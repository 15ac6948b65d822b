"""PaSST-S's 20-s and 30-s variants (hear21passt's ``passt_20sec`` and ``passt_30sec``, issue #31): the same network
with 200 and 300 time embeddings, exported as ``passt-s-20s`` and ``passt-s-30s`` (``--backbone passt-20s``,
``passt-30s``), and audiocraft's KL with MusicGen's 20-s segments.

Fast tier: the registry entries and the export module's windows. Parity tier: the stand-ins pinned, their keys and
shapes against hear21passt's constructed networks, the exported programs against those networks on the same
mels, and ``eval --backbone passt-20s --passt-feeding audiocraft`` against audiocraft's ``PasstKLDivergenceMetric``
code with ``pretrained_length: 20`` (``passt_original.py audiocraft``), each run in the original's virtualenv.
"""
from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import pytest

from audiofidelity import artifacts, registry
from audiofidelity.models import passt
from fixtures.passt import FILES, passt_state_dict
from test_passt import run_original

VARIANTS = (("passt-s-20s", "passt_20sec", 20), ("passt-s-30s", "passt_30sec", 30))
STAND_IN_SHA256 = {"passt-s-20s": "e9403be45dfe2408f58555f064e6e55a68bbc266fbc657b01b63b0faf6f55f6d",
                   "passt-s-30s": "6ddaf11e8040d78c47f1f7fcb6c8bcf4e13a742194006108a8cfcc8e6542e39c"}
"""sha256 over every key and its tensor's sha256, in order (as ``test_passt.STAND_IN_SHA256``)."""


@pytest.mark.parity  # 86 M values each (a few seconds); passt-s's own pin runs in the fast tier
@pytest.mark.parametrize("model", list(STAND_IN_SHA256))
def test_the_variant_stand_ins_are_the_same_on_every_machine(model):
    from fixtures.stand_in import tensor_sha256

    digest = hashlib.sha256()
    state = passt_state_dict(model)
    for key, value in state.items():
        digest.update(key.encode())
        digest.update(tensor_sha256(value).encode())
    assert digest.hexdigest() == STAND_IN_SHA256[model]
    assert state["time_new_pos_embed"].shape == (1, 768, 1, {"passt-s-20s": 200, "passt-s-30s": 300}[model])


@pytest.mark.parametrize("model, arch, seconds", VARIANTS)
def test_each_variant_is_a_backbone_with_its_own_window(model, arch, seconds):
    """Registry: its own backbone and release file; export module: ``input_tdim`` 2000 or 3000 -> 200 or 300 time
    embeddings (hear21passt's ``grid_size``, ``input_tdim // 10``), frames up to 2015 or 3015, and audioldm_eval's
    feeding cut or padded to the variant's window."""
    entry = registry.registry_entry(model)
    assert (entry.role, entry.backbone, entry.rates) == ("classifier", f"passt-{seconds}s", (32000,))
    assert entry.source_url == f"{passt.RELEASE}v0.0.5/{FILES[model]}" and entry.source_file == FILES[model]
    from audiofidelity.exporters import passt as exporter
    t_patches = exporter.time_patches(model)
    assert t_patches == 10 * seconds
    assert exporter.max_frames(t_patches) == 100 * seconds + 15 and exporter.window_samples(model) == 32000 * seconds


# against hear21passt -----------------------------------------------------------------------------------------------

@pytest.mark.parity
@pytest.mark.parametrize("model, arch, seconds", VARIANTS)
def test_the_variant_stand_in_has_hear21passts_keys_and_shapes(model, arch, seconds, tmp_path):
    run_original("keys", tmp_path / "keys.json", arch)
    original = json.loads((tmp_path / "keys.json").read_text())
    ours = {k: [list(v.shape), str(v.dtype)] for k, v in passt_state_dict(model).items()}
    assert list(ours) == list(original) and ours == original


@pytest.mark.parity
@pytest.mark.parametrize("model, arch, seconds", VARIANTS)
def test_the_exported_variant_gives_hear21passts_logits_and_features(all_models_dir, all_checkpoints_dir, model, arch,
                                                                      seconds, tmp_path):
    """The program against hear21passt's net (``get_model(arch=..., input_tdim=...)``) with the same stand-in weights,
    on mels of a whole window, of 10 s, of the minimum 16 frames and of the most frames the time embedding covers.
    Bound: 1e-4 x max |value| (#31)."""
    import torch

    program = artifacts.load(model, directory=all_models_dir).program
    rng = np.random.RandomState(seconds)
    shapes = [(1, 100 * seconds), (2, 1000), (1, 16), (1, 100 * seconds + 15)]
    mels = {f"mel{i}": (0.8 * rng.standard_normal((b, 1, 128, t)) - 0.3).astype(np.float32)
            for i, (b, t) in enumerate(shapes)}
    np.savez(tmp_path / "mels.npz", **mels)
    run_original("net", all_checkpoints_dir / FILES[model], tmp_path / "mels.npz", tmp_path / "net.npz", arch)
    theirs = np.load(tmp_path / "net.npz")
    with torch.inference_mode():
        for key, mel in mels.items():
            features, logits = (t.numpy() for t in program(torch.from_numpy(mel)))
            for name, ours in (("logits", logits), ("features", features)):
                reference = theirs[name + key[3:]]
                assert ours.shape == reference.shape
                assert np.abs(ours - reference).max() <= 1e-4 * np.abs(reference).max(), (key, name)


@pytest.mark.parity
def test_audiocrafts_musicgen_kl_reads_20_s_segments(all_models_dir, all_checkpoints_dir, tmp_path):
    """MusicGen's configuration (``metrics.kld.passt.pretrained_length: 20``): audiocraft's code with hear21passt's
    ``base20sec`` network against ``eval --backbone passt-20s --passt-feeding audiocraft``: the segments (a 45-s clip
    gives 20 + 20 + 5 s, a 20.1-s one drops its 0.1-s tail), ``kld``, ``kld_qp`` and ``kld_both`` within 1e-4."""
    import soundfile as sf

    from conftest import eval_cli

    rng = np.random.default_rng(7)
    for side, shift in (("gen", 0), ("ref", 1)):
        (tmp_path / side).mkdir()
        for i, (seconds, rate, channels) in enumerate(((45.0, 44100, 2), (20.1, 32000, 1), (8.0, 48000, 1))):
            n = int(seconds * rate)
            x = 0.3 * np.sin(2 * np.pi * (250 + 90 * i + 50 * shift) * np.arange(n) / rate) \
                + 0.05 * rng.standard_normal(n)
            sf.write(tmp_path / side / f"m{i}.wav", np.stack([x, 0.7 * x], 1) if channels == 2 else x, rate)
    run_original("audiocraft", all_checkpoints_dir / FILES["passt-s-20s"], "passt_20sec", tmp_path / "gen",
                 tmp_path / "ref", tmp_path / "original.json")
    theirs = json.loads((tmp_path / "original.json").read_text())["metrics"]
    out = tmp_path / "out"
    out.mkdir()
    report, _ = eval_cli(tmp_path / "gen", tmp_path / "ref", out, "--models-dir", str(all_models_dir), "--backbone",
                         "passt-20s", "--sr", "32000", "--metrics", "kl", "--no-cache", "--workers", "0",
                         "--passt-feeding", "audiocraft")
    details = report["details"]["kullback_leibler_divergence_softmax"]
    assert theirs["segments"] == details["segments"] == 3 + 1 + 1 and not theirs["left_out"]
    assert report["files"]["generated"]["windowing"] == {"passt-s-20s": {"padded": 0, "cut": 1}}
    for ours, key in ((report["metrics"]["kullback_leibler_divergence_softmax"], "kld64"),
                      (details["reverse"], "kld_qp64"), (details["both"], "kld_both64")):
        assert ours == pytest.approx(theirs[key], rel=1e-4), key


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
