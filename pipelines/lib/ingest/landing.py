"""Which files under `landing/` ingestion reads, and every file it does not read with what to do about it.

A landing folder is `landing/<entity>/` for an entity of the import contract read from landing files. A
file there is data when the readers know its format (`readers.file_format`) and it is not empty. Mapping
files (`landing/column_mapping.yaml`, a sidecar `<file>.mapping.yaml` next to a data file) are settings,
not data. Everything else is *ignored*, never silently: `ignored_landing_files` names each such file with a
reason code and one sentence saying what to do, and ingestion writes them to the load log (status
`ignored`), the `crm run` summary and the portal's data-quality page.

Reason codes: `hidden` (name starts with '.'), `top_level` (directly in `landing/`), `unknown_entity` (a
folder no contract entity is named after), `store_entity` (a folder of an entity read from the
operational store), `subfolder` (below an entity's folder), `unknown_suffix`, `empty_file`.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.contract import Contract, Entity, load_contract
from pipelines.lib.home import CrmHome
from pipelines.lib.ingest.mapping import is_sidecar
from pipelines.lib.ingest.readers import FORMATS, file_format

#: The `entity` the load log files a file under when it lies directly in `landing/`.
TOP_LEVEL = "(landing)"


@dataclass(frozen=True)
class IgnoredFile:
    source_file: str  # path relative to landing/ (a folder ends with '/')
    entity: str       # the folder it lies in (an entity name, an unknown name, or TOP_LEVEL)
    reason: str       # see the module docstring
    message: str      # one sentence: the file, why it is not read, what to do


def _is_mapping(home: CrmHome, path: Path) -> bool:
    return path == home.column_mapping or is_sidecar(path)


def _suffixes() -> str:
    return ", ".join(sorted(FORMATS))


def _why_ignored(home: CrmHome, contract: Contract, path: Path) -> IgnoredFile | None:
    """Why a file under landing/ is not read, or None when it is data (or a mapping file)."""
    rel = path.relative_to(home.landing)
    shown = f"landing/{rel.as_posix()}"
    parts = rel.parts
    folder = parts[0] if len(parts) > 1 else TOP_LEVEL
    if _is_mapping(home, path):
        return None

    def ignored(reason: str, message: str) -> IgnoredFile:
        return IgnoredFile(rel.as_posix(), folder, reason, f"{shown}: {message}")

    if any(p.startswith(".") for p in parts):
        return ignored("hidden", "names starting with '.' are not read (system and temporary files); "
                                 "rename it if it holds data.")
    if len(parts) == 1:
        return ignored("top_level", "files directly in landing/ are not read; move it into the folder of "
                                    "its entity, landing/<entity>/.")
    if folder not in contract.entities:
        close = difflib.get_close_matches(folder, [e.name for e in contract.landing_entities], n=1)
        hint = f" (did you mean landing/{close[0]}/?)" if close else ""
        return ignored("unknown_entity", f"'{folder}' is not an entity of the import contract{hint}; move the "
                                         "file into the folder of its entity (docs/IMPORT_FORMAT.md lists them).")
    entity = contract.entity(folder)
    if not entity.in_landing:
        return ignored("store_entity", f"{folder} are read from the operational store, not from landing "
                                       f"files; load it with `crm import {folder} {shown}`.")
    if len(parts) > 2:
        return ignored("subfolder", f"files in subfolders of landing/{folder}/ are not read; move it up into "
                                    f"landing/{folder}/.")
    if not file_format(path):
        return ignored("unknown_suffix", f"'{path.suffix or path.name}' files are not read; save it in one of "
                                         f"the formats {_suffixes()}.")
    try:
        empty = path.stat().st_size == 0
    except OSError:  # vanished meanwhile: nothing to report, nothing to read
        return None
    if empty:
        return ignored("empty_file", "the file is empty (0 bytes); export it again, or remove it.")
    return None


def landing_files(home: CrmHome, entity: Entity, contract: Contract | None = None) -> list[Path]:
    """The data files of an entity's landing folder, sorted by name (what ingestion reads)."""
    folder = home.landing / entity.name
    if not folder.is_dir():
        return []
    contract = contract or load_contract()
    return sorted((p for p in folder.iterdir()
                   if p.is_file() and not _is_mapping(home, p) and _why_ignored(home, contract, p) is None),
                  key=lambda p: p.name)


def ignored_landing_files(home: CrmHome, contract: Contract) -> list[IgnoredFile]:
    """Every file under landing/ that ingestion does not read, sorted by path.

    A folder whose name starts with '.' is reported once as a whole (its files are not walked)."""
    out: list[IgnoredFile] = []
    if not home.landing.is_dir():
        return out
    for root, dirs, files in os.walk(home.landing):
        base = Path(root)
        for name in sorted(dirs):
            if name.startswith("."):
                rel = (base / name).relative_to(home.landing)
                folder = rel.parts[0] if len(rel.parts) > 1 else TOP_LEVEL
                out.append(IgnoredFile(rel.as_posix() + "/", folder, "hidden",
                                       f"landing/{rel.as_posix()}/: folders whose name starts with '.' are not "
                                       "read; rename it if it holds data."))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            found = _why_ignored(home, contract, base / name)
            if found is not None:
                out.append(found)
    return sorted(out, key=lambda f: f.source_file)
