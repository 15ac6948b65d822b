"""``audiofidelity.compat.torchmetrics``: FAD, KAD and FD as torchmetrics Metrics, equal to ``eval``'s numbers."""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofidelity import Embedder, cli
from audiofidelity.compat.torchmetrics import (FrechetAudioDistance, FrechetDistance, KernelAudioDistance,
                                               merge_gaussians, pack_gaussian, unpack_gaussian)
from audiofidelity.errors import InvalidAudioError, MetricUnavailableError, StatsFileError
from audiofidelity.metrics import frechet
from audiofidelity.metrics.gaussian import GaussianStats
from audiofidelity.stats import ReferenceStats, RoleStatistics
from conftest import eval_cli

RATE, ODD_RATE = 16000, 22050
CLIPS = 4
"""Per side; the last is stereo at ``ODD_RATE``."""
SIDES = {"generated": 300.0, "reference": 440.0}
"""Each side's base frequency: clip i is a tone at base + 37 i Hz in noise."""
NO_UPDATE_CALL = pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")
"""For the tests that fold rows in directly: torchmetrics notes that ``update`` was never called."""


def _tone(base: float, i: int, rate: int, seconds: float, rng) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * (base + 37 * i) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Per side: three 2-s mono clips at 16 kHz and a 2.5-s stereo clip at 22.05 kHz, as float32 WAVs (exact) and
    as (channels, n) arrays with their rates."""
    root = tmp_path_factory.mktemp("torchmetrics-clips")
    rng = np.random.default_rng(35)
    out = {"root": root}
    for side, base in SIDES.items():
        (root / side).mkdir()
        arrays, rates = [], []
        for i in range(CLIPS):
            odd = i == CLIPS - 1
            audio = _tone(base, i, ODD_RATE if odd else RATE, 2.5 if odd else 2.0, rng)
            audio = np.stack([audio, 0.5 * audio[::-1]]) if odd else audio[None]
            sf.write(root / side / f"clip_{i:02d}.wav", audio.T, ODD_RATE if odd else RATE, subtype="FLOAT")
            arrays.append(audio)
            rates.append(ODD_RATE if odd else RATE)
        out[side] = (arrays, rates)
    return out


@pytest.fixture(scope="module")
def evaluated(clips, models_dir, shared_cache, tmp_path_factory):
    """``eval GEN REF --metrics fd,fad,kad`` on the clips: (report, saved features). The features go to the
    session's feature cache, which ``stats`` then reads (set here: a module fixture runs before the autouse one)."""
    out = tmp_path_factory.mktemp("torchmetrics-eval")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOFIDELITY_CACHE", str(shared_cache))
        patch.delenv("AUDIOFIDELITY_MODELS", raising=False)
        return eval_cli(clips["root"] / "generated", clips["root"] / "reference", out, "--models-dir",
                        str(models_dir), "--metrics", "fd,fad,kad")


def _feed(metric, side_clips, real: bool) -> None:
    """Two batches, as a training loop sends them: a (2, samples) tensor of two 16-kHz mono clips, then a list of
    the other two (a (samples,) tensor and the (2, samples) stereo clip) with one rate per clip."""
    arrays, rates = side_clips
    metric.update(torch.from_numpy(np.concatenate(arrays[:2])), RATE, real=real)
    rest = [torch.from_numpy(a[0] if len(a) == 1 else a) for a in arrays[2:]]
    metric.update(rest, rates[2:], real=real)


def _kept_rows(metric, side: str) -> np.ndarray:
    return torch.cat(list(getattr(metric, f"{side}_rows"))).numpy().reshape(-1, metric.dim)


