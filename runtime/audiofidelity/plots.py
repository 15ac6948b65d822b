"""Pictures of reports: metrics over training steps, MERT's per-layer FD, the FAD∞ fits, the worst files.

``audiofidelity plot`` and the service's job page draw them from reports alone (``eval --json``, the results
``eval-logs`` writes, a job's report): nothing is recomputed, so a picture shows exactly the numbers of the report
it names. Drawn with matplotlib's object API (no pyplot state: safe in the service's threads), which the ``plot``
extra installs; nothing else imports this module.
"""
from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .diagnostics import worst_files
from .errors import AudioFidelityError

FORMATS = ("png", "svg")
WORST = 12
"""Files the worst-files picture shows."""
MAX_PANELS = 24
"""The steps picture draws at most this many metrics (a report has about a dozen; it says when it left some out)."""
MAX_POINTS = 10_000
"""More values than this in one series is not a report audiofidelity wrote: the picture is not drawn (a hostile or
broken file would otherwise keep matplotlib busy for minutes)."""
INF_KEYS = ("frechet_audio_distance_inf", "kernel_audio_distance_inf", "frechet_distance_inf")
LAYERS_KEY = "frechet_distance_mert_layers"


class PlotUnavailableError(AudioFidelityError, ImportError):
    """matplotlib is not installed (the ``plot`` extra)."""


@dataclass(frozen=True)
class Step:
    """One generation folder of a training run: its step (None when its name holds no number), name and report."""

    step: int | None
    name: str
    report: Mapping[str, Any]


def _figure(width: float = 7.0, height: float = 4.0):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailableError("pictures need matplotlib: pip install 'audiofidelity[plot]'") from None
    return Figure(figsize=(width, height), layout="constrained")


LIMIT = 1e100
"""Numbers beyond this magnitude are not drawn (matplotlib cannot lay out an axis from -1e308 to 1e308)."""


def _number(value: Any) -> float | None:
    """A finite number within ``LIMIT``, else None (JSON null, a string, NaN, infinity, a 400-digit integer: nothing
    to draw)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and abs(number) <= LIMIT else None


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one (a report's section of the wrong type draws nothing)."""
    return value if isinstance(value, Mapping) else {}


