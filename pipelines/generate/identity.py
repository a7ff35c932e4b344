"""The webshop export: about 3% of B2C customers also have a webshop account under another id and a
slightly different spelling (typos, case, missing accents, swapped names, email case, phone format)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.generate.common import DAY, REGIONS, Clock, ids, ts
from pipelines.generate.customers import Customers
from pipelines.generate.names import FIRST_NAMES, LAST_NAMES

DUPLICATE_SHARE = 0.03
VARIATIONS = ["typo", "case", "accents", "swap", "email_case", "phone_format"]


@dataclass
class Webshop:
    accounts: pl.DataFrame
    customer: np.ndarray     # CRM customer index of each webshop account
    ids: pl.Series
    variation: list[str]


def _strip_accents(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.replace("ß", "ss").replace("ł", "l").replace("ı", "i"))
    return "".join(c for c in folded if not unicodedata.combining(c))


def _typo(text: str, r: float) -> str:
    if len(text) < 4:
        return text + text[-1]
    i = 1 + int(r * (len(text) - 2))
    return text[:i] + text[i + 1] + text[i] + text[i + 2:] if r < 0.5 else text[:i] + text[i + 1:]


def _phone(phone: str, k: int) -> str:
    digits = phone.replace("+49 ", "0").replace(" ", "")
    return [digits, "+49" + digits[1:], phone.replace(" ", "-"), "(0" + phone[4:].replace(" ", ") ", 1)][k % 4]


def build_webshop(rng: np.random.Generator, clock: Clock, cust: Customers) -> Webshop:
    b2c = np.flatnonzero(~cust.is_b2b)
    n = max(1, round(DUPLICATE_SHARE * len(b2c)))
    chosen = np.sort(rng.choice(b2c, n, replace=False))
    kind = rng.integers(0, len(VARIATIONS), n)
    extra = rng.integers(0, len(VARIATIONS), n)
    r = rng.random(n)
    accounts = cust.accounts
    email = accounts["email"].gather(chosen).to_list()
    phone = accounts["phone"].gather(chosen).to_list()
    names, emails, phones, labels = [], [], [], []
    for i, c in enumerate(chosen):
        first, last = FIRST_NAMES[cust.first[c]], LAST_NAMES[cust.last[c]]
        e, p = email[i], phone[i]
        kinds = {VARIATIONS[kind[i]], VARIATIONS[extra[i]]}
        if "accents" in kinds and _strip_accents(first + last) == first + last:
            kinds.discard("accents")
            kinds.add("typo")
        if "typo" in kinds:
            last = _typo(last, r[i])
        if "accents" in kinds:
            first, last = _strip_accents(first), _strip_accents(last)
        name = f"{last}, {first}" if "swap" in kinds else f"{first} {last}"
        if "case" in kinds:
            name = name.upper() if r[i] < 0.5 else name.lower()
        if "email_case" in kinds:
            e = e.upper() if r[i] < 0.5 else e[0].upper() + e[1:]
        if "phone_format" in kinds:
            p = _phone(p, int(r[i] * 40))
        names.append(name)
        emails.append(e)
        phones.append(p)
        labels.append("+".join(sorted(kinds)))
    created = np.minimum(np.maximum(cust.created[chosen], clock.start - 400 * DAY)
                         + rng.integers(1, 300, n) * DAY, clock.end - DAY)
    ws_ids = ids("WS-", n, width=6, start=int(rng.integers(100, 900)))
    frame = pl.DataFrame({
        "account_id": ws_ids,
        "account_name": names,
        "account_type": "B2C",
        "industry": pl.Series([None] * n, dtype=pl.String),
        "employees": pl.Series([None] * n, dtype=pl.Int64),
        "email": emails,
        "phone": phones,
        "city": accounts["city"].gather(chosen),
        "country": "Germany",
        "region": np.array(REGIONS)[cust.region[chosen]],
        "owner_user_id": pl.Series([None] * n, dtype=pl.String),
        "source_system": "webshop",
        "created_at": ts("created_at", created),
        "is_archived": np.zeros(n, dtype=bool),
        "updated_at": ts("updated_at", np.minimum(created + rng.integers(0, 200, n) * DAY, clock.end - 1)),
    })
    return Webshop(accounts=frame, customer=chosen, ids=ws_ids, variation=labels)
