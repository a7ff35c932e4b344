"""The operational-store source path against the real PostgreSQL server (fails, not skips, in CI)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from test_ingest import EXPECTED_QUARANTINE, _store_rows, build_small_home, quarantine_set

from pipelines.lib.ingest import ingest_all, reconcile
from pipelines.lib.store import OperationalStore

pytestmark = pytest.mark.postgres


def test_store_entities_are_ingested_from_postgresql_incrementally(tmp_path: Path, postgres_url: str):
    home = build_small_home(tmp_path / "home")
    store = OperationalStore(postgres_url)
    try:
        _store_rows(store)
        row = store.get("accounts", "ACC-3")
        store.update("accounts", "ACC-3", {"account_name": "Gamma from Postgres"}, row["version"], actor="U-1")

        first = {r.entity: r for r in ingest_all(home, store_url=postgres_url)}
        store_source = next(s for s in first["accounts"].sources if s.source_file == "store:accounts")
        assert store_source.rows_read == 3
        assert quarantine_set(home.warehouse) == EXPECTED_QUARANTINE
        con = duckdb.connect(str(home.warehouse), read_only=True)
        try:
            assert reconcile(con) == []
            assert con.execute("SELECT account_name, typeof(updated_at), is_archived FROM raw.accounts "
                               "WHERE account_id = 'ACC-3'").fetchall() == [("Gamma from Postgres", "TIMESTAMP", False)]
            assert con.execute("SELECT count(*) FROM raw.users WHERE _source_file = 'store:users'").fetchone() == (2,)
        finally:
            con.close()

        # incremental: the change log brings the account edited since (plus, while some other transaction
        # on the server is open, what changed after it began: read again, loaded once)
        row = store.get("accounts", "ACC-2")
        store.update("accounts", "ACC-2", {"account_name": "Beta from Postgres"}, row["version"], actor="U-1")
        second = {r.entity: r for r in ingest_all(home, entities=["accounts"], store_url=postgres_url)}
        assert next(s for s in second["accounts"].sources if s.source_file == "store:accounts").rows_read >= 1
        con = duckdb.connect(str(home.warehouse), read_only=True)
        try:
            assert con.execute("SELECT account_name, count(*) OVER () FROM raw.accounts "
                               "WHERE account_id = 'ACC-2'").fetchall() == [("Beta from Postgres", 1)]
        finally:
            con.close()
        # the column-wise store reader renders PostgreSQL values exactly like the store's read_frame
        from pipelines.contract import load_contract
        from pipelines.lib.ingest.store_source import read_store_frame

        for entity in load_contract().store_entities:
            assert read_store_frame(store, entity).equals(store.read_frame(entity.name))
    finally:
        store.dispose()
