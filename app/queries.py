"""Every read the portal makes, with the viewer's scope applied in SQL and personal data masked here.

Analysis comes from the published snapshot only (architecture rule 2 in docs): one read-only DuckDB connection
per snapshot file, re-opened when the `CURRENT` pointer moves, with external access disabled. Records being
edited come from the operational store, uncached, so an edit shows at once.

Rules every function here follows:
- SQL text is constant; user input and scope travel as parameters (`?` / `:name`), never as SQL text.
- Scope: `(? or owner_user_id in (select unnest(?::varchar[])))` with (unrestricted, ids) from the viewer,
  so a rep's query cannot return another rep's rows whatever the page asks for. Account-level rows are
  scoped by the accounts the viewer's users own in the store (the system of record, so a reassignment
  counts at once).
- Analysts get the contract's pii columns, mart columns derived from them and free text that can hold
  names (deal names, task subjects) masked before return; the rules live in app/access.py.
- Results are cached per snapshot, query and scope (`st.cache_data`, bounded, with a TTL).
"""

from __future__ import annotations

import json
import re
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import streamlit as st
from sqlalchemy import bindparam, text

from app.access import mask, mask_record, may_see, scope_ids, scope_sql
from app.auth import Viewer
from pipelines.lib.home import CrmHome
from pipelines.lib.settings import Settings
from pipelines.lib.snapshot import NoSnapshotError, connect_snapshot, current_snapshot_path
from pipelines.lib.store import OperationalStore

QUERY_TTL_SECONDS = 600
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
SCOPE_TTL_SECONDS = 30
#: Slowest queries seen in this process, for `crm bench` and the data-quality page.
QUERY_TIMINGS: dict[str, float] = {}


# --- connections ----------------------------------------------------------------------------------------
def home() -> CrmHome:
    return CrmHome.from_env()


@st.cache_resource(max_entries=4, show_spinner=False)
def _store(root: str, url: str) -> OperationalStore:
    store = OperationalStore.for_home(CrmHome(Path(root)))
    store.migrate()  # a home made before the portal existed gets the sign-in table
    return store


def operational_store() -> OperationalStore:
    """The system of record the portal edits (one engine per home and URL, shared by all sessions). The
    store validates every write with the installation's allowed values (crm.yaml, re-read when it
    changes), as ingestion validates them."""
    h = home()
    return _store(str(h.root), h.operational_db_url)


@st.cache_resource(max_entries=2, show_spinner=False)
def _snapshot_connection(snapshot_path: str) -> duckdb.DuckDBPyConnection:
    return connect_snapshot(home())


def snapshot_id() -> str | None:
    """The file name of the current snapshot: the cache key of every analysis query."""
    path = current_snapshot_path(home())
    return path.name if path else None


def _run(sql: str, params: dict[str, Any] | None = None, name: str = "query") -> pl.DataFrame:
    """Run constant SQL with named `$parameters` against the current snapshot, cached.

    `/*deals*/` and `/*tickets*/` in the SQL stand for the constant scope-and-filter clauses below.
    """
    sql = (sql.replace("/*deals*/", _DEAL_WHERE).replace("/*tickets*/", _TICKET_WHERE)
           .replace("/*owners*/", _OWNER_WHERE))
    snap = snapshot_id()
    if snap is None:
        raise NoSnapshotError("No published snapshot yet: run `crm run` to build and publish one.")
    frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in (params or {}).items()))
    return _cached(snap, str(home().snapshots / snap), sql, frozen, name)


@st.cache_data(ttl=QUERY_TTL_SECONDS, max_entries=512, show_spinner=False)
def _cached(snapshot: str, path: str, sql: str, params: tuple, name: str) -> pl.DataFrame:
    cursor = _snapshot_connection(path).cursor()  # one cursor per query: safe across Streamlit threads
    try:
        start = time.perf_counter()
        used = set(_PARAM.findall(sql))  # DuckDB refuses parameters the statement does not use
        bound = {k: (list(v) if isinstance(v, tuple) else v) for k, v in params if k in used}
        # a relation hands Arrow over without the extra copy a DB-API result makes
        frame = pl.from_arrow(cursor.sql(sql, params=bound or None).to_arrow_table())
        elapsed = time.perf_counter() - start
        QUERY_TIMINGS[name] = max(QUERY_TIMINGS.get(name, 0.0), elapsed)
        return frame
    finally:
        cursor.close()


@st.cache_data(ttl=QUERY_TTL_SECONDS, max_entries=16, show_spinner=False)
def _tables(snapshot: str) -> dict[str, tuple[str, ...]]:
    cursor = _snapshot_connection(str(home().snapshots / snapshot)).cursor()
    try:
        rows = cursor.execute("select table_schema || '.' || table_name, column_name from information_schema.columns "
                              "order by table_schema, table_name, ordinal_position").fetchall()
    finally:
        cursor.close()
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return {k: tuple(v) for k, v in out.items()}


def has_table(name: str, *columns: str) -> bool:
    """True when the snapshot holds `schema.table` (with these columns): pages explain what is missing."""
    snap = snapshot_id()
    if snap is None:
        return False
    found = _tables(snap).get(name)
    return found is not None and all(c in found for c in columns)


def columns_of(name: str) -> tuple[str, ...]:
    snap = snapshot_id()
    return _tables(snap).get(name, ()) if snap else ()


def first_table(*names: str) -> str | None:
    return next((n for n in names if has_table(n)), None)


# --- scope and masking ------------------------------------------------------------------------------------
def owner_scope(viewer: Viewer) -> list:
    """(unrestricted, owner ids) for `(? or owner_user_id in (select unnest(?::varchar[])))`."""
    return [viewer.owner_ids is None, list(viewer.owner_ids or ())]


@st.cache_data(ttl=SCOPE_TTL_SECONDS, max_entries=64, show_spinner=False)
def _owned_accounts(url: str, owner_ids: tuple[str, ...]) -> tuple[str, ...]:
    if not owner_ids:
        return ()
    sql = text("SELECT account_id FROM accounts WHERE owner_user_id IN :ids ORDER BY account_id").bindparams(
        bindparam("ids", expanding=True))
    with operational_store().engine.connect() as conn:  # `url` keys the cache
        return tuple(r[0] for r in conn.execute(sql, {"ids": list(owner_ids)}))


def account_scope(viewer: Viewer) -> list:
    """(unrestricted, account ids) for `(? or account_id in (select unnest(?::varchar[])))`."""
    if viewer.owner_ids is None:
        return [True, []]
    return [False, list(_owned_accounts(home().operational_db_url, viewer.owner_ids))]


def forget_scope() -> None:
    """After an ownership change, the next read recomputes who owns what."""
    _owned_accounts.clear()


# --- snapshot facts ---------------------------------------------------------------------------------------
def snapshot_info() -> dict[str, Any] | None:
    """Snapshot id, publication time and row counts of what it holds."""
    if snapshot_id() is None:
        return None
    row = _run("select snapshot_id, published_at, tables_json from snapshot_meta", name="snapshot_info")
    if row.is_empty():
        return None
    first = row.row(0, named=True)
    return {"snapshot_id": first["snapshot_id"], "published_at": first["published_at"],
            "tables": json.loads(first["tables_json"] or "{}")}


def as_of_date() -> date:
    """The data's "today" (int_as_of_date: crm.yaml `as_of`, by default the latest event), so periods line up
    with the marts."""
    for table, column in (("marts.dim_customers", "as_of_date"), ("marts.fct_contracts_expiring", "as_of_date"),
                          ("marts.fct_pipeline_snapshots_daily", "snapshot_date")):
        if has_table(table, column):
            # table and column names come from the fixed list above, never from input
            frame = _run(f"select max({column})::date as d from {table}", name="as_of_date")  # noqa: S608
            if frame.height and frame["d"][0] is not None:
                return frame["d"][0]
    if has_table("marts.fct_opportunities"):
        frame = _run("select max(created_at)::date as d from marts.fct_opportunities", name="as_of_date")
        if frame["d"][0] is not None:
            return frame["d"][0]
    return date.today()


