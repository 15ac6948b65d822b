"""Reference statistics files, bootstrap intervals, the table and the CSV."""
import csv
import json

import numpy as np
import pytest

from audiofidelity import cli
from audiofidelity.evaluate import evaluate
from audiofidelity.metrics import frechet
from audiofidelity.metrics.bootstrap import bootstrap_interval
from audiofidelity.errors import StatsFileError
from audiofidelity.stats import ReferenceStats


def _stats(recordings_dir, models_dir, out, *extra):
    assert cli.main(["stats", str(recordings_dir / "reference"), "--out", str(out), "--models-dir", str(models_dir),
                     "--quiet", *extra]) == 0
    return out


@pytest.fixture(scope="module")
def folder_report(recordings_dir, models_dir):
    return evaluate(recordings_dir / "unpaired", recordings_dir / "reference", models_dir=models_dir,
                    progress=False).report


def test_eval_against_a_statistics_file_equals_eval_against_the_folder(recordings_dir, models_dir, tmp_path,
                                                                       folder_report):
    stats = _stats(recordings_dir, models_dir, tmp_path / "ref.npz")
    report = evaluate(recordings_dir / "unpaired", stats, models_dir=models_dir, progress=False).report
    for key in ("frechet_distance", "frechet_audio_distance", "inception_score_mean"):
        assert report["metrics"][key] == pytest.approx(folder_report["metrics"][key], rel=1e-9), key
    assert report["mode"] == "unpaired" and report["files"]["reference"]["statistics"] == str(stats)
    with np.load(stats) as data:
        # a role's features are kept exactly when its covariance is singular (rows <= dimensions): 24 clips of
        # 2048-d embeddings are, so FD is exact and KID available without --features
        for role in ("embedding", "fad"):
            kept = f"{role}/per_file/0" in data.files
            assert kept == (int(data[f"{role}/count"]) <= data[f"{role}/mean"].shape[0]), role
        assert "embedding/per_file/0" in data.files
    assert report["metrics"]["kernel_inception_distance_mean"] == pytest.approx(
        folder_report["metrics"]["kernel_inception_distance_mean"], rel=1e-12)


def test_statistics_without_features_say_what_needs_them():
    rng = np.random.default_rng(0)
    stats = ReferenceStats.from_features({"fad": [rng.normal(size=(10, 4)) for _ in range(3)]}, ["a", "b", "c"], {})
    assert stats.roles["fad"].per_file is None and stats.roles["fad"].count == 30
    with pytest.raises(ValueError, match="--features"):
        stats.features("fad")
    kept = ReferenceStats.from_features({"fad": [rng.normal(size=(10, 4)) for _ in range(3)]}, ["a", "b", "c"], {},
                                        keep_features=True)
    assert kept.features("fad").shape == (30, 4)


def test_bootstrap_keeps_a_statistics_only_reference_fixed(recordings_dir, models_dir, tmp_path):
    from audiofidelity.evaluate import Evaluator

    evaluator = Evaluator(metrics=["fad"], models_dir=models_dir, progress=False)
    stats, _ = evaluator.reference_statistics(recordings_dir / "reference")
    stats.roles["fad"].per_file = None  # as for a reference set with more frames than dimensions
    stats.save(tmp_path / "ref.npz")
    full, _ = evaluator.reference_statistics(recordings_dir / "reference", keep_features=True)
    full.save(tmp_path / "full.npz")
    runs = [evaluator.evaluate(recordings_dir / "unpaired", tmp_path / name, bootstrap=3).report
            for name in ("ref.npz", "full.npz")]
    assert runs[0]["bootstrap"]["frechet_audio_distance"]["resampled"] == ["generated"]
    assert runs[1]["bootstrap"]["frechet_audio_distance"]["resampled"] == ["generated", "reference"]
    # two float64 routes to the same FD (covariance from the file vs from the features): the trace terms
    # cancel to a few percent of their size, so rounding reaches ~1e-8 relative (1.2e-8 measured)
    assert runs[0]["metrics"]["frechet_audio_distance"] == pytest.approx(
        runs[1]["metrics"]["frechet_audio_distance"], rel=3e-8)


