"""Read one landing file (CSV, JSON Lines, Parquet) into text columns with each row's line number.

Every input row must end up loaded or quarantined with its file and line, so the readers never drop a
row silently:
- CSV: a vectorised byte scan (numpy) finds record boundaries and counts the fields of each record,
  honouring quotes as RFC 4180 and Python's `csv` module do (a quote opens a quoted field only at the
  start of a field; a stray quote elsewhere is data), so a record with more or fewer fields than the
  header is reported as `malformed_row` at its physical line (header = line 1) while polars parses the
  well-formed rest at full speed. A quoted line break is accepted only inside a record of the header's
  width; a quote that would swallow later lines costs only its own line.
- JSON Lines: each line is one object (first line = 1). DuckDB's `read_json` reads clean files directly;
  a batch it cannot read exactly (a line that is not one JSON object, invalid UTF-8, blank lines) is
  parsed line by line instead, where a line that is not a JSON object is a `malformed_row`.
- Parquet: the row number (1-based) is the line; nested values (lists, structs) become JSON text.
Bytes that are not valid UTF-8 are decoded lossily to U+FFFD, which validation reports as `bad_encoding`;
so is a NUL byte outside the first line (one in the first line means a binary file).
Rows read are counted from the file itself (`pipelines.lib.ingest.reconcile.physical_rows`), not by
the parser, so a parser that lost rows fails the reconciliation instead of passing it.
A file that cannot be read at all raises `UnreadableFileError` with one sentence saying what to do.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import string
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import yaml

from pipelines.contract import Entity
from pipelines.contract.validate import ROW, to_text
from pipelines.lib.ingest.mapping import EntityMapping, is_sidecar, sidecar_path
from pipelines.lib.ingest.reconcile import (
    blank_lines,
    line_spans,
    normalise_line_breaks,
    physical_json_lines,
    physical_rows,
)
from pipelines.lib.ingest.rows import FileRows, Malformed, UnreadableFileError
from pipelines.lib.ingest.transform import apply_mapping
from pipelines.lib.warehouse import quote_ident

__all__ = ["FILE_INDEX", "FORMATS", "FileRows", "JsonlBatch", "Malformed", "UnreadableFileError", "file_format",
           "read_csv_bytes", "read_file", "read_jsonl_bytes", "read_jsonl_many", "read_parquet_bytes",
           "read_xlsx_bytes"]

#: Suffix -> reader. `.txt` and `.tsv` are delimited text (`.tsv`: tab unless the mapping says otherwise).
FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
           ".parquet": "parquet", ".xlsx": "xlsx"}
_BOM = b"\xef\xbb\xbf"


def file_format(path: Path, mapping: EntityMapping | None = None) -> str | None:
    """The reader of a file: the mapping's `file.format`, else by suffix; a file of another suffix is
    read as delimited text when its mapping (given, or its sidecar) has a `file` section. Sidecar
    mapping files themselves are never data."""
    if is_sidecar(path):
        return None
    if mapping is not None and mapping.file is not None and mapping.file.format:
        return mapping.file.format
    known = FORMATS.get(path.suffix.lower())
    if known or (mapping is not None and mapping.file is None):
        return known
    if mapping is not None:
        return "csv"
    sidecar = sidecar_path(path)
    if sidecar is None:
        return None
    try:
        body = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return "csv"  # read it, so the sidecar's problem is reported with the file
    section = next(iter(body.values()), None) if isinstance(body, dict) and len(body) == 1 and "file" not in body \
        else body
    options = section.get("file") if isinstance(section, dict) else None
    if not isinstance(options, dict):
        return None
    return options.get("format") if options.get("format") in ("csv", "jsonl", "parquet", "xlsx") else "csv"


def read_file(path: Path, entity: Entity, mapping: EntityMapping, display: str,
              data: bytes | None = None) -> FileRows:
    """Read a landing file (`data`: its bytes if already read) with its entity mapping: any suffix the
    mapping's `file` section describes. OSError propagates: it may be transient."""
    fmt = file_format(path, mapping)
    if data is None:
        data = path.read_bytes()
    options = mapping.file_options
    if fmt in ("csv", "jsonl") and codecs.lookup(options.encoding).name not in ("utf-8", "utf-8-sig"):
        data = data.decode(options.encoding, errors="replace").encode("utf-8")
    if fmt == "csv":
        if options.delimiter is None and path.suffix.lower() == ".tsv":
            mapping = replace(mapping, file=replace(options, delimiter="\t"))
        return read_csv_bytes(data, entity, mapping, display)
    if fmt == "jsonl":
        return read_jsonl_bytes(data, entity, mapping, display)
    if fmt == "parquet":
        return read_parquet_bytes(data, entity, mapping, display)
    if fmt == "xlsx":
        return read_xlsx_bytes(data, entity, mapping, display)
    raise UnreadableFileError(f"{display}: unknown file type; save it as {', '.join(sorted(FORMATS))}, or describe "
                              "it in a `file:` section of its mapping.")


