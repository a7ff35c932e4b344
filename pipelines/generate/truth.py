"""Ground truth the pipeline never reads: what was planted, so tests can score marts and models.

- customers.parquet: per CRM account its person key, type, region, churn flag and date, planted
  engagement profile and the true probability of churning in the 3 months after the as-of date.
- churn_hazard.parquet: the monthly hazard of every customer alive at each month start (including the
  3 months after the as-of date), so P(churn in next 3 months | alive at cutoff) = 1 - prod(1 - h).
- identity.csv: account_id -> person_key for CRM and webshop accounts.
- signals.json: the planted parameters, the as-of date, the seed and counts per entity and file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.generate import churn as churn_model
from pipelines.generate import interactions as interaction_model
from pipelines.generate import marketing
from pipelines.generate.catalog import Catalog
from pipelines.generate.churn import NEVER, Life
from pipelines.generate.common import AS_OF, Clock, dates, ids
from pipelines.generate.customers import Customers
from pipelines.generate.identity import Webshop
from pipelines.generate.org import Org
from pipelines.generate.pricing import BELOW_FLOOR_SHARE
from pipelines.generate.service import SLA_HOURS


def person_keys(n: int) -> pl.Series:
    return ids("P-", n, width=6).alias("person_key")


def customers_truth(clock: Clock, cust: Customers, life: Life, webshop: Webshop) -> pl.DataFrame:
    hist = clock.months
    future = life.hazard[:, hist:hist + 3]
    p90 = 1 - np.prod(1 - future, axis=1)
    alive_at_as_of = life.at_risk[:, hist]
    churned = life.churn_ts < clock.end
    ws = np.full(cust.n, None, dtype=object)
    ws[webshop.customer] = webshop.ids.to_list()
    return pl.DataFrame({
        "account_id": cust.ids,
        "person_key": person_keys(cust.n),
        "account_type": np.where(cust.is_b2b, "B2B", "B2C"),
        "segment": np.where(cust.is_b2b, np.where(cust.employees > 250, "enterprise", "smb"), "consumer"),
        "region": cust.accounts["region"],
        "created_at": cust.accounts["created_at"],
        "churned": churned,
        "churn_date": dates("churn_date", np.where(churned, life.churn_ts, 0), valid=churned),
        "engagement_profile": np.where(life.decliner, "declining", "stable"),
        "base_engagement": np.round(life.base_engagement, 4),
        "late_payer": life.late_payer,
        "alive_at_as_of": alive_at_as_of,
        "p_churn_90d_after_as_of": pl.Series(np.round(p90, 6)).to_frame("p").select(
            pl.when(pl.Series(alive_at_as_of)).then(pl.col("p"))).to_series().alias("p_churn_90d_after_as_of"),
        "churns_within_90d_after_as_of": alive_at_as_of & (life.churn_ts != NEVER),
        "webshop_account_id": pl.Series(ws.tolist(), dtype=pl.String),
    })


def hazard_table(cust: Customers, life: Life) -> pl.DataFrame:
    c, m = np.nonzero(life.at_risk)
    return pl.DataFrame({
        "account_id": cust.ids.gather(c),
        "month_start": dates("month_start", life.month_starts[m]),
        "hazard": np.round(life.hazard[c, m], 8),
    })


def identity_table(cust: Customers, webshop: Webshop) -> pl.DataFrame:
    keys = person_keys(cust.n)
    return pl.concat([
        pl.DataFrame({"account_id": cust.ids, "person_key": keys, "source_system": "crm"}),
        pl.DataFrame({"account_id": webshop.ids, "person_key": keys.gather(webshop.customer),
                      "source_system": "webshop", }),
    ])


def signals(seed: int, customers: int, years: float, dirty: float, clock: Clock, org: Org, catalog: Catalog,
            campaigns: marketing.Campaigns, webshop: Webshop, counts: dict, files: dict) -> dict:
    return {
        "as_of": AS_OF.isoformat(),
        "history_start": str(np.datetime64(clock.start, "s").astype("datetime64[D]")),
        "seed": seed, "customers": customers, "years": years, "dirty_rate": dirty,
        "sales": {
            "trend_per_year": churn_model.TREND_PER_YEAR,
            "seasonality_by_month": {str(k): v for k, v in churn_model.SEASONALITY.items()},
            "holiday_uplift_by_month": {str(k): v for k, v in churn_model.HOLIDAY_UPLIFT.items()},
            "order_rate_per_customer_month": churn_model.ORDER_RATE,
        },
        "churn": {
            "hazard_logit_coefficients": churn_model.HAZARD,
            "decliner_share": churn_model.DECLINER_SHARE,
            "decline_per_month_log_engagement": churn_model.DECLINE_PER_MONTH,
            "late_payer_share": churn_model.LATE_PAYER_SHARE,
            "interaction_rate_per_month": interaction_model.INTERACTION_RATE,
            "after_churn_interaction_factor": interaction_model.AFTER_CHURN_FACTOR,
        },
        "reps": [
            {"user_id": str(u), "region": int(r), "win_rate": float(w), "median_response_hours": float(h),
             "discounts_below_floor": str(u) in org.below_floor_reps}
            for u, r, w, h in zip(org.rep_ids, org.rep_region, org.rep_win_rate, org.rep_response_hours,
                                  strict=True)
        ],
        "below_floor_reps": org.below_floor_reps,
        "below_floor_line_share": BELOW_FLOOR_SHARE,
        "lead_source_conversion": marketing.SOURCE_CONVERSION,
        "campaigns": [
            {"campaign_id": cid, "quality": float(q), "cost": float(c),
             "conversion": float(min(0.6, marketing.SOURCE_CONVERSION[marketing.LEAD_SOURCES[s]] * q))}
            for cid, q, c, s in zip(campaigns.frame["campaign_id"], campaigns.quality, campaigns.cost,
                                    campaigns.source, strict=True)
        ],
        "sla_hours": {k: {"first_response": v[0], "resolution": v[1]} for k, v in SLA_HOURS.items()},
        "identity": {"webshop_duplicates": len(webshop.customer),
                     "variations": dict(sorted(pl.Series(webshop.variation).value_counts()
                                               .iter_rows()))},
        "products_max_discount_pct": dict(zip(catalog.products["product_id"], catalog.max_discount.tolist(),
                                              strict=True)),
        "rows_per_entity": counts,
        "rows_per_file": files,
    }


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
