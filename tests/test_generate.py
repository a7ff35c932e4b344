"""The demo-data generator: determinism, planted signals, the fault manifest and referential integrity.

One small generation per module (plus a second one for the determinism check); every test reads the
files back the way an importer would.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.contract import load_contract
from pipelines.contract.validate import ROW, to_text, validate_frame
from pipelines.generate.run import LANDING, STORE_ENTITIES, generate_home
from pipelines.lib.home import CrmHome
from pipelines.lib.store import OperationalStore

CUSTOMERS, SEED, DIRTY = 1200, 7, 0.03
VALUE_KINDS = {"invalid_type", "missing_required", "out_of_range", "bad_encoding"}


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> CrmHome:
    h = CrmHome(tmp_path_factory.mktemp("gen_a"))
    generate_home(h, customers=CUSTOMERS, seed=SEED, dirty=DIRTY, years=3)
    return h


@pytest.fixture(scope="module")
def manifest(home) -> pl.DataFrame:
    return pl.read_csv(home.ground_truth / "dirty_rows.csv", schema_overrides={"field": pl.String})


@pytest.fixture(scope="module")
def signals(home) -> dict:
    return json.loads((home.ground_truth / "signals.json").read_text())


def _read_text_rows(path: Path, fmt: str) -> tuple[pl.DataFrame, set[int]]:
    """Rows of one landing file as text columns with `__row` = physical line (row for Parquet);
    malformed CSV lines are returned separately."""
    if fmt == "parquet":
        return to_text(pl.read_parquet(path).with_row_index(ROW, offset=1)), set()
    raw = path.read_bytes().decode("utf-8", errors="replace")
    if fmt == "csv":
        reader = csv.reader(io.StringIO(raw))
        header = next(reader)
        rows, lines, malformed = [], [], set()
        for line_no, fields in enumerate(reader, start=2):
            if len(fields) != len(header):
                malformed.add(line_no)
                continue
            rows.append([v if v != "" else None for v in fields])  # empty field = null
            lines.append(line_no)
        frame = pl.DataFrame(rows, schema=dict.fromkeys(header, pl.String), orient="row")
        return frame.with_columns(pl.Series(ROW, lines, dtype=pl.Int64)), malformed
    records = []
    for line_no, line in enumerate(raw.splitlines(), start=1):
        obj = json.loads(line)
        rec = {k: (None if v is None else ("true" if v is True else "false" if v is False else str(v)))
               for k, v in obj.items()}
        rec[ROW] = line_no
        records.append(rec)
    return pl.DataFrame(records, infer_schema_length=None), set()


@pytest.fixture(scope="module")
def landing(home) -> dict[str, pl.DataFrame]:
    """Every landing entity as text rows with `__row` and `__file` (malformed lines as `__malformed`)."""
    out = {}
    for name, (fmt, _) in LANDING.items():
        parts = []
        for path in sorted((home.landing / name).iterdir()):
            frame, malformed = _read_text_rows(path, fmt)
            rel = f"{name}/{path.name}"
            parts.append(frame.with_columns(pl.lit(rel).alias("__file")))
            if malformed:
                parts.append(pl.DataFrame({ROW: sorted(malformed), "__file": rel, "__malformed": True}))
        out[name] = pl.concat(parts, how="diagonal_relaxed").with_columns(pl.col(ROW).cast(pl.Int64))
    return out


@pytest.fixture(scope="module")
def store(home) -> dict[str, pl.DataFrame]:
    s = OperationalStore(home.operational_db_url)
    try:
        return {name: s.read_frame(name) for name in STORE_ENTITIES}
    finally:
        s.dispose()


def _faulty(manifest: pl.DataFrame, entity: str) -> set[tuple[str, int]]:
    m = manifest.filter(pl.col("entity") == entity)
    return set(zip(m["file"], m["line"], strict=True))


def _clean(frame: pl.DataFrame, manifest: pl.DataFrame, entity: str) -> pl.DataFrame:
    bad = _faulty(manifest, entity)
    keep = [(f, r) not in bad for f, r in zip(frame["__file"], frame[ROW], strict=True)]
    out = frame.filter(pl.Series(keep))
    return out.filter(pl.col("__malformed").is_null()) if "__malformed" in out.columns else out


# --- determinism ---------------------------------------------------------------------------------------------


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_arguments_give_byte_identical_files(home, tmp_path):
    again = CrmHome(tmp_path / "gen_b")
    generate_home(again, customers=CUSTOMERS, seed=SEED, dirty=DIRTY, years=3)
    first, second = _digests(home.root), _digests(again.root)
    assert "operational.db" in first and len(first) > 1000
    assert first == second


# --- store -----------------------------------------------------------------------------------------------------


def test_operational_store_holds_every_store_entity(store, signals):
    counts = signals["rows_per_entity"]
    for name in STORE_ENTITIES:
        assert store[name].height == counts[f"store.{name}"] > 0, name
    assert store["accounts"].height == CUSTOMERS
    assert set(store["accounts"]["source_system"]) == {"crm"}
    assert store["teams"].height == 15 and set(store["teams"]["region"]) == {"North", "South", "East", "West",
                                                                             "Central"}
    reps = store["users"].filter(pl.col("role") == "sales_rep")
    assert reps.height == max(8, round(CUSTOMERS / 400))


# --- fault manifest --------------------------------------------------------------------------------------------


def test_every_value_fault_is_found_by_the_validator_and_clean_rows_have_none(landing, manifest):
    contract = load_contract()
    for name in LANDING:
        frame = landing[name]
        rows = frame.filter(pl.col("__malformed").is_null()) if "__malformed" in frame.columns else frame
        rows = rows.with_row_index("__uid")
        result = validate_frame(contract.entity(name), rows.drop(ROW, "__file", "__malformed", strict=False)
                                .rename({"__uid": ROW}))
        first = result.first_fault_per_row().join(rows.select(pl.col("__uid").alias(ROW), "__file",
                                                              pl.col(ROW).alias("__line")), on=ROW)
        found = {(rel, int(line), f, reason) for rel, line, f, reason in
                 zip(first["__file"], first["__line"], first["field"], first["reason"], strict=True)}
        m = manifest.filter((pl.col("entity") == name) & pl.col("reason").is_in(sorted(VALUE_KINDS)))
        expected = {(f, int(line), field, reason) for f, line, field, reason in
                    zip(m["file"], m["line"], m["field"], m["reason"], strict=True)}
        assert found == expected, (name, sorted(found ^ expected)[:5])


def test_manifest_has_one_fault_per_row_and_honours_the_rate(landing, manifest, signals):
    assert manifest.select("file", "line").is_unique().all()
    assert set(manifest["reason"]) == {"invalid_type", "missing_required", "unknown_reference", "duplicate_id",
                                       "bad_encoding", "malformed_row", "out_of_range"}
    interactions = signals["rows_per_entity"]["landing.interactions"]
    share = manifest.filter(pl.col("entity") == "interactions").height / interactions
    assert abs(share - DIRTY) < 0.004
    assert manifest.height / sum(v for k, v in signals["rows_per_entity"].items() if k.startswith("landing.")) > 0.02


def test_cross_row_faults_match_the_files(landing, manifest, store):
    contract = load_contract()
    for name in LANDING:
        entity, frame = contract.entity(name), landing[name]
        m = manifest.filter(pl.col("entity") == name)
        # malformed rows: exactly the CSV lines whose field count differs from the header
        bad_lines = set()
        if "__malformed" in frame.columns:
            mal = frame.filter(pl.col("__malformed"))
            bad_lines = set(zip(mal["__file"], mal[ROW], strict=True))
        mm = m.filter(pl.col("reason") == "malformed_row")
        assert bad_lines == set(zip(mm["file"], mm["line"], strict=True)), name
        # duplicates: an earlier row of the same file has the same id and updated_at, and other content
        dups = m.filter(pl.col("reason") == "duplicate_id")
        if dups.height:
            pk, upd = entity.primary_key, entity.updated_at
            later = dups.select(pl.col("file").alias("__file"), pl.col("line").alias(ROW)).join(
                frame, on=["__file", ROW])
            earlier = frame.join(dups.select(pl.col("file").alias("__file"), pl.col("record_id").alias(pk)),
                                 on=["__file", pk]).join(later.select("__file", ROW), on=["__file", ROW],
                                                         how="anti")
            pair = later.join(earlier, on=["__file", pk], suffix="_orig")
            assert pair.height == dups.height, name
            assert (pair[ROW] > pair[f"{ROW}_orig"]).all() and (pair[upd] == pair[f"{upd}_orig"]).all(), name
            differs = pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}_orig"))
                                         for c in entity.column_names if c not in (pk, upd) and c in pair.columns])
            assert pair.select(differs.all()).item(), name
    ids = _all_ids(landing, store, manifest)
    for name in LANDING:
        refs = manifest.filter((pl.col("entity") == name) & (pl.col("reason") == "unknown_reference"))
        rows = refs.select(pl.col("file").alias("__file"), pl.col("line").alias(ROW), "field").join(
            landing[name], on=["__file", ROW])
        assert rows.height == refs.height
        for field in rows["field"].unique():
            target = contract.entity(name).column(field).reference[0]
            values = set(rows.filter(pl.col("field") == field)[field].to_list())
            assert values and not values & ids[target], (name, field)


def _all_ids(landing, store, manifest) -> dict[str, set[str]]:
    contract = load_contract()
    ids: dict[str, set[str]] = {}
    for name, entity in contract.entities.items():
        values = set()
        if name in store:
            values |= set(store[name][entity.primary_key].to_list())
        if name in landing:
            values |= set(_clean(landing[name], manifest, name)[entity.primary_key].to_list())
        ids[name] = values
    return ids


def test_every_foreign_key_of_clean_rows_resolves(landing, store, manifest):
    contract = load_contract()
    ids = _all_ids(landing, store, manifest)
    frames = {f"store.{k}": v for k, v in store.items()}
    frames |= {f"landing.{k}": _clean(v, manifest, k) for k, v in landing.items()}
    for key, frame in frames.items():
        entity = contract.entity(key.split(".", 1)[1])
        for column in entity.columns:
            if column.reference and column.name in frame.columns:
                values = set(frame[column.name].drop_nulls().to_list())
                missing = values - ids[column.reference[0]]
                assert not missing, (key, column.name, sorted(missing)[:3])


# --- planted signals -------------------------------------------------------------------------------------------


def _spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _ts(col: str) -> pl.Expr:
    return pl.col(col).str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S", strict=False)


def test_churned_customers_go_quiet_before_they_leave(home, landing, manifest):
    truth = pl.read_parquet(home.ground_truth / "customers.parquet")
    inter = _clean(landing["interactions"], manifest, "interactions").filter(pl.col("account_id").is_not_null())
    inter = inter.select("account_id", _ts("occurred_at").alias("at"))
    as_of = pl.datetime(2026, 11, 1)
    churned = truth.filter(pl.col("churned") & (pl.col("churn_date") > pl.date(2024, 3, 1)))
    active = truth.filter(pl.col("alive_at_as_of") & (pl.col("created_at") < pl.datetime(2026, 5, 1)))
    window = pl.duration(days=90)
    churned_rate = inter.join(churned.select("account_id", "churn_date"), on="account_id").filter(
        (pl.col("at") < pl.col("churn_date").cast(pl.Datetime("us")))
        & (pl.col("at") >= pl.col("churn_date").cast(pl.Datetime("us")) - window)).height / churned.height
    active_rate = inter.join(active.select("account_id"), on="account_id").filter(
        (pl.col("at") < as_of) & (pl.col("at") >= as_of - window)).height / active.height
    assert churned.height > 100 and active.height > 300
    assert churned_rate <= 0.6 * active_rate, (churned_rate, active_rate)
    # after churn they are almost never heard from
    after = inter.join(churned.select("account_id", "churn_date"), on="account_id").filter(
        pl.col("at") > pl.col("churn_date").cast(pl.Datetime("us")) + pl.duration(days=1))
    assert after.height / churned.height < 0.15 * active_rate


def test_true_churn_probability_follows_from_the_hazard_table(home):
    truth = pl.read_parquet(home.ground_truth / "customers.parquet").filter(pl.col("alive_at_as_of"))
    hazard = pl.read_parquet(home.ground_truth / "churn_hazard.parquet")
    future = hazard.filter(pl.col("month_start") >= pl.date(2026, 11, 1)).group_by("account_id").agg(
        (1 - (1 - pl.col("hazard")).product()).alias("p"))
    both = truth.join(future, on="account_id")
    assert both.height == truth.height
    assert (both["p"] - both["p_churn_90d_after_as_of"]).abs().max() < 1e-5
    # the declining profile and the hazard agree: decliners carry the higher risk
    by = truth.group_by("engagement_profile").agg(pl.col("p_churn_90d_after_as_of").mean())
    risk = dict(by.rows())
    assert risk["declining"] > 1.3 * risk["stable"]


def test_sales_have_trend_seasonality_and_holiday_uplift(landing, manifest):
    orders = _clean(landing["orders"], manifest, "orders").filter(pl.col("status") == "completed")
    monthly = orders.group_by(pl.col("order_date").str.slice(0, 7).alias("month")).len().sort("month")
    counts = dict(monthly.rows())
    for year in (2024, 2025):
        holiday = counts[f"{year}-11"] + counts[f"{year}-12"]
        before = counts[f"{year}-08"] + counts[f"{year}-09"]
        assert holiday > 1.25 * before, (year, holiday, before)
    assert sum(counts[f"2025-{m:02d}"] for m in range(1, 11)) > 1.05 * sum(
        counts[f"2024-{m:02d}"] for m in range(1, 11))


def test_reps_differ_in_win_rate_and_response_speed(store, landing, signals):
    planted = {r["user_id"]: r for r in signals["reps"]}
    deals = store["opportunities"].filter(pl.col("stage").str.starts_with("closed"))
    by_rep = deals.group_by("owner_user_id").agg((pl.col("stage") == "closed_won").mean().alias("win"),
                                                 pl.len().alias("n")).filter(pl.col("n") >= 10)
    reps = by_rep["owner_user_id"].to_list()
    assert len(reps) >= 6
    assert _spearman(by_rep["win"].to_numpy(), [planted[r]["win_rate"] for r in reps]) > 0.6
    assert by_rep["win"].max() > 2 * by_rep["win"].min()
    leads = store["leads"].filter(pl.col("first_response_at").is_not_null()).with_columns(
        ((_ts("first_response_at") - _ts("created_at")).dt.total_seconds() / 3600).alias("hours"))
    speed = leads.group_by("owner_user_id").agg(pl.col("hours").median()).sort("owner_user_id")
    assert _spearman(speed["hours"].to_numpy(),
                     [planted[r]["median_response_hours"] for r in speed["owner_user_id"]]) > 0.8
    assert speed["hours"].max() > 5 * speed["hours"].min()
    # every first response is logged as an outbound interaction at the same moment by the owner
    touches = landing["interactions"].filter(pl.col("lead_id").is_not_null()).select(
        "lead_id", "occurred_at", "user_id", "direction")
    joined = leads.select("lead_id", "first_response_at", "owner_user_id").join(
        touches, left_on=["lead_id", "first_response_at"], right_on=["lead_id", "occurred_at"])
    assert joined.height >= 0.95 * leads.height
    assert (joined["user_id"] == joined["owner_user_id"]).mean() > 0.95


def test_lead_sources_and_campaigns_differ_in_quality(store, signals):
    leads = store["leads"]
    conv = leads.group_by("lead_source").agg((pl.col("status") == "converted").mean().alias("rate"), pl.len())
    rate = dict(conv.select("lead_source", "rate").rows())
    planted = signals["lead_source_conversion"]
    assert rate["referral"] > 3 * rate["cold_call"]
    assert _spearman([rate[s] for s in planted], list(planted.values())) > 0.8
    camp = leads.filter(pl.col("campaign_id").is_not_null()).group_by("campaign_id").agg(
        (pl.col("status") == "converted").mean().alias("rate"), pl.len()).filter(pl.col("len") >= 20)
    quality = {c["campaign_id"]: c["conversion"] for c in signals["campaigns"]}
    assert camp.height >= 10
    assert _spearman(camp["rate"].to_numpy(), [quality[c] for c in camp["campaign_id"]]) > 0.5
    costs = [c["cost"] for c in signals["campaigns"]]
    assert max(costs) > 5 * min(costs)


def test_only_the_named_reps_discount_below_the_floor(landing, manifest, signals):
    lines = _clean(landing["order_lines"], manifest, "order_lines")
    orders = _clean(landing["orders"], manifest, "orders").select("order_id", "owner_user_id")
    floor = pl.DataFrame({"product_id": list(signals["products_max_discount_pct"]),
                          "floor": list(signals["products_max_discount_pct"].values())})
    lines = lines.join(orders, on="order_id").join(floor, on="product_id").with_columns(
        (pl.col("discount_pct").cast(pl.Float64) > pl.col("floor")).alias("below"))
    offenders = set(lines.filter(pl.col("below"))["owner_user_id"].unique().to_list())
    assert offenders == set(signals["below_floor_reps"])
    share = lines.filter(pl.col("owner_user_id").is_in(signals["below_floor_reps"]))["below"].mean()
    assert 0.25 < share < 0.5


def test_some_customers_also_appear_in_the_webshop_export(home, landing, store, manifest):
    identity = pl.read_csv(home.ground_truth / "identity.csv")
    web = identity.filter(pl.col("source_system") == "webshop")
    b2c = store["accounts"].filter(pl.col("account_type") == "B2C").height
    assert abs(web.height - 0.03 * b2c) <= 2
    assert web["account_id"].str.starts_with("WS-").all()
    crm = identity.filter(pl.col("source_system") == "crm")
    pairs = web.join(crm, on="person_key", suffix="_crm")
    assert pairs.height == web.height
    names = pairs.join(landing["accounts"].select("account_id", "account_name", "email"), on="account_id").join(
        store["accounts"].select(pl.col("account_id").alias("account_id_crm"),
                                 pl.col("account_name").alias("crm_name"), pl.col("email").alias("crm_email")),
        on="account_id_crm")
    differs = (names["account_name"] != names["crm_name"]) | (names["email"] != names["crm_email"])
    assert differs.mean() > 0.6
    same_person = names["account_name"].str.to_lowercase().str.slice(0, 2) == names["crm_name"].str.to_lowercase() \
        .str.slice(0, 2)
    assert same_person.mean() > 0.3
    orders = _clean(landing["orders"], manifest, "orders")
    assert orders.filter(pl.col("account_id").str.starts_with("WS-")).height > 0