def _finish(entity: Entity, mapping: EntityMapping, frame: pl.DataFrame, display: str,
            malformed: list[Malformed], physical: int | None) -> FileRows:
    """The mapping applied to a file's frame (its headers, `__row`): the rows as the contract names them."""
    mapped = apply_mapping(entity, mapping, frame, display)
    faults = sorted(malformed + mapped.faults, key=lambda m: m.line)
    return FileRows(mapped.frame, faults, physical_rows=physical, collapsed=mapped.collapsed,
                    warnings=mapped.warnings)


# --- CSV -------------------------------------------------------------------------------------------
_QUOTE, _LF, _CR = 34, 10, 13


def _quoted(arr: np.ndarray, delim: int) -> tuple[np.ndarray | None, np.ndarray]:
    """Per byte, 1 inside a quoted field, else 0 (None: the data has no quotes), and the positions of
    the quotes that are not plain RFC 4180 quoting (their records are split by Python's `csv` module).

    Quotes follow RFC 4180 as Python's `csv` module reads them: a quote opens a quoted field only at the
    start of a field; inside one, `""` is a quote and a single `"` closes it (text after a closing quote
    belongs to the field); any other quote is data. The fast path toggles on every quote and checks each
    toggle (opening ones at a field start, closing ones before a delimiter, a line break, a quote or the
    end); each stray opening quote found is taken back (a flip of the state after it) and the check goes
    on from there. Many stray quotes: `_walk_quotes` decides quote by quote."""
    quotes = np.flatnonzero(arr == _QUOTE)
    if not len(quotes):
        return None, quotes
    n = len(arr)
    toggles = np.zeros(n, dtype=np.uint8)
    toggles[quotes] = 1
    inside = np.bitwise_xor.accumulate(toggles)
    before = np.where(quotes > 0, arr[np.maximum(quotes - 1, 0)], _LF)
    after = np.where(quotes < n - 1, arr[np.minimum(quotes + 1, n - 1)], _LF)
    at_field_start = (before == delim) | (before == _LF) | (before == _CR) | (quotes == 0)
    closes_field = (after == delim) | (after == _LF) | (after == _CR) | (after == _QUOTE)
    follows_quote = np.concatenate(([False], quotes[1:] == quotes[:-1] + 1))
    literal = np.zeros(len(quotes), dtype=bool)
    irregular: list[int] = []
    start = 0
    # few quotes: walking them one by one is cheaper than re-checking the rest after each stray one
    for _ in range(_MAX_STRAY_QUOTES if len(quotes) > _WALK_BELOW else 1):
        opening = inside[quotes[start:]] == 1
        # an opening right after a quote continues a quoted field ("" is a quote) only if that quote closed it
        escape = follows_quote[start:] & (inside[np.maximum(quotes[start:] - 1, 0)] == 0)
        if start == 0:
            escape[0] = False
        escape &= ~literal[np.maximum(np.arange(start, len(quotes)) - 1, 0)]
        legal = np.where(opening, at_field_start[start:] | escape, closes_field[start:])
        bad = np.flatnonzero(~legal)
        if not len(bad):
            return inside, np.array(irregular, dtype=np.int64)
        if len(quotes) <= _WALK_BELOW:
            break
        j = start + int(bad[0])
        irregular.append(int(quotes[j]))
        if opening[bad[0]]:   # a stray quote: data, so the state after it flips back
            literal[j] = True
            inside[quotes[j]:] ^= 1
        start = j + 1         # (a closing quote followed by text stays a closing quote)
        if start >= len(quotes):
            return inside, np.array(irregular, dtype=np.int64)
    effective, irregular = _walk_quotes(arr, quotes.tolist(), delim)
    toggles[:] = 0
    toggles[effective] = 1
    return np.bitwise_xor.accumulate(toggles), np.array(irregular, dtype=np.int64)


