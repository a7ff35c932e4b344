"""Every plotly figure of the portal: one function per chart, taking the frames app/queries.py returns.

One palette and one layout so pages look like one product; labels in words people use, amounts with
thousands separators, no chart junk. Figures take polars frames and hand plotly plain lists.
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl

PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#64748b"]
STAGE_COLORS = {"prospecting": "#93c5fd", "qualification": "#60a5fa", "proposal": "#3b82f6",
                "negotiation": "#1d4ed8", "closed_won": "#16a34a", "closed_lost": "#dc2626"}
BAND_COLORS = {"high": "#dc2626", "medium": "#f59e0b", "low": "#16a34a"}


def _layout(fig: go.Figure, title: str | None = None, height: int = 360) -> go.Figure:
    fig.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 48 if title else 16, "b": 10},
                      colorway=PALETTE, legend={"orientation": "h", "y": -0.18}, hovermode="closest",
                      separators=".,")
    return fig


def _col(frame: pl.DataFrame, name: str) -> list:
    return frame[name].to_list() if name in frame.columns else []


def empty(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font={"size": 14, "color": "#64748b"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, height=220)


def trend(frame: pl.DataFrame, x: str, bars: str, line: str | None = None, title: str | None = None,
          bar_label: str = "", line_label: str = "", line_is_share: bool = False) -> go.Figure:
    """Bars for an amount per period with an optional line (e.g. win rate) on a second axis."""
    if frame.is_empty():
        return empty("No data for this selection")
    fig = go.Figure(go.Bar(x=_col(frame, x), y=_col(frame, bars), name=bar_label or bars, marker_color=PALETTE[0]))
    if line:
        fig.add_trace(go.Scatter(x=_col(frame, x), y=_col(frame, line), name=line_label or line, yaxis="y2",
                                 mode="lines+markers", line={"color": PALETTE[2], "width": 3}))
        fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "showgrid": False,
                                  "tickformat": ".0%" if line_is_share else ",.0f"})
    fig.update_yaxes(tickformat=",.0f", selector={"anchor": "x"})
    return _layout(fig, title)


def funnel(frame: pl.DataFrame) -> go.Figure:
    if frame.is_empty() or frame["deals_reached"].sum() == 0:
        return empty("No deals for this selection")
    stages = [s.replace("_", " ") for s in _col(frame, "stage")]
    fig = go.Figure(go.Funnel(y=stages, x=_col(frame, "deals_reached"), textinfo="value+percent initial",
                              marker={"color": [STAGE_COLORS.get(s, PALETTE[0]) for s in _col(frame, "stage")]}))
    return _layout(fig, "Deals reaching each stage", height=380)


def horizontal_bars(frame: pl.DataFrame, label: str, value: str, title: str | None = None,
                    share: bool = False, color: str | None = None) -> go.Figure:
    if frame.is_empty():
        return empty("No data for this selection")
    ordered = frame.sort(value, nulls_last=True)
    fig = go.Figure(go.Bar(y=[str(v) for v in _col(ordered, label)], x=_col(ordered, value), orientation="h",
                           marker_color=color or PALETTE[0],
                           texttemplate="%{x:.0%}" if share else "%{x:,.0f}", textposition="auto"))
    fig.update_xaxes(tickformat=".0%" if share else ",.0f")
    return _layout(fig, title, height=max(260, 36 * ordered.height + 80))


def stacked_by_stage(frame: pl.DataFrame, x: str, y: str, title: str, area: bool = False) -> go.Figure:
    """Amount per period split by deal stage (weighted pipeline by close month, pipeline history)."""
    if frame.is_empty():
        return empty("No open pipeline for this selection")
    fig = go.Figure()
    # funnel order when the frame carries it (the installation's stages), else the default stages' order
    order = (dict(frame.select("stage", "stage_order").unique("stage").iter_rows()) if "stage_order" in frame.columns
             else {s: i for i, s in enumerate(STAGE_COLORS)})
    for stage in sorted(set(_col(frame, "stage")), key=lambda s: (order.get(s) is None, order.get(s) or 0, s)):
        part = frame.filter(pl.col("stage") == stage)
        color = STAGE_COLORS.get(stage)
        if area:
            fig.add_trace(go.Scatter(x=_col(part, x), y=_col(part, y), name=stage.replace("_", " "),
                                     stackgroup="one", line={"color": color, "width": 0.5}))
        else:
            fig.add_trace(go.Bar(x=_col(part, x), y=_col(part, y), name=stage.replace("_", " "), marker_color=color))
    fig.update_layout(barmode="stack")
    fig.update_yaxes(tickformat=",.0f")
    return _layout(fig, title)


def forecast(frame: pl.DataFrame, actual: pl.DataFrame | None = None, title: str = "Revenue forecast") -> go.Figure:
    """Forecast line with its 95% and 80% prediction bands, and the actual monthly revenue before it."""
    if frame.is_empty() or "forecast" not in frame.columns:
        return empty("Forecast not yet computed")
    frame = frame.sort("month")
    months = _col(frame, "month")
    fig = go.Figure()
    for level, alpha in (("95", 0.10), ("80", 0.22)):
        lo, hi = f"lower_{level}", f"upper_{level}"
        if lo in frame.columns and hi in frame.columns:
            fig.add_trace(go.Scatter(x=months + months[::-1], y=_col(frame, hi) + _col(frame, lo)[::-1],
                                     fill="toself", fillcolor=f"rgba(37,99,235,{alpha})", line={"width": 0},
                                     mode="lines", name=f"{level}% interval", hoverinfo="skip"))
    if actual is not None and not actual.is_empty():
        fig.add_trace(go.Scatter(x=_col(actual, "month"), y=_col(actual, "revenue"), name="actual",
                                 mode="lines+markers", line={"color": "#0f172a"},
                                 hovertemplate="%{x|%b %Y}: %{y:,.0f}<extra>actual</extra>"))
    fig.add_trace(go.Scatter(x=months, y=_col(frame, "forecast"), name="forecast", mode="lines+markers",
                             line={"color": PALETTE[0], "dash": "dash", "width": 3},
                             hovertemplate="%{x|%b %Y}: %{y:,.0f}<extra>forecast</extra>"))
    fig.update_yaxes(tickformat=",.0f")
    return _layout(fig, title, height=400)


def forecast_accuracy(frame: pl.DataFrame) -> go.Figure:
    """Past forecasts (one marker per origin) against the revenue that came in, per month."""
    if frame.is_empty():
        return empty("No past forecast has reached a complete month yet")
    fig = go.Figure()
    actual = frame.group_by("month").agg(pl.col("actual").first()).sort("month")
    fig.add_trace(go.Scatter(x=_col(actual, "month"), y=_col(actual, "actual"), name="actual", mode="lines+markers",
                             line={"color": "#0f172a"}))
    for i, horizon in enumerate(sorted(set(_col(frame, "horizon")))):
        part = frame.filter(pl.col("horizon") == horizon).sort("month")
        fig.add_trace(go.Scatter(x=_col(part, "month"), y=_col(part, "forecast"), mode="markers",
                                 name=f"forecast {horizon} month(s) ahead",
                                 marker={"size": 9, "color": PALETTE[(i + 1) % len(PALETTE)]},
                                 hovertemplate="%{x|%b %Y}: %{y:,.0f}<extra></extra>"))
    fig.update_yaxes(tickformat=",.0f")
    return _layout(fig, "Past forecasts against what happened", height=380)


def weighting_comparison(frame: pl.DataFrame) -> go.Figure:
    """Open amount, model-weighted and stage-rate-weighted amount per expected close month."""
    if frame.is_empty():
        return empty("No open pipeline for this selection")
    monthly = frame.group_by("expected_close_month").agg(pl.col("open_amount", "weighted_amount",
                                                                 "stage_weighted_amount").sum()
                                                        ).sort("expected_close_month")
    months = _col(monthly, "expected_close_month")
    names = {"open_amount": "open amount", "weighted_amount": "weighted by win-probability model",
             "stage_weighted_amount": "weighted by stage win rate"}
    fig = go.Figure([go.Bar(x=months, y=_col(monthly, c), name=label, marker_color=PALETTE[i if i else 8])
                     for i, (c, label) in enumerate(names.items())])
    fig.update_layout(barmode="group")
    fig.update_yaxes(tickformat=",.0f")
    return _layout(fig, "Open pipeline by expected close month")


def rfm_heatmap(frame: pl.DataFrame) -> go.Figure:
    """Recency x frequency score grid: cell colour = customers, hover = segment and average revenue."""
    if frame.is_empty():
        return empty("RFM scores not yet computed")
    r_values = sorted({int(v) for v in _col(frame, "r_score")})
    f_values = sorted({int(v) for v in _col(frame, "f_score")})
    index = {(int(r["r_score"]), int(r["f_score"])): r for r in frame.iter_rows(named=True)}
    z, text = [], []
    for f in f_values:
        z.append([index.get((r, f), {}).get("customers", 0) for r in r_values])
        text.append([f"{index.get((r, f), {}).get('rfm_segment', '')}" for r in r_values])
    fig = go.Figure(go.Heatmap(z=z, x=[f"R{r}" for r in r_values], y=[f"F{f}" for f in f_values], text=text,
                               texttemplate="%{z}<br>%{text}", colorscale="Blues",
                               hovertemplate="%{x} %{y}: %{z} customers<br>%{text}<extra></extra>"))
    fig.update_xaxes(title="Recency score (5 = bought most recently)")
    fig.update_yaxes(title="Frequency score (5 = buys most often)")
    return _layout(fig, "Customers by recency and frequency", height=430)


def treemap(frame: pl.DataFrame, label: str, size: str, color: str | None = None, title: str | None = None):
    if frame.is_empty() or frame[size].sum() in (0, None):
        return empty("No data for this selection")
    frame = frame.filter(pl.col(size) > 0)
    fig = go.Figure(go.Treemap(labels=[str(v) for v in _col(frame, label)], parents=[""] * frame.height,
                               values=_col(frame, size), branchvalues="total",
                               marker={"colors": _col(frame, color) if color else None, "colorscale": "Blues"},
                               texttemplate="%{label}<br>%{value:,.0f}"))
    return _layout(fig, title, height=400)


def cohort_heatmap(frame: pl.DataFrame, max_months: int = 24) -> go.Figure:
    if frame.is_empty():
        return empty("Cohorts not yet computed")
    frame = frame.filter(pl.col("months_since_first_order") <= max_months)
    cohorts = sorted(set(_col(frame, "cohort_month")))[-24:]
    months = sorted(set(_col(frame, "months_since_first_order")))
    index = {(r["cohort_month"], r["months_since_first_order"]): r["retention_rate"] for r in frame.iter_rows(named=True)}
    z = [[index.get((c, m)) for m in months] for c in cohorts]
    fig = go.Figure(go.Heatmap(z=z, x=months, y=[str(c)[:7] for c in cohorts], colorscale="Greens", zmin=0, zmax=1,
                               hovertemplate="cohort %{y}, month %{x}: %{z:.0%}<extra></extra>"))
    fig.update_xaxes(title="Months since first order")
    return _layout(fig, "Cohort retention", height=460)


def churn_scatter(frame: pl.DataFrame) -> go.Figure:
    """Churn probability against 12-month revenue: the top-right corner is where to call first."""
    if frame.is_empty():
        return empty("Churn scores not yet computed")
    fig = go.Figure()
    for band in sorted(set(_col(frame, "churn_risk_band")), key=str):
        part = frame.filter(pl.col("churn_risk_band") == band)
        fig.add_trace(go.Scatter(x=_col(part, "churn_probability"), y=_col(part, "revenue_12m"), mode="markers",
                                 name=str(band), text=_col(part, "customer_key"),
                                 marker={"color": BAND_COLORS.get(str(band), PALETTE[4]), "size": 8, "opacity": 0.7},
                                 hovertemplate="%{text}<br>churn %{x:.0%}<br>revenue %{y:,.0f}<extra></extra>"))
    fig.update_xaxes(title="Churn probability", tickformat=".0%")
    fig.update_yaxes(title="Revenue, last 12 months", tickformat=",.0f")
    return _layout(fig, "Who to call first", height=400)


def timeline(frame: pl.DataFrame) -> go.Figure:
    if frame.is_empty():
        return empty("No activity recorded")
    fig = go.Figure()
    for i, kind in enumerate(sorted(set(_col(frame, "kind")))):
        part = frame.filter(pl.col("kind") == kind)
        fig.add_trace(go.Scatter(x=_col(part, "at"), y=[kind] * part.height, mode="markers", name=kind,
                                 text=[f"{w}<br>{d}" for w, d in zip(_col(part, "what"), _col(part, "detail"),
                                                                     strict=True)],
                                 marker={"size": 11, "color": PALETTE[i % len(PALETTE)], "symbol": "circle"},
                                 hovertemplate="%{x|%Y-%m-%d %H:%M}<br>%{text}<extra></extra>"))
    return _layout(fig, "Timeline", height=260)


def grouped_bars(frame: pl.DataFrame, x: str, ys: list[str], title: str, share: bool = False) -> go.Figure:
    if frame.is_empty():
        return empty("No data for this selection")
    fig = go.Figure([go.Bar(x=[str(v) for v in _col(frame, x)], y=_col(frame, y), name=y.replace("_", " "))
                     for y in ys])
    fig.update_layout(barmode="group")
    fig.update_yaxes(tickformat=".0%" if share else ",.0f")
    return _layout(fig, title)


def lines(frame: pl.DataFrame, x: str, ys: list[str], title: str, share: bool = False) -> go.Figure:
    if frame.is_empty():
        return empty("No data for this selection")
    fig = go.Figure([go.Scatter(x=_col(frame, x), y=_col(frame, y), name=y.replace("_", " "), mode="lines+markers")
                     for y in ys])
    fig.update_yaxes(tickformat=".0%" if share else ",.1f")
    return _layout(fig, title)


def workload(frame: pl.DataFrame) -> go.Figure:
    """Each rep's open deals and activity against their team mean (1.0 = the mean)."""
    needed = {"user_id", "workload_index", "activity_index"}
    if frame.is_empty() or not needed <= set(frame.columns):
        return empty("Rep performance not yet computed")
    fig = go.Figure(go.Scatter(x=_col(frame, "workload_index"), y=_col(frame, "activity_index"), mode="markers+text",
                               text=_col(frame, "user_id"), textposition="top center",
                               marker={"size": 12, "color": PALETTE[0]},
                               hovertemplate="%{text}<br>workload %{x:.2f}<br>activity %{y:.2f}<extra></extra>"))
    fig.add_hline(y=1, line_dash="dot", line_color="#94a3b8")
    fig.add_vline(x=1, line_dash="dot", line_color="#94a3b8")
    fig.update_xaxes(title="Open deals vs team mean")
    fig.update_yaxes(title="Recent activity vs team mean")
    return _layout(fig, "Workload balance", height=420)
