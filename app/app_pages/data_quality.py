"""Data quality and pipeline freshness: the published snapshot, quarantined rows, landing files not read,
load log, model grades."""

from datetime import UTC, datetime

import streamlit as st

from app import charts, queries
from app.ui import not_computed, page_viewer, table

viewer = page_viewer()
st.title("Data quality & freshness")
info = queries.snapshot_info()
if info:
    published = info["published_at"]
    age_hours = (datetime.now(UTC).replace(tzinfo=None) - published).total_seconds() / 3600
    a, b, c = st.columns(3)
    a.metric("Snapshot published", f"{published:%Y-%m-%d %H:%M} UTC", f"{age_hours:.1f} h ago", delta_color="off", delta_arrow="off",
             border=True)
    b.metric("Data as of", f"{queries.as_of_date():%Y-%m-%d}", border=True)
    c.metric("Tables published", f"{len(info['tables'])}", border=True)

summary = queries.quarantine_summary(viewer)
st.subheader("Quarantined rows")
if summary.is_empty():
    if queries.has_table("quality.quarantine"):
        st.success("No quarantined rows.")
    else:
        not_computed("The quarantine table")
else:
    st.plotly_chart(charts.horizontal_bars(summary.with_columns(
        label=summary["entity"].cast(str) + " · " + summary["reason"].cast(str)), "label", "rows",
        "Quarantined rows by entity and reason", color="#f59e0b"), key="quarantine")
    table(queries.quarantine_rows(viewer), "quarantine")
st.subheader("Landing files not read")
ignored = queries.ignored_files(viewer)
if not ignored.is_empty():
    st.warning(f"{ignored.height} file{'s' if ignored.height > 1 else ''} in the landing folder "
               f"{'were' if ignored.height > 1 else 'was'} not read by the latest run; each row says why and "
               "what to do.")
    table(ignored, "ignored_files")
elif queries.has_table("quality.load_log"):
    st.success("The latest run read every file in the landing folder.")
else:
    not_computed("The load log")
st.subheader("Load log (latest runs)")
log = queries.load_log(viewer)
if log.is_empty():
    not_computed("The load log")
else:
    table(log, "load_log")
st.subheader("Model grades")
grades = queries.model_grades(viewer)
if grades.is_empty():
    not_computed("Model grades")
else:
    cols = st.columns(len(grades))
    for col, row in zip(cols, grades.iter_rows(named=True), strict=True):
        value = "–" if row["value"] is None else f"{row['value']:.3f}"
        baseline = "" if row["baseline"] is None else f" (baseline {row['baseline']:.3f})"
        col.metric(row["model"].replace("_", " "), f"Grade {row['grade']}", f"{row['headline_metric']} {value}{baseline}",
                   delta_color="off", delta_arrow="off", border=True, help=row["why"])
    table(grades, "model_grades")
    with st.expander("All backtest metrics of the current models"):
        table(queries.model_metrics(viewer), "model_metrics")
slow = sorted(queries.QUERY_TIMINGS.items(), key=lambda kv: kv[1], reverse=True)[:5]
if slow:
    with st.expander("Slowest portal queries in this server process"):
        st.dataframe([{"query": k, "seconds": round(v, 3)} for k, v in slow], hide_index=True)
if info:
    with st.expander("Rows per published table"):
        st.dataframe([{"table": k, "rows": v} for k, v in sorted(info["tables"].items())], hide_index=True)
