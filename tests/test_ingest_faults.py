"""Reader faults found by an adversarial run: each test reproduces one and pins the behaviour after the fix.

1. a stray `"` inside an unquoted CSV field swallowed the rest of the file, and reconciliation (which
   counted with the same parser) passed;
2. a nested (list-typed) Parquet column crashed the whole entity;
3. a mapping file of the wrong shape gave a traceback and stopped every entity.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.lib.home import CrmHome
from pipelines.lib.ingest import ingest_all, load_column_mapping, reconcile

N_INVOICES = 2000


def _invoice_home(root: Path, stray_line: int | None = None, stray: str = "suffix") -> CrmHome:
    """Accounts, invoices (N_INVOICES rows, header = line 1) and one payment per invoice."""
    home = CrmHome(root).ensure()
    for name in ("accounts", "invoices", "payments"):
        (home.landing / name).mkdir(parents=True)
    (home.landing / "accounts" / "a.csv").write_text(
        "account_id,account_name,account_type,country,region,source_system,created_at,is_archived,updated_at\n"
        "ACC-1,Acme,B2B,DE,North,erp,2026-01-01T00:00:00,false,2026-01-02T00:00:00\n", encoding="utf-8")
    lines = ["invoice_id,account_id,invoice_date,due_date,amount,status,updated_at"]
    for i in range(1, N_INVOICES + 1):
        lines.append(f"INV-{i:05d},ACC-1,2026-01-01,2026-01-31,{i}.50,open,2026-01-02T00:00:00")
    if stray_line is not None:
        k = stray_line - 1  # list index of that physical line
        if stray == "suffix":   # a quote appended to the id: data, never the start of a quoted field
            lines[k] = lines[k].replace(",", '",', 1)
        else:                   # a quote opening a field that never closes
            lines[k] = '"' + lines[k]
    (home.landing / "invoices" / "inv.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pay = ["payment_id,invoice_id,payment_date,amount,method,updated_at"]
    pay += [f"PAY-{i:05d},INV-{i:05d},2026-01-10,{i}.50,card,2026-01-10T00:00:00" for i in range(1, N_INVOICES + 1)]
    (home.landing / "payments" / "pay.csv").write_text("\n".join(pay) + "\n", encoding="utf-8")
    return home


def _log(home: CrmHome, entity: str) -> tuple:
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        return con.execute("SELECT rows_read, rows_loaded, rows_quarantined FROM raw._load_log "
                           "WHERE entity = ? AND status = 'loaded'", [entity]).fetchall()[0]
    finally:
        con.close()


def _quarantine(home: CrmHome) -> list[tuple]:
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        return con.execute("SELECT entity, source_line, reason, count(*) OVER (PARTITION BY entity, reason) "
                           "FROM raw._quarantine ORDER BY entity, source_line").fetchall()
    finally:
        con.close()


def test_stray_quote_inside_an_unquoted_field_is_data_and_the_rest_of_the_file_loads(tmp_path: Path):
    home = _invoice_home(tmp_path / "h", stray_line=101)
    ingest_all(home)
    assert _log(home, "invoices") == (N_INVOICES, N_INVOICES, 0)
    # only the payment of the invoice whose id now ends in a quote misses its invoice
    assert _log(home, "payments") == (N_INVOICES, N_INVOICES - 1, 1)
    assert _quarantine(home) == [("payments", 101, "unknown_reference", 1)]
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        assert con.execute("SELECT invoice_id FROM raw.invoices WHERE _source_line = 101").fetchall() == \
            [('INV-00100"',)]
        assert reconcile(con) == []
    finally:
        con.close()


def test_stray_quote_opening_a_field_that_never_closes_costs_only_its_own_line(tmp_path: Path):
    home = _invoice_home(tmp_path / "h", stray_line=101, stray="open")
    ingest_all(home)
    assert _log(home, "invoices") == (N_INVOICES, N_INVOICES - 1, 1)
    rows = _quarantine(home)
    assert ("invoices", 101, "malformed_row", 1) in rows
    assert [r for r in rows if r[0] == "payments"] == [("payments", 101, "unknown_reference", 1)]


def test_reconciliation_counts_physical_lines_independently_of_the_parser(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    """A parser that loses rows must be caught: rows read come from the file's lines, not from the parser."""
    import pipelines.lib.ingest.readers as readers

    original = readers.read_csv_bytes

    def lossy(data, entity, mapping, display, *args, **kwargs):
        rows = original(data, entity, mapping, display, *args, **kwargs)
        rows.frame = rows.frame.head(rows.frame.height - 7) if entity.name == "invoices" else rows.frame
        return rows

    monkeypatch.setattr(readers, "read_csv_bytes", lossy)
    home = _invoice_home(tmp_path / "h")
    ingest_all(home, entities=["accounts", "invoices"])
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        problems = reconcile(con)
    finally:
        con.close()
    assert [(p["entity"], p["source_file"], p["rows_read"], p["rows_loaded"]) for p in problems] == \
        [("invoices", "invoices/inv.csv", N_INVOICES, N_INVOICES - 7)]


