"""Opportunities moving through the pipeline and their stage history.

Each B2B customer opens deals over its life (a converted B2B lead starts with one). A deal passes each
of the four open stages with probability p^(1/4), where p is the planted win rate of its owner, so reps
differ in win rate; each stage lasts days to weeks (lognormal). Deals still running at the as-of date
are open in the stage they have reached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.generate.catalog import Catalog
from pipelines.generate.churn import NEVER, Life
from pipelines.generate.common import DAY, HOUR, Clock, dates, ids, ts
from pipelines.generate.customers import Customers
from pipelines.generate.marketing import LEAD_SOURCES, Campaigns, Leads
from pipelines.generate.org import Org
from pipelines.generate.pricing import discounts

OPEN_STAGES = ["prospecting", "qualification", "proposal", "negotiation"]
STAGE_MEDIAN_DAYS = [6.0, 9.0, 13.0, 10.0]
DEALS_PER_YEAR = 0.8
LOST_EARLY = {"no_budget": 0.35, "product_fit": 0.25, "timing": 0.2, "no_decision": 0.2}
LOST_LATE = {"price": 0.35, "competitor": 0.35, "no_decision": 0.15, "timing": 0.15}


@dataclass
class Deals:
    opportunities: pl.DataFrame
    stage_history: pl.DataFrame
    account: np.ndarray
    owner_rep: np.ndarray
    created: np.ndarray
    close: np.ndarray       # seconds; >= clock.end means still open
    won: np.ndarray
    product: np.ndarray
    quantity: np.ndarray
    unit_price: np.ndarray
    discount: np.ndarray


def build_deals(rng: np.random.Generator, clock: Clock, cust: Customers, life: Life, leads: Leads,
                campaigns: Campaigns, catalog: Catalog, org: Org, lead_ids: pl.Series) -> Deals:
    b2b = np.flatnonzero(cust.is_b2b)
    lo = np.maximum(cust.created[b2b], clock.start)
    end = np.where(life.churn_ts[b2b] == NEVER, clock.end, np.minimum(life.churn_ts[b2b] - 60 * DAY, clock.end))
    years = np.maximum(end - lo, 0) / (365.25 * DAY)
    count = rng.poisson(DEALS_PER_YEAR * years)
    account = np.repeat(b2b, count)
    created = np.repeat(lo, count) + (rng.random(len(account)) * np.repeat(np.maximum(end - lo, 1), count)
                                      ).astype(np.int64)
    lead = np.full(len(account), -1)
    # converted B2B leads open their first deal on the day they convert
    conv = np.flatnonzero(leads.converted & leads.is_b2b)
    account = np.concatenate([account, leads.account[conv]])
    created = np.concatenate([created, leads.converted_at[conv] + HOUR])
    lead = np.concatenate([lead, conv])
    keep = created < clock.end - HOUR
    account, created, lead = account[keep], created[keep], lead[keep]
    order = np.lexsort((account, created))
    account, created, lead = account[order], created[order], lead[order]
    n = len(account)

    owner = cust.owner_rep[account]
    p_win = org.rep_win_rate[owner]
    q = p_win ** 0.25
    passes = rng.random((n, 4)) < q[:, None]
    reached = np.where(passes.all(axis=1), 4, np.argmin(passes, axis=1))
    won = reached == 4
    dur = np.exp(rng.normal(np.log(STAGE_MEDIAN_DAYS), 0.6, (n, 4))) * DAY
    dur = dur.astype(np.int64)
    entry = created[:, None] + np.concatenate([np.zeros((n, 1), dtype=np.int64), np.cumsum(dur, axis=1)], axis=1)
    last_open = np.minimum(reached, 3)
    close = np.where(won, entry[:, 4], entry[np.arange(n), last_open] + dur[np.arange(n), last_open])

    # products: recurring software/support or services, sized by the company
    pool = np.flatnonzero(np.isin(catalog.line, ["Software", "Services", "Support"]))
    pool = np.intersect1d(pool, catalog.sellable)
    product = pool[rng.integers(0, len(pool), n)]
    emp = cust.employees[account]
    qty = np.where(catalog.line[product] == "Services", rng.integers(1, 4, n),
                   np.clip(np.round(emp / 10 * rng.uniform(0.3, 1.5, n)), 1, 200)).astype(np.int64)
    price_list = np.where(emp > 250, 2, 0)
    unit_price = catalog.unit_price(product, price_list, created)
    below = np.isin(org.rep_ids[owner], org.below_floor_reps)
    discount = discounts(rng, catalog.max_discount[product], below)
    amount = np.round(qty * unit_price * (1 - discount / 100), 2)

    is_open = close >= clock.end
    stage_idx = np.zeros(n, dtype=np.int64)
    for k in range(1, 4):
        stage_idx = np.where((reached >= k) & (entry[:, k] < clock.end), k, stage_idx)
    stage = np.where(is_open, np.array(OPEN_STAGES)[stage_idx], np.where(won, "closed_won", "closed_lost"))
    lost_stage_late = reached >= 2
    early = rng.choice(list(LOST_EARLY), n, p=list(LOST_EARLY.values()))
    late = rng.choice(list(LOST_LATE), n, p=list(LOST_LATE.values()))
    lost_reason = np.where(lost_stage_late, late, early)
    planned = created + (np.array(STAGE_MEDIAN_DAYS).sum() * rng.uniform(0.7, 1.6, n) * DAY).astype(np.int64)

    # stage history: entries into each stage reached, then the closing event
    k = np.arange(5)
    to_stage = np.array(OPEN_STAGES + ["closed"])
    ev_time = np.where(k[None, :] < 4, entry, close[:, None])
    ev_valid = ((k[None, :] <= last_open[:, None]) | (k[None, :] == 4)) & (ev_time < clock.end)
    deal_of, stage_of = np.nonzero(ev_valid)
    times = ev_time[deal_of, stage_of]
    to = to_stage[stage_of]
    to = np.where(to == "closed", np.where(won[deal_of], "closed_won", "closed_lost"), to)
    from_ = np.where(stage_of == 0, None, np.where(stage_of == 4, np.array(OPEN_STAGES)[last_open[deal_of]],
                                                   np.array([None] + OPEN_STAGES[:3])[np.minimum(stage_of, 3)]))
    last_event = np.zeros(n, dtype=np.int64)
    np.maximum.at(last_event, deal_of, times)

    opp_ids = ids("OPP-", n, width=6)
    products = catalog.products["product_id"].gather(product)
    acc_names = cust.accounts["account_name"].gather(account)
    has_lead = lead >= 0
    lead_source = np.where(has_lead, np.array(LEAD_SOURCES)[leads.source[np.maximum(lead, 0)]], None)
    lead_campaign = np.where(has_lead, leads.campaign[np.maximum(lead, 0)], -1)
    opportunities = pl.DataFrame({
        "opportunity_id": opp_ids,
        "account_id": cust.ids.gather(account),
        "owner_user_id": org.rep_ids[owner],
        "opportunity_name": pl.select(pl.concat_str([acc_names, catalog.products["product_name"].gather(product)],
                                                    separator=" - ")).to_series(),
        "stage": stage,
        "amount": amount,
        "expected_close_date": dates("expected_close_date",
                                     np.where(is_open, np.maximum(planned, clock.end), planned)),
        "product_id": products,
        "lead_id": pl.select(pl.when(pl.Series(has_lead)).then(lead_ids.gather(np.maximum(lead, 0))))
        .to_series().alias("lead_id"),
        "lead_source": pl.Series("lead_source", lead_source.tolist(), dtype=pl.String),
        "campaign_id": pl.select(pl.when(pl.Series(lead_campaign >= 0)).then(
            campaigns.frame["campaign_id"].gather(np.maximum(lead_campaign, 0)))).to_series().alias("campaign_id"),
        "lost_reason": pl.Series("lost_reason", np.where(~won & ~is_open, lost_reason, None).tolist(),
                                 dtype=pl.String),
        "created_at": ts("created_at", created),
        "closed_at": ts("closed_at", close, valid=~is_open),
        "is_archived": np.zeros(n, dtype=bool),
        "updated_at": ts("updated_at", last_event),
    })
    stage_history = pl.DataFrame({
        "stage_event_id": ids("SE-", len(deal_of), width=7),
        "opportunity_id": opp_ids.gather(deal_of),
        "from_stage": pl.Series("from_stage", from_.tolist(), dtype=pl.String),
        "to_stage": to,
        "changed_at": ts("changed_at", times),
        "changed_by_user_id": org.rep_ids[owner[deal_of]],
    })
    return Deals(opportunities=opportunities, stage_history=stage_history, account=account, owner_rep=owner,
                 created=created, close=close, won=won, product=product, quantity=qty, unit_price=unit_price,
                 discount=discount)