@pytest.mark.parametrize("make, key, feature", [
    (lambda d: FrechetAudioDistance("vggish", models_dir=d), "frechet_audio_distance", "vggish"),
    (lambda d: FrechetDistance("cnn14", RATE, models_dir=d), "frechet_distance", "2048"),
    (lambda d: KernelAudioDistance("vggish", models_dir=d), "kernel_audio_distance", "vggish"),
], ids=["fad", "fd", "kad"])
def test_the_metrics_fed_in_batches_equal_eval(clips, evaluated, models_dir, make, key, feature):
    report, features = evaluated
    metric = make(models_dir)
    _feed(metric, clips["reference"], real=True)
    _feed(metric, clips["generated"], real=False)
    # the rows are eval's, bit for bit (same stage, one clip per pass, same thread count)
    for side, short in (("fake", "gen"), ("real", "ref")):
        names = features[f"{short}/files"]
        want = np.concatenate([np.atleast_2d(features[f"{short}/{feature}/{name}"]) for name in names])
        assert np.array_equal(_kept_rows(metric, side), want)
    # the same function on the same rows: measured bit-equal; 1e-9 leaves room for another BLAS only
    assert float(metric.compute()) == pytest.approx(report["metrics"][key], rel=1e-9, abs=0)
    assert metric.details["rows"] == report["details"][key]["rows"]


def test_embedders_default_output_is_evals_fad_rows_for_vggish(clips, evaluated, models_dir):
    """What the brief asked to check: for an embedding artifact the Embedder's default is eval's FAD stage."""
    _, features = evaluated
    arrays, rates = clips["generated"]
    rows = Embedder("vggish", models_dir=models_dir).embed(arrays[-1][None], rates[-1])[0]
    assert np.array_equal(rows, features[f"gen/vggish/clip_{CLIPS - 1:02d}.wav"])


@NO_UPDATE_CALL
def test_statistics_only_path_against_eval_on_singular_covariances(evaluated, models_dir):
    """``keep_rows=0``: FAD from the Gaussians alone (eval's rows folded in, clip by clip). With 8 rows for 128
    dimensions the covariances are singular and the square roots of their ~0 eigenvalues turn rounding into
    ~1e-8 relative (measured 1.6e-8 here, 2.8e-8 with 12 rows, 4.7e-8 with 24); eval takes the trace exactly
    from the rows, which is why the metric keeps them while they are few."""
    report, features = evaluated
    metric = FrechetAudioDistance("vggish", models_dir=models_dir, keep_rows=0)
    for side, short in (("fake", "gen"), ("real", "ref")):
        for name in features[f"{short}/files"]:
            metric._add(side, features[f"{short}/vggish/{name}"])
    assert list(metric.fake_rows) == [] and list(metric.real_rows) == []
    assert float(metric.compute()) == pytest.approx(report["metrics"]["frechet_audio_distance"], rel=1e-6)


def _rows(rng, n: int, d: int = 128, offset: float = 100.0, scale: float = 1.0) -> np.ndarray:
    """Embedding-like rows far from the origin (mean / std = 100): sums of outer products would lose 1e-12 here."""
    return (offset + scale * rng.standard_normal((n, d))).astype(np.float32)


@NO_UPDATE_CALL
def test_more_rows_than_dimensions_fold_into_gaussians_equal_to_evals(models_dir):
    rng = np.random.default_rng(0)
    fake, real = _rows(rng, 300), _rows(rng, 260, offset=100.1, scale=1.1)
    metric = FrechetAudioDistance("vggish", models_dir=models_dir)  # no model runs: rows folded in directly
    for batch in np.array_split(fake, 7):
        metric._add("fake", batch)
    for batch in np.array_split(real, 3):
        metric._add("real", batch)
    assert list(metric.fake_rows) == [] and list(metric.real_rows) == []  # over keep_rows = 128: dropped
    want, details = frechet.frechet_distance_checked(fake, real)
    # Chan's merges of float64 co-moments vs one pass over the rows: measured equal here, 2e-13 on VGGish rows
    assert float(metric.compute()) == pytest.approx(want, rel=1e-12)
    assert metric.details["rows"] == details["rows"] == [300, 260]


