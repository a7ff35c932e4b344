"""Ingestion end to end on a small hand-written home: every row accounted for, idempotent, crash-safe.

`build_small_home` is imported by the other ingest and Dagster tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.lib.home import CrmHome
from pipelines.lib.ingest import Ingestor, entity_order, ingest_all, reconcile
from pipelines.lib.store import OperationalStore
from pipelines.lib.warehouse import warehouse_writer

TS = "2026-01-0{}T10:00:00"


def _store_rows(store: OperationalStore) -> None:
    store.migrate()
    store.bulk_insert("teams", pl.DataFrame({"team_id": ["T-1"], "team_name": ["North"], "region": ["North"],
                                             "updated_at": [TS.format(1)]}))
    store.bulk_insert("users", pl.DataFrame({
        "user_id": ["U-1", "U-2"], "full_name": ["Ann Rep", "Bob Boss"], "email": ["a@x.io", "b@x.io"],
        "role": ["sales_rep", "manager"], "team_id": ["T-1", "T-1"], "hired_at": ["2020-01-01"] * 2,
        "is_active": [True, True], "updated_at": [TS.format(1)] * 2}))
    store.bulk_insert("accounts", pl.DataFrame({
        "account_id": ["ACC-1", "ACC-2", "ACC-3"], "account_name": ["Acme", "Beta", "Gamma"],
        "account_type": ["B2B"] * 3, "country": ["DE"] * 3, "region": ["North"] * 3,
        "owner_user_id": ["U-1", "U-1", "U-2"], "source_system": ["crm"] * 3,
        "created_at": [TS.format(1)] * 3, "is_archived": [False] * 3, "updated_at": [TS.format(2)] * 3}))
    store.bulk_insert("contacts", pl.DataFrame({
        "contact_id": ["C-1", "C-2"], "account_id": ["ACC-1", "ACC-2"], "first_name": ["Cy", "Di"],
        "last_name": ["A", "B"], "is_primary": [True, True], "created_at": [TS.format(1)] * 2,
        "is_archived": [False] * 2, "updated_at": [TS.format(2)] * 2}))


def build_small_home(root: Path) -> CrmHome:
    """A home with a SQLite store, landing files in all three formats, three interaction days and known
    faults. Expected quarantine: see EXPECTED_QUARANTINE."""
    home = CrmHome(root).ensure()
    _store_rows(OperationalStore(home.operational_db_url))
    land = home.landing
    (land / "accounts").mkdir(parents=True)
    (land / "accounts" / "webshop.csv").write_bytes(
        b"account_id,account_name,account_type,country,region,source_system,created_at,is_archived,updated_at\n"
        b"WS-1,acme gmbh,B2B,DE,North,webshop,2026-01-01T00:00:00,false,2026-01-03T00:00:00\n"
        b'WS-2,"Beta, Inc",B2C,DE,North,webshop,2026-01-01T00:00:00,false,2026-01-03T00:00:00\n'
        b"WS-3,Gam\xe9ma,B2C,DE,North,webshop,2026-01-01T00:00:00,false,2026-01-03T00:00:00\n"   # line 4 enc
        b"WS-4,Delta,B2C,DE,North,webshop,2026-01-01T00:00:00,false\n"                          # line 5 malformed
        b"WS-5,Eps,B2X,DE,North,webshop,2026-01-01T00:00:00,false,2026-01-03T00:00:00\n")       # line 6 allowed
    (land / "products").mkdir()
    pl.DataFrame({
        "product_id": ["P-1", "P-2", "P-3"], "sku": ["S1", "S2", "S3"], "product_name": ["A", "B", "C"],
        "product_line": ["Software"] * 3, "list_price": [10.0, 20.0, -5.0], "unit_cost": [1.0, 2.0, 3.0],
        "max_discount_pct": [10.0, 10.0, 10.0], "is_recurring": [True, False, False],
        "is_active": [True, True, True], "updated_at": pl.Series([TS.format(1)] * 3).str.to_datetime(),
    }).write_parquet(land / "products" / "products.parquet")                                   # row 3 range
    (land / "orders").mkdir()
    orders = [
        {"order_id": "O-1", "account_id": "ACC-1", "order_date": "2026-01-02", "status": "completed",
         "sales_channel": "direct", "currency": "EUR", "updated_at": TS.format(2)},
        {"order_id": "O-2", "account_id": "WS-1", "order_date": "2026-01-02", "status": "completed",
         "sales_channel": "webshop", "currency": "EUR", "updated_at": TS.format(2)},
        {"order_id": "O-3", "account_id": "ACC-99", "order_date": "2026-01-02", "status": "completed",
         "sales_channel": "webshop", "currency": "EUR", "updated_at": TS.format(2)},          # line 3 ref
        {"order_id": "O-1", "account_id": "ACC-1", "order_date": "2026-01-02", "status": "completed",
         "sales_channel": "direct", "currency": "EUR", "updated_at": TS.format(2)},           # exact dup
        {"order_id": "O-2", "account_id": "WS-1", "order_date": "2026-01-02", "status": "cancelled",
         "sales_channel": "webshop", "currency": "EUR", "updated_at": TS.format(2)},          # line 5 dup id
        {"order_id": "O-4", "account_id": "WS-2", "order_date": "2026-13-01", "status": "completed",
         "sales_channel": "webshop", "currency": "EUR", "updated_at": TS.format(2)},          # line 6 type
    ]
    (land / "orders" / "orders.jsonl").write_text(
        "\n".join(json.dumps(o) for o in orders[:3]) + "\n{not json\n"                       # line 4 malformed
        + "\n".join(json.dumps(o) for o in orders[3:]) + "\n", encoding="utf-8")
    (land / "interactions").mkdir()
    for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        rows = [{"interaction_id": f"I-{day}-{i}", "occurred_at": f"{day}T0{i}:00:00", "channel": "call",
                 "direction": "outbound", "account_id": "ACC-1" if i % 2 else "WS-1", "user_id": "U-1",
                 "duration_seconds": 60 * i, "outcome": "completed"} for i in range(1, 5)]
        (land / "interactions" / f"{day}.jsonl").write_text(
            "\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return home


EXPECTED_QUARANTINE = {
    ("accounts", "accounts/webshop.csv", 4, "bad_encoding"),
    ("accounts", "accounts/webshop.csv", 5, "malformed_row"),
    ("accounts", "accounts/webshop.csv", 6, "not_allowed_value"),
    ("products", "products/products.parquet", 3, "out_of_range"),
    ("orders", "orders/orders.jsonl", 3, "unknown_reference"),
    ("orders", "orders/orders.jsonl", 4, "malformed_row"),
    ("orders", "orders/orders.jsonl", 6, "duplicate_id"),
    ("orders", "orders/orders.jsonl", 7, "invalid_type"),
}


def table_fingerprints(warehouse: Path) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of every raw table (all columns, lineage included)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw' "
            "AND table_name <> '_load_log' ORDER BY 1").fetchall()]
        out = {}
        for t in tables:
            n, checksum = con.execute(
                f'SELECT count(*), coalesce(sum(hash(r)), 0)::VARCHAR FROM raw."{t}" AS r').fetchone()  # noqa: S608
            out[t] = (n, checksum)
        return out
    finally:
        con.close()


def quarantine_set(warehouse: Path) -> set[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return set(con.execute("SELECT entity, source_file, source_line, reason FROM raw._quarantine").fetchall())
    finally:
        con.close()


@pytest.fixture
def small_home(tmp_path: Path) -> CrmHome:
    return build_small_home(tmp_path / "home")


def test_every_row_is_loaded_or_quarantined_with_reason_file_and_line(small_home: CrmHome):
    results = {r.entity: r for r in ingest_all(small_home)}
    assert quarantine_set(small_home.warehouse) == EXPECTED_QUARANTINE
    orders = results["orders"].sources[0]
    # 7 lines: O-1, O-2, O-3 (bad ref), {not json, O-1 again (exact), O-2 changed (dup id), O-4 (bad date)
    assert (orders.rows_read, orders.rows_loaded, orders.rows_quarantined, orders.duplicates_dropped) == (7, 2, 4, 1)
    con = duckdb.connect(str(small_home.warehouse), read_only=True)
    try:
        assert reconcile(con) == []
        accounts = con.execute("SELECT account_id, _source, _source_file, _source_line FROM raw.accounts "
                               "ORDER BY account_id").fetchall()
        assert accounts == [("ACC-1", "store", "store:accounts", None), ("ACC-2", "store", "store:accounts", None),
                            ("ACC-3", "store", "store:accounts", None), ("WS-1", "landing", "accounts/webshop.csv", 2),
                            ("WS-2", "landing", "accounts/webshop.csv", 3)]
        assert con.execute("SELECT account_name FROM raw.accounts WHERE account_id = 'WS-2'").fetchone() == ("Beta, Inc",)
        # the first O-2 wins over the later one with the same id and updated_at
        assert con.execute("SELECT status FROM raw.orders WHERE order_id = 'O-2'").fetchone() == ("completed",)
        assert con.execute("SELECT count(*) FROM raw.interactions").fetchone() == (12,)
        cols = [r[0] for r in con.execute("DESCRIBE raw.products").fetchall()]
        assert cols[-5:] == ["_source", "_source_file", "_source_line", "_batch_id", "_ingested_at"]
        assert con.execute("SELECT typeof(list_price), typeof(updated_at) FROM raw.products LIMIT 1").fetchone() == (
            "DOUBLE", "TIMESTAMP")
        message = con.execute("SELECT message FROM raw._quarantine WHERE reason = 'unknown_reference'").fetchone()[0]
        assert "ACC-99" in message and "accounts" in message
    finally:
        con.close()


def test_second_run_and_day_rerun_change_nothing(small_home: CrmHome):
    ingest_all(small_home)
    before = table_fingerprints(small_home.warehouse)
    second = ingest_all(small_home)
    assert table_fingerprints(small_home.warehouse) == before
    statuses = {s.status for r in second if r.entity != "accounts" for s in r.sources if s.source_file != "store:" + r.entity}
    assert statuses == {"skipped_unchanged"}
    # re-run one day explicitly (forced re-read): same rows, neighbours untouched
    with warehouse_writer(small_home.warehouse) as con:
        from datetime import date
        result = Ingestor(small_home, con).ingest("interactions", force=True, days=[date(2026, 1, 2)])
    assert [(s.source_file, s.rows_loaded) for s in result.sources] == [("interactions/2026-01-02.jsonl", 4)]
    assert table_fingerprints(small_home.warehouse) == before


def test_changed_day_file_replaces_exactly_that_day(small_home: CrmHome):
    ingest_all(small_home)
    day = small_home.landing / "interactions" / "2026-01-02.jsonl"
    rows = [json.loads(line) for line in day.read_text().splitlines()][:2]
    rows[0]["outcome"] = "no_answer"
    day.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ingest_all(small_home, entities=["interactions"])
    con = duckdb.connect(str(small_home.warehouse), read_only=True)
    try:
        per_day = dict(con.execute("SELECT occurred_at::DATE::VARCHAR, count(*) FROM raw.interactions "
                                   "GROUP BY 1").fetchall())
        assert per_day == {"2026-01-01": 4, "2026-01-02": 2, "2026-01-03": 4}
        assert con.execute("SELECT outcome FROM raw.interactions WHERE interaction_id = 'I-2026-01-02-1'"
                           ).fetchone() == ("no_answer",)
    finally:
        con.close()


def test_store_is_read_incrementally_and_newer_version_wins(small_home: CrmHome):
    ingest_all(small_home)
    store = OperationalStore(small_home.operational_db_url)
    current = store.get("accounts", "ACC-2")
    store.update("accounts", "ACC-2", {"account_name": "Beta Renamed"}, current["version"], actor="U-2")
    results = {r.entity: r for r in ingest_all(small_home, entities=["accounts", "contacts"])}
    store_src = next(s for s in results["accounts"].sources if s.source_file == "store:accounts")
    assert store_src.rows_read == 1  # the change log names the edited row only
    assert results["contacts"].sources[0].rows_read == 0  # no contact changed
    again = {r.entity: r for r in ingest_all(small_home, entities=["accounts"])}
    store_src = next(s for s in again["accounts"].sources if s.source_file == "store:accounts")
    assert store_src.rows_read == 0  # nothing changed since the last read
    con = duckdb.connect(str(small_home.warehouse), read_only=True)
    try:
        assert con.execute("SELECT account_name, count(*) OVER () FROM raw.accounts WHERE account_id = 'ACC-2'"
                           ).fetchone() == ("Beta Renamed", 1)
    finally:
        con.close()
    store.dispose()


def test_store_frame_reader_matches_the_stores_own_read_frame(small_home: CrmHome):
    from pipelines.contract import load_contract
    from pipelines.lib.ingest.store_source import read_store_frame

    store = OperationalStore(small_home.operational_db_url)
    before_edit = store.change_position()
    current = store.get("accounts", "ACC-2")
    store.update("accounts", "ACC-2", {"account_name": "Edited", "employees": 12}, current["version"], actor="U-1")
    for entity in load_contract().store_entities:
        for since in (None, 1, before_edit):
            assert read_store_frame(store, entity, since).equals(store.read_frame(entity.name, since=since))
    assert read_store_frame(store, load_contract().entity("accounts"), before_edit).height == 1
    store.dispose()


def test_column_mapping_and_defaults(tmp_path: Path):
    home = CrmHome(tmp_path / "h").ensure()
    (home.landing / "products").mkdir()
    (home.landing / "products" / "erp.csv").write_text(
        "Product No,SKU,Name,Line,Price,Cost,Max Discount,Recurring,Changed\n"
        "E-1,S,Thing,Hardware,5,1,0,no,2026-01-01 08:00:00\n", encoding="utf-8")
    home.column_mapping.write_text(
        "products:\n  columns:\n    Product No: product_id\n    SKU: sku\n    Name: product_name\n"
        "    Line: product_line\n    Price: list_price\n    Cost: unit_cost\n    Max Discount: max_discount_pct\n"
        "    Recurring: is_recurring\n    Changed: updated_at\n  defaults:\n    is_active: true\n", encoding="utf-8")
    ingest_all(home, entities=["products"])
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        assert con.execute("SELECT product_id, list_price, is_recurring, is_active, updated_at::VARCHAR "
                           "FROM raw.products").fetchall() == [("E-1", 5.0, False, True, "2026-01-01 08:00:00")]
    finally:
        con.close()


def test_unreadable_file_is_logged_and_others_still_load(small_home: CrmHome):
    (small_home.landing / "products" / "zz_broken.parquet").write_bytes(b"PAR1 this is not parquet at all")
    (small_home.landing / "orders" / "binary.csv").write_bytes(b"\x00\x01\x02garbage\x00")
    results = {r.entity: r for r in ingest_all(small_home)}
    broken = {s.source_file: s.error for r in results.values() for s in r.unreadable}
    assert set(broken) == {"products/zz_broken.parquet", "orders/binary.csv"}
    assert "products/zz_broken.parquet is not a readable Parquet file" in broken["products/zz_broken.parquet"]
    assert results["products"].total("rows_loaded") == 2 and results["orders"].total("rows_loaded") == 2
    con = duckdb.connect(str(small_home.warehouse), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM raw._load_log WHERE status = 'unreadable'").fetchone() == (2,)
    finally:
        con.close()


def test_entities_are_ordered_so_references_load_first():
    order = entity_order()
    assert order.index("accounts") < order.index("contacts") < order.index("interactions")
    assert order.index("orders") < order.index("order_lines") and order.index("invoices") < order.index("payments")
    assert len(order) == 19


_KILL_SCRIPT = """
import sys, time
from pathlib import Path
import pipelines.lib.ingest.load as load
from pipelines.lib.home import CrmHome
from pipelines.lib.ingest import ingest_all

