"""KAD, the extrapolated scores, PRDC and a Fréchet distance that cannot go negative or complex.

Each expected value comes from an implementation written here from the published definition (kadtk's KAD
formula with full matrices, the PRDC definitions with full distance matrices, a line fitted by hand) or from an
independent package (scikit-learn's covariance estimators), never from the production functions.
"""
import tracemalloc

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist, pdist

from audiofidelity.metrics import covariance, frechet, kad, prdc
from audiofidelity.metrics.extrapolation import extrapolate
from conftest import eval_cli


def kadtk_formula(x, y, bandwidth):
    """kadtk's ``calc_kernel_audio_distance`` in NumPy, full matrices: unbiased MMD^2 x 100."""
    gamma = 1 / (2 * bandwidth ** 2 + 1e-8)
    m, n = len(x), len(y)
    xx, yy, xy = x @ x.T, y @ y.T, x @ y.T
    k_xx = np.exp(-gamma * (np.diag(xx)[:, None] + np.diag(xx)[None, :] - 2 * xx))
    k_yy = np.exp(-gamma * (np.diag(yy)[:, None] + np.diag(yy)[None, :] - 2 * yy))
    k_xy = np.exp(-gamma * (np.diag(xx)[:, None] + np.diag(yy)[None, :] - 2 * xy))
    k_xx_mean = (k_xx - np.diag(np.diag(k_xx))).sum() / (m * (m - 1))
    k_yy_mean = (k_yy - np.diag(np.diag(k_yy))).sum() / (n * (n - 1))
    return 100 * (k_xx_mean + k_yy_mean - 2 * k_xy.mean())


def lower_median_distance(rows):
    """``torch.median(torch.pdist(rows))``: the lower of the two middle values for an even count."""
    distances = np.sort(pdist(rows))
    return distances[(len(distances) - 1) // 2]


def sets(seed=0, m=60, n=50, d=8, shift=0.3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, d)) + shift, rng.standard_normal((n, d)) * 1.2


# ---- KAD ---------------------------------------------------------------------------------------------------

def test_kad_equals_kadtks_formula_with_the_reference_median_bandwidth():
    generated, reference = sets()
    value, used = kad.kernel_audio_distance(generated, reference)
    sigma = lower_median_distance(reference)
    assert used.sigma == pytest.approx(sigma, rel=1e-12) and used.source == "reference" and not used.subsampled
    assert used.pairs == 50 * 49 // 2
    assert value == pytest.approx(kadtk_formula(reference, generated, sigma), rel=1e-10)


def test_kad_generated_bandwidth_is_kadtks_code_and_a_given_one_is_used_as_is():
    generated, reference = sets(1)
    value, used = kad.kernel_audio_distance(generated, reference, bandwidth="generated")
    # kadtk's code: calc_kernel_audio_distance(baseline, eval) takes the median of the eval (generated) set
    assert value == pytest.approx(kadtk_formula(reference, generated, lower_median_distance(generated)), rel=1e-10)
    value, used = kad.kernel_audio_distance(generated, reference, bandwidth=2.5)
    assert used.source == "given" and value == pytest.approx(kadtk_formula(reference, generated, 2.5), rel=1e-10)


def test_kad_is_near_zero_for_two_draws_of_one_distribution_and_grows_with_the_shift():
    rng = np.random.default_rng(2)
    same = kad.kernel_audio_distance(rng.standard_normal((300, 4)), rng.standard_normal((300, 4)))[0]
    shifted = kad.kernel_audio_distance(rng.standard_normal((300, 4)) + 1.0, rng.standard_normal((300, 4)))[0]
    assert abs(same) < 1.0 < shifted


def test_the_median_subsample_on_large_sets_moves_the_bandwidth_by_well_under_one_percent():
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((2100, 16)) * rng.uniform(0.5, 2.0, 16)
    exact = lower_median_distance(rows)  # 2,203,950 pairs: above MEDIAN_PAIRS, so production subsamples
    found = kad.median_pairwise_distance(rows)
    assert found.subsampled and found.pairs == kad.MEDIAN_PAIRS and found.seed == 0
    assert abs(found.sigma / exact - 1) < 2e-3
    again = kad.median_pairwise_distance(rows)
    assert again.sigma == found.sigma  # seeded: the same bandwidth every run


