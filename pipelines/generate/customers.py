"""Accounts (B2B companies and B2C people) and their contacts.

About 45% of the customers exist before the history starts; the rest are acquired during it, most of
them through converted leads (so lead source and campaign quality show up in acquisition).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.generate.common import DAY, HOUR, REGIONS, Clock, choice, group_offsets, ids, pick, ts
from pipelines.generate.marketing import REGION_WEIGHTS, Leads, trend_times
from pipelines.generate.names import (
    AREA_CODES,
    CITIES,
    COMPANY_FORMS,
    COMPANY_KINDS,
    COMPANY_STEMS,
    FIRST_NAMES,
    INDUSTRIES,
    JOB_TITLES,
    LAST_NAMES,
)
from pipelines.generate.org import Org

B2B_SHARE = 0.3
PRE_EXISTING_SHARE = 0.45
EMAIL_PROVIDERS = ["mail.example", "web.example", "post.example", "inbox.example"]


def company_names() -> pl.Series:
    names = [f"{s} {k} {f}" for s in COMPANY_STEMS for k in COMPANY_KINDS for f in COMPANY_FORMS]
    return pl.Series("company", names)


@dataclass
class Customers:
    accounts: pl.DataFrame
    contacts: pl.DataFrame
    ids: pl.Series
    is_b2b: np.ndarray
    region: np.ndarray
    created: np.ndarray
    owner_rep: np.ndarray       # index into org reps, -1 = no owner
    first: np.ndarray
    last: np.ndarray
    employees: np.ndarray       # 0 for B2C
    first_contact: np.ndarray   # index of each account's first (primary) contact
    n_contacts: np.ndarray
    contact_created: np.ndarray

    @property
    def n(self) -> int:
        return len(self.created)


def _ascii(expr: pl.Expr) -> pl.Expr:
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss"), ("é", "e"), ("è", "e"), ("ç", "c"),
                 ("ł", "l"), ("ş", "s"), ("ı", "i"), ("á", "a"), ("í", "i"), ("ë", "e"), ("ó", "o")):
        expr = expr.str.replace_all(a, b, literal=True)
    return expr.str.replace_all(r"[^a-z0-9.\-]", "")


def phones(rng: np.random.Generator, region: np.ndarray) -> pl.Series:
    area = np.array([AREA_CODES[REGIONS[r]][k] for r, k in zip(region, rng.integers(0, 4, len(region)),
                                                                strict=True)])
    number = rng.integers(1_000_000, 9_999_999, len(region)).astype(str)
    return pl.select(pl.concat_str([pl.lit("+49 "), pl.Series(area), pl.lit(" "), pl.Series(number)])
                     ).to_series().alias("phone")


def build_customers(rng: np.random.Generator, clock: Clock, n: int, leads: Leads, org: Org) -> Customers:
    n_pre = round(PRE_EXISTING_SHARE * n)
    n_acq = n - n_pre
    conv = np.flatnonzero(leads.converted)
    conv = conv[np.argsort(leads.converted_at[conv], kind="stable")]
    if len(conv) > n_acq:  # more conversions than room: the latest stay qualified, not converted
        leads.converted[conv[n_acq:]] = False
        conv = conv[:n_acq]
    n_other = n_acq - len(conv)

    created = np.concatenate([
        clock.start - rng.integers(1, 6 * 365, n_pre) * DAY - rng.integers(0, DAY, n_pre),
        leads.converted_at[conv],
        trend_times(rng, n_other, clock.start, clock.end - HOUR, 0.15),
    ])
    is_b2b = np.concatenate([rng.random(n_pre) < B2B_SHARE, leads.is_b2b[conv], rng.random(n_other) < B2B_SHARE])
    region = np.concatenate([choice(rng, n_pre, REGION_WEIGHTS), leads.region[conv],
                             choice(rng, n_other, REGION_WEIGHTS)])
    first = np.concatenate([rng.integers(0, len(FIRST_NAMES), n_pre), leads.first[conv],
                            rng.integers(0, len(FIRST_NAMES), n_other)])
    last = np.concatenate([rng.integers(0, len(LAST_NAMES), n_pre), leads.last[conv],
                           rng.integers(0, len(LAST_NAMES), n_other)])
    companies = company_names()
    company = np.concatenate([rng.integers(0, len(companies), n_pre), np.maximum(leads.company[conv], 0),
                              rng.integers(0, len(companies), n_other)])
    company = np.where(company < 0, rng.integers(0, len(companies), n), company)
    owner = np.concatenate([np.full(n_pre, -1), leads.owner_rep[conv], np.full(n_other, -1)])
    needs_owner = (owner < 0) & (is_b2b | (rng.random(n) < 0.35))
    owner = np.where(needs_owner, org.random_rep(rng, region), owner)
    lead_of = np.concatenate([np.full(n_pre, -1), conv, np.full(n_other, -1)])

    order = np.argsort(created, kind="stable")  # ids follow creation order
    created, is_b2b, region, first, last, company, owner, lead_of = (
        a[order] for a in (created, is_b2b, region, first, last, company, owner, lead_of))
    leads.account = np.full(len(leads.created), -1)
    leads.account[lead_of[lead_of >= 0]] = np.flatnonzero(lead_of >= 0)

    account_ids = ids("ACC-", n, width=6)
    first_s, last_s = pick(FIRST_NAMES, first, "first"), pick(LAST_NAMES, last, "last")
    company_s = companies.gather(company)
    b2b = pl.Series(is_b2b)
    employees = np.where(is_b2b, np.round(np.exp(rng.normal(np.log(60), 1.3, n))).astype(np.int64) + 2, 0)
    city_idx = rng.integers(0, 7, n)
    city = pl.Series([CITIES[REGIONS[r]][c] for r, c in zip(region, city_idx, strict=True)])
    person_email = _ascii(pl.concat_str([first_s, last_s], separator=".").str.to_lowercase())
    suffix = pl.Series(rng.integers(1, 99, n)).cast(pl.String)
    provider = pick(EMAIL_PROVIDERS, rng.integers(0, len(EMAIL_PROVIDERS), n), "p")
    domain = _ascii(company_s.str.split(" ").list.first().str.to_lowercase())
    frame = pl.select(
        pl.when(b2b).then(company_s).otherwise(pl.concat_str([first_s, last_s], separator=" "))
        .alias("account_name"),
        pl.when(b2b).then(pl.lit("info@") + domain + pl.lit(".example"))
        .otherwise(person_email + suffix + pl.lit("@") + provider).alias("email"),
    )
    accounts = pl.DataFrame({
        "account_id": account_ids,
        "account_name": frame["account_name"],
        "account_type": np.where(is_b2b, "B2B", "B2C"),
        "industry": pl.select(pl.when(b2b).then(pick(INDUSTRIES, rng.integers(0, len(INDUSTRIES), n), "i")))
        .to_series().alias("industry"),
        "employees": pl.select(pl.when(b2b).then(pl.Series(employees))).to_series().alias("employees"),
        "email": frame["email"],
        "phone": phones(rng, region),
        "city": city,
        "country": "Germany",
        "region": np.array(REGIONS)[region],
        "owner_user_id": pl.select(pl.when(pl.Series(owner >= 0)).then(
            pl.Series(org.rep_ids[np.maximum(owner, 0)]))).to_series().alias("owner_user_id"),
        "source_system": "crm",
        "created_at": ts("created_at", created),
        "is_archived": np.zeros(n, dtype=bool),
        "updated_at": ts("updated_at", np.minimum(created + rng.integers(0, 400, n) * DAY, clock.end - 1)),
    })

    n_contacts = np.where(is_b2b, choice(rng, n, [0.2, 0.3, 0.25, 0.15, 0.1]) + 1, 1)
    parent, within = group_offsets(n_contacts)
    m = len(parent)
    first_contact = np.cumsum(n_contacts) - n_contacts
    c_b2b = is_b2b[parent]
    c_first = np.where(c_b2b, rng.integers(0, len(FIRST_NAMES), m), first[parent])
    c_last = np.where(c_b2b, rng.integers(0, len(LAST_NAMES), m), last[parent])
    cf, cl = pick(FIRST_NAMES, c_first, "first_name"), pick(LAST_NAMES, c_last, "last_name")
    c_created = np.minimum(created[parent] + within * rng.integers(10, 300, m) * DAY, clock.end - 1)
    contact_email = pl.select(
        pl.when(pl.Series(c_b2b)).then(
            _ascii(pl.concat_str([cf, cl], separator=".").str.to_lowercase()) + pl.lit("@")
            + domain.gather(parent) + pl.lit(".example"))
        .otherwise(frame["email"].gather(parent)).alias("email")).to_series()
    has_phone = rng.random(m) < 0.7
    contacts = pl.DataFrame({
        "contact_id": ids("CON-", m, width=7),
        "account_id": account_ids.gather(parent),
        "first_name": cf,
        "last_name": cl,
        "email": contact_email,
        "phone": pl.select(pl.when(pl.Series(has_phone)).then(phones(rng, region[parent]))).to_series()
        .alias("phone"),
        "job_title": pl.select(pl.when(pl.Series(c_b2b)).then(
            pick(JOB_TITLES, rng.integers(0, len(JOB_TITLES), m), "j"))).to_series().alias("job_title"),
        "is_primary": within == 0,
        "created_at": ts("created_at", c_created),
        "is_archived": np.zeros(m, dtype=bool),
        "updated_at": ts("updated_at", np.minimum(c_created + rng.integers(0, 200, m) * DAY, clock.end - 1)),
    })
    return Customers(accounts=accounts, contacts=contacts, ids=account_ids, is_b2b=is_b2b, region=region,
                     created=created, owner_rep=owner, first=first, last=last, employees=employees,
                     first_contact=first_contact, n_contacts=n_contacts, contact_created=c_created)
