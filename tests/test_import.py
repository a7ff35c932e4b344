"""`crm import`: store entities upserted with audit, landing entities placed for `crm run`, dry runs that
write nothing, reports that name file, line, field and value, pieces of large files, and the done-when
figure: 10,000 deals in under 10 s with funnel marts equal to a recomputation from the file."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.contract import load_contract
from pipelines.contract.validate import ROW
from pipelines.lib.home import CrmHome
from pipelines.lib.importer import ImportFailed, import_file
from pipelines.lib.importer.chunks import read_pieces
from pipelines.lib.ingest.mapping import EntityMapping
from pipelines.lib.ingest.readers import read_file
from pipelines.lib.store import OperationalStore, RecordValidationError
from pipelines.lib.store.validation import validate_record

REPO = Path(__file__).resolve().parents[1]

USERS_CSV = """user_id,full_name,email,role,team_id,hired_at,is_active,updated_at
U1,Ann Rep,ann@example.test,sales_rep,,2020-01-01,true,2026-01-01T00:00:00
U2,Bob Rep,bob@example.test,sales_rep,,2021-03-01,true,2026-01-01T00:00:00
"""
ACCOUNTS_CSV = """account_id,account_name,account_type,country,region,owner_user_id,source_system,created_at,is_archived,updated_at
A1,Acme GmbH,B2B,DE,North,U1,crm,2025-01-01T00:00:00,false,2026-01-01T00:00:00
A2,Beta SARL,B2B,FR,West,U2,crm,2025-02-01T00:00:00,false,2026-01-01T00:00:00
"""
# their headers; line 4: bad amount, line 5: unknown account, line 6: a field too many
DEALS_CSV = """Deal,Customer,Rep,Title,Phase,Value,Due,Opened,Changed
D1,A1,U1,Big deal,prospecting,1000,2026-03-01,2025-06-01T09:00:00,2025-07-01T09:00:00
D2,A2,U2,"Second, with comma",closed_won,2500.5,2026-02-01,2025-05-01T09:00:00,2025-07-02T09:00:00
D3,A1,U1,Broken amount,proposal,lots,2026-04-01,2025-06-03T09:00:00,2025-07-03T09:00:00
D4,A9,U1,Unknown account,proposal,10,2026-04-01,2025-06-03T09:00:00,2025-07-03T09:00:00
D5,A1,U1,Too many,proposal,10,2026-04-01,2025-06-03T09:00:00,2025-07-03T09:00:00,extra
"""
DEALS_MAPPING = """opportunities:
  columns:
    Deal: opportunity_id
    Customer: account_id
    Rep: owner_user_id
    Title: opportunity_name
    Phase: stage
    Value: amount
    Due: expected_close_date
    Opened: created_at
    Changed: updated_at
"""


def _write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


def _snapshot(root: Path) -> dict[str, str]:
    """Every file below `root` with the sha256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(params=["sqlite", "postgresql"])
def home(request, tmp_path, monkeypatch) -> CrmHome:
    """A home whose store holds two users and two accounts, imported from contract-named files."""
    if request.param == "postgresql":
        monkeypatch.setenv("CRM_OPERATIONAL_DB_URL", request.getfixturevalue("postgres_url"))
    else:
        monkeypatch.delenv("CRM_OPERATIONAL_DB_URL", raising=False)
    h = CrmHome(tmp_path / "home").ensure()
    files = tmp_path / "files"
    files.mkdir()
    import_file(h, ["users"], _write(files, "users.csv", USERS_CSV))
    import_file(h, ["accounts"], _write(files, "accounts.csv", ACCOUNTS_CSV))
    return h


def _crm(*args: str) -> subprocess.CompletedProcess:
    """The installed `crm` command (its console writes to the process's stdout)."""
    return subprocess.run([str(Path(sys.executable).with_name("crm")), *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "120"})


def _store(h: CrmHome) -> OperationalStore:
    return OperationalStore(h.operational_db_url)


