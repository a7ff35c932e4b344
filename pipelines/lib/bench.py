"""`crm bench`: generate data at a scale, run the pipeline and report figures as JSON.

Steps are a registry of named functions run in order on one bench context; each returns the figures of
its section. Later issues add theirs without touching the others::

    from pipelines.lib.bench import BenchContext, bench_step

    @bench_step("dbt_build", after="ingest")
    def _dbt(ctx: BenchContext) -> dict:
        ...
        return {"seconds": 12.3}

and list their module in `BENCH_PLUGINS` so it is imported (and registered) before the run.

Ingest figures:
- `ingest`: full ingest of store + landing files into a fresh warehouse (plain functions, no Dagster).
- `floor`: the same landing files loaded by bare DuckDB `read_csv`/`read_json`/`read_parquet` into
  tables, plus the store tables fetched by the Python driver into DuckDB; `ratio` = ingest / floor.
- `incremental_day`: one extra day of interaction logs ingested as its day partition (what the landing
  sensor requests for a new day file); then the interaction history is doubled (every day copied one
  history-span earlier with new ids, loaded by a catch-up run) and the same extra day's content is
  ingested again as the following day; `doubled_to_single_ratio` compares the two (cost should not grow
  with history).
"""

from __future__ import annotations

import importlib
import json
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
from rich.console import Console

from pipelines.lib.home import CrmHome

#: Modules that register extra bench steps (imported before a run).
BENCH_PLUGINS: list[str] = ["pipelines.lib.bench_run", "models.bench", "app.bench"]


@dataclass
class BenchContext:
    home: CrmHome
    customers: int
    seed: int
    console: Console
    figures: dict = field(default_factory=dict)
    scratch: Path | None = None  # a folder for throw-away copies (floor warehouse)


@dataclass
class _Step:
    name: str
    fn: Callable[[BenchContext], dict]


STEPS: list[_Step] = []


def bench_step(name: str, after: str | None = None) -> Callable:
    """Register a bench step; `after` places it right after another step (default: at the end)."""
    def register(fn: Callable[[BenchContext], dict]) -> Callable[[BenchContext], dict]:
        step = _Step(name, fn)
        names = [s.name for s in STEPS]
        if name in names:
            STEPS[names.index(name)] = step
        elif after in names:
            STEPS.insert(names.index(after) + 1, step)
        else:
            STEPS.append(step)
        return fn
    return register


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn()
    return round(time.perf_counter() - started, 3), out