def test_statistics_match_numpy_on_the_features(recordings_dir, models_dir, tmp_path):
    stats = _stats(recordings_dir, models_dir, tmp_path / "ref.npz")
    result = evaluate(recordings_dir / "unpaired", recordings_dir / "reference", metrics=["fad"],
                      models_dir=models_dir, progress=False)
    frames = result.sides["reference"].matrix("vggish").astype(np.float64)
    with np.load(stats) as data:
        np.testing.assert_allclose(data["fad/mean"], frames.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(data["fad/cov"], np.cov(frames, rowvar=False), rtol=1e-10, atol=1e-12)
        assert int(data["fad/count"]) == len(frames)


def test_a_statistics_file_from_other_settings_is_refused(recordings_dir, models_dir, tmp_path, capsys):
    stats = _stats(recordings_dir, models_dir, tmp_path / "ref.npz")
    capsys.readouterr()
    status = cli.main(["eval", str(recordings_dir / "unpaired"), str(stats), "--models-dir", str(models_dir),
                       "--quiet", "--resampler", "resampy"])
    assert status == 1
    assert "resampler" in capsys.readouterr().err
    status = cli.main(["eval", str(recordings_dir / "unpaired"), str(stats), "--models-dir", str(models_dir),
                       "--quiet", "--sr", "32000"])
    assert status == 1


def test_an_audio_file_as_reference_is_not_taken_for_statistics(recordings_dir, models_dir, capsys):
    status = cli.main(["eval", str(recordings_dir / "unpaired"), str(recordings_dir / "reference" / "clip_00.wav"),
                       "--models-dir", str(models_dir), "--quiet"])
    assert status == 1
    assert "not an audiofidelity statistics file" in capsys.readouterr().err


def test_fd_to_statistics_is_exact_for_singular_covariances():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 64)), rng.normal(size=(300, 64)) * 1.5 + 0.2
    mu, sigma = frechet.gaussian_statistics(y)
    # two exact forms (nuclear norm of A B' vs eigenvalues of A S2 A'): float64 rounding of the
    # eigen-decompositions, amplified by the cancellation of the trace terms, reaches ~1e-9 relative here
    # (numpy 2.4 / OpenBLAS 0.3.31)
    assert frechet.frechet_distance_to_statistics(x, mu, sigma) == pytest.approx(
        frechet.frechet_distance_from_features(x, y), rel=1e-8)


def test_bootstrap_interval_of_a_mean_has_the_textbook_width():
    rng = np.random.default_rng(1)
    data = rng.normal(size=400)
    interval = bootstrap_interval(lambda g, r: float(data[g].mean()), len(data), None, 2000)
    # a 95% interval for the mean of n standard normals is about +-1.96/sqrt(n) wide
    assert interval["high"] - interval["low"] == pytest.approx(2 * 1.96 * data.std() / np.sqrt(400), rel=0.1)
    assert interval["low"] < data.mean() < interval["high"]
    assert interval == bootstrap_interval(lambda g, r: float(data[g].mean()), len(data), None, 2000)


def test_bootstrap_in_the_report_is_reproducible(recordings_dir, models_dir):
    runs = [evaluate(recordings_dir / "unpaired", recordings_dir / "reference", metrics=["fd", "fad", "kid"],
                     models_dir=models_dir, progress=False, bootstrap=5).report for _ in range(2)]
    assert runs[0]["bootstrap"] == runs[1]["bootstrap"]
    assert set(runs[0]["bootstrap"]) == {"frechet_distance", "frechet_audio_distance",
                                         "kernel_inception_distance_mean"}
    for interval in runs[0]["bootstrap"].values():
        assert interval["low"] < interval["high"] and interval["resampled"] == ["generated", "reference"]