def test_store_import_upserts_with_audit_and_stage_history(home, tmp_path):
    files = tmp_path / "files"
    deals = _write(files, "deals.csv", DEALS_CSV)
    mapping = _write(files, "m.yaml", DEALS_MAPPING)
    report = import_file(home, ["opportunities"], deals, mapping=str(mapping))
    [e] = report.entities
    assert (e.rows_read, e.inserted, e.updated, e.unchanged, e.quarantined) == (5, 2, 0, 0, 3)
    assert e.accounted == e.rows_read
    store = _store(home)
    try:
        d2 = store.get("opportunities", "D2")
        assert d2["opportunity_name"] == "Second, with comma" and d2["amount"] == 2500.5
        assert d2["version"] == 1 and d2["is_archived"] is False and d2["updated_at"] == "2025-07-02T09:00:00"
        audit = store.audit_rows("opportunities", "D2")
        assert [(a["actor"], a["action"]) for a in audit] == [("import:deals.csv", "import")]
        assert json.loads(audit[0]["after_json"])["stage"] == "closed_won"

        # the same file again changes nothing; a later export with one changed deal updates that one
        again = import_file(home, ["opportunities"], deals, mapping=str(mapping)).entities[0]
        assert (again.inserted, again.updated, again.unchanged, again.quarantined) == (0, 0, 2, 3)
        changed = DEALS_CSV.replace("D1,A1,U1,Big deal,prospecting,1000,2026-03-01,2025-06-01T09:00:00,2025-07-01T09:00:00",
                                    "D1,A1,U1,Big deal,negotiation,1200,2026-03-01,2025-06-01T09:00:00,2025-08-01T09:00:00")
        third = import_file(home, ["opportunities"], _write(files, "deals.csv", changed), mapping=str(mapping))
        assert (third.entities[0].inserted, third.entities[0].updated, third.entities[0].unchanged) == (0, 1, 1)
        d1 = store.get("opportunities", "D1")
        assert (d1["version"], d1["stage"], d1["amount"]) == (2, "negotiation", 1200.0)
        assert len(store.audit_rows("opportunities", "D1")) == 2
        with store.engine.connect() as conn:
            stages = conn.exec_driver_sql(
                "SELECT from_stage, to_stage FROM opportunity_stage_history WHERE opportunity_id = 'D1' "
                "ORDER BY changed_at").fetchall()
        assert [tuple(s) for s in stages] == [(None, "prospecting"), ("prospecting", "negotiation")]

        # an export older than the store's record leaves the record alone
        older = changed.replace("negotiation,1200,2026-03-01,2025-06-01T09:00:00,2025-08-01T09:00:00",
                                "qualification,1200,2026-03-01,2025-06-01T09:00:00,2025-07-15T09:00:00")
        fourth = import_file(home, ["opportunities"], _write(files, "deals.csv", older), mapping=str(mapping))
        assert (fourth.entities[0].updated, fourth.entities[0].kept_newer) == (0, 1)
        assert store.get("opportunities", "D1")["stage"] == "negotiation"
    finally:
        store.dispose()


def test_bad_rows_are_reported_with_file_line_field_and_value(home, tmp_path):
    files = tmp_path / "files"
    report = import_file(home, ["opportunities"], _write(files, "deals.csv", DEALS_CSV),
                         mapping=str(_write(files, "m.yaml", DEALS_MAPPING)))
    faults = sorted((f.file, f.line, f.field, f.reason, f.value) for f in report.entities[0].faults)
    assert faults[0] == ("deals.csv", 4, "amount", "invalid_type", "lots")
    assert faults[1] == ("deals.csv", 5, "account_id", "unknown_reference", "A9")
    assert faults[2][:2] == ("deals.csv", 6) and faults[2][3] == "malformed_row"
    store = _store(home)
    try:
        assert [store.get("opportunities", d) for d in ("D3", "D4", "D5")] == [None, None, None]
    finally:
        store.dispose()


