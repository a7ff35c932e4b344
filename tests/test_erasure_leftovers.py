"""What of an erased customer the first erasure design left behind: malformed resent lines, unconverted leads.

A resent export with a malformed line of an erased customer must not bring the person back.

Tombstones used to apply only to rows the reader could parse; a malformed line went to the quarantine with
its raw text, and so with the person's name, email and phone."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from pipelines.lib.erasure import subject_hash
from pipelines.lib.home import CrmHome
from pipelines.lib.ingest import ingest_all
from pipelines.lib.store import OperationalStore
from pipelines.lib.warehouse import connect_writer

HEADER = ("account_id,account_name,account_type,industry,employees,email,phone,city,country,region,"
          "owner_user_id,source_system,created_at,updated_at,is_archived")
GOOD = "ACC-1,Nordwind GmbH,B2B,Retail,40,info@nordwind.example,,Hamburg,DE,north,,erp,2025-01-01T00:00:00,2025-01-02T00:00:00,false"
# one field too many: the reader cannot split it, so it is a malformed row
ERASED = ("ACC-2,Jana Novakova,B2C,,,jana.novakova@mail.example,+420 601 222 333,Brno,CZ,east,,webshop,"
          "2025-01-01T00:00:00,2025-01-02T00:00:00,false,EXTRA")
MALFORMED_OTHER = "ACC-3,Other Person,B2C,,,other@mail.example,,Linz,AT,south,,webshop,2025-01-01T00:00:00,x,false,EXTRA"


def test_a_resent_malformed_row_of_an_erased_customer_does_not_reach_the_quarantine(tmp_path):
    home = CrmHome(tmp_path / "home").ensure()
    store = OperationalStore(home.operational_db_url)
    store.migrate()
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO erased_subjects (subject_hash, entity, erased_at) VALUES (:h, :e, :t)"),
                     {"h": subject_hash("accounts", "ACC-2"), "e": "accounts",
                      "t": datetime.now(UTC).replace(tzinfo=None)})
    store.dispose()
    folder = home.landing / "accounts"
    folder.mkdir(parents=True)
    (folder / "accounts.csv").write_text("\n".join([HEADER, GOOD, ERASED, MALFORMED_OTHER]) + "\n")

    ingest_all(home, entities=["accounts"])

    con = connect_writer(home.warehouse)
    try:
        quarantine = con.execute("SELECT record_id, value, message FROM raw._quarantine").fetchall()
        log = con.execute("SELECT rows_read, rows_loaded, rows_quarantined, duplicates_dropped, rows_erased "
                          "FROM raw._load_log WHERE entity = 'accounts' AND source_file LIKE '%accounts.csv'").fetchall()
    finally:
        con.close()
    text_of_quarantine = repr(quarantine).lower()
    assert "jana" not in text_of_quarantine and "601 222 333" not in text_of_quarantine
    assert [q[0] for q in quarantine] == ["ACC-3"]  # a malformed row of someone else stays quarantined
    assert log == [(3, 1, 1, 0, 1)]  # every physical row accounted for: loaded + quarantined + erased


def test_an_unconverted_lead_with_the_customers_email_is_erased_with_them(tmp_path):
    """A lead that was never converted refers to none of the customer's records, yet names them: erasure
    finds it by email (and phone) in the store. A lead of a namesake with other contact details stays."""
    from pipelines.lib.erasure import erase_customer

    home = CrmHome(tmp_path / "home").ensure()
    store = OperationalStore(home.operational_db_url)
    store.migrate()
    store.create("accounts", {"account_id": "ACC-1", "account_name": "Jana Novakova", "account_type": "B2C",
                              "country": "CZ", "region": "east", "source_system": "webshop",
                              "email": "jana.novakova@mail.example", "city": "Brno"}, "U0")
    lead = {"lead_source": "web", "status": "new"}
    store.create("leads", {**lead, "lead_id": "L-1", "first_name": "Jana", "last_name": "Novakova",
                           "email": "Jana.Novakova@mail.example"}, "U0")
    store.create("leads", {**lead, "lead_id": "L-2", "first_name": "Jana", "last_name": "Novakova",
                           "email": "jana.n@other.example"}, "U0")
    store.dispose()

    erase_customer(home, "ACC-1")

    store = OperationalStore(home.operational_db_url)
    try:
        with store.engine.connect() as conn:
            leads = [r[0] for r in conn.exec_driver_sql("SELECT lead_id FROM leads ORDER BY lead_id")]
    finally:
        store.dispose()
    assert leads == ["L-2"]
    assert b"jana.novakova@mail.example" not in home.operational_db.read_bytes().lower()
