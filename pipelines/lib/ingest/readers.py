"""Read one landing file (CSV, JSON Lines, Parquet) into text columns with each row's line number.

Every input row must end up loaded or quarantined with its file and line, so the readers never drop a
row silently:
- CSV: a vectorised byte scan (numpy) finds record boundaries and counts the fields of each record,
  honouring quotes, so a record with more or fewer fields than the header is reported as `malformed_row`
  at its physical line (header = line 1) while polars parses the well-formed rest at full speed.
- JSON Lines: each line is one object (first line = 1). DuckDB's `read_json` reads clean files directly;
  a batch it cannot read exactly (a line that is not one JSON object, invalid UTF-8, blank lines) is
  parsed line by line instead, where a line that is not a JSON object is a `malformed_row`.
- Parquet: the row number (1-based) is the line.
Bytes that are not valid UTF-8 are decoded lossily to U+FFFD, which validation reports as `bad_encoding`.
A file that cannot be read at all raises `UnreadableFileError` with one sentence saying what to do.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.contract import Entity
from pipelines.contract.validate import ROW
from pipelines.lib.ingest.mapping import EntityMapping
from pipelines.lib.warehouse import quote_ident

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
_BOM = b"\xef\xbb\xbf"


class UnreadableFileError(ValueError):
    """The file cannot be read at all (corrupt, binary, empty header); nothing of it is loaded."""


@dataclass
class Malformed:
    line: int
    record_id: str | None
    value: str


@dataclass
class FileRows:
    """Text columns named as in the contract plus `__row` (the line), and the rows that could not be split."""

    frame: pl.DataFrame
    malformed: list[Malformed] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return self.frame.height + len(self.malformed)


def file_format(path: Path) -> str | None:
    return FORMATS.get(path.suffix.lower())


def read_file(path: Path, entity: Entity, mapping: EntityMapping, display: str,
              data: bytes | None = None) -> FileRows:
    """Read a landing file (`data`: its bytes if already read). OSError propagates: it may be transient."""
    fmt = file_format(path)
    if data is None:
        data = path.read_bytes()
    if fmt == "csv":
        return read_csv_bytes(data, entity, mapping, display)
    if fmt == "jsonl":
        return read_jsonl_bytes(data, entity, mapping, display)
    if fmt == "parquet":
        return read_parquet_bytes(data, entity, mapping, display)
    raise UnreadableFileError(f"{display}: unknown file type; save it as .csv, .jsonl or .parquet.")


# --- CSV -------------------------------------------------------------------------------------------
def _csv_records(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Record start/end byte offsets (end excludes the newline and a trailing CR), field counts and the
    physical line each record starts on. Newlines and commas inside double quotes do not count."""
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    commas = np.flatnonzero(arr == 44)
    quotes = arr == 34
    if quotes.any():
        inside = np.bitwise_xor.accumulate(quotes.view(np.uint8))
        boundaries = newlines[inside[newlines] == 0]
        commas = commas[inside[commas] == 0]
    else:
        boundaries = newlines
    starts = np.concatenate(([0], boundaries + 1))
    ends = np.concatenate((boundaries, [len(arr)]))
    if starts[-1] >= len(arr):  # the file ends with a newline: no record after it
        starts, ends = starts[:-1], ends[:-1]
    if len(ends):
        cr = arr[np.maximum(ends - 1, 0)] == 13
        ends = ends - (cr & (ends > starts))
    fields = np.bincount(np.searchsorted(boundaries, commas), minlength=len(starts))[: len(starts)] + 1
    lines = np.searchsorted(newlines, starts) + 1
    return starts, ends, fields, lines


def _split_one(text: str) -> list[str]:
    try:
        return next(csv.reader(io.StringIO(text)))
    except (StopIteration, csv.Error):
        return [text]


