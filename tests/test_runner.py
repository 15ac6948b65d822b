"""Batching does not change features; the runner enforces the artifact's input spec."""
import numpy as np
import pytest

from audiofidelity import artifacts
from audiofidelity.audio import Conditioning, load_conditioned
from audiofidelity.errors import InvalidAudioError
from audiofidelity.frontends import apply_frontend
from audiofidelity.runner import EmbeddingRunner


@pytest.fixture(scope="module")
def artifact(models_dir):
    return artifacts.load("cnn14-16k", directory=models_dir)


def _inputs(recordings_dir, artifact, names):
    rate = artifact.manifest.raw["sample_rate"]
    return [apply_frontend(load_conditioned(recordings_dir / n, rate, Conditioning()), artifact.manifest.frontend)
            for n in names]


def test_batch_size_does_not_change_features(recordings_dir, artifact):
    # equal-length clips (all padded to 32000 samples) so they share batches; others batch alone
    names = ["reference/clip_07.flac", "reference/clip_09.wav", "generated/clip_07.flac", "generated/clip_09.wav",
             "reference/clip_00.wav"]
    inputs = _inputs(recordings_dir, artifact, names)
    one = EmbeddingRunner(artifact, batch_size=1).run(inputs)
    many = EmbeddingRunner(artifact, batch_size=4).run(inputs)
    for key in one:
        a, b = np.stack(one[key]), np.stack(many[key])
        # conv kernels may pick other algorithms per batch size: float32 reassociation, ~1e-7
        assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(a))


def test_outputs_keep_input_order_across_shape_groups(recordings_dir, artifact):
    names = ["reference/clip_00.wav", "reference/clip_09.wav", "reference/clip_01.wav"]
    inputs = _inputs(recordings_dir, artifact, names)
    together = EmbeddingRunner(artifact).run(inputs)["2048"]
    for i, x in enumerate(inputs):
        alone = EmbeddingRunner(artifact).run([x])["2048"][0]
        assert together[i].shape == (2048,)
        assert np.allclose(together[i], alone, rtol=1e-5, atol=1e-6 * np.abs(alone).max())


def test_too_few_frames_is_reported_before_the_model_runs(artifact):
    runner = EmbeddingRunner(artifact)
    with pytest.raises(InvalidAudioError, match="at least 64"):
        runner.check_input(np.zeros((1, 1, 63, 64), np.float32))
    with pytest.raises(InvalidAudioError, match="expected"):
        runner.check_input(np.zeros((1, 1, 100, 32), np.float32))
    with pytest.raises(InvalidAudioError, match="no complete input"):
        runner.check_input(np.zeros((0, 1, 100, 64), np.float32))


def test_no_inputs_give_no_outputs(artifact):
    assert EmbeddingRunner(artifact).run([]) == {"2048": [], "logits": []}
