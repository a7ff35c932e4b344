"""Shared pieces of the generator: the fixed clock, random streams, ids and time columns.

Everything is computed in int64 seconds since the epoch (UTC, naive) with numpy and turned into polars
columns at the end, which keeps the simulation vectorised and free of wall-clock time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

#: The history ends on this day (inclusive), never "today", so output is deterministic.
AS_OF = date(2026, 10, 31)
DAY = 86_400
HOUR = 3_600
REGIONS = ["North", "South", "East", "West", "Central"]

# One number per simulated component: each gets its own random stream, so changing one component
# never shifts the random numbers of another.
STREAMS = {
    "org": 1, "catalog": 2, "campaigns": 3, "leads": 4, "customers": 5, "churn": 6, "orders": 7,
    "deals": 8, "finance": 9, "tickets": 10, "contracts": 11, "tasks": 12, "interactions": 13,
    "members": 14, "identity": 15, "faults": 16, "lead_details": 17,
}


def rng_for(seed: int, component: str) -> np.random.Generator:
    return np.random.default_rng([seed, STREAMS[component]])


@dataclass(frozen=True)
class Clock:
    """Month grid of the history: `months` whole months ending with the as-of month."""

    months: int

    @classmethod
    def for_years(cls, years: float) -> Clock:
        return cls(months=max(12, round(years * 12)))

    @property
    def end(self) -> int:
        """Exclusive end of the history: midnight after the as-of date."""
        return int(np.datetime64(AS_OF, "s").astype(np.int64)) + DAY

    @property
    def month_starts(self) -> np.ndarray:
        """Start (seconds) of each simulated month, plus 3 months after the as-of date (hazards only)."""
        last = np.datetime64(AS_OF, "M") + 1
        months = np.arange(last - self.months, last + 4)
        return months.astype("datetime64[s]").astype(np.int64)

    @property
    def start(self) -> int:
        return int(self.month_starts[0])

    @property
    def month_of_year(self) -> np.ndarray:
        """1..12 for each simulated month (history + 3)."""
        last = np.datetime64(AS_OF, "M") + 1
        months = np.arange(last - self.months, last + 4)
        return (months.astype(int) % 12) + 1

    def month_index(self, secs: np.ndarray) -> np.ndarray:
        """Index into the month grid for timestamps (negative before the start)."""
        months = secs.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
        first = np.datetime64(self.start, "s").astype("datetime64[M]").astype(np.int64)
        return months - first


def ids(prefix: str, n: int, width: int = 6, start: int = 1) -> pl.Series:
    """`prefix` + zero-padded running number, e.g. ACC-000001; width grows if n needs it."""
    width = max(width, len(str(start + n)))
    nums = pl.Series("id", np.arange(start, start + n, dtype=np.int64))
    return pl.select((pl.lit(prefix) + nums.cast(pl.String).str.zfill(width)).alias("id")).to_series()


def ts(name: str, secs: np.ndarray, valid: np.ndarray | None = None) -> pl.Series:
    """Datetime column from seconds; rows where `valid` is False become null."""
    s = pl.from_epoch(pl.Series(name, np.asarray(secs, dtype=np.int64)), time_unit="s").alias(name)
    if valid is not None:
        s = pl.select(pl.when(pl.Series(np.asarray(valid, dtype=bool))).then(s).otherwise(None).alias(name))
        s = s.to_series()
    return s.cast(pl.Datetime("us"))


def dates(name: str, secs: np.ndarray, valid: np.ndarray | None = None) -> pl.Series:
    return ts(name, secs, valid).dt.date().alias(name)


def pick(values: list, idx: np.ndarray, name: str) -> pl.Series:
    """Gather `values[idx]` as a polars column (fast for string tables)."""
    return pl.Series(name, values).gather(pl.Series(np.asarray(idx, dtype=np.int64)))


def nullable(series: pl.Series, valid: np.ndarray) -> pl.Series:
    name = series.name
    return pl.select(pl.when(pl.Series(np.asarray(valid, dtype=bool))).then(series).otherwise(None)
                     .alias(name)).to_series()


def choice(rng: np.random.Generator, n: int, probs: dict[str, float] | list[float]) -> np.ndarray:
    """Indices drawn with the given (normalised) probabilities."""
    p = np.array(list(probs.values()) if isinstance(probs, dict) else probs, dtype=float)
    return rng.choice(len(p), size=n, p=p / p.sum())


def uniform_in(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A uniform timestamp in [lo, hi) per row (hi > lo)."""
    span = np.maximum(np.asarray(hi) - np.asarray(lo), 1)
    return np.asarray(lo) + (rng.random(len(span)) * span).astype(np.int64)


def group_offsets(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows repeated `counts` times: (parent index of each child, position within its parent)."""
    parent = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    within = np.arange(len(parent)) - np.repeat(starts, counts)
    return parent, within
