"""``crons sync``, ``crons list`` and ``crons backfill``, and the crons sync that ``worker`` and ``dev`` run.

``crons list`` shows the declared crons and the app's runtime crons (``ctx.crons``), each
marked with its origin; it needs no declarations. ``crons backfill`` runs a cron's times in a
window now.

Layer: command line.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from pydantic.alias_generators import to_camel
from temporalio.client import Client

from .._app import App
from .._client import KitcnClient
from ..capacity._slots import paused_names
from ..crons._declared import CronJobs, cron_jobs
from ..crons._sync import CronStatus, SyncReport
from ._connect import DEFAULT_CRONS, CliError, connect, connect_config, load_app, load_crons
from ._output import STATE_COLORS, format_time, job_json, print_json, table
from ._parse import parse_iso_time


def require_crons(crons: Any, spec: str | None) -> CronJobs | None:
    """``crons`` if it is a ``cron_jobs()`` set (``None`` stays ``None``)."""
    if crons is None or isinstance(crons, CronJobs):
        return crons
    raise CliError(f"--crons {spec or DEFAULT_CRONS!r} names {type(crons).__name__}, not a cron_jobs() set")


async def sync_crons(crons: CronJobs, client: Client, app: App) -> str:
    """Make Temporal's schedules match ``crons``; one line saying what changed."""
    return "crons: " + _summary(await _sync(crons, client, app))


async def sync(args: argparse.Namespace) -> int:
    """``crons sync``."""
    app, crons = _load(args)
    client = await connect(connect_config(args), app)
    report = await _sync(crons, client, app)
    if args.json:
        print_json(
            {
                "created": report.created,
                "updated": report.updated,
                "deleted": report.deleted,
                "unchanged": report.unchanged,
            }
        )
    else:
        print(_summary(report))
    return 0


async def list_(args: argparse.Namespace) -> int:
    """``crons list``: origin, spec, state, next three runs and last run of every cron."""
    app, crons = _load(args, required=False)
    client = await connect(connect_config(args), app)
    try:
        rows = await crons.list(client, app)
    except (ValueError, TypeError) as err:
        raise CliError(str(err)) from None
    functions = {row.function for row in rows if row.function is not None}
    paused = set(await paused_names(client, app.task_queue, functions)) & functions
    if args.json:
        print_json([{**_row_json(row), "functionPaused": row.function in paused} for row in rows])
    elif rows:
        print(_table(rows))
        if paused:
            print(f"paused: {', '.join(sorted(paused))} (their cron runs wait until resumed)")
    else:
        print("no crons: none declared, none registered at runtime")
    return 0


async def backfill(args: argparse.Namespace) -> int:
    """``crons backfill NAME --start ISO --end ISO``: a run now for each time in the window."""
    start, end = parse_iso_time(args.start, "--start"), parse_iso_time(args.end, "--end")
    app = load_app(args)
    client = await connect(connect_config(args), app)
    runs = await KitcnClient(client, app).crons.backfill(args.name, start, end)
    if args.json:
        print_json({"name": args.name, "start": start.isoformat(), "end": end.isoformat(), "runs": runs})
    elif runs:
        print(f"cron {args.name!r}: {runs} run(s) from {args.start} to {args.end} started now (Temporal's backfill)")
    else:
        print(f"cron {args.name!r}: no run from {args.start} to {args.end}")
    return 0


def _load(args: argparse.Namespace, *, required: bool = True) -> tuple[App, CronJobs]:
    app = load_app(args)
    crons = require_crons(load_crons(args.crons), args.crons)
    if crons is None and not required:
        return app, cron_jobs()
    if crons is None:
        raise CliError(
            "no crons to work with: declare them in workflows/crons.py (crons = cron_jobs()) "
            "or name them with --crons module:attr"
        )
    return app, crons


async def _sync(crons: CronJobs, client: Client, app: App) -> SyncReport:
    try:
        return await crons.sync(client, app)
    except (ValueError, TypeError) as err:  # a cron whose target is not part of the app
        raise CliError(str(err)) from None


def _summary(report: SyncReport) -> str:
    parts = []
    for label, names in (("created", report.created), ("updated", report.updated), ("deleted", report.deleted)):
        if names:
            parts.append(f"{label} {', '.join(names)}")
    if report.unchanged:
        parts.append(f"{len(report.unchanged)} unchanged")
    return "; ".join(parts) or "nothing declared, nothing to delete"


def _row_json(row: CronStatus) -> dict[str, Any]:
    data = {to_camel(k): v for k, v in row.model_dump(mode="json", exclude={"last_run", "jitter"}).items()}
    data["jitterMs"] = row.jitter // timedelta(milliseconds=1)
    data["lastRun"] = job_json(row.last_run) if row.last_run else None
    return data


def _table(rows: list[CronStatus]) -> str:
    headers = ["NAME", "ORIGIN", "FUNCTION", "SPEC", "OVERLAP", "STATUS", "NEXT RUNS (UTC)", "LAST RUN"]
    cells, colors = [], []
    for row in rows:
        spec = row.spec if row.timezone == "UTC" else f"{row.spec} ({row.timezone})"
        next_runs = ", ".join(format_time(int(t.timestamp() * 1000)).removesuffix(" UTC") for t in row.next_runs)
        last = row.last_run
        last_text = f"{last.state.kind} {format_time(last.scheduled_time)}" if last else "-"
        policy = row.overlap + (f", jitter {_span(row.jitter)}" if row.jitter else "")
        cells.append(
            [row.name, row.origin, row.function or "?", spec, policy, _status(row), next_runs or "-", last_text]
        )
        colors.append([None, None, None, None, None, None, None, STATE_COLORS.get(last.state.kind) if last else None])
    return table(headers, cells, colors)


def _span(span: timedelta) -> str:
    """``30s``, ``1m30s``, ``250ms``: a jitter as people write it."""
    ms = span // timedelta(milliseconds=1)
    parts = [
        f"{n}{unit}" for n, unit in ((ms // 3_600_000, "h"), (ms // 60_000 % 60, "m"), (ms // 1000 % 60, "s")) if n
    ]
    return "".join(parts) + (f"{ms % 1000}ms" if ms % 1000 else "")


def _status(row: CronStatus) -> str:
    if row.held_by is not None:
        return f"held by {row.held_by} (sync refuses it: rename one)"
    if row.origin != "declared":
        return "paused" if row.paused else "active"
    if not row.declared:
        return "stale (deleted by the next sync)"
    if not row.synced:
        return "not synced"
    state = "paused" if row.paused else "active"
    return state if row.up_to_date else f"{state}, changed (sync to apply)"
