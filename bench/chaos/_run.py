"""One chaos run: start the server, proxy and workers, run the load under faults, settle, check, report."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.chaosapp import capped
from bench.chaosapp.crons import crons
from bench.chaosapp.models import Base, LedgerRow
from kitcn_temporal import App, KitcnClient, ScheduledFunction, setup_namespace
from kitcn_temporal._plugin import connect_when_ready
from kitcn_temporal.ops._devserver import free_port

from . import _check
from ._faults import KINDS as FAULT_KINDS
from ._faults import Nemesis, fault_plan
from ._load import GaveUp, Producer, Stats, plan, retry
from ._procs import Processes, Server, Worker, worker_command
from ._proxy import Proxy

QUEUE = "chaos"
#: A worker lost mid-action fails its job after this long (the producer's app sets it on each job).
HEARTBEAT = timedelta(seconds=2)
RUNTIME_CRON_MS = 2000
#: Seconds between faults on average, and the longest wait for every job to be final.
FAULTS_EVERY_S = {True: 6.0, False: 15.0}
SETTLE_TIMEOUT_S = {True: 120.0, False: 600.0}
#: ``system.get`` calls at once while settling.
READS_IN_FLIGHT = 32
#: What must be zero for the run to pass.
VIOLATIONS = (
    "lost",
    "mutations_doubled",
    "actions_doubled",
    "canceled_ran",
    "canceled_unasked",
    "cancel_ignored",
    "unknown_runs",
)


@dataclass(frozen=True)
class Options:
    jobs: int
    json_path: str | None
    seed: int
    database: str | None
    quick: bool
    workers: int
    rate: float
    directory: str | None


@asynccontextmanager
async def app_database(database: str | None, directory: Path) -> AsyncIterator[tuple[str, tuple[str, str] | None]]:
    """The app's URL (and, on PostgreSQL, the admin URL and role the database faults use).

    PostgreSQL: a new login role with a schema of its name (first on its search path), dropped
    afterwards, so the run's tables and sessions are its own."""
    if database is None or database.startswith("sqlite"):
        yield database or f"sqlite+aiosqlite:///{directory / 'app.db'}", None
        return
    role = f"kitcn_chaos_{uuid.uuid4().hex[:10]}"
    admin = make_url(database).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        await conn.execute(f"CREATE ROLE {role} LOGIN; CREATE SCHEMA {role} AUTHORIZATION {role}")
        url = make_url(database).set(drivername="postgresql+asyncpg", username=role, password=None)
        yield url.render_as_string(hide_password=False), (admin, role)
    finally:
        await conn.execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}';"
            f"DROP SCHEMA IF EXISTS {role} CASCADE; DROP ROLE IF EXISTS {role}"
        )
        await conn.close()


async def chaos(options: Options) -> int:
    directory = Path(options.directory or tempfile.mkdtemp(prefix="kitcn-chaos-"))
    directory.mkdir(parents=True, exist_ok=True)
    procs = Processes()
    # A SIGTERM (a test's timeout) ends the run through the same clean-up as any exit.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: sys.exit(143))
    try:
        async with app_database(options.database, directory) as (url, pg):
            report = await run(options, directory, procs, url, pg)
    finally:
        procs.kill_all()
    print(json.dumps(report, indent=2), flush=True)
    if options.json_path:
        Path(options.json_path).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["ok"] else 1


async def run(
    options: Options, directory: Path, procs: Processes, url: str, pg: tuple[str, str] | None
) -> dict[str, Any]:
    began = time.monotonic()
    rng = random.Random(options.seed)
    ledger = directory / "actions.ledger"
    server = Server(directory, procs, free_port())
    await server.start()
    proxy = Proxy(free_port(), server.port)
    await proxy.start()
    app = App.discover("bench.chaosapp", task_queue=QUEUE, database=url, action_heartbeat_timeout=HEARTBEAT)
    assert app.store is not None
    await app.store.create_all(Base.metadata)
    try:
        client = await connect_when_ready(server.address, app, timeout=60)
        await setup_namespace(client)
        kitcn = KitcnClient(client, app)
        command = worker_command(proxy.address, QUEUE, url)
        workers = [Worker(i, command, directory, procs) for i in range(options.workers)]
        await asyncio.gather(*(w.start() for w in workers))
        producer = Producer(kitcn, str(ledger), hold_ms=30 if pg else 0)
        await retry(lambda: crons.sync(kitcn), producer.stats)
        await producer.start_crons(RUNTIME_CRON_MS)

        span = options.jobs / options.rate
        kinds = tuple(k for k in FAULT_KINDS if pg or k != "db_kill")
        faults = fault_plan(span, FAULTS_EVERY_S[options.quick], rng, kinds)
        nemesis = Nemesis(server, workers, proxy, rng, pg)
        stop = asyncio.Event()
        supervisor = asyncio.create_task(nemesis.supervise(stop))
        start = time.monotonic()
        await asyncio.gather(producer.run(plan(options.jobs, span, options.seed), start), nemesis.run(faults, start))
        await proxy.heal()
        await producer.stop_crons()
        loaded = time.monotonic()
        tracked = {issued.job_id: issued.kind for issued in producer.issued}
        curve: list[tuple[float, int]] = []
        settled = await settle(kitcn, tracked, SETTLE_TIMEOUT_S[options.quick], curve)
        settle_s = (settled or time.monotonic()) - loaded
        rows = await read_rows(kitcn, list(tracked))
        stop.set()
        await supervisor
        ledger_rows = await mutation_ledger(app)
        runs = _check.read_action_ledger(ledger.read_text() if ledger.exists() else "")
        killed = {pid: at for w in workers for pid, at in w.killed.items()}
        report = check(options, producer, tracked, rows, ledger_rows, runs, killed)
        report.update(asdict(nemesis.tally))
        report["load_s"] = round(loaded - start, 1)
        report["settle_s"] = round(settle_s, 1)
        report["settled"] = settled is not None
        #: ``(seconds into the settle, jobs not final yet)``.
        report["settle_curve"] = curve
        report["wall_s"] = round(time.monotonic() - began, 1)
        report["ok"] = report["ok"] and settled is not None
        report["directory"] = str(directory)
        await proxy.close()
        return report
    finally:
        await app.store.dispose()


