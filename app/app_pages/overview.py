"""Overview: headline KPIs with their change against the previous period, and the sales trend."""

import streamlit as st

from app import charts, queries
from app.ui import deal_filters, money, page_viewer, plain, table

viewer = page_viewer()
st.title("Overview")
filters = deal_filters(viewer, "overview", with_period=False)
months = st.segmented_control("Period", [1, 3, 6, 12], default=3, format_func=lambda m: f"last {m} mo",
                              key="overview_months") or 3
as_of = queries.as_of_date()
st.caption(f"Data as of {as_of:%d %b %Y}; each figure compares the last {months} month(s) with the "
           f"{months} month(s) before. Scope: {plain(viewer.scope_label)}.")

figures = queries.kpis(viewer, months, filters)
if not figures:
    st.info("Sales marts not yet computed.")
columns = st.columns(4)
for i, (label, values) in enumerate(figures.items()):
    current, previous = values["current"], values["previous"]
    is_share = label == "Win rate"
    shown = "–" if current is None else (f"{current:.1%}" if is_share else
                                         f"{current:,.1f}" if isinstance(current, float) and current < 100
                                         else money(current))
    delta = None
    if current is not None and previous:
        delta = f"{(current - previous) * 100:+.1f} pts" if is_share else f"{(current - previous) / previous:+.1%}"
    columns[i % 4].metric(label, shown, delta, border=True,
                          delta_color="inverse" if label in ("Sales cycle (days)", "Tickets opened") else "normal")

monthly = queries.monthly_sales(viewer, filters)
st.plotly_chart(charts.trend(monthly.tail(24), "month", "won_revenue", "win_rate", "Won revenue and win rate by month",
                             "won revenue", "win rate", line_is_share=True), key="overview_trend")
with st.expander("Monthly figures"):
    table(monthly, "monthly_sales")