def test_upsert_rejects_exactly_what_validate_record_rejects(home):
    """The batch path and the portal's one-record path agree on every row and on the field (both with the
    store's contract: the installation's vocabulary)."""
    base = {"opportunity_id": "X", "account_id": "A1", "owner_user_id": "U1", "opportunity_name": "n",
            "stage": "proposal", "amount": "10", "expected_close_date": "2026-01-31",
            "created_at": "2025-01-01T00:00:00", "is_archived": "false", "updated_at": "2025-01-02T00:00:00"}
    variants = [{}, {"amount": "-1"}, {"amount": "1,5"}, {"stage": "won"}, {"expected_close_date": "31.01.2026"},
                {"account_id": "A404"}, {"owner_user_id": ""}, {"created_at": "2025-01-01 08:00"},
                {"is_archived": "maybe"}, {"lead_source": "web"}, {"closed_at": "2025-13-01T00:00:00"},
                {"updated_at": "2025-01-02T00:00:00Z"}]
    rows = [{**base, **v, "opportunity_id": f"V{i}"} for i, v in enumerate(variants)]
    store = _store(home)
    entity = store.contract.entity("opportunities")
    try:
        expected = {}
        for row in rows:
            try:
                validate_record(entity, row, lookup=store._exists)
            except RecordValidationError as exc:
                expected[row["opportunity_id"]] = sorted(exc.errors)[0] if len(exc.errors) == 1 else set(exc.errors)
        frame = pl.DataFrame(rows).with_columns(pl.int_range(2, len(rows) + 2).alias(ROW))
        result = store.upsert_many("opportunities", frame, "import:t.csv", "t.csv", dry_run=True)
        got = {r["record_id"]: r["field"] for r in result.faults.iter_rows(named=True)}
        assert set(got) == set(expected) and len(expected) >= 7
        for record_id, field in got.items():
            wanted = expected[record_id]
            assert field == wanted or field in wanted, record_id
        assert sorted(result.inserted) == sorted(set(r["opportunity_id"] for r in rows) - set(expected))
    finally:
        store.dispose()


def test_dry_run_writes_nothing(home, tmp_path):
    files = tmp_path / "files"
    deals = _write(files, "deals.csv", DEALS_CSV)
    mapping = _write(files, "m.yaml", DEALS_MAPPING)
    products = _write(files, "catalogue.csv", "product_id,sku,product_name,product_line,list_price,unit_cost,"
                      "max_discount_pct,is_recurring,is_active,updated_at\n"
                      "P1,SKU-1,Widget,Software,10,4,20,false,true,2026-01-01T00:00:00\n")
    def store_counts():
        store = _store(home)
        try:
            with store.engine.connect() as conn:
                return [conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar()
                        for t in ("audit_log", "opportunities", "store_changes")]
        finally:
            store.dispose()

    counts = store_counts()
    before = _snapshot(home.root)
    report = import_file(home, ["opportunities"], deals, mapping=str(mapping), dry_run=True)
    assert (report.entities[0].inserted, report.entities[0].quarantined) == (2, 3)
    assert report.entities[0].sample[0]["opportunity_id"] == "D1"
    landing = import_file(home, ["products"], products, dry_run=True)
    assert landing.entities[0].inserted == 1
    assert _snapshot(home.root) == before
    assert store_counts() == counts and counts[1] == 0


def test_cli_prints_the_report_and_writes_json(home, tmp_path):
    files = tmp_path / "files"
    deals = _write(files, "deals.csv", DEALS_CSV)
    mapping = _write(files, "m.yaml", DEALS_MAPPING)
    out = tmp_path / "report.json"
    result = _crm("import", "opportunities", str(deals), "--mapping", str(mapping), "--dry-run",
                  "--report", str(out), "--home", str(home.root))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "invalid_type" in result.stdout and "deals.csv:4 amount = lots" in result.stdout
    assert "Dry run: nothing was written" in result.stdout
    body = json.loads(out.read_text())
    [e] = body["entities"]
    assert body["dry_run"] is True and body["file"] == "deals.csv"
    assert (e["rows_read"], e["inserted"], e["quarantined"]) == (5, 2, 3)
    assert e["reasons"] == {"invalid_type": 1, "unknown_reference": 1, "malformed_row": 1}
    assert {(f["line"], f["field"], f["value"]) for f in e["faults"]} >= {(4, "amount", "lots"),
                                                                           (5, "account_id", "A9")}
    failed = _crm("import", "deals", str(deals), "--home", str(home.root))
    assert failed.returncode == 1 and "not an entity of the import contract" in failed.stdout


def test_import_refuses_mapping_without_the_entity(home, tmp_path):
    files = tmp_path / "files"
    with pytest.raises(ImportFailed, match="has no section for leads"):
        import_file(home, ["leads"], _write(files, "deals.csv", DEALS_CSV),
                    mapping=str(_write(files, "m.yaml", DEALS_MAPPING)))
    with pytest.raises(ImportFailed, match="no such file and no preset"):
        import_file(home, ["opportunities"], files / "deals.csv", mapping="no-such-preset")


