"""Where `crm import` puts a landing entity's file: `landing/<entity>/` with its mapping as a sidecar, or
for day-partitioned entities (interactions) one file per day in the contract's columns."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import polars as pl
import yaml

from pipelines.contract import Entity
from pipelines.lib.home import CrmHome
from pipelines.lib.importer.report import EntityReport
from pipelines.lib.ingest.mapping import SIDECAR_SUFFIXES


def place_file(home: CrmHome, entity: Entity, path: Path, placed: Path | None, mapping_path: Path | None,
               report: EntityReport) -> Path | None:
    """Put the file in `landing/<entity>/` (hard link to an earlier copy where possible) with its sidecar
    mapping. Day-partitioned entities were written by `DayFiles` instead."""
    if entity.partition_by_day:
        return placed
    folder = home.landing / entity.name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    # the mapping first: a run that sees the new file must read it with its mapping
    sidecar = folder / (path.name + SIDECAR_SUFFIXES[0])
    for suffix in SIDECAR_SUFFIXES[1:]:
        (folder / (path.name + suffix)).unlink(missing_ok=True)
    if mapping_path is not None:
        _write_atomically(sidecar, (f"# The mapping of {path.name}, written by `crm import` from "
                                    f"{mapping_path.name}.\n" + _section_text(mapping_path, entity.name)).encode())
    else:
        sidecar.unlink(missing_ok=True)  # an earlier import's mapping would no longer fit this file
    if not (target.exists() and target.resolve() == path.resolve()):
        tmp = target.with_name(f".{target.name}.importing")
        tmp.unlink(missing_ok=True)
        linked = False
        if placed is not None:
            try:
                os.link(placed, tmp)
                linked = True
            except OSError:  # another file system, or links not supported: a copy then
                linked = False
        if not linked:
            shutil.copyfile(path, tmp)
        os.replace(tmp, target)
    report.outputs.append(f"{target.relative_to(home.root)} (loaded by the next `crm run`)")
    if mapping_path is not None:
        report.outputs.append(f"{sidecar.relative_to(home.root)} (its mapping)")
    return target


def _write_atomically(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.importing")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def _section_text(mapping_path: Path, entity_name: str) -> str:
    """The entity's section of a mapping file as YAML text, `{entity: section}`, its scalars written as
    they were (a value such as `yes` stays the text it was, whatever a YAML loader makes of it)."""
    root = yaml.compose(mapping_path.read_text(encoding="utf-8"))
    section = next(((k, v) for k, v in root.value if k.value == entity_name), None)
    if section is None:
        return f"{entity_name}: {{}}\n"
    return yaml.serialize(yaml.MappingNode("tag:yaml.org,2002:map", [section]))


class DayFiles:
    """Rows of a day-partitioned entity (interactions) appended to one file per day, in contract columns."""

    def __init__(self, home: CrmHome, entity: Entity, path: Path):
        self.entity = entity
        self.folder = home.landing / entity.name
        self.stem = path.stem
        self.paths: dict[str, Path] = {}

    def write(self, text: pl.DataFrame) -> None:
        column = self.entity.partition_by_day
        day = pl.col(column).str.strip_chars().str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d", strict=False)
        frame = text.with_columns(day.alias("__day")).filter(pl.col("__day").is_not_null())
        self.folder.mkdir(parents=True, exist_ok=True)
        for (value,), part in frame.partition_by("__day", as_dict=True, maintain_order=True).items():
            name = f"{value.isoformat()}_{self.stem}.csv"
            target = self.folder / name
            fresh = name not in self.paths
            self.paths[name] = target
            with open(target, "wb" if fresh else "ab") as fh:
                part.select(self.entity.column_names).write_csv(fh, include_header=fresh)

    def written(self) -> list[str]:
        return [f"{len(self.paths)} day file(s) landing/{self.entity.name}/<day>_{self.stem}.csv "
                "(loaded by the next `crm run`)"] if self.paths else []
