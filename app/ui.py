"""Small layout helpers shared by the pages: the signed-in viewer, the filter sidebar, tables with export,
and `plain`, which every record value goes through before it reaches Markdown."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl
import streamlit as st

from app import queries
from app.auth import Viewer, page_run_viewer
from app.export import download_buttons
from app.plain_text import plain  # noqa: F401 - pages call ui.plain


#: ASCII punctuation Markdown (GFM plus Streamlit's directives, emoji codes and LaTeX) can act on; CommonMark
#: lets a backslash make any of them literal.
def page_viewer(needs_snapshot: bool = True) -> Viewer:
    """The signed-in viewer as the entry script checked it in this run (one session check per run);
    stops the page with a clear note when there is nothing to show yet."""
    viewer = page_run_viewer()
    if viewer is None:
        st.warning("Please sign in.")
        st.stop()
    if needs_snapshot and queries.snapshot_id() is None:
        st.info("No analysis has been published yet: run `crm run` (or `crm up`) to build the marts, then reload.")
        st.stop()
    return viewer


def not_computed(what: str) -> None:
    st.info(f"{what} not yet computed: it appears after the next pipeline run that produces it.", icon="⏳")


def deal_filters(viewer: Viewer, key: str, with_period: bool = True) -> dict[str, Any]:
    """Sidebar filters for sales pages (options limited to what the viewer may see)."""
    options = queries.deal_filter_options(viewer)
    filters: dict[str, Any] = {}
    with st.sidebar:
        st.subheader("Filters")
        labels = {"region": "Region", "lead_source": "Lead source", "product_line": "Product line",
                  "team_id": "Team", "owner_user_id": "Owner"}
        for field, label in labels.items():
            values = options.get(field) or []
            if field in ("team_id", "owner_user_id") and len(values) <= 1:
                continue
            filters[field] = st.selectbox(label, [None, *values], format_func=lambda v: "All" if v is None else v,
                                          key=f"{key}_{field}")
        if with_period:
            as_of = queries.as_of_date()
            default_start = date(as_of.year - 1, as_of.month, 1)
            period = st.date_input("Created between", value=(default_start, as_of), key=f"{key}_period")
            if isinstance(period, tuple) and len(period) == 2:
                filters["start"], end = period
                filters["end"] = date.fromordinal(end.toordinal() + 1)
    return filters


def table(frame: pl.DataFrame, name: str, height: int | None = None, **column_config) -> None:
    """A read-only table (data rendered as text, never HTML) with CSV and Excel export."""
    if frame.is_empty():
        st.caption("No rows for this selection.")
        return
    st.dataframe(frame, hide_index=True, height=height or "auto", column_config=column_config or None)
    download_buttons(frame, name)


def money(value: float | None) -> str:
    """An amount in the reporting currency (crm.yaml): $1,234, €1,234, -£56; a code or a letter symbol
    goes after the number (1,234 CHF, 1,234 kr)."""
    if value is None:
        return "–"
    symbol, amount = queries.currency_symbol(), f"{abs(value):,.0f}"
    if symbol.isalpha():
        return f"{'-' if value < 0 else ''}{amount} {symbol}"
    return f"{'-' if value < 0 else ''}{symbol}{amount}"


def compact(value: float | None) -> str:
    """Large amounts in a few characters (3.08M, 412k) where a metric card has little room."""
    if value is None:
        return "–"
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.{2 if suffix != 'k' else 0}f}{suffix}"
    return f"{value:,.0f}"


def share(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"