def test_landing_entity_is_placed_with_its_mapping_and_loaded_by_ingest(home, tmp_path):
    from pipelines.lib.ingest import ingest_all

    files = tmp_path / "files"
    export = _write(files, "catalogue.csv", "Art-Nr,Bezeichnung,Linie,Preis,Kosten,Rabatt,Abo,Aktiv,Stand\n"
                    "P1,Widget,Software,10,4,20,false,true,2026-01-01T00:00:00\n"
                    "P2,Gadget,Hardware,-5,4,20,false,true,2026-01-01T00:00:00\n"
                    "P3,Gizmo,Services,7,2,10,true,true,2026-01-01T00:00:00\n")
    mapping = _write(files, "catalogue.yaml", "products:\n  columns:\n    Art-Nr: product_id\n"
                     "    Bezeichnung: product_name\n    Linie: product_line\n    Preis: list_price\n"
                     "    Kosten: unit_cost\n    Rabatt: max_discount_pct\n    Abo: is_recurring\n"
                     "    Aktiv: is_active\n    Stand: updated_at\n  defaults:\n    sku: n/a\n")
    report = import_file(home, ["products"], export, mapping=str(mapping))
    [e] = report.entities
    assert (e.target, e.rows_read, e.inserted, e.quarantined) == ("landing", 3, 2, 1)
    assert [(f.line, f.field, f.reason, f.value) for f in e.faults] == [(3, "list_price", "out_of_range", "-5")]
    placed = home.landing / "products" / "catalogue.csv"
    assert placed.read_bytes() == export.read_bytes()
    sidecar = home.landing / "products" / "catalogue.csv.mapping.yaml"
    assert "Bezeichnung: product_name" in sidecar.read_text()
    ingest_all(home, entities=["products"])
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        assert sorted(r[0] for r in con.sql("SELECT product_id FROM raw.products").fetchall()) == ["P1", "P3"]
        assert con.sql("SELECT source_line, field, reason FROM raw._quarantine WHERE entity = 'products'"
                       ).fetchall() == [(3, "list_price", "out_of_range")]


def test_one_file_feeds_several_entities(home, tmp_path):
    """Orders and their lines from one flat file: each entity's folder holds the same file (a hard link)."""
    files = tmp_path / "files"
    export = _write(files, "shop.csv", "order_id,account_id,order_date,status,sales_channel,currency,"
                    "order_line_id,product_id,quantity,unit_price,discount_pct,updated_at\n"
                    "O1,A1,2026-01-05,completed,webshop,EUR,O1-1,P1,2,10,0,2026-01-05T10:00:00\n"
                    "O2,A2,2026-01-06,completed,webshop,EUR,O2-1,P1,0,10,0,2026-01-06T10:00:00\n")
    mapping = _write(files, "shop.yaml", "orders:\n  columns: {}\norder_lines:\n  columns: {}\n")
    report = import_file(home, ["order_lines", "orders"], export, mapping=str(mapping))
    assert [e.entity for e in report.entities] == ["orders", "order_lines"]
    orders, lines = report.entities
    assert (orders.inserted, orders.quarantined) == (2, 0)
    assert (lines.inserted, lines.quarantined) == (1, 1)
    assert [(f.line, f.field, f.reason) for f in lines.faults] == [(3, "quantity", "out_of_range")]
    assert any("references to products were not checked" in w for w in lines.warnings)
    a, b = home.landing / "orders" / "shop.csv", home.landing / "order_lines" / "shop.csv"
    assert a.read_bytes() == b.read_bytes() == export.read_bytes()
    assert os.stat(a).st_ino == os.stat(b).st_ino  # hard-linked: the file is stored once


