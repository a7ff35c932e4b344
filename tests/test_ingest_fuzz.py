"""Fuzzing the CSV and JSON Lines readers: for every generated file, rows counted from the file itself
(`reconcile.physical_rows` / `physical_json_lines`) = rows loaded + quarantined + duplicates dropped.

The files carry random quotes (well-formed and stray), delimiters (incl. whitespace), line breaks (LF, CRLF, CR), blank lines,
encodings (UTF-8, with BOM, Latin-1 bytes), embedded NULs and long fields. When a file is written with
correct quoting, its rows are also known from the generator and must equal the independent count. The
readers and the row checks are called directly on bytes (no Dagster, no warehouse), derandomised, so the
2,000 files take seconds and every run sees the same ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.contract import load_contract
from pipelines.contract.validate import ROW
from pipelines.lib.ingest.checks import LINE, QUARANTINE_SCHEMA, SRC, check_batch
from pipelines.lib.ingest.mapping import EntityMapping, FileOptions
from pipelines.lib.ingest.readers import FileRows, UnreadableFileError, read_csv_bytes, read_jsonl_many

pytestmark = pytest.mark.slow

ENTITY = load_contract().entity("teams")  # four text-ish columns, no references: every row is checkable
HEADER = ENTITY.column_names
CSV_FILES, JSONL_FILES = 1400, 600

# values: plain text, specials of every kind, timestamps (so rows can pass), and occasionally long
_special = st.sampled_from(['"', '""', ",", ";", "\t", "|", "\n", "\r\n", "\r", " ", "\x00", "é", "Ω", "\ufeff"])
_piece = st.one_of(st.text(alphabet="abcXYZ019-_ ", max_size=6), _special)
_value = st.one_of(
    st.lists(_piece, max_size=5).map("".join),
    st.just("2026-01-02T03:04:05"), st.just("T-1"), st.just(""),
    st.tuples(st.lists(_piece, min_size=1, max_size=3), st.integers(400, 1000)).map(lambda t: "".join(t[0]) * t[1]),
)


def _quote(value: str, delimiter: str) -> str:
    """RFC 4180 quoting: only fields with a quote, the delimiter, a line break or edge spaces are quoted."""
    if any(c in value for c in ('"', delimiter, "\n", "\r")) or value != value.strip(" \t"):
        return '"' + value.replace('"', '""') + '"'
    return value


@st.composite
def csv_files(draw):
    delimiter = draw(st.sampled_from([",", ";", "\t", "|", "whitespace"]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    quoting = draw(st.sampled_from(["rfc", "rfc", "raw"]))  # raw: values written as they are
    header = draw(st.booleans())
    rows = draw(st.lists(st.lists(_value, min_size=4, max_size=4), max_size=25))
    if newline == "\r":  # a lone CR ends a line: values must not carry other line breaks to stay exact
        rows = [[v.replace("\n", " ") for v in row] for row in rows]
    sep = "  " if delimiter == "whitespace" else delimiter
    out_lines = [sep.join(HEADER)] if header else []
    for row in rows:
        if draw(st.integers(0, 9)) == 0:
            out_lines.append(draw(st.sampled_from(["", "  ", " \t "])).replace(delimiter, " "))
        out_lines.append(sep.join(_quote(v, delimiter) if quoting == "rfc" else v for v in row))
    text = newline.join(out_lines) + (newline if draw(st.booleans()) else "")
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]))
    data = text.encode(encoding, errors="replace")
    first_line = data.replace(b"\r", b"\n").split(b"\n", 1)[0]
    if b"\x00" in first_line:  # a NUL in the first line marks a binary file (tested apart)
        data = first_line.replace(b"\x00", b"") + data[len(first_line):]
    exact = quoting == "rfc" and delimiter != "whitespace" and "\ufeff" not in text and not (newline == "\r" and "\r" in "".join(map("".join, rows)))
    return data, delimiter, header, len(rows) if exact else None


def _accounted(rows: FileRows) -> int:
    """Rows the checks account for: loaded (every version), quarantined, exact duplicates dropped."""
    frame = rows.frame
    present = [c for c in HEADER if c in frame.columns]
    text = frame.select([pl.col(c).cast(pl.String) for c in present]
                        + [pl.lit(0, dtype=pl.Int64).alias(SRC), pl.col(ROW).cast(pl.Int64).alias(LINE)])
    for column in HEADER:
        if column not in text.columns:
            text = text.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    text = text.select([*HEADER, SRC, LINE])
    bad = pl.DataFrame([{SRC: 0, LINE: m.line, "record_id": m.record_id, "field": m.field, "reason": m.reason,
                         "value": m.value, "message": m.message} for m in rows.malformed], schema=QUARANTINE_SCHEMA)
    checked = check_batch(ENTITY, text, bad, lambda _name: pytest.fail("teams has no references"))
    return sum(checked.loaded_counts.values()) + checked.quarantine.height + sum(checked.duplicates.values())


_SETTINGS = dict(derandomize=True, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=CSV_FILES, **_SETTINGS)
@given(csv_files())
def test_every_csv_row_is_loaded_quarantined_or_a_duplicate(case):
    data, delimiter, header, expected = case
    options = FileOptions(delimiter=delimiter, header=header, names=None if header else tuple(HEADER))
    try:
        rows = read_csv_bytes(data, ENTITY, EntityMapping(file=options), "fuzz.csv")
    except UnreadableFileError as exc:
        # only a file without a header line may be refused
        assert header and "has no header line" in str(exc), str(exc)
        return
    assert rows.physical_rows is not None
    assert _accounted(rows) == rows.rows_read, "rows neither loaded, quarantined nor dropped as duplicates"
    if expected is not None:
        assert rows.rows_read == expected, "the independent count differs from the rows written"


_json_value = st.one_of(st.none(), st.integers(-5, 5), st.lists(_piece, max_size=4).map("".join),
                        st.just("2026-01-02T03:04:05"))


@st.composite
def jsonl_files(draw):
    lines, expected = [], 0
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.sampled_from(["object", "object", "object", "garbage", "blank", "array"]))
        if kind == "object":
            keys = draw(st.lists(st.sampled_from([*HEADER, "extra", "Team_ID"]), max_size=6, unique=True))
            line = json.dumps({k: draw(_json_value) for k in keys}, ensure_ascii=draw(st.booleans()))
        elif kind == "garbage":
            line = draw(st.lists(st.one_of(_piece, st.sampled_from(["{", "}", ":", '{"team_id": "x"'])),
                                 max_size=6).map("".join)).replace("\n", " ").replace("\r", " ")
        elif kind == "array":
            line = "[1, 2]"
        else:
            line = draw(st.sampled_from(["", "   ", "\t"]))
        lines.append(line)
        expected += bool(line.strip(" \t\r"))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]))
    data = text.encode(encoding, errors="replace")
    first_line = data.split(b"\n", 1)[0]
    if b"\x00" in first_line:  # a NUL in the first line marks a binary file (tested apart)
        data = first_line.replace(b"\x00", b"") + data[len(first_line):]
    return data, expected if "\ufeff" not in text and "\r" not in "".join(lines) else None, draw(st.booleans())


@settings(max_examples=JSONL_FILES, **_SETTINGS)
@given(jsonl_files())
def test_every_json_line_is_loaded_quarantined_or_a_duplicate(tmp_path_factory, case):
    data, expected, fast = case
    paths = None
    if fast:  # DuckDB's own reader first (it steps aside for anything it cannot read exactly)
        path = Path(tmp_path_factory.mktemp("f")) / "2026-01-01.jsonl"
        path.write_bytes(data)
        paths = [path]
    batch = read_jsonl_many([(data, "fuzz.jsonl")], ENTITY, EntityMapping(), paths=paths)
    assert not batch.errors, batch.errors
    rows = FileRows(batch.frame.drop("__f"), batch.malformed.get(0, []), physical_rows=batch.rows_read.get(0, 0))
    assert _accounted(rows) == rows.rows_read, "lines neither loaded, quarantined nor dropped as duplicates"
    if expected is not None:
        assert rows.rows_read == expected


def test_a_nul_in_the_first_line_marks_a_binary_file_and_elsewhere_a_bad_character():
    with pytest.raises(UnreadableFileError, match="binary data"):
        read_csv_bytes(b"team_id,\x00team_name\nT-1,x\n", ENTITY, EntityMapping(), "bin.csv")
    rows = read_csv_bytes(b"team_id,team_name,region,updated_at\nT-1,a\x00b,North,2026-01-01T00:00:00\n",
                          ENTITY, EntityMapping(), "nul.csv")
    assert rows.frame["team_name"].to_list() == ["a\ufffdb"] and _accounted(rows) == rows.rows_read == 1