def test_kad_holds_no_n_by_n_matrix(monkeypatch):
    monkeypatch.setattr(kad, "BLOCK_ELEMENTS", 100_000)
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((3000, 8)), rng.standard_normal((3000, 8))
    tracemalloc.start()
    kad.kernel_audio_distance(x, y, bandwidth=3.0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 3000 * 3000 * 8 / 10  # a full kernel matrix would be 72 MB


def test_kad_refuses_too_few_rows_and_identical_rows_with_the_reason():
    with pytest.raises(ValueError, match="at least 2 embedding rows"):
        kad.kernel_audio_distance(np.ones((1, 3)), np.random.default_rng(0).standard_normal((5, 3)))
    with pytest.raises(ValueError, match="all embedding rows of that set are identical"):
        kad.kernel_audio_distance(np.random.default_rng(0).standard_normal((5, 3)), np.ones((4, 3)))


# ---- extrapolation -----------------------------------------------------------------------------------------

def test_extrapolation_recovers_intercept_and_slope_of_a_score_linear_in_one_over_n():
    fit = extrapolate(lambda idx: 2.0 + 300.0 / len(idx), 5000, unit="frames", minimum=500, steps=25, seed=3)
    assert fit["value"] == pytest.approx(2.0, rel=1e-9) and fit["slope"] == pytest.approx(300.0, rel=1e-9)
    assert fit["r2"] == pytest.approx(1.0) and [p[0] for p in fit["points"]] == \
        [int(n) for n in np.linspace(500, 5000, 25)]


def test_extrapolation_draws_with_replacement_from_a_seeded_generator_as_fadtk():
    drawn = []
    extrapolate(lambda idx: drawn.append(idx) or 0.0, 900, unit="frames", minimum=600, steps=3, seed=7)
    rng = np.random.RandomState(7)
    for idx, n in zip(drawn, (600, 750, 900)):
        assert np.array_equal(idx, rng.choice(900, size=n, replace=True))


def test_extrapolation_below_the_smallest_size_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="more than 500 generated clips"):
        extrapolate(lambda idx: 0.0, 400, unit="clips")


# ---- precision, recall, density, coverage ------------------------------------------------------------------

def prdc_by_definition(fake, real, k, slack=0.0):
    """Naeem et al. 2020, eqs. (1)-(4), with full distance matrices; ``slack``: every ball's radius times
    ``1 + slack`` (each of the four grows with the radii)."""
    real_radii = np.sort(cdist(real, real), axis=1)[:, k] * (1 + slack)
    fake_radii = np.sort(cdist(fake, fake), axis=1)[:, k] * (1 + slack)
    d = cdist(real, fake)
    inside = d < real_radii[:, None]
    return {"precision": inside.any(axis=0).mean(), "recall": (d < fake_radii[None, :]).any(axis=1).mean(),
            "density": inside.sum(axis=0).mean() / k, "coverage": (d.min(axis=1) < real_radii).mean()}


@pytest.mark.parametrize("k", [1, 5])
def test_prdc_equals_the_definitions(k, monkeypatch):
    monkeypatch.setattr(prdc, "BLOCK_ELEMENTS", 500)  # several blocks
    generated, reference = sets(5, m=70, n=90, d=6, shift=0.5)
    got = prdc.prdc(generated, reference, k=k)
    want = prdc_by_definition(generated, reference, k)
    assert got == pytest.approx(want, abs=1e-12)
    assert 0 < got["precision"] < 1 and 0 < got["coverage"] < 1


def test_prdc_needs_more_rows_than_k():
    with pytest.raises(ValueError, match="more than 5 rows per side"):
        prdc.prdc(np.zeros((5, 2)), np.ones((9, 2)))


# ---- a Fréchet distance that cannot go negative --------------------------------------------------------------

