"""Interaction logs on every channel, driven by each customer's simulated engagement.

While a customer is alive its monthly interaction count is Poisson(rate x engagement); after churn the
rate drops to 3% of normal. Each lead's first response by its owner is logged as an outbound call or
email at exactly `leads.first_response_at`.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.generate.churn import Life
from pipelines.generate.common import Clock, choice, ids, pick, ts
from pipelines.generate.customers import Customers
from pipelines.generate.marketing import Leads
from pipelines.generate.org import Org

CHANNELS = ["call", "email", "meeting", "chat", "web_visit", "form", "social", "event"]
B2C_MIX = [0.08, 0.25, 0.02, 0.10, 0.35, 0.08, 0.10, 0.02]
B2B_MIX = [0.20, 0.30, 0.15, 0.05, 0.15, 0.05, 0.05, 0.05]
OUTBOUND_SHARE = [0.6, 0.5, 1.0, 0.1, 0.0, 0.0, 0.3, 0.0]
#: Planted: interactions per customer-month at engagement 1 (log-engagement 0).
INTERACTION_RATE = {"B2C": 1.7, "B2B": 3.8}
AFTER_CHURN_FACTOR = 0.03
OUTCOME_CODES = ["completed", "no_answer", "voicemail", "replied", "opened", "clicked", "bounced", "attended",
                 "no_show", "submitted", "viewed"]
OUTCOMES = {
    "call": ({"completed": 0.6, "no_answer": 0.25, "voicemail": 0.15}, None),
    "email": ({"opened": 0.5, "clicked": 0.2, "replied": 0.25, "bounced": 0.05}, {"replied": 1.0}),
    "meeting": ({"attended": 0.9, "no_show": 0.1}, None),
    "chat": ({"completed": 1.0}, None),
    "web_visit": ({"viewed": 1.0}, None),
    "form": ({"submitted": 1.0}, None),
    "social": ({"viewed": 0.5, "clicked": 0.3, "replied": 0.2}, None),
    "event": ({"attended": 0.8, "no_show": 0.2}, None),
}


def build_interactions(rng: np.random.Generator, clock: Clock, cust: Customers, life: Life, leads: Leads,
                       org: Org, lead_ids: pl.Series) -> pl.DataFrame:
    lam = np.where(cust.is_b2b, INTERACTION_RATE["B2B"], INTERACTION_RATE["B2C"])
    cs, los, his = [], [], []
    for m in range(clock.months):
        lo_m, hi_m = life.month_starts[m], min(life.month_starts[m + 1], clock.end)
        a_lo = np.maximum(lo_m, cust.created)
        a_hi = np.minimum(hi_m, life.churn_ts)
        d_lo = np.maximum(a_lo, life.churn_ts)
        alive = np.clip((a_hi - a_lo) / (hi_m - lo_m), 0, 1)
        dead = np.clip((hi_m - d_lo) / (hi_m - lo_m), 0, 1)
        for frac, lo, hi, factor in ((alive, a_lo, a_hi, np.exp(life.log_engagement[:, m])),
                                     (dead, d_lo, np.full(cust.n, hi_m), AFTER_CHURN_FACTOR)):
            count = rng.poisson(lam * factor * frac)
            hit = np.flatnonzero(count)
            cs.append(np.repeat(hit, count[hit]))
            los.append(np.repeat(lo[hit], count[hit]))
            his.append(np.repeat(hi[hit], count[hit]))
    c = np.concatenate(cs)
    lo, hi = np.concatenate(los), np.concatenate(his)
    when = lo + (rng.random(len(c)) * np.maximum(hi - lo, 1)).astype(np.int64)
    n = len(c)
    b2b = cust.is_b2b[c]
    channel = np.where(b2b, choice(rng, n, B2B_MIX), choice(rng, n, B2C_MIX))
    outbound = rng.random(n) < np.array(OUTBOUND_SHARE)[channel]
    owner = cust.owner_rep[c]
    staff = (outbound | np.isin(channel, [0, 1, 2, 3]))
    user = np.where(owner >= 0, owner, org.random_rep(rng, cust.region[c]))
    user = np.where(staff, user, -1)
    contact = cust.first_contact[c] + (rng.random(n) * cust.n_contacts[c]).astype(np.int64)

    # first responses to leads
    responded = np.flatnonzero(leads.first_response >= 0)
    k = len(responded)
    l_channel = np.where(rng.random(k) < 0.5, 0, 1)
    all_when = np.concatenate([when, leads.first_response[responded]])
    all_channel = np.concatenate([channel, l_channel])
    all_out = np.concatenate([outbound, np.ones(k, dtype=bool)])
    all_user = np.concatenate([user, leads.owner_rep[responded]])
    all_acc = np.concatenate([c, np.full(k, -1)])
    all_contact = np.concatenate([contact, np.full(k, -1)])
    all_lead = np.concatenate([np.full(n, -1), responded])
    order = np.lexsort((all_lead, all_acc, all_when))
    when, channel, out, user, acc, contact, lead = (a[order] for a in (
        all_when, all_channel, all_out, all_user, all_acc, all_contact, all_lead))
    total = len(when)
    outcome, duration = _outcomes(rng, channel, out)
    lead_row = lead >= 0
    outcome = np.where(lead_row & (channel == 1), OUTCOME_CODES.index("opened"), outcome)
    has_duration = duration >= 0
    return pl.DataFrame({
        "interaction_id": ids("INT-", total, width=9),
        "occurred_at": ts("occurred_at", when),
        "channel": pick(CHANNELS, channel, "channel"),
        "direction": pick(["inbound", "outbound"], out.astype(np.int64), "direction"),
        "account_id": pl.select(pl.when(pl.Series(acc >= 0)).then(cust.ids.gather(np.maximum(acc, 0))))
        .to_series().alias("account_id"),
        "contact_id": pl.select(pl.when(pl.Series(contact >= 0)).then(
            cust.contacts["contact_id"].gather(np.maximum(contact, 0)))).to_series().alias("contact_id"),
        "lead_id": pl.select(pl.when(pl.Series(lead_row)).then(lead_ids.gather(np.maximum(lead, 0))))
        .to_series().alias("lead_id"),
        "user_id": pl.select(pl.when(pl.Series(user >= 0)).then(pl.Series(org.rep_ids[np.maximum(user, 0)])))
        .to_series().alias("user_id"),
        "duration_seconds": pl.select(pl.when(pl.Series(has_duration)).then(pl.Series(duration)))
        .to_series().alias("duration_seconds"),
        "outcome": pick(OUTCOME_CODES, outcome, "outcome"),
    })


def _outcomes(rng: np.random.Generator, channel: np.ndarray, outbound: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outcome (index into OUTCOME_CODES) and duration in seconds (-1 = none) for each interaction."""
    n = len(channel)
    code = np.zeros(n, dtype=np.int64)
    u = rng.random(n)
    for ci, name in enumerate(CHANNELS):
        out_mix, in_mix = OUTCOMES[name]
        for flag, mix in ((True, out_mix), (False, in_mix or out_mix)):
            rows = np.flatnonzero((channel == ci) & (outbound == flag))
            cum = np.cumsum(list(mix.values()))
            pos = np.minimum(np.searchsorted(cum, u[rows] * cum[-1]), len(cum) - 1)
            code[rows] = np.array([OUTCOME_CODES.index(o) for o in mix])[pos]
    z = rng.normal(0.0, 1.0, n)
    r = rng.random(n)
    completed, attended = OUTCOME_CODES.index("completed"), OUTCOME_CODES.index("attended")
    duration = np.full(n, -1.0)
    spoken = (channel == 0) & (code == completed)
    duration = np.where(spoken, np.exp(np.log(240) + 0.7 * z), duration)
    duration = np.where((channel == 0) & ~spoken, 20 + 40 * r, duration)
    duration = np.where(channel == 2, np.where(code == attended, 1800 + 3600 * r, 0), duration)
    duration = np.where(channel == 3, np.exp(np.log(420) + 0.6 * z), duration)
    duration = np.where(channel == 4, np.exp(np.log(150) + 0.9 * z), duration)
    duration = np.where(channel == 7, np.where(code == attended, 3600 + 7200 * r, 0), duration)
    return code, duration.astype(np.int64)
