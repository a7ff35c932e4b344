"""Campaigns, leads and campaign members, with planted differences in quality between sources and
campaigns (conversion) and in cost (so ROI differs), and rep response speed to new leads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.generate.common import DAY, HOUR, Clock, choice, dates, ids, ts
from pipelines.generate.org import Org

LEAD_SOURCES = ["web", "referral", "event", "partner", "cold_call", "paid_search", "social"]
#: Planted: the share of leads from a source that convert into customers (campaign leads: times quality).
SOURCE_CONVERSION = {"web": 0.08, "referral": 0.32, "event": 0.15, "partner": 0.22, "cold_call": 0.04,
                     "paid_search": 0.07, "social": 0.05}
#: Volume share of leads that arrive without a campaign, by source.
SOURCE_VOLUME = {"web": 0.30, "referral": 0.12, "event": 0.05, "partner": 0.10, "cold_call": 0.30,
                 "paid_search": 0.08, "social": 0.05}
CAMPAIGN_CHANNELS = ["email", "paid_search", "social", "events", "webinar", "content", "partner"]
CHANNEL_SOURCE = {"email": "web", "paid_search": "paid_search", "social": "social", "events": "event",
                  "webinar": "event", "content": "web", "partner": "partner"}
CHANNEL_BUDGET = {"email": 4_000, "paid_search": 25_000, "social": 12_000, "events": 40_000,
                  "webinar": 6_000, "content": 9_000, "partner": 15_000}
CAMPAIGN_LEAD_SHARE = 0.45
REGION_WEIGHTS = [0.22, 0.22, 0.18, 0.20, 0.18]


@dataclass
class Campaigns:
    frame: pl.DataFrame
    start: np.ndarray
    end: np.ndarray
    source: np.ndarray   # lead source index each campaign's leads carry
    quality: np.ndarray  # planted conversion multiplier
    cost: np.ndarray


@dataclass
class Leads:
    created: np.ndarray
    source: np.ndarray
    campaign: np.ndarray         # -1 = none
    region: np.ndarray
    is_b2b: np.ndarray
    first: np.ndarray
    last: np.ndarray
    company: np.ndarray          # company-name index (B2B leads), -1 otherwise
    owner_rep: np.ndarray
    first_response: np.ndarray   # seconds, -1 = none yet
    converted: np.ndarray
    converted_at: np.ndarray     # seconds (valid where converted)
    conversion_rate: np.ndarray  # planted probability of each lead
    account: np.ndarray | None = None  # account index of converted leads (set by customers)


def trend_times(rng: np.random.Generator, n: int, lo: int, hi: int, growth_per_year: float) -> np.ndarray:
    """Timestamps in [lo, hi) whose density grows by `growth_per_year` (inverse-CDF sampling)."""
    years = (hi - lo) / (365.25 * DAY)
    g = np.log1p(growth_per_year) * years
    u = rng.random(n)
    frac = np.log1p(u * np.expm1(g)) / g if g > 0 else u
    return lo + (frac * (hi - lo)).astype(np.int64)


def build_campaigns(rng: np.random.Generator, clock: Clock) -> Campaigns:
    n = max(8, round((clock.months / 12) * 10))
    channel = np.arange(n) % len(CAMPAIGN_CHANNELS)
    rng.shuffle(channel)
    latest = clock.end - 120 * DAY
    start = np.sort(clock.start + (rng.random(n) * (latest - clock.start)).astype(np.int64))
    start = start - start % DAY
    end = start + rng.integers(14, 61, n) * DAY
    budget = np.array([CHANNEL_BUDGET[CAMPAIGN_CHANNELS[c]] for c in channel]) * rng.uniform(0.6, 1.6, n)
    budget = np.round(budget, -2)
    cost = np.round(budget * rng.uniform(0.75, 1.15, n), 2)
    quality = np.round(np.exp(rng.normal(0.0, 0.55, n)), 3)
    year = start.astype("datetime64[s]").astype("datetime64[Y]").astype(int) + 1970
    month = start.astype("datetime64[s]").astype("datetime64[M]").astype(int) % 12
    season = np.array(["Winter", "Spring", "Summer", "Autumn"])[(month % 12) // 3]
    names = [f"{y} {s} {CAMPAIGN_CHANNELS[c].replace('_', ' ').title()} #{i + 1}"
             for i, (y, s, c) in enumerate(zip(year, season, channel, strict=True))]
    frame = pl.DataFrame({
        "campaign_id": ids("CMP-", n, width=4),
        "campaign_name": names,
        "channel": [CAMPAIGN_CHANNELS[c] for c in channel],
        "start_date": dates("start_date", start),
        "end_date": dates("end_date", end),
        "budget": budget,
        "cost": cost,
        "updated_at": ts("updated_at", np.minimum(end + 5 * DAY, clock.end - 1)),
    })
    source = np.array([LEAD_SOURCES.index(CHANNEL_SOURCE[CAMPAIGN_CHANNELS[c]]) for c in channel])
    return Campaigns(frame=frame, start=start, end=end, source=source, quality=quality, cost=cost)


def build_leads(rng: np.random.Generator, clock: Clock, campaigns: Campaigns, org: Org,
                target_converted: int, n_first: int, n_last: int, n_company: int) -> Leads:
    # Cells: every source without a campaign, then every campaign (with its source).
    n_c = len(campaigns.source)
    base = np.array([SOURCE_CONVERSION[s] for s in LEAD_SOURCES])
    cell_source = np.concatenate([np.arange(len(LEAD_SOURCES)), campaigns.source])
    cell_campaign = np.concatenate([np.full(len(LEAD_SOURCES), -1), np.arange(n_c)])
    volume = np.concatenate([np.array(list(SOURCE_VOLUME.values())) * (1 - CAMPAIGN_LEAD_SHARE),
                             CAMPAIGN_LEAD_SHARE * campaigns.cost / campaigns.cost.sum()])
    conv = base[cell_source] * np.where(cell_campaign >= 0, campaigns.quality[np.maximum(cell_campaign, 0)], 1.0)
    conv = np.minimum(conv, 0.6)
    n_leads = max(50, round(target_converted / float((volume * conv).sum())))
    cell = choice(rng, n_leads, volume)
    source, campaign, rate = cell_source[cell], cell_campaign[cell], conv[cell]

    has_c = campaign >= 0
    created = trend_times(rng, n_leads, clock.start, clock.end - 2 * HOUR, 0.15)
    cs, ce = campaigns.start[np.maximum(campaign, 0)], campaigns.end[np.maximum(campaign, 0)]
    created = np.where(has_c, cs + (rng.random(n_leads) * (ce - cs)).astype(np.int64), created)
    created = created + rng.integers(8 * HOUR, 18 * HOUR, n_leads) - created % DAY  # office hours
    created = np.minimum(created, clock.end - HOUR)

    lag = np.clip(np.exp(rng.normal(np.log(18), 0.6, n_leads)), 2, 60) * DAY
    converted_at = created + lag.astype(np.int64)
    converted = (rng.random(n_leads) < rate) & (converted_at < clock.end)

    region = choice(rng, n_leads, REGION_WEIGHTS)
    owner = org.random_rep(rng, region)
    # Planted: each rep answers new leads at their own speed (lognormal around the rep's median).
    delay = org.rep_response_hours[owner] * np.exp(rng.normal(0.0, 0.7, n_leads)) * HOUR
    first_response = created + delay.astype(np.int64) + 60
    never = rng.random(n_leads) < 0.04
    first_response = np.where(never | (first_response >= clock.end), -1, first_response)
    converted &= (first_response >= 0) & (first_response < converted_at)

    is_b2b = rng.random(n_leads) < 0.3
    return Leads(
        created=created, source=source, campaign=campaign, region=region, is_b2b=is_b2b,
        first=rng.integers(0, n_first, n_leads), last=rng.integers(0, n_last, n_leads),
        company=np.where(is_b2b, rng.integers(0, n_company, n_leads), -1), owner_rep=owner,
        first_response=first_response, converted=converted, converted_at=converted_at, conversion_rate=rate,
    )


def leads_frame(rng: np.random.Generator, clock: Clock, leads: Leads, org: Org, account_ids: pl.Series,
                first_names: list[str], last_names: list[str], company_names: pl.Series) -> pl.DataFrame:
    n = len(leads.created)
    age_days = (clock.end - leads.created) / DAY
    responded = leads.first_response >= 0
    u = rng.random(n)
    status = np.where(age_days < 14, np.where(responded, "working", "new"),
                      np.where(u < 0.7, "disqualified", np.where(u < 0.9, "qualified", "working")))
    status = np.where(~responded & (age_days >= 14), "disqualified", status)
    status = np.where(leads.converted, "converted", status)
    first = pl.Series("first_name", first_names).gather(leads.first)
    last = pl.Series("last_name", last_names).gather(leads.last)
    company = company_names.gather(np.maximum(leads.company, 0))
    email = pl.select(
        pl.concat_str([first, last], separator=".").str.to_lowercase().str.replace_all(r"[^a-z.]", "")
         + pl.lit("@") + pl.Series(["mail", "web", "post"]).gather(np.arange(n) % 3) + pl.lit(".example")
    ).to_series()
    has_phone = rng.random(n) < 0.6
    phone = pl.Series([f"+49 {p} {n7}" for p, n7 in zip(
        rng.choice(["30", "40", "89", "69", "221"], n), rng.integers(1_000_000, 9_999_999, n), strict=True)])
    updated = np.maximum(leads.created, leads.first_response)
    updated = np.where(leads.converted, np.maximum(updated, leads.converted_at), updated)
    frame = pl.DataFrame({
        "lead_id": ids("LEAD-", n, width=6),
        "first_name": first,
        "last_name": last,
        "company": pl.select(pl.when(pl.Series(leads.is_b2b)).then(company)).to_series().alias("company"),
        "email": email,
        "phone": pl.select(pl.when(pl.Series(has_phone)).then(phone)).to_series().alias("phone"),
        "lead_source": np.array(LEAD_SOURCES)[leads.source],
        "campaign_id": None,
        "owner_user_id": org.rep_ids[leads.owner_rep],
        "status": status,
        "created_at": ts("created_at", leads.created),
        "first_response_at": ts("first_response_at", leads.first_response, valid=responded),
        "converted_at": ts("converted_at", leads.converted_at, valid=leads.converted),
        "converted_account_id": None,
        "updated_at": ts("updated_at", updated),
    })
    return frame


def attach_lead_refs(frame: pl.DataFrame, leads: Leads, campaigns: Campaigns,
                     account_ids: pl.Series) -> pl.DataFrame:
    """Fill campaign_id and converted_account_id once account ids exist."""
    camp = campaigns.frame["campaign_id"].gather(np.maximum(leads.campaign, 0))
    acc = account_ids.gather(np.maximum(leads.account, 0))
    return frame.with_columns(
        pl.when(pl.Series(leads.campaign >= 0)).then(camp).otherwise(None).alias("campaign_id"),
        pl.when(pl.Series(leads.converted)).then(acc).otherwise(None).alias("converted_account_id"),
    )


def campaign_members(rng: np.random.Generator, clock: Clock, campaigns: Campaigns, leads: Leads,
                     lead_ids: pl.Series, contact_ids: pl.Series, contact_created: np.ndarray) -> pl.DataFrame:
    """Leads a campaign produced (responded/converted) plus existing contacts it reached."""
    parts = []
    with_c = np.flatnonzero(leads.campaign >= 0)
    parts.append(pl.DataFrame({
        "campaign": leads.campaign[with_c], "contact": np.full(len(with_c), -1), "lead": with_c,
        "status": np.where(leads.converted[with_c], "converted", "responded"),
        "added_at": leads.created[with_c] - rng.integers(1, 72, len(with_c)) * HOUR,
        "responded_at": leads.created[with_c],
    }))
    for c in range(len(campaigns.start)):
        eligible = np.flatnonzero(contact_created < campaigns.start[c])
        size = min(len(eligible), max(5, int(len(contact_created) * 0.04 * rng.uniform(0.5, 1.5))))
        chosen = np.sort(rng.choice(eligible, size, replace=False)) if size else eligible[:0]
        q = min(campaigns.quality[c], 2.0)
        u = rng.random(size)
        status = np.select([u < 0.03 * q, u < 0.10 * q, u < 0.35], ["responded", "clicked", "opened"], "sent")
        added = campaigns.start[c] + rng.integers(0, 3, size) * DAY + rng.integers(8, 18, size) * HOUR
        responded = added + rng.integers(1, 10 * 24, size) * HOUR
        parts.append(pl.DataFrame({
            "campaign": np.full(size, c), "contact": chosen, "lead": np.full(size, -1), "status": status,
            "added_at": added, "responded_at": np.where(status == "responded", responded, -1),
        }))
    m = pl.concat(parts).sort(["campaign", "added_at", "contact", "lead"])
    n = m.height
    camp = m["campaign"].to_numpy()
    contact = m["contact"].to_numpy()
    lead = m["lead"].to_numpy()
    responded = m["responded_at"].to_numpy()
    added = np.minimum(m["added_at"].to_numpy(), clock.end - 1)
    return pl.DataFrame({
        "member_id": ids("CM-", n, width=7),
        "campaign_id": campaigns.frame["campaign_id"].gather(camp),
        "contact_id": pl.select(pl.when(pl.Series(contact >= 0)).then(
            contact_ids.gather(np.maximum(contact, 0)))).to_series().alias("contact_id"),
        "lead_id": pl.select(pl.when(pl.Series(lead >= 0)).then(
            lead_ids.gather(np.maximum(lead, 0)))).to_series().alias("lead_id"),
        "status": m["status"],
        "added_at": ts("added_at", added),
        "responded_at": ts("responded_at", responded, valid=(responded >= 0) & (responded < clock.end)),
        "updated_at": ts("updated_at", np.where((responded >= 0) & (responded < clock.end), responded, added)),
    })