def originals_fd(a, b):
    """audioldm_eval / frechet_audio_distance / fadtk: scipy.linalg.sqrtm of the product, real part taken."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1.dot(s2))
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real)), covmean


def test_the_originals_go_negative_and_complex_on_a_small_set_where_ours_stays_exact_and_positive():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((8, 64))
    b = a + 1e-4 * rng.standard_normal((8, 64))
    theirs, covmean = originals_fd(a, b)
    assert theirs < 0 and np.iscomplexobj(covmean) and np.abs(covmean.imag).max() > 0
    ours, details = frechet.frechet_distance_checked(a, b)
    centred_a, centred_b = a - a.mean(0), b - b.mean(0)  # tr sqrt(S1 S2) = ||A B'||_* / (n - 1) for n <= d
    exact = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.sum(centred_a ** 2) / 7 + np.sum(centred_b ** 2) / 7
             - 2 * scipy.linalg.svdvals(centred_a @ centred_b.T).sum() / 7)
    assert ours >= 0 and ours == pytest.approx(exact, rel=1e-6)
    assert "8 rows for 64 dimensions" in details["warnings"][0]


def test_identical_large_sets_give_zero_not_a_negative_rounding():
    rows = np.random.default_rng(1).standard_normal((400, 16))
    value, details = frechet.frechet_distance_checked(rows, rows.copy())
    assert value >= 0 and value < 1e-10


@pytest.mark.parametrize("method, estimator", [("ledoit-wolf", "LedoitWolf"), ("oas", "OAS")])
def test_shrunk_covariances_equal_scikit_learns(method, estimator):
    import sklearn.covariance

    rows = np.random.default_rng(2).standard_normal((20, 40)) @ np.random.default_rng(3).standard_normal((40, 40))
    mean, cov, delta = covariance.estimate(rows, method)
    fitted = getattr(sklearn.covariance, estimator)().fit(rows)
    assert delta == pytest.approx(fitted.shrinkage_, rel=1e-12)
    assert np.allclose(cov, fitted.covariance_, rtol=1e-12, atol=1e-12 * np.abs(cov).max())
    value, details = frechet.frechet_distance_checked(rows, rows[::-1] + 0.1, covariance=method)
    assert value >= 0 and details["shrinkage"][0] == pytest.approx(fitted.shrinkage_)


# ---- through eval ------------------------------------------------------------------------------------------

def exact_fd(a, b):
    """FD for any set sizes: tr sqrt(S1 S2) as the nuclear norm of the centred rows' cross product."""
    ca, cb = a - a.mean(0), b - b.mean(0)
    n, m = len(a), len(b)
    trace = scipy.linalg.svdvals(ca @ cb.T).sum() / np.sqrt((n - 1) * (m - 1))
    return np.sum((a.mean(0) - b.mean(0)) ** 2) + np.sum(ca ** 2) / (n - 1) + np.sum(cb ** 2) / (m - 1) - 2 * trace


@pytest.mark.parity  # two evaluations; the fit and the draws are checked in the fast tier above
@pytest.mark.parametrize("draw", ["frames", "clips"])
def test_fad_inf_is_fadtks_procedure_by_frames_or_by_clips(draw, models_dir, recordings_dir):
    from audiofidelity.evaluate import evaluate
    from audiofidelity.metrics.options import MetricOptions

    options = MetricOptions(inf_draw=draw, inf_min=4, inf_steps=5, seed=11)
    result = evaluate(recordings_dir / "generated", recordings_dir / "reference", metrics=["fad", "fad_inf"],
                      models_dir=models_dir, progress=False, cache=False, metric_options=options)
    gen_files = [np.atleast_2d(a) for a in result.sides["generated"].per_file["vggish"]]
    reference = np.concatenate([np.atleast_2d(a) for a in result.sides["reference"].per_file["vggish"]])
    rows = np.concatenate(gen_files)
    units = len(gen_files) if draw == "clips" else len(rows)
    rng = np.random.RandomState(11)  # fadtk: np.random.choice(n, size, replace=True) at 25 sizes from 500
    sizes = [int(n) for n in np.linspace(4, units, 5)]
    scores = []
    for n in sizes:
        idx = rng.choice(units, size=n, replace=True)
        drawn = np.concatenate([gen_files[i] for i in idx]) if draw == "clips" else rows[idx]
        scores.append(exact_fd(drawn, reference))
    slope, intercept = np.polyfit(1 / np.array(sizes), scores, 1)
    report = result.report
    details = report["details"]["frechet_audio_distance_inf"]
    # draws of more rows than dimensions take the eigendecomposition path (near-singular covariances: ~1e-7 of the
    # value against this exact nuclear norm), and the fit's extrapolation to 1/n = 0 amplifies that tenfold
    assert [p[1] for p in details["points"]] == pytest.approx(scores, rel=1e-6)
    assert report["metrics"]["frechet_audio_distance_inf"] == pytest.approx(intercept, rel=1e-5)
    assert details["slope"] == pytest.approx(slope, rel=1e-5) and details["unit"] == draw and details["seed"] == 11
    assert [p[0] for p in details["points"]] == sizes


