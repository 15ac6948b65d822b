"""The ported fixture recipes reproduce the shared stand-ins exactly, so the golden data apply."""
import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from conftest import DATA
from fixtures import checkpoints


@pytest.mark.parity  # regenerates every stand-in tensor (10 s); the exports are keyed on this generator's source
def test_checkpoint_tensors_are_bit_identical_to_the_shared_recipe():
    want = json.loads((DATA / "checkpoint_sha256.json").read_text())
    got = {model: {key: checkpoints.tensor_sha256(value) for key, value in sd.items()}
           for model, sd in checkpoints.state_dicts().items()}
    mismatched = [f"{m}/{k}" for m in want for k in want[m] if got.get(m, {}).get(k) != want[m][k]]
    assert not mismatched
    assert sum(map(len, want.values())) == sum(map(len, got.values()))


def test_recordings_decode_to_the_shared_samples(recordings_dir):
    # hashes of decoded samples: libsndfile stamps float WAVs with a time, so file bytes differ
    want = json.loads((DATA / "audio_sha256.json").read_text())
    for name, spec in want.items():
        data, rate = sf.read(recordings_dir / name, dtype="float32", always_2d=True)
        assert rate == spec["samplerate"] and list(data.shape) == spec["shape"], name
        assert hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest() == spec["sha256"], name
