"""The journal of an erasure and the person's identifiers, so an interrupted erasure can be finished.

An erasure touches the store, the warehouse, hundreds of landing files and the snapshots; a process
killed half-way would otherwise leave the person in some of them with no record of who it was (the store
row that named them is already gone). The journal `$CRM_HOME/erasure/<customer hash>.json` is written
before anything is removed and records each step as it is done, so `crm erase --customer ID` run again
finds it and carries on. It holds the record ids to remove and the person's identifiers only as hashes
(`PersonKeys`); when the last step is done it is rewritten to hold only the customer hash, the steps and
the counts, which is what answers "already erased" later.

Identifiers find rows that carry the person without an id identity resolution linked (a webshop row of
theirs that was quarantined, a malformed line): an email (case-insensitive), a phone (digits, leading
zeros and country prefix ignored: the last 9 digits), or a name together with the city (accents, case and
word order ignored). A name alone is not enough: two customers may share one.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipelines.lib.home import CrmHome

JOURNAL_FORMAT = 1
#: The steps of an erasure in the order they run; tombstones first, so no ingest brings the person back.
STEPS = ("tombstones", "store", "warehouse", "landing", "snapshots")

_PHONE_TEXT = re.compile(r"^[\d\s()+\-/.]+$")
_WORD = re.compile(r"\w+")
_EMAIL_IN_TEXT = re.compile(r"[^\s,;\"'<>()\[\]{}:]+@[^\s,;\"'<>()\[\]{}:]+")


def _fold(text: str) -> str:
    """Case, accents and the German sharp s folded away, so spellings of one name compare equal."""
    text = unicodedata.normalize("NFKD", text.replace("ß", "ss").replace("ẞ", "SS"))
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def email_key(value: str | None) -> str | None:
    v = (value or "").strip().casefold()
    return v if "@" in v and len(v) >= 5 else None


def phone_key(value: str | None) -> str | None:
    v = (value or "").strip()
    if not v or not _PHONE_TEXT.match(v):
        return None
    digits = re.sub(r"\D", "", v).lstrip("0")
    return digits[-9:] if len(digits) >= 7 else None


def name_key(name: str | None, city: str | None) -> str | None:
    words = sorted(_WORD.findall(_fold(name or "")))
    place = " ".join(_WORD.findall(_fold(city or "")))
    return f"{' '.join(words)}|{place}" if words and place else None


def _hash(kind: str, key: str) -> str:
    return hashlib.sha256(f"{kind}:{key}".encode()).hexdigest()


def record_name(record: Mapping[str, object]) -> str | None:
    """The person's name in a record: account_name, or first and last name."""
    if record.get("account_name"):
        return str(record["account_name"])
    parts = [str(record[c]) for c in ("first_name", "last_name") if record.get(c)]
    return " ".join(parts) or None


@dataclass
class PersonKeys:
    """Hashes of a person's emails, phones and name-with-city; matches records and free text against them."""

    hashes: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.hashes)

    def add_record(self, record: Mapping[str, object]) -> None:
        for kind, key in _record_keys(record):
            self.hashes.add(_hash(kind, key))

    def matches_record(self, record: Mapping[str, object]) -> bool:
        return any(_hash(kind, key) in self.hashes for kind, key in _record_keys(record))

    def matches_text(self, text: str | None) -> bool:
        """Free text such as a quarantined raw line: any field or email in it that is the person's."""
        if not text or not self.hashes:
            return False
        values = next(csv.reader(io.StringIO(text)), []) if "," in text else [text]
        values += _EMAIL_IN_TEXT.findall(text)
        return any(_hash(kind, key) in self.hashes for kind, key in _value_keys(values))


def _value_keys(values: Iterable[object]) -> Iterator[tuple[str, str]]:
    for value in values:
        if value is None:
            continue
        text = str(value)
        if (key := email_key(text)) is not None:
            yield "email", key
        elif (key := phone_key(text)) is not None:
            yield "phone", key


def _record_keys(record: Mapping[str, object]) -> Iterator[tuple[str, str]]:
    yield from _value_keys(v for c, v in record.items() if c in ("email", "phone"))
    key = name_key(record_name(record), str(record["city"]) if record.get("city") else None)
    if key is not None:
        yield "name_city", key


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def journal_folder(home: CrmHome) -> Path:
    return home.root / "erasure"


@dataclass
class Journal:
    """One erasure's progress on disk: written atomically (temp file, fsync, rename) after every change."""

    path: Path
    data: dict

    @classmethod
    def load(cls, home: CrmHome, customer_hash: str) -> Journal | None:
        path = journal_folder(home) / f"{customer_hash}.json"
        try:
            return cls(path, json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None

    @classmethod
    def start(cls, home: CrmHome, customer_hash: str, actor: str, ids: Mapping[str, set[str]],
              keys: PersonKeys) -> Journal:
        journal = cls(journal_folder(home) / f"{customer_hash}.json", {
            "format": JOURNAL_FORMAT, "customer_hash": customer_hash, "status": "in_progress",
            "actor": actor, "started_at": _now_text(), "finished_at": None,
            "ids": {e: sorted(v) for e, v in sorted(ids.items()) if v},
            "identifier_hashes": sorted(keys.hashes),
            "records": {e: len(v) for e, v in sorted(ids.items()) if v},
            "steps": {}, "results": {},
        })
        journal.save()
        return journal

    @property
    def done(self) -> bool:
        return self.data["status"] == "done"

    @property
    def ids(self) -> dict[str, set[str]]:
        return {e: set(v) for e, v in self.data.get("ids", {}).items()}

    @property
    def keys(self) -> PersonKeys:
        return PersonKeys(set(self.data.get("identifier_hashes", [])))

    def step_done(self, step: str) -> bool:
        return step in self.data["steps"]

    def mark(self, step: str, **results: object) -> None:
        self.data["steps"][step] = _now_text()
        self.data["results"].update(results)
        self.save()

    def finish(self) -> None:
        """Forget the ids and identifier hashes: only the customer hash, steps and counts stay."""
        self.data.pop("ids", None)
        self.data.pop("identifier_hashes", None)
        self.data["status"] = "done"
        self.data["finished_at"] = _now_text()
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


class ErasureBusyError(RuntimeError):
    """Another erasure holds the home's erasure lock."""


@contextlib.contextmanager
def erasure_lock(home: CrmHome) -> Iterator[None]:
    """One erasure at a time per home; the lock goes with the process, so a killed erasure leaves none."""
    folder = journal_folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ErasureBusyError(
                f"Another erasure is running in {home.root}; wait for it to finish, then run `crm erase` "
                "again.") from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
