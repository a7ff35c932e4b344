"""Teams, users and the planted traits of sales reps (win rate, response speed, discounting habit)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.generate.common import DAY, REGIONS, Clock, dates, ids, pick, ts
from pipelines.generate.names import FIRST_NAMES, LAST_NAMES

TEAM_KINDS = ["Enterprise", "Mid-Market", "Consumer"]


@dataclass
class Org:
    teams: pl.DataFrame
    users: pl.DataFrame
    rep_ids: np.ndarray          # user_id of each rep (strings)
    rep_region: np.ndarray       # region index of each rep
    rep_win_rate: np.ndarray     # planted base win probability of each rep's deals
    rep_response_hours: np.ndarray  # planted median hours to first response on a new lead
    below_floor_reps: list[str]  # reps who discount below the product floor

    def reps_in_region(self, region: int) -> np.ndarray:
        return np.flatnonzero(self.rep_region == region)

    def random_rep(self, rng: np.random.Generator, region: np.ndarray) -> np.ndarray:
        """A rep (index into rep arrays) of the same region for each row."""
        out = np.empty(len(region), dtype=np.int64)
        for r in range(len(REGIONS)):
            rows = np.flatnonzero(region == r)
            pool = self.reps_in_region(r)
            out[rows] = pool[rng.integers(0, len(pool), len(rows))]
        return out


def build_org(rng: np.random.Generator, customers: int, clock: Clock) -> Org:
    # Teams in region-major order so that even the smallest rep count covers every region.
    n_teams = 15
    team_region = np.arange(n_teams) % len(REGIONS)
    team_kind = np.arange(n_teams) // len(REGIONS)
    team_ids = ids("TEAM-", n_teams, width=2)
    teams = pl.DataFrame({
        "team_id": team_ids,
        "team_name": [f"{REGIONS[r]} {TEAM_KINDS[k]}" for r, k in zip(team_region, team_kind, strict=True)],
        "region": [REGIONS[r] for r in team_region],
        "updated_at": ts("updated_at", np.full(n_teams, clock.start - 400 * DAY)),
    })

    n_reps = max(8, round(customers / 400))
    roles = (["manager"] * n_teams + ["sales_rep"] * n_reps + ["admin"] * 2 + ["analyst"] * 3)
    n = len(roles)
    team_of = np.concatenate([np.arange(n_teams), np.arange(n_reps) % n_teams, np.full(5, -1)])
    first = rng.integers(0, len(FIRST_NAMES), n)
    last = rng.integers(0, len(LAST_NAMES), n)
    full = pl.select(pl.concat_str([pick(FIRST_NAMES, first, "f"), pick(LAST_NAMES, last, "l")],
                                   separator=" ")).to_series()
    user_ids = ids("U-", n, width=4)
    email = pl.select(
        pl.concat_str([pick(FIRST_NAMES, first, "f"), pick(LAST_NAMES, last, "l")], separator=".")
         .str.to_lowercase().str.replace_all("ü", "ue").str.replace_all("ö", "oe").str.replace_all("ä", "ae")
         .str.replace_all("ß", "ss").str.replace_all(r"[^a-z.]", "")
         + pl.lit(".") + pl.Series(np.arange(1, n + 1)).cast(pl.String) + pl.lit("@crm-demo.example")
    ).to_series()
    hired = clock.start - rng.integers(30, 8 * 365, n) * DAY
    users = pl.DataFrame({
        "user_id": user_ids,
        "full_name": full,
        "email": email,
        "role": roles,
        "team_id": pl.Series([team_ids[int(t)] if t >= 0 else None for t in team_of], dtype=pl.String),
        "hired_at": dates("hired_at", hired),
        "is_active": np.ones(n, dtype=bool),
        "updated_at": ts("updated_at", hired + 7 * DAY),
    })

    rep_rows = np.flatnonzero(np.array(roles) == "sales_rep")
    rep_ids = users["user_id"].to_numpy()[rep_rows]
    rep_region = team_region[team_of[rep_rows]]
    # Planted: reps differ in skill. Win rates spread between ~15% and ~50%, response speeds between
    # under an hour and more than a day (median hours to first touch on a new lead).
    rep_win_rate = np.round(0.15 + 0.35 * rng.beta(2.0, 2.0, n_reps), 3)
    rep_response_hours = np.round(np.exp(rng.normal(np.log(4.0), 1.0, n_reps)), 2)
    n_below = 2 if n_reps < 20 else 3
    below = sorted(rng.choice(rep_ids, n_below, replace=False).tolist())
    return Org(teams=teams, users=users, rep_ids=rep_ids, rep_region=rep_region, rep_win_rate=rep_win_rate,
               rep_response_hours=rep_response_hours, below_floor_reps=below)