def test_merge_gaussians_is_the_pairwise_merge_in_rank_order():
    rng = np.random.default_rng(1)
    shards = [_rows(rng, n, d=8) for n in (5, 0, 11)]
    packed = torch.stack([pack_gaussian(GaussianStats.from_features(s) if len(s) else GaussianStats(), 8)
                          for s in shards])
    merged = unpack_gaussian(merge_gaussians(packed))
    whole = GaussianStats.from_features(np.concatenate(shards))
    assert merged.count == 16
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-14)
    np.testing.assert_allclose(merged.cov, whole.cov, rtol=1e-9)  # co-moments of rows 100 from the origin


@NO_UPDATE_CALL  # compute() right after reset(), on purpose
def test_reset_keeps_the_real_side_only_when_asked(clips, models_dir):
    arrays, _ = clips["reference"]
    reference = torch.from_numpy(np.concatenate(arrays[:2]))
    generated = torch.from_numpy(np.concatenate(clips["generated"][0][:2]))
    metric = FrechetAudioDistance("vggish", models_dir=models_dir, reset_real_features=False)
    metric.update(reference, RATE, real=True)
    metric.update(generated, RATE, real=False)
    first = float(metric.compute())
    metric.reset()
    with pytest.raises(MetricUnavailableError, match=r"the generated \(fake\) side has 0"):
        metric.compute()
    metric.update(generated, RATE, real=False)  # the next epoch: generated audio only
    assert float(metric.compute()) == first
    forgetting = FrechetAudioDistance("vggish", models_dir=models_dir)  # the default, as torchmetrics' FID
    forgetting.update(reference, RATE, real=True)
    forgetting.reset()
    forgetting.update(generated, RATE, real=False)
    with pytest.raises(MetricUnavailableError, match=r"the reference \(real\) side has 0"):
        forgetting.compute()


class _World:
    """Two ranks in one process: each rank's states as torchmetrics' ``_sync_dist`` hands them to
    ``all_gather``, recorded, then gathered for a rank in the same order. all_gather needs every rank's tensor of
    one dtype and rank (torchmetrics pads the sizes), which is checked here."""

    def __init__(self, metrics) -> None:
        self.metrics = metrics
        self.recorded = []
        for metric in metrics:
            mine: list = []
            metric.sync(dist_sync_fn=lambda t, group=None, mine=mine: mine.append(t.clone()) or [t],
                        distributed_available=lambda: True)
            metric.unsync()
            self.recorded.append(mine)

    def synced(self, rank: int):
        calls = iter(zip(*self.recorded))

        def gather(tensor, group=None):
            each = list(next(calls))
            assert len({(t.dtype, t.ndim) for t in each}) == 1, [(t.dtype, t.shape) for t in each]
            return each

        metric = self.metrics[rank]
        metric.sync(dist_sync_fn=gather, distributed_available=lambda: True)
        return metric


