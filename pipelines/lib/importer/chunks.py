"""Read a file of any size a piece at a time through the ingestion readers (`read_file`).

`read_file` parses the bytes it is given, so a 1 GB export would need the whole file (and its frames) in
memory at once. Here the file is cut into record-aligned pieces of about `CHUNK_BYTES`: for delimited text
at a newline outside double quotes (a quoted field may hold newlines), with the header record put in front
of every piece; for JSON Lines at a newline; for Parquet by record batch. Each piece is read by
`read_file` and its line numbers are shifted back to lines of the original file, so every report names the
line a person finds in their editor. Formats that do not split (Excel workbooks, text in an encoding that
is not ASCII-compatible, such as UTF-16) are read whole; Excel caps a sheet at about a million rows.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.contract import Entity
from pipelines.contract.validate import ROW
from pipelines.lib.ingest.mapping import EntityMapping
from pipelines.lib.ingest.readers import FileRows, read_file

#: Bytes per piece. A piece costs about ten times its size while it is parsed and checked; 2 MiB pieces
#: were also the fastest on a 200 MB file (larger ones spend more time in allocation).
CHUNK_BYTES = 2 * 1024 * 1024
#: Rows per Parquet piece.
PARQUET_BATCH_ROWS = 200_000

_QUOTE, _NEWLINE = 34, 10


@dataclass
class Piece:
    """One piece of a file as `read_file` returns it, with lines of the original file, and the bytes
    of the file read so far (for progress)."""

    rows: FileRows
    bytes_done: int


def read_pieces(path: Path, entity: Entity, mapping: EntityMapping, display: str,
                chunk_bytes: int = CHUNK_BYTES) -> Iterator[Piece]:
    """The file's rows, piece by piece (one piece for small files), in file order."""
    kind = _kind(path, mapping)
    if kind == "delimited":
        yield from _delimited(path, entity, mapping, display, chunk_bytes, header=_has_header(mapping))
    elif kind == "lines":
        yield from _delimited(path, entity, mapping, display, chunk_bytes, header=False)
    elif kind == "parquet":
        yield from _parquet(path, entity, mapping, display)
    else:
        yield Piece(read_file(path, entity, mapping, display), path.stat().st_size)


def _kind(path: Path, mapping: EntityMapping) -> str:
    """How the file can be cut: delimited text, JSON Lines, Parquet, or not at all ("whole")."""
    suffix = path.suffix.lower()
    options = getattr(mapping, "file", None)
    fmt = getattr(options, "format", None) if options is not None else None
    encoding = (getattr(options, "encoding", None) or "utf-8") if options is not None else "utf-8"
    if not _ascii_compatible(encoding):
        return "whole"
    if fmt in ("csv", "delimited", "text") or (fmt is None and suffix in (".csv", ".tsv", ".txt")):
        return "delimited"
    if fmt == "jsonl" or (fmt is None and suffix in (".jsonl", ".ndjson", ".json")):
        return "lines"
    if fmt == "parquet" or (fmt is None and suffix == ".parquet"):
        return "parquet"
    return "whole"


def _has_header(mapping: EntityMapping) -> bool:
    options = getattr(mapping, "file", None)
    return bool(getattr(options, "header", True)) if options is not None else True


def _ascii_compatible(encoding: str) -> bool:
    """Whether newline and double quote are the single bytes 10 and 34 in this encoding."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return False
    return not name.startswith(("utf-16", "utf-32", "utf_16", "utf_32"))


def _record_end(data: bytes, quoted: bool) -> int:
    """Index just past the last newline of `data` that ends a record (outside quotes), or 0 if none.

    `data` starts at a record boundary, so the quotes before a newline are counted from its start."""
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == _NEWLINE)
    if not len(newlines):
        return 0
    if quoted:
        newlines = newlines[_outside_quotes(arr, newlines)]
        if not len(newlines):
            return 0
    return int(newlines[-1]) + 1


def _outside_quotes(arr: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Which `positions` have an even number of double quotes before them (memory: one int per quote)."""
    quotes = np.flatnonzero(arr == _QUOTE)
    return (np.searchsorted(quotes, positions) & 1) == 0


def _delimited(path: Path, entity: Entity, mapping: EntityMapping, display: str, chunk_bytes: int,
               header: bool) -> Iterator[Piece]:
    quoted = path.suffix.lower() not in (".jsonl", ".ndjson", ".json")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = b""
        carry = b""
        if header:  # the header record: up to the first newline outside quotes (it may span lines)
            while True:
                block = fh.read(1 << 16)
                carry += block
                end = _record_end_first(carry, quoted)
                if end or not block:
                    end = end or len(carry)
                    head, carry = carry[:end], carry[end:]
                    break
        head_lines = head.count(b"\n")
        next_line = head_lines + 1          # physical line of the first byte of `carry`
        done = len(head)
        first = True
        while True:
            block = fh.read(chunk_bytes)
            data = carry + block
            if block:
                end = _record_end(data, quoted)
                if not end and len(data) > 2 * chunk_bytes:
                    # no record ends outside quotes in two pieces: an unpaired quote in the data, not a
                    # field this long; cut at a line break and let the reader file the broken line
                    end = _record_end(data, False)
                if not end:                 # one record longer than a piece: read on
                    carry = data
                    continue
                body, carry = data[:end], data[end:]
            else:
                body, carry = data, b""
            done += len(body)
            if body or first:
                rows = read_file(path, entity, mapping, display, data=head + body)
                yield Piece(_shift(rows, next_line - 1 - head_lines), done if block else size)
                first = False
            next_line += body.count(b"\n")
            if not block:
                return


def _record_end_first(data: bytes, quoted: bool) -> int:
    """Index just past the first newline outside quotes (the end of the header record), or 0."""
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == _NEWLINE)
    if quoted and len(newlines):
        newlines = newlines[_outside_quotes(arr, newlines)]
    return int(newlines[0]) + 1 if len(newlines) else 0


def _shift(rows: FileRows, offset: int) -> FileRows:
    """The same rows with their line numbers moved by `offset` (lines before the piece in the file)."""
    if not offset:
        return rows
    frame = rows.frame.with_columns((pl.col(ROW) + offset).alias(ROW)) if ROW in rows.frame.columns else rows.frame
    malformed = [replace(m, line=m.line + offset) for m in rows.malformed]
    shifted = FileRows(frame, malformed)
    for name, value in vars(rows).items():  # anything else the reader reports about the piece
        if name not in ("frame", "malformed"):
            setattr(shifted, name, value)
    return shifted


def _parquet(path: Path, entity: Entity, mapping: EntityMapping, display: str) -> Iterator[Piece]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    size = path.stat().st_size
    source = pq.ParquetFile(path)
    total = max(source.metadata.num_rows, 1)
    seen = 0
    for batch in source.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_batches([batch]), buffer)
        rows = read_file(path, entity, mapping, display, data=buffer.getvalue())
        yield Piece(_shift(rows, seen), int(size * min(1.0, (seen + batch.num_rows) / total)))
        seen += batch.num_rows
    if seen == 0:
        yield Piece(read_file(path, entity, mapping, display), size)
