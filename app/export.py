"""CSV and Excel downloads of whatever table a page shows (already scoped and masked by app/queries.py)."""

from __future__ import annotations

import io

import polars as pl


def to_csv_bytes(frame: pl.DataFrame) -> bytes:
    return frame.write_csv().encode("utf-8")


def to_excel_bytes(frame: pl.DataFrame, sheet: str = "data") -> bytes:
    """An .xlsx workbook with one sheet; values that look like formulas are written as text, never run."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    worksheet = workbook.create_sheet(title=sheet[:31] or "data")
    worksheet.append(frame.columns)
    for row in frame.iter_rows():
        worksheet.append([_cell(v) for v in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _cell(value):
    # Spreadsheet formula injection: text starting with = + - @ would be evaluated by Excel.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    if isinstance(value, (list, dict, tuple)):
        return str(value)
    return value


def download_buttons(frame: pl.DataFrame, name: str) -> None:
    """CSV and Excel buttons side by side under a table."""
    import streamlit as st

    if frame.is_empty():
        return
    left, right, _ = st.columns([1, 1, 6])
    left.download_button("CSV", to_csv_bytes(frame), file_name=f"{name}.csv", mime="text/csv",
                         key=f"csv_{name}", icon=":material/download:")
    right.download_button("Excel", to_excel_bytes(frame, name), file_name=f"{name}.xlsx",
                          mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                          key=f"xlsx_{name}", icon=":material/download:")