@NO_UPDATE_CALL
@pytest.mark.parametrize("keep_rows, sizes", [
    (None, {"fake": (10, 7), "real": (12, 0)}),  # every row kept, a rank without reference rows: eval's function
    (200, {"fake": (150, 140), "real": (210, 90)}),  # one rank over keep_rows: the Gaussians, merged
], ids=["rows", "gaussians"])
def test_two_ranks_reduce_to_the_one_process_value(models_dir, keep_rows, sizes):
    """The reduction through torchmetrics' own ``_sync_dist`` (the gloo run is ``test_two_gloo_ranks``)."""
    rng = np.random.default_rng(2)
    data = {side: [_rows(rng, n, offset=100.0 + 0.1 * (side == "real")) for n in counts]
            for side, counts in sizes.items()}

    def metric(rows_by_side):
        made = FrechetAudioDistance("vggish", models_dir=models_dir, keep_rows=keep_rows, sync_on_compute=False)
        for side, rows in rows_by_side.items():
            if len(rows):
                made._add(side, rows)
        return made

    ranks = [metric({side: shards[rank] for side, shards in data.items()}) for rank in range(2)]
    if keep_rows is not None:
        assert list(ranks[0].real_rows) == [] and len(ranks[1].real_rows) == 1  # rank 0 dropped its 210
    synced = _World(ranks).synced(0)
    one = metric({side: np.concatenate(shards) for side, shards in data.items()})
    # rows: the same rows in the same order, bit-equal; Gaussians: merged in another order, 1e-13 measured
    assert float(synced.compute()) == pytest.approx(float(one.compute()), rel=1e-12)
    want = frechet.frechet_distance_checked(*(np.concatenate(data[side]) for side in ("fake", "real")))[0]
    assert float(synced.compute()) == pytest.approx(want, rel=1e-12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, port: int, models_dir: str, clips: dict, out: str) -> None:
    """One gloo rank: its share of the clips (``_GLOO_RUNS``' split) on both sides, then ``compute``; rank 0 saves
    the values."""
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        values = {}
        for name, make, split in _GLOO_RUNS:
            metric = make(models_dir)
            for side, real in (("reference", True), ("generated", False)):
                arrays, rates = clips[side]
                mine = split[rank]
                metric.update([torch.from_numpy(arrays[i]) for i in mine], [rates[i] for i in mine], real=real)
            values[name] = float(metric.compute())
        if rank == 0:
            np.save(out, np.array([values[name] for name, _, _ in _GLOO_RUNS]))
    finally:
        dist.destroy_process_group()


HALVES = ((0, 1), (2, 3))
_GLOO_RUNS = [
    ("fad", lambda d: FrechetAudioDistance("vggish", models_dir=d), HALVES),
    ("kad", lambda d: KernelAudioDistance("vggish", models_dir=d), HALVES),
    # rank 0's 2 rows kept, rank 1's 6 dropped: the empty list torchmetrics substitutes must gather with the rows
    ("fad-gaussians", lambda d: FrechetAudioDistance("vggish", models_dir=d, keep_rows=2), ((0,), (1, 2, 3))),
]


@pytest.mark.parity  # two spawned interpreters load torch, the package and the model: ~30 s on two busy cores
def test_two_gloo_ranks(clips, models_dir, tmp_path):
    import torch.multiprocessing as mp

    plain = {side: clips[side] for side in SIDES}
    out = str(tmp_path / "values.npy")
    mp.spawn(_rank, args=(_free_port(), str(models_dir), plain, out), nprocs=2, join=True)
    got = np.load(out)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the ranks' thread count: it moves VGGish's last bits
    try:
        want = []
        for name, make, split in _GLOO_RUNS:
            metric = make(str(models_dir)) if name != "fad-gaussians" else \
                FrechetAudioDistance("vggish", models_dir=models_dir, keep_rows=0)
            for side, real in (("reference", True), ("generated", False)):
                arrays, rates = clips[side]
                for share in split:  # one process, one update per rank's share, in rank order
                    metric.update([torch.from_numpy(arrays[i]) for i in share], [rates[i] for i in share], real=real)
            want.append(float(metric.compute()))
    finally:
        torch.set_num_threads(threads)
    # the rows gathered in rank order are the one process's rows; the ranks' Gaussians merged in rank order are
    # its merges of the same batches: measured equal. Not 1e-12 against other merge orders: 12 rows for 128
    # dimensions make the covariances singular, where 1e-16 in them moves FD by ~3e-9
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_reference_statistics_file_gives_evals_value(clips, evaluated, models_dir, tmp_path):
    """``stats REF --out X.npz`` then ``eval GEN X.npz`` and the metric with ``reference_stats=X``."""
    stats = tmp_path / "reference.npz"
    assert cli.main(["stats", str(clips["root"] / "reference"), "--out", str(stats), "--models-dir",
                     str(models_dir), "--quiet"]) == 0
    report, _ = eval_cli(clips["root"] / "generated", stats, tmp_path, "--models-dir", str(models_dir),
                         "--metrics", "fad")
    metric = FrechetAudioDistance("vggish", models_dir=models_dir, reference_stats=stats)
    _feed(metric, clips["generated"], real=False)
    assert float(metric.compute()) == pytest.approx(report["metrics"]["frechet_audio_distance"], rel=1e-9, abs=0)
    with pytest.raises(ValueError, match="the real side comes from reference_stats"):
        metric.update(torch.from_numpy(clips["reference"][0][0]), RATE, real=True)
    with pytest.raises(StatsFileError, match="made with backbone cnn14 at 16000 Hz, not cnn14 at 32000 Hz"):
        FrechetDistance("cnn14", 32000, models_dir=models_dir, reference_stats=stats)
    # a file made with another FAD model: its settings say which
    other = tmp_path / "other.npz"
    made = ReferenceStats.load(stats)
    made.settings["fad_model"] = "cnn14-16k"
    made.roles["fad"] = RoleStatistics(np.zeros(2048), np.eye(2048), 100)
    made.save(other)
    with pytest.raises(StatsFileError, match="made with FAD model cnn14-16k, not vggish"):
        FrechetAudioDistance("vggish", models_dir=models_dir, reference_stats=other)


