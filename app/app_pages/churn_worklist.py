"""Churn-risk work list: each owner's customers most likely to leave first, with the churn model's reasons
and the value at stake, so a rep knows whom to call and what to talk about."""

import streamlit as st

from app import charts, queries
from app.ui import money, not_computed, page_viewer, plain, table

viewer = page_viewer()
st.title("Churn risk")
if not queries.has_table(queries.CHURN):
    not_computed("Churn scores")
    st.stop()
left, mid, right = st.columns([2, 2, 3])
band = left.segmented_control("Risk band", ["high", "medium", "low"], default="high", key="churn_band",
                              help="Bands of the churn model's probability; clear the selection to see all bands.")
order_by = mid.segmented_control("Order by", list(queries.WORKLIST_ORDER), default="risk", key="churn_order",
                                 format_func={"risk": "churn probability", "value_at_risk": "value at risk"}.get)
owners = queries.users_in_scope(viewer)
owner = None
if viewer.role != "sales_rep" and not owners.is_empty():
    owner = right.selectbox("Owner", [None, *owners["user_id"].to_list()], key="churn_owner",
                            format_func=lambda u: "all owners" if u is None else u)
work = queries.churn_worklist(viewer, band, owner, order_by or "risk")
a, b, c = st.columns(3)
# totals cover every matching customer, not only the rows the list shows
total = int(work["customers_total"][0]) if work.height else 0
a.metric("Customers on the list", f"{total:,}", border=True,
         help=f"The table shows the first {work.height:,}." if total > work.height else None)
b.metric("Value at risk (12-month revenue × probability)",
         money(work["value_at_risk_total"][0] if work.height else 0), border=True)
if work.height:
    top = work.row(0, named=True)
    c.metric("Call first", plain(top["customer_name"]), f"{top['churn_probability']:.0%} churn risk", delta_color="off", delta_arrow="off",
             border=True, help=top["top_drivers"] or None)
st.plotly_chart(charts.churn_scatter(work), key="churn_scatter")
config = {"churn_probability": st.column_config.ProgressColumn("churn", min_value=0, max_value=1, format="percent"),
          "top_drivers": st.column_config.TextColumn("why (model's top drivers)", width="large")}
table(work.drop("customers_total", "value_at_risk_total", strict=False), "churn_worklist", **config)
st.caption("Drivers are the features that raise this customer's predicted probability most, with their values; "
           "value at risk = churn probability × revenue of the last 12 months.")
