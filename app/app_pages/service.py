"""Service and SLA: tickets, first-response and resolution SLA attainment, satisfaction, expiring contracts."""

import polars as pl
import streamlit as st

from app import charts, queries
from app.ui import money, not_computed, page_viewer, share, table

viewer = page_viewer()
st.title("Service & SLA")
with st.sidebar:
    st.subheader("Filters")
    priority = st.selectbox("Priority", [None, "urgent", "high", "medium", "low"], key="svc_priority",
                            format_func=lambda v: "All" if v is None else v)
    channel = st.selectbox("Channel", [None, "email", "phone", "chat", "web"], key="svc_channel",
                           format_func=lambda v: "All" if v is None else v)
filters = {"priority": priority, "channel": channel}
monthly = queries.service_monthly(viewer, filters)
if monthly.is_empty():
    not_computed("Service figures")
    st.stop()
recent = monthly.tail(3)
a, b, c, d = st.columns(4)
a.metric("Tickets, last 3 months", f"{recent['tickets'].sum():,}", border=True)
b.metric("First-response SLA met", share(recent["first_response_sla"].mean()), border=True)
c.metric("Resolution SLA met", share(recent["resolution_sla"].mean()), border=True)
d.metric("Satisfaction", f"{recent['avg_satisfaction'].mean():.2f} / 5" if recent["avg_satisfaction"].mean()
         else "–", border=True)
st.plotly_chart(charts.lines(monthly.tail(24), "month", ["first_response_sla", "resolution_sla"],
                             "SLA attainment by month", share=True), key="sla_trend")
left, right = st.columns(2)
by = queries.service_by(viewer, filters)
left.plotly_chart(charts.grouped_bars(by.group_by("priority").agg(
    pl.col("first_response_sla").mean(), pl.col("resolution_sla").mean()),
    "priority", ["first_response_sla", "resolution_sla"], "SLA by priority", share=True), key="sla_priority")
right.plotly_chart(charts.trend(monthly.tail(24), "month", "tickets", "avg_satisfaction", "Tickets and satisfaction",
                                "tickets", "satisfaction"), key="tickets_trend")
st.subheader("Tickets that missed their SLA")
table(queries.tickets(viewer, filters, breached_only=True, limit=300), "sla_breaches")
st.subheader("Contracts expiring in 30/60/90 days")
expiring = queries.contracts_expiring(viewer)
if not expiring.is_empty():
    st.caption(f"Annual value at risk (no auto-renewal, no renewal yet): {money(expiring['value_at_risk'].sum())}")
table(expiring, "contracts_expiring")