# --- filters ----------------------------------------------------------------------------------------------
#: The deal filters every sales query accepts; values None mean "all".
DEAL_FILTER_KEYS = ("region", "lead_source", "product_line", "team_id", "owner_user_id", "start", "end")
_DEAL_WHERE = """
    ($all_owners or owner_user_id in (select unnest($owner_ids::varchar[])))
    and ($region::varchar is null or region = $region)
    and ($lead_source::varchar is null or lead_source = $lead_source)
    and ($product_line::varchar is null or product_line = $product_line)
    and ($team_id::varchar is null or team_id = $team_id)
    and ($owner_user_id::varchar is null or owner_user_id = $owner_user_id)
"""


def _deal_params(viewer: Viewer, filters: dict[str, Any] | None) -> dict[str, Any]:
    filters = filters or {}
    unrestricted, ids = owner_scope(viewer)
    params = {"all_owners": unrestricted, "owner_ids": ids}
    for key in DEAL_FILTER_KEYS:
        params[key] = filters.get(key) or None
    return params


def deal_filter_options(viewer: Viewer) -> dict[str, list[str]]:
    """Values the sales filters offer, from the deals the viewer may see."""
    if not has_table("marts.fct_opportunities"):
        return {}
    frame = _run("select list(distinct region order by region) as region, "
                 "list(distinct lead_source order by lead_source) as lead_source, "
                 "list(distinct product_line order by product_line) as product_line, "
                 "list(distinct team_id order by team_id) filter (team_id is not null) as team_id, "
                 "list(distinct owner_user_id order by owner_user_id) as owner_user_id "
                 "from marts.fct_opportunities where /*deals*/",
                 _deal_params(viewer, None), name="deal_filter_options")
    row = frame.row(0, named=True)
    return {k: [v for v in (row[k] or []) if v is not None] for k in row}


# --- overview ---------------------------------------------------------------------------------------------
def kpis(viewer: Viewer, months: int = 3, filters: dict[str, Any] | None = None) -> dict[str, dict[str, float]]:
    """Headline figures for the last `months` up to the as-of date and the same span before it."""
    end = as_of_date()
    cur_start = _months_back(end, months)
    prev_start = _months_back(end, 2 * months)
    params = {**_deal_params(viewer, filters), "cur": cur_start, "prev": prev_start,
              "stop": date.fromordinal(end.toordinal() + 1)}
    out: dict[str, dict[str, float]] = {}
    if has_table("marts.fct_opportunities"):
        frame = _run("""
            select
                coalesce(sum(amount) filter (is_won and closed_at >= $cur and closed_at < $stop), 0) as won_cur,
                coalesce(sum(amount) filter (is_won and closed_at >= $prev and closed_at < $cur), 0) as won_prev,
                count(*) filter (is_won and closed_at >= $cur and closed_at < $stop) as deals_won_cur,
                count(*) filter (is_won and closed_at >= $prev and closed_at < $cur) as deals_won_prev,
                count(*) filter (is_closed and closed_at >= $cur and closed_at < $stop) as closed_cur,
                count(*) filter (is_closed and closed_at >= $prev and closed_at < $cur) as closed_prev,
                count(*) filter (created_at >= $cur and created_at < $stop) as created_cur,
                count(*) filter (created_at >= $prev and created_at < $cur) as created_prev,
                avg(sales_cycle_days) filter (is_won and closed_at >= $cur and closed_at < $stop) as cycle_cur,
                avg(sales_cycle_days) filter (is_won and closed_at >= $prev and closed_at < $cur) as cycle_prev,
                coalesce(sum(amount) filter (not is_closed), 0) as open_pipeline
            from marts.fct_opportunities where /*deals*/""", params, name="kpis_deals")
        r = frame.row(0, named=True)
        out["Won revenue"] = {"current": r["won_cur"], "previous": r["won_prev"]}
        out["Deals won"] = {"current": r["deals_won_cur"], "previous": r["deals_won_prev"]}
        out["Win rate"] = {"current": _ratio(r["deals_won_cur"], r["closed_cur"]),
                           "previous": _ratio(r["deals_won_prev"], r["closed_prev"])}
        out["New deals"] = {"current": r["created_cur"], "previous": r["created_prev"]}
        out["Sales cycle (days)"] = {"current": r["cycle_cur"], "previous": r["cycle_prev"]}
        out["Open pipeline"] = {"current": r["open_pipeline"], "previous": None}
    if has_table("marts.fct_tickets"):
        frame = _run("""
            select
                count(*) filter (created_at >= $cur and created_at < $stop) as tickets_cur,
                count(*) filter (created_at >= $prev and created_at < $cur) as tickets_prev,
                avg(satisfaction_score) filter (created_at >= $cur and created_at < $stop) as csat_cur,
                avg(satisfaction_score) filter (created_at >= $prev and created_at < $cur) as csat_prev
            from marts.fct_tickets
            where ($all_accounts or account_id in (select unnest($account_ids::varchar[])))
            """, {**_account_params(viewer), "cur": cur_start, "prev": prev_start, "stop": params["stop"]},
            name="kpis_tickets")
        r = frame.row(0, named=True)
        out["Tickets opened"] = {"current": r["tickets_cur"], "previous": r["tickets_prev"]}
        out["Satisfaction (1-5)"] = {"current": r["csat_cur"], "previous": r["csat_prev"]}
    return out


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return float(numerator) / float(denominator) if numerator is not None and denominator else None


