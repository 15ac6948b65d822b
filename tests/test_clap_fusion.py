"""LAION-CLAP's fusion checkpoint (``630k-audioset-fusion-best.pt``, stable-audio-metrics' default) against laion_clap
(parity tier: its fusion input needs torchaudio and torchvision, so the original runs in the side virtualenv that
has them, ``$PASST_ORIGINAL_PYTHON`` with laion_clap and transformers added, as .ci/run builds it)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from fixtures.clap import FUSION, clap_state_dict, fusion_state_dict
from test_fad_models import need_laion_clap, write_clips

pytestmark = pytest.mark.parity
MODEL = "clap-630k-audioset-fusion"


def test_fusion_stand_in_has_the_packages_audio_keys_and_shapes():
    need_laion_clap()
    from common import AUDIO_KEYS
    from verify_clap import constructed_model

    want = {k: v for k, v in constructed_model(MODEL).state_dict().items() if k.startswith(AUDIO_KEYS)}
    got = {k: v for k, v in {**clap_state_dict(MODEL), **fusion_state_dict(MODEL)}.items() if k.startswith(AUDIO_KEYS)}
    assert {k: (tuple(v.shape), str(v.dtype)) for k, v in got.items()} == \
        {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in want.items()}


def test_chunk_starts_split_the_possible_starts_in_three_and_take_each_middle():
    from audiofidelity.models.clap import fusion_chunk_starts

    # laion_clap: ranges = np.array_split(range(0, frames - chunk + 1), 3), an empty one replaced by [0]
    assert fusion_chunk_starts(1002, 1001) == [0, 1, 0]      # starts 0, 1: ranges [0], [1], [] -> [0]
    assert fusion_chunk_starts(1004, 1001) == [1, 2, 3]      # ranges [0, 1], [2], [3]
    assert fusion_chunk_starts(2001, 1001) == [167, 334 + 167, 668 + 166]  # ranges of 334, 334, 333 starts


def side_python() -> Path:
    python = os.environ.get("PASST_ORIGINAL_PYTHON")
    if not python or not Path(python).is_file():
        pytest.skip("PASST_ORIGINAL_PYTHON (a virtualenv with torchaudio and torchvision, .ci/run builds it) is unset")
    probe = ("import importlib.util as u, torchaudio, torchvision; "
             "assert u.find_spec('laion_clap') and u.find_spec('transformers') and u.find_spec('torchlibrosa')")
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"laion_clap and transformers are not installed in {python} (.ci/run adds them)")
    return Path(python)


def test_verify_clap_fusion_passes_on_short_long_and_edge_clips(all_models_dir, all_checkpoints_dir, tmp_path):
    """Clips under 10 s (one window, planes alike), exactly 10 s, 10 s plus less than a hop (one window's frames:
    no fusion), and 12-25 s (fusion, chunks at the documented starts); mono and stereo, 44.1 and 48 kHz."""
    python = side_python()
    audio = write_clips(tmp_path / "a", 48000, [0.3, 4.0, 10.0, 10.005, 12.5, 25.0], seed=31)
    reference = write_clips(tmp_path / "r", 44100, [2.0, 11.0, 16.0], channels=2, seed=32)
    done = subprocess.run([sys.executable, str(ROOT / "verify_scripts" / "verify_clap.py"), MODEL, "--source",
                           str(all_checkpoints_dir / FUSION[MODEL]["file"]), "--models-dir", str(all_models_dir),
                           "--audio", str(audio), "--reference", str(reference), "--original-python", str(python)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: embeddings and FAD within 0.0001 of laion_clap (fusion)" in done.stdout


def test_the_fusion_frontend_marks_only_clips_with_more_than_one_windows_frames():
    from audiofidelity.models import apply_frontend
    from audiofidelity.exporters.clap_htsat import FUSION_FRONTEND

    rng = np.random.default_rng(0)
    for seconds, flag in ((0.5, 0.0), (10.0, 0.0), (10.009, 0.0), (10.01, 1.0), (30.0, 1.0)):
        x = apply_frontend((0.1 * rng.standard_normal(int(round(seconds * 48000)))).astype(np.float32),
                           FUSION_FRONTEND)
        assert x.shape == (1, 5, 1001, 64) and np.all(x[0, 4] == flag), seconds
        if not flag:
            assert all(np.array_equal(x[0, 0], x[0, k]) for k in (1, 2, 3))
