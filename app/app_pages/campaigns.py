"""Campaigns and attribution: reach, leads, customers, cost per lead/customer, ROI; first vs last touch."""

import polars as pl
import streamlit as st

from app import charts, queries
from app.ui import money, not_computed, page_viewer, table

viewer = page_viewer()
st.title("Campaigns & attribution")
frame = queries.campaigns(viewer)
if frame.is_empty():
    not_computed("Campaign performance")
    st.stop()
channels = sorted(frame["channel"].drop_nulls().unique().to_list())
channel = st.selectbox("Channel", [None, *channels], format_func=lambda c: "all channels" if c is None else c,
                       key="campaign_channel")
frame = queries.campaigns(viewer, channel)
a, b, c, d = st.columns(4)
a.metric("Campaigns", f"{frame.height:,}", border=True)
b.metric("Cost", money(frame["cost"].sum()), border=True)
c.metric("Leads", f"{frame['leads'].sum():,}", border=True)
revenue, cost = frame["revenue_attributed"].sum(), frame["cost"].sum()
d.metric("ROI", f"{(revenue - cost) / cost:.0%}" if cost else "–", border=True)

by_channel = frame.group_by("channel").agg(
    cost=pl.col("cost").sum(), revenue=pl.col("revenue_attributed").sum(),
    leads=pl.col("leads").sum()).sort("revenue", descending=True)
left, right = st.columns(2)
left.plotly_chart(charts.grouped_bars(by_channel, "channel", ["cost", "revenue"], "Cost and sourced revenue by channel"),
                  key="campaign_channels")
attribution = queries.attribution(viewer)
right.plotly_chart(charts.grouped_bars(
    attribution.pivot(on="attribution_model", index="channel", values="revenue") if not attribution.is_empty()
    else attribution, "channel", ["first_touch", "last_touch"] if not attribution.is_empty() else [],
    "Won revenue: first vs last touch"), key="attribution")
st.caption("Campaign figures are company-wide; attribution covers the deals in your scope.")
table(frame, "campaigns", roi=st.column_config.NumberColumn("ROI", format="percent"))
st.subheader("Lead sources")
table(queries.lead_sources(viewer), "lead_sources",
      conversion_rate=st.column_config.NumberColumn("conversion", format="percent"))