def _text(value: Any, limit: int = 80) -> str:
    """A report's string as plain text in a picture: shortened, and its ``$`` escaped (matplotlib would read
    ``$...$`` as mathematics, and a malformed formula raises)."""
    text = "".join(c if c.isprintable() else "?" for c in str(value))  # control characters break the SVG
    text = text if len(text) <= limit else text[:limit // 2 - 1] + "…" + text[-(limit // 2):]
    return text.replace("$", r"\$")


def _scalars(metrics: Any) -> dict[str, float]:
    """A report's single-number metrics, spreads (``*_std``, which go with the mean beside them) left out."""
    if not isinstance(metrics, Mapping):
        return {}
    return {str(k): v for k, v in ((k, _number(v)) for k, v in metrics.items())
            if v is not None and not str(k).endswith("_std")}


def steps_figure(steps: Sequence[Step]):
    """Each scalar metric over the training steps, one panel per metric (their scales differ), the bootstrap's 95%
    interval as a band where the reports carry one; folders without a step are left out (they have no x)."""
    placed = sorted((s for s in steps if isinstance(s.step, int) and _scalars(s.report.get("metrics"))),
                    key=lambda s: s.step)  # type: ignore[arg-type, return-value]
    found = list(dict.fromkeys(k for s in placed for k in _scalars(s.report["metrics"])))
    keys = found[:MAX_PANELS]
    if not keys:
        return None
    columns = min(3, len(keys))
    rows = math.ceil(len(keys) / columns)
    figure = _figure(4.2 * columns, 2.8 * rows)
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax, key in zip(axes.flat, keys):
        points = [(s.step, _scalars(s.report["metrics"]).get(key), _mapping(s.report.get("bootstrap")).get(key))
                  for s in placed]
        points = [p for p in points if p[1] is not None]
        x = [p[0] for p in points]
        ax.plot(x, [p[1] for p in points], marker="o", markersize=3, linewidth=1.2)
        bands = [(p[0], _number(p[2].get("low")), _number(p[2].get("high"))) for p in points
                 if isinstance(p[2], Mapping)]
        bands = [b for b in bands if b[1] is not None and b[2] is not None]
        if bands:
            ax.fill_between([b[0] for b in bands], [b[1] for b in bands], [b[2] for b in bands], alpha=0.25,
                            linewidth=0, label="95% bootstrap")
            ax.legend(fontsize=7, loc="best")
        ax.set_title(_text(key), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    shown = f"{len(keys)} of {len(found)} metrics" if len(found) > len(keys) else "metrics"
    figure.suptitle(f"{shown} over {len(placed)} training steps", fontsize=10)
    return figure


def layers_figure(report: Mapping[str, Any]):
    """MERT's Fréchet distance per hidden layer (``fd_layers``), or None when the report has none."""
    values = _mapping(report.get("metrics")).get(LAYERS_KEY)
    if not isinstance(values, list) or not 0 < len(values) <= 100:
        return None
    values = [_number(v) for v in values]
    if any(v is None for v in values):
        return None
    figure = _figure(6.0, 3.5)
    ax = figure.subplots()
    ax.plot(range(len(values)), values, marker="o", linewidth=1.2)
    ax.set_xticks(range(len(values)))
    ax.set_xlabel("MERT hidden layer (0: the input to the transformer)", fontsize=8)
    ax.set_ylabel("Fréchet distance", fontsize=8)
    ax.set_title("FD per MERT layer (generated vs reference)", fontsize=10)
    ax.grid(alpha=0.3)
    return figure


def inf_figure(report: Mapping[str, Any], key: str):
    """The extrapolation behind ``key`` (FAD∞, KAD∞, FD∞): each sample size's score against 1/n, the fitted line and
    its intercept (the reported value); None when the report has no fit for it."""
    fit = _mapping(report.get("details")).get(key)
    value = _number(_mapping(report.get("metrics")).get(key))
    if not isinstance(fit, Mapping) or value is None or _number(fit.get("slope")) is None:
        return None
    points = fit.get("points")
    if not isinstance(points, list) or not 0 < len(points) <= MAX_POINTS:
        return None
    pairs = [(_number(p[0]), _number(p[1])) if isinstance(p, list) and len(p) == 2 else (None, None) for p in points]
    if any(n is None or n <= 0 or v is None for n, v in pairs):
        return None
    n = [p[0] for p in pairs]
    score = [p[1] for p in pairs]
    inverse = [1.0 / v for v in n]  # type: ignore[operator]
    figure = _figure(6.0, 3.8)
    ax = figure.subplots()
    unit = _text(fit.get("unit", "units"), 20)
    ax.scatter(inverse, score, s=12, label=f"score at n {unit} (seed {_text(fit.get('seed'), 20)})")
    line_x = [0.0, max(inverse)]
    ax.plot(line_x, [value + fit["slope"] * v for v in line_x], linewidth=1.2,
            label=f"fit: {value:.4g} + {fit['slope']:.4g} / n (r² {_number(fit.get('r2')) or float('nan'):.3f})")
    ax.scatter([0.0], [value], marker="*", s=80, zorder=3, label=f"{key} = {value:.4g} (n → ∞)")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.set_xlabel("1 / n", fontsize=8)
    ax.set_ylabel(key.removesuffix("_inf"), fontsize=8)
    ax.set_title(f"{key}: extrapolation to infinitely many {unit}", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return figure


def worst_figure(report: Mapping[str, Any], count: int = WORST):
    """The ``count`` generated files with the highest per-file FAD (``--per-file``), with their flags; None without
    per-file FAD values."""
    per_file = report.get("per_file")
    if not isinstance(per_file, Mapping):
        return None
    scored = {str(name): {"fad": _number(row.get("fad")), "flags": row.get("flags")}
              for name, row in per_file.items() if isinstance(row, Mapping) and _number(row.get("fad")) is not None}
    names = worst_files(scored, count)
    if not names:
        return None
    names = names[::-1]  # the worst at the top
    figure = _figure(7.0, 0.9 + 0.32 * len(names))
    ax = figure.subplots()
    values = [scored[n]["fad"] for n in names]
    ax.barh(range(len(names)), values, height=0.6)
    ax.set_yticks(range(len(names)), [_text(n, 40) for n in names], fontsize=7)
    for i, name in enumerate(names):
        flags = scored[name]["flags"]
        if isinstance(flags, list) and flags:
            ax.text(values[i], i, "  " + _text("; ".join(str(f).split(":")[0] for f in flags[:5]), 60), va="center",
                    fontsize=7, color="tab:red")
    ax.set_xlabel("the file's FAD against the reference Gaussian", fontsize=8)
    ax.set_title(f"{len(names)} worst of {len(per_file)} generated files (per-file FAD)", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    return figure


def report_figures(report: Mapping[str, Any], *, worst: int = WORST) -> dict:
    """Every picture one report supports, by name (``mert_layers``, ``<key>`` for each extrapolation,
    ``worst_files``)."""
    made = {"mert_layers": layers_figure(report), **{key: inf_figure(report, key) for key in INF_KEYS},
            "worst_files": worst_figure(report, worst)}
    return {name: figure for name, figure in made.items() if figure is not None}


def _write(figure, target, fmt: str) -> None:
    """``savefig`` with no date and fixed SVG element ids (matplotlib draws them at random unless salted), so the
    same report gives the same bytes."""
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "audiofidelity"}):
        figure.savefig(target, format=fmt, dpi=120, metadata={"Date": None} if fmt == "svg" else None)


def save(figures: Mapping[str, Any], out: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write each figure as ``out/<name>.<format>``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in figures.items():
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            _write(figure, path, fmt)
            written.append(path)
    return written


def svg_bytes(figure) -> bytes:
    """One figure as SVG (the service's job page)."""
    buffer = io.BytesIO()
    _write(figure, buffer, "svg")
    return buffer.getvalue()


def read_steps(log_dir: Path) -> list[Step]:
    """The reports ``eval-logs`` wrote under ``log_dir`` (``<log_dir>/audiofidelity-results/**.json``), or the
    folder of such results itself; a result file that is not one is named in a ``ValueError``."""
    from .training_logs import RESULTS_DIR

    root = log_dir / RESULTS_DIR if (log_dir / RESULTS_DIR).is_dir() else log_dir
    steps = []
    for path in sorted(p for p in root.rglob("*.json") if p.is_file()):
        try:
            record = read_report(path)
            step, report = record.get("step"), record["report"]
            if not isinstance(report, dict) or not (step is None or type(step) is int):
                raise ValueError("its 'report' is not an object or its 'step' not a whole number")
            steps.append(Step(step, Path(str(record.get("folder", path.stem))).name, report))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: not an eval-logs result ({exc})") from None
    return steps


MAX_REPORT_BYTES = 512 * 1024 * 1024
"""A report larger than this is refused before it is read (a per-file report of a million files is about 500 MB)."""


def read_report(path: Path) -> dict:
    """A JSON report (``eval --json``, an ``eval-logs`` result): ``ValueError`` for anything else, or one larger
    than ``MAX_REPORT_BYTES``."""
    if path.stat().st_size > MAX_REPORT_BYTES:
        raise ValueError(f"larger than {MAX_REPORT_BYTES // 2**20} MB")
    try:
        record = json.loads(path.read_bytes())
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    return record