def test_audiocrafts_update_form(clips, evaluated, models_dir):
    """audiocraft's solver: ``update(preds, targets, sizes, sample_rates)`` on zero-padded (B, C, T) batches;
    preds are the generated side and targets the real one, each item cut to its size."""
    report, _ = evaluated
    batches = {}
    for side in SIDES:
        arrays, rates = clips[side]
        padded = np.zeros((len(arrays), 2, max(a.shape[-1] for a in arrays)), np.float32)
        for i, a in enumerate(arrays):
            padded[i, :, :a.shape[-1]] = a  # mono clips twice: eval reads the first channel
        batches[side] = torch.from_numpy(padded)
    sizes = torch.tensor([a.shape[-1] for a in clips["generated"][0]])
    sample_rates = torch.tensor(clips["generated"][1])
    metric = FrechetAudioDistance("vggish", models_dir=models_dir)
    metric.update(batches["generated"][:2], batches["reference"][:2], sizes[:2], sample_rates[:2])
    metric.update(batches["generated"][2:], batches["reference"][2:], sizes[2:], sample_rates[2:], ["a", "b"])
    assert float(metric.compute()) == pytest.approx(report["metrics"]["frechet_audio_distance"], rel=1e-9, abs=0)


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")  # torchmetrics' own note, then ours
def test_bad_input_is_refused_by_name(clips, models_dir):
    metric = FrechetAudioDistance("vggish", models_dir=models_dir)
    clip = torch.from_numpy(clips["generated"][0][0][0])
    with pytest.raises(MetricUnavailableError, match=r"compute\(\) before any update"):
        metric.compute()
    with pytest.raises(InvalidAudioError, match=r"shape \(32000,\).*one clip: pass audio\[None\]"):
        metric.update(clip, RATE, real=False)
    with pytest.raises(InvalidAudioError, match=r"shape \(1, 1, 1, 32000\)"):
        metric.update(clip[None, None, None], RATE, real=False)
    with pytest.raises(InvalidAudioError, match="dtype torch.int16"):
        metric.update((clip[None] * 3e4).short(), RATE, real=False)
    broken = torch.stack([clip, clip.clone()])
    broken[1, 100] = float("nan")
    with pytest.raises(InvalidAudioError, match=r"generated audio clip 1: 1 sample\(s\) are NaN or infinite"):
        metric.update(broken, RATE, real=False)
    with pytest.raises(InvalidAudioError, match="sample rate 1000000 Hz is outside"):
        metric.update(clip[None], 1_000_000, real=False)
    with pytest.raises(InvalidAudioError, match="sample_rate must be whole numbers of Hz, got 16000.5"):
        metric.update(clip[None], 16000.5, real=False)
    with pytest.raises(InvalidAudioError, match="size 40000 is outside 1..32000"):
        metric.update(clip[None], RATE, real=False, sizes=[40000])
    with pytest.raises(ValueError, match="real must be True .* or False .*, got 'fake'"):
        metric.update(clip[None], RATE, real="fake")
    with pytest.raises(TypeError, match="no per-batch value"):
        metric(clip[None], RATE, real=False)
    assert metric.fake_rows == [] and unpack_gaussian(metric.fake_gaussian).count == 0  # nothing folded in
    metric.update(clip[None], RATE, real=False)  # 2 rows
    with pytest.raises(MetricUnavailableError, match=r"reference \(real\) side has 0"):
        metric.compute()