_MAX_STRAY_QUOTES = 64
_WALK_BELOW = 4096


def _walk_quotes(arr: np.ndarray, quotes: list[int], delim: int) -> tuple[list[int], list[int]]:
    """The rule of `_quoted`, quote by quote: the quotes that open or close a quoted field, and the
    irregular ones (stray quotes, closing quotes followed by other text)."""
    effective, irregular, inside, i = [], [], False, 0
    starts = (delim, _LF, _CR)
    ends = (delim, _LF, _CR)
    n = len(arr)
    while i < len(quotes):
        p = quotes[i]
        if not inside:
            if p == 0 or arr[p - 1] in starts:
                effective.append(p)
                inside = True
            else:
                irregular.append(p)
            i += 1
        elif i + 1 < len(quotes) and quotes[i + 1] == p + 1:  # "" inside a quoted field: a quote
            i += 2
        else:
            effective.append(p)
            inside = False
            if p + 1 < n and arr[p + 1] not in ends:
                irregular.append(p)
            i += 1
    return effective, irregular


@dataclass
class _Records:
    """Records of a delimited file: byte spans (end without the line break and a trailing CR), field
    counts, first and last physical line, and flags for lines cut off (a quote that never closed or a
    quoted line break in a record of the wrong width) and for records the careful quote walk touched."""

    starts: np.ndarray
    ends: np.ndarray
    fields: np.ndarray
    lines: np.ndarray
    last_lines: np.ndarray
    cut: np.ndarray
    careful: np.ndarray


def _csv_records(data: bytes, delim: int = 44, width: int | None = None) -> _Records:
    """Split `data` into records. A quoted field may carry a line break only within a record that has
    the header's number of fields (`width`; the first record's when None); otherwise the record is cut
    back to its first line, which is filed as malformed, and reading resumes on the next line, so a
    stray quote costs at most its own line and never the rest of the file."""
    arr = np.frombuffer(data, dtype=np.uint8)
    all_newlines = np.flatnonzero(arr == _LF)
    parts: list[tuple[np.ndarray, ...]] = []
    offset = 0
    while offset < len(arr) or not parts:
        seg = arr[offset:]
        inside, irregular = _quoted(seg, delim)
        newlines = all_newlines if offset == 0 else all_newlines[all_newlines >= offset] - offset
        delims = np.flatnonzero(seg == delim)
        base = len(all_newlines) - len(newlines)  # line breaks before the segment
        if inside is not None:
            at = np.flatnonzero(inside[newlines] == 0)  # the line breaks that end a record
            delims = delims[inside[delims] == 0]
        else:
            at = np.arange(len(newlines))
        boundaries = newlines[at]
        starts = np.concatenate(([0], boundaries + 1))
        raw_ends = np.concatenate((boundaries, [len(seg)]))
        first = np.concatenate(([base + 1], base + at + 2))   # physical line numbers (1-based)
        last = np.concatenate((base + at + 1, [base + len(newlines) + 1]))
        if starts[-1] >= len(seg):
            starts, raw_ends, first, last = starts[:-1], raw_ends[:-1], first[:-1], last[:-1]
        if not len(starts):
            break
        fields = np.diff(np.searchsorted(delims, raw_ends), prepend=0) + 1
        if width is None:
            width = int(fields[0])
        unclosed = np.zeros(len(starts), dtype=bool)
        if inside is not None and inside[-1] == 1:
            unclosed[-1] = True  # a quoted field still open at the end of the file
        wrong = ((last > first) & (fields != width)) | unclosed
        hit = np.flatnonzero(wrong)
        with_quotes = np.zeros(len(starts), dtype=bool)
        if len(irregular):
            with_quotes[np.minimum(np.searchsorted(boundaries, irregular), len(starts) - 1)] = True
        stop = int(hit[0]) if len(hit) else len(starts)
        parts.append((starts[:stop] + offset, raw_ends[:stop] + offset, fields[:stop], first[:stop],
                      last[:stop], np.zeros(stop, dtype=bool), with_quotes[:stop]))
        if not len(hit):
            break
        # the record at `stop` is cut back to its first physical line
        line_start = int(starts[stop]) + offset
        line_end = int(all_newlines[first[stop] - 1]) if first[stop] - 1 < len(all_newlines) else len(arr)
        line = first[stop:stop + 1]
        parts.append((np.array([line_start]), np.array([line_end]), np.array([0]), line, line,
                      np.array([True]), np.array([True])))
        offset = line_end + 1
    starts, ends, fields, lines, last_lines, cut, careful_rows = (
        np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, dtype=np.int64) for i in range(7))
    if len(ends):
        cr = arr[np.maximum(ends - 1, 0)] == _CR
        ends = ends - (cr & (ends > starts))
    return _Records(starts, ends, fields, lines, last_lines, cut.astype(bool), careful_rows.astype(bool))


