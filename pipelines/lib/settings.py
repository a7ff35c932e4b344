"""An installation's own vocabulary and as-of date: `$CRM_HOME/crm.yaml` (format: docs/settings.md).

The import contract fixes only the values whose meaning the marts depend on (order status, interaction
direction, ...). What differs between companies lives here: the reporting currency and the rates of other
currencies, the ordered pipeline stages with their won/lost flags and default probabilities, the allowed
values of the business dimensions (open by default) and where the as-of date comes from. A missing file
means the defaults, which are the demo's world with every dimension open.

This module sits at the bottom with the home and the contract (it imports nothing above them):
ingestion validates rows against `Settings.contract()` and writes the settings into the warehouse schema
`settings` (`write_settings_tables`), which dbt reads as a source, so marts and portal follow them.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.contract import Contract, load_contract

SETTINGS_SCHEMA = "settings"
#: Vocabulary names a contract column can carry besides the dimensions.
STAGES, CURRENCY = "stages", "currency"
#: The business dimensions whose allowed values an installation may list (open = any value).
DIMENSIONS: dict[str, str] = {
    "region": "sales region of teams and accounts",
    "product_line": "product line of products",
    "lead_source": "where leads and deals come from",
    "campaign_channel": "marketing channel of campaigns",
    "lost_reason": "why a deal was lost",
    "ticket_category": "category of support tickets",
    "price_list": "price list of product prices",
    "sales_channel": "channel an order was placed through",
}
#: Symbols of common currencies for the portal's money figures; any other code is shown as the code.
CURRENCY_SYMBOLS: dict[str, str] = {
    "EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CNY": "CN¥", "INR": "₹", "KRW": "₩", "BRL": "R$",
    "CAD": "CA$", "AUD": "A$", "NZD": "NZ$", "MXN": "MX$", "HKD": "HK$", "SGD": "S$", "CHF": "CHF",
    "PLN": "zł", "CZK": "Kč", "HUF": "Ft", "SEK": "kr", "NOK": "kr", "DKK": "kr", "TRY": "₺", "ILS": "₪",
    "ZAR": "R", "THB": "฿", "PHP": "₱", "VND": "₫", "NGN": "₦", "UAH": "₴", "RUB": "₽",
}
_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")


class SettingsError(ValueError):
    """crm.yaml cannot be used; the message is one sentence naming the file, the key and what to do."""


class Stage(BaseModel):
    """One pipeline stage (as Salesforce's opportunity stages): won, lost or open, and its default probability."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    won: bool = False
    lost: bool = False
    probability: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_outcome(self) -> Stage:
        if self.won and self.lost:
            raise ValueError(f"stage {self.name!r} is marked both won and lost; keep one")
        return self

    @property
    def is_closed(self) -> bool:
        return self.won or self.lost


class Currency(BaseModel):
    """The reporting currency and how many reporting units one unit of each other currency is worth."""

    model_config = ConfigDict(extra="forbid")

    reporting: str = "EUR"
    rates: dict[str, float] = Field(default_factory=dict)

    @field_validator("reporting")
    @classmethod
    def _code(cls, value: str) -> str:
        if not _CURRENCY_CODE.match(value):
            raise ValueError(f"{value!r} is not an ISO 4217 code (three capital letters such as EUR or USD)")
        return value

    @field_validator("rates")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        for code, rate in value.items():
            if not _CURRENCY_CODE.match(str(code)):
                raise ValueError(f"{code!r} is not an ISO 4217 code (three capital letters such as USD)")
            if not rate > 0:
                raise ValueError(f"the rate of {code} must be a positive number (got {rate!r})")
        return value

    @property
    def symbol(self) -> str:
        return CURRENCY_SYMBOLS.get(self.reporting, self.reporting)

    @property
    def accepted(self) -> list[str]:
        """Currencies a row may carry: the reporting one first, then those with a rate."""
        return [self.reporting, *(c for c in self.rates if c != self.reporting)]

    def rate(self, code: str) -> float:
        return 1.0 if code == self.reporting else self.rates[code]


DEFAULT_STAGES: list[Stage] = [
    Stage(name="prospecting", probability=0.1),
    Stage(name="qualification", probability=0.2),
    Stage(name="proposal", probability=0.5),
    Stage(name="negotiation", probability=0.75),
    Stage(name="closed_won", won=True, probability=1.0),
    Stage(name="closed_lost", lost=True, probability=0.0),
]

DimensionValues = Literal["open"] | list[str]


class Settings(BaseModel):
    """The parsed crm.yaml. `Settings()` is the default installation (the demo's world, dimensions open)."""

    model_config = ConfigDict(extra="forbid")

    currency: Currency = Field(default_factory=Currency)
    stages: list[Stage] = Field(default_factory=lambda: [s.model_copy() for s in DEFAULT_STAGES])
    dimensions: dict[str, DimensionValues] = Field(default_factory=lambda: dict.fromkeys(DIMENSIONS, "open"))
    as_of: Literal["data", "live"] | date = "data"
    models: dict[str, Any] = Field(default_factory=dict)

    @field_validator("dimensions", mode="before")
    @classmethod
    def _known_dimensions(cls, value: Any) -> Any:
        if isinstance(value, dict):
            unknown = [k for k in value if k not in DIMENSIONS]
            if unknown:
                raise ValueError(f"{unknown[0]!r} is not a dimension; use one of {', '.join(DIMENSIONS)}")
            for name, values in value.items():
                if values is None:
                    value[name] = "open"
                elif isinstance(values, list):
                    value[name] = [str(v) for v in values]
        return value

    @field_validator("dimensions")
    @classmethod
    def _non_empty(cls, value: dict[str, DimensionValues]) -> dict[str, DimensionValues]:
        for name, values in value.items():
            if isinstance(values, list) and not values:
                raise ValueError(f"dimension {name} lists no values; list at least one or write `open`")
        return {name: value.get(name, "open") for name in DIMENSIONS}  # an unnamed dimension is open

    @field_validator("as_of", mode="before")
    @classmethod
    def _as_of(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in ("data", "live"):
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r} is neither data, live nor a date like 2026-10-31") from None
        return value

    @field_validator("stages")
    @classmethod
    def _stage_list(cls, stages: list[Stage]) -> list[Stage]:
        names = [s.name for s in stages]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"stage {repeated[0]!r} is listed twice; name each stage once")
        if sum(s.won for s in stages) != 1:
            raise ValueError("exactly one stage must be marked `won: true`")
        if not any(s.lost for s in stages):
            raise ValueError("at least one stage must be marked `lost: true`")
        if not any(not s.is_closed for s in stages):
            raise ValueError("at least one open stage (neither won nor lost) must come first")
        first_closed = next(i for i, s in enumerate(stages) if s.is_closed)
        if any(not s.is_closed for s in stages[first_closed:]):
            raise ValueError("open stages must all come before the won and lost stages")
        return stages

    # --- the vocabulary ---------------------------------------------------------------------------
    @property
    def open_stages(self) -> list[Stage]:
        return [s for s in self.stages if not s.is_closed]

    @property
    def won_stage(self) -> Stage:
        return next(s for s in self.stages if s.won)

    def stage_order(self, stage: Stage) -> int | None:
        """Funnel order: open stages 1..n as listed, the won stage n + 1, lost stages none (they leave it)."""
        if stage.lost:
            return None
        return len(self.open_stages) + 1 if stage.won else self.open_stages.index(stage) + 1

    def allowed(self, vocabulary: str) -> list[str] | None:
        """Values a column of this vocabulary accepts; None = any value (an open dimension)."""
        if vocabulary == STAGES:
            return [s.name for s in self.stages]
        if vocabulary == CURRENCY:
            return self.currency.accepted
        if vocabulary not in DIMENSIONS:
            raise KeyError(f"the contract names vocabulary {vocabulary!r}, which crm.yaml does not define")
        values = self.dimensions[vocabulary]
        return None if values == "open" else list(values)

    def contract(self, base: Contract | None = None) -> Contract:
        """The import contract with this installation's allowed values on every vocabulary column."""
        base = base or load_contract()
        entities = {}
        for name, entity in base.entities.items():
            columns = [c.model_copy(update={"allowed": self.allowed(c.vocabulary)}) if c.vocabulary else c
                       for c in entity.columns]
            entities[name] = entity.model_copy(update={"columns": columns})
        return base.model_copy(update={"entities": entities})


