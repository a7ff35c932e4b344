"""Versioned model artifacts: one folder per trained version below `CrmHome.model_artifacts`.

Layout: `model_artifacts/<model>/<version>/` holds the fitted objects as skops files (no pickle: skops
refuses any type that is not on an allowlist, so a tampered file cannot run code) and `metadata.json`
with the training window, data version, metrics, grade, package versions, seed and the sha256 of every
artifact. `model_artifacts/<model>/CURRENT` names the version that scoring uses and is switched with
`os.replace` after the folder is complete, so a reader never sees a half-written version.

Loading refuses folders outside the home, files whose sha256 differs from the metadata and types outside
`TRUSTED_MODULES`.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import skops.io as sio

from pipelines.lib.home import CrmHome

#: Top-level modules whose types a stored artifact may contain.
TRUSTED_MODULES = ("sklearn", "numpy", "scipy")
PACKAGES = ("scikit-learn", "numpy", "scipy", "polars", "duckdb", "skops", "pandas")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_VERSION = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{8}$")


class RegistryError(RuntimeError):
    """An artifact that cannot be trusted or found; the message says which file and what to do."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    path: Path
    metadata: dict[str, Any]


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelRegistry:
    """Save and load versions of the models of one installation."""

    def __init__(self, home: CrmHome) -> None:
        self.root = home.model_artifacts.resolve()

    def _model_dir(self, name: str) -> Path:
        if not _NAME.match(name):
            raise RegistryError(f"model name {name!r} must be lowercase letters, digits and underscores")
        return self.root / name

    def save(self, name: str, artifacts: dict[str, Any], metadata: dict[str, Any],
             make_current: bool = True) -> ModelVersion:
        """Write a new version: each artifact as `<key>.skops`, then metadata.json, then switch CURRENT."""
        model_dir = self._model_dir(name)
        model_dir.mkdir(parents=True, exist_ok=True)
        trained_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        version = f"{trained_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        staging = model_dir / f".{version}.tmp"
        staging.mkdir()
        try:
            files = {}
            for key, obj in artifacts.items():
                if not _NAME.match(key):
                    raise RegistryError(f"artifact key {key!r} must be lowercase letters, digits and underscores")
                path = staging / f"{key}.skops"
                sio.dump(obj, path)
                files[path.name] = _sha256(path)
            full = {
                "model": name,
                "version": version,
                "trained_at": trained_at.isoformat(),
                "package_versions": package_versions(),
                **metadata,
                "artifacts": files,
            }
            (staging / "metadata.json").write_text(json.dumps(full, indent=2, default=str), encoding="utf-8")
            final = model_dir / version
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if make_current:
            pointer = model_dir / "CURRENT.tmp"
            pointer.write_text(version, encoding="utf-8")
            os.replace(pointer, model_dir / "CURRENT")
        return ModelVersion(name, version, final, full)

    def versions(self, name: str) -> list[str]:
        model_dir = self._model_dir(name)
        if not model_dir.is_dir():
            return []
        return sorted(p.name for p in model_dir.iterdir() if p.is_dir() and _VERSION.match(p.name))

    def current_version(self, name: str) -> str | None:
        pointer = self._model_dir(name) / "CURRENT"
        if not pointer.is_file():
            return None
        version = pointer.read_text(encoding="utf-8").strip()
        return version if _VERSION.match(version) else None

    def metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        folder = self._version_dir(name, version)
        return json.loads((folder / "metadata.json").read_text(encoding="utf-8"))

    def _version_dir(self, name: str, version: str | None) -> Path:
        version = version or self.current_version(name)
        if version is None:
            raise RegistryError(f"No trained version of model '{name}' in {self.root}; run `crm train` first.")
        if not _VERSION.match(version):
            raise RegistryError(f"'{version}' is not a model version name (expected YYYYMMDDTHHMMSS-xxxxxxxx).")
        folder = (self._model_dir(name) / version).resolve()
        if not folder.is_relative_to(self.root) or not folder.is_dir():
            raise RegistryError(f"Model version folder {folder} is missing or outside {self.root}; "
                                f"run `crm train` to create a new version.")
        return folder

    def load(self, name: str, version: str | None = None) -> tuple[dict[str, Any], ModelVersion]:
        """Load every artifact of a version after checking its sha256 and the types it contains."""
        folder = self._version_dir(name, version)
        meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
        objects: dict[str, Any] = {}
        for filename, expected in meta["artifacts"].items():
            path = (folder / filename).resolve()
            if path.parent != folder:
                raise RegistryError(f"{folder / 'metadata.json'} names artifact {filename!r} outside its folder.")
            actual = _sha256(path)
            if actual != expected:
                raise RegistryError(f"Artifact {path} has sha256 {actual[:12]}..., metadata.json recorded "
                                    f"{expected[:12]}...; the file was changed - retrain with `crm train`.")
            untrusted = sio.get_untrusted_types(file=path)
            foreign = [t for t in untrusted if t.split(".")[0] not in TRUSTED_MODULES]
            if foreign:
                raise RegistryError(f"Artifact {path} contains types outside {TRUSTED_MODULES}: "
                                    f"{', '.join(foreign)}; refusing to load it.")
            objects[filename.removesuffix(".skops")] = sio.load(path, trusted=untrusted)
        return objects, ModelVersion(name, meta["version"], folder, meta)