def _months_back(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    return date(year, month + 1, min(day.day, 28)) if day.day > 28 else date(year, month + 1, day.day)


def _account_params(viewer: Viewer) -> dict[str, Any]:
    unrestricted, ids = account_scope(viewer)
    return {"all_accounts": unrestricted, "account_ids": ids}


def monthly_sales(viewer: Viewer, filters: dict[str, Any] | None = None) -> pl.DataFrame:
    """Won revenue, deals won and win rate per close month (the overview trend)."""
    if not has_table("marts.fct_opportunities"):
        return pl.DataFrame()
    return _run("""
        select closed_month as month,
               sum(amount) filter (is_won) as won_revenue,
               count(*) filter (is_won) as deals_won,
               count(*) filter (is_lost) as deals_lost,
               count(*) filter (is_won) / count(*) as win_rate
        from marts.fct_opportunities
        where is_closed and /*deals*/ group by all order by month""",
        _deal_params(viewer, filters), name="monthly_sales")


# --- the installation's vocabulary (crm.yaml, published as marts.dim_*) -----------------------------------
def stage_names() -> list[str]:
    """The pipeline stages in the order crm.yaml lists them (the defaults before a build published them)."""
    if has_table("marts.dim_pipeline_stages"):
        frame = _run("select stage from marts.dim_pipeline_stages order by stage_position", name="stages")
        if frame.height:
            return frame["stage"].to_list()
    return [s.name for s in Settings().stages]


def currency_symbol() -> str:
    """Symbol of the reporting currency every money figure is in (the code when no symbol is known)."""
    if has_table("marts.dim_reporting_currency"):
        frame = _run("select symbol from marts.dim_reporting_currency", name="currency")
        if frame.height:
            return frame["symbol"][0]
    return Settings().currency.symbol


# --- funnel -----------------------------------------------------------------------------------------------
def funnel(viewer: Viewer, filters: dict[str, Any] | None = None) -> pl.DataFrame:
    """Deals that reached each stage (furthest stage >= it) and the conversion to the next stage, in the
    configured funnel order (open stages, then the won stage)."""
    if not has_table("marts.fct_opportunities", "max_stage_order_reached") or not has_table(
            "marts.dim_pipeline_stages"):
        return pl.DataFrame()
    frame = _run("""
        with stages as (
            select stage_order, stage from marts.dim_pipeline_stages where stage_order is not null
        ),
        deals as (
            select max_stage_order_reached, amount from marts.fct_opportunities
            where ($start::date is null or created_at >= $start) and ($end::date is null or created_at < $end)
              and /*deals*/
        )
        select stages.stage_order, stages.stage,
               count(deals.max_stage_order_reached) as deals_reached,
               coalesce(sum(deals.amount), 0) as amount_reached
        from stages left join deals on deals.max_stage_order_reached >= stages.stage_order
        group by all order by stages.stage_order
        """, _deal_params(viewer, filters), name="funnel")
    return frame.with_columns(
        (pl.col("deals_reached").shift(-1) / pl.col("deals_reached")).alias("conversion_to_next"),
        (pl.col("deals_reached") / pl.col("deals_reached").first()).alias("share_of_entered"),
    )


def time_in_stage(viewer: Viewer, filters: dict[str, Any] | None = None) -> pl.DataFrame:
    """Average and median days deals spent in each open stage (finished stays and current ones)."""
    if not has_table("marts.fct_deal_stages") or not has_table("marts.fct_opportunities"):
        return pl.DataFrame()
    return _run("""
        select s.stage, s.stage_order,
               avg(s.days_in_stage) as avg_days, median(s.days_in_stage) as median_days,
               quantile_cont(s.days_in_stage, 0.9) as p90_days, count(*) as stays
        from marts.fct_deal_stages s
        join (select opportunity_id from marts.fct_opportunities
              where ($start::date is null or created_at >= $start) and ($end::date is null or created_at < $end)
                and /*deals*/) o using (opportunity_id)
        where not s.is_closed_stage and s.days_in_stage is not null
        group by all order by s.stage_order
        """, _deal_params(viewer, filters), name="time_in_stage")


def lost_reasons(viewer: Viewer, filters: dict[str, Any] | None = None) -> pl.DataFrame:
    if not has_table("marts.fct_opportunities"):
        return pl.DataFrame()
    return _run("""
        select coalesce(lost_reason, '(not given)') as lost_reason, count(*) as deals_lost,
               sum(amount) as lost_amount, count(*) / sum(count(*)) over () as share
        from marts.fct_opportunities
        where is_lost and ($start::date is null or closed_at >= $start) and ($end::date is null or closed_at < $end)
          and /*deals*/ group by all order by deals_lost desc""",
        _deal_params(viewer, filters), name="lost_reasons")


def win_rate_by(viewer: Viewer, dimension: str, filters: dict[str, Any] | None = None) -> pl.DataFrame:
    """Win rate and sales cycle of closed deals by one dimension (region, lead source, product line, owner)."""
    allowed = {"region": "region", "lead_source": "lead_source", "product_line": "product_line",
               "owner": "owner_user_id", "team": "team_id"}
    if dimension not in allowed or not has_table("marts.fct_opportunities"):
        return pl.DataFrame()
    column = allowed[dimension]  # picked from the fixed map above
    sql = f"""
        select {column} as value, count(*) as deals_closed, count(*) filter (is_won) as deals_won,
               count(*) filter (is_won) / count(*) as win_rate, avg(sales_cycle_days) as avg_cycle_days,
               sum(amount) filter (is_won) as won_amount
        from marts.fct_opportunities
        where is_closed and ($start::date is null or closed_at >= $start) and ($end::date is null or closed_at < $end)
          and {_DEAL_WHERE} group by all order by deals_closed desc"""  # noqa: S608
    return _run(sql, _deal_params(viewer, filters), name="win_rate_by")


def deals(viewer: Viewer, filters: dict[str, Any] | None = None, stage: str | None = None,
          open_only: bool = False, limit: int = 500) -> pl.DataFrame:
    """Deal rows for drill-down and export."""
    if not has_table("marts.fct_opportunities"):
        return pl.DataFrame()
    frame = _run("""
        select opportunity_id, opportunity_name, account_id, owner_user_id, owner_name, team_id, region,
               lead_source, product_line, stage, amount, expected_close_date, created_at, closed_at, lost_reason,
               age_days, days_in_current_stage
        from marts.fct_opportunities
        where ($stage::varchar is null or stage = $stage) and (not $open_only or not is_closed)
          and ($start::date is null or created_at >= $start) and ($end::date is null or created_at < $end)
          and /*deals*/ order by amount desc limit $limit""",
        {**_deal_params(viewer, filters), "stage": stage, "open_only": open_only, "limit": limit}, name="deals")
    return mask(frame, viewer)


# --- pipeline and forecast --------------------------------------------------------------------------------
#: scores tables of the models (models/jobs.py), published with the marts.
CHURN = "scores.churn_scores"
CLV = "scores.clv_scores"
NBP = "scores.next_best_product"
WIN = "scores.win_probability"
FORECAST = "scores.sales_forecast"
ACCURACY = "scores.forecast_accuracy"
REGISTRY = "scores.model_registry"


def weighted_pipeline(viewer: Viewer, filters: dict[str, Any] | None = None) -> pl.DataFrame:
    """Open amount by expected close month and stage, weighted by the win-probability model per deal.

    `weighted_amount` uses the model's probability (the stage's historical win rate for a deal the model
    has not scored); `stage_weighted_amount` is the plain stage-rate weighting it is compared with.
    """
    if not has_table("marts.fct_weighted_pipeline"):
        return pl.DataFrame()
    probability = "coalesce(p.win_probability, w.stage_win_probability)" if has_table(WIN, "win_probability") \
        else "w.stage_win_probability"
    join = "left join scores.win_probability p on p.opportunity_id = w.opportunity_id" if has_table(WIN) else ""
    sql = f"""
        select w.expected_close_month, w.stage, w.stage_order, count(*) as open_deals,
               sum(w.amount) as open_amount,
               sum(w.amount * {probability}) as weighted_amount,
               sum(w.weighted_amount) as stage_weighted_amount,
               sum(w.amount * {probability}) / nullif(sum(w.amount), 0) as win_probability
        from marts.fct_weighted_pipeline w {join}
        where /*deals*/ group by all order by 1, w.stage_order"""  # noqa: S608 - fragments fixed above
    return _run(sql, _deal_params(viewer, filters), name="weighted_pipeline")


def open_deals_scored(viewer: Viewer, filters: dict[str, Any] | None = None, limit: int = 500) -> pl.DataFrame:
    """Open deals with the model's win probability next to the stage's historical rate, largest expected value
    first: what to push this month."""
    if not has_table("marts.fct_weighted_pipeline"):
        return pl.DataFrame()
    scored = has_table(WIN, "win_probability")
    probability = "p.win_probability" if scored else "cast(null as double)"
    join = "left join scores.win_probability p on p.opportunity_id = w.opportunity_id" if scored else ""
    sql = f"""
        select w.opportunity_id, w.opportunity_name, w.account_id, w.owner_user_id, w.stage, w.amount,
               w.expected_close_date, w.is_past_expected_close, {probability} as win_probability,
               w.stage_win_probability, w.amount * coalesce({probability}, w.stage_win_probability) as expected_value
        from marts.fct_weighted_pipeline w {join}
        where /*deals*/ order by expected_value desc nulls last limit $limit"""  # noqa: S608 - fixed fragments
    return mask(_run(sql, {**_deal_params(viewer, filters), "limit": limit}, name="open_deals_scored"), viewer)


def pipeline_history(viewer: Viewer, filters: dict[str, Any] | None = None, days: int = 365) -> pl.DataFrame:
    """The open pipeline as it stood at the end of each day, by stage (last `days` days)."""
    if not has_table("marts.fct_pipeline_snapshots_daily"):
        return pl.DataFrame()
    params = {**_deal_params(viewer, filters), "days": days}
    params.pop("lead_source")
    params.pop("product_line")
    return _run("""
        select snapshot_date, stage, stage_order, sum(open_deals) as open_deals, sum(open_amount) as open_amount
        from marts.fct_pipeline_snapshots_daily
        where snapshot_date > (select max(snapshot_date) from marts.fct_pipeline_snapshots_daily) - $days::integer
          and ($all_owners or owner_user_id in (select unnest($owner_ids::varchar[])))
          and ($region::varchar is null or region = $region)
          and ($team_id::varchar is null or team_id = $team_id)
          and ($owner_user_id::varchar is null or owner_user_id = $owner_user_id)
          and ($start::date is null or snapshot_date >= $start) and ($end::date is null or snapshot_date < $end)
        group by all order by snapshot_date, stage_order""", params, name="pipeline_history")


def _score_table(*candidates: str) -> str | None:
    return first_table(*(f"scores.{c}" for c in candidates))


def forecast_slices(viewer: Viewer) -> dict[str, list[str]]:
    """The slices the forecast is published for: {"overall": ["all"], "region": [...], ...}."""
    if not has_table(FORECAST):
        return {}
    frame = _run("select slice_type, list(distinct slice_value order by slice_value) as slice_values "
                 "from scores.sales_forecast group by all order by any_value(slice_type <> 'overall'), slice_type",
                 name="forecast_slices")
    return {r["slice_type"]: r["slice_values"] for r in frame.iter_rows(named=True)}


def forecast(viewer: Viewer, slice_type: str = "overall", slice_value: str = "all") -> pl.DataFrame:
    """The latest monthly revenue forecast of one slice with its 80% and 95% prediction intervals
    (company level: forecasts are not per owner)."""
    if not has_table(FORECAST):
        return pl.DataFrame()
    return _run("""
        select month_start as month, horizon, round(forecast) as forecast, round(lower_80) as lower_80,
               round(upper_80) as upper_80, round(lower_95) as lower_95, round(upper_95) as upper_95, origin_month,
               model_version
        from scores.sales_forecast where slice_type = $slice_type and slice_value = $slice_value
        order by month_start""", {"slice_type": slice_type, "slice_value": slice_value}, name="forecast")


def revenue_actuals(viewer: Viewer, slice_type: str = "overall", slice_value: str = "all",
                    months: int = 24) -> pl.DataFrame:
    """Completed-order revenue per complete month of a slice: what the forecast predicts, to draw before it."""
    if not has_table("marts.fct_revenue_monthly_by_slice"):
        return pl.DataFrame()
    return _run("""
        select month_start as month, revenue from marts.fct_revenue_monthly_by_slice
        where slice_type = $slice_type and slice_value = $slice_value and is_complete_month
        order by month_start desc limit $months""",
                {"slice_type": slice_type, "slice_value": slice_value, "months": months},
                name="revenue_actuals").sort("month")


def forecast_accuracy(viewer: Viewer, slice_type: str = "overall", slice_value: str = "all") -> pl.DataFrame:
    """Past forecasts of a slice scored against what happened, one row per forecast month and origin."""
    if not has_table(ACCURACY):
        return pl.DataFrame()
    return _run("""
        select month_start as month, origin_month, horizon, round(forecast) as forecast, round(actual) as actual,
               round(error) as error, absolute_percentage_error, inside_80, inside_95, model_version,
               forecast_made_at
        from scores.forecast_accuracy where slice_type = $slice_type and slice_value = $slice_value
        qualify row_number() over (partition by origin_month, month_start
                                   order by forecast_made_at desc, model_version desc) = 1
        order by month_start, horizon""", {"slice_type": slice_type, "slice_value": slice_value},
                name="forecast_accuracy")


def forecast_accuracy_by_horizon(viewer: Viewer) -> pl.DataFrame:
    """Track record of stored forecasts by months ahead, over every slice: MAPE and interval coverage."""
    if not has_table(ACCURACY):
        return pl.DataFrame()
    return _run("""
        with latest as (
            -- the latest forecast made from each origin (a re-score with a new version replaces the earlier one)
            select * from scores.forecast_accuracy
            qualify row_number() over (partition by slice_type, slice_value, origin_month, month_start
                                       order by forecast_made_at desc, model_version desc) = 1
        )
        select horizon, count(*) as forecasts_scored, avg(absolute_percentage_error) as mape,
               avg(inside_80::int) as coverage_80, avg(inside_95::int) as coverage_95
        from latest group by all order by horizon""", name="forecast_accuracy_by_horizon")


def forecasts_stored(viewer: Viewer) -> int:
    """How many forecast rows the history holds (scored or still waiting for their month to end)."""
    if not has_table("scores.forecast_history"):
        return 0
    return int(_run("select count(*) as n from scores.forecast_history", name="forecasts_stored")["n"][0])


# --- service ----------------------------------------------------------------------------------------------
_TICKET_WHERE = """
    ($all_accounts or account_id in (select unnest($account_ids::varchar[])))
    and ($priority::varchar is null or priority = $priority)
    and ($channel::varchar is null or channel = $channel)
    and ($start::date is null or created_at >= $start) and ($end::date is null or created_at < $end)
"""


def _ticket_params(viewer: Viewer, filters: dict[str, Any] | None) -> dict[str, Any]:
    filters = filters or {}
    return {**_account_params(viewer), **{k: filters.get(k) or None for k in ("priority", "channel", "start", "end")}}


def service_monthly(viewer: Viewer, filters: dict[str, Any] | None = None) -> pl.DataFrame:
    """Tickets, SLA attainment and satisfaction per month from the viewer's tickets."""
    if not has_table("marts.fct_tickets"):
        return pl.DataFrame()
    return _run("""
        select created_month as month, count(*) as tickets, count(*) filter (is_open) as open_tickets,
               avg(first_response_sla_met::int) as first_response_sla,
               avg(resolution_sla_met::int) as resolution_sla,
               median(first_response_hours) as median_first_response_hours,
               median(resolution_hours) as median_resolution_hours,
               avg(satisfaction_score) as avg_satisfaction
        from marts.fct_tickets where /*tickets*/ group by all order by month""",
        _ticket_params(viewer, filters), name="service_monthly")


def service_by(viewer: Viewer, filters: dict[str, Any] | None = None) -> pl.DataFrame:
    """SLA attainment by priority and channel."""
    if not has_table("marts.fct_tickets"):
        return pl.DataFrame()
    return _run("""
        select priority, channel, count(*) as tickets,
               avg(first_response_sla_met::int) as first_response_sla,
               avg(resolution_sla_met::int) as resolution_sla,
               avg(satisfaction_score) as avg_satisfaction
        from marts.fct_tickets where /*tickets*/ group by all order by priority, channel""",
        _ticket_params(viewer, filters), name="service_by")


def tickets(viewer: Viewer, filters: dict[str, Any] | None = None, breached_only: bool = False,
            limit: int = 500) -> pl.DataFrame:
    if not has_table("marts.fct_tickets"):
        return pl.DataFrame()
    return _run("""
        select ticket_id, account_id, assigned_user_id, priority, channel, category, status, created_at,
               first_response_hours, resolution_hours, first_response_sla_met, resolution_sla_met,
               satisfaction_score
        from marts.fct_tickets
        where (not $breached or first_response_sla_met = false or resolution_sla_met = false)
          and /*tickets*/ order by created_at desc limit $limit""",
        {**_ticket_params(viewer, filters), "breached": breached_only, "limit": limit}, name="tickets")


def contracts_expiring(viewer: Viewer) -> pl.DataFrame:
    if not has_table("marts.fct_contracts_expiring"):
        return pl.DataFrame()
    return _run("""
        select contract_id, account_id, product_id, end_date, days_to_expiry, expiry_bucket, annual_value,
               auto_renew, has_renewal, value_at_risk
        from marts.fct_contracts_expiring
        where ($all_accounts or account_id in (select unnest($account_ids::varchar[])))
        order by days_to_expiry""", _account_params(viewer), name="contracts_expiring")


# --- marketing --------------------------------------------------------------------------------------------
def campaigns(viewer: Viewer, channel: str | None = None) -> pl.DataFrame:
    """Campaign reach, leads, customers, cost per lead/customer and ROI (company-wide marketing figures)."""
    if not has_table("marts.fct_campaign_performance"):
        return pl.DataFrame()
    return _run("""
        select * from marts.fct_campaign_performance
        where ($channel::varchar is null or channel = $channel) order by start_date desc""",
                {"channel": channel}, name="campaigns")


def attribution(viewer: Viewer) -> pl.DataFrame:
    """Won revenue by channel under first- and last-touch attribution (the viewer's deals)."""
    if not has_table("marts.fct_attribution"):
        return pl.DataFrame()
    return _run("""
        select attribution_model, channel, count(*) as deals, sum(attributed_revenue) as revenue
        from marts.fct_attribution
        where ($all_owners or owner_user_id in (select unnest($owner_ids::varchar[])))
        group by all order by attribution_model, revenue desc""",
                {"all_owners": owner_scope(viewer)[0], "owner_ids": owner_scope(viewer)[1]}, name="attribution")


def lead_sources(viewer: Viewer) -> pl.DataFrame:
    if not has_table("marts.fct_lead_source_conversion"):
        return pl.DataFrame()
    return _run("""
        select lead_source, sum(leads) as leads, sum(leads_converted) as leads_converted,
               sum(leads_converted) / sum(leads) as conversion_rate,
               median(median_first_response_hours) as median_first_response_hours,
               sum(won_opportunities) as won_deals, sum(won_amount) as won_amount
        from marts.fct_lead_source_conversion group by all order by leads desc""", name="lead_sources")


# --- people -----------------------------------------------------------------------------------------------
def rep_performance(viewer: Viewer) -> pl.DataFrame:
    if not has_table("marts.fct_rep_performance"):
        return pl.DataFrame()
    frame = _run("""
        select * from marts.fct_rep_performance
        where ($all_owners or user_id in (select unnest($owner_ids::varchar[]))) order by user_id""",
                 {"all_owners": owner_scope(viewer)[0], "owner_ids": owner_scope(viewer)[1]},
                 name="rep_performance")
    return mask(frame, viewer)


def rep_activity(viewer: Viewer, days: int = 90) -> pl.DataFrame:
    """Daily calls, emails and meetings per rep over the last `days` days."""
    if not has_table("marts.fct_rep_activity_daily"):
        return pl.DataFrame()
    return _run("""
        select activity_date, user_id, team_id, calls, emails, meetings, total_interactions, tasks_completed
        from marts.fct_rep_activity_daily
        where activity_date > (select max(activity_date) from marts.fct_rep_activity_daily) - $days::integer
          and ($all_owners or user_id in (select unnest($owner_ids::varchar[])))
        order by activity_date""",
                {"all_owners": owner_scope(viewer)[0], "owner_ids": owner_scope(viewer)[1], "days": days},
                name="rep_activity")


# --- data quality -----------------------------------------------------------------------------------------
def quarantine_summary(viewer: Viewer) -> pl.DataFrame:
    """Quarantined rows by entity and reason (no row contents: they may hold personal data)."""
    if not has_table("quality.quarantine"):
        return pl.DataFrame()
    cols = set(columns_of("quality.quarantine"))
    entity = "entity" if "entity" in cols else "'?'"
    reason = "reason" if "reason" in cols else "'?'"
    # column names checked against the snapshot's own catalogue above
    return _run(f"select {entity} as entity, {reason} as reason, count(*) as rows "  # noqa: S608
                "from quality.quarantine group by all order by rows desc", name="quarantine_summary")


def quarantine_rows(viewer: Viewer, limit: int = 200) -> pl.DataFrame:
    if not has_table("quality.quarantine"):
        return pl.DataFrame()
    frame = _run("select * from quality.quarantine limit $limit", {"limit": limit}, name="quarantine_rows")
    if viewer.role not in ("admin",):  # raw rejected values can carry anything: admins only
        keep = [c for c in frame.columns if c not in ("value", "raw", "raw_row", "row_json", "line_text")]
        frame = frame.select(keep)
        if "message" in frame.columns:  # the message quotes the value: "(got '...')"
            frame = frame.with_columns(pl.col("message").str.replace(r"\(got .*\)", "(value shown to admins only)"))
    return frame


def load_log(viewer: Viewer, limit: int = 200) -> pl.DataFrame:
    if not has_table("quality.load_log"):
        return pl.DataFrame()
    cols = columns_of("quality.load_log")
    order = next((c for c in ("loaded_at", "finished_at", "started_at", "run_started_at") if c in cols), None)
    if order is None:
        return _run("select * from quality.load_log limit $limit", {"limit": limit}, name="load_log")
    # the ordering column was picked from a fixed list and found in the snapshot's catalogue
    return _run(f"select * from quality.load_log order by {order} desc limit $limit",  # noqa: S608
                {"limit": limit}, name="load_log")


def ignored_files(viewer: Viewer) -> pl.DataFrame:
    """Landing files the latest ingest did not read, each with why and what to do (load-log status
    `ignored`; every ingest batch logs all of them, so the latest batch says what is true now)."""
    if not has_table("quality.load_log", "batch_id", "entity", "source_file", "status", "error", "finished_at"):
        return pl.DataFrame()
    return _run("""
        select source_file as file, entity as folder, error as what_to_do
        from quality.load_log
        where status = 'ignored'
          and batch_id = (select batch_id from quality.load_log order by finished_at desc limit 1)
        order by source_file""", name="ignored_files")


def model_grades(viewer: Viewer) -> pl.DataFrame:
    """Each model's current version: grade and why, headline metric against its baseline, training window."""
    if not has_table(REGISTRY):
        return pl.DataFrame()
    frame = _run("""
        select model_name, model_version, grade, grade_reason, trained_at, train_seconds, target,
               metrics_json, baseline_metrics_json, training_window_json,
               count(*) over (partition by model_name) as versions_stored
        from scores.model_registry qualify is_current order by model_name""", name="model_grades")
    rows = []
    for r in frame.iter_rows(named=True):
        metrics, baseline = json.loads(r["metrics_json"] or "{}"), json.loads(r["baseline_metrics_json"] or "{}")
        name = HEADLINE_METRIC.get(r["model_name"])
        rows.append({"model": r["model_name"], "grade": r["grade"], "headline_metric": name,
                     "value": _number(metrics.get(name)), "baseline": _number(baseline.get(name)),
                     "why": r["grade_reason"], "version": r["model_version"], "trained_at": r["trained_at"],
                     "training_window": _window(json.loads(r["training_window_json"] or "{}")),
                     "versions_stored": r["versions_stored"], "target": r["target"]})
    return pl.DataFrame(rows, schema={"model": pl.String, "grade": pl.String, "headline_metric": pl.String,
                                      "value": pl.Float64, "baseline": pl.Float64, "why": pl.String,
                                      "version": pl.String, "trained_at": pl.Datetime("us"),
                                      "training_window": pl.String, "versions_stored": pl.Int64,
                                      "target": pl.String})


def model_metrics(viewer: Viewer, model_name: str | None = None) -> pl.DataFrame:
    """Every numeric backtest metric of the current versions (long form), with the baseline's value beside it."""
    if not has_table(REGISTRY):
        return pl.DataFrame()
    frame = _run("""
        select model_name, metrics_json, baseline_metrics_json from scores.model_registry
        where is_current and ($model::varchar is null or model_name = $model) order by model_name""",
                 {"model": model_name}, name="model_metrics")
    rows = []
    for r in frame.iter_rows(named=True):
        metrics, baseline = json.loads(r["metrics_json"] or "{}"), json.loads(r["baseline_metrics_json"] or "{}")
        for metric, value in metrics.items():
            if _number(value) is not None:
                rows.append({"model": r["model_name"], "metric": metric, "value": _number(value),
                             "baseline": _number(baseline.get(metric))})
    return pl.DataFrame(rows, schema={"model": pl.String, "metric": pl.String, "value": pl.Float64,
                                      "baseline": pl.Float64})


#: The metric each model is graded on (models/grading.py), shown first.
HEADLINE_METRIC = {"churn": "roc_auc", "sales_forecast": "mase", "win_probability": "brier",
                   "next_best_product": "hit_rate_at_3", "clv": "purchases_mae"}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _window(window: dict[str, Any]) -> str:
    start = next((window[k] for k in ("first_cutoff", "first_month", "first_order") if k in window), None)
    end = next((window[k] for k in ("last_cutoff", "last_month", "observation_end") if k in window), None)
    return f"{str(start)[:10]} – {str(end)[:10]}" if start or end else ""


# --- customers and segments -------------------------------------------------------------------------------
C360 = "marts.dim_customer_360"
_OWNER_WHERE = "($all_owners or owner_user_id in (select unnest($owner_ids::varchar[])))"


def _owner_params(viewer: Viewer) -> dict[str, Any]:
    unrestricted, ids = owner_scope(viewer)
    return {"all_owners": unrestricted, "owner_ids": ids}


_CUSTOMER_SCOPE = ("customer_key in (select customer_key from marts.dim_customer_360 "
                   "where ($all_owners or owner_user_id in (select unnest($owner_ids::varchar[]))))")


def customers(viewer: Viewer, search: str | None = None, rfm_segment: str | None = None,
              lifecycle_stage: str | None = None, value_tier: str | None = None, risk_band: str | None = None,
              limit: int = 500) -> pl.DataFrame:
    """Customers the viewer may see, filtered; analysts search by customer key only (names are masked).

    Churn risk and predicted CLV come from the scores tables themselves, so a `crm train` that re-scored
    without rebuilding the marts shows at once.
    """
    if not has_table(C360):
        return pl.DataFrame()
    has_churn, has_clv = has_table(CHURN, "risk_band"), has_table(CLV, "predicted_clv")
    params = {**_owner_params(viewer), "rfm": rfm_segment, "life": lifecycle_stage, "tier": value_tier,
              "search": (search or "").strip().lower() or None, "names": not viewer.masked, "limit": limit,
              "band": risk_band if has_churn else None}
    sql = """
        select c.customer_key, c.customer_name, c.account_type, c.region, c.owner_user_id, c.owner_name,
               c.rfm_segment, c.lifecycle_stage, c.value_tier, c.lifetime_revenue, c.revenue_12m, c.historical_clv,
               c.recency_days, c.open_deals, c.open_tickets, c.overdue_amount /*risk*/ /*clv*/
        from marts.dim_customer_360 c /*churn_join*/ /*clv_join*/
        where not c.is_archived and /*owners*/
          and ($rfm::varchar is null or c.rfm_segment = $rfm)
          and ($life::varchar is null or c.lifecycle_stage = $life)
          and ($tier::varchar is null or c.value_tier = $tier)
          and ($band::varchar is null or /*band*/)
          and ($search::varchar is null or lower(c.customer_key) like '%' || $search || '%'
               or ($names and lower(c.customer_name) like '%' || $search || '%'))
        order by c.lifetime_revenue desc nulls last limit $limit"""
    sql = (sql.replace("/*risk*/", ", s.churn_probability, s.risk_band as churn_risk_band" if has_churn else "")
           .replace("/*churn_join*/", "left join scores.churn_scores s on s.customer_key = c.customer_key"
                    if has_churn else "")
           .replace("/*band*/", "s.risk_band = $band" if has_churn else "true")
           .replace("/*clv*/", ", v.predicted_clv" if has_clv else "")
           .replace("/*clv_join*/", "left join scores.clv_scores v on v.customer_key = c.customer_key"
                    if has_clv else "")
           .replace("/*owners*/", "($all_owners or c.owner_user_id in (select unnest($owner_ids::varchar[])))"))
    return mask(_run(sql, params, name="customers"), viewer)


def customer_360(viewer: Viewer, customer_key: str) -> dict[str, Any] | None:
    """The one-row profile of a customer the viewer may see, else None."""
    if not has_table(C360):
        return None
    frame = _run("select * from marts.dim_customer_360 where customer_key = $key and /*owners*/",
                 {**_owner_params(viewer), "key": customer_key}, name="customer_360")
    return mask_record(frame.row(0, named=True), viewer) if frame.height else None


def customer_interactions(viewer: Viewer, customer_key: str, limit: int = 500) -> pl.DataFrame:
    """A customer's interactions, newest first (only for a customer the viewer may see: scope is in the SQL)."""
    if not has_table("marts.fct_customer_interactions"):
        return pl.DataFrame()
    return _run(f"""
        select occurred_at, channel, direction, outcome, user_id, duration_seconds, contact_id, account_id,
               interaction_id
        from marts.fct_customer_interactions
        where customer_key = $key and {_CUSTOMER_SCOPE}
        order by occurred_at desc limit $limit""",  # noqa: S608 - constant scope clause
                {**_owner_params(viewer), "key": customer_key, "limit": limit}, name="customer_interactions")


def customer_orders(viewer: Viewer, customer_key: str, limit: int = 500) -> pl.DataFrame:
    """A customer's orders, newest first, with revenue, margin and lines (scope in the SQL)."""
    if not has_table("marts.fct_orders"):
        return pl.DataFrame()
    return _run(f"""
        select order_id, order_date, status, sales_channel, owner_user_id, revenue, margin, lines, account_id
        from marts.fct_orders
        where customer_key = $key and {_CUSTOMER_SCOPE}
        order by order_date desc, order_id desc limit $limit""",  # noqa: S608 - constant scope clause
                {**_owner_params(viewer), "key": customer_key, "limit": limit}, name="customer_orders")


def customer_timeline(viewer: Viewer, customer_key: str, limit: int = 300) -> pl.DataFrame:
    """What happened with a customer, newest first: interactions, deals, tickets and orders."""
    if customer_360(viewer, customer_key) is None:
        return pl.DataFrame()
    parts: list[pl.DataFrame] = []
    interactions = customer_interactions(viewer, customer_key, limit)
    if interactions.height:
        parts.append(interactions.select(
            pl.col("occurred_at").alias("at"), pl.lit("interaction").alias("kind"),
            pl.col("channel").str.replace("_", " ").alias("what"),
            pl.concat_str([pl.col("direction").fill_null(""), pl.col("outcome").fill_null("")], separator=" · ")
            .alias("detail")))
    if has_table("marts.fct_opportunities"):
        # a deal's name carries the customer's name: masked roles see the deal's id instead
        parts.append(_run("""
            select created_at as at, 'deal' as kind,
                   'deal opened: ' || case when $names then opportunity_name else opportunity_id end as what,
                   stage || ', ' || printf('%.0f', amount) as detail
            from marts.fct_opportunities where customer_key = $key
            union all
            select closed_at, 'deal', 'deal ' || case when is_won then 'won' else 'lost' end || ': '
                   || case when $names then opportunity_name else opportunity_id end,
                   coalesce(lost_reason, '') || ' ' || printf('%.0f', amount)
            from marts.fct_opportunities where customer_key = $key and is_closed""",
                          {"key": customer_key, "names": not viewer.masked}, name="timeline_deals"))
    if has_table("marts.fct_tickets"):
        parts.append(_run("""
            select created_at as at, 'ticket' as kind, 'ticket ' || priority || ' / ' || category as what,
                   status || case when resolution_sla_met = false then ' - SLA missed' else '' end as detail
            from marts.fct_tickets where customer_key = $key""", {"key": customer_key}, name="timeline_tickets"))
    orders = customer_orders(viewer, customer_key, limit)
    if orders.height:
        parts.append(orders.select(
            pl.col("order_date").cast(pl.Datetime("us")).alias("at"), pl.lit("order").alias("kind"),
            (pl.lit("order ") + pl.col("order_id")).alias("what"),
            pl.format("{} · {} · {} line(s)", pl.col("status"), pl.col("revenue").round(0).cast(pl.Int64), pl.col("lines"))
            .alias("detail")))
    parts = [p.with_columns(pl.col("at").cast(pl.Datetime("us")), pl.col("detail").cast(pl.String))
             for p in parts if p.height]
    if not parts:
        return pl.DataFrame()
    return pl.concat(parts, how="vertical_relaxed").drop_nulls("at").sort("at", descending=True).head(limit)


def customer_deals(viewer: Viewer, customer_key: str) -> pl.DataFrame:
    if customer_360(viewer, customer_key) is None or not has_table("marts.fct_opportunities"):
        return pl.DataFrame()
    return mask(_run("""
        select opportunity_id, opportunity_name, stage, amount, expected_close_date, owner_user_id, created_at,
               closed_at from marts.fct_opportunities where customer_key = $key order by created_at desc""",
                     {"key": customer_key}, name="customer_deals"), viewer)


def customer_tickets(viewer: Viewer, customer_key: str) -> pl.DataFrame:
    if customer_360(viewer, customer_key) is None or not has_table("marts.fct_tickets"):
        return pl.DataFrame()
    return _run("""
        select ticket_id, priority, channel, category, status, created_at, first_response_hours,
               resolution_hours, resolution_sla_met, satisfaction_score
        from marts.fct_tickets where customer_key = $key order by created_at desc""",
                {"key": customer_key}, name="customer_tickets")


def customer_churn(viewer: Viewer, customer_key: str) -> dict[str, Any] | None:
    """The churn model's view of one customer: probability, band, the as-of cutoff and model version."""
    if not has_table(CHURN) or customer_360(viewer, customer_key) is None:
        return None
    frame = _run("""
        select churn_probability, risk_band, as_of_cutoff, model_version, scored_at
        from scores.churn_scores where customer_key = $key""", {"key": customer_key}, name="customer_churn")
    return frame.row(0, named=True) if frame.height else None


def churn_drivers(viewer: Viewer, customer_key: str) -> pl.DataFrame:
    """The churn model's top three drivers for one customer, one row each with its effect on the probability."""
    if not has_table(CHURN, "driver_1") or customer_360(viewer, customer_key) is None:
        return pl.DataFrame()
    return _run("""
        select rank, driver, effect from (
            select 1 as rank, driver_1 as driver, driver_1_effect as effect from scores.churn_scores
            where customer_key = $key
            union all
            select 2, driver_2, driver_2_effect from scores.churn_scores where customer_key = $key
            union all
            select 3, driver_3, driver_3_effect from scores.churn_scores where customer_key = $key
        ) where driver is not null order by rank""", {"key": customer_key}, name="churn_drivers")


def customer_clv(viewer: Viewer, customer_key: str) -> dict[str, Any] | None:
    """The CLV model's (BG/NBD + Gamma-Gamma) figures for one customer."""
    if not has_table(CLV) or customer_360(viewer, customer_key) is None:
        return None
    frame = _run("""
        select expected_purchases_12m, probability_alive, expected_average_spend, predicted_clv, model_version
        from scores.clv_scores where customer_key = $key""", {"key": customer_key}, name="customer_clv")
    return frame.row(0, named=True) if frame.height else None


def next_best_products(viewer: Viewer, customer_key: str) -> pl.DataFrame:
    """Suggested products for one customer, best first; `already_bought` tells up-sell from cross-sell."""
    if not has_table(NBP) or customer_360(viewer, customer_key) is None:
        return pl.DataFrame()
    return _run("""
        select rank, product_id, product_line, score,
               case when already_bought then 'up-sell (bought before)' else 'cross-sell (new)' end as kind,
               model_version
        from scores.next_best_product where customer_key = $key order by rank""",
                {"key": customer_key}, name="next_best_products")


def rfm_grid(viewer: Viewer) -> pl.DataFrame:
    """Customers and average 12-month revenue in each recency x frequency score cell."""
    if not has_table(C360):
        return pl.DataFrame()
    return _run("""
        select r_score, f_score, count(*) as customers, avg(revenue_12m) as avg_revenue_12m,
               mode(rfm_segment) as rfm_segment
        from marts.dim_customer_360
        where r_score is not null and not is_archived and /*owners*/ group by all order by r_score, f_score""",
                _owner_params(viewer), name="rfm_grid")


SEGMENT_DIMENSIONS = ("rfm_segment", "lifecycle_stage", "value_tier", "account_type", "region")


def segment_summary(viewer: Viewer, dimension: str = "rfm_segment") -> pl.DataFrame:
    """Segment sizes and value: customers, 12-month revenue and margin, lifetime CLV."""
    if dimension not in SEGMENT_DIMENSIONS or not has_table(C360):
        return pl.DataFrame()
    sql = f"""
        select {dimension} as segment, count(*) as customers, sum(revenue_12m) as revenue_12m,
               sum(margin_12m) as margin_12m, avg(historical_clv) as avg_clv,
               sum(revenue_12m) / sum(sum(revenue_12m)) over () as share_of_revenue
        from marts.dim_customer_360 where not is_archived and /*owners*/
        group by all order by revenue_12m desc nulls last"""  # noqa: S608 - dimension from a fixed list
    return _run(sql, _owner_params(viewer), name="segment_summary")


def cohort_retention(viewer: Viewer) -> pl.DataFrame:
    """Company-wide monthly cohort retention (cohorts are not owned by anyone)."""
    if not has_table("marts.fct_cohort_retention"):
        return pl.DataFrame()
    return _run("select cohort_month, months_since_first_order, cohort_size, retention_rate "
                "from marts.fct_cohort_retention order by cohort_month, months_since_first_order",
                name="cohort_retention")


def dynamic_segments(viewer: Viewer) -> pl.DataFrame:
    """The analyst-defined segments (segments/dynamic_segments.yml) with their size among the viewer's customers."""
    if not has_table("marts.fct_customer_dynamic_segments") or not has_table(C360):
        return pl.DataFrame()
    return _run("""
        select s.segment_name, any_value(s.segment_description) as description, count(*) as customers,
               sum(c.revenue_12m) as revenue_12m
        from marts.fct_customer_dynamic_segments s join marts.dim_customer_360 c using (customer_key)
        where /*owners*/ group by all order by customers desc""",
                _owner_params(viewer), name="dynamic_segments")


def dynamic_segment_members(viewer: Viewer, segment_name: str, limit: int = 500) -> pl.DataFrame:
    if not has_table("marts.fct_customer_dynamic_segments") or not has_table(C360):
        return pl.DataFrame()
    frame = _run("""
        select c.customer_key, c.customer_name, c.owner_user_id, c.rfm_segment, c.lifecycle_stage, c.value_tier,
               c.revenue_12m, c.lifetime_revenue
        from marts.fct_customer_dynamic_segments s join marts.dim_customer_360 c using (customer_key)
        where s.segment_name = $segment and /*owners*/ order by c.revenue_12m desc nulls last limit $limit""",
                 {**_owner_params(viewer), "segment": segment_name, "limit": limit}, name="dynamic_segment_members")
    return mask(frame, viewer)


WORKLIST_ORDER = ("risk", "value_at_risk")


def churn_worklist(viewer: Viewer, risk_band: str | None = None, owner_user_id: str | None = None,
                   order_by: str = "risk", limit: int = 500) -> pl.DataFrame:
    """The owners' churn work list: their scored customers, most likely to leave first (or most value at risk),
    with the model's top drivers and what is at stake.

    value_at_risk = churn probability x revenue of the last 12 months; clv_at_risk = churn probability x the
    CLV model's predicted value (when the CLV model has scored).
    """
    if not has_table(CHURN, "risk_band") or not has_table(C360):
        return pl.DataFrame()
    has_clv = has_table(CLV, "predicted_clv")
    sql = """
        select c.customer_key, c.customer_name, c.owner_user_id, c.owner_name, s.churn_probability,
               s.risk_band as churn_risk_band,
               concat_ws(' · ', s.driver_1, s.driver_2, s.driver_3) as top_drivers,
               s.driver_1_effect as top_driver_effect,
               c.revenue_12m, s.churn_probability * coalesce(c.revenue_12m, 0) as value_at_risk,
               /*clv*/ c.recency_days, c.days_since_last_interaction, c.open_tickets, c.overdue_amount,
               c.rfm_segment, c.lifecycle_stage,
               count(*) over () as customers_total,
               sum(s.churn_probability * coalesce(c.revenue_12m, 0)) over () as value_at_risk_total
        from scores.churn_scores s
        join marts.dim_customer_360 c on c.customer_key = s.customer_key /*clv_join*/
        where not c.is_archived
          and ($all_owners or c.owner_user_id in (select unnest($owner_ids::varchar[])))
          and ($band::varchar is null or s.risk_band = $band)
          and ($owner::varchar is null or c.owner_user_id = $owner)
        order by case when $by_value then s.churn_probability * coalesce(c.revenue_12m, 0)
                      else s.churn_probability end desc,
                 s.churn_probability desc, c.customer_key
        limit $limit"""
    sql = (sql.replace("/*clv*/", "v.predicted_clv, s.churn_probability * v.predicted_clv as clv_at_risk,"
                       if has_clv else "")
           .replace("/*clv_join*/", "left join scores.clv_scores v on v.customer_key = s.customer_key"
                    if has_clv else ""))
    frame = _run(sql, {**_owner_params(viewer), "band": risk_band, "owner": owner_user_id, "limit": limit,
                       "by_value": order_by == "value_at_risk"}, name="churn_worklist")
    return mask(frame, viewer)


def discount_violations(viewer: Viewer, limit: int = 500) -> pl.DataFrame:
    if not has_table("marts.fct_discount_violations"):
        return pl.DataFrame()
    return mask(_run("""
        select order_line_id, order_date, account_id, owner_user_id, owner_name, product_id, discount_pct,
               max_discount_pct, excess_discount_amount
        from marts.fct_discount_violations where /*owners*/ order by excess_discount_amount desc limit $limit""",
                     {**_owner_params(viewer), "limit": limit}, name="discount_violations"), viewer)


# --- records from the operational store (live, uncached: edits show at once) ------------------------------
#: What the record lists show and search, per editable entity.
RECORD_LIST = {
    "accounts": ("account_id", "account_name", ("account_id", "account_name", "account_type", "city", "country",
                                                "region", "owner_user_id", "is_archived", "version")),
    "contacts": ("contact_id", "last_name", ("contact_id", "account_id", "first_name", "last_name", "email",
                                             "job_title", "is_archived", "version")),
    "opportunities": ("opportunity_id", "opportunity_name", ("opportunity_id", "opportunity_name", "account_id",
                                                             "owner_user_id", "stage", "amount",
                                                             "expected_close_date", "is_archived", "version")),
    "tasks": ("task_id", "subject", ("task_id", "subject", "task_type", "status", "due_at", "owner_user_id",
                                     "account_id", "opportunity_id", "is_archived", "version")),
    "leads": ("lead_id", "last_name", ("lead_id", "first_name", "last_name", "company", "lead_source", "status",
                                       "owner_user_id", "created_at", "version")),
}
def list_records(viewer: Viewer, entity: str, search: str | None = None, include_archived: bool = False,
                 limit: int = 200) -> pl.DataFrame:
    """Records of one entity the viewer may see, newest change first, searched by id or name."""
    key, name, columns = RECORD_LIST[entity]
    clauses = ["1 = 1"]
    params: dict[str, Any] = {"lim": limit}
    if viewer.restricted:
        clauses.append(scope_sql(entity))
        params["ids"] = scope_ids(viewer)
    if search and search.strip():
        params["q"] = f"%{search.strip().lower()}%"
        # analysts cannot probe masked names: they search ids only
        clauses.append(f"(lower({key}) LIKE :q)" if viewer.masked else f"(lower({key}) LIKE :q OR lower({name}) LIKE :q)")
    if not include_archived and "is_archived" in columns:
        clauses.append("is_archived = :false")
        params["false"] = False
    # entity, columns and clauses come from the fixed maps above; values are bound parameters
    sql = text(f"SELECT {', '.join(columns)} FROM {entity} WHERE {' AND '.join(clauses)} "  # noqa: S608
               "ORDER BY updated_at DESC LIMIT :lim")
    if "ids" in params:
        sql = sql.bindparams(bindparam("ids", expanding=True))
    with operational_store().engine.connect() as conn:
        rows = conn.execute(sql, params).mappings().all()
    frame = pl.DataFrame([{c: (str(v) if v is not None and c not in ("version", "amount", "is_archived") else v)
                           for c, v in r.items()} for r in rows],
                         schema=None if rows else dict.fromkeys(columns, pl.String), infer_schema_length=None)
    return mask(frame, viewer)


def get_record(viewer: Viewer, entity: str, record_id: str) -> dict[str, Any] | None:
    """One record as stored now, if the viewer may see it (masked for analysts)."""
    store = operational_store()
    record = store.get(entity, record_id)
    if record is None or not may_see(viewer, store, entity, record):
        return None
    return mask_record(record, viewer)


def audit_for(viewer: Viewer, entity: str, record_id: str) -> pl.DataFrame:
    """Who changed a record, when, from what to what (only for records the viewer may see)."""
    if get_record(viewer, entity, record_id) is None:
        return pl.DataFrame()
    rows = operational_store().audit_rows(entity, record_id)
    out = []
    for row in reversed(rows):
        before = json.loads(row["before_json"]) if row["before_json"] else {}
        after = json.loads(row["after_json"]) if row["after_json"] else {}
        changed = sorted(k for k in set(before) | set(after)
                         if before.get(k) != after.get(k) and k not in ("version", "updated_at"))
        if viewer.masked:
            before, after = mask_record(before, viewer), mask_record(after, viewer)
        out.append({"when": str(row["occurred_at"])[:19], "who": row["actor"], "action": row["action"],
                    "fields": ", ".join(changed),
                    "before": "; ".join(f"{k}={before.get(k)}" for k in changed) if before else "",
                    "after": "; ".join(f"{k}={after.get(k)}" for k in changed)})
    return pl.DataFrame(out, schema={k: pl.String for k in ("when", "who", "action", "fields", "before", "after")})


def recent_audit(viewer: Viewer, limit: int = 100) -> pl.DataFrame:
    """The latest changes in the store (admins and managers; a manager sees their team's actors)."""
    if viewer.role not in ("admin", "manager"):
        return pl.DataFrame()
    params: dict[str, Any] = {"lim": limit}
    sql = text("SELECT occurred_at, actor, action, entity, record_id FROM audit_log "
               "ORDER BY occurred_at DESC LIMIT :lim")
    if viewer.restricted:
        params["ids"] = list(viewer.owner_ids or ("",))
        sql = text("SELECT occurred_at, actor, action, entity, record_id FROM audit_log WHERE actor IN :ids "
                   "ORDER BY occurred_at DESC LIMIT :lim").bindparams(bindparam("ids", expanding=True))
    with operational_store().engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sql, params).mappings()]
    return pl.DataFrame([{k: str(v) for k, v in r.items()} for r in rows]) if rows else pl.DataFrame()