def load_settings(path: Path) -> Settings:
    """Read crm.yaml; a missing file gives the defaults. Raises SettingsError with one sentence."""
    if not path.exists():
        return Settings()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SettingsError(f"{path} is not valid YAML{where}; fix the syntax (see docs/settings.md).") from None
    except ValueError as exc:  # a date YAML reads as one but the calendar has not (as_of: 2026-13-45)
        raise SettingsError(f"{path} holds a date that does not exist ({exc}); write a real date like "
                            "2026-10-31 (see docs/settings.md).") from None
    if data is None:
        return Settings()
    if not isinstance(data, dict):
        raise SettingsError(f"{path} must be a mapping of settings (currency, stages, dimensions, as_of, models).")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        # union members show up in the location as e.g. "literal['open']": keep only the keys of the file
        key = ".".join(str(p) for p in error["loc"] if "[" not in str(p)) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        if error["type"] == "extra_forbidden":
            message = "not a setting; remove it or check its spelling (see docs/settings.md)"
        elif error["type"] in ("literal_error", "list_type") and key.startswith("dimensions."):
            message = "write `open` or a list of values"
        raise SettingsError(f"{path}: {key}: {message}.") from None


# --- the commented file `crm store migrate` writes --------------------------------------------------------

def render_settings(settings: Settings | None = None, header: str | None = None) -> str:
    """crm.yaml with a comment on every key; `load_settings` of the text gives `settings` back."""
    settings = settings or Settings()
    out = [f"# {line}".rstrip() for line in (header or _DEFAULT_HEADER).splitlines()]
    out += [
        "",
        "# Money: amounts are reported in `reporting` (any ISO 4217 code). An order in another currency is",
        "# converted with `rates` (USD: 0.92 means 1 USD = 0.92 reporting units); an order in a currency without",
        "# a rate is quarantined as unknown_currency.",
        "currency:",
        f"  reporting: {settings.currency.reporting}",
        "  rates: {" + ", ".join(f"{c}: {r!r}" for c, r in settings.currency.rates.items()) + "}",
        "",
        "# Pipeline stages in funnel order: open stages first, then exactly one won stage and the lost ones.",
        "# probability: the default chance a deal in the stage is won, used while history has no closed deal.",
        "stages:",
    ]
    for stage in settings.stages:
        flags = (", won: true" if stage.won else "") + (", lost: true" if stage.lost else "")
        out.append(f"  - {{name: {_scalar(stage.name)}{flags}, probability: {stage.probability!r}}}")
    out += [
        "",
        "# Allowed values of the business dimensions: `open` accepts any value; a list accepts only those",
        "# (others are quarantined as not_allowed_value).",
        "dimensions:",
    ]
    for name, meaning in DIMENSIONS.items():
        values = settings.dimensions[name]
        text = "open" if values == "open" else "[" + ", ".join(_scalar(v) for v in values) + "]"
        out.append(f"{f'  {name}: {text}':<38}  # {meaning}")
    as_of = settings.as_of if isinstance(settings.as_of, str) else settings.as_of.isoformat()
    out += [
        "",
        "# The as-of date (the data's today) every mart measures against: `data` = the latest event in the",
        "# data (orders, interactions, deals, tickets, ...); `live` = the machine's date (data that is kept",
        "# current); or a fixed date like 2026-10-31.",
        f"as_of: {as_of}",
        "",
        "# Model settings.",
        "models: {}" if not settings.models else "models:\n" + _indent(yaml.safe_dump(settings.models)),
        "",
    ]
    return "\n".join(out)


