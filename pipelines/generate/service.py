"""Support tickets (SLA, response and resolution times, satisfaction), service contracts with
renewals, and reps' tasks.

Tickets come from the monthly simulation; the first ticket of a month flagged unresolved takes weeks
(or is still open), which is what raises the churn hazard the month after. Satisfaction is lower when
an SLA was breached.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.generate.catalog import Catalog
from pipelines.generate.churn import NEVER, Life
from pipelines.generate.common import DAY, HOUR, Clock, choice, dates, group_offsets, ids, ts
from pipelines.generate.customers import Customers
from pipelines.generate.deals import Deals
from pipelines.generate.org import Org

PRIORITIES = ["low", "medium", "high", "urgent"]
#: Planted SLA targets in hours by priority: (first response, resolution).
SLA_HOURS = {"low": (24.0, 120.0), "medium": (8.0, 72.0), "high": (4.0, 24.0), "urgent": (1.0, 8.0)}
TICKET_CHANNELS = ["email", "phone", "chat", "web"]
CATEGORIES = ["billing", "technical", "account", "product", "other"]
TASK_TYPES = ["call", "email", "follow_up", "meeting_prep", "demo"]
TASK_SUBJECT = {"call": "Call", "email": "Email", "follow_up": "Follow up with", "meeting_prep": "Prepare meeting with",
                "demo": "Demo for"}


def build_tickets(rng: np.random.Generator, clock: Clock, cust: Customers, life: Life, org: Org) -> pl.DataFrame:
    hist = clock.months
    c_idx, m_idx = np.nonzero(life.tickets[:, :hist])
    counts = life.tickets[c_idx, m_idx]
    parent, within = group_offsets(counts)
    c, m = c_idx[parent], m_idx[parent]
    n = len(c)
    lo = np.maximum(life.month_starts[m], cust.created[c])
    hi = np.minimum(np.minimum(life.month_starts[m + 1], life.churn_ts[c]), clock.end)
    created = lo + (rng.random(n) * np.maximum(hi - lo, 1)).astype(np.int64)
    long_open = life.unresolved[c, m] & (within == 0)
    prio = choice(rng, n, [0.3, 0.4, 0.2, 0.1])
    sla_first = np.array([SLA_HOURS[p][0] for p in PRIORITIES])[prio]
    sla_res = np.array([SLA_HOURS[p][1] for p in PRIORITIES])[prio]
    first_h = sla_first * np.exp(rng.normal(np.log(0.6), 0.8, n))
    res_h = np.where(long_open, rng.uniform(20, 60, n) * 24, np.maximum(sla_res * np.exp(rng.normal(np.log(0.6), 0.7, n)),
                                                                       first_h + 0.5))
    first_at = created + (first_h * HOUR).astype(np.int64)
    resolved_at = created + (res_h * HOUR).astype(np.int64)
    never = long_open & (rng.random(n) < 0.3)
    resolved_at = np.where(never, NEVER, resolved_at)
    has_first = first_at < clock.end
    resolved = resolved_at < clock.end
    breach = (first_h > sla_first) | (res_h > sla_res)
    score = 4.5 - 1.4 * breach - 1.0 * long_open + rng.normal(0, 0.7, n)
    score = np.clip(np.round(score), 1, 5).astype(np.int64)
    answered = resolved & (rng.random(n) < 0.65)
    status = np.where(resolved, np.where(resolved_at < clock.end - 7 * DAY, "closed", "resolved"),
                      np.where(has_first, "pending", "open"))
    updated = np.where(resolved, resolved_at, np.where(has_first, first_at, created))
    order = np.lexsort((c, created))
    assignee = np.where(cust.owner_rep[c] >= 0, cust.owner_rep[c], org.random_rep(rng, cust.region[c]))
    frame = pl.DataFrame({
        "account_id": cust.ids.gather(c),
        "contact_id": cust.contacts["contact_id"].gather(cust.first_contact[c]),
        "assigned_user_id": org.rep_ids[assignee],
        "priority": np.array(PRIORITIES)[prio],
        "channel": np.array(TICKET_CHANNELS)[choice(rng, n, [0.4, 0.25, 0.2, 0.15])],
        "category": np.array(CATEGORIES)[choice(rng, n, [0.25, 0.35, 0.15, 0.15, 0.1])],
        "status": status,
        "created_at": ts("created_at", created),
        "first_response_at": ts("first_response_at", first_at, valid=has_first),
        "resolved_at": ts("resolved_at", np.where(resolved, resolved_at, 0), valid=resolved),
        "sla_first_response_hours": sla_first,
        "sla_resolution_hours": sla_res,
        "satisfaction_score": pl.Series("satisfaction_score", score).to_frame().select(
            pl.when(pl.Series(answered)).then(pl.col("satisfaction_score"))).to_series(),
        "updated_at": ts("updated_at", np.minimum(updated, clock.end - 1)),
    })[order]
    return frame.insert_column(0, ids("TCK-", n, width=7).alias("ticket_id"))


def build_contracts(rng: np.random.Generator, clock: Clock, cust: Customers, life: Life,
                    catalog: Catalog) -> pl.DataFrame:
    """Yearly service contracts of B2B customers, renewed term after term until churn or non-renewal."""
    holders = np.flatnonzero(cust.is_b2b & (rng.random(cust.n) < 0.65))
    holders = holders[cust.created[holders] < clock.end - 30 * DAY]
    h = len(holders)
    year = 365 * DAY
    first_start = np.maximum(cust.created[holders] + rng.integers(0, 60, h) * DAY, clock.start - rng.integers(0, 365, h) * DAY)
    first_start -= first_start % DAY
    stop = np.minimum(life.churn_ts[holders], clock.end)
    terms = np.maximum((stop - first_start) // year + 1, 1)
    lapsed = (life.churn_ts[holders] == NEVER) & (rng.random(h) < 0.12) & (terms > 1)  # stopped renewing
    terms = np.where(lapsed, terms - 1, terms)
    parent, k = group_offsets(terms)
    start = first_start[parent] + k * year
    end = start + year
    is_last = k == terms[parent] - 1
    churned = life.churn_ts[holders[parent]] < clock.end
    status = np.where(~is_last, "renewed",
                      np.where(churned[...] , "cancelled", np.where(end <= clock.end, "expired", "active")))
    recurring = np.intersect1d(np.flatnonzero(np.isin(catalog.line, ["Software", "Support"])), catalog.sellable)
    product = recurring[rng.integers(0, len(recurring), h)]
    value = np.round(np.exp(rng.normal(np.log(6000), 0.5, h)) * np.sqrt(cust.employees[holders] / 50 + 0.5), -1)
    growth = (1.04 ** k)
    contract_ids = ids("CTR-", len(parent), width=6)
    prev = np.arange(len(parent)) - 1
    updated = np.where(status == "active", start, np.minimum(np.where(status == "cancelled",
                                                                      life.churn_ts[holders[parent]], end),
                                                             clock.end - 1))
    return pl.DataFrame({
        "contract_id": contract_ids,
        "account_id": cust.ids.gather(holders[parent]),
        "product_id": catalog.products["product_id"].gather(product[parent]),
        "start_date": dates("start_date", start),
        "end_date": dates("end_date", end),
        "annual_value": np.round(value[parent] * growth, 2),
        "status": status,
        "auto_renew": rng.random(len(parent)) < 0.7,
        "renewal_of_contract_id": pl.select(pl.when(pl.Series(k > 0)).then(contract_ids.gather(np.maximum(prev, 0))))
        .to_series().alias("renewal_of_contract_id"),
        "updated_at": ts("updated_at", updated),
    })


def build_tasks(rng: np.random.Generator, clock: Clock, cust: Customers, life: Life, deals: Deals,
                org: Org) -> pl.DataFrame:
    """Tasks around deals (1-3 each) and occasional account follow-ups; open ones past due are overdue."""
    per_deal = rng.integers(1, 4, len(deals.created))
    d, _ = group_offsets(per_deal)
    span = np.maximum(np.minimum(deals.close[d], clock.end) - deals.created[d], HOUR)
    created_d = deals.created[d] + (rng.random(len(d)) * span).astype(np.int64)
    owners = np.flatnonzero(cust.owner_rep >= 0)
    lo = np.maximum(cust.created[owners], clock.start)
    hi = np.minimum(life.churn_ts[owners], clock.end)
    count = rng.poisson(0.3 * np.maximum(hi - lo, 0) / (365.25 * DAY))
    a = np.repeat(owners, count)
    created_a = np.repeat(lo, count) + (rng.random(len(a)) * np.repeat(np.maximum(hi - lo, 1), count)).astype(np.int64)
    account = np.concatenate([deals.account[d], a])
    deal = np.concatenate([d, np.full(len(a), -1)])
    created = np.minimum(np.concatenate([created_d, created_a]), clock.end - HOUR)
    owner = np.concatenate([deals.owner_rep[d], cust.owner_rep[a]])
    order = np.lexsort((account, created))
    account, deal, created, owner = account[order], deal[order], created[order], owner[order]
    n = len(created)
    ttype = np.where(deal >= 0, choice(rng, n, [0.3, 0.2, 0.3, 0.1, 0.1]), choice(rng, n, [0.4, 0.3, 0.3, 0, 0]))
    due = created + rng.integers(1, 8, n) * DAY
    due = due - due % HOUR
    past = due < clock.end
    u = rng.random(n)
    status = np.where(past, np.where(u < 0.85, "done", np.where(u < 0.9, "cancelled", "open")), "open")
    completed = due + rng.integers(-2 * DAY, DAY, n)
    completed = np.clip(completed, created + HOUR, clock.end - 1)
    done = status == "done"
    has_reminder = rng.random(n) < 0.6
    subject = pl.select(pl.concat_str([pl.Series(np.array([TASK_SUBJECT[t] for t in TASK_TYPES])[ttype]),
                                       cust.accounts["account_name"].gather(account)], separator=" ")).to_series()
    return pl.DataFrame({
        "task_id": ids("TSK-", n, width=7),
        "owner_user_id": org.rep_ids[owner],
        "account_id": cust.ids.gather(account),
        "opportunity_id": pl.select(pl.when(pl.Series(deal >= 0)).then(
            deals.opportunities["opportunity_id"].gather(np.maximum(deal, 0)))).to_series().alias("opportunity_id"),
        "subject": subject,
        "task_type": np.array(TASK_TYPES)[ttype],
        "status": status,
        "due_at": ts("due_at", due),
        "reminder_at": ts("reminder_at", due - HOUR, valid=has_reminder),
        "completed_at": ts("completed_at", completed, valid=done),
        "created_at": ts("created_at", created),
        "is_archived": np.zeros(n, dtype=bool),
        "updated_at": ts("updated_at", np.where(done, completed, np.where(status == "cancelled",
                                                                           np.minimum(due, clock.end - 1), created))),
    })
