"""Churn-risk work list: customers most worth a call, ordered by revenue at risk, for their owners."""

import streamlit as st

from app import charts, queries
from app.ui import money, not_computed, page_viewer, table

viewer = page_viewer()
st.title("Churn risk")
band = st.segmented_control("Risk band", ["high", "medium", "low"], default="high", key="churn_band")
owners = queries.users_in_scope(viewer)
owner = None
if viewer.role != "sales_rep" and not owners.is_empty():
    owner = st.selectbox("Owner", [None, *owners["user_id"].to_list()], key="churn_owner",
                         format_func=lambda u: "all owners" if u is None else u)
work = queries.churn_worklist(viewer, band, owner)
if work.is_empty() and not queries.has_table(queries.C360, "churn_probability"):
    not_computed("Churn scores")
    st.stop()
a, b = st.columns(2)
a.metric("Customers on the list", f"{work.height:,}", border=True)
b.metric("Revenue at risk", money(work["revenue_at_risk"].sum() if work.height else 0), border=True)
st.plotly_chart(charts.churn_scatter(work), key="churn_scatter")
table(work, "churn_worklist", churn_probability=st.column_config.ProgressColumn("churn", min_value=0, max_value=1,
                                                                                  format="percent"))
