"""The ids a reference in an imported file may point to, as `crm run` will know them: the operational
store, the warehouse's raw layer (read-only; rows quarantined there are parents that hold their children
back) and the rows of earlier entities of the same import."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from pipelines.contract import Contract, Entity
from pipelines.lib.home import CrmHome
from pipelines.lib.ingest.checks import PARENT_SCHEMA, KnownIds
from pipelines.lib.store import OperationalStore
from pipelines.lib.warehouse import quote_ident, raw_table


class References:
    """Ids a reference may point to: the store, the warehouse's raw layer and this import's own rows."""

    def __init__(self, home: CrmHome, contract: Contract, store: OperationalStore | None):
        self.home = home
        self.contract = contract
        self.store = store
        self.pending: dict[str, set[str]] = {}
        self.unchecked: dict[str, list[str]] = {}
        self._known: dict[str, pl.Series | None] = {}

    def remember(self, entity_name: str, ids) -> None:
        self.pending.setdefault(entity_name, set()).update(str(i) for i in ids if i is not None)

    def from_landing(self, entity: Entity) -> dict[str, set[str]]:
        """For a store entity's references to entities that also arrive in landing files (accounts from a
        web shop): the ids `crm run` has loaded from those files, which the store alone does not know."""
        out: dict[str, set[str]] = {}
        for column in entity.columns:
            target = self.contract.entity(column.reference[0]) if column.reference else None
            if target is None or not (target.in_store and target.in_landing) or target.name in out:
                continue
            if target.name not in self._known:
                self._known[target.name] = self._load(target.name)
            known = self._known[target.name]
            loaded = known[0] if known is not None else pl.Series("id", [], pl.String)
            out[target.name] = set(loaded.to_list()) | self.pending.get(target.name, set())
        return out

    def ids(self, target_name: str, entity: Entity, text: pl.DataFrame) -> KnownIds:
        if target_name not in self._known:
            self._known[target_name] = self._load(target_name)
        known = self._known[target_name]
        referenced = pl.concat([text.get_column(c.name) for c in entity.columns
                                if c.reference and c.reference[0] == target_name]).drop_nulls().unique()
        pending_ids = self.pending.get(target_name, set())
        if known is None and not pending_ids and target_name != entity.name:
            names = self.unchecked.setdefault(entity.name, [])
            if target_name not in names:
                names.append(target_name)
            return KnownIds(referenced, pl.DataFrame(schema=PARENT_SCHEMA))
        # of this import's own ids, only those this piece refers to (the set may be large)
        pending = pl.Series("id", [v for v in referenced.to_list() if v in pending_ids], dtype=pl.String)
        loaded, quarantined = known if known is not None else (None, pl.DataFrame(schema=PARENT_SCHEMA))
        return KnownIds(pl.concat([s for s in (loaded, pending) if s is not None]).cast(pl.String), quarantined)

    def _load(self, name: str) -> tuple[pl.Series, pl.DataFrame] | None:
        """(ids in the store and in raw, ids only in raw's quarantine with file and line), as `crm run`
        knows them; None if neither has ever held the entity."""
        target = self.contract.entity(name)
        parts: list[pl.Series] = []
        quarantined = pl.DataFrame(schema=PARENT_SCHEMA)
        in_store = self._store_ids(target) if target.in_store else None
        if in_store is not None:
            parts.append(in_store)
        if self.home.warehouse.exists():
            try:
                with duckdb.connect(str(self.home.warehouse), read_only=True) as con:
                    frame = con.sql(f"SELECT CAST({quote_ident(target.primary_key)} AS VARCHAR) AS id "  # noqa: S608
                                    f"FROM {raw_table(target)}").pl()
                    parts.append(frame.get_column("id"))
                    quarantined = con.sql(
                        f"SELECT record_id AS id, any_value(source_file) AS source_file, "  # noqa: S608
                        f"any_value(CAST(source_line AS BIGINT)) AS source_line, any_value(reason) AS reason "
                        f"FROM {raw_table('_quarantine')} WHERE entity = ? AND record_id IS NOT NULL "
                        "GROUP BY record_id", params=[name]).pl().cast(PARENT_SCHEMA)
            except duckdb.Error:
                pass  # no raw layer yet, or a run holds the warehouse: the store and this import decide
        never_held = not any(len(p) for p in parts) and not quarantined.height
        if never_held and in_store is None:
            return None
        loaded = pl.concat(parts) if parts else pl.Series("id", [], pl.String)
        quarantined = quarantined.filter(~pl.col("id").is_in(loaded.implode()))
        return loaded, quarantined

    def _store_ids(self, target: Entity) -> pl.Series | None:
        """The ids of a store entity; None when there is no store to ask. An import of landing entities
        only opens no store of its own, yet `crm run` will find their parents there (accounts saved by an
        earlier import): the home's store is asked then, if it has been created, and never created here."""
        from sqlalchemy import text as sql_text
        from sqlalchemy.exc import SQLAlchemyError

        store, own = self.store, False
        if store is None:
            url = self.home.operational_db_url
            if url.startswith("sqlite:///") and not Path(url.split(":///", 1)[1]).exists():
                return None
            store, own = OperationalStore(url), True
        try:
            with store.engine.connect() as conn:
                rows = conn.execute(sql_text(f"SELECT {target.primary_key} FROM {target.name}"))  # noqa: S608
                return pl.Series("id", [str(r[0]) for r in rows], dtype=pl.String)
        except SQLAlchemyError:
            if not own:
                raise
            return None  # a store without tables yet: it holds no parents
        finally:
            if own:
                store.dispose()
