"""Backup and restore of an installation's stores (CAPABILITIES.md C6).

A backup is a folder holding a consistent copy of the operational store, the warehouse, the current
published snapshot and the model artifacts, plus `backup.json` with every file's sha256. It can be taken
while the portal runs:
- the SQLite operational store is copied with SQLite's online backup API, which gives a consistent copy
  even while the portal writes (WAL mode); a PostgreSQL store is exported table by table in one
  repeatable-read transaction;
- the warehouse is copied while holding a read-only DuckDB connection, which no writer can open alongside,
  so no pipeline run changes it mid-copy (a running pipeline makes the backup wait, then fail clearly);
- snapshots are immutable once published, so a plain copy is consistent.
`restore` refuses to overwrite a home that already has data, then rebuilds it from the folder.
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


def restore(folder: Path, home: CrmHome) -> dict[str, str]:
    """Bring a backup back into a fresh home after checking every file's checksum."""
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
    for existing in (home.operational_db, home.warehouse):
        if existing.exists():
            raise BackupError(f"{home.root} already holds data ({existing.name}); restore into a new, empty home.")
    home.ensure()
    if manifest["operational_store"] == "sqlite":
        if (folder / "operational.db").exists():
            shutil.copy2(folder / "operational.db", home.operational_db)
    else:
        _restore_postgres(folder / "operational", home)
    warehouse = folder / "warehouse" / home.warehouse.name
    if warehouse.exists():
        shutil.copy2(warehouse, home.warehouse)
        wal = warehouse.with_name(warehouse.name + ".wal")
        if wal.exists():
            shutil.copy2(wal, home.warehouse.with_name(home.warehouse.name + ".wal"))
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
        for path in sorted(folder.glob("*.parquet")):
            table = _ident(path.stem)
            if table == "schema_migrations":
                continue
            frame = pl.read_parquet(path)
            cur.execute(f'DELETE FROM "{table}"')
            with cur.copy(f'COPY "{table}" ({", ".join(frame.columns)}) FROM STDIN') as copy:
                for row in frame.iter_rows():
                    copy.write_row(row)
        raw.commit()
    finally:
        raw.close()
