"""What every model's `train` returns: the fitted objects for the registry and the metadata shown to users."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainedModel:
    name: str
    #: objects stored as skops files (sklearn pipelines, numpy arrays, plain dicts of numbers)
    artifacts: dict[str, Any]
    #: training window, config, backtest metrics, baseline metrics, grade, seed (JSON-serialisable)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def grade(self) -> str:
        return self.metadata["grade"]["grade"]
