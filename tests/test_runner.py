"""A clip's features do not depend on the clips run with it; the runner enforces the artifact's input spec."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

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


def test_items_of_the_nominal_shape_run_in_full_passes_whatever_runs_beside_them(recordings_dir, artifact):
    """Passes of exactly ``batch_size``, zero-filled: the same bits alone, among other clips in any order, and with
    the clip's own items split over two passes; a pass of another size (the opt-in ``across_clips`` without a
    nominal shape) is allowed to round differently."""
    names = ["reference/clip_07.flac", "reference/clip_09.wav", "generated/clip_07.flac", "generated/clip_09.wav"]
    inputs = _inputs(recordings_dir, artifact, names)  # equal lengths: one shape
    shape = inputs[0].shape[1:]
    runner = EmbeddingRunner(artifact, batch_size=3, nominal_shape=shape)
    alone = [runner.run([x]) for x in inputs]
    for order in ([3, 1, 0, 2], [2, 0]):
        together = runner.run([inputs[i] for i in order])
        for position, i in enumerate(order):
            for key in together:
                assert np.array_equal(together[key][position], alone[i][key][0]), (order, i, key)
    each = EmbeddingRunner(artifact, batch_size=3, nominal_shape=shape, collect="each")
    doubled = each.run([np.concatenate([inputs[0]] * 4)])  # four items of one clip: passes of 3, then 1 + zeros
    assert all(np.array_equal(doubled[key][0][i], alone[0][key][0]) for key in doubled for i in range(4))


def test_the_nominal_pass_budget_counts_the_whole_pass(artifact):
    from dataclasses import replace

    spec = EmbeddingRunner(artifact, batch_size=8).input_spec
    one = np.zeros((1, 1, 1001, 64), np.float32)
    assert replace(spec, nominal=(1, 1001, 64)).pass_bytes(one, 8) == spec.pass_bytes(np.repeat(one, 8, axis=0), 8)
    assert spec.pass_bytes(one, 8) < spec.pass_bytes(np.repeat(one, 8, axis=0), 8)


def write_clip(path: Path, seconds: float, rate: int, seed: int, channels: int = 1) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.2 * np.sin(2 * np.pi * (200 + 150 * seed) * t) + 0.05 * rng.standard_normal(len(t))
    sf.write(path, (np.stack([x, np.roll(x, 11)], axis=1) if channels == 2 else x).astype(np.float32), rate)


def folder(root: Path, name: str, clips: list[tuple[str, float, int, int]]) -> Path:
    """``clips``: (file name, seconds, rate, seed); the target is ``target.wav`` wherever it sorts."""
    out = root / name
    out.mkdir()
    for file, seconds, rate, seed in clips:
        write_clip(out / file, seconds, rate, seed, channels=2)
    return out


def embedding_models():
    from audiofidelity import registry
    from audiofidelity.embedder import EMBEDDING_ROLES

    fast = "vggish"  # the fast tier's: items of a nominal shape (the others' run clip by clip, or in parity)
    names = [name for name in registry.names() if registry.registry_entry(name).role in EMBEDDING_ROLES]
    runs = [(name, "fp32") for name in names] + [(name, "bf16") for name in ("vggish", "cnn14-16k")]
    return [pytest.param(name, precision, marks=() if (name, precision) == (fast, "fp32") else pytest.mark.parity)
            for name, precision in runs]


PASS = 3


@pytest.mark.parametrize("model, precision", embedding_models())
def test_a_clips_features_are_the_same_bits_in_any_folder_order_and_cache_state(model, precision, request, tmp_path):
    """#34: one 10-s clip evaluated alone; in a folder after cache hits of two of its four folder-mates (so it runs
    between the other two); and in another folder, under another name, last of three clips (one of them also 10 s,
    so that its items share passes with the target's, after that clip's): its features bit for bit; at bf16 too (its
    channels-last weights) for the two convolutional towers of audioldm_eval's metrics.
    Passes of ``PASS`` items: odd, so a clip of ten items (VGGish's examples, a 10-s clip's 1-s windows) shares its
    last pass with its neighbour's, as at the default 8; smaller, so PaSST-30s' zero-filled passes cost less. Each
    folder is one pass of the whole-clip models (PaSST's three take 30 s to 110 s here)."""
    from conftest import PARITY_ONLY

    from audiofidelity.cache import FeatureCache
    from audiofidelity.embedder import Embedder

    models = request.getfixturevalue("all_models_dir" if model in PARITY_ONLY else "models_dir")
    target = ("target.wav", 10.0, 44100, 0)  # 10 s: the nominal length of whole-clip models (CNN14, MERT) too
    others = [("a.wav", 10.0, 44100, 1), ("b.wav", 1.7, 22050, 2), ("c.wav", 5.2, 48000, 3), ("z.wav", 2.4, 16000, 4)]
    alone = folder(tmp_path, "alone", [target])
    mixed = folder(tmp_path, "mixed", [target, *others])
    # a's content as "a.wav", c's as "m.wav", the target's last as "x.wav": in the whole-clip models' pass it follows
    # a's (row 1; alone it is row 0, and in the mixed folder after a's cache hit too)
    reordered = folder(tmp_path, "reordered", [("a.wav", *others[0][1:]), ("m.wav", *others[2][1:]),
                                               ("x.wav", *target[1:])])
    first = Embedder(model, models_dir=models, cache=False, batch_size=PASS, precision=precision).embed_folder(alone)
    assert not first.problems, first.problems
    expected = first.arrays["target.wav"]
    cache = FeatureCache(tmp_path / "cache")
    with_cache = Embedder(model, models_dir=models, cache=cache, batch_size=PASS, precision=precision)
    with_cache.embed_files([mixed / "a.wav", mixed / "c.wav"])  # a subset cached first: the rest runs without them
    got = with_cache.embed_folder(mixed).arrays["target.wav"]
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    plain = Embedder(model, models_dir=models, cache=False, batch_size=PASS, precision=precision)
    moved = plain.embed_folder(reordered).arrays
    assert list(moved) == ["a.wav", "m.wav", "x.wav"] and np.array_equal(moved["x.wav"], expected)


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


PRIMITIVES = """import sys, numpy as np, torch
from audiofidelity.artifacts import load
program = load("cnn14-16k", directory=sys.argv[1]).program
rng = np.random.default_rng(0)
inputs = {n: torch.from_numpy(rng.standard_normal((2, 1, n, 64)).astype(np.float32)) for n in (101, 517, 1001)}
with torch.inference_mode():
    out = [program(inputs[n])[0].numpy() for n in (101, 517, 1001, 517, 101)]
np.savez(sys.argv[2], *out)
"""


@pytest.mark.parity  # two fresh processes loading CNN14
def test_the_onednn_primitive_cache_bound_changes_no_bit(models_dir, tmp_path):
    """``artifacts.ONEDNN_CACHE_CAPACITY`` bounds the cache of compiled primitives that grows with every input length;
    a primitive built afresh computes what a cached one does: the same bits with the cache off and at its default."""
    import os
    import subprocess
    import sys

    outputs = {}
    for capacity in ("0", "1024"):
        env = {**os.environ, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": capacity}
        done = subprocess.run([sys.executable, "-c", PRIMITIVES, str(models_dir), str(tmp_path / f"{capacity}.npz")],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        with np.load(tmp_path / f"{capacity}.npz") as saved:
            outputs[capacity] = [saved[k] for k in sorted(saved.files)]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(outputs["0"], outputs["1024"]))
    assert outputs["0"][1].tobytes() == outputs["0"][3].tobytes()  # the same shape again: the same bits
