"""Funnel: how deals move from stage to stage, how long they stay, and why they are lost."""

import streamlit as st

from app import charts, queries
from app.ui import deal_filters, page_viewer, table

viewer = page_viewer()
st.title("Funnel")
filters = deal_filters(viewer, "funnel")
stages = queries.funnel(viewer, filters)
if stages.is_empty():
    st.info("Funnel not yet computed: the sales marts appear after the next pipeline run.")
    st.stop()

left, right = st.columns([3, 2])
left.plotly_chart(charts.funnel(stages), key="funnel_chart")
with right:
    st.subheader("Stage conversion")
    st.dataframe(stages.select("stage", "deals_reached", "conversion_to_next", "share_of_entered"), hide_index=True,
                 column_config={"conversion_to_next": st.column_config.NumberColumn("to next stage", format="percent"),
                                "share_of_entered": st.column_config.NumberColumn("of entered", format="percent")})

left, right = st.columns(2)
stay = queries.time_in_stage(viewer, filters)
left.plotly_chart(charts.horizontal_bars(stay, "stage", "median_days", "Median days in stage"), key="stage_days")
lost = queries.lost_reasons(viewer, filters)
right.plotly_chart(charts.horizontal_bars(lost, "lost_reason", "deals_lost", "Why deals were lost",
                                          color="#dc2626"), key="lost_reasons")

dimension = st.segmented_control("Win rate by", ["region", "lead_source", "product_line", "owner", "team"],
                                 default="region", key="funnel_dimension") or "region"
rates = queries.win_rate_by(viewer, dimension, filters)
st.plotly_chart(charts.horizontal_bars(rates, "value", "win_rate", f"Win rate by {dimension.replace('_', ' ')}",
                                       share=True, color="#16a34a"), key="win_rates")

st.subheader("Drill down")
stage = st.selectbox("Deals currently in stage", [None, *queries.stage_names()],
                     format_func=lambda s: "any stage" if s is None else s.replace("_", " "), key="funnel_stage")
table(queries.deals(viewer, filters, stage=stage), "deals")
