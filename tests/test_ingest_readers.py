"""JSON Lines: DuckDB's fast file reader gives exactly what the careful line-by-line parse gives, or steps aside."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.contract import load_contract
from pipelines.lib.ingest.mapping import EntityMapping
from pipelines.lib.ingest.readers import _read_json_fast, read_jsonl_many

ENTITY = load_contract().entity("interactions")


def _row(i: int, **extra) -> dict:
    return {"interaction_id": f"I-{i}", "occurred_at": f"2026-01-01T00:00:{i % 60:02d}", "channel": "call",
            "direction": "outbound", "account_id": "ACC-1", "user_id": "U-1", "duration_seconds": 60 + i,
            "outcome": "completed", **extra}


CLEAN = "\n".join(json.dumps(_row(i)) for i in range(1, 40)) + "\n"
EDGE_CASES = {
    "clean": CLEAN.encode(),
    "no_final_newline": CLEAN.rstrip("\n").encode(),
    "crlf": CLEAN.replace("\n", "\r\n").encode(),
    "bom": b"\xef\xbb\xbf" + CLEAN.encode(),
    "types_and_extra_keys": (json.dumps(_row(1, duration_seconds=1.5, outcome=None, extra={"a": [1]})) + "\n"
                             + json.dumps({"interaction_id": "I-2", "Channel": "upper-case key"}) + "\n").encode(),
    "escapes": (json.dumps(_row(1, outcome='said "hi"\n\u00e9')) + "\n").encode(),
    "blank_line": (json.dumps(_row(1)) + "\n\n" + json.dumps(_row(2)) + "\n").encode(),
    "whitespace_line": (json.dumps(_row(1)) + "\n   \n" + json.dumps(_row(2)) + "\n").encode(),
    "malformed": (json.dumps(_row(1)) + '\n{"interaction_id": "I-2", \n' + json.dumps(_row(3)) + "\n").encode(),
    "not_an_object": (json.dumps(_row(1)) + "\n[1, 2]\n\"text\"\n").encode(),
    "two_objects_one_line": (json.dumps(_row(1)) + json.dumps(_row(2)) + "\n").encode(),
    "duplicate_key": b'{"interaction_id": "I-1", "interaction_id": "I-2"}\n',
    "invalid_utf8": (json.dumps(_row(1)) + '\n{"interaction_id": "I-\xff"}\n'.encode("latin-1").decode("latin-1")
                     ).encode("latin-1"),
    "empty_file": b"",
}


def _write(tmp_path: Path, cases: dict[str, bytes]) -> tuple[list[tuple[bytes, str]], list[Path]]:
    paths = []
    for name, data in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(data)
        paths.append(path)
    return [(p.read_bytes(), p.name) for p in paths], paths


def _same(fast, careful) -> None:
    assert fast.errors.keys() == careful.errors.keys()
    assert fast.rows_read == careful.rows_read
    assert {k: [(m.line, m.record_id) for m in v] for k, v in fast.malformed.items() if v} == \
        {k: [(m.line, m.record_id) for m in v] for k, v in careful.malformed.items() if v}
    order = ["__f", "__row"]
    assert fast.frame.sort(order).to_dicts() == careful.frame.sort(order).to_dicts()


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_each_case_reads_as_the_careful_parse_does(tmp_path: Path, case: str):
    items, paths = _write(tmp_path, {case: EDGE_CASES[case]})
    _same(read_jsonl_many(items, ENTITY, EntityMapping(), paths=paths), read_jsonl_many(items, ENTITY, EntityMapping()))


def test_a_batch_of_clean_files_takes_the_fast_path_with_lines_in_file_order(tmp_path: Path):
    cases = {f"2026-01-{d:02d}": CLEAN.encode() for d in range(1, 21)}
    cases["2026-01-21"] = EDGE_CASES["crlf"]
    cases["2026-01-22"] = EDGE_CASES["no_final_newline"]
    items, paths = _write(tmp_path, cases)
    fast = _read_json_fast(items, paths, {c.name: c.name for c in ENTITY.columns})
    assert fast is not None, "clean files must not fall back to the line-by-line parse"
    assert fast.frame.height == 22 * 39
    first = fast.frame.filter(pl.col("__f") == 3)
    assert first["__row"].to_list() == list(range(1, 40))
    assert first["interaction_id"].to_list() == [f"I-{i}" for i in range(1, 40)]
    assert first["duration_seconds"].to_list() == [str(60 + i) for i in range(1, 40)]
    _same(read_jsonl_many(items, ENTITY, EntityMapping(), paths=paths), read_jsonl_many(items, ENTITY, EntityMapping()))


def test_one_bad_file_in_a_batch_changes_nothing_for_the_others(tmp_path: Path):
    items, paths = _write(tmp_path, EDGE_CASES)
    assert _read_json_fast(items, paths, {c.name: c.name for c in ENTITY.columns}) is None
    _same(read_jsonl_many(items, ENTITY, EntityMapping(), paths=paths), read_jsonl_many(items, ENTITY, EntityMapping()))


def test_mapped_source_names_and_defaults_apply_on_the_fast_path(tmp_path: Path):
    rows = [{"id": f"I-{i}", "when": "2026-01-01T00:00:00", "channel": "call"} for i in range(3)]
    items, paths = _write(tmp_path, {"2026-01-01": ("\n".join(json.dumps(r) for r in rows) + "\n").encode()})
    mapping = EntityMapping(columns={"id": "interaction_id", "when": "occurred_at"}, defaults={"direction": "inbound"})
    fast = read_jsonl_many(items, ENTITY, mapping, paths=paths)
    assert fast.frame["interaction_id"].to_list() == ["I-0", "I-1", "I-2"]
    assert fast.frame["direction"].to_list() == ["inbound"] * 3
    _same(fast, read_jsonl_many(items, ENTITY, mapping))


def test_read_ahead_keeps_order_raises_where_the_reader_failed_and_stops_with_the_consumer():
    from pipelines.lib.ingest.run import read_ahead

    assert list(read_ahead(iter(range(50)))) == list(range(50))

    def failing():
        yield from range(3)
        raise OSError("file locked")

    seen = []
    with pytest.raises(OSError, match="file locked"):
        for item in read_ahead(failing()):
            seen.append(item)
    assert seen == [0, 1, 2]

    produced = []

    def counting():
        for i in range(1000):
            produced.append(i)
            yield i

    stream = read_ahead(counting(), depth=1)
    assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
    stream.close()
    assert len(produced) <= 5 + 3, "the reader must stop soon after the consumer does"


def test_order_and_repeat_shortcuts_see_rows_out_of_order_and_unsorted_repeats():
    from pipelines.lib.ingest.checks import LINE, SRC, _has_repeats, _in_source_order

    in_order = pl.DataFrame({SRC: [0, 0, 1, 1, 2], LINE: [None, None, 2, 3, 2]}, schema={SRC: pl.Int64, LINE: pl.Int64})
    assert _in_source_order(in_order)
    # a JSON Lines batch (parts 1-2) framed before the store part (0), and lines out of order in a part
    assert not _in_source_order(pl.DataFrame({SRC: [1, 2, 0], LINE: [2, 2, None]}))
    assert not _in_source_order(pl.DataFrame({SRC: [1, 1], LINE: [3, 2]}))
    assert _has_repeats(pl.Series(["a", "b", "b", "c"])) and not _has_repeats(pl.Series(["a", "b", "c"]))
    assert _has_repeats(pl.Series(["c", "a", "c"])) and not _has_repeats(pl.Series(["c", "a", "b"]))


@settings(max_examples=500, derandomize=True, deadline=None, database=None)
@given(st.text(alphabet='",;\n\r a', max_size=80), st.sampled_from([",", ";"]))
def test_quote_rule_fast_path_equals_the_quote_by_quote_walk(text: str, delimiter: str):
    """The vectorised quote check with its stray-quote repairs (used for files with many quotes) decides
    every quote as the one-by-one walk does (used for files with few)."""
    import numpy as np

    from pipelines.lib.ingest import readers

    arr = np.frombuffer(text.encode(), dtype=np.uint8)
    walked = readers._quoted(arr, ord(delimiter))
    original = readers._WALK_BELOW
    try:
        readers._WALK_BELOW = -1
        fast = readers._quoted(arr, ord(delimiter))
    finally:
        readers._WALK_BELOW = original
    if walked[0] is None:
        assert fast[0] is None
        return
    if fast[0] is not None and len(readers.np.flatnonzero(arr == 34)) and len(fast[1]) < readers._MAX_STRAY_QUOTES:
        other = arr != 34  # the state is read at delimiters and line breaks, never at a quote itself
        assert np.array_equal(fast[0][other], walked[0][other])
        assert sorted(fast[1].tolist()) == sorted(walked[1].tolist())