def unassigned_leads(viewer: Viewer, limit: int = 500) -> pl.DataFrame:
    """Open leads nobody owns yet (what a manager distributes)."""
    if not viewer.can_assign:
        return pl.DataFrame()
    sql = text("SELECT lead_id, first_name, last_name, company, lead_source, status, created_at, version "
               "FROM leads WHERE owner_user_id IS NULL AND status IN ('new', 'working', 'qualified') "
               "ORDER BY created_at LIMIT :lim")
    with operational_store().engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sql, {"lim": limit}).mappings()]
    return mask(pl.DataFrame([{k: (str(v) if v is not None and k != "version" else v) for k, v in r.items()}
                              for r in rows]), viewer) if rows else pl.DataFrame()


def users_in_scope(viewer: Viewer) -> pl.DataFrame:
    """CRM users the viewer may pick as owners (ids and names; names masked for analysts)."""
    params: dict[str, Any] = {"t": True}
    sql = text("SELECT user_id, full_name, role, team_id FROM users WHERE is_active = :t ORDER BY user_id")
    if viewer.restricted:
        params["ids"] = list(viewer.owner_ids or ("",))
        sql = text("SELECT user_id, full_name, role, team_id FROM users WHERE is_active = :t AND user_id IN :ids "
                   "ORDER BY user_id").bindparams(bindparam("ids", expanding=True))
    with operational_store().engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sql, params).mappings()]
    return mask(pl.DataFrame(rows), viewer) if rows else pl.DataFrame()