def _split_one(text: str, delimiter: str = ",") -> list[str]:
    try:
        return next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except (StopIteration, csv.Error):
        return [text]


def _as_text_bytes(data: bytes, display: str, what: str) -> bytes:
    """UTF-8 bytes without BOM; a NUL byte in the first line means a binary file (unreadable), elsewhere
    it is an invalid character of its row (U+FFFD, reported as `bad_encoding`)."""
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    if b"\x00" in data:
        first_line = data.split(b"\n", 1)[0]
        if b"\x00" in first_line:
            raise UnreadableFileError(f"{display} is not a {what} (it contains binary data); "
                                      "export it again as UTF-8 text.")
        data = data.replace(b"\x00", "\ufffd".encode())
    return data


def read_csv_bytes(data: bytes, entity: Entity, mapping: EntityMapping, display: str) -> FileRows:
    """Read delimited text (the mapping's `file` options: delimiter, header, names)."""
    options = mapping.file_options
    data = _as_text_bytes(normalise_line_breaks(data), display, "text CSV file")
    if options.delimiter == "whitespace":
        return _read_whitespace(data, entity, mapping, display)
    delimiter = options.delimiter or ","
    delim = ord(delimiter)
    names = options.names
    records = _csv_records(data, delim, len(names) if names else None)
    n = len(records.starts)
    if options.header:
        if n == 0 or blank_lines(data, records.starts[:1], records.ends[:1], delimiter)[0]:
            raise UnreadableFileError(f"{display} has no header line; add the column names as the first line.")
        header = _split_one(data[records.starts[0]:records.ends[0]].decode("utf-8", "replace"), delimiter)
        body = np.arange(n) > 0
    else:
        header = list(names)
        body = np.ones(n, dtype=bool)
    width = len(header)
    blank = blank_lines(data, records.starts, records.ends, delimiter) & ~records.cut
    good = body & ~blank & (records.fields == width) & ~records.cut
    bad = body & ~blank & ~good
    pk_index = _header_index(header, mapping.source_name(entity.primary_key))

    malformed = []
    for k in np.flatnonzero(bad):
        text = data[records.starts[k]:records.ends[k]].decode("utf-8", "replace")
        parts = _split_one(text, delimiter)
        record_id = parts[pk_index] if pk_index is not None and pk_index < len(parts) else None
        malformed.append(Malformed(int(records.lines[k]), record_id or None, text[:500]))

    # records the careful quote walk touched are split by Python's csv module, the rest by polars
    by_python = good & records.careful
    fast = good & ~by_python
    columns = [f"c{i}" for i in range(width)]
    frames = [_polars_records(data, records, fast, ~fast, columns, delimiter, display)]
    slow_rows, slow_lines = [], []
    for k in np.flatnonzero(by_python):
        parts = _split_one(data[records.starts[k]:records.ends[k]].decode("utf-8", "replace"), delimiter)
        if len(parts) == width:
            slow_rows.append(parts)
            slow_lines.append(int(records.lines[k]))
        else:
            malformed.append(Malformed(int(records.lines[k]), None, data[records.starts[k]:records.ends[k]]
                                       .decode("utf-8", "replace")[:500]))
    if slow_rows:
        frames.append(pl.DataFrame(slow_rows, schema={c: pl.String for c in columns}, orient="row")
                      .with_columns(pl.Series(ROW, slow_lines, dtype=pl.Int64)))
    frame = pl.concat(frames).sort(ROW) if len(frames) > 1 else frames[0]
    frame = frame.rename({f"c{i}": h for i, h in enumerate(_unique(header))})
    multi = (records.last_lines > records.lines) & (good | ~body)
    continued = [(int(a), int(b - a + 1)) for a, b in zip(records.lines[multi], records.last_lines[multi],
                                                          strict=True)]
    physical = physical_rows(data, options.header, continued, delimiter, width)
    return _finish(entity, mapping, frame, display, malformed, physical)


