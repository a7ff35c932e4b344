"""`crm generate`: simulate the CRM world, write landing files, load the operational store, write truth.

The same arguments give byte-identical files: every component draws from its own seeded random
stream, the history ends on a fixed as-of date and nothing reads the wall clock.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from pipelines.contract import load_contract
from pipelines.generate import truth
from pipelines.generate.catalog import build_catalog
from pipelines.generate.churn import simulate_life
from pipelines.generate.common import AS_OF, Clock, rng_for
from pipelines.generate.customers import build_customers, company_names
from pipelines.generate.deals import build_deals
from pipelines.generate.faults import FILE, inject
from pipelines.generate.finance import build_finance
from pipelines.generate.identity import build_webshop
from pipelines.generate.interactions import build_interactions
from pipelines.generate.marketing import (
    attach_lead_refs,
    build_campaigns,
    build_leads,
    campaign_members,
    leads_frame,
)
from pipelines.generate.names import FIRST_NAMES, LAST_NAMES
from pipelines.generate.orders import build_orders
from pipelines.generate.org import build_org
from pipelines.generate.service import build_contracts, build_tasks, build_tickets
from pipelines.generate.vocabulary import write_demo_settings
from pipelines.generate.writers import export_frame, write_csv, write_landing
from pipelines.lib.home import CrmHome
from pipelines.lib.store import OperationalStore, store_location

#: Landing layout: entity -> (format, file name expression over the typed frame).
LANDING: dict[str, tuple[str, Callable[[], pl.Expr]]] = {
    "products": ("csv", lambda: pl.lit("products/products.csv")),
    "product_prices": ("csv", lambda: pl.lit("product_prices/product_prices.csv")),
    "campaigns": ("csv", lambda: pl.lit("campaigns/campaigns.csv")),
    "campaign_members": ("parquet", lambda: pl.lit("campaign_members/campaign_members.parquet")),
    "accounts": ("csv", lambda: pl.lit("accounts/webshop_accounts.csv")),
    "orders": ("parquet", lambda: pl.format("orders/orders_{}.parquet", pl.col("order_date").dt.year())),
    "order_lines": ("parquet", lambda: pl.format("order_lines/order_lines_{}.parquet", pl.col("__year"))),
    "invoices": ("csv", lambda: pl.lit("invoices/invoices.csv")),
    "payments": ("jsonl", lambda: pl.lit("payments/payments.jsonl")),
    "tickets": ("jsonl", lambda: pl.lit("tickets/tickets.jsonl")),
    "contracts": ("csv", lambda: pl.lit("contracts/contracts.csv")),
    "interactions": ("jsonl", lambda: pl.format("interactions/{}.jsonl",
                                                pl.col("occurred_at").dt.strftime("%Y-%m-%d"))),
}
STORE_ENTITIES = ["teams", "users", "accounts", "contacts", "leads", "opportunities",
                  "opportunity_stage_history", "tasks"]


@dataclass
class GenerationReport:
    home: Path
    seconds: float
    store_rows: dict[str, int]
    landing_rows: dict[str, int]
    files: dict[str, int]
    faults: int
    timings: dict[str, float] = field(default_factory=dict)
    store: str = ""  # where the store rows went: the SQLite file, or the URL with its password masked


def simulate(customers: int, seed: int, years: float) -> dict:
    """Build every entity in memory (typed polars frames) plus what ground truth needs."""
    clock = Clock.for_years(years)
    org = build_org(rng_for(seed, "org"), customers, clock)
    catalog = build_catalog(rng_for(seed, "catalog"), clock)
    campaigns = build_campaigns(rng_for(seed, "campaigns"), clock)
    companies = company_names()
    target = round(0.6 * (customers - round(0.45 * customers)))
    leads = build_leads(rng_for(seed, "leads"), clock, campaigns, org, target, len(FIRST_NAMES), len(LAST_NAMES),
                        len(companies))
    cust = build_customers(rng_for(seed, "customers"), clock, customers, leads, org)
    lead_rows = leads_frame(rng_for(seed, "lead_details"), clock, leads, org, cust.ids, FIRST_NAMES, LAST_NAMES, companies)
    lead_rows = attach_lead_refs(lead_rows, leads, campaigns, cust.ids)
    lead_ids = lead_rows["lead_id"]
    life = simulate_life(rng_for(seed, "churn"), clock, cust.created, cust.is_b2b)
    deals = build_deals(rng_for(seed, "deals"), clock, cust, life, leads, campaigns, catalog, org, lead_ids)
    webshop = build_webshop(rng_for(seed, "identity"), clock, cust)
    orders = build_orders(rng_for(seed, "orders"), clock, cust, life, deals, webshop, catalog, org)
    finance = build_finance(rng_for(seed, "finance"), clock, cust, life, orders)
    tickets = build_tickets(rng_for(seed, "tickets"), clock, cust, life, org)
    contracts = build_contracts(rng_for(seed, "contracts"), clock, cust, life, catalog)
    tasks = build_tasks(rng_for(seed, "tasks"), clock, cust, life, deals, org)
    interactions = build_interactions(rng_for(seed, "interactions"), clock, cust, life, leads, org, lead_ids)
    members = campaign_members(rng_for(seed, "members"), clock, campaigns, leads, lead_ids,
                               cust.contacts["contact_id"], cust.contact_created)
    order_year = orders.orders.select("order_id", pl.col("order_date").dt.year().alias("__year"))
    store = {
        "teams": org.teams, "users": org.users, "accounts": cust.accounts, "contacts": cust.contacts,
        "leads": lead_rows, "opportunities": deals.opportunities,
        "opportunity_stage_history": deals.stage_history, "tasks": tasks,
    }
    landing = {
        "products": catalog.products, "product_prices": catalog.prices, "campaigns": campaigns.frame,
        "campaign_members": members, "accounts": webshop.accounts, "orders": orders.orders,
        "order_lines": orders.lines.join(order_year, on="order_id", how="left", maintain_order="left"),
        "invoices": finance.invoices, "payments": finance.payments, "tickets": tickets, "contracts": contracts,
        "interactions": interactions,
    }
    return {"clock": clock, "org": org, "catalog": catalog, "campaigns": campaigns, "customers": cust,
            "life": life, "webshop": webshop, "store": store, "landing": landing}


def referenced_ids(frames: list[tuple[str, pl.DataFrame]]) -> dict[str, set[str]]:
    """Ids each entity has that some other row points to (those rows are never corrupted)."""
    contract = load_contract()
    refs: dict[str, set[str]] = {name: set() for name in contract.entities}
    for name, frame in frames:
        for column in contract.entity(name).columns:
            if column.reference and column.name in frame.columns:
                values = frame.get_column(column.name).drop_nulls().unique()
                refs[column.reference[0]].update(values.to_list())
    return refs


def _clear(home: CrmHome) -> None:
    """Remove what an earlier generation wrote, so files of a bigger run never linger."""
    for path in (home.landing, home.ground_truth):
        if path.exists():
            shutil.rmtree(path)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(home.operational_db) + suffix).unlink(missing_ok=True)


def load_store(home: CrmHome, frames: dict[str, pl.DataFrame], as_of_ts: str, identity: str) -> dict[str, int]:
    contract = load_contract()
    store = OperationalStore(home.operational_db_url)
    try:
        store.migrate()
        counts = {}
        for name in STORE_ENTITIES:
            counts[name] = store.bulk_insert(name, frames[name].select(contract.entity(name).column_names))
        with store.engine.begin() as conn:  # no wall-clock time in the file: byte-identical reruns
            conn.execute(text("UPDATE schema_migrations SET applied_at = :t"), {"t": as_of_ts})
            # the store identity from the parameters, not random: same parameters, same content, same file
            store.set_identity(conn, identity)
        if store.dialect == "sqlite":
            with store.engine.connect() as conn:
                conn.exec_driver_sql("VACUUM")
    finally:
        store.dispose()
    return counts


def generate_home(home: CrmHome, customers: int, seed: int, dirty: float = 0.0, years: float = 3.0,
                  console: Console | None = None) -> GenerationReport:
    """Write a complete demo home under `home.root`; returns rows, files and seconds."""
    console = console or Console()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    contract = load_contract()

    def step(label: str, fn: Callable[[], object]):
        t0 = time.perf_counter()
        with console.status(f"{label}..."):
            result = fn()
        timings[label] = round(time.perf_counter() - t0, 2)
        console.print(f"  [green]done[/green] {label} ({timings[label]:.1f}s)")
        return result

    home.ensure()
    _clear(home)
    write_demo_settings(home.settings_file)
    home.ground_truth.mkdir(parents=True, exist_ok=True)
    world = step(f"simulating {customers:,} customers over {years:g} years", lambda: simulate(customers, seed, years))
    store_frames, landing_frames = world["store"], world["landing"]
    refs = referenced_ids(list(store_frames.items()) + list(landing_frames.items()))

    def write_all() -> tuple[dict, dict, list]:
        rng = rng_for(seed, "faults")
        rows, files, manifests = {}, {}, []
        for name, (fmt, file_expr) in LANDING.items():
            entity = contract.entity(name)
            frame = landing_frames[name].with_columns(file_expr().alias(FILE))
            # optional contract columns the simulation has no values for (order_lines.line_amount) stay out
            frame = export_frame(frame.select([c for c in entity.column_names if c in frame.columns] + [FILE]), fmt)
            frame, manifest = inject(rng, entity, frame, fmt, dirty, refs[name])
            files.update(write_landing(home.landing, frame, fmt))
            rows[name] = frame.height
            manifests.append(manifest)
        return rows, files, manifests

    landing_rows, files, manifests = step("writing landing files", write_all)
    as_of_ts = f"{AS_OF.isoformat()} 23:59:59"
    identity = str(uuid.uuid5(uuid.NAMESPACE_URL, f"crm-demo?seed={seed}&customers={customers}&years={years}&dirty={dirty}"))
    store_rows = step("loading the operational store", lambda: load_store(home, store_frames, as_of_ts, identity))

    def write_truth() -> int:
        gt = home.ground_truth
        manifest = pl.concat(manifests).sort(["entity", "file", "line"])
        manifest.write_csv(gt / "dirty_rows.csv")
        cust, life, webshop = world["customers"], world["life"], world["webshop"]
        truth.customers_truth(world["clock"], cust, life, webshop).write_parquet(gt / "customers.parquet")
        truth.hazard_table(cust, life).write_parquet(gt / "churn_hazard.parquet")
        write_csv(gt / "identity.csv", truth.identity_table(cust, webshop))
        counts = {f"store.{k}": v for k, v in store_rows.items()} | {f"landing.{k}": v for k, v in landing_rows.items()}
        truth.write_json(gt / "signals.json", truth.signals(
            seed, customers, years, dirty, world["clock"], world["org"], world["catalog"], world["campaigns"],
            webshop, counts, dict(sorted(files.items())) | {"dirty_rows": manifest.height}))
        return manifest.height

    faults = step("writing ground truth", write_truth)
    seconds = round(time.perf_counter() - started, 1)
    report = GenerationReport(home=home.root, seconds=seconds, store_rows=store_rows, landing_rows=landing_rows,
                              store=store_location(home.operational_db_url),
                              files=files, faults=faults, timings=timings)
    _print_report(console, report)
    return report


def _print_report(console: Console, report: GenerationReport) -> None:
    table = Table(title=f"Demo data written to {report.home}", show_lines=False)
    table.add_column("entity")
    table.add_column("where")
    table.add_column("rows", justify="right")
    table.add_column("files", justify="right")
    for name, rows in report.store_rows.items():
        table.add_row(name, "operational store", f"{rows:,}", "")
    for name, rows in report.landing_rows.items():
        n_files = sum(1 for f in report.files if f.split("/", 1)[0] == name)
        table.add_row(name, f"landing/{name}/", f"{rows:,}", f"{n_files:,}")
    table.add_row("faults", "ground_truth/dirty_rows.csv", f"{report.faults:,}", "1")
    console.print(table)
    total = sum(report.store_rows.values()) + sum(report.landing_rows.values())
    console.print(f"{total:,} rows in {report.seconds:.1f}s. Landing files: {report.home / 'landing'}; "
                  f"operational store: {report.store}; "
                  f"ground truth: {report.home / 'ground_truth'}")

