"""CSV and Excel downloads of whatever table a page shows (already scoped and masked by app/queries.py).

Both formats go through one function, `neutralise`, because a spreadsheet opens a CSV file just as it
opens a workbook: a text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is read as a
formula (`=HYPERLINK(...)`, `+cmd|' /C calc'!A0`) and run. Such text gets a leading single quote, the
spreadsheet's own "this is text" mark, and is otherwise left as it was; numbers stay numbers (a real
negative amount is a number column, and text that is just a number, like "-12.5", cannot run anything).

A workbook cannot hold most control characters (a bell or vertical tab pasted into a record): they become
U+FFFD there instead of failing the whole export. Both files are made only when someone clicks their
button, not on every page run (a 500-row workbook takes about 0.2 s to build).
"""

from __future__ import annotations

import io
import re
from typing import Any

import polars as pl

#: What makes a spreadsheet read a text cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def neutralise(value: Any) -> Any:
    """A cell value that no spreadsheet will evaluate: formula-like text is prefixed with a single quote."""
    if isinstance(value, (list, dict, tuple)):
        value = str(value)
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def neutralised(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every text (and nested) column passed through `neutralise`; numbers untouched."""
    exprs = []
    for name, dtype in frame.schema.items():
        if dtype == pl.String or dtype.is_nested() or dtype == pl.Categorical or dtype == pl.Object:
            column = pl.col(name) if dtype == pl.String else pl.col(name).map_elements(
                lambda v: None if v is None else str(v.to_list() if isinstance(v, pl.Series) else v),
                return_dtype=pl.String)
            exprs.append(column.map_elements(neutralise, return_dtype=pl.String).alias(name))
    frame = frame.with_columns(exprs) if exprs else frame
    return frame.rename({c: neutralise(c) for c in frame.columns if neutralise(c) != c})


def to_csv_bytes(frame: pl.DataFrame) -> bytes:
    return neutralised(frame).write_csv().encode("utf-8")


def to_excel_bytes(frame: pl.DataFrame, sheet: str = "data") -> bytes:
    """An .xlsx workbook with one sheet; every text cell is written as text, never as a formula."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def storable(value: Any) -> Any:  # a character the file format cannot hold must not fail the export
        return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value) if isinstance(value, str) else value

    workbook = Workbook(write_only=True)
    worksheet = workbook.create_sheet(title=sheet[:31] or "data")
    safe = neutralised(frame)
    worksheet.append([storable(c) for c in safe.columns])
    for row in safe.iter_rows():
        cells = []
        for value in row:
            value = storable(value)
            cell = WriteOnlyCell(worksheet, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # openpyxl would store any text starting with "=" as a formula
            cells.append(cell)
        worksheet.append(cells)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def download_buttons(frame: pl.DataFrame, name: str) -> None:
    """CSV and Excel buttons side by side under a table; each file is made when its button is clicked."""
    import streamlit as st

    if frame.is_empty():
        return
    left, right, _ = st.columns([1, 1, 6])
    left.download_button("CSV", lambda: to_csv_bytes(frame), file_name=f"{name}.csv", mime="text/csv",
                         key=f"csv_{name}", icon=":material/download:")
    right.download_button("Excel", lambda: to_excel_bytes(frame, name), file_name=f"{name}.xlsx",
                          mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                          key=f"xlsx_{name}", icon=":material/download:")