async def list_all(kitcn: KitcnClient, stats: Stats) -> dict[str, ScheduledFunction]:
    """Every job of the namespace (the run's server is its own), through Temporal's visibility."""
    rows: dict[str, ScheduledFunction] = {}
    cursor: str | None = None
    for _ in range(10_000):  # pages: bounded
        page = await retry(lambda c=cursor: kitcn.system.paginate(page_size=1000, cursor=c), stats)  # type: ignore[misc]
        rows.update((row.id, row) for row in page.page)
        if page.is_done:
            break
        cursor = page.continue_cursor
    return rows


async def settle(
    kitcn: KitcnClient, tracked: dict[str, str], timeout: float, curve: list[tuple[float, int]]
) -> float | None:
    """When every job was final by Temporal's list (about a second behind), or ``None`` if some
    were not within ``timeout`` seconds. ``curve`` gets how many were not, every 10 s or so.

    Jobs the producer did not get an id for (cron runs; a start whose answer a restart cut
    off, then retried) come from the list and join ``tracked``. The list is cheap enough to
    read each second; the strongly consistent rows the checker judges are read afterwards
    (:func:`read_rows`), outside the settle time."""
    stats = Stats()
    deadline = time.monotonic() + timeout
    began = time.monotonic()
    listed_before = -1
    while True:
        listed = await list_all(kitcn, stats)
        for job_id in listed:
            tracked.setdefault(job_id, "cron" if ":cron:" in job_id else "unasked")
        left = sum(1 for j in tracked if (row := listed.get(j)) is None or row.state.kind not in _check.FINAL)
        if not curve or time.monotonic() - began - curve[-1][0] >= 10 or not left:
            curve.append((round(time.monotonic() - began, 1), left))
        if not left and len(listed) == listed_before:
            return time.monotonic()
        if time.monotonic() > deadline:
            return None
        listed_before = len(listed)
        await asyncio.sleep(1.0)


async def read_rows(kitcn: KitcnClient, job_ids: list[str]) -> dict[str, ScheduledFunction | None]:
    """Each job's row, read with ``system.get`` (strongly consistent)."""
    stats, limit = Stats(), asyncio.Semaphore(READS_IN_FLIGHT)
    rows: dict[str, ScheduledFunction | None] = {}

    async def get(job_id: str) -> None:
        async with limit:
            rows[job_id] = await retry(lambda: kitcn.system.get(job_id), stats)

    await asyncio.gather(*(get(j) for j in job_ids))
    return rows


async def mutation_ledger(app: App) -> Counter[str]:
    """How many ledger rows each job wrote."""
    assert app.store is not None
    async with app.store.engine.connect() as conn:
        result = await conn.execute(select(LedgerRow.job_id, func.count()).group_by(LedgerRow.job_id))
        return Counter({job_id: count for job_id, count in result.all()})


def check(
    options: Options,
    producer: Producer,
    tracked: dict[str, str],
    rows: dict[str, ScheduledFunction | None],
    ledger_rows: Counter[str],
    runs: dict[str, _check.ActionRun],
    killed: dict[int, float],
) -> dict[str, Any]:
    report = _check.Report()
    canceled_at = {i.job_id: i.canceled_at for i in producer.issued if i.canceled_at is not None}
    for job_id, kind in tracked.items():
        run = runs.get(job_id)
        _check.check_job(report, job_id, kind, rows.get(job_id), ledger_rows[job_id], run)
        _check.check_cancel(report, job_id, rows.get(job_id), canceled_at.get(job_id))
    _check.check_unknown(report, set(tracked), ledger_rows, runs)
    capped_ids = [j for j, row in rows.items() if row is not None and row.name == "capped.hold"]
    bound = capped.CAP * (1 if capped.FLEET_WIDE else options.workers)
    over, most = _check.cap_exceeded(_check.intervals(capped_ids, runs, rows, killed), bound)
    counts = report.counts
    kinds = Counter(tracked.values())
    out: dict[str, Any] = {
        "jobs": len(tracked),
        "final": counts["final"],
        **{name: counts[name] for name in VIOLATIONS},
        "cap_exceeded": over,
        "cap_bound": bound,
        "cap_most_at_once": most,
        "key_mismatches": len(producer.stats.key_mismatches),
        "kinds": dict(sorted(kinds.items())),
        "states": {k.removeprefix("state."): v for k, v in sorted(counts.items()) if k.startswith("state.")},
        "actions_failed": {
            k.removeprefix("actions_failed."): v for k, v in sorted(counts.items()) if k.startswith("actions_failed.")
        },
        "producer_retries": producer.stats.retries,
        "producer_gave_up": producer.stats.gave_up[:20],
        "examples": dict(report.examples),
        "seed": options.seed,
        "quick": options.quick,
        "database": "postgresql" if options.database and not options.database.startswith("sqlite") else "sqlite",
    }
    out["ok"] = (
        all(out[name] == 0 for name in VIOLATIONS)
        and over == 0
        and not producer.stats.key_mismatches
        and out["final"] == out["jobs"]
    )
    return out


__all__ = ["GaveUp", "Options", "chaos"]