def test_table_names_each_metric_direction(recordings_dir, models_dir, capsys):
    assert cli.main(["eval", str(recordings_dir / "generated"), str(recordings_dir / "reference"), "--models-dir",
                     str(models_dir), "--quiet", "--format", "table", "--metrics", "fd,isc,psnr",
                     "--bootstrap", "3"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "lower is better" in lines["frechet_distance"] and "[" in lines["frechet_distance"]
    assert "higher is better" in lines["psnr"]
    assert "spread" in lines["inception_score_std"]
    assert "paired mode" in out


def test_csv_appends_one_row_per_run(recordings_dir, models_dir, tmp_path):
    table = tmp_path / "runs.csv"
    for folder in ("generated", "unpaired"):
        assert cli.main(["eval", str(recordings_dir / folder), str(recordings_dir / "reference"), "--models-dir",
                         str(models_dir), "--quiet", "--metrics", "fd,kl", "--csv", str(table)]) == 0
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["mode"] for r in rows] == ["paired", "unpaired"]
    assert float(rows[0]["frechet_distance"]) > 0 and rows[1]["kullback_leibler_divergence_softmax"] == ""
    assert json.loads(rows[0]["generated_used"]) == 24


def test_csv_with_foreign_columns_is_refused(recordings_dir, models_dir, tmp_path, capsys):
    table = tmp_path / "runs.csv"
    table.write_text("a,b\n1,2\n")
    status = cli.main(["eval", str(recordings_dir / "generated"), str(recordings_dir / "reference"),
                       "--metrics", "psnr", "--quiet", "--csv", str(table)])
    assert status == 1 and "has no column for time, generated" in capsys.readouterr().err
    assert table.read_text() == "a,b\n1,2\n"


def test_a_csv_an_earlier_version_wrote_takes_the_rows_that_fit_it(recordings_dir, tmp_path, capsys):
    """A file whose header lacks newer metrics' columns: a run of the metrics it has appends there (under its own
    header); a run of a metric it has no column for is refused before any work."""
    from audiofidelity.reporting import CSV_COLUMNS

    older = [c for c in CSV_COLUMNS if not c.startswith(("aesthetics_", "pam"))]
    table = tmp_path / "runs.csv"
    table.write_text(",".join(older) + "\n")
    assert cli.main(["eval", str(recordings_dir / "generated"), str(recordings_dir / "reference"), "--metrics",
                     "psnr", "--quiet", "--csv", str(table), "--json", str(tmp_path / "r.json")]) == 0
    rows = table.read_text().splitlines()
    assert rows[0] == ",".join(older) and len(rows) == 2 and rows[1].count(",") == len(older) - 1
    assert cli.main(["eval", str(recordings_dir / "generated"), "--metrics", "pam", "--quiet", "--csv",
                     str(table)]) == 1
    assert "has no column for pam" in capsys.readouterr().err and len(table.read_text().splitlines()) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "pickled"])
def test_a_damaged_statistics_file_is_refused_by_name_not_a_traceback(tmp_path, damage):
    good = tmp_path / "good.npz"
    np.savez(good, format=np.array(1), settings=np.array("{}"), files=np.array(["a.wav"]))
    path = tmp_path / "ref.npz"
    if damage == "garbage":
        path.write_bytes(b"not a statistics file")
    elif damage == "truncated":
        path.write_bytes(good.read_bytes()[:100])
    else:
        np.save(path, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(StatsFileError, match=f"{path.name} is not an audiofidelity statistics file"):
        ReferenceStats.load(path)  # a StatsFileError: the CLI reports it and exits 1


def test_reference_statistics_hold_one_chunk_of_rows_at_a_time(recordings_dir, models_dir, monkeypatch, tmp_path):
    """#34: a reference folder's rows are folded into its statistics chunk by chunk (the memory is flat in the
    number of files), and the statistics are those of all the rows at once to float64 rounding."""
    import importlib

    from audiofidelity.evaluate import Evaluator

    monkeypatch.setattr(importlib.import_module("audiofidelity.features"), "CHUNK_FILES", 4)
    held = []
    real = Evaluator.side_features

    def watched(self, folder, names, label, watch=None, fold=None):
        def counting(side):
            held.append({output: len(rows) for output, rows in side.per_file.items()})  # before the fold takes them
            fold(side)
        return real(self, folder, names, label, watch, counting if fold else None)

    from audiofidelity.cache import FeatureCache

    cache = FeatureCache(tmp_path / "cache")  # the second pass reads the first's features: only the folding is new
    with Evaluator(models_dir=models_dir, progress=False, cache=cache, metrics=["fad"]) as evaluator:
        whole = evaluator.side_features(recordings_dir / "reference", sorted(
            p.name for p in (recordings_dir / "reference").iterdir()), "reference")
        monkeypatch.setattr(Evaluator, "side_features", watched)
        streamed, _ = evaluator.reference_statistics(recordings_dir / "reference")
    assert len(held) == -(-len(whole.files) // 4)  # every chunk folded
    assert max(n for chunk in held for n in chunk.values()) <= 4  # no output's rows held beyond their chunk
    for role, output in (("fad", "vggish"),):
        rows = whole.matrix(output).astype(np.float64)
        np.testing.assert_allclose(streamed.role(role).mean, rows.mean(axis=0), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(streamed.role(role).cov, np.cov(rows, rowvar=False), rtol=1e-10, atol=1e-13)
        assert streamed.role(role).count == len(rows)
        assert (streamed.role(role).per_file is not None) == (len(rows) <= rows.shape[1])  # rows kept iff singular