def test_interactions_are_written_as_day_files(home, tmp_path):
    files = tmp_path / "files"
    export = _write(files, "calls.csv", "interaction_id,occurred_at,channel,direction,account_id,outcome\n"
                    "I1,2026-01-05T10:00:00,call,outbound,A1,completed\n"
                    "I2,2026-01-06T11:00:00,call,inbound,A2,no_answer\n"
                    "I3,2026-01-05T15:00:00,email,outbound,A1,opened\n"
                    "I4,yesterday,email,outbound,A1,opened\n")
    report = import_file(home, ["interactions"], export)
    [e] = report.entities
    assert (e.inserted, e.quarantined) == (3, 1)
    folder = home.landing / "interactions"
    assert sorted(p.name for p in folder.iterdir()) == ["2026-01-05_calls.csv", "2026-01-06_calls.csv"]
    day = pl.read_csv(folder / "2026-01-05_calls.csv", infer_schema=False)
    assert day.get_column("interaction_id").to_list() == ["I1", "I3"]
    from pipelines.lib.ingest import ingest_all

    ingest_all(home)  # accounts first: the calls refer to them
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        assert con.sql("SELECT interaction_id FROM raw.interactions ORDER BY 1").fetchall() == [
            ("I1",), ("I2",), ("I3",)]


def _whole_and_pieces(path: Path, entity_name: str, chunk_bytes: int):
    entity = load_contract().entity(entity_name)
    whole = read_file(path, entity, EntityMapping(), path.name)
    pieces = list(read_pieces(path, entity, EntityMapping(), path.name, chunk_bytes=chunk_bytes))
    frame = pl.concat([p.rows.frame for p in pieces])
    malformed = [(m.line, m.value) for p in pieces for m in p.rows.malformed]
    return whole, pieces, frame, malformed


def test_pieces_read_the_same_rows_and_lines_as_the_whole_file(tmp_path):
    """Record-aligned pieces: quoted line breaks never split a record, and every line keeps its number."""
    rng = random.Random(5)
    lines = ["account_id,account_name,account_type,country,region,source_system,created_at,is_archived,updated_at"]
    for i in range(3_000):
        name = rng.choice(['Plain', '"Quoted, comma"', '"Two\nlines"', '"Say ""hi"""', ''])
        lines.append(f"A{i},{name},B2B,DE,North,crm,2025-01-01T00:00:00,false,2026-01-01T00:00:00")
        if i % 500 == 7:
            lines.append(f"A{i}x,bad,row,with,too,many,fields,here,x,y")
    path = _write(tmp_path, "accounts.csv", "\n".join(lines) + "\n")
    whole, pieces, frame, malformed = _whole_and_pieces(path, "accounts", chunk_bytes=4_096)
    assert len(pieces) > 20
    assert frame.equals(whole.frame)
    assert malformed == [(m.line, m.value) for m in whole.malformed] and len(malformed) == 6
    # JSON Lines too
    jsonl = tmp_path / "accounts.jsonl"
    jsonl.write_text("".join(json.dumps({"account_id": f"A{i}", "account_name": f"N\n{i}"}) + "\n"
                             for i in range(2_000)), encoding="utf-8")
    whole, pieces, frame, _ = _whole_and_pieces(jsonl, "accounts", chunk_bytes=2_048)
    assert len(pieces) > 10 and frame.select(ROW, "account_id").equals(whole.frame.select(ROW, "account_id"))


# --- the done-when figure --------------------------------------------------------------------------------
SF_STAGES = {"Prospecting": "prospecting", "Qualification": "qualification", "Proposal": "proposal",
             "Negotiation": "negotiation", "Won": "closed_won", "Lost": "closed_lost"}


def _deal_files(folder: Path, deals: int, seed: int = 11) -> tuple[Path, Path]:
    """Users, accounts and `deals` deals in an export's own headers, plus the mapping `m.yaml`."""
    rng = random.Random(seed)
    _write(folder, "users.csv", "user_id,full_name,email,role,team_id,hired_at,is_active,updated_at\n" + "".join(
        f"U{i},Rep {i},rep{i}@example.test,sales_rep,,2020-01-01,true,2026-01-01T00:00:00\n" for i in range(25)))
    _write(folder, "accounts.csv", ACCOUNTS_CSV.splitlines()[0] + "\n" + "".join(
        f"A{i},Account {i},B2B,DE,North,U{i % 25},crm,2024-01-01T00:00:00,false,2026-01-01T00:00:00\n"
        for i in range(800)))
    rows = ["Deal Id,Account,Owner,Deal Name,Stage,Amount,Close Date,Created,Modified"]
    for i in range(deals):
        stage = rng.choice(list(SF_STAGES))
        created = f"2025-{rng.randrange(1, 13):02d}-{rng.randrange(1, 28):02d}T{rng.randrange(8, 18):02d}:00:00"
        rows.append(f"D{i:05d},A{rng.randrange(800)},U{rng.randrange(25)},\"Deal {i}, renewal\",{stage},"
                    f"{rng.randrange(100, 90_000)}.{rng.randrange(100):02d},2026-{rng.randrange(1, 13):02d}-15,"
                    f"{created},2026-01-{rng.randrange(1, 28):02d}T12:00:00")
    deals_csv = _write(folder, "deals.csv", "\n".join(rows) + "\n")
    stage_table = "".join(f"      {k}: {v}\n" for k, v in SF_STAGES.items())
    mapping = _write(folder, "m.yaml", "opportunities:\n  columns:\n    Deal Id: opportunity_id\n"
                     "    Account: account_id\n    Owner: owner_user_id\n    Deal Name: opportunity_name\n"
                     "    Stage: stage\n    Amount: amount\n    Close Date: expected_close_date\n"
                     "    Created: created_at\n    Modified: updated_at\n  values:\n    stage:\n" + stage_table)
    return deals_csv, mapping


