"""The demo world's own vocabulary, written as the generated home's crm.yaml.

The generator's companies report in EUR, sell through its four open stages and know only the values it
draws from, so every dimension is a closed list: a value outside the demo's world is quarantined as
`not_allowed_value`, as a real installation that lists its values would see it.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.generate.catalog import PRICE_LISTS
from pipelines.generate.common import REGIONS
from pipelines.generate.deals import LOST_EARLY, LOST_LATE
from pipelines.generate.marketing import CAMPAIGN_CHANNELS, LEAD_SOURCES
from pipelines.generate.names import PRODUCTS
from pipelines.generate.orders import CHANNELS as SALES_CHANNELS
from pipelines.generate.service import CATEGORIES
from pipelines.lib.settings import DEFAULT_STAGES, Settings, render_settings

HEADER = """\
Settings of the generated demo home (docs/settings.md): the demo's currency, stages and the values it
draws from. Edit it like any installation's crm.yaml; `crm generate` writes it again."""


def demo_settings() -> Settings:
    """The default stages (they are the demo's: tests/test_settings.py checks it) and closed dimensions."""
    lost_reasons = list(dict.fromkeys([*LOST_LATE, *LOST_EARLY]))
    return Settings(
        currency={"reporting": "EUR", "rates": {}},
        stages=[s.model_copy() for s in DEFAULT_STAGES],
        dimensions={
            "region": list(REGIONS),
            "product_line": list(PRODUCTS),
            "lead_source": list(LEAD_SOURCES),
            "campaign_channel": list(CAMPAIGN_CHANNELS),
            "lost_reason": lost_reasons,
            "ticket_category": list(CATEGORIES),
            "price_list": list(PRICE_LISTS),
            "sales_channel": list(SALES_CHANNELS),
        },
        as_of="data",
    )


def write_demo_settings(path: Path) -> None:
    path.write_text(render_settings(demo_settings(), header=HEADER), encoding="utf-8")