def _polars_records(data: bytes, records: _Records, keep: np.ndarray, drop: np.ndarray, columns: list[str],
                    delimiter: str, display: str) -> pl.DataFrame:
    """The `keep` records parsed by polars (all text), with `__row`; `drop` records are cut out first."""
    n_keep = int(keep.sum())
    if not n_keep:
        return pl.DataFrame(schema={**{c: pl.String for c in columns}, ROW: pl.Int64})
    dropped = np.flatnonzero(drop)
    if len(dropped):
        pieces, cursor = [], 0
        for k in dropped:
            pieces.append(data[cursor:records.starts[k]])
            cursor = records.starts[k + 1] if k + 1 < len(records.starts) else len(data)
        pieces.append(data[cursor:])
        buffer = b"".join(pieces)
    else:
        buffer = data
    try:
        frame = pl.read_csv(io.BytesIO(buffer), has_header=False, infer_schema=False, encoding="utf8-lossy",
                            quote_char='"', separator=delimiter, new_columns=columns)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise UnreadableFileError(f"{display} cannot be parsed as delimited text ({exc}); "
                                  "export it again as UTF-8 CSV.") from exc
    if frame.height != n_keep:
        raise UnreadableFileError(f"{display}: expected {n_keep} rows but the CSV parser found "
                                  f"{frame.height}; check the file's quoting and export it again.")
    return frame.with_columns(pl.Series(ROW, records.lines[keep].astype(np.int64)))


_WHITESPACE_FIELD = re.compile(r'"((?:[^"]|"")*)"(?=\s|$)|(\S+)')


def _read_whitespace(data: bytes, entity: Entity, mapping: EntityMapping, display: str) -> FileRows:
    """Fields separated by runs of spaces and tabs (`delimiter: whitespace`), one record per line; a
    field with spaces is written in double quotes."""
    options = mapping.file_options
    starts, ends = line_spans(data)
    blank = blank_lines(data, starts, ends)
    lines = [(k + 1, data[s:e].decode("utf-8", "replace").rstrip("\r"))
             for k, (s, e, b) in enumerate(zip(starts.tolist(), ends.tolist(), blank.tolist(), strict=True))
             if not b]
    if options.header:
        if not lines or lines[0][0] != 1:
            raise UnreadableFileError(f"{display} has no header line; add the column names as the first line.")
        header, lines = _whitespace_fields(lines[0][1]), lines[1:]
    else:
        header = list(options.names)
    width = len(header)
    pk_index = _header_index(header, mapping.source_name(entity.primary_key))
    rows, numbers, malformed = [], [], []
    for number, text in lines:
        parts = _whitespace_fields(text)
        if len(parts) == width:
            rows.append(parts)
            numbers.append(number)
        else:
            record_id = parts[pk_index] if pk_index is not None and pk_index < len(parts) else None
            malformed.append(Malformed(number, record_id, text[:500]))
    names = _unique(header)
    frame = pl.DataFrame(rows, schema={h: pl.String for h in names}, orient="row") if rows else \
        pl.DataFrame(schema={h: pl.String for h in names})
    frame = frame.with_columns(pl.Series(ROW, numbers, dtype=pl.Int64))
    physical = physical_rows(data, options.header)
    return _finish(entity, mapping, frame, display, malformed, physical)


def _whitespace_fields(text: str) -> list[str]:
    out = []
    for match in _WHITESPACE_FIELD.finditer(text):
        quoted, bare = match.groups()
        out.append(quoted.replace('""', '"') if quoted is not None else bare)
    return out


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        name = name.strip()
        if name in seen:
            seen[name] += 1
            out.append(f"{name}__dup{seen[name]}")
        else:
            seen[name] = 0
            out.append(name)
    return out


def _header_index(header: list[str], name: str) -> int | None:
    stripped = [h.strip() for h in header]
    return stripped.index(name) if name in stripped else None


# --- JSON Lines ------------------------------------------------------------------------------------
_local = threading.local()


