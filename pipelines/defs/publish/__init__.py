"""Publish concern: the read-only snapshot readers use."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.publish.assets import published_snapshot

defs = dg.Definitions(assets=[published_snapshot])
