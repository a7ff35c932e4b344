"""Rep performance and workload: activity, response speed to leads, overdue tasks, open deals vs team."""

import polars as pl
import streamlit as st

from app import charts, queries
from app.ui import not_computed, page_viewer, table

viewer = page_viewer()
st.title("Reps & workload")
performance = queries.rep_performance(viewer)
if performance.is_empty():
    not_computed("Rep performance")
    st.stop()
st.plotly_chart(charts.workload(performance), key="workload")
activity = queries.rep_activity(viewer)
if not activity.is_empty():
    weekly = (activity.with_columns(pl.col("activity_date").dt.truncate("1w").alias("week"))
              .group_by("week").agg(pl.col("calls").sum(), pl.col("emails").sum(), pl.col("meetings").sum())
              .sort("week"))
    st.plotly_chart(charts.grouped_bars(weekly, "week", ["calls", "emails", "meetings"], "Activity per week"),
                    key="activity")
table(performance, "rep_performance")
st.subheader("Discounts below the allowed floor")
table(queries.discount_violations(viewer), "discount_violations")
