"""A captions file for CLAP score: which caption each generated file was made from.

Two formats, told apart by content: a JSON object ``{"file or id": "caption"}`` (audioldm_eval's file-name ->
caption mappings, stable-audio-metrics' ``id2text``), or a CSV with a header naming an id column (``ID_COLUMNS``:
``ytid`` as in MusicCaps' and stable-audio-metrics' files, ``file``, ``id``, ...) and a caption column
(``CAPTION_COLUMNS``). A generated file takes the caption keyed by its full name, else by its name without the
extension (``caption_for``).

Nothing is dropped silently: an empty caption, an id given twice with different captions (both left out: which one
the file was made from is unknown), a JSON value that is not text, a CSV row without the two columns, each becomes a
``problems`` entry saying what was done. A file that is not UTF-8, not a JSON object or a CSV with those columns, or
larger than ``MAX_BYTES`` is refused whole (``CaptionsFileError``, naming it and why).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from .errors import CaptionsFileError, literal

ID_COLUMNS = ("file", "filename", "file_name", "fname", "name", "id", "ytid", "audiocap_id", "caption_id")
CAPTION_COLUMNS = ("caption", "text", "prompt", "description")
MAX_BYTES = 256 * 1024 * 1024
"""The largest captions file read (a million 200-character captions fit many times over)."""
MAX_CAPTION_CHARACTERS = 100_000
"""A longer caption is refused (the tokenizer keeps 75 tokens; a megabyte of text is not a caption)."""


@dataclass
class Captions:
    """Captions by id, and what was not usable in the file (``problems``: one dict each, ``id`` or ``line``,
    ``reason``, ``action``)."""

    path: Path
    by_id: dict[str, str]
    problems: list[dict] = field(default_factory=list)

    def id_of(self, file_name: str) -> str | None:
        """The id a generated file's caption is keyed by: its name, else its name without extension, else None."""
        return next((key for key in (file_name, PurePath(file_name).stem) if key in self.by_id), None)

    def caption_for(self, file_name: str) -> str | None:
        """The caption of a generated file (``id_of``), or None."""
        key = self.id_of(file_name)
        return None if key is None else self.by_id[key]

    def ids_used_by(self, file_names: list[str]) -> set[str]:
        """The ids that ``caption_for`` reads for these files."""
        return {key for key in map(self.id_of, file_names) if key is not None}


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CaptionsFileError(f"captions file {{path}} is not UTF-8 text (byte {exc.start}: "
                                f"{literal(repr(data[exc.start:exc.start + 4]))}); save it as UTF-8", path=path,
                                expected="UTF-8 text", actual=f"undecodable byte at offset {exc.start}") from None


class _Pairs(list):
    """A JSON object's (key, value) pairs in file order, duplicates kept (``json.loads`` would keep the last)."""


def _rows_from_json(value: object, path: Path) -> tuple[list[tuple[str, object, str]], list[dict]]:
    if not isinstance(value, _Pairs):
        raise CaptionsFileError(f"captions file {{path}} holds a JSON {literal(type(value).__name__)}, not an object "
                                f'{{{{"file or id": "caption"}}}}', path=path, expected="a JSON object",
                                actual=type(value).__name__)
    return [(key, caption, f"key {key!r}") for key, caption in value], []


def _rows_from_csv(text: str, path: Path) -> tuple[list[tuple[str, object, str]], list[dict]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        header = []
    except csv.Error as exc:
        raise CaptionsFileError(f"captions file {{path}}: not CSV ({literal(exc)})", path=path) from None
    id_column = next((header.index(c) for c in ID_COLUMNS if c in header), None)
    caption_column = next((header.index(c) for c in CAPTION_COLUMNS if c in header), None)
    if id_column is None or caption_column is None:
        raise CaptionsFileError(
            f"captions file {{path}}: neither a JSON object nor a CSV whose header names an id column "
            f"({', '.join(ID_COLUMNS)}) and a caption column ({', '.join(CAPTION_COLUMNS)}); its first line has "
            f"{literal(header[:8])}", path=path, expected="JSON object or CSV with id and caption columns",
            actual=f"header {header[:8]}")
    rows: list[tuple[str, object, str]] = []
    problems: list[dict] = []
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(id_column, caption_column):
                problems.append({"line": line, "reason": f"the row has {len(row)} column(s), the header "
                                 f"{len(header)}", "action": "ignored"})
                continue
            rows.append((row[id_column].strip(), row[caption_column], f"line {line}"))
    except csv.Error as exc:
        raise CaptionsFileError(f"captions file {{path}}: CSV error at line {reader.line_num} ({literal(exc)})",
                                path=path) from None
    return rows, problems


def read_captions(path: str | Path) -> Captions:
    """Read a captions file (see the module docstring).

    Parameters
    ----------
    path : str or Path
        A JSON object or a CSV file, UTF-8 (a byte-order mark is allowed).

    Returns
    -------
    Captions
        ``by_id`` holds every usable caption; ``problems`` names each entry left out and why.

    Raises
    ------
    CaptionsFileError
        (a ``ValueError``; ``.path``) If the file cannot be read, is too large, is not UTF-8, or is neither format.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise CaptionsFileError(f"captions file {{path}} is {size} bytes, more than the {MAX_BYTES} read",
                                    path=path, expected=f"at most {MAX_BYTES} bytes", actual=f"{size} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise CaptionsFileError(f"cannot read captions file {{path}}: {literal(exc.strerror or exc)}",
                                path=path) from None
    text = _decode(data, path)
    try:
        rows, problems = _rows_from_json(json.loads(text, object_pairs_hook=_Pairs), path)
    except json.JSONDecodeError:
        rows, problems = _rows_from_csv(text, path)
    by_id: dict[str, str] = {}
    conflicting: set[str] = set()
    for key, caption, where in rows:
        if not isinstance(caption, str):
            problems.append({"id": key, "reason": f"{where}: the caption is JSON {type(caption).__name__}, not text",
                             "action": "left out"})
        elif not key:
            problems.append({"id": key, "reason": f"{where}: the id is empty", "action": "left out"})
        elif not caption.strip():
            problems.append({"id": key, "reason": f"{where}: the caption is empty", "action": "left out"})
        elif len(caption) > MAX_CAPTION_CHARACTERS:
            problems.append({"id": key, "reason": f"{where}: the caption has {len(caption)} characters, more than "
                             f"{MAX_CAPTION_CHARACTERS}", "action": "left out"})
        elif key in conflicting:
            continue
        elif key in by_id and by_id[key] != caption:
            conflicting.add(key)
            del by_id[key]
            problems.append({"id": key, "reason": f"{where}: the id is given again with another caption",
                             "action": "left out (which caption the file was made from is unknown)"})
        else:
            by_id[key] = caption
    return Captions(path, by_id, problems)