def test_nested_parquet_column_becomes_json_text_and_the_other_files_load(tmp_path: Path):
    home = CrmHome(tmp_path / "h").ensure()
    (home.landing / "products").mkdir(parents=True)
    base = {"sku": ["S1", "S2"], "product_line": ["Software"] * 2, "list_price": [10.0, 20.0],
            "unit_cost": [1.0, 2.0], "max_discount_pct": [5.0, 5.0], "is_recurring": [True, False],
            "is_active": [True, True], "updated_at": ["2026-01-01T00:00:00"] * 2}
    pl.DataFrame({"product_id": ["P-1", "P-2"], "product_name": [["Suite", "Pro"], None],
                  "tags": [{"a": 1}, {"a": 2}], **base}).write_parquet(home.landing / "products" / "a_nested.parquet")
    pl.DataFrame({"product_id": ["P-3", "P-4"], "product_name": ["X", "Y"], **base}).write_parquet(
        home.landing / "products" / "b_flat.parquet")
    results = {r.entity: r for r in ingest_all(home, entities=["products"])}
    assert [s.status for s in results["products"].sources] == ["loaded", "loaded"]
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        assert con.execute("SELECT product_id, product_name FROM raw.products ORDER BY 1").fetchall() == [
            ("P-1", '["Suite","Pro"]'), ("P-3", "X"), ("P-4", "Y")]
        assert con.execute("SELECT source_line, field, reason FROM raw._quarantine").fetchall() == [
            (2, "product_name", "missing_required")]
    finally:
        con.close()


_PRODUCTS = ("Product No,SKU,Name,Line,Price,Cost,Max Discount,Recurring,Active,Changed\n"
             "E-1,S,Thing,Hardware,5,1,0,no,yes,2026-01-01T08:00:00\n")
_ACCOUNTS = ("account_id,account_name,account_type,country,region,source_system,created_at,is_archived,updated_at\n"
             "ACC-1,Acme,B2B,DE,North,erp,2026-01-01T00:00:00,false,2026-01-02T00:00:00\n")
_GOOD_PRODUCTS_MAPPING = """\
products:
  columns:
    Product No: product_id
    SKU: sku
    Name: product_name
    Line: product_line
    Price: list_price
    Cost: unit_cost
    Max Discount: max_discount_pct
    Recurring: is_recurring
    Active: is_active
    Changed: updated_at
"""


@pytest.mark.parametrize(("broken", "expected"), [
    ('accounts: "just a string"\n',
     "column_mapping.yaml: entity accounts must be a mapping of keys"),
    ("accounts:\n  columns:\n    - account_id\n    - account_name\n",
     "column_mapping.yaml: entity accounts, key `columns`: must be a mapping"),
    ("accounts:\n  colums:\n    Company: account_name\n",
     "column_mapping.yaml: entity accounts, key `colums`: is not a mapping key"),
    ("accounts:\n  columns:\n    Company: acount_name\n",
     "column_mapping.yaml: entity accounts, key `columns.Company`: accounts has no column 'acount_name'"),
])
def test_mapping_of_the_wrong_shape_names_file_entity_and_key_and_other_entities_load(
        tmp_path: Path, broken: str, expected: str):
    home = CrmHome(tmp_path / "h").ensure()
    (home.landing / "products").mkdir(parents=True)
    (home.landing / "accounts").mkdir(parents=True)
    (home.landing / "products" / "erp.csv").write_text(_PRODUCTS, encoding="utf-8")
    (home.landing / "accounts" / "crm.csv").write_text(_ACCOUNTS, encoding="utf-8")
    home.column_mapping.write_text(broken + _GOOD_PRODUCTS_MAPPING, encoding="utf-8")
    mapping = load_column_mapping(home.column_mapping)  # no traceback, no error for the whole file
    assert list(mapping.errors) == ["accounts"]
    assert expected in mapping.errors["accounts"]
    results = {r.entity: r for r in ingest_all(home, entities=["accounts", "products"])}
    assert results["products"].total("rows_loaded") == 1
    (bad,) = results["accounts"].unreadable
    assert bad.source_file == "accounts/crm.csv"
    assert expected in bad.error and bad.error.count(".") >= 1 and "\n" not in bad.error
