"""Pipeline and forecast: the open pipeline weighted by the win-probability model (against plain stage win
rates), its history, the revenue forecast with 80% and 95% intervals, and how past forecasts turned out."""

import streamlit as st

from app import charts, queries
from app.ui import compact, deal_filters, money, not_computed, page_viewer, plain, share, table

MONTH = st.column_config.DateColumn("month", format="MMM YYYY")
ORIGIN = st.column_config.DateColumn("made from", format="MMM YYYY")

viewer = page_viewer()
st.title("Pipeline & forecast")
filters = deal_filters(viewer, "pipeline", with_period=False)

weighted = queries.weighted_pipeline(viewer, filters)
if weighted.is_empty():
    not_computed("The weighted pipeline")
else:
    a, b, c, d = st.columns(4)
    a.metric("Open deals", f"{weighted['open_deals'].sum():,}", border=True)
    b.metric("Open amount", money(weighted["open_amount"].sum()), border=True)
    c.metric("Model-weighted", money(weighted["weighted_amount"].sum()), border=True,
             help="Each open deal's amount times the model's probability that it is won.")
    d.metric("Stage-rate weighted", money(weighted["stage_weighted_amount"].sum()), border=True,
             help="Each open deal's amount times the historical win rate of its stage.")
    left, right = st.columns(2)
    left.plotly_chart(charts.weighting_comparison(weighted), key="weighting")
    right.plotly_chart(charts.stacked_by_stage(weighted, "expected_close_month", "weighted_amount",
                                               "Model-weighted pipeline by stage"), key="weighted")

history = queries.pipeline_history(viewer, filters)
if not history.is_empty():
    st.plotly_chart(charts.stacked_by_stage(history, "snapshot_date", "open_amount",
                                            "Open pipeline at the end of each day", area=True), key="history")

st.subheader("Revenue forecast")
slices = queries.forecast_slices(viewer)
if not slices:
    not_computed("The sales forecast")
else:
    left, right = st.columns(2)
    slice_type = left.selectbox("Forecast for", list(slices), key="forecast_slice_type",
                                format_func=lambda s: {"overall": "the whole company", "product_line": "a product line",
                                                       "segment": "a segment (B2B/B2C)"}.get(s, f"a {s}"))
    values = slices[slice_type]
    slice_value = values[0] if len(values) == 1 else right.selectbox("Which", values, key="forecast_slice_value")
    forecast = queries.forecast(viewer, slice_type, slice_value)
    # actual revenue next to the company-level forecast only for viewers who see the whole company
    actual = None if viewer.restricted else queries.revenue_actuals(viewer, slice_type, slice_value)
    nxt = forecast.row(0, named=True)
    a, b, c = st.columns(3)
    a.metric(f"Forecast {nxt['month']:%b %Y}", money(nxt["forecast"]), border=True)
    b.metric("80% interval", f"{compact(nxt['lower_80'])} – {compact(nxt['upper_80'])}", border=True,
             help=plain(f"{money(nxt['lower_80'])} – {money(nxt['upper_80'])}"))
    c.metric("95% interval", f"{compact(nxt['lower_95'])} – {compact(nxt['upper_95'])}", border=True,
             help=plain(f"{money(nxt['lower_95'])} – {money(nxt['upper_95'])}"))
    st.plotly_chart(charts.forecast(forecast, actual), key="forecast")
    st.caption(f"Completed-order revenue per month; company-level model (all owners), version "
               f"{nxt['model_version']}, forecast made from {nxt['origin_month']:%b %Y}. Shaded: 80% and 95% "
               "prediction intervals.")
    table(forecast.drop("model_version"), "forecast", month=MONTH, origin_month=ORIGIN)

    st.subheader("Forecast accuracy")
    backtest = queries.model_metrics(viewer, "sales_forecast")
    grades = queries.model_grades(viewer)
    grade = grades.filter(grades["model"] == "sales_forecast") if not grades.is_empty() else grades
    if not backtest.is_empty():
        m = {r["metric"]: r for r in backtest.iter_rows(named=True)}
        a, b, c, d = st.columns(4)
        if grade.height:
            a.metric("Model grade", grade["grade"][0], border=True, help=grade["why"][0])
        if "mase" in m:
            b.metric("Backtest MASE", f"{m['mase']['value']:.2f}", f"seasonal-naive {m['mase']['baseline']:.2f}",
                     delta_color="off", delta_arrow="off", border=True)
        if "smape" in m:
            c.metric("Backtest sMAPE", f"{m['smape']['value']:.1f}%", f"seasonal-naive {m['smape']['baseline']:.1f}%",
                     delta_color="off", delta_arrow="off", border=True)
        if "coverage_80" in m:
            d.metric("80% interval coverage", share(m["coverage_80"]["value"]), border=True,
                     help="Share of backtest months whose actual fell inside the 80% interval.")
    accuracy = queries.forecast_accuracy(viewer, slice_type, slice_value)
    if accuracy.is_empty():
        st.info(f"{queries.forecasts_stored(viewer):,} forecast rows are stored; each is scored against the actual "
                "revenue once its month is complete, and the history appears here.", icon="⏳")
    else:
        st.plotly_chart(charts.forecast_accuracy(accuracy), key="forecast_accuracy")
        table(queries.forecast_accuracy_by_horizon(viewer), "forecast_accuracy_by_horizon",
              mape=st.column_config.NumberColumn("MAPE", format="percent"),
              coverage_80=st.column_config.NumberColumn("inside 80%", format="percent"),
              coverage_95=st.column_config.NumberColumn("inside 95%", format="percent"))
        table(accuracy, "forecast_accuracy", month=MONTH, origin_month=ORIGIN,
              absolute_percentage_error=st.column_config.NumberColumn("abs. % error", format="percent"))

st.subheader("Open deals")
table(queries.open_deals_scored(viewer, filters), "open_deals",
      win_probability=st.column_config.ProgressColumn("win probability", min_value=0, max_value=1, format="percent"),
      stage_win_probability=st.column_config.NumberColumn("stage win rate", format="percent"))