@pytest.mark.parity  # 2 x 14 clips of 10 s through VGGish twice: ~45 s
def test_more_rows_than_dimensions_through_the_model_equal_eval(models_dir, tmp_path):
    """140 VGGish rows a side (more than its 128 dimensions): the rows are dropped after the first batch and FAD
    comes from the merged Gaussians, as eval's from one pass (measured 2e-13 relative)."""
    rng = np.random.default_rng(7)
    batches = {}
    for side, base in SIDES.items():
        (tmp_path / side).mkdir()
        audio = np.stack([_tone(base, i, RATE, 10.0, rng) for i in range(14)])
        for i, clip in enumerate(audio):
            sf.write(tmp_path / side / f"clip_{i:02d}.wav", clip, RATE, subtype="FLOAT")
        batches[side] = torch.from_numpy(audio)
    report, _ = eval_cli(tmp_path / "generated", tmp_path / "reference", tmp_path, "--models-dir", str(models_dir),
                         "--metrics", "fad", "--no-cache")
    metric = FrechetAudioDistance("vggish", models_dir=models_dir)
    for side, real in (("reference", True), ("generated", False)):
        for half in batches[side].split(7):
            metric.update(half, RATE, real=real)
    assert list(metric.fake_rows) == [] and list(metric.real_rows) == []
    assert metric.details == {} and report["details"]["frechet_audio_distance"]["rows"] == [140, 140]
    assert float(metric.compute()) == pytest.approx(report["metrics"]["frechet_audio_distance"], rel=1e-9, abs=0)


@pytest.mark.parity  # the CNN14 and MERT stand-ins on 8 clips, twice
@pytest.mark.parametrize("model", ["cnn14-16k", "mert-v1-95m-5"])
def test_fad_models_on_classifier_artifacts_are_fed_as_eval_feeds_them(clips, models_dir, tmp_path, model):
    """``--fad-model cnn14-16k`` / ``mert-v1-95m-N``: their toolkit's conditioning at the model's rate (no mean
    removal, no padding), not the classifier feeding ``Embedder`` gives those artifacts by default."""
    report, features = eval_cli(clips["root"] / "generated", clips["root"] / "reference", tmp_path, "--models-dir",
                                str(models_dir), "--metrics", "fad", "--fad-model", model, "--no-cache")
    metric = FrechetAudioDistance(model, models_dir=models_dir)
    _feed(metric, clips["reference"], real=True)
    _feed(metric, clips["generated"], real=False)
    names = features["gen/files"]
    want = np.concatenate([np.atleast_2d(features[f"gen/{model}/{name}"]) for name in names])
    assert np.array_equal(_kept_rows(metric, "fake"), want)
    assert float(metric.compute()) == pytest.approx(report["metrics"]["frechet_audio_distance"], rel=1e-9, abs=0)


def test_importing_audiofidelity_does_not_import_torchmetrics():
    code = ("import sys, audiofidelity, audiofidelity.compat, audiofidelity.evaluate; "
            "print('torchmetrics' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
