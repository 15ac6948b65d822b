"""Human-facing forms of a report: a readable table for the terminal and one CSV row per run.

The JSON report (``evaluate``) stays the source of truth; these only reformat it. The table names each
metric's direction (lower or higher is better) and its bootstrap interval when there is one; the CSV
has a fixed header (every metric key of every backbone), so rows of different runs line up. The per-file CSV
is written atomically; a run's row is appended whole (one ``os.write``), so a failure never leaves half a row.
"""
from __future__ import annotations

import csv
import datetime
import io
import json
from pathlib import Path
from typing import Sequence

from .diagnostics import WORST, worst_files
from .errors import AudioFidelityError
from .evaluate import BOOTSTRAP_METRICS, METRICS
from .outputs import append_text, write_text

CSV_COLUMNS = (["time", "generated", "reference", "backbone", "sample_rate", "mode", "generated_used",
                "reference_used", "problems"]
               + [key for spec in METRICS.values() for key in spec.keys]
               + [f"{METRICS[m].keys[0]}_{end}" for m in BOOTSTRAP_METRICS for end in ("low", "high")])


def _direction(key: str) -> str:
    for spec in METRICS.values():
        if key in spec.keys:
            return f"{spec.better} is better" if key == spec.keys[0] or spec.reference_free else "spread"
    return ""


def _number(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:.4g}" for v in value) + "]"
    return f"{value:.6g}"


def align(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells as text lines with every column but the last padded to its widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([*(cell.ljust(width) for cell, width in zip(row, widths)), row[-1]]).rstrip() for row in rows]


def format_table(report: dict) -> str:
    """The metrics as an aligned text table, with the run's mode, file counts and problems underneath."""
    intervals = report.get("bootstrap", {})
    rows = [("metric", "value", f"{int(next(iter(intervals.values()))['confidence'] * 100)}% interval"
             if intervals else "", "direction")]
    for key, value in report["metrics"].items():
        interval = intervals.get(key)
        rows.append((key, _number(value), f"[{interval['low']:.6g}, {interval['high']:.6g}]" if interval else "",
                     _direction(key) if value is not None else report["unavailable"].get(key, "")))
    lines = align(rows)
    files = report["files"]
    used = "; ".join(f"{side}: {info['used']} of {info.get('listed', info['used'])} used"
                     for side, info in files.items() if side != "pairs")
    lines.append(f"\n{report['mode']} mode ({files['pairs']} pairs); {used}; {len(report['problems'])} problem(s)")
    lines.extend(f"  {p.get('side', 'pair')}/{p['file']}: {p['reason']} ({p['action']})" for p in report["problems"])
    if report.get("per_file"):
        lines.append(f"\nworst {min(WORST, len(report['per_file']))} generated files (per-file FAD, then distance to "
                     f"the nearest reference file):")
        worst = [("file", "fad", "nearest", "flags")]
        worst += [(name, _number(entry.get("fad")), _number(entry.get("nearest_reference_distance")),
                   "; ".join(entry.get("flags", [])) or "-")
                  for name, entry in ((n, report["per_file"][n]) for n in worst_files(report["per_file"]))]
        lines.extend("  " + line for line in align(worst))
    return "\n".join(lines)


def write_per_file_csv(path: str | Path, per_file: dict[str, dict], *, option: str = "--per-file-csv") -> None:
    """Every generated file's per-file values, one row each (flags joined by ``; ``), worst first; written
    atomically (``OutputPathError`` naming ``option`` when it cannot be)."""
    columns = ["file"] + list(dict.fromkeys(key for entry in per_file.values() for key in entry))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, restval="")
    writer.writeheader()
    for name in worst_files(per_file, len(per_file)):
        entry = per_file[name]
        writer.writerow({"file": name, **{k: "; ".join(v) if isinstance(v, list) else "" if v is None else v
                                          for k, v in entry.items()}})
    write_text(path, text.getvalue(), option=option)


def _csv_header(path: Path) -> list[str] | None:
    """The header of an existing, non-empty CSV file, else None."""
    if not path.exists() or not path.stat().st_size:
        return None
    with open(path, newline="") as f:
        return next(csv.reader(f), [])


def check_csv(path: str | Path, metrics: Sequence[str], *, option: str = "--csv") -> None:
    """Before a run: an existing ``path`` must have a column for everything a row of these ``metrics`` holds (a file
    an earlier version wrote, for fewer metrics, takes rows that fit it). Raises ``AudioFidelityError`` naming the
    columns it lacks."""
    header = _csv_header(Path(path))
    if header is None:
        return
    keys = [key for m in metrics for key in METRICS[m].keys]
    needed = CSV_COLUMNS[:CSV_COLUMNS.index("problems") + 1] + keys + [f"{METRICS[m].keys[0]}_{end}" for m in metrics
                                                                       if m in BOOTSTRAP_METRICS
                                                                       for end in ("low", "high")]
    missing = [c for c in needed if c not in header]
    if missing:
        raise AudioFidelityError(f"{option} {path} has no column for {', '.join(missing[:4])}"
                                 f"{' ...' if len(missing) > 4 else ''} (written for other metrics or by another "
                                 f"version); pass another {option} file")


def append_csv(path: str | Path, report: dict, *, option: str = "--csv") -> None:
    """Append one row for this run to ``path`` (header written when the file is new; an existing file keeps its own
    columns, which ``check_csv`` checked before the run), whole or not at all.

    Raises
    ------
    AudioFidelityError
        If ``path`` exists without a column this row needs.
    OutputPathError
        If the row cannot be written (naming ``option``); the file keeps its previous rows, and no half row.
    """
    path = Path(path)
    header = _csv_header(path)
    provenance, files = report["provenance"], report["files"]
    reference = files.get("reference", {})
    row = {
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
        "generated": files["generated"]["folder"],
        "reference": reference.get("folder") or reference.get("statistics") or reference.get("probabilities") or "",
        "backbone": provenance["backbone"],
        "sample_rate": provenance["sample_rate"],
        "mode": report["mode"],
        "generated_used": files["generated"]["used"],
        "reference_used": reference.get("used", ""),
        "problems": len(report["problems"]),
    }
    for key, value in report["metrics"].items():
        row[key] = json.dumps(value) if isinstance(value, list) else "" if value is None else repr(value)
    for key, interval in report.get("bootstrap", {}).items():
        row[f"{key}_low"], row[f"{key}_high"] = repr(interval["low"]), repr(interval["high"])
    columns = header or CSV_COLUMNS
    outside = [key for key, value in row.items() if key not in columns and value != ""]
    if outside:
        raise AudioFidelityError(f"{path} has no column for {', '.join(outside[:4])}; pass another {option} file")
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, restval="", extrasaction="ignore")
    if header is None:
        writer.writeheader()
    writer.writerow(row)
    append_text(path, text.getvalue(), option=option)
