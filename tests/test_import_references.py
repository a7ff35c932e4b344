"""`crm import` of a landing entity checks its references as `crm run` will: parents saved in the
operational store by an earlier import count, whether or not a run has built the raw layer since."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.lib.home import CrmHome
from pipelines.lib.importer import import_file
from pipelines.lib.ingest import ingest_all
from pipelines.lib.store import OperationalStore

TS = "2026-01-01T00:00:00"
ACCOUNTS = "account_id,account_name,account_type,country,region,source_system,created_at,is_archived,updated_at\n"
CALLS = "interaction_id,occurred_at,channel,direction,account_id,outcome\n"


def _write(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture
def home(tmp_path, monkeypatch) -> CrmHome:
    """A home whose store holds account A1 (imported); no `crm run` yet."""
    monkeypatch.delenv("CRM_OPERATIONAL_DB_URL", raising=False)
    h = CrmHome(tmp_path / "home").ensure()
    store = OperationalStore(h.operational_db_url)
    store.migrate()
    store.dispose()
    import_file(h, ["accounts"], _write(tmp_path / "files", "a1.csv",
                                        ACCOUNTS + f"A1,One,B2B,DE,North,crm,{TS},false,{TS}\n"))
    return h


def _calls(home: CrmHome, tmp_path: Path, body: str):
    report = import_file(home, ["interactions"], _write(tmp_path / "files", "calls.csv", CALLS + body),
                         dry_run=True)
    [entity] = report.entities
    return entity


def test_a_landing_import_finds_parents_in_the_store_before_any_run(home, tmp_path):
    entity = _calls(home, tmp_path, "I1,2026-01-05T10:00:00,call,outbound,A1,completed\n"
                                    "I2,2026-01-05T11:00:00,call,outbound,A9,completed\n")
    assert (entity.rows_read, entity.inserted, entity.quarantined) == (2, 1, 1)
    assert [(f.line, f.field, f.reason, f.value) for f in entity.faults] == [
        (3, "account_id", "unknown_reference", "A9")]
    assert not any("accounts" in w for w in entity.warnings), entity.warnings


def test_a_parent_saved_after_the_last_run_is_not_reported_unknown(home, tmp_path):
    ingest_all(home)  # the raw layer now holds A1 only
    import_file(home, ["accounts"], _write(tmp_path / "files", "a2.csv",
                                           ACCOUNTS + f"A2,Two,B2B,DE,North,crm,{TS},false,{TS}\n"))
    entity = _calls(home, tmp_path, "I1,2026-01-05T10:00:00,call,outbound,A2,completed\n")
    assert (entity.rows_read, entity.inserted, entity.quarantined) == (1, 1, 0), [
        (f.line, f.reason, f.message) for f in entity.faults]