def peak_memory_mb() -> float:
    """Peak resident memory of this process and its finished children (Linux: ru_maxrss in KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


# --- generator, ingest, floor, incremental day --------------------------------------------------------
@bench_step("generate")
def _generate(ctx: BenchContext) -> dict:
    from pipelines.generate.run import generate_home

    seconds, report = _timed(lambda: generate_home(ctx.home, customers=ctx.customers, seed=ctx.seed,
                                                   console=Console(quiet=True)))
    files = [p for p in ctx.home.landing.rglob("*") if p.is_file()]
    return {"seconds": seconds, "landing_files": len(files),
            "landing_mb": round(sum(p.stat().st_size for p in files) / 2**20, 1),
            "store_mb": round(ctx.home.operational_db.stat().st_size / 2**20, 1)}


@bench_step("ingest")
def _ingest(ctx: BenchContext) -> dict:
    from pipelines.lib.ingest import ingest_all

    shutil.rmtree(ctx.home.warehouse_dir, ignore_errors=True)
    seconds, results = _timed(lambda: ingest_all(ctx.home))
    read = sum(r.total("rows_read") for r in results)
    return {"seconds": seconds, "rows_read": read, "rows_loaded": sum(r.total("rows_loaded") for r in results),
            "rows_quarantined": sum(r.total("rows_quarantined") for r in results),
            "rows_per_second": round(read / seconds) if seconds else None}


_READERS = {".csv": "read_csv({files}, all_varchar=true, union_by_name=true)",
            ".jsonl": "read_json({files}, format='newline_delimited')",
            ".parquet": "read_parquet({files}, union_by_name=true)"}


@bench_step("floor")
def _floor(ctx: BenchContext) -> dict:
    """Bare DuckDB loads of the same inputs: the fastest any ingest of these files could be."""
    from pipelines.contract import load_contract
    from pipelines.lib.store import OperationalStore

    target = (ctx.scratch or ctx.home.root) / "floor.duckdb"
    target.unlink(missing_ok=True)
    con = duckdb.connect(str(target))
    try:
        def files() -> None:
            for folder in sorted(p for p in ctx.home.landing.iterdir() if p.is_dir()):
                for ext, reader in _READERS.items():
                    paths = sorted(str(p) for p in folder.glob(f"*{ext}"))
                    if paths:
                        con.execute(f'CREATE OR REPLACE TABLE "{folder.name}{ext.replace(".", "_")}" AS '  # noqa: S608
                                    f"SELECT * FROM {reader.format(files=paths)}")

        def store() -> None:
            st = OperationalStore(ctx.home.operational_db_url)
            raw = st.engine.raw_connection()
            try:
                for entity in load_contract().store_entities:
                    cur = raw.cursor()
                    cur.execute(f"SELECT * FROM {entity.name}")  # noqa: S608 - contract names
                    names = [d[0] for d in cur.description]
                    frame = pl.DataFrame(cur.fetchall(), schema=names, orient="row", infer_schema_length=None)
                    con.register("__t", frame.to_arrow())
                    con.execute(f'CREATE OR REPLACE TABLE "store_{entity.name}" AS SELECT * FROM __t')  # noqa: S608
                    con.unregister("__t")
            finally:
                raw.close()
                st.dispose()

        files_s, _ = _timed(files)
        store_s, _ = _timed(store)
    finally:
        con.close()
        target.unlink(missing_ok=True)
    floor = files_s + store_s
    ingest_s = ctx.figures.get("ingest", {}).get("seconds")
    return {"files_seconds": round(files_s, 3), "store_seconds": round(store_s, 3), "seconds": round(floor, 3),
            "ingest_to_floor_ratio": round(ingest_s / floor, 2) if ingest_s and floor else None}


def _last_day(home: CrmHome) -> tuple[date, Path]:
    from pipelines.lib.ingest.run import file_day

    days = sorted((file_day(p), p) for p in (home.landing / "interactions").iterdir() if file_day(p))
    return days[-1]


def _shift_day_file(source: Path, target: Path, days: int, id_prefix: str) -> None:
    """Copy a day file to another day: occurred_at moved by `days`, ids prefixed (new records)."""
    frame = pl.read_ndjson(source, infer_schema_length=None) if source.suffix == ".jsonl" else \
        pl.read_parquet(source)
    ts = pl.col("occurred_at").cast(pl.String).str.to_datetime(strict=False) + pl.duration(days=days)
    frame = frame.with_columns(ts.dt.strftime("%Y-%m-%dT%H:%M:%S").alias("occurred_at"),
                               (pl.lit(id_prefix) + pl.col("interaction_id").cast(pl.String)).alias("interaction_id"))
    if target.suffix == ".jsonl":
        frame.write_ndjson(target)
    else:
        frame.write_parquet(target)


def _ingest_interactions(home: CrmHome, day: date | None = None) -> tuple[float, int, int]:
    """Ingest interactions - one day's partition (as the landing sensor requests it), or a catch-up of
    every new file when `day` is None: (seconds, rows read, files loaded)."""
    from pipelines.lib.ingest import Ingestor
    from pipelines.lib.warehouse import warehouse_writer

    with warehouse_writer(home.warehouse) as con:
        ingestor = Ingestor(home, con)
        seconds, result = _timed(lambda: ingestor.ingest("interactions", days=[day] if day else None))
        ingestor.close()
    loaded = [s for s in result.sources if s.status == "loaded"]
    return seconds, sum(s.rows_read for s in loaded), len(loaded)


@bench_step("incremental_day")
def _incremental_day(ctx: BenchContext) -> dict:
    home = ctx.home
    folder = home.landing / "interactions"
    last, last_path = _last_day(home)
    first = min(d for d in (_day(p) for p in folder.iterdir()) if d)
    span = (last - first).days + 1
    extra = folder / f"{last + timedelta(days=1)}{last_path.suffix}"
    _shift_day_file(last_path, extra, 1, "X1-")
    seconds_1, rows, files = _ingest_interactions(home, last + timedelta(days=1))

    # double the history: every existing day copied one span earlier, as new records
    originals = sorted(p for p in folder.iterdir() if _day(p) and _day(p) <= last)
    doubling_started = time.perf_counter()
    for path in originals:
        _shift_day_file(path, folder / f"{_day(path) - timedelta(days=span)}{path.suffix}", -span, "H-")
    history_s, history_rows, _ = _ingest_interactions(home)
    doubling_s = round(time.perf_counter() - doubling_started, 3)

    extra2 = folder / f"{last + timedelta(days=2)}{last_path.suffix}"
    _shift_day_file(last_path, extra2, 2, "X2-")
    seconds_2, rows_2, files_2 = _ingest_interactions(home, last + timedelta(days=2))
    con = duckdb.connect(str(home.warehouse), read_only=True)
    total = con.execute("SELECT count(*) FROM raw.interactions").fetchall()[0][0]
    con.close()
    return {"day_rows": rows, "seconds": seconds_1, "history_doubled_rows_added": history_rows,
            "history_doubling_seconds": doubling_s, "history_ingest_seconds": history_s,
            "seconds_with_history_doubled": seconds_2, "interactions_after": total,
            "doubled_to_single_ratio": round(seconds_2 / seconds_1, 2) if seconds_1 else None,
            "files_loaded": [files, files_2]}


def _day(path: Path) -> date | None:
    from pipelines.lib.ingest.run import file_day

    return file_day(path)


def run_bench(customers: int, out: Path | None = None, seed: int = 7, steps: list[str] | None = None,
              console: Console | None = None) -> dict:
    """Run the registered steps (all, or the named ones) and return {"customers": ..., step: figures}."""
    console = console or Console(stderr=True)
    for module in BENCH_PLUGINS:
        importlib.import_module(module)
    scratch = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    root = out.expanduser().resolve() if out else scratch / "home"
    if root.exists() and (steps is None or "generate" in steps):
        shutil.rmtree(root)
    ctx = BenchContext(home=CrmHome(root), customers=customers, seed=seed, console=console, scratch=scratch)
    ctx.figures["customers"] = customers
    try:
        for step in STEPS:
            if steps is not None and step.name not in steps:
                continue
            with console.status(f"bench: {step.name}..."):
                started = time.perf_counter()
                ctx.figures[step.name] = step.fn(ctx)
            console.print(f"bench: {step.name} done in {time.perf_counter() - started:.1f}s",
                          style="dim")
        ctx.figures["peak_memory_mb"] = peak_memory_mb()
        ctx.figures["home"] = str(root) if out else None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # the home too, unless --out named a folder
    console.print(f"bench home: {root if out else '(temporary, removed)'}", style="dim")
    return json.loads(json.dumps(ctx.figures, default=str))
