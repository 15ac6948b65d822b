"""``audiofidelity plot`` and the job page's pictures: each picture draws exactly the report's numbers."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from audiofidelity import cli  # noqa: E402
from audiofidelity.plots import (Step, inf_figure, layers_figure, read_steps, report_figures, steps_figure,  # noqa: E402
                                 worst_figure)

FIT = {"slope": 31.5, "r2": 0.97, "unit": "frames", "seed": 0,
       "points": [[500, 10.2], [1000, 9.1], [2000, 8.4], [4000, 8.1]]}
REPORT = {"metrics": {"frechet_audio_distance": 9.0, "frechet_audio_distance_inf": 7.7,
                      "frechet_distance_mert_layers": [5.0, 4.0, 6.5, 3.25]},
          "details": {"frechet_audio_distance_inf": FIT},
          "per_file": {f"clip_{i:02d}.wav": {"fad": float(i), "flags": ["silent: RMS -80 dBFS"] if i == 3 else []}
                       for i in range(20)}}


def steps(n: int = 4) -> list[Step]:
    return [Step(100 * (i + 1), f"val_{100 * (i + 1)}",
                 {"metrics": {"frechet_audio_distance": 10.0 - i, "kullback_leibler_divergence_softmax": 1.0 + i,
                              "frechet_distance_mert_layers": [1.0, 2.0]},
                  "bootstrap": {"frechet_audio_distance": {"low": 9.5 - i, "high": 10.5 - i}}})
            for i in range(n)][::-1]  # out of order: the picture sorts by step


def test_the_steps_picture_has_one_panel_per_scalar_metric_with_the_reports_values_and_bands():
    figure = steps_figure([*steps(), Step(None, "val_best", {"metrics": {"frechet_audio_distance": 0.0}})])
    axes = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["frechet_audio_distance", "kullback_leibler_divergence_softmax"]
    fad = axes[0].lines[0]
    assert list(fad.get_xdata()) == [100, 200, 300, 400]  # by step; the folder without a step left out
    assert list(fad.get_ydata()) == [10.0, 9.0, 8.0, 7.0]
    band = axes[0].collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(6.5) and band[:, 1].max() == pytest.approx(10.5)
    assert not axes[1].collections  # no bootstrap there: no band
    assert steps_figure([Step(None, "x", {"metrics": {"fad": 1.0}})]) is None


def test_layer_fit_and_worst_files_pictures_draw_the_reports_numbers():
    line = layers_figure(REPORT).axes[0].lines[0]
    assert list(line.get_ydata()) == REPORT["metrics"]["frechet_distance_mert_layers"]
    ax = inf_figure(REPORT, "frechet_audio_distance_inf").axes[0]
    assert np.allclose(ax.collections[0].get_offsets(), [[1 / n, s] for n, s in FIT["points"]])
    assert np.allclose(ax.lines[0].get_ydata(), [7.7, 7.7 + 31.5 / 500])  # value + slope / n, from 1/n = 0
    assert np.allclose(ax.collections[1].get_offsets(), [[0.0, 7.7]])
    worst = worst_figure(REPORT, 5).axes[0]
    assert [t.get_text() for t in worst.get_yticklabels()] == [f"clip_{i:02d}.wav" for i in (15, 16, 17, 18, 19)]
    assert [p.get_width() for p in worst.patches] == [15.0, 16.0, 17.0, 18.0, 19.0]
    assert set(report_figures(REPORT)) == {"mert_layers", "frechet_audio_distance_inf", "worst_files"}
    assert report_figures({"metrics": {"frechet_audio_distance": 1.0}}) == {}


def test_plot_writes_png_and_svg_of_a_report_and_of_eval_logs_results(tmp_path, capsys):
    report = tmp_path / "report.json"
    report.write_text(json.dumps(REPORT))
    assert cli.main(["plot", str(report), "--out", str(tmp_path / "a")]) == 0
    written = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert written == sorted(f"{n}.{f}" for n in ("mert_layers", "frechet_audio_distance_inf", "worst_files")
                             for f in ("png", "svg"))
    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "a" / "worst_files.png").shape[2] == 4
    svg = (tmp_path / "a" / "mert_layers.svg").read_bytes()
    ET.fromstring(svg)  # well-formed
    assert b"<dc:date>" not in svg  # no date: the same report gives the same bytes
    assert cli.main(["plot", str(report), "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "mert_layers.svg").read_bytes() == svg
    results = tmp_path / "logs" / "audiofidelity-results"
    results.mkdir(parents=True)
    for step in steps():
        (results / f"{step.name}.json").write_text(json.dumps({"step": step.step, "folder": step.name,
                                                                "report": step.report}))
    assert cli.main(["plot", str(tmp_path / "logs"), "--out", str(tmp_path / "c"), "--format", "svg"]) == 0
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["steps.svg"]


@pytest.mark.parametrize("content, status, message", [
    ('{"metrics": {"fad": 1.0}}', 1, "nothing to draw"),
    ("not json", 2, "not an audiofidelity report"),
    ('["a list"]', 2, "not an audiofidelity report"),
])
def test_plot_names_what_it_cannot_draw(tmp_path, capsys, content, status, message):
    (tmp_path / "r.json").write_text(content)
    assert cli.main(["plot", str(tmp_path / "r.json"), "--out", str(tmp_path / "out")]) == status
    assert message in capsys.readouterr().err
    (tmp_path / "logs" / "audiofidelity-results").mkdir(parents=True)
    (tmp_path / "logs" / "audiofidelity-results" / "val_1.json").write_text('{"step": 1}')
    assert cli.main(["plot", str(tmp_path / "logs"), "--out", str(tmp_path / "out")]) == 2
    assert "not an eval-logs result" in capsys.readouterr().err


def test_the_service_draws_a_finished_jobs_pictures(tmp_path):
    pytest.importorskip("fastapi")
    from test_server import make_client

    with make_client(tmp_path, run_jobs=False) as client:
        store = client.app.state.store
        store.add("a" * 32, {"backbone": "cnn14", "sampling_rate": 16000, "metrics": None, "limit_num": None,
                             "uploads": {"generated": [], "reference": []}}, "unpaired")
        queued = client.get("/jobs/" + "a" * 32 + "/plots")  # not finished: nothing to draw yet, and it says so
        assert queued.status_code == 409 and "it is queued" in queued.json()["error"]
        store.complete("a" * 32, {k: v for k, v in REPORT.items() if k != "per_file"})
        plots = client.get("/jobs/" + "a" * 32 + "/plots").json()["plots"]
        assert client.get("/jobs/" + "b" * 32 + "/plots").status_code == 404
    assert [p["name"] for p in plots] == ["mert_layers", "frechet_audio_distance_inf"]
    for plot in plots:
        assert ET.fromstring(plot["svg"]).tag.endswith("svg")


def test_hostile_reports_draw_nothing_or_plain_text_and_never_raise(tmp_path, capsys):
    """Strings, nulls, NaN and huge series where numbers belong; ``$`` markup (matplotlib's mathematics) and
    ``<script>`` in names: pictures are left out or drawn as plain text."""
    hostile = {"metrics": {"$\\frac{$": 1.0, "<script>alert(1)</script>": 2.0, "frechet_distance_mert_layers":
                           [1.0] * 100_000, "frechet_audio_distance_inf": "7.7", "bad": float("nan")},
               "details": {"frechet_audio_distance_inf": {"slope": None, "points": [["a", 1]]}},
               "per_file": {"$x$<b>": {"fad": 3.0, "flags": "not a list"}, "n": {"fad": None}, "m": [1, 2]}}
    figures = report_figures(hostile)
    assert set(figures) == {"worst_files"}  # layers too many, the fit malformed
    assert [t.get_text() for t in figures["worst_files"].axes[0].get_yticklabels()] == ["\\$x\\$<b>"]
    steps_fig = steps_figure([Step(1, "a", hostile), Step(2, "b", hostile)])
    titles = [ax.get_title() for ax in steps_fig.axes if ax.get_visible()]
    assert titles == ["\\$\\frac{\\$", "<script>alert(1)</script>"]
    (tmp_path / "r.json").write_text(json.dumps(hostile))
    assert cli.main(["plot", str(tmp_path / "r.json"), "--out", str(tmp_path / "out"), "--format", "svg"]) == 0
    svg = (tmp_path / "out" / "worst_files.svg").read_text()
    assert "<b>" not in svg and "&lt;b&gt;" in svg  # escaped in the SVG
    many = steps_figure([Step(i, "v", {"metrics": {f"m{k}": float(k + i) for k in range(5000)}}) for i in range(3)])
    assert sum(ax.get_visible() for ax in many.axes) == 24 and "24 of 5000 metrics" in many._suptitle.get_text()
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "val_1.json").write_text('{"step": "1", "report": []}')
    assert cli.main(["plot", str(tmp_path / "logs"), "--out", str(tmp_path / "out")]) == 2
    assert "not an eval-logs result" in capsys.readouterr().err


@pytest.mark.parity  # eval-logs with bootstrap end to end; the fast tier draws the bands from a report
def test_eval_logs_bootstrap_gives_the_steps_picture_its_bands(models_dir, recordings_dir, tmp_path, capsys):
    """A real training run: two generation folders, FAD with ``--bootstrap``; the picture's bands are the results'
    intervals. Without a reference, eval-logs takes reference-free metrics only."""
    import shutil

    names = sorted(p.name for p in (recordings_dir / "generated").iterdir())[:4]
    for step in (100, 200):
        (tmp_path / "logs" / f"val_{step}").mkdir(parents=True)
        for name in names:
            shutil.copy(recordings_dir / "generated" / name, tmp_path / "logs" / f"val_{step}" / name)
    assert cli.main(["eval-logs", str(tmp_path / "logs"), "--reference", str(recordings_dir / "reference"),
                     "--metrics", "fad", "--bootstrap", "5", "--models-dir", str(models_dir), "--quiet",
                     "--no-cache"]) == 0
    results = sorted((tmp_path / "logs" / "audiofidelity-results").glob("*.json"))
    intervals = [json.loads(p.read_text())["report"]["bootstrap"]["frechet_audio_distance"] for p in results]
    figure = steps_figure(read_steps(tmp_path / "logs"))
    band = figure.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(min(i["low"] for i in intervals))
    assert band.max() == pytest.approx(max(i["high"] for i in intervals))
    with pytest.raises(SystemExit) as exited:
        cli.main(["eval-logs", str(tmp_path / "logs"), "--metrics", "fad", "--quiet"])
    assert exited.value.code == 2 and "no reference given" in capsys.readouterr().err
