"""A clip's features do not depend on the clips run with it; the runner enforces the artifact's input spec."""
import numpy as np
import pytest

from audiofidelity import artifacts
from audiofidelity.audio import Conditioning, load_conditioned
from audiofidelity.errors import InvalidAudioError
from audiofidelity.models import apply_frontend
from audiofidelity.runner import EmbeddingRunner


@pytest.fixture(scope="module")
def artifact(models_dir):
    return artifacts.load("cnn14-16k", directory=models_dir)


def _inputs(recordings_dir, artifact, names):
    rate = artifact.manifest.raw["sample_rate"]
    return [apply_frontend(load_conditioned(recordings_dir / n, rate, Conditioning()), artifact.manifest.frontend)
            for n in names]


def test_a_clips_features_do_not_depend_on_the_other_clips_or_the_batch_size(recordings_dir, artifact):
    # equal-length clips (all padded to 32000 samples), which a cross-clip batch would have put together
    names = ["reference/clip_07.flac", "reference/clip_09.wav", "generated/clip_07.flac", "generated/clip_09.wav",
             "reference/clip_00.wav"]
    inputs = _inputs(recordings_dir, artifact, names)
    together = EmbeddingRunner(artifact, batch_size=4).run(inputs)
    for i, x in enumerate(inputs):
        alone = EmbeddingRunner(artifact, batch_size=1).run([x])
        for key in together:
            assert together[key][i].shape == alone[key][0].shape and np.array_equal(together[key][i], alone[key][0])


def test_too_few_frames_is_reported_before_the_model_runs(artifact):
    runner = EmbeddingRunner(artifact)
    with pytest.raises(InvalidAudioError, match="at least 32"):
        runner.check_input(np.zeros((1, 1, 31, 64), np.float32))
    runner.check_input(np.zeros((1, 1, 32, 64), np.float32))  # the shortest CNN14 takes
    assert runner.run([np.zeros((1, 1, 32, 64), np.float32)])["2048"][0].shape == (2048,)
    with pytest.raises(InvalidAudioError, match="expected"):
        runner.check_input(np.zeros((1, 1, 100, 32), np.float32))
    with pytest.raises(InvalidAudioError, match="no complete input"):
        runner.check_input(np.zeros((0, 1, 100, 64), np.float32))


def test_no_inputs_give_no_outputs(artifact):
    assert EmbeddingRunner(artifact).run([]) == {"2048": [], "logits": []}


def test_batching_across_clips_is_an_opt_in_that_moves_only_the_last_bits(recordings_dir, artifact):
    # equal-length clips, so the opt-in puts them in one pass; CPU convolutions round differently per batch size
    names = ["reference/clip_07.flac", "reference/clip_09.wav", "generated/clip_07.flac", "generated/clip_09.wav"]
    inputs = _inputs(recordings_dir, artifact, names)
    alone = EmbeddingRunner(artifact).run(inputs)
    together = EmbeddingRunner(artifact, across_clips=True).run(inputs)
    for key in alone:
        a, b = np.stack(alone[key]), np.stack(together[key])
        assert a.shape == b.shape and np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(a)), key