def _json_parser() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB per thread for parsing JSON (opening one per file costs ~40 ms)."""
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect(config={"enable_external_access": False})
    return con


def read_jsonl_bytes(data: bytes, entity: Entity, mapping: EntityMapping, display: str) -> FileRows:
    if mapping.batchable:
        batch = read_jsonl_many([(data, display)], entity, mapping)
        if 0 in batch.errors:
            raise batch.errors[0]
        return FileRows(batch.frame.drop(FILE_INDEX), batch.malformed.get(0, []),
                        physical_rows=batch.rows_read.get(0, 0))
    # derive, values, formats, collapse: the keys as the file names them, then the whole mapping
    keys = [*mapping.columns, *entity.column_names,
            *(name for template in mapping.derive.values()
              for _, name, _, _ in string.Formatter().parse(template) if name and name != "line")]
    batch = read_jsonl_many([(data, display)], entity, EntityMapping(), sources={k: k for k in dict.fromkeys(keys)},
                            pk_key=mapping.source_name(entity.primary_key))
    if 0 in batch.errors:
        raise batch.errors[0]
    return _finish(entity, mapping, batch.frame.drop(FILE_INDEX), display, batch.malformed.get(0, []),
                   batch.rows_read.get(0, 0))


FILE_INDEX = "__f"


@dataclass
class JsonlBatch:
    """Several JSON Lines files parsed together: one frame with `__f` (index of the file in the input)."""

    frame: pl.DataFrame
    malformed: dict[int, list[Malformed]]
    rows_read: dict[int, int]
    errors: dict[int, UnreadableFileError]


def read_jsonl_many(items: list[tuple[bytes, str]], entity: Entity, mapping: EntityMapping,
                    paths: list[Path] | None = None, sources: dict[str, str] | None = None,
                    pk_key: str | None = None) -> JsonlBatch:
    """Parse several JSON Lines files (bytes, display name) in one DuckDB query: small files (one per
    day) would otherwise pay the per-query and per-frame overhead thousands of times.

    With `paths` (the files the bytes came from), DuckDB's own reader is tried first (`_read_json_fast`);
    the line-by-line parse below is the careful path that also files malformed lines."""
    if sources is None:  # output column -> JSON key
        sources = {c.name: mapping.source_name(c.name) for c in entity.columns}
    pk_key = pk_key or sources[entity.primary_key]
    if paths is not None:
        fast = _read_json_fast(items, paths, sources)
        if fast is not None:
            return JsonlBatch(_with_defaults(fast.frame, entity, mapping), {}, fast.rows_read, {})
    errors: dict[int, UnreadableFileError] = {}
    physical: dict[int, int] = {}
    files, numbers, lines = [], [], []
    for i, (data, display) in enumerate(items):
        try:
            data = _as_text_bytes(data, display, "JSON Lines text file")
        except UnreadableFileError as exc:
            errors[i] = exc
            continue
        physical[i] = physical_json_lines(data)
        raw_lines = data.decode("utf-8", "replace").split("\n")
        if raw_lines and raw_lines[-1] == "":
            raw_lines.pop()
        files.append(np.full(len(raw_lines), i, dtype=np.int64))
        numbers.append(np.arange(1, len(raw_lines) + 1, dtype=np.int64))
        lines.extend(raw_lines)
    empty = pl.DataFrame(schema={FILE_INDEX: pl.Int64, ROW: pl.Int64, **{c: pl.String for c in sources}})
    if not files:
        return JsonlBatch(empty, {}, {}, errors)
    table = pa.table({"f": np.concatenate(files), "n": np.concatenate(numbers), "line": pa.array(lines, pa.string())})
    del lines
    try:
        result = _parse_json_lines(table, sources)
    except duckdb.Error as exc:
        if len(items) == 1:
            errors[0] = UnreadableFileError(f"{items[0][1]} cannot be read as JSON Lines ({exc}); "
                                            "export it again with one JSON object per line.")
            return JsonlBatch(empty, {}, {}, errors)
        # find the culprit: file by file
        frames, malformed, read = [], {}, {}
        for i, item in enumerate(items):
            if i in errors:
                continue
            one = read_jsonl_many([item], entity, mapping, sources=sources, pk_key=pk_key)
            if 0 in one.errors:
                errors[i] = one.errors[0]
                continue
            frames.append(one.frame.with_columns(pl.lit(i, dtype=pl.Int64).alias(FILE_INDEX)))
            malformed[i] = one.malformed.get(0, [])
            read[i] = one.rows_read.get(0, 0)
        return JsonlBatch(pl.concat(frames) if frames else empty, malformed, read, errors)
    pk_pattern = re.compile(r'"' + re.escape(pk_key) + r'"\s*:\s*"([^"]*)"')
    malformed: dict[int, list[Malformed]] = {}
    for f, n, line in result.filter(~pl.col("ok")).select(FILE_INDEX, ROW, "bad_line").iter_rows():
        match = pk_pattern.search(line)
        malformed.setdefault(int(f), []).append(Malformed(int(n), match.group(1) if match else None, line[:500]))
    frame = result.filter(pl.col("ok")).drop("ok", "bad_line")
    return JsonlBatch(_with_defaults(frame, entity, mapping), malformed, physical, errors)


def _with_defaults(frame: pl.DataFrame, entity: Entity, mapping: EntityMapping) -> pl.DataFrame:
    """The mapping's default values for absent or empty columns (both JSON paths end here)."""
    return mapping.apply(entity, frame, keep=(ROW, FILE_INDEX)) if mapping.defaults else frame


