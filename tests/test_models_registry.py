"""Model registry: versions with metadata, no pickle, sha256 and type checks before loading."""

from __future__ import annotations

import functools
import json
import os

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from models.registry import ModelRegistry, RegistryError
from pipelines.lib.home import CrmHome


@pytest.fixture
def registry(tmp_path):
    return ModelRegistry(CrmHome(tmp_path / "home").ensure())


def _fitted():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + 0.3 * rng.normal(size=200) > 0).astype(int)
    return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(x, y), x


def test_save_and_load_round_trip_with_metadata(registry):
    pipeline, x = _fitted()
    saved = registry.save("churn", {"pipeline": pipeline, "reference": np.array([1.0, 2.0])},
                          {"seed": 7, "metrics": {"roc_auc": 0.9}})
    assert registry.current_version("churn") == saved.version
    assert (saved.path / "pipeline.skops").is_file()
    assert not list(saved.path.glob("*.pkl")) and not list(saved.path.glob("*.joblib"))
    meta = json.loads((saved.path / "metadata.json").read_text())
    assert meta["seed"] == 7 and meta["model"] == "churn"
    assert set(meta["artifacts"]) == {"pipeline.skops", "reference.skops"}
    assert len(meta["artifacts"]["pipeline.skops"]) == 64  # sha256 hex
    assert {"scikit-learn", "numpy", "python"} <= set(meta["package_versions"])
    objects, loaded = registry.load("churn")
    assert loaded.version == saved.version
    np.testing.assert_allclose(objects["pipeline"].predict_proba(x), pipeline.predict_proba(x))
    np.testing.assert_array_equal(objects["reference"], [1.0, 2.0])


def test_a_second_version_becomes_current_and_both_are_listed(registry):
    pipeline, _ = _fitted()
    first = registry.save("churn", {"pipeline": pipeline}, {"seed": 1})
    second = registry.save("churn", {"pipeline": pipeline}, {"seed": 2})
    assert registry.versions("churn") == sorted([first.version, second.version])
    assert registry.current_version("churn") == second.version
    assert registry.metadata("churn", first.version)["seed"] == 1


def test_a_changed_artifact_is_refused(registry):
    pipeline, _ = _fitted()
    saved = registry.save("churn", {"pipeline": pipeline}, {"seed": 1})
    with (saved.path / "pipeline.skops").open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(RegistryError, match="sha256"):
        registry.load("churn")


def test_a_version_outside_the_home_is_refused(registry, tmp_path):
    pipeline, _ = _fitted()
    saved = registry.save("churn", {"pipeline": pipeline}, {"seed": 1})
    outside = tmp_path / "elsewhere"
    saved.path.rename(outside)
    os.symlink(outside, saved.path)  # the folder name is right but it points outside the home
    with pytest.raises(RegistryError, match="outside"):
        registry.load("churn")
    with pytest.raises(RegistryError, match="version name"):
        registry.load("churn", "../../etc")


def test_types_outside_the_allowlist_are_refused(registry):
    registry.save("churn", {"pipeline": {"call": functools.partial(print, "hello")}}, {"seed": 1})
    with pytest.raises(RegistryError, match="functools.partial"):
        registry.load("churn")


def test_no_version_gives_a_clear_message(registry):
    with pytest.raises(RegistryError, match="crm train"):
        registry.load("churn")