def test_eval_reports_kad_prdc_per_file_diagnostics_and_why_fad_inf_is_unavailable(models_dir, recordings_dir,
                                                                                      tmp_path):
    import csv
    import shutil

    import soundfile as sf

    gen = tmp_path / "gen"
    shutil.copytree(recordings_dir / "generated", gen)
    t = np.arange(32000) / 16000
    tone = np.sin(2 * np.pi * 300 * t)
    sf.write(gen / "z_clipped.wav", np.clip(1.5 * tone, -1, 1).astype(np.float32), 16000, subtype="PCM_16")
    sf.write(gen / "z_dc.wav", (0.2 + 0.1 * tone).astype(np.float32), 16000, subtype="PCM_16")
    sf.write(gen / "z_low.wav", (0.3 * tone[::2]).astype(np.float32), 8000, subtype="PCM_16")
    sf.write(gen / "z_quiet.wav", (0.0005 * tone).astype(np.float32), 16000, subtype="PCM_16")
    out = tmp_path / "out"
    out.mkdir()
    report, features = eval_cli(gen, recordings_dir / "reference", out, "--models-dir", str(models_dir),
                                "--metrics", "fad,kad,prdc", "--inf", "--per-file-csv", str(out / "files.csv"))
    reference = {k: np.atleast_2d(v).astype(np.float64) for k, v in features.items() if k.startswith("ref/vggish/")}
    ref_rows = np.concatenate([reference[k] for k in sorted(reference)])
    ref_means = np.stack([reference[k].mean(axis=0) for k in sorted(reference)])
    gen_rows = np.concatenate([np.atleast_2d(v) for k, v in sorted(features.items()) if k.startswith("gen/vggish/")])
    metrics = report["metrics"]
    sigma = lower_median_distance(ref_rows)
    assert metrics["kernel_audio_distance"] == pytest.approx(kadtk_formula(ref_rows, gen_rows, sigma), rel=1e-6)
    assert report["details"]["kernel_audio_distance"]["bandwidth"]["sigma"] == pytest.approx(sigma, rel=1e-6)
    # a tone's 0.96-s frames repeat (300 Hz fits 288 periods in one): some distances equal a ball's radius, where
    # strict "<" turns on the last bit of each way of computing them; those may go either way, nothing else
    low, high = (prdc_by_definition(gen_rows, ref_rows, 5, slack) for slack in (-1e-9, 1e-9))
    for key in prdc.KEYS:
        assert low[key] - 1e-12 <= metrics[key] <= high[key] + 1e-12, (key, low[key], metrics[key], high[key])
    assert metrics["frechet_audio_distance_inf"] is None and metrics["kernel_audio_distance_inf"] is None
    assert "more than 500 generated frames" in report["unavailable"]["frechet_audio_distance_inf"]
    assert report["provenance"]["metric_options"]["kad_bandwidth"] == "reference"
    per_file = report["per_file"]
    for name, entry in per_file.items():
        rows = np.atleast_2d(features[f"gen/vggish/{name}"]).astype(np.float64)
        assert entry["fad"] == pytest.approx(exact_fd(rows, ref_rows), rel=1e-6), name
        assert entry["nearest_reference_distance"] == pytest.approx(cdist(rows.mean(0)[None], ref_means).min(),
                                                                    rel=1e-9)
    flags = {name: " ".join(entry["flags"]) for name, entry in per_file.items()}
    assert flags["z_clipped.wav"].startswith("clipping:") and per_file["z_clipped.wav"]["clipped_samples"] > 1000
    assert flags["z_dc.wav"].startswith("dc_offset:") and "low_rate: recorded at 8000 Hz" in flags["z_low.wav"]
    assert flags["z_quiet.wav"].startswith("silent: RMS -69")
    # the recordings' click trains are one-sided pulses (a real mean): at most a DC flag there, nothing else
    assert not any(flags[name] and not flags[name].startswith("dc_offset") for name in per_file
                   if not name.startswith("z_"))
    with open(out / "files.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["file"] for r in rows} == set(per_file)  # every file, worst first
    assert float(rows[0]["fad"]) == max(e["fad"] for e in per_file.values())