@pytest.mark.slow
def test_ten_thousand_deals_import_fast_and_funnel_marts_match_the_file(tmp_path, monkeypatch):
    from pipelines.lib.ingest import ingest_all

    monkeypatch.delenv("CRM_OPERATIONAL_DB_URL", raising=False)
    files = tmp_path / "files"
    files.mkdir()
    deals_csv, mapping = _deal_files(files, 10_000)
    home = CrmHome(tmp_path / "home")
    env = {**os.environ, "CRM_HOME": str(home.root)}
    crm = str(Path(sys.executable).with_name("crm"))
    for entity in ("users", "accounts"):
        subprocess.run([crm, "import", entity, str(files / f"{entity}.csv")], env=env, check=True,
                       capture_output=True)
    started = time.perf_counter()
    done = subprocess.run([crm, "import", "opportunities", str(deals_csv), "--mapping", str(mapping),
                           "--report", str(tmp_path / "r.json")], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert seconds < 10, f"crm import of 10,000 deals took {seconds:.1f}s"
    [e] = json.loads((tmp_path / "r.json").read_text())["entities"]
    assert (e["inserted"], e["quarantined"]) == (10_000, 0)

    # the marts, built by the real pipeline on a home that holds only imported data
    ingest_all(home)
    project = REPO / "dbt_project"
    dbt = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "run", "--project-dir", str(project), "--profiles-dir",
         str(project), "--target-path", str(home.root / "dbt_target"), "--log-path", str(home.logs),
         "--select", "+fct_funnel_conversion +fct_win_rates"],
        env={**os.environ, "CRM_WAREHOUSE": str(home.warehouse)}, capture_output=True, text=True)
    assert dbt.returncode == 0, (dbt.stdout + dbt.stderr)[-4000:]

    # independent recomputation from the file
    raw = pl.read_csv(deals_csv, infer_schema=False).with_columns(
        pl.col("Stage").replace_strict(SF_STAGES).alias("stage"), pl.col("Amount").cast(pl.Float64))
    by_stage = dict(raw.group_by("stage").len().iter_rows())
    won = raw.filter(pl.col("stage") == "closed_won")
    lost = raw.filter(pl.col("stage") == "closed_lost")
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        mart_stages = dict(con.sql("SELECT stage, count(*) FROM marts.fct_opportunities GROUP BY 1").fetchall())
        open_at = dict(con.sql("SELECT from_stage, sum(deals_open_at_stage) FROM marts.fct_funnel_conversion "
                               "WHERE dimension = 'all' GROUP BY 1").fetchall())
        entered = con.sql("SELECT sum(deals_entered) FROM marts.fct_funnel_conversion "
                          "WHERE dimension = 'all' AND from_stage = 'prospecting'").fetchall()[0][0]
        closed, won_n, won_amount = con.sql(
            "SELECT sum(deals_closed), sum(deals_won), sum(won_amount) FROM marts.fct_win_rates "
            "WHERE dimension = 'all'").fetchall()[0]
    assert mart_stages == by_stage
    assert {s: open_at[s] for s in ("prospecting", "qualification", "proposal", "negotiation")} == {
        s: by_stage[s] for s in ("prospecting", "qualification", "proposal", "negotiation")}
    assert entered == 10_000
    assert (closed, won_n) == (won.height + lost.height, won.height)
    assert won_n / closed == pytest.approx(won.height / (won.height + lost.height))
    assert won_amount == pytest.approx(won.get_column("Amount").sum(), rel=1e-9)


