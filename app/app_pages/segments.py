"""Segments: the RFM grid, segment sizes and value, cohort retention, dynamic segments, drill to customers."""

import streamlit as st

from app import charts, queries
from app.ui import not_computed, page_viewer, table

viewer = page_viewer()
st.title("Segments")
grid = queries.rfm_grid(viewer)
if grid.is_empty():
    not_computed("Customer segments")
    st.stop()

left, right = st.columns([3, 2])
left.plotly_chart(charts.rfm_heatmap(grid), key="rfm_grid")
dimension = right.selectbox("Segment by", queries.SEGMENT_DIMENSIONS, key="segment_dimension",
                            format_func=lambda d: d.replace("_", " "))
summary = queries.segment_summary(viewer, dimension)
right.plotly_chart(charts.treemap(summary, "segment", "customers", "revenue_12m", "Customers per segment"),
                   key="segment_tree")
st.dataframe(summary, hide_index=True, column_config={
    "share_of_revenue": st.column_config.NumberColumn("share of revenue", format="percent"),
    "revenue_12m": st.column_config.NumberColumn("revenue 12m", format="localized"),
    "margin_12m": st.column_config.NumberColumn("margin 12m", format="localized"),
    "avg_clv": st.column_config.NumberColumn("avg CLV", format="localized")})

st.subheader("Customers in a segment")
segment = st.selectbox("Segment", [None, *summary["segment"].drop_nulls().to_list()], key="segment_pick",
                       format_func=lambda s: "choose a segment" if s is None else s)
if segment:
    picks = {dimension: segment} if dimension in ("rfm_segment", "lifecycle_stage", "value_tier") else {}
    members = queries.customers(viewer, rfm_segment=picks.get("rfm_segment"),
                                lifecycle_stage=picks.get("lifecycle_stage"), value_tier=picks.get("value_tier"))
    table(members, f"segment_{segment}")
    st.caption("Open a customer on the Customer 360 page by its customer key.")

st.subheader("Dynamic segments")
dynamic = queries.dynamic_segments(viewer)
if dynamic.is_empty():
    st.caption("No dynamic segments defined (dbt_project/segments/dynamic_segments.yml) or none computed yet.")
else:
    st.plotly_chart(charts.horizontal_bars(dynamic, "segment_name", "customers", "Customers per dynamic segment"),
                    key="dynamic")
    chosen = st.selectbox("Show members of", dynamic["segment_name"].to_list(), key="dynamic_pick")
    table(queries.dynamic_segment_members(viewer, chosen), f"dynamic_{chosen}")

if not viewer.restricted:
    st.subheader("Cohort retention")
    st.plotly_chart(charts.cohort_heatmap(queries.cohort_retention(viewer)), key="cohorts")