original = load.write_plan
def slow_write(con, plan):
    if plan.entity.name == "interactions":
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM raw.interactions")
        con.execute("INSERT INTO raw._load_log (batch_id, entity, status) VALUES ('half', 'interactions', 'loaded')")
        print("MID-LOAD", flush=True)
        time.sleep(60)
    return original(con, plan)
load.write_plan = slow_write
import pipelines.lib.ingest.run as run
run.write_plan = slow_write
ingest_all(CrmHome(Path(sys.argv[1])), force=True)
"""


def test_sigkill_mid_load_keeps_previous_state_and_restart_reconciles(small_home: CrmHome):
    ingest_all(small_home)
    before = table_fingerprints(small_home.warehouse)
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(small_home.root)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline and "MID-LOAD" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "MID-LOAD" in line, "the loader never reached the interactions transaction"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    after_kill = table_fingerprints(small_home.warehouse)
    assert after_kill["interactions"] == before["interactions"]  # the uncommitted delete is gone
    con = duckdb.connect(str(small_home.warehouse), read_only=True)
    assert con.execute("SELECT count(*) FROM raw._load_log WHERE batch_id = 'half'").fetchone() == (0,)
    con.close()
    ingest_all(small_home, force=True)  # the restart
    con = duckdb.connect(str(small_home.warehouse), read_only=True)
    try:
        assert reconcile(con) == []
        assert con.execute("SELECT count(*), count(DISTINCT interaction_id) FROM raw.interactions").fetchone() == (12, 12)
        assert con.execute("SELECT count(*), count(DISTINCT order_id) FROM raw.orders").fetchone() == (2, 2)
    finally:
        con.close()
    assert quarantine_set(small_home.warehouse) == EXPECTED_QUARANTINE