@pytest.mark.slow
def test_a_large_file_streams_in_bounded_memory(tmp_path, monkeypatch):
    """A ~200 MB export: the import's peak memory above the interpreter's stays well under the file size."""
    monkeypatch.delenv("CRM_OPERATIONAL_DB_URL", raising=False)
    path = tmp_path / "lines.csv"
    row = "OL{0},O{1},P{2},3,19.99,0,2026-01-05T10:00:00\n"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("order_line_id,order_id,product_id,quantity,unit_price,discount_pct,updated_at\n")
        block = 100_000
        i = 0
        while fh.tell() < 200 * 1024 * 1024:
            fh.write("".join(row.format(i + k, (i + k) // 3, (i + k) % 50) for k in range(block)))
            i += block
    size = path.stat().st_size
    home = tmp_path / "home"
    probe = f"""
import itertools, resource, sys
from pathlib import Path
from pipelines.lib.home import CrmHome
from pipelines.lib.importer import import_file
small = Path({str(tmp_path / "small.csv")!r})
with open({str(path)!r}, "rb") as fh:
    small.write_bytes(b"".join(itertools.islice(fh, 1000)))
import_file(CrmHome(Path({str(home)!r})), ["order_lines"], small, dry_run=True)  # warm up: thread pools
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = import_file(CrmHome(Path({str(home)!r})), ["order_lines"], Path({str(path)!r}), dry_run=True)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(report.entities[0].rows_read, (peak - base) * 1024)
"""
    CrmHome(home).ensure()
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    rows, grown = map(int, done.stdout.split())
    assert rows == i
    assert grown < size * 0.4, f"peak memory grew by {grown / 2**20:.0f} MiB on a {size / 2**20:.0f} MiB file"


def test_excel_workbook_is_read(home, tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Deal", "Customer", "Rep", "Title", "Phase", "Value", "Due", "Opened", "Changed"])
    sheet.append(["X1", "A1", "U1", "From Excel", "proposal", 1500.25, "2026-05-01", "2025-06-01T09:00:00",
                  "2025-07-01T09:00:00"])
    sheet.append(["X2", "A1", "U1", "Negative", "proposal", -3, "2026-05-01", "2025-06-01T09:00:00",
                  "2025-07-01T09:00:00"])
    path = tmp_path / "files" / "deals.xlsx"
    book.save(path)
    mapping = _write(tmp_path / "files", "m.yaml", DEALS_MAPPING)
    [e] = import_file(home, ["opportunities"], path, mapping=str(mapping)).entities
    assert (e.rows_read, e.inserted, e.quarantined) == (2, 1, 1)
    assert [(f.line, f.field, f.reason) for f in e.faults] == [(3, "amount", "out_of_range")]
    store = _store(home)
    try:
        assert store.get("opportunities", "X1")["amount"] == 1500.25
    finally:
        store.dispose()


def test_file_options_in_pieces(tmp_path):
    """Semicolons, Latin-1 and no header line: pieces give the rows and lines of the whole file."""
    from pipelines.lib.ingest.mapping import load_column_mapping

    rows = [f"P{i};Produkt {i} Größe;Hardware;{i % 50 + 1},5;2;10;false;true;2026-01-01T00:00:00"
            for i in range(4_000)]
    rows[1234] = "broken;line"
    path = tmp_path / "artikel.txt"
    path.write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    mapping_file = _write(tmp_path, "m.yaml", "products:\n  file:\n    format: csv\n    delimiter: \";\"\n"
                          "    encoding: latin-1\n    header: false\n    names: [id, name, line, price, cost, "
                          "disc, rec, active, ts]\n  columns:\n    id: [product_id, sku]\n    name: product_name\n"
                          "    line: product_line\n    price: list_price\n    cost: unit_cost\n"
                          "    disc: max_discount_pct\n    rec: is_recurring\n    active: is_active\n"
                          "    ts: updated_at\n  formats:\n    list_price: decimal_comma\n")
    mapping = load_column_mapping(mapping_file).for_entity("products")
    entity = load_contract().entity("products")
    whole = read_file(path, entity, mapping, path.name)
    pieces = list(read_pieces(path, entity, mapping, path.name, chunk_bytes=8_192))
    assert len(pieces) > 10
    frame = pl.concat([p.rows.frame for p in pieces])
    assert frame.equals(whole.frame) and frame.height == 3_999
    assert frame.filter(pl.col("product_id") == "P7").row(0, named=True)["product_name"] == "Produkt 7 Größe"
    assert [m.line for p in pieces for m in p.rows.malformed] == [m.line for m in whole.malformed] == [1235]


def test_landing_file_with_any_suffix_is_loaded_by_its_sidecar(home, tmp_path):
    from pipelines.lib.ingest import ingest_all

    files = tmp_path / "files"
    export = _write(files, "catalogue.dat", "P1|Widget|Software|10|4|20|false|true|2026-01-01T00:00:00\n"
                    "P2|Gadget|Hardware|5|2|20|false|true|2026-01-01T00:00:00\n")
    mapping = _write(files, "m.yaml", "products:\n  file:\n    format: csv\n    delimiter: \"|\"\n    header: false\n"
                     "    names: [product_id, product_name, product_line, list_price, unit_cost, max_discount_pct,"
                     " is_recurring, is_active, updated_at]\n  columns:\n    product_id: [product_id, sku]\n")
    [e] = import_file(home, ["products"], export, mapping=str(mapping)).entities
    assert (e.inserted, e.quarantined) == (2, 0)
    ingest_all(home, entities=["products"])
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        assert con.sql("SELECT product_id, sku FROM raw.products ORDER BY 1").fetchall() == [("P1", "P1"),
                                                                                           ("P2", "P2")]


def test_deals_may_refer_to_accounts_loaded_from_landing_files(home, tmp_path):
    """An account that arrived in a landing file (a web shop's customer) is known to crm run; a deal
    imported for it is accepted, as the next run will accept it."""
    from pipelines.lib.ingest import ingest_all

    files = tmp_path / "files"
    (home.landing / "accounts").mkdir(parents=True, exist_ok=True)
    _write(home.landing / "accounts", "shop_customers.csv", ACCOUNTS_CSV.splitlines()[0] + "\n"
           "W1,Web Customer,B2C,DE,North,,webshop,2025-01-01T00:00:00,false,2026-01-01T00:00:00\n")
    ingest_all(home)
    deals = _write(files, "deals.csv", DEALS_CSV.splitlines()[0] + "\n"
                   "D7,W1,U1,Shop upsell,proposal,99,2026-03-01,2025-06-01T09:00:00,2025-07-01T09:00:00\n")
    [e] = import_file(home, ["opportunities"], deals, mapping=str(_write(files, "m.yaml", DEALS_MAPPING))).entities
    assert (e.inserted, e.quarantined) == (1, 0)


def test_a_record_changed_during_the_import_stops_its_batch(home, tmp_path, monkeypatch):
    """Someone saves a deal between the import's read and its write: the batch is not written (no lost
    update), and the import says to run again."""
    from pipelines.lib.store import upsert

    files = tmp_path / "files"
    mapping = str(_write(files, "m.yaml", DEALS_MAPPING))
    import_file(home, ["opportunities"], _write(files, "deals.csv", DEALS_CSV), mapping=mapping)
    changed = DEALS_CSV.replace("Big deal,prospecting", "Big deal,qualification").replace(
        "2025-07-01T09:00:00", "2025-09-01T09:00:00")
    read = upsert._stored

    def read_then_someone_saves(conn, entity, ids):
        stored = read(conn, entity, ids)
        for record in stored.values():
            record["version"] -= 1  # as if the portal saved after this read
        return stored

    monkeypatch.setattr(upsert, "_stored", read_then_someone_saves)
    with pytest.raises(ImportFailed, match="changed by someone else during the import"):
        import_file(home, ["opportunities"], _write(files, "deals.csv", changed), mapping=mapping)
    store = _store(home)
    try:
        d1 = store.get("opportunities", "D1")
        assert (d1["stage"], d1["version"]) == ("prospecting", 1)
        assert len(store.audit_rows("opportunities", "D1")) == 1
    finally:
        store.dispose()
