"""Pipeline and forecast: the open pipeline weighted by stage win rates, its history, and the revenue
forecast with prediction intervals and its track record."""

import polars as pl
import streamlit as st

from app import charts, queries
from app.ui import deal_filters, money, not_computed, page_viewer, table

viewer = page_viewer()
st.title("Pipeline & forecast")
filters = deal_filters(viewer, "pipeline", with_period=False)

weighted = queries.weighted_pipeline(viewer, filters)
if weighted.is_empty():
    not_computed("The weighted pipeline")
else:
    a, b, c = st.columns(3)
    a.metric("Open deals", f"{weighted['open_deals'].sum():,}", border=True)
    b.metric("Open amount", money(weighted["open_amount"].sum()), border=True)
    c.metric("Weighted amount", money(weighted["weighted_amount"].sum()), border=True)
    st.plotly_chart(charts.stacked_by_stage(weighted, "expected_close_month", "weighted_amount",
                                            "Weighted pipeline by expected close month"), key="weighted")

history = queries.pipeline_history(viewer, filters)
if not history.is_empty():
    st.plotly_chart(charts.stacked_by_stage(history, "snapshot_date", "open_amount",
                                            "Open pipeline at the end of each day", area=True), key="history")

st.subheader("Revenue forecast")
forecast = queries.forecast(viewer)
if forecast.is_empty():
    not_computed("The sales forecast")
else:
    # actuals next to a company-level forecast only for viewers who see the whole company
    actual = pl.DataFrame() if viewer.restricted else queries.monthly_sales(viewer)
    st.plotly_chart(charts.forecast(forecast, actual.tail(24) if not actual.is_empty() else None), key="forecast")
    st.caption("Company-level forecast (all owners): the shaded band is the prediction interval.")
    table(forecast, "forecast")
accuracy = queries.forecast_accuracy(viewer)
if accuracy.is_empty():
    not_computed("Forecast accuracy history")
else:
    st.subheader("Forecast accuracy history")
    table(accuracy, "forecast_accuracy")

st.subheader("Open deals")
table(queries.deals(viewer, filters, open_only=True), "open_deals")