_DEFAULT_HEADER = """\
Settings of this CRM installation (docs/settings.md). Written with the defaults by `crm store migrate`;
edit it and the next `crm run` uses it."""


def _scalar(value: str) -> str:
    dumped = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip()
    return dumped.removesuffix("\n...").removesuffix("...").strip()


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def write_default_settings(path: Path) -> bool:
    """Write the commented default crm.yaml unless the file exists; True when it was written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_settings(), encoding="utf-8")
    return True


# --- the settings in the warehouse (read by dbt as source `settings`) --------------------------------------

def settings_tables(settings: Settings) -> dict[str, tuple[dict[str, str], list[tuple]]]:
    """Table name -> (column types, rows) of the `settings` schema."""
    stages = [(s.name, i + 1, settings.stage_order(s), s.won, s.lost, s.probability)
              for i, s in enumerate(settings.stages)]
    currency = settings.currency
    currencies = [(code, currency.rate(code), code == currency.reporting,
                   CURRENCY_SYMBOLS.get(code, code)) for code in currency.accepted]
    fixed = isinstance(settings.as_of, date)
    as_of = [("fixed", settings.as_of) if fixed else (settings.as_of, None)]
    return {
        "stages": ({"stage": "VARCHAR", "stage_position": "BIGINT", "stage_order": "BIGINT", "is_won": "BOOLEAN",
                    "is_lost": "BOOLEAN", "default_probability": "DOUBLE"}, stages),
        "currencies": ({"currency": "VARCHAR", "rate_to_reporting": "DOUBLE", "is_reporting": "BOOLEAN",
                        "symbol": "VARCHAR"}, currencies),
        "as_of": ({"as_of_mode": "VARCHAR", "fixed_date": "DATE"}, as_of),
    }


def write_settings_tables(con: Any, settings: Settings) -> None:
    """Replace the `settings` schema's tables on a DuckDB connection (inside the caller's transaction)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SETTINGS_SCHEMA}")
    for table, (columns, rows) in settings_tables(settings).items():
        body = ", ".join(f"{name} {kind}" for name, kind in columns.items())
        con.execute(f"CREATE OR REPLACE TABLE {SETTINGS_SCHEMA}.{table} ({body})")
        if rows:
            marks = ", ".join("?" for _ in columns)
            con.executemany(f"INSERT INTO {SETTINGS_SCHEMA}.{table} VALUES ({marks})", rows)  # noqa: S608
