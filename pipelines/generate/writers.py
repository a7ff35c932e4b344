"""Put generated frames on disk: landing files (CSV, JSON Lines, Parquet) and the ground truth.

CSV and JSON Lines carry dates and timestamps as ISO text (`YYYY-MM-DDTHH:MM:SS`); Parquet stays typed.
Polars writes every file, so output is byte-identical for the same input.
"""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from pipelines.generate.faults import FILE, LATIN1_BYTE, MALFORMED, SENTINEL_BYTES

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"


def export_frame(frame: pl.DataFrame, fmt: str) -> pl.DataFrame:
    """The frame as the file format carries it: text dates and timestamps for CSV and JSON Lines."""
    if fmt == "parquet":
        return frame
    exprs = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime):
            exprs.append(pl.col(name).dt.strftime(TIMESTAMP_FORMAT))
        elif dtype == pl.Date:
            exprs.append(pl.col(name).dt.strftime("%Y-%m-%d"))
        else:
            exprs.append(pl.col(name))
    return frame.select(exprs)


def _fix_bytes(data: bytes, malformed: list[tuple[int, int]]) -> bytes:
    """Turn encoding sentinels into latin-1 bytes and add/drop a field on the marked CSV lines."""
    if SENTINEL_BYTES in data:
        data = data.replace(SENTINEL_BYTES, LATIN1_BYTE)
    if malformed:
        lines = data.split(b"\n")
        for line_no, how in malformed:
            text = lines[line_no - 1]
            lines[line_no - 1] = text + b",extra" if how == 1 else text[: text.rindex(b",")]
        data = b"\n".join(lines)
    return data


def write_landing(landing: Path, frame: pl.DataFrame, fmt: str) -> dict[str, int]:
    """Write every file named in the frame's `__file` column; returns rows per file (relative path)."""
    counts: dict[str, int] = {}
    for (rel,), part in frame.partition_by(FILE, maintain_order=True, as_dict=True).items():
        path = landing / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        malformed: list[tuple[int, int]] = []
        if MALFORMED in part.columns:
            marks = part.with_row_index("__i").filter(pl.col(MALFORMED) > 0)
            malformed = [(int(i) + 2, int(h)) for i, h in zip(marks["__i"], marks[MALFORMED], strict=True)]
        data = part.drop(FILE, MALFORMED, strict=False)
        if fmt == "parquet":
            data.write_parquet(path, compression="zstd", statistics=True)
        else:
            buffer = io.BytesIO()
            if fmt == "csv":
                data.write_csv(buffer, datetime_format=TIMESTAMP_FORMAT)
            else:
                data.write_ndjson(buffer)
            path.write_bytes(_fix_bytes(buffer.getvalue(), malformed))
        counts[rel] = part.height
    return counts


def write_csv(path: Path, frame: pl.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    export_frame(frame, "csv").write_csv(path)
