"""Each key of the column-mapping file on a small export, through the real ingest, with exact counts.

`file` (delimiters incl. `;` and whitespace, headerless with names, encoding, `.txt`, `.tsv`, `.xlsx`,
any suffix via a sidecar), `columns` (one header feeding several columns), `values`, `formats`, `derive`,
`collapse` (one shop export feeding four entities; conflicting repeats as warnings), sidecars.
"""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from pipelines.lib.home import CrmHome
from pipelines.lib.ingest import ingest_all, reconcile
from pipelines.lib.ingest.load_warnings import batch_warnings
from pipelines.lib.ingest.mapping import (
    ColumnMapping,
    MappingError,
    load_column_mapping_text,
    mapping_for_file,
)
from pipelines.lib.ingest.readers import file_format

PRODUCT_DEFAULTS = """\
  defaults:
    product_line: Software
    unit_cost: 1
    max_discount_pct: 10
    is_recurring: "false"
    is_active: "true"
    updated_at: "2026-01-01T00:00:00"
"""


def _home(tmp_path: Path, files: dict[str, bytes | str], mapping: str | None = None) -> CrmHome:
    home = CrmHome(tmp_path / "h").ensure()
    for rel, body in files.items():
        path = home.landing / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body.encode("utf-8") if isinstance(body, str) else body)
    if mapping is not None:
        home.column_mapping.write_text(mapping, encoding="utf-8")
    return home