def _expected_rows(data: bytes) -> int:
    """Rows the careful path makes of a file without blank lines: one per line, the last may lack a newline."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _read_json_fast(items: list[tuple[bytes, str]], paths: list[Path], sources: dict[str, str]
                    ) -> JsonlBatch | None:
    """All files through DuckDB's multi-threaded `read_json` (about 6x the line-by-line parse), or None.

    The result is used only where it equals the careful path's: DuckDB raises on any line that is not
    one JSON object (malformed, not an object, invalid UTF-8, duplicate keys), and a file whose row count
    differs from its line count (blank lines) falls back too, so row k of a file is always its line k
    (rows keep file and line order: `preserve_insertion_order` is DuckDB's default)."""
    if not paths or any(b"\x00" in data for data, _ in items):
        return None
    spec = ", ".join(f"{_sql_text(src)}: 'VARCHAR'" for src in dict.fromkeys(sources.values()))
    picks = ", ".join(f"{quote_ident(src)} AS {quote_ident(name)}" for name, src in sources.items())
    index = {str(path): i for i, path in enumerate(paths)}
    try:
        frame = pl.from_arrow(_json_reader().sql(
            f"SELECT filename AS __file, {picks} FROM read_json(?, format='newline_delimited', "  # noqa: S608
            f"columns={{{spec}}}, filename=true)", params=[list(index)]).to_arrow_table())
    except duckdb.Error:
        return None
    frame = frame.with_columns(pl.col("__file").replace_strict(index, return_dtype=pl.Int64).alias(FILE_INDEX))
    read = dict(frame.group_by(FILE_INDEX).len().iter_rows())
    if any(read.get(i, 0) != _expected_rows(data) for i, (data, _) in enumerate(items)):
        return None
    read = {i: physical_json_lines(data) for i, (data, _) in enumerate(items)}
    frame = frame.select(FILE_INDEX, pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(FILE_INDEX).alias(ROW),
                         *sources)
    return JsonlBatch(frame, {}, read, {})


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _json_reader() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB per thread that may read files (the line parser's connection may not)."""
    con = getattr(_local, "reader", None)
    if con is None:
        con = _local.reader = duckdb.connect()
    return con


def _parse_json_lines(table: pa.Table, sources: dict[str, str]) -> pl.DataFrame:
    spec = json.dumps({src: "VARCHAR" for src in sources.values()})
    picks = ", ".join(f"s.{quote_ident(src)} AS {quote_ident(name)}" for name, src in sources.items())
    con = _json_parser()
    con.register("lines", table)
    try:
        return con.sql(f"""
            WITH kept AS (
                SELECT f, n, rtrim(line, chr(13)) AS line FROM lines  -- blank: spaces, tabs, CR only
                WHERE trim(line, ' ' || chr(9) || chr(13)) <> ''
            ), parsed AS (  -- one parse per line: try() gives NULL for text that is not JSON
                SELECT f, n, line, try(json_transform(line, ?)) AS s FROM kept
            ), checked AS (
                SELECT f, n, line, s, s IS NOT NULL AND starts_with(ltrim(line), '{{') AS ok FROM parsed
            )
            SELECT f AS __f, n AS {ROW}, ok, CASE WHEN NOT ok THEN line END AS bad_line, {picks}
            FROM checked
        """, params=[spec]).pl()  # noqa: S608 - identifiers come from the contract and mapping, quoted
    finally:
        con.unregister("lines")


# --- Parquet ---------------------------------------------------------------------------------------
def read_parquet_bytes(data: bytes, entity: Entity, mapping: EntityMapping, display: str) -> FileRows:
    """A Parquet file's columns as text (nested values as JSON); rows read come from the file's metadata."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        table = parquet.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UnreadableFileError(f"{display} is not a readable Parquet file ({exc}); "
                                  "export it again or remove it from the landing folder.") from exc
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        try:
            columns[name] = _arrow_text(column)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise UnreadableFileError(f"{display}: column {name!r} of type {column.type} cannot be read as "
                                      f"text ({exc}); export it as text or numbers, or drop the column.") from exc
    frame = pl.from_arrow(pa.table(columns)) if columns else pl.DataFrame()
    frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    return _finish(entity, mapping, frame, display, [], parquet.metadata.num_rows)


def _arrow_text(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """A Parquet column the validator can read: binary as (lossy) UTF-8 text, dictionaries decoded,
    nested values (lists, structs, maps) as compact JSON text, everything else as it is."""
    kind = column.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return pa.array([None if v is None else v.decode("utf-8", "replace") for v in column.to_pylist()],
                        pa.string())
    if pa.types.is_dictionary(kind):
        return _arrow_text(column.cast(kind.value_type))
    if pa.types.is_nested(kind):
        return pa.array([None if v is None else json.dumps(v, separators=(",", ":"), ensure_ascii=False,
                                                           default=str)
                         for v in column.to_pylist()], pa.string())
    text = to_text(pl.from_arrow(pa.table({"v": column})))  # fails here, not later, if it cannot be text
    return text.get_column("v").to_arrow()


# --- Excel -----------------------------------------------------------------------------------------
def read_xlsx_bytes(data: bytes, entity: Entity, mapping: EntityMapping, display: str) -> FileRows:
    """One sheet of an .xlsx workbook (`file.sheet`, else the first), streamed row by row with openpyxl in
    read-only mode. The line is the sheet's row number; an empty row is blank; a row with values beyond
    the header's columns is a `malformed_row`. Cells become text: date-times as `YYYY-MM-DDTHH:MM:SS` (a
    midnight one feeding a date column as the date), whole numbers without a decimal point, booleans as
    true/false."""
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    options = mapping.file_options
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, OSError, KeyError, ValueError) as exc:
        raise UnreadableFileError(f"{display} is not a readable .xlsx workbook ({exc}); save it again as Excel "
                                  "workbook (.xlsx) or CSV.") from exc
    try:
        if options.sheet is not None and options.sheet not in book.sheetnames:
            raise UnreadableFileError(f"{display} has no sheet {options.sheet!r} (it has {', '.join(book.sheetnames)}); "
                                      "correct `file.sheet` in the mapping.")
        sheet = book[options.sheet] if options.sheet is not None else book.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header: list[str] | None = None if options.header else list(options.names)
        body, numbers, malformed = [], [], []
        physical = 0
        for number, cells in enumerate(rows, start=1):
            values = [_cell_text(c) for c in cells]
            while values and values[-1] is None:
                values.pop()
            if header is None:
                if not values:
                    raise UnreadableFileError(f"{display} has no header row; put the column names in row 1.")
                header = [v or "" for v in values]
                continue
            if not values:
                continue
            physical += 1
            if len(values) > len(header):
                malformed.append(Malformed(number, None, " | ".join(v or "" for v in values)[:500]))
                continue
            body.append(values + [None] * (len(header) - len(values)))
            numbers.append(number)
    finally:
        book.close()
    if header is None:
        raise UnreadableFileError(f"{display} has no header row; put the column names in row 1.")
    names = _unique(header)
    frame = pl.DataFrame(body, schema={h: pl.String for h in names}, orient="row") if body else \
        pl.DataFrame(schema={h: pl.String for h in names})
    # Excel keeps dates as date-times: a midnight one feeding a date column is that date
    dated = [src for col, src in mapping.sources(entity, names).items() if entity.column(col).type == "date"]
    frame = frame.with_columns([pl.col(h).str.replace(r"T00:00:00$", "") for h in dated]
                               + [pl.Series(ROW, numbers, dtype=pl.Int64)])
    pk_index = _header_index(header, mapping.source_name(entity.primary_key))
    for bad in malformed:
        parts = bad.value.split(" | ")
        bad.record_id = parts[pk_index] or None if pk_index is not None and pk_index < len(parts) else None
    return _finish(entity, mapping, frame, display, malformed, physical)


def _cell_text(value) -> str | None:
    import datetime as dt

    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text if text.strip() else None
