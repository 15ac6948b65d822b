"""Metric math: closed forms, transcriptions of the original formulas, and the golden features."""
import numpy as np
import pytest
import scipy.linalg
import torch

from audiofidelity.metrics import (frechet_distance, frechet_distance_from_features, gaussian_statistics,
                                   inception_score, kernel_inception_distance, kl_divergence)
from conftest import golden

RUNS = ["cnn14_16k_paired", "cnn14_16k_unpaired", "cnn14_32k_paired", "cnn14_32k_unpaired"]


def test_fd_with_equal_covariances_is_the_squared_mean_distance():
    rs = np.random.RandomState(0)
    a = rs.standard_normal((8, 8))
    sigma = a @ a.T + np.eye(8)
    mu1, mu2 = rs.standard_normal(8), rs.standard_normal(8)
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-9)


def test_fd_of_a_set_with_itself_is_zero_even_when_rank_deficient():
    x = np.random.RandomState(1).standard_normal((20, 64))  # n < d: singular covariance
    assert abs(frechet_distance_from_features(x, x)) < 1e-8


def test_fd_and_kid_leave_their_inputs_unchanged():
    rs = np.random.RandomState(4)
    for x, y in [(rs.standard_normal((20, 64)), rs.standard_normal((30, 64))),  # n <= d: centred in place
                 (rs.standard_normal((90, 8)), rs.standard_normal((70, 8)).astype(np.float32))]:
        saved = x.copy(), y.copy()
        frechet_distance_from_features(x, y)
        kernel_inception_distance(x, y, subsets=2)
        assert np.array_equal(x, saved[0]) and np.array_equal(y, saved[1])


def test_fd_matches_scipy_sqrtm_transcription_on_full_rank_data():
    rs = np.random.RandomState(2)
    x, y = rs.standard_normal((500, 16)), rs.standard_normal((400, 16)) * 1.5 + 0.3
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real  # the original's formula, well-conditioned here
    want = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance_from_features(x, y) == pytest.approx(want, rel=1e-9)


def test_fd_is_symmetric_and_needs_two_rows():
    rs = np.random.RandomState(3)
    x, y = rs.standard_normal((30, 5)), rs.standard_normal((40, 5))
    assert frechet_distance_from_features(x, y) == pytest.approx(frechet_distance_from_features(y, x), rel=1e-10)
    with pytest.raises(ValueError, match="n >= 2"):
        gaussian_statistics(x[:1])


def test_kl_of_identical_sets_is_zero_up_to_eps():
    logits = np.random.RandomState(4).standard_normal((6, 20)) * 3
    # EPS = 1e-6 inside the log makes it slightly negative, never more than ~EPS * classes
    assert -20e-6 < kl_divergence(logits, logits) <= 0
    assert -20e-6 < kl_divergence(logits, logits, mode="sigmoid") <= 0


def test_kl_matches_torch_kl_div_transcription():
    rs = np.random.RandomState(5)
    g, r = rs.standard_normal((7, 30)) * 2, rs.standard_normal((7, 30)) * 2
    gt, rt = torch.from_numpy(g), torch.from_numpy(r)
    for mode, prob in (("softmax", lambda t: t.softmax(dim=1)), ("sigmoid", torch.sigmoid)):
        want = torch.nn.functional.kl_div((prob(gt) + 1e-6).log(), prob(rt), reduction="sum") / len(g)
        assert kl_divergence(g, r, mode=mode) == pytest.approx(float(want), rel=1e-12)


def test_inception_score_matches_a_direct_transcription():
    logits = np.random.RandomState(6).standard_normal((37, 12)) * 2
    x = torch.from_numpy(logits)[np.random.RandomState(2020).permutation(37)]
    p, log_p = x.softmax(1), x.log_softmax(1)
    scores = [float((p[i * 37 // 10:(i + 1) * 37 // 10] * (log_p[i * 37 // 10:(i + 1) * 37 // 10]
              - p[i * 37 // 10:(i + 1) * 37 // 10].mean(0, keepdim=True).log())).sum(1).mean().exp())
              for i in range(10)]
    got = inception_score(logits)
    assert got["inception_score_mean"] == pytest.approx(np.mean(scores), rel=1e-12)
    assert got["inception_score_std"] == pytest.approx(np.std(scores), rel=1e-9)


def test_inception_score_refuses_fewer_clips_than_splits():
    with pytest.raises(ValueError, match="at least 10 clips, got 9"):
        inception_score(np.zeros((9, 3)))


def test_kid_separates_distributions_and_rejects_tiny_sets():
    rs = np.random.RandomState(7)
    x, same, shifted = rs.standard_normal((200, 8)), rs.standard_normal((200, 8)), rs.standard_normal((200, 8)) + 1
    near = kernel_inception_distance(x, same, subsets=20)["kernel_inception_distance_mean"]
    far = kernel_inception_distance(x, shifted, subsets=20)["kernel_inception_distance_mean"]
    assert abs(near) < 0.05 * far  # unbiased: ~0 for equal distributions, whatever the sample
    with pytest.raises(ValueError, match="at least 2 samples"):
        kernel_inception_distance(x[:1], x)


@pytest.mark.parametrize("run", RUNS)
def test_metrics_on_the_originals_features_equal_the_originals_numbers(run):
    metrics, f = golden(run)
    want = metrics["metrics"]
    assert frechet_distance_from_features(f["gen/2048"], f["ref/2048"]) == pytest.approx(
        want["frechet_distance"], rel=1e-5)
    kid = kernel_inception_distance(f["gen/2048"], f["ref/2048"])
    assert kid["kernel_inception_distance_mean"] == pytest.approx(
        metrics["kid_reference"]["kernel_inception_distance_mean"], rel=1e-5)
    isc = inception_score(f["gen/logits"])
    assert isc["inception_score_mean"] == pytest.approx(want["inception_score_mean"], abs=1e-9)
    assert isc["inception_score_std"] == pytest.approx(want["inception_score_std"], abs=1e-9)
    if want["kullback_leibler_divergence_softmax"] != -1:
        assert kl_divergence(f["gen/logits"], f["ref/logits"]) == pytest.approx(
            want["kullback_leibler_divergence_softmax"], abs=1e-5)
        assert kl_divergence(f["gen/logits"], f["ref/logits"], mode="sigmoid") == pytest.approx(
            want["kullback_leibler_divergence_sigmoid"], abs=1e-4)


def test_not_enough_data_is_unavailable_but_a_defect_inside_a_metric_propagates():
    """``MetricUnavailableError`` (too few clips) becomes ``null`` with its reason; any other exception, a shape
    bug's ``ValueError`` included, is not silently turned into "unavailable"."""
    from audiofidelity import metric_table
    from audiofidelity.errors import MetricUnavailableError

    class Data:
        details: dict = {}

    spec = metric_table.METRICS["kad"]
    real = spec.compute

    def too_few(data):
        raise MetricUnavailableError("KAD needs at least 2 embedding rows on each side")

    def defect(data):
        return {"x": np.zeros(3) @ np.zeros(4)}  # a shape bug: ValueError from NumPy

    try:
        object.__setattr__(spec, "compute", too_few)
        values, unavailable = metric_table.compute_metrics(["kad"], Data(), None)
        assert values[spec.keys[0]] is None and "at least 2" in unavailable[spec.keys[0]]
        object.__setattr__(spec, "compute", defect)
        with pytest.raises(ValueError, match="matmul"):
            metric_table.compute_metrics(["kad"], Data(), None)
    finally:
        object.__setattr__(spec, "compute", real)