def read_csv_bytes(data: bytes, entity: Entity, mapping: EntityMapping, display: str) -> FileRows:
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    if b"\x00" in data[:65536]:
        raise UnreadableFileError(f"{display} is not a text CSV file (it contains binary data); "
                                  "export it again as UTF-8 CSV.")
    starts, ends, fields, lines = _csv_records(data)
    if len(starts) == 0 or ends[0] <= starts[0]:
        raise UnreadableFileError(f"{display} has no header line; add the column names as the first line.")
    header = _split_one(data[starts[0]:ends[0]].decode("utf-8", "replace"))
    width = len(header)
    blank = ends <= starts
    body = np.arange(len(starts)) > 0
    good = body & ~blank & (fields == width)
    bad = body & ~blank & (fields != width)
    pk_index = _header_index(header, mapping.source_name(entity.primary_key))

    malformed = []
    for k in np.flatnonzero(bad):
        text = data[starts[k]:ends[k]].decode("utf-8", "replace")
        parts = _split_one(text)
        record_id = parts[pk_index] if pk_index is not None and pk_index < len(parts) else None
        malformed.append(Malformed(int(lines[k]), record_id or None, text[:500]))

    drop = np.flatnonzero(bad | (blank & body))
    if len(drop):
        pieces, cursor = [], 0
        for k in drop:
            pieces.append(data[cursor:starts[k]])
            nxt = starts[k + 1] if k + 1 < len(starts) else len(data)
            cursor = nxt
        pieces.append(data[cursor:])
        buffer = b"".join(pieces)
    else:
        buffer = data
    n_good = int(good.sum())
    if n_good:
        try:
            frame = pl.read_csv(io.BytesIO(buffer), has_header=True, infer_schema=False, encoding="utf8-lossy",
                                quote_char='"', new_columns=[f"c{i}" for i in range(width)])
        except (pl.exceptions.PolarsError, ValueError) as exc:
            raise UnreadableFileError(f"{display} cannot be parsed as CSV ({exc}); "
                                      "export it again as comma-separated UTF-8.") from exc
        if frame.height != n_good:
            raise UnreadableFileError(f"{display}: expected {n_good} rows but the CSV parser found "
                                      f"{frame.height}; check the file's quoting and export it again.")
        frame = frame.rename({f"c{i}": h for i, h in enumerate(_unique(header))})
    else:
        frame = pl.DataFrame(schema={h: pl.String for h in _unique(header)})
    frame = frame.with_columns(pl.Series(ROW, lines[good].astype(np.int64)))
    return FileRows(mapping.apply(entity, frame, keep=(ROW,)), malformed)


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
    batch = read_jsonl_many([(data, display)], entity, mapping)
    if 0 in batch.errors:
        raise batch.errors[0]
    return FileRows(batch.frame.drop(FILE_INDEX), batch.malformed.get(0, []))


FILE_INDEX = "__f"


@dataclass
class JsonlBatch:
    """Several JSON Lines files parsed together: one frame with `__f` (index of the file in the input)."""

    frame: pl.DataFrame
    malformed: dict[int, list[Malformed]]
    rows_read: dict[int, int]
    errors: dict[int, UnreadableFileError]


def read_jsonl_many(items: list[tuple[bytes, str]], entity: Entity, mapping: EntityMapping,
                    paths: list[Path] | None = None) -> JsonlBatch:
    """Parse several JSON Lines files (bytes, display name) in one DuckDB query: small files (one per
    day) would otherwise pay the per-query and per-frame overhead thousands of times.

    With `paths` (the files the bytes came from), DuckDB's own reader is tried first (`_read_json_fast`);
    the line-by-line parse below is the careful path that also files malformed lines."""
    sources = {c.name: mapping.source_name(c.name) for c in entity.columns}
    if paths is not None:
        fast = _read_json_fast(items, paths, sources)
        if fast is not None:
            return JsonlBatch(_with_defaults(fast.frame, entity, mapping), {}, fast.rows_read, {})
    errors: dict[int, UnreadableFileError] = {}
    files, numbers, lines = [], [], []
    for i, (data, display) in enumerate(items):
        if data.startswith(_BOM):
            data = data[len(_BOM):]
        if b"\x00" in data[:65536]:
            errors[i] = UnreadableFileError(f"{display} is not a JSON Lines text file (it contains binary data); "
                                            "export it again with one JSON object per line.")
            continue
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
            one = read_jsonl_many([item], entity, mapping)
            if 0 in one.errors:
                errors[i] = one.errors[0]
                continue
            frames.append(one.frame.with_columns(pl.lit(i, dtype=pl.Int64).alias(FILE_INDEX)))
            malformed[i] = one.malformed.get(0, [])
            read[i] = one.rows_read.get(0, 0)
        return JsonlBatch(pl.concat(frames) if frames else empty, malformed, read, errors)
    pk_pattern = re.compile(r'"' + re.escape(sources[entity.primary_key]) + r'"\s*:\s*"([^"]*)"')
    malformed: dict[int, list[Malformed]] = {}
    for f, n, line in result.filter(~pl.col("ok")).select(FILE_INDEX, ROW, "bad_line").iter_rows():
        match = pk_pattern.search(line)
        malformed.setdefault(int(f), []).append(Malformed(int(n), match.group(1) if match else None, line[:500]))
    read = dict(result.group_by(FILE_INDEX).len().iter_rows())
    frame = result.filter(pl.col("ok")).drop("ok", "bad_line")
    return JsonlBatch(_with_defaults(frame, entity, mapping), malformed, read, errors)


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
    if not paths or any(b"\x00" in data[:65536] for data, _ in items):
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
                SELECT f, n, rtrim(line, chr(13)) AS line FROM lines WHERE trim(line) <> ''
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
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UnreadableFileError(f"{display} is not a readable Parquet file ({exc}); "
                                  "export it again or remove it from the landing folder.") from exc
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            columns[name] = pa.array([None if v is None else v.decode("utf-8", "replace")
                                      for v in column.to_pylist()], pa.string())
        elif pa.types.is_dictionary(column.type):
            columns[name] = column.cast(column.type.value_type)
        else:
            columns[name] = column
    frame = pl.from_arrow(pa.table(columns)) if columns else pl.DataFrame()
    frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    return FileRows(mapping.apply(entity, frame, keep=(ROW,)))
