"""Backup and restore of an installation's stores.

A backup is a folder holding a consistent copy of the operational store, the warehouse, the current
published snapshot and the model artifacts, plus `backup.json` with every file's sha256. It can be taken
while the portal runs:
- the SQLite operational store is copied with SQLite's online backup API, which gives a consistent copy
  even while the portal writes (WAL mode); a PostgreSQL store is exported table by table in one
  repeatable-read transaction;
- the warehouse is copied while holding a read-only DuckDB connection, which no writer can open alongside,
  so no pipeline run changes it mid-copy (a running pipeline makes the backup wait, then fail clearly);
- snapshots are immutable once published, so a plain copy is consistent.
`restore` refuses a target that already holds data (a non-empty operational store, SQLite or
PostgreSQL alike, or a warehouse) unless it is told to replace it (`force`, `crm restore --force`), then
rebuilds the home from the folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from pipelines.lib.home import CrmHome
from pipelines.lib.snapshot import current_snapshot_path

FORMAT_VERSION = 1


class BackupError(RuntimeError):
    """A backup or restore could not be completed; the message says what to do."""


@dataclass(frozen=True)
class BackupResult:
    folder: Path
    files: dict[str, str]  # relative path -> sha256
    seconds: float


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_warehouse(source: Path, target: Path, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            guard = duckdb.connect(str(source), read_only=True)
            break
        except duckdb.IOException as exc:
            if time.monotonic() > deadline:
                raise BackupError(
                    f"The warehouse {source} is being written by a pipeline run; "
                    "run the backup again when the run has finished.") from exc
            time.sleep(1.0)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        wal = source.with_name(source.name + ".wal")
        if wal.exists():
            shutil.copy2(wal, target.with_name(target.name + ".wal"))
    finally:
        guard.close()


def _backup_store(home: CrmHome, folder: Path) -> list[Path]:
    url = home.operational_db_url
    if url.startswith("sqlite:///"):
        source = Path(url.split(":///", 1)[1])
        if not source.exists():
            return []
        target = folder / "operational.db"
        src = sqlite3.connect(source)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        return [target]
    import psycopg

    out = folder / "operational"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with psycopg.connect(url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1").fetchall()]
        for table in tables:
            cur = conn.execute(f'SELECT * FROM "{table}"')  # names from the catalogue, not user input
            columns = [d.name for d in cur.description]
            frame = pl.DataFrame(cur.fetchall(), schema=columns, orient="row", infer_schema_length=None)
            path = out / f"{table}.parquet"
            frame.write_parquet(path)
            written.append(path)
    return written


def backup(home: CrmHome, folder: Path, wait_seconds: float = 120.0) -> BackupResult:
    """Write a consistent backup of `home` into `folder` (created; must be empty if it exists)."""
    start = time.perf_counter()
    folder = folder.expanduser().resolve()
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(f"The backup folder {folder} is not empty; choose a new folder.")
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = _backup_store(home, folder)
    if home.warehouse.exists():
        _copy_warehouse(home.warehouse, folder / "warehouse" / home.warehouse.name, wait_seconds)
        written.append(folder / "warehouse" / home.warehouse.name)
    current = current_snapshot_path(home)
    if current is not None:
        target = folder / "snapshots" / current.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(current, target)
        written.append(target)
    if home.model_artifacts.exists():
        shutil.copytree(home.model_artifacts, folder / "model_artifacts", dirs_exist_ok=True)
    files = {
        str(p.relative_to(folder)): _sha256(p)
        for p in sorted(folder.rglob("*")) if p.is_file()
    }
    manifest = {
        "format_version": FORMAT_VERSION,
        "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_home": str(home.root),
        "operational_store": "sqlite" if home.operational_db_url.startswith("sqlite") else "postgresql",
        "current_snapshot": current.name if current else None,
        "files": files,
    }
    (folder / "backup.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return BackupResult(folder, files, time.perf_counter() - start)


def _store_kind(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def _sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


#: Store tables that describe the data rather than hold it: a store with rows only there is empty.
_BOOKKEEPING = ("schema_migrations", "store_changes")


def store_rows(url: str) -> dict[str, int]:
    """Tables of an operational store that hold rows, with their counts (schema bookkeeping aside).

    A missing SQLite file or a freshly migrated store holds none; that is what `restore` may fill."""
    if _store_kind(url) == "sqlite":
        path = _sqlite_path(url)
        if not path.exists():
            return {}
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
            counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # names from the catalogue
                      for t in tables if t not in _BOOKKEEPING}
        finally:
            con.close()
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'").fetchall()]
            counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # names from the catalogue
                      for t in tables if t not in _BOOKKEEPING}
    return {t: n for t, n in sorted(counts.items()) if n}


def _refuse_populated(home: CrmHome, manifest: dict) -> None:
    url = home.operational_db_url
    kind = _store_kind(url)
    if manifest["operational_store"] != kind:
        raise BackupError(f"The backup holds a {manifest['operational_store']} operational store but "
                          f"{home.root} uses {kind} (CRM_OPERATIONAL_DB_URL); restore into a home that uses "
                          f"{manifest['operational_store']}.")
    held = store_rows(url)
    if held:
        from pipelines.lib.store import OperationalStore

        where = OperationalStore(url).display_url if kind == "postgresql" else str(_sqlite_path(url))
        tables = ", ".join(f"{n} in {t}" for t, n in list(held.items())[:3])
        raise BackupError(f"The {kind} operational store {where} already holds data ({tables}); restore into "
                          "an empty store, or pass --force to replace its contents with the backup.")
    if home.warehouse.exists():
        raise BackupError(f"{home.root} already holds data ({home.warehouse.name}); restore into a new, "
                          "empty home, or pass --force to replace it with the backup.")


def _replace_file(source: Path, target: Path) -> None:
    """Copy `source` over `target`, dropping the target's write-ahead files (they belong to the old file)."""
    for suffix in (".wal", "-wal", "-shm", "-journal"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    shutil.copy2(source, target)


def restore(folder: Path, home: CrmHome, force: bool = False) -> dict[str, str]:
    """Bring a backup back into a home after checking every file's checksum.

    The home must not hold data (see `_refuse_populated`) unless `force`, which replaces the store's rows,
    the warehouse, the snapshots and the model artifacts with the backup's."""
    folder = folder.expanduser().resolve()
    manifest_path = folder / "backup.json"
    if not manifest_path.exists():
        raise BackupError(f"{folder} is not a backup folder (no backup.json); pass the folder `crm backup` wrote.")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    for rel, digest in manifest["files"].items():
        path = folder / rel
        if not path.exists() or _sha256(path) != digest:
            raise BackupError(f"Backup file {path} is missing or damaged (checksum mismatch); "
                              "restore from another backup.")
    if not force:
        _refuse_populated(home, manifest)
    home.ensure()
    if manifest["operational_store"] == "sqlite":
        if (folder / "operational.db").exists():
            _replace_file(folder / "operational.db", _sqlite_path(home.operational_db_url))
    else:
        _restore_postgres(folder / "operational", home)
    warehouse = folder / "warehouse" / home.warehouse.name
    if warehouse.exists():
        _replace_file(warehouse, home.warehouse)
        wal = warehouse.with_name(warehouse.name + ".wal")
        if wal.exists():
            shutil.copy2(wal, home.warehouse.with_name(home.warehouse.name + ".wal"))
    if force:
        for old in home.snapshots.glob("snapshot-*.duckdb*"):
            old.unlink()
        (home.snapshots / "CURRENT").unlink(missing_ok=True)
        shutil.rmtree(home.model_artifacts, ignore_errors=True)
    if manifest.get("current_snapshot"):
        shutil.copy2(folder / "snapshots" / manifest["current_snapshot"], home.snapshots / manifest["current_snapshot"])
        (home.snapshots / "CURRENT").write_text(manifest["current_snapshot"], encoding="utf-8")
    if (folder / "model_artifacts").exists():
        shutil.copytree(folder / "model_artifacts", home.model_artifacts, dirs_exist_ok=True)
    return manifest["files"]


def _restore_postgres(folder: Path, home: CrmHome) -> None:
    from pipelines.lib.store import OperationalStore, _ident

    store = OperationalStore(home.operational_db_url)
    store.migrate()
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        # the target's rows go first, also in tables the backup lacks; `restore` only gets here for an
        # empty store or with force
        for (table,) in cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                                    "current_schema() AND table_type = 'BASE TABLE'").fetchall():
            if table != "schema_migrations":
                cur.execute(f'DELETE FROM "{_ident(table)}"')
        for path in sorted(folder.glob("*.parquet")):
            table = _ident(path.stem)
            if table == "schema_migrations":
                continue
            frame = pl.read_parquet(path)
            with cur.copy(f'COPY "{table}" ({", ".join(frame.columns)}) FROM STDIN') as copy:
                for row in frame.iter_rows():
                    copy.write_row(row)
        # rows copied with their ids leave the sequences behind them (the change log's change_id):
        # move each past its column's largest id, or the next write would collide with a restored one
        serials = cur.execute("SELECT table_name, column_name FROM information_schema.columns WHERE "
                              "table_schema = current_schema() AND column_default LIKE 'nextval(%'").fetchall()
        for table, column in serials:
            cur.execute(f'SELECT setval(pg_get_serial_sequence(%s, %s), '  # names from the catalogue
                        f'coalesce((SELECT max("{column}") FROM "{table}"), 0) + 1, false)', (table, column))
        raw.commit()
    finally:
        raw.close()