def _query(home: CrmHome, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _log(home: CrmHome, entity: str) -> list[tuple]:
    """(file, read, loaded, quarantined, duplicates) per loaded file of the entity."""
    return _query(home, "SELECT source_file, rows_read, rows_loaded, rows_quarantined, duplicates_dropped "
                        "FROM raw._load_log WHERE entity = ? AND status = 'loaded' ORDER BY 1", [entity])


def _quarantine(home: CrmHome, entity: str) -> list[tuple]:
    return _query(home, "SELECT source_line, field, reason, value FROM raw._quarantine WHERE entity = ? "
                        "ORDER BY source_line", [entity])


def _reconciled(home: CrmHome) -> None:
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        assert reconcile(con) == []
    finally:
        con.close()


def test_semicolon_delimiter_and_decimal_comma(tmp_path: Path):
    home = _home(tmp_path, {"products/erp.csv": (
        "product_id;sku;product_name;list_price\n"
        "P-1;S1;Suite;1.234,56\n"
        "P-2;S2;Pro, boxed;12,5\n"
        "P-3;S3;Bad;12,5x\n")},
        "products:\n  file:\n    delimiter: \";\"\n  formats:\n    list_price: decimal_comma\n" + PRODUCT_DEFAULTS)
    ingest_all(home, entities=["products"])
    assert _log(home, "products") == [("products/erp.csv", 3, 2, 1, 0)]
    assert _query(home, "SELECT product_id, product_name, list_price FROM raw.products ORDER BY 1") == [
        ("P-1", "Suite", 1234.56), ("P-2", "Pro, boxed", 12.5)]
    assert _quarantine(home, "products") == [(4, "list_price", "invalid_type", "12,5x")]
    _reconciled(home)


def test_whitespace_delimited_txt(tmp_path: Path):
    home = _home(tmp_path, {"products/report.txt": (
        "product_id   sku   product_name    list_price\n"
        "P-1          S1    \"Big Suite\"     10\n"
        "\n"
        "P-2\tS2\tPro\t20\n"
        "P-3          S3    Extra  Field    30\n")},
        "products:\n  file:\n    delimiter: whitespace\n" + PRODUCT_DEFAULTS)
    ingest_all(home, entities=["products"])
    assert _log(home, "products") == [("products/report.txt", 3, 2, 1, 0)]
    assert _query(home, "SELECT product_id, product_name, list_price, _source_line FROM raw.products ORDER BY 1") == [
        ("P-1", "Big Suite", 10.0, 2), ("P-2", "Pro", 20.0, 4)]
    assert _quarantine(home, "products") == [(5, None, "malformed_row", "P-3          S3    Extra  Field    30")]


def test_headerless_tsv_with_names_a_fraction_and_a_date_format(tmp_path: Path):
    home = _home(tmp_path, {"products/export.tsv": (
        "P-1\tSuite\t10\t0.15\t31.12.2025 08:30\n"
        "P-2\tPro\t20\t0.075\t01.01.2026 00:00\n"
        "P-3\tOdd\t30\t1.5\t2026-01-01\n")},
        "products:\n  file:\n    header: false\n    names: [id, name, price, discount, changed]\n"
        "  columns:\n    id: [product_id, sku]\n    name: product_name\n    price: list_price\n"
        "    discount: max_discount_pct\n    changed: updated_at\n"
        "  formats:\n    max_discount_pct: fraction\n    updated_at: \"%d.%m.%Y %H:%M\"\n" + PRODUCT_DEFAULTS)
    ingest_all(home, entities=["products"])
    assert _log(home, "products") == [("products/export.tsv", 3, 2, 1, 0)]
    assert _query(home, "SELECT product_id, sku, max_discount_pct, updated_at, _source_line FROM raw.products "
                        "ORDER BY 1") == [
        ("P-1", "P-1", 15.0, datetime(2025, 12, 31, 8, 30), 1), ("P-2", "P-2", 7.5, datetime(2026, 1, 1), 2)]
    # 1.5 is 150 percent (out of range) and the date is not in the stated format: the row is filed under the
    # reason that ranks first (invalid_type), with the value as the file gave it
    assert _quarantine(home, "products") == [(3, "updated_at", "invalid_type", "2026-01-01")]


def test_xlsx_sheet_streamed_with_types_blank_and_overlong_rows(tmp_path: Path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "Notes"
    sheet = book.create_sheet("Products")
    sheet.append(["Product No", "Name", "Price", "Recurring", "Changed"])
    sheet.append(["P-1", "Suite", 10, True, datetime(2026, 1, 2, 9, 30)])
    sheet.append(["P-2", "Pro", 20.5, False, datetime(2026, 1, 3)])
    sheet.append([None, None, None, None, None])
    sheet.append(["P-3", "Extra", 30, False, datetime(2026, 1, 3), "unexpected"])
    sheet.append(["P-4", None, 40, False, datetime(2026, 1, 3)])
    path = tmp_path / "products.xlsx"
    book.save(path)
    home = _home(tmp_path, {"products/products.xlsx": path.read_bytes()},
                 "products:\n  file:\n    sheet: Products\n  columns:\n    Product No: [product_id, sku]\n"
                 "    Name: product_name\n    Price: list_price\n    Recurring: is_recurring\n"
                 "    Changed: updated_at\n" + PRODUCT_DEFAULTS)
    ingest_all(home, entities=["products"])
    assert _log(home, "products") == [("products/products.xlsx", 4, 2, 2, 0)]
    assert _query(home, "SELECT product_id, list_price, is_recurring, updated_at, _source_line FROM raw.products "
                        "ORDER BY 1") == [("P-1", 10.0, True, datetime(2026, 1, 2, 9, 30), 2),
                                          ("P-2", 20.5, False, datetime(2026, 1, 3), 3)]
    assert [(line, reason) for line, _, reason, _ in _quarantine(home, "products")] == [
        (5, "malformed_row"), (6, "missing_required")]


def test_value_tables_translate_and_an_unmapped_value_is_quarantined_naming_column_and_value(tmp_path: Path):
    home = _home(tmp_path, {"products/p.csv": (
        "product_id,sku,product_name,list_price,product_line\n"
        "P-1,S1,A,1,SW\nP-2,S2,B,2,HW\nP-3,S3,C,3,Software\nP-4,S4,D,4,Gadgets\n")},
        "products:\n  values:\n    product_line: {SW: Software, HW: Hardware}\n" + PRODUCT_DEFAULTS.replace(
            "    product_line: Software\n", ""))
    ingest_all(home, entities=["products"])
    assert _log(home, "products") == [("products/p.csv", 4, 3, 1, 0)]
    assert _query(home, "SELECT product_id, product_line FROM raw.products ORDER BY 1") == [
        ("P-1", "Software"), ("P-2", "Hardware"), ("P-3", "Software")]
    assert _quarantine(home, "products") == [(5, "product_line", "unmapped_value", "Gadgets")]
    (message,) = _query(home, "SELECT message FROM raw._quarantine")[0]
    assert "product_line 'Gadgets' has no translation in the mapping's values.product_line" in message


def test_derive_from_headers_and_the_line_with_a_format_on_the_derived_value(tmp_path: Path):
    home = _home(tmp_path, {"products/p.csv": (
        "Name,Price,Day,Time\nSuite,10,31.12.2025,08:30\nPro,20,01.01.2026,09:00\nOdd,30,,09:00\n")},
        "products:\n  columns:\n    Name: product_name\n    Price: list_price\n"
        "  derive:\n    product_id: \"P-{line}\"\n    sku: \"{Name}-{line}\"\n    updated_at: \"{Day} {Time}\"\n"
        "  formats:\n    updated_at: \"%d.%m.%Y %H:%M\"\n" + PRODUCT_DEFAULTS.replace(
            '    updated_at: "2026-01-01T00:00:00"\n', ""))
    ingest_all(home, entities=["products"])
    assert _log(home, "products") == [("products/p.csv", 3, 2, 1, 0)]
    assert _query(home, "SELECT product_id, sku, updated_at FROM raw.products ORDER BY 1") == [
        ("P-2", "Suite-2", datetime(2025, 12, 31, 8, 30)), ("P-3", "Pro-3", datetime(2026, 1, 1, 9, 0))]
    assert _quarantine(home, "products") == [(4, "updated_at", "missing_required", None)]


SHOP = """\
Order No,Order Date,Customer No,Customer,Country,Product ID,Product,Qty,Net Total,Status,Changed
O-1,02.01.2026,C-1,Acme,DE,P-1,Suite,2,"1.000,00",Done,2026-01-02T10:00:00
O-1,02.01.2026,C-1,Acme,DE,P-2,Pro,1,"99,50",Done,2026-01-02T10:00:00
O-2,03.01.2026,C-2,Beta,FR,P-1,Suite,1,"500,00",Done,2026-01-03T10:00:00
O-3,04.01.2026,C-2,Beta GmbH,FR,P-3,Support,3,"30,00",Storno,2026-01-04T10:00:00
O-3,04.01.2026,C-2,Beta GmbH,FR,P-1,Suite,1,"450,00",Storno,2026-01-04T10:00:00
O-2,03.01.2026,C-2,Beta,FR,P-2,Pro,2,"199,00",Done,2026-01-03T10:00:00
"""

SIDECARS = {
    "accounts": """\
collapse: true
columns: {Customer No: account_id, Customer: account_name, Country: country}
defaults: {account_type: B2B, region: North, source_system: webshop, created_at: "2026-01-01T00:00:00",
           is_archived: "false", updated_at: "2026-01-01T00:00:00"}
""",
    "products": """\
collapse: true
columns: {Product ID: [product_id, sku], Product: product_name}
defaults: {product_line: Software, list_price: 0, unit_cost: 0, max_discount_pct: 0, is_recurring: "false",
           is_active: "true", updated_at: "2026-01-01T00:00:00"}
""",
    "orders": """\
collapse: true
columns: {Order No: order_id, Customer No: account_id, Order Date: order_date, Status: status, Changed: updated_at}
values: {status: {Done: completed, Storno: cancelled}}
formats: {order_date: "%d.%m.%Y"}
defaults: {sales_channel: webshop, currency: EUR}
""",
    "order_lines": """\
order_lines:
  columns: {Order No: order_id, Product ID: product_id, Qty: quantity, Net Total: line_amount, Changed: updated_at}
  derive: {order_line_id: "{Order No}-{line}"}
  formats: {line_amount: decimal_comma}
  defaults: {discount_pct: 0}
""",
}


def test_one_shop_export_feeds_four_entities_with_collapsed_repeats_and_warnings(tmp_path: Path):
    files: dict[str, str] = {}
    for entity, sidecar in SIDECARS.items():
        files[f"{entity}/shop.csv"] = SHOP
        files[f"{entity}/shop.csv.mapping.yaml"] = sidecar
    home = _home(tmp_path, files)
    results = ingest_all(home, batch_id="B-shop")
    assert {r.entity: [s.source_file for s in r.sources] for r in results if r.sources} == {
        e: [f"{e}/shop.csv"] for e in SIDECARS}  # sidecars are settings, not data
    assert _log(home, "accounts") == [("accounts/shop.csv", 6, 2, 0, 4)]
    assert _log(home, "products") == [("products/shop.csv", 6, 3, 0, 3)]
    assert _log(home, "orders") == [("orders/shop.csv", 6, 3, 0, 3)]
    assert _log(home, "order_lines") == [("order_lines/shop.csv", 6, 6, 0, 0)]
    assert _query(home, "SELECT account_id, account_name, _source_line FROM raw.accounts ORDER BY 1") == [
        ("C-1", "Acme", 2), ("C-2", "Beta", 4)]  # the first line's record wins
    assert _query(home, "SELECT order_id, status, order_date::VARCHAR FROM raw.orders ORDER BY 1") == [
        ("O-1", "completed", "2026-01-02"), ("O-2", "completed", "2026-01-03"), ("O-3", "cancelled", "2026-01-04")]
    assert _query(home, "SELECT product_id, sku FROM raw.products ORDER BY 1") == [
        ("P-1", "P-1"), ("P-2", "P-2"), ("P-3", "P-3")]
    assert _query(home, "SELECT order_line_id, unit_price, line_amount FROM raw.order_lines ORDER BY _source_line") == [
        ("O-1-2", None, 1000.0), ("O-1-3", None, 99.5), ("O-2-4", None, 500.0), ("O-3-5", None, 30.0),
        ("O-3-6", None, 450.0), ("O-2-7", None, 199.0)]
    warnings = {(w["entity"], w["kind"], w["field"]): w for w in batch_warnings_of(home, "B-shop")}
    assert set(warnings) == {("accounts", "collapsed", "account_id"), ("accounts", "collapse_conflict", "account_name"),
                             ("products", "collapsed", "product_id"), ("orders", "collapsed", "order_id")}
    conflict = warnings[("accounts", "collapse_conflict", "account_name")]
    assert conflict["record_count"] == 1
    assert conflict["examples"] == "C-2: lines 4 and 5"  # account names are personal data (B2C): lines only
    assert "accounts/shop.csv: 1 accounts repeat with a different account_name on 2 lines" in conflict["message"]
    assert warnings[("accounts", "collapsed", "account_id")]["record_count"] == 2
    _reconciled(home)


def batch_warnings_of(home: CrmHome, batch_id: str) -> list[dict]:
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        return batch_warnings(con, batch_id)
    finally:
        con.close()


def test_conflicting_repeats_collapse_only_when_asked(tmp_path: Path):
    rows = ("account_id,account_name,account_type,country,region,source_system,created_at,is_archived,updated_at\n"
            + "".join(f"A-1,{name},B2B,DE,North,erp,2026-01-01T00:00:00,false,2026-01-02T00:00:00\n"
                      for name in ("Acme", "Acme", "ACME Ltd")))
    plain = _home(tmp_path / "plain", {"accounts/a.csv": rows})
    ingest_all(plain, entities=["accounts"])
    assert _log(plain, "accounts") == [("accounts/a.csv", 3, 1, 1, 1)]  # exact duplicate + duplicate_id
    assert [r[2] for r in _quarantine(plain, "accounts")] == ["duplicate_id"]
    folded = _home(tmp_path / "folded", {"accounts/a.csv": rows}, "accounts:\n  collapse: true\n")
    ingest_all(folded, entities=["accounts"], batch_id="B-1")
    assert _log(folded, "accounts") == [("accounts/a.csv", 3, 1, 0, 2)]
    assert _quarantine(folded, "accounts") == []
    assert [(w["kind"], w["field"], w["record_count"]) for w in batch_warnings_of(folded, "B-1")] == [
        ("collapse_conflict", "account_name", 1), ("collapsed", "account_id", 1)]


def test_sidecar_replaces_the_home_section_for_its_file_and_reads_any_suffix(tmp_path: Path):
    home = _home(tmp_path, {
        "products/erp.dat": "id|title|price\nP-9|Legacy|5\n",
        "products/erp.dat.mapping.yaml": "file: {delimiter: \"|\"}\ncolumns: {id: [product_id, sku], title: "
                                         "product_name, price: list_price}\n" + textwrap.dedent(PRODUCT_DEFAULTS),
        "products/main.csv": "Code,Label,Price\nP-1,Suite,10\n",
    }, "products:\n  columns: {Code: [product_id, sku], Label: product_name, Price: list_price}\n" + PRODUCT_DEFAULTS)
    assert file_format(home.landing / "products" / "erp.dat") == "csv"
    assert file_format(home.landing / "products" / "erp.dat.mapping.yaml") is None
    ingest_all(home, entities=["products"])
    assert _log(home, "products") == [("products/erp.dat", 1, 1, 0, 0), ("products/main.csv", 1, 1, 0, 0)]
    assert _query(home, "SELECT product_id, product_name, _source_line FROM raw.products ORDER BY 1") == [
        ("P-1", "Suite", 2), ("P-9", "Legacy", 2)]


def test_encoding_option_reads_latin1_exports(tmp_path: Path):
    body = "product_id,sku,product_name,list_price\nP-1,S1,Müller Säge,10\n".encode("latin-1")
    wrong = _home(tmp_path / "wrong", {"products/p.csv": body}, "products:\n" + PRODUCT_DEFAULTS)
    ingest_all(wrong, entities=["products"])
    assert _quarantine(wrong, "products") == [(2, "product_name", "bad_encoding", "M\ufffdller S\ufffdge")]
    right = _home(tmp_path / "right", {"products/p.csv": body},
                  "products:\n  file: {encoding: latin-1}\n" + PRODUCT_DEFAULTS)
    ingest_all(right, entities=["products"])
    assert _query(right, "SELECT product_name FROM raw.products") == [("Müller Säge",)]


def test_mapping_api_for_the_import_command(tmp_path: Path):
    mapping = load_column_mapping_text("products:\n  columns: {Code: product_id}\n", "m.yaml")
    assert isinstance(mapping, ColumnMapping) and mapping.for_entity("products").source_name("product_id") == "Code"
    data = tmp_path / "x.csv"
    data.write_text("Code\nP-1\n", encoding="utf-8")
    assert mapping_for_file(mapping, "products", data).columns == {"Code": "product_id"}
    (tmp_path / "x.csv.mapping.yaml").write_text("products:\n  file: {delimiter: tab}\n", encoding="utf-8")
    assert mapping_for_file(mapping, "products", data).file_options.delimiter == "\t"
    (tmp_path / "x.csv.mapping.yaml").write_text("file: {delimiter: two}\n", encoding="utf-8")
    with pytest.raises(MappingError, match=r"x.csv.mapping.yaml: entity products, key `file.delimiter`"):
        mapping_for_file(mapping, "products", data)


def test_collapse_warnings_show_values_except_personal_data(tmp_path: Path):
    head = "account_id,account_name,account_type,email,country,region,source_system,created_at,is_archived,updated_at\n"
    rows = head + "".join(f"A-1,Acme,{kind},{mail},DE,North,erp,2026-01-01T00:00:00,false,2026-01-02T00:00:00\n"
                          for kind, mail in (("B2B", "a@old.example"), ("B2C", "a@new.example")))
    home = _home(tmp_path, {"accounts/a.csv": rows}, "accounts:\n  collapse: true\n")
    ingest_all(home, entities=["accounts"], batch_id="B-pii")
    conflicts = {w["field"]: w for w in batch_warnings_of(home, "B-pii") if w["kind"] == "collapse_conflict"}
    assert conflicts["account_type"]["examples"] == "A-1: 'B2B' (line 2) and 'B2C' (line 3)"
    assert conflicts["email"]["examples"] == "A-1: lines 2 and 3"
    assert "example" not in conflicts["email"]["message"].replace("e.g.", "")


def test_a_sidecar_for_another_entity_is_named_with_the_folder_and_its_file_is_not_read(tmp_path: Path):
    home = _home(tmp_path, {
        "products/shop.csv": "Code,Label,Price\nP-1,Suite,10\nP-2,Pro,20\n",
        "products/shop.csv.mapping.yaml": "accounts:\n  columns: {Code: account_id}\n",
        "products/main.csv": "product_id,sku,product_name,list_price\nP-3,S3,Basic,5\n",
    }, "products:\n" + PRODUCT_DEFAULTS)
    ingest_all(home, entities=["products"])
    assert _log(home, "products") == [("products/main.csv", 1, 1, 0, 0)]
    [(status, error)] = _query(home, "SELECT status, error FROM raw._load_log WHERE source_file = ?",
                               ["products/shop.csv"])
    assert status == "unreadable"
    assert error.endswith("shop.csv.mapping.yaml describes accounts but lies in landing/products/; move it and "
                          "shop.csv to landing/accounts/, or name the section products.")


def test_an_impossible_date_in_a_mapping_costs_its_file_not_the_run(tmp_path: Path):
    """YAML reads 2026-13-45 as a date and the calendar refuses it: the sidecar's file is unreadable with
    one sentence naming the sidecar, the other files load; in the home mapping it is a mapping error."""
    home = _home(tmp_path, {
        "products/bad.csv": "product_id,sku,product_name,list_price\nP-1,S1,Suite,10\n",
        "products/bad.csv.mapping.yaml": "defaults: {updated_at: 2026-13-45}\n",
        "products/good.csv": "product_id,sku,product_name,list_price\nP-2,S2,Pro,20\n",
    }, "products:\n" + PRODUCT_DEFAULTS)
    ingest_all(home, entities=["products"])
    assert _log(home, "products") == [("products/good.csv", 1, 1, 0, 0)]
    [(status, error)] = _query(home, "SELECT status, error FROM raw._load_log WHERE source_file = ?",
                               ["products/bad.csv"])
    assert (status, error.rsplit("/", 1)[-1]) == ("unreadable", "bad.csv.mapping.yaml holds a date that does not "
                                                  "exist (month must be in 1..12); correct it, or quote it to keep "
                                                  "it as text.")
    with pytest.raises(MappingError, match=r"^m\.yaml holds a date that does not exist"):
        load_column_mapping_text("products:\n  defaults: {updated_at: 2026-02-30}\n", "m.yaml")
