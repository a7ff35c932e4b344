"""Publishing switches readers atomically; readers never see a half-built snapshot."""

from __future__ import annotations

import threading

import duckdb
import pytest

from pipelines.lib.home import CrmHome
from pipelines.lib.snapshot import NoSnapshotError, connect_snapshot, current_snapshot_path, publish


def _build(home: CrmHome, version: int, rows: int = 2000) -> None:
    """Stand in for a dbt build: two marts whose contents both carry the build version."""
    con = duckdb.connect(str(home.warehouse))
    con.execute("create schema if not exists marts; create schema if not exists raw")
    con.execute(f"create or replace table marts.fct_a as select range as id, {version} as v from range({rows})")
    con.execute(f"create or replace view marts.dim_b as select {version} as v, count(*) as n from marts.fct_a")
    con.execute("create or replace table raw._quarantine as select 'x' as reason")
    con.close()


def test_no_snapshot_message(tmp_path):
    with pytest.raises(NoSnapshotError, match="crm run"):
        connect_snapshot(CrmHome(tmp_path).ensure())


def test_publish_copies_marts_and_quality(tmp_path):
    home = CrmHome(tmp_path).ensure()
    _build(home, 1)
    result = publish(home)
    assert result.tables == {"marts.dim_b": 1, "marts.fct_a": 2000, "quality.quarantine": 1}
    con = connect_snapshot(home)
    assert con.execute("select v, n from marts.dim_b").fetchone() == (1, 2000)
    assert con.execute("select snapshot_id from snapshot_meta").fetchone()[0] == result.snapshot_id
    with pytest.raises(duckdb.Error):
        con.execute("create table marts.evil as select 1")
    with pytest.raises(duckdb.Error):
        con.execute(f"copy marts.fct_a to '{tmp_path / 'leak.csv'}'")
    con.close()


def test_readers_see_one_consistent_version_while_publishing(tmp_path):
    home = CrmHome(tmp_path).ensure()
    _build(home, 0)
    publish(home)
    errors: list[BaseException] = []
    seen: set[int] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                con = connect_snapshot(home)
                try:
                    versions = con.execute(
                        "select (select min(v) from marts.fct_a), (select max(v) from marts.fct_a), "
                        "(select v from marts.dim_b)").fetchone()
                finally:
                    con.close()
                assert versions[0] == versions[1] == versions[2], versions
                seen.add(versions[0])
            except BaseException as exc:  # noqa: BLE001 - the test counts every failure
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    for version in range(1, 8):
        _build(home, version)
        publish(home)
    stop.set()
    thread.join()
    assert errors == []
    assert len(seen) >= 2
    assert len(list(home.snapshots.glob("snapshot-*.duckdb"))) == 3
    assert current_snapshot_path(home).exists()


def test_reading_while_a_real_crm_run_publishes(tmp_path):
    """Readers loop over the snapshot while a full pipeline run rebuilds and republishes it."""
    from pipelines.generate.run import generate_home
    from pipelines.lib.runner import run_job

    home = CrmHome(tmp_path / "home").ensure()
    generate_home(home, customers=150, seed=3, dirty=0.0, years=2.0, console=None)
    assert run_job(home).success
    first = current_snapshot_path(home)
    errors: list[BaseException] = []
    versions: set[str] = set()
    reads = 0
    done = threading.Event()
    outcome = {}

    def pipeline() -> None:
        outcome["run"] = run_job(home)
        done.set()

    thread = threading.Thread(target=pipeline)
    thread.start()
    while not done.is_set() or reads < 5:
        try:
            con = connect_snapshot(home)
            try:
                snapshot_id, tables = con.execute("select snapshot_id, tables_json from snapshot_meta").fetchone()
                counts = {name: n for name, n in __import__("json").loads(tables).items() if name.startswith("marts.")}
                for name, expected in list(counts.items())[:5]:
                    schema, table = name.split(".")
                    assert con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0] == expected
            finally:
                con.close()
            versions.add(snapshot_id)
            reads += 1
        except BaseException as exc:  # noqa: BLE001 - every failure counts
            errors.append(exc)
    thread.join()
    assert outcome["run"].success
    assert errors == []
    assert reads >= 5
    assert current_snapshot_path(home) != first  # the run published a new version, readers saw only whole ones
